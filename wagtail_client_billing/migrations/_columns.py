"""``AddColumn``: Django's ``AddField`` that, on SQLite, adds the column in place.

Django's SQLite schema editor copies the whole table to add a ``NOT NULL`` column
(it cannot drop the default afterwards), once per field: on a table of many invoices
every new flag or counter would cost a full copy, up and down. SQLite has added a
``NOT NULL`` column with a constant ``DEFAULT`` in place since forever, and drops an
unindexed column in place since 3.35; the default staying in the schema is harmless
(Django writes every value itself). Other databases take Django's own path.

Not a migration (the loader skips modules whose name starts with ``_``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from django.db import migrations

_DROP_COLUMN = sqlite3.sqlite_version_info >= (3, 35)


class AddColumn(migrations.AddField):
    """An ``AddField`` of a plain column (no index, not unique) with a constant default."""

    def _in_place(self, schema_editor: Any, field: Any) -> bool:
        return (
            schema_editor.connection.vendor == "sqlite"
            and not (field.primary_key or field.unique or field.db_index or field.remote_field)
            and field.has_default()
            and not callable(field.default)
        )

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any):
        model = to_state.apps.get_model(app_label, self.model_name)
        field = model._meta.get_field(self.name)
        if not (self.allow_migrate_model(schema_editor.connection.alias, model)):
            return
        if not self._in_place(schema_editor, field):
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        definition, params = schema_editor.column_sql(model, field, include_default=True)
        table = schema_editor.quote_name(model._meta.db_table)
        column = schema_editor.quote_name(field.column)
        schema_editor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}", params)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any):
        model = from_state.apps.get_model(app_label, self.model_name)
        field = model._meta.get_field(self.name)
        if not (self.allow_migrate_model(schema_editor.connection.alias, model)):
            return
        if not (_DROP_COLUMN and self._in_place(schema_editor, field)):
            super().database_backwards(app_label, schema_editor, from_state, to_state)
            return
        table = schema_editor.quote_name(model._meta.db_table)
        column = schema_editor.quote_name(field.column)
        schema_editor.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
