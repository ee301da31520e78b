"""``Concurrently``: an ``AddIndex`` or ``RemoveIndex`` that PostgreSQL runs ``CONCURRENTLY``.

What ``django.contrib.postgres``' ``AddIndexConcurrently`` and ``RemoveIndexConcurrently``
do, without importing it (it needs psycopg, which a SQLite site need not have); other
databases run the operation as it is. The migration must be ``atomic = False``.

Not a migration (the loader skips modules whose name starts with ``_``).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


class Concurrently(migrations.operations.base.Operation):
    reversible = True

    def __init__(self, operation: migrations.AddIndex | migrations.RemoveIndex) -> None:
        self.operation = operation

    def deconstruct(self) -> tuple[str, list, dict]:
        return (self.__class__.__name__, [self.operation], {})

    def state_forwards(self, app_label: str, state: Any) -> None:
        self.operation.state_forwards(app_label, state)

    def describe(self) -> str:
        return f"{self.operation.describe()} (concurrently on PostgreSQL)"

    def _index(self, app_label: str, state: Any) -> Any:
        op = self.operation
        if isinstance(op, migrations.AddIndex):
            return op.index
        return state.models[app_label, op.model_name_lower].get_index_by_name(op.name)

    def _change(self, adding: bool, app_label: str, schema_editor: Any, state: Any) -> None:
        """Add (or remove) the operation's index as ``state`` has it, concurrently."""
        model = state.apps.get_model(app_label, self.operation.model_name)
        index = self._index(app_label, state)
        if adding:
            schema_editor.add_index(model, index, concurrently=True)
        else:
            schema_editor.remove_index(model, index, concurrently=True)

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any):
        if schema_editor.connection.vendor != "postgresql":
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)
        elif isinstance(self.operation, migrations.AddIndex):
            self._change(True, app_label, schema_editor, to_state)
        else:
            self._change(False, app_label, schema_editor, from_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any):
        if schema_editor.connection.vendor != "postgresql":
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)
        elif isinstance(self.operation, migrations.AddIndex):
            self._change(False, app_label, schema_editor, from_state)
        else:
            self._change(True, app_label, schema_editor, to_state)
