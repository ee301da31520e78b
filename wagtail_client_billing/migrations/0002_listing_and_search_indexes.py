"""Indexes the admin listing needs at a million invoices.

- ``(site, status, -created_at)``: the listing filtered by site and status, and its count.
- On PostgreSQL, trigram GIN indexes for the listing's search (``icontains`` on email,
  number and description compiles to ``UPPER(col::text) LIKE UPPER(%s)``, which these
  expression indexes serve). ``pg_trgm`` is a trusted extension (PostgreSQL 13+), so a
  database owner can create it; where that is refused the migration leaves search
  unindexed and says so, rather than failing the deploy. SQLite needs nothing.
"""

from django.db import migrations, models

SEARCHED = ("email", "number", "description")
TABLE = "wagtail_client_billing_invoice"


class PostgreSQLOnly(migrations.RunSQL):
    """RunSQL that does nothing on other databases."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


def _create_trigram_indexes() -> str:
    statements = " ".join(
        f"EXECUTE 'CREATE INDEX IF NOT EXISTS wcb_invoice_{column}_trgm ON {TABLE} "
        f"USING gin (UPPER({column}::text) gin_trgm_ops)';"
        for column in SEARCHED
    )
    return f"""
    DO $$
    BEGIN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_trgm could not be created: invoice search stays unindexed';
        END;
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
            {statements}
        END IF;
    END $$;
    """


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(
                fields=["site", "status", "-created_at"], name="wcb_invoice_site_status"
            ),
        ),
        PostgreSQLOnly(
            sql=_create_trigram_indexes(),
            reverse_sql=" ".join(
                f"DROP INDEX IF EXISTS wcb_invoice_{column}_trgm;" for column in SEARCHED
            ),
        ),
    ]
