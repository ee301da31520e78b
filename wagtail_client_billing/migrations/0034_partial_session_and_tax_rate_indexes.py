"""Two more invoice indexes an expiry sweep kept up for nothing.

A status change updates ``status``, which is indexed, so on PostgreSQL no such update
is HOT and every index whose predicate the new row meets gets an entry
(``docs/performance.md``). Two full indexes served look-ups of rows that have a value:

- ``wcb_invoice_session`` (the webhook's look-up by Checkout Session) now holds only the
  invoices with a session; every look-up asks for a non-empty id, which implies the
  index's condition.
- ``tax_rate``'s own foreign key index (what deleting a tax rate looks up, ``PROTECT``)
  becomes ``wcb_invoice_tax_rate``, over the invoices that have a rate.

On PostgreSQL the indexes are built and dropped ``CONCURRENTLY`` (so the migration is
not atomic; ``_operations.Concurrently``): a large invoice table stays writable meanwhile. SQLite changes the
indexes only (no table copy, as in 0018).
"""

import django.db.models.deletion
from django.db import migrations, models

from ._operations import Concurrently

TABLE = "wagtail_client_billing_invoice"
COLUMN = "tax_rate_id"


def _concurrently(schema_editor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


def _fk_index_names(schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return [
        name
        for name, info in constraints.items()
        if info["index"]
        and not info["unique"]
        and info["columns"] == [COLUMN]
        and not name.startswith("wcb_")
    ]


def drop_fk_index(apps, schema_editor):
    how = "CONCURRENTLY " if _concurrently(schema_editor) else ""
    for name in _fk_index_names(schema_editor):
        schema_editor.execute(f"DROP INDEX {how}IF EXISTS {schema_editor.quote_name(name)}")


def create_fk_index(apps, schema_editor):
    how = "CONCURRENTLY " if _concurrently(schema_editor) else ""
    qn = schema_editor.quote_name
    name = f"{TABLE}_{COLUMN}_perf24"
    schema_editor.execute(f"CREATE INDEX {how}IF NOT EXISTS {qn(name)} ON {qn(TABLE)} ({qn(COLUMN)})")


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("wagtail_client_billing", "0033_client_portal_links"),
    ]

    operations = [
        Concurrently(migrations.RemoveIndex(model_name="invoice", name="wcb_invoice_session")),
        Concurrently(
            migrations.AddIndex(
                model_name="invoice",
                index=models.Index(
                    condition=models.Q(("checkout_session_id", ""), _negated=True),
                    fields=["checkout_session_id"],
                    name="wcb_invoice_session",
                ),
            )
        ),
        Concurrently(
            migrations.AddIndex(
                model_name="invoice",
                index=models.Index(
                    condition=models.Q(("tax_rate__isnull", False)),
                    fields=["tax_rate"],
                    name="wcb_invoice_tax_rate",
                ),
            )
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="invoice",
                    name="tax_rate",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="invoices",
                        to="wagtail_client_billing.taxrate",
                        verbose_name="tax rate",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_fk_index, create_fk_index)],
        ),
    ]
