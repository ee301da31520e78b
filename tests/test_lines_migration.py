"""Migration 0014: every invoice that predates line items gets one line of its own."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.utils import make_account, make_invoice, make_site
from wagtail_client_billing.models import InvoiceLine

APP = "wagtail_client_billing"


def _migrate(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([(APP, target)])


def _lines_migration() -> tuple[str, str]:
    names = sorted(
        name for app, name in MigrationExecutor(connection).loader.disk_migrations if app == APP
    )
    ours = next(name for name in names if name.endswith("_invoice_lines"))
    return names[names.index(ours) - 1], ours


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_invoice_before_the_upgrade_gets_one_line_of_its_amount_and_description():
    before, ours = _lines_migration()
    site, account = make_site("lines.example"), make_account("acct_lines")
    described = make_invoice(site, account, amount=12500, description="Homepage redesign")
    plain = make_invoice(site, account, amount=999, description="")
    _migrate(before)
    _migrate(ours)

    assert [
        (line.position, line.description, line.quantity, line.unit_amount, line.product_id)
        for line in InvoiceLine.objects.filter(invoice=described)
    ] == [(0, "Homepage redesign", 1, 12500, None)]
    [line] = InvoiceLine.objects.filter(invoice=plain)
    assert (line.description, line.line_total) == ("", 999)

    _migrate(before)  # reversible: the lines go, the invoices stay as they were
    assert "wagtail_client_billing_invoiceline" not in connection.introspection.table_names()
    _migrate(ours)
    assert InvoiceLine.objects.filter(invoice__in=[described, plain]).count() == 2
