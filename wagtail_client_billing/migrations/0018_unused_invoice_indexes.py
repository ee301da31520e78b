"""Indexes the invoice table keeps up for nothing.

A status change updates ``status``, which is indexed, so on PostgreSQL no such update
is HOT and every index of the table gets a new entry for the row: an expiry sweep of
100,000 invoices writes 100,000 entries into each. Only the indexes a query plan uses
are kept (``benchmarks`` reports which ones each sweep updates and which ones the
run's queries used; ``tests/test_query_plans.py`` checks the plans):

- ``site_id``'s own index goes: ``(site, sequence)``, ``(site, -created_at)`` and
  ``(site, status, -created_at)`` start with it.
- ``wcb_invoice_email`` goes: the search matches ``LOWER(email)`` (its own index) or a
  substring (the trigram index); nothing filters on the bare column.
- ``token`` and ``WebhookEvent.event_id`` stay unique through a constraint instead of
  ``unique=True``, which on PostgreSQL also made a ``varchar_pattern_ops`` index for
  ``LIKE`` that nothing uses (every webhook delivery paid for the event id's).
- The foreign keys that only ``on_delete=SET_NULL`` looks up (the deleting user, the
  original of a copy, the pages to publish or unpublish) get partial indexes over the
  rows that have one: a sweep of invoices without one adds nothing to them; so does
  ``WebhookEvent.invoice``, which a new event (each webhook delivery's insert) lacks.
"""

import django.db.models.deletion
import wagtail_client_billing.models
from django.conf import settings
from django.db import migrations, models

from wagtail_client_billing.compat import PAGE_MODEL


#: Foreign key columns whose own index goes (SQLite: dropped by name, see below).
UNINDEXED = {
    "wagtail_client_billing_invoice": (
        "site_id",
        "deleted_by_id",
        "copied_from_id",
        "publish_page_when_paid_id",
        "unpublish_page_when_expired_id",
    ),
    "wagtail_client_billing_webhookevent": ("invoice_id",),
}


class NotOnSQLite(migrations.operations.base.Operation):
    """``operation`` in the migration state everywhere, in the database except on SQLite.

    SQLite alters a column, or adds a unique constraint, by copying the whole table: on
    a large invoice table this migration would copy it nine times for what are index
    changes. There :func:`drop_fk_indexes` drops the foreign keys' own indexes, and
    ``token`` and ``event_id`` keep their unique index under its old name (SQLite has no
    LIKE index to save); a later migration that copies the table builds it from the
    state.
    """

    reversible = True

    def __init__(self, operation):
        self.operation = operation

    def deconstruct(self):
        return (self.__class__.__name__, [self.operation], {})

    def state_forwards(self, app_label, state):
        self.operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "sqlite":
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "sqlite":
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self):
        return f"{self.operation.describe()} (SQLite: indexes only)"


def _fk_indexes(schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for table, columns in UNINDEXED.items():
            constraints = connection.introspection.get_constraints(cursor, table)
            for name, info in constraints.items():
                single = info["index"] and not info["unique"] and len(info["columns"]) == 1
                if single and info["columns"][0] in columns and not name.startswith("wcb_"):
                    yield table, name


def drop_fk_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    qn = schema_editor.quote_name
    for _table, name in list(_fk_indexes(schema_editor)):
        schema_editor.execute(f"DROP INDEX IF EXISTS {qn(name)}")


def create_fk_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    qn = schema_editor.quote_name
    for table, columns in UNINDEXED.items():
        for column in columns:
            name = f"{table}_{column}_perf24"
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {qn(name)} ON {qn(table)} ({qn(column)})"
            )


class Migration(migrations.Migration):

    dependencies = [
        ('wagtail_client_billing', '0017_invoice_rollup'),
        ('wagtailcore', '0089_log_entry_data_json_null_to_object'),  # in every Wagtail >= 6.0
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        migrations.swappable_dependency(PAGE_MODEL),
    ]

    operations = [
        migrations.RunPython(drop_fk_indexes, create_fk_indexes, elidable=False),
        migrations.RemoveIndex(
            model_name='invoice',
            name='wcb_invoice_email',
        ),
        NotOnSQLite(migrations.AlterField(
            model_name='invoice',
            name='copied_from',
            field=models.ForeignKey(blank=True, db_index=False, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='copies', to='wagtail_client_billing.invoice', verbose_name='copied from'),
        )),
        NotOnSQLite(migrations.AlterField(
            model_name='invoice',
            name='deleted_by',
            field=models.ForeignKey(blank=True, db_index=False, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='deleted by'),
        )),
        NotOnSQLite(migrations.AlterField(
            model_name='invoice',
            name='publish_page_when_paid',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=PAGE_MODEL, verbose_name='publish this page when paid'),
        )),
        NotOnSQLite(migrations.AlterField(
            model_name='invoice',
            name='site',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='client_billing_invoices', to='wagtailcore.site', verbose_name='site'),
        )),
        NotOnSQLite(migrations.AlterField(
            model_name='invoice',
            name='token',
            field=models.CharField(default=wagtail_client_billing.models.new_token, editable=False, max_length=64),
        )),
        NotOnSQLite(migrations.AlterField(
            model_name='invoice',
            name='unpublish_page_when_expired',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=PAGE_MODEL, verbose_name='unpublish this page when expired'),
        )),
        NotOnSQLite(migrations.AlterField(
            model_name='webhookevent',
            name='event_id',
            field=models.CharField(max_length=255, verbose_name='event id'),
        )),
        NotOnSQLite(migrations.AlterField(
            model_name='webhookevent',
            name='invoice',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='webhook_events', to='wagtail_client_billing.invoice', verbose_name='invoice'),
        )),
        migrations.AddIndex(
            model_name='invoice',
            index=models.Index(condition=models.Q(('deleted_by__isnull', False)), fields=['deleted_by'], name='wcb_invoice_deleted_by'),
        ),
        migrations.AddIndex(
            model_name='invoice',
            index=models.Index(condition=models.Q(('copied_from__isnull', False)), fields=['copied_from'], name='wcb_invoice_copied_from'),
        ),
        migrations.AddIndex(
            model_name='invoice',
            index=models.Index(condition=models.Q(('publish_page_when_paid__isnull', False)), fields=['publish_page_when_paid'], name='wcb_invoice_publish_page'),
        ),
        migrations.AddIndex(
            model_name='invoice',
            index=models.Index(condition=models.Q(('unpublish_page_when_expired__isnull', False)), fields=['unpublish_page_when_expired'], name='wcb_invoice_unpublish_page'),
        ),
        migrations.AddIndex(
            model_name='webhookevent',
            index=models.Index(condition=models.Q(('invoice__isnull', False)), fields=['invoice'], name='wcb_event_invoice'),
        ),
        NotOnSQLite(migrations.AddConstraint(
            model_name='invoice',
            constraint=models.UniqueConstraint(fields=('token',), name='wcb_invoice_token_unique'),
        )),
        NotOnSQLite(migrations.AddConstraint(
            model_name='webhookevent',
            constraint=models.UniqueConstraint(fields=('event_id',), name='wcb_event_event_id_unique'),
        )),
    ]
