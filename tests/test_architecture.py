"""The package's shape: data flows one way, and registration happens where Wagtail and
Django expect it, so a change that breaks either fails CI."""

from __future__ import annotations

import ast
from pathlib import Path

from django.core.signals import setting_changed
from django.test import override_settings

from tests import import_graph
from wagtail_client_billing import conf, gateway

PACKAGE = Path(__file__).resolve().parent.parent / "wagtail_client_billing"

#: The modules Django and Wagtail load to register things: ``AppConfig.ready()``, the
#: hooks Wagtail imports, and the system checks ``ready()`` imports.
REGISTRARS = {"apps", "wagtail_hooks", "checks"}
#: Registrations Wagtail documents where they are: ``@register_setting`` on the model.
IN_PLACE = {"register_setting"}


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


def _registrations(path: Path) -> list[str]:
    calls = []
    for node in _runs_at_import(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in IN_PLACE:
            continue
        if name in ("connect", "receiver") or name.startswith("register"):
            calls.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {ast.unparse(func)}")
    return calls


def test_importing_a_module_registers_nothing():
    """Signal receivers and permission policies are connected in ``AppConfig.ready()``,
    Wagtail hooks in ``wagtail_hooks.py``: importing any other module registers nothing."""
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


def test_override_settings_reaches_the_settings_and_the_stripe_client():
    before = gateway.get_client(test_mode=True)
    with override_settings(WAGTAIL_CLIENT_BILLING={"STRIPE_TEST_SECRET_KEY": "sk_test_other"}):
        assert conf.billing_settings.STRIPE_TEST_SECRET_KEY == "sk_test_other"
        assert gateway.get_client(test_mode=True) is not before
    assert conf.billing_settings.STRIPE_TEST_SECRET_KEY == "sk_test_suite"
