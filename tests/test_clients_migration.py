"""Migrations 0027/0028 (clients): every existing invoice is linked to a client by its
email address in any letter case, one client per address across the installation, and
the migration reverses without losing invoice data."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.utils import make_account, make_invoice, make_site
from wagtail_client_billing.models import Client, Invoice

APP = "wagtail_client_billing"


def _migrate(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([(APP, target)])


@pytest.fixture(autouse=True)
def _back_to_the_latest_schema():
    """Each test ends with every migration applied again (the app's other 0027/0028,
    which the clients' migrations do not depend on, too), as the next test expects."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([key for key in executor.loader.graph.leaf_nodes() if key[0] == APP])


def _names() -> tuple[str, str, str]:
    names = sorted(
        name for app, name in MigrationExecutor(connection).loader.disk_migrations if app == APP
    )
    schema = next(name for name in names if name.endswith("_clients"))
    data = next(name for name in names if name.endswith("_link_invoices_to_clients"))
    return names[names.index(schema) - 1], schema, data


def _invoice_rows() -> list[tuple]:
    return list(
        Invoice.objects.order_by("pk").values_list(
            "pk", "email", "number", "amount", "currency", "status", "site_id", "created_at"
        )
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_existing_invoices_are_all_linked_to_one_client_per_address_and_it_reverses():
    before, schema, data = _names()
    site_a, site_b = make_site("a.example"), make_site("b.example")
    account = make_account("acct_clients_mig")
    invoices = [
        make_invoice(site_a, account, email="Alice@Example.com"),
        make_invoice(site_b, account, email="alice@example.COM"),
        make_invoice(site_a, account, email="bob@example.com"),
        make_invoice(site_b, account, email="carol@example.com", amount=999),
    ]
    rows = _invoice_rows()
    _migrate(before)
    _migrate(data)

    assert not Invoice.objects.filter(client__isnull=True).exists()
    assert Client.objects.count() == 3
    alice = Invoice.objects.get(pk=invoices[0].pk).client
    assert Invoice.objects.get(pk=invoices[1].pk).client == alice  # across sites, any case
    assert alice.email.lower() == "alice@example.com"
    assert alice.created_by_migration
    assert Invoice.objects.get(pk=invoices[2].pk).client.email == "bob@example.com"
    assert _invoice_rows() == rows  # each invoice keeps the address it went to

    _migrate(schema)  # the data migration reverses: unlinked, its clients gone
    assert Client.objects.count() == 0
    assert not Invoice.objects.filter(client__isnull=False).exists()
    assert _invoice_rows() == rows
    _migrate(before)
    assert "wagtail_client_billing_client" not in connection.introspection.table_names()
    assert _invoice_rows() == rows
    _migrate(data)
    assert Invoice.objects.filter(client__isnull=False).count() == 4


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_client_an_editor_added_keeps_its_invoices_and_the_reverse_leaves_it():
    _before, schema, data = _names()
    site, account = make_site("c.example"), make_account("acct_clients_mig2")
    _migrate(schema)
    kept = Client.objects.create(email="Dana@example.com", name="Dana")
    invoice = make_invoice(site, account, email="dana@EXAMPLE.com")
    other = make_invoice(site, account, email="erin@example.com")
    _migrate(data)
    assert Invoice.objects.get(pk=invoice.pk).client == kept
    assert Client.objects.count() == 2
    _migrate(schema)
    assert list(Client.objects.all()) == [kept]
    assert Invoice.objects.get(pk=invoice.pk).client == kept
    assert Invoice.objects.get(pk=other.pk).client is None
    _migrate(data)
