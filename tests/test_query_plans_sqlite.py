"""The billing overview's counts and the expiry sweep read their partial indexes on
SQLite too, with no statistics and with the statistics ``ANALYZE`` gathers.

SQLite's planner has no statistics until ``ANALYZE`` runs (most sites never run it), and
uses a partial index only when the query's own terms, with the values Django binds to
them, imply the index's condition. Each query the overview runs on the invoice table is
captured with its parameters, as it ran, and given to ``EXPLAIN QUERY PLAN``. A plan
that scans the table, or searches the status index for every pending invoice, costs
hundreds of milliseconds at a million invoices (``docs/performance.md``).
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.utils import make_account, make_invoice, make_site, make_user
from wagtail_client_billing import lifecycle
from wagtail_client_billing.billing import overview
from wagtail_client_billing.models import Invoice

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "sqlite", reason="SQLite's planner (tests/test_query_plans.py: PG)"
    ),
]

TABLE = Invoice._meta.db_table


def statements_run(action) -> list[tuple[str, object]]:
    """``action()``'s statements as they ran, each with its parameters."""
    ran: list[tuple[str, object]] = []

    def capture(execute, sql, params, many, context):
        ran.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        action()
    return ran


def query_plan(cursor, sql: str, params) -> str:
    """SQLite's ``EXPLAIN QUERY PLAN`` of a statement, its steps joined with " | "."""
    cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
    return " | ".join(row[-1] for row in cursor.fetchall())


#: A column the query filters on -> the index its plan must use.
EXPECTED = {
    "expires_at": "wcb_invoice_pending_expiry",
    "email_status": "wcb_invoice_email_failed",
    "dispute_status": "wcb_invoice_disputed",
    "subscription_status": "wcb_invoice_subscription",
}


def test_the_overviews_invoice_counts_read_their_partial_indexes_without_statistics():
    make_invoice(make_site(), make_account())
    user = make_user("boss", superuser=True)
    ran = statements_run(lambda: overview.overview(user))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        assert cursor.fetchone()[0] == 0  # no statistics, as on most sites
        plans = {}
        for sql, params in ran:
            column = next((c for c in EXPECTED if f'"{TABLE}"."{c}"' in sql), None)
            if column is None or f'FROM "{TABLE}"' not in sql:
                continue
            plans[column] = query_plan(cursor, sql, params)
    assert set(plans) == set(EXPECTED), plans
    for column, index in EXPECTED.items():
        assert f"USING INDEX {index}" in plans[column] or (
            f"USING COVERING INDEX {index}" in plans[column]
        ), (column, plans[column])


@pytest.mark.parametrize("statistics", [False, True], ids=["no-statistics", "analyzed"])
def test_the_sweep_reads_the_due_invoices_through_the_pending_expiry_index(statistics):
    """The sweep's ``UPDATE`` finds the due invoices through ``wcb_invoice_pending_expiry``
    (in expiry order, up to a batch), not by reading every pending invoice through the
    status index and sorting them: 0.15 s a batch at a million invoices."""
    site, account = make_site(), make_account()
    for n in range(30):
        make_invoice(site, account, status="paid" if n % 3 else "pending")
    with connection.cursor() as cursor:
        if statistics:
            cursor.execute("ANALYZE")
        ran = statements_run(lifecycle.expire_due)
        [(sql, params)] = [(q, p) for q, p in ran if q.startswith(f'UPDATE "{TABLE}"')]
        plan = query_plan(cursor, sql, params)
    assert "INDEX wcb_invoice_pending_expiry (status=? AND expires_at<?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort: the index is in expiry order
