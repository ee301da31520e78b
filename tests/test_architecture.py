"""The package's shape: data flows one way, and registration happens where Wagtail and
Django expect it, so a change that breaks either fails CI."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django.core.checks.registry import registry
from django.core.signals import got_request_exception, setting_changed
from django.test import override_settings

from tests import import_graph
from wagtail_client_billing import checks, conf, gateway
from wagtail_client_billing.forms.settings import hide_password_from_error_reports

PACKAGE = Path(__file__).resolve().parent.parent / "wagtail_client_billing"

#: The modules Django and Wagtail load to register things: ``AppConfig.ready()`` and the
#: hooks Wagtail imports.
REGISTRARS = {"apps", "wagtail_hooks"}
#: Registrations Wagtail documents where they are: ``@register_setting`` on the model.
IN_PLACE = {"register_setting"}
#: Calls that register something or change another module's objects, by name.
REGISTERING = {"connect", "receiver", "setattr", "add_to_class", "contribute_to_class"}


def test_import_graph_has_no_cycle_even_inside_functions():
    graph = import_graph.build(PACKAGE)

    assert graph.cycles() == []


def test_only_urls_viewsets_and_hooks_import_view_modules():
    graph = import_graph.build(PACKAGE)

    assert graph.view_imports_from_below() == []


def _runs_at_import(tree: ast.Module) -> list[ast.AST]:
    """The nodes evaluated when the module is imported: everything but function bodies
    (their decorators and defaults included)."""
    found: list[ast.AST] = []

    def walk(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for child in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
                if child is not None:
                    walk(child)
            return
        if isinstance(node, ast.Lambda):
            return
        found.append(node)
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return found


def _registrations(path: Path, base: Path = PACKAGE.parent) -> list[str]:
    """What the module registers or patches when imported: calls such as ``connect``,
    ``receiver`` and ``register*``, and assignments to another object's attributes."""
    found = []
    where = path.relative_to(base)
    for node in _runs_at_import(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in IN_PLACE:
                continue
            if name in REGISTERING or name.startswith("register"):
                found.append(f"{where}:{node.lineno} {ast.unparse(func)}")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, (ast.Attribute, ast.Subscript)):
                    found.append(f"{where}:{node.lineno} {ast.unparse(target)} = ...")
    return found


def test_the_registration_finder_sees_calls_decorators_and_patches(tmp_path):
    module = tmp_path / "example.py"
    module.write_text(
        "from django.core import checks\n"
        "from django.dispatch import receiver\n"
        "from wagtail import hooks\n"
        "@checks.register()\n"
        "def check(app_configs, **kwargs): return []\n"
        "@receiver(setting_changed)\n"
        "def on_change(**kwargs): pass\n"
        "hooks.register('register_icons', lambda icons: icons)\n"
        "setting_changed.connect(on_change)\n"
        "Site.edit_handler = None\n"
        "REGISTRY['x'] = 1\n"
        "def later():\n"
        "    setting_changed.connect(on_change)\n"
        "class Local:\n"
        "    name = 'fine'\n"
    )

    found = [entry.split(" ", 1)[1] for entry in _registrations(module, tmp_path)]

    assert found == [
        "checks.register",
        "receiver",
        "hooks.register",
        "setting_changed.connect",
        "Site.edit_handler = ...",
        "REGISTRY['x'] = ...",
    ]


def test_importing_a_module_registers_nothing():
    """System checks, signal receivers and permission policies are registered in
    ``AppConfig.ready()``, Wagtail hooks in ``wagtail_hooks.py``: importing any other
    module registers nothing and changes no other module's objects."""
    found = [
        call
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts and path.stem not in REGISTRARS
        for call in _registrations(path)
    ]

    assert found == []


def test_ready_connects_each_settings_receiver_once():
    connected = [entry[1]() for entry in setting_changed.receivers]

    assert connected.count(conf.reload_on_setting_changed) == 1
    assert connected.count(gateway.reset_clients_on_setting_changed) == 1


def test_ready_registers_the_system_checks_and_the_error_report_receiver():
    registered = registry.get_checks()
    receivers = [entry[1]() for entry in got_request_exception.receivers]

    assert all(check in registered for check, _tags in checks.CHECKS)
    assert receivers.count(hide_password_from_error_reports) == 1


def test_no_issue_numbers_or_timings_in_the_packages_code():
    """Comments and docstrings say why, not which issue or what a benchmark measured
    (that is ``docs/performance.md``)."""
    pattern = re.compile(r"\bissue #?\d|\b\d+(\.\d+)? ?(ms|µs)\b", re.IGNORECASE)
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]

    assert found == []


def test_override_settings_reaches_the_settings_and_the_stripe_client():
    before = gateway.get_client(test_mode=True)
    with override_settings(WAGTAIL_CLIENT_BILLING={"STRIPE_TEST_SECRET_KEY": "sk_test_other"}):
        assert conf.billing_settings.STRIPE_TEST_SECRET_KEY == "sk_test_other"
        assert gateway.get_client(test_mode=True) is not before
    assert conf.billing_settings.STRIPE_TEST_SECRET_KEY == "sk_test_suite"
