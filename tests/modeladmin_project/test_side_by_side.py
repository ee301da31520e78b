"""The app beside wagtail-modeladmin: it installs, migrates and works, both menus show,
and the docs' recipes move its menu where a site wants it.

Runs with this project's settings only (``--ds=tests.modeladmin_project.settings``);
the suite's own run skips it, saying so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings

if settings.SETTINGS_MODULE != "tests.modeladmin_project.settings":
    pytest.skip(
        "runs in a pytest of its own: pytest --ds=tests.modeladmin_project.settings "
        "tests/modeladmin_project (make test and .ci/run do)",
        allow_module_level=True,
    )

from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse
from wagtail import hooks as wagtail_hooks
from wagtail.admin.menu import admin_menu

from tests.modeladmin_project.models import Supplier
from tests.utils import connect, make_account, make_site, make_user
from wagtail_client_billing.models import Invoice

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "developers-guide.md"
INVOICES = "wagtail_client_billing_invoices"


@pytest.fixture
def admin(db, client):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def isolated_hooks():
    saved = {name: list(fns) for name, fns in wagtail_hooks._hooks.items()}
    yield
    wagtail_hooks._hooks.clear()
    wagtail_hooks._hooks.update(saved)


def menu(user) -> dict[str, list[str]]:
    """The main menu this user gets: each top item's name -> the names under it."""
    request = RequestFactory().get("/admin/")
    request.user = user
    return {
        item.name: [sub.name for sub in item.menu.menu_items_for_request(request)]
        if hasattr(item, "menu")
        else []
        for item in sorted(admin_menu.menu_items_for_request(request), key=lambda i: i.order)
    }


def sidebar_labels(response) -> str:
    """The main menu as the admin page ships it (the sidebar's JSON props)."""
    match = re.search(
        rb'<script id="wagtail-sidebar-props" type="application/json">(.*?)</script>',
        response.content,
        re.S,
    )
    assert match, "no sidebar props in the admin page"
    return json.dumps(json.loads(match.group(1)))


def guide_recipe(function_name: str) -> str:
    """The docs' example that defines ``function_name``, as written."""
    for block in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S):
        if f"def {function_name}(" in block:
            return block
    raise AssertionError(f"docs/developers-guide.md has no example defining {function_name}")


def test_the_apps_migrate_together_with_nothing_missing(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_both_menus_show_and_both_listings_answer(client, admin):
    assert {"office", "client-billing"} <= set(menu(admin))
    assert menu(admin)["office"] == ["suppliers"]
    assert menu(admin)["client-billing"] == [
        "client-billing-invoices",
        "client-billing-clients",
        "client-billing-webhook-events",
        "client-billing-catalogue",
        "client-billing-tax-rates",
    ]

    home = client.get("/admin/")
    assert home.status_code == 200
    labels = sidebar_labels(home)
    assert "Office" in labels and "Client billing" in labels

    Supplier.objects.create(name="Paper & Co")
    suppliers = client.get("/admin/modeladmin_project/supplier/")
    assert suppliers.status_code == 200
    assert b"Paper &amp; Co" in suppliers.content
    assert client.get(reverse(f"{INVOICES}:list")).status_code == 200


def test_an_invoice_and_a_supplier_are_created_side_by_side(client, admin):
    site = make_site("client-a.example")
    connect(site, make_account("acct_modeladmin"))

    response = client.post(
        reverse(f"{INVOICES}:add"),
        {
            "site": str(site.pk),
            "email": "client@example.com",
            "currency": "USD",
            "amount": "125.50",
            "billing_type": "one_time",
            "success_url": "https://client.example/thanks",
            "cancel_url": "https://client.example/cancelled",
            "test_mode": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.amount, invoice.site) == ("pending", 12550, site)

    response = client.post(
        "/admin/modeladmin_project/supplier/create/",
        {"name": "Ink Ltd", "email": "ink@example.com"},
        follow=True,
    )
    assert response.status_code == 200
    assert Supplier.objects.filter(name="Ink Ltd").exists()
    assert client.get(reverse(f"{INVOICES}:list")).status_code == 200


def test_the_guides_recipe_puts_client_billing_after_pages(admin, isolated_hooks):
    exec(guide_recipe("client_billing_after_pages"), {})  # noqa: S102 (our own docs)

    names = list(menu(admin))
    assert names.index("client-billing") == names.index("explorer") + 1
    assert names.index("client-billing") < names.index("office")
    # The shared item is untouched: the next request without the hook is as before.
    wagtail_hooks._hooks["construct_main_menu"] = []
    assert list(menu(admin)).index("client-billing") > list(menu(admin)).index("office")


def test_the_guides_recipe_puts_client_billing_inside_the_sites_group(
    client, admin, isolated_hooks
):
    exec(guide_recipe("client_billing_inside_office"), {})  # noqa: S102 (our own docs)

    after = menu(admin)
    assert "client-billing" not in after
    assert after["office"] == [
        "suppliers",
        "client-billing-invoices",
        "client-billing-clients",
        "client-billing-webhook-events",
        "client-billing-catalogue",
        "client-billing-tax-rates",
    ]
    assert client.get("/admin/").status_code == 200


def test_the_merged_group_shows_each_editor_only_what_they_may_open(db, isolated_hooks):
    exec(guide_recipe("client_billing_inside_office"), {})  # noqa: S102 (our own docs)
    office_only = make_user("office", perms=("modeladmin_project.view_supplier",))
    billing_only = make_user("billing", perms=("wagtail_client_billing.view_invoice",))
    both = make_user(
        "both",
        perms=("modeladmin_project.view_supplier", "wagtail_client_billing.view_invoice"),
    )

    assert menu(office_only)["office"] == ["suppliers"]
    assert "client-billing" not in menu(office_only)
    # Without the site's group the recipe leaves the Client billing menu where it was.
    assert menu(billing_only)["client-billing"] == ["client-billing-invoices"]
    assert "office" not in menu(billing_only)
    assert menu(both)["office"] == ["suppliers", "client-billing-invoices"]
