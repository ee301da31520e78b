"""Every Python example in docs/ and the README runs, so the docs cannot rot.

Each example is executed; the hook functions it registers are then called with the
arguments the app passes them. Examples that register Wagtail hooks run against a copy
of the hook registry, restored afterwards. Fragments of settings.py and urls.py are
compiled only (they belong inside a project).
"""

import re
import textwrap
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.test import RequestFactory
from wagtail import hooks as wagtail_hooks
from wagtail.models import Site

from tests.utils import make_invoice, make_user
from wagtail_client_billing import hooks

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"^( *)(<!-- compile-only -->\n *)?```python\n(.*?)^\1```", re.S | re.M)


def blocks():
    for path in DOCS:
        for index, match in enumerate(BLOCK.finditer(path.read_text())):
            code = textwrap.dedent(match.group(3))
            yield pytest.param(code, bool(match.group(2)), id=f"{path.name}-{index}")


def is_project_fragment(code: str) -> bool:
    return bool(re.search(r"^(WAGTAIL_CLIENT_BILLING|INSTALLED_APPS|path\(|Q_CLUSTER)", code, re.M))


@pytest.fixture
def isolated_hooks():
    saved = {name: list(fns) for name, fns in wagtail_hooks._hooks.items()}
    yield
    wagtail_hooks._hooks.clear()
    wagtail_hooks._hooks.update(saved)


def call_registered(before):
    """Call every hook function the example added, as the app would."""
    invoice = make_invoice()
    user = make_user("docs-editor")
    request = RequestFactory().get("/admin/")
    request.user = user
    params = {
        "mode": "payment",
        "line_items": [{"quantity": 1, "price_data": {"currency": "usd", "unit_amount": 100}}],
    }
    arguments = {
        hooks.CAN_USE: (request, invoice.site),
        hooks.SITES_FOR_USER: (user, Site.objects.all()),
        hooks.BEFORE_CREATE_INVOICE: (request, invoice),
        hooks.CHECKOUT_PARAMS: (invoice, params),
        hooks.EMAIL_MESSAGE: (invoice, EmailMultiAlternatives("s", "b", to=[invoice.email])),
        hooks.INVOICE_STATUS_CHANGED: (invoice, "pending", "paid", "webhook"),
    }
    called = 0
    for name in hooks.ALL_HOOKS:
        for fn in wagtail_hooks.get_hooks(name):
            if fn in before.get(name, []):
                continue
            try:
                result = fn(*arguments[name])
            except ValidationError:
                continue  # refusing is a documented outcome
            if name == hooks.SITES_FOR_USER:
                list(result)  # the queryset must evaluate
            if name == hooks.CHECKOUT_PARAMS:
                assert isinstance(result, dict)
            called += 1
    return called


@pytest.mark.parametrize(("code", "compile_only"), list(blocks()))
def test_docs_example_runs(code, compile_only, isolated_hooks, db):
    """Examples marked ``<!-- compile-only -->`` (a test of the reader's own project, a
    conftest line) are compiled and their imports resolved; all others are run."""
    compiled = compile(code, "<docs>", "exec")
    if compile_only:
        for line in code.splitlines():
            if line.startswith(("import ", "from ")):
                exec(line, {})  # noqa: S102 (our own docs)
        return
    if is_project_fragment(code):
        return
    before = {name: list(wagtail_hooks.get_hooks(name)) for name in hooks.ALL_HOOKS}
    exec(compiled, {"__name__": "docs_example"})  # noqa: S102 (our own docs)
    call_registered(before)
