"""Link every existing invoice to a client: one client per distinct email address in any
letter case, across the installation.

Set-based (two statements, whatever the number of invoices): the clients are inserted
from the invoices grouped by ``lower(email)`` (an address some client already has is not
inserted again), then every unlinked invoice takes the client of its address. The
client keeps one of the spellings its invoices used; each invoice keeps its own
``email`` (the address the request went to).

Reversed, the invoices linked to the clients this migration made are unlinked and those
clients (with their Stripe customer ids) removed: no invoice field is touched but
``client``.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def _tables(apps: Any) -> tuple[str, str, str]:
    invoice = apps.get_model("wagtail_client_billing", "Invoice")._meta.db_table
    client = apps.get_model("wagtail_client_billing", "Client")._meta.db_table
    customer = apps.get_model("wagtail_client_billing", "ClientStripeCustomer")._meta.db_table
    return invoice, client, customer


def link_invoices(apps: Any, schema_editor: Any) -> None:
    invoice, client, _customer = _tables(apps)
    qn = schema_editor.quote_name
    inv, cli = qn(invoice), qn(client)
    schema_editor.execute(
        f"INSERT INTO {cli} (name, company, email, extra_emails, address, tax_number,"
        " language, notes, created_at, created_by_migration)"
        " SELECT '', '', MIN(i.email), '', '', '', '', '', MIN(i.created_at), %s"
        f" FROM {inv} i"
        f" WHERE NOT EXISTS (SELECT 1 FROM {cli} c WHERE LOWER(c.email) = LOWER(i.email))"
        " GROUP BY LOWER(i.email)",
        [True],
    )
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"UPDATE {inv} AS i SET client_id = c.id FROM {cli} AS c"
            " WHERE i.client_id IS NULL AND LOWER(c.email) = LOWER(i.email)"
        )
    else:
        schema_editor.execute(
            f"UPDATE {inv} SET client_id = (SELECT c.id FROM {cli} c"
            f" WHERE LOWER(c.email) = LOWER({inv}.email))"
            " WHERE client_id IS NULL"
        )


def unlink_invoices(apps: Any, schema_editor: Any) -> None:
    invoice, client, customer = _tables(apps)
    qn = schema_editor.quote_name
    made = f"SELECT id FROM {qn(client)} WHERE created_by_migration = %s"
    schema_editor.execute(
        f"UPDATE {qn(invoice)} SET client_id = NULL WHERE client_id IN ({made})", [True]
    )
    schema_editor.execute(f"DELETE FROM {qn(customer)} WHERE client_id IN ({made})", [True])
    schema_editor.execute(f"DELETE FROM {qn(client)} WHERE created_by_migration = %s", [True])


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0027_clients21_clients"),
    ]

    operations = [
        migrations.RunPython(link_invoices, unlink_invoices, elidable=False),
    ]
