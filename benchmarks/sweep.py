"""Benchmark 1: the expiry sweep, set-based, against a naive per-invoice loop."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from wagtail_client_billing import lifecycle
from wagtail_client_billing.lifecycle import Source
from wagtail_client_billing.models import ClientBillingLogEntry, Invoice, InvoiceStatus

from . import data
from .util import captured, measure, median

EXPIRED_ACTION = "wagtail_client_billing.expired"


def reset() -> None:
    """Put the invoices a sweep (or the loop) expired back to pending, drop their log entries.

    On PostgreSQL the table is vacuumed too, so every run (the sweep's and the loop's
    alike) starts from the same table: without it each reset leaves as many dead rows
    and index entries behind as it put back, and the GIN indexes' pending lists fill up
    for the next run to flush, so each repeat ran slower than the one before it.
    """
    Invoice.objects.filter(status_source=Source.SWEEP).update(
        status=InvoiceStatus.PENDING, expired_at=None, status_changed_at=None, status_source=""
    )
    ClientBillingLogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Invoice), action=EXPIRED_ACTION
    ).delete()
    data.analyze(vacuum=data.is_postgres())


def cutoff(n: int):
    """A ``now`` at which exactly ``n`` pending invoices are due (their expiries differ)."""
    due = Invoice.objects.filter(status=InvoiceStatus.PENDING, expires_at__lte=timezone.now())
    return due.order_by("expires_at").values_list("expires_at", flat=True)[n - 1]


def run(due_total: int, due_small: int, sample: int, repeats: int) -> dict:
    try:
        from wagtail_client_billing.tasks import expire_due_invoices
    except ImportError:  # the task module is optional for this benchmark
        expire_due_invoices = None

    result: dict = {"due": due_total, "due_small": due_small, "repeats": repeats}
    reset()
    assert Invoice.objects.due_for_expiry().count() == due_total

    # The same function at two sizes: the query count must not grow with N.
    small_times, small_queries = [], []
    for _ in range(repeats):
        now = cutoff(due_small)
        seconds, queries, expired = measure(lambda now=now: lifecycle.expire_due(now=now))
        assert len(expired) == due_small, len(expired)
        small_times.append(seconds)
        small_queries.append(queries)
        reset()

    # The scheduled task at full size (tasks.expire_due_invoices, if it exists), and the
    # naive loop on a sample, extrapolated to due_total: the app's own one-invoice path
    # (compare-and-set UPDATE, log entry, after-commit announcement, one transaction
    # each), with the due invoices read in one query, as anyone would write it. They
    # alternate, a sweep then a loop, so that a drift in the machine's speed during the
    # run (the loop's cost an invoice moved from 1.0 to 2.0 ms between runs of the same
    # code, measured minutes after the sweeps) hits both alike; each pair gives a ratio.
    full_times, full_queries = [], []
    loop_times, loop_queries = [], []
    entry = "tasks.expire_due_invoices" if expire_due_invoices else "lifecycle.expire_due"
    for _ in range(repeats):
        seconds, queries, count = measure(expire_due_invoices or lifecycle.expire_due)
        count = count if isinstance(count, int) else len(count)
        assert count == due_total, count
        assert not Invoice.objects.due_for_expiry().exists()
        assert ClientBillingLogEntry.objects.filter(action=EXPIRED_ACTION).count() == due_total, (
            "one log entry per expired invoice"
        )
        full_times.append(seconds)
        full_queries.append(queries)
        reset()

        now = cutoff(sample)

        def loop(now=now):
            due = list(Invoice.objects.due_for_expiry(now))
            for invoice in due:
                lifecycle.expire(invoice, source=Source.SWEEP)
            return len(due)

        seconds, queries, count = measure(loop)
        assert count == sample, count
        loop_times.append(seconds)
        loop_queries.append(queries)
        reset()

    result["split"] = time_split()

    try:
        result["indexes"] = index_upkeep()
    except Exception as exc:  # a figure for the docs, not worth the sweep's others
        result["indexes_error"] = f"{type(exc).__name__}: {exc}"[:300]
        reset()

    per_invoice = median(loop_times) / sample
    loop_estimate = per_invoice * due_total
    set_based = median(full_times)
    result.update(
        entry=entry,
        seconds=set_based,
        seconds_each=[round(t, 3) for t in full_times],  # the spread shows the noise
        queries=median(full_queries),
        invoices_per_second=due_total / set_based,
        small_seconds=median(small_times),
        small_queries=median(small_queries),
        batch_size=_batch_size(),
        batches=-(-due_total // _batch_size()),
        queries_per_batch=median(full_queries) / -(-due_total // _batch_size()),
        small_queries_per_batch=median(small_queries) / -(-due_small // _batch_size()),
        loop_sample=sample,
        loop_sample_seconds=median(loop_times),
        loop_sample_seconds_each=[round(t, 3) for t in loop_times],
        # Each pair's ratio (its loop extrapolated, over its sweep): the spread is the noise.
        speedup_each=[
            round(looped / sample * due_total / swept, 1)
            for swept, looped in zip(full_times, loop_times, strict=True)
        ],
        loop_queries_per_invoice=median(loop_queries) / sample,
        loop_seconds_extrapolated=loop_estimate,
        speedup=loop_estimate / set_based,
        measured_at=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    return result


def _statement_kind(sql: str) -> str:
    head = sql.lstrip()[:80].upper()
    if head.startswith("UPDATE"):
        return "update"
    if head.startswith("INSERT") and ClientBillingLogEntry._meta.db_table.upper() in head:
        return "log"
    if head.startswith("INSERT") and "ROLLUP" in head:
        return "rollup"
    return "other"


def time_split() -> dict:
    """Where one more sweep's time went (untimed, then reset): seconds in its ``UPDATE``
    statements, its log entries' ``INSERT``, its rollup's ``INSERT``, other statements,
    its commits (on SQLite, writing the batch to the write-ahead log and the checkpoints
    that follow), and the rest (Python, building the results)."""
    from django.db import connection

    spent: dict[str, float] = defaultdict(float)

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent[_statement_kind(sql)] += time.perf_counter() - started

    commit = connection._commit

    def timed_commit():
        started = time.perf_counter()
        try:
            return commit()
        finally:
            spent["commit"] += time.perf_counter() - started

    connection._commit = timed_commit  # the wrapper's own attribute, deleted below
    try:
        with connection.execute_wrapper(timed):
            started = time.perf_counter()
            lifecycle.expire_due()
            total = time.perf_counter() - started
    finally:
        del connection._commit
    reset()
    return {"seconds": total, **spent, "rest": total - sum(spent.values())}


def _batch_size() -> int:
    from wagtail_client_billing.conf import billing_settings

    return int(billing_settings.EXPIRE_BATCH_SIZE)


def invoice_indexes() -> dict[str, str]:
    """The invoice table's indexes: name -> definition (SQL)."""
    from django.db import connection

    table = Invoice._meta.db_table
    with connection.cursor() as cursor:
        if data.is_postgres():
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table]
            )
        else:
            cursor.execute(
                "SELECT name, COALESCE(sql, '') FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = %s",
                [table],
            )
        return dict(cursor.fetchall())


def index_scans() -> dict[str, int]:
    """PostgreSQL: how often each invoice index was used by a query plan since the
    database was made (``pg_stat_user_indexes.idx_scan``); empty on SQLite."""
    from django.db import connection

    if not data.is_postgres():
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE relname = %s",
            [Invoice._meta.db_table],
        )
        return dict(cursor.fetchall())


def _hot_updates() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        with contextlib.suppress(Exception):  # PostgreSQL 15+; older ones flush within 0.5 s
            cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = %s",
            [Invoice._meta.db_table],
        )
        return int(cursor.fetchone()[0])


def index_upkeep() -> list[dict]:
    """Which of the invoice table's indexes one full sweep adds entries to.

    PostgreSQL: a sweep's ``UPDATE`` changes ``status``, which is indexed, so no update
    is HOT (``hot_updates`` shows it) and the new row versions get an entry in every
    index whose predicate they meet: each index is listed with the number of swept rows
    its predicate takes (all of them for a full index). SQLite: an index over (or with a
    predicate on) a column the sweep's ``UPDATE`` sets. Run once more after the timed
    runs, then reset.
    """
    import re

    definitions = invoice_indexes()
    if data.is_postgres():
        from django.db import connection

        hot_before = _hot_updates()
        lifecycle.expire_due()
        hot = _hot_updates() - hot_before
        table = connection.ops.quote_name(Invoice._meta.db_table)
        out = []
        for name in sorted(definitions):
            predicate = (
                definitions[name].split(" WHERE ", 1)[1]
                if " WHERE " in definitions[name]
                else "TRUE"
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE status_source = %s AND ({predicate})",  # noqa: S608
                    [Source.SWEEP],
                )
                rows = int(cursor.fetchone()[0])
            out.append(
                {"name": name, "updated": rows > 0 and not hot, "rows": rows, "hot_updates": hot}
            )
        reset()
        return out
    from django.db import connection

    with captured() as ctx:
        lifecycle.expire_due()
    reset()
    update = next(q["sql"] for q in ctx.captured_queries if q["sql"].startswith("UPDATE"))
    set_clause = update.split(" SET ", 1)[1].split(" WHERE ", 1)[0]
    changed = set(re.findall(r'"(\w+)" = ', set_clause))
    out = []
    for name in sorted(definitions):
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA index_info({connection.ops.quote_name(name)})")
            columns = {row[2] for row in cursor.fetchall()}
        predicate = (
            definitions[name].split(" WHERE ", 1)[1] if " WHERE " in definitions[name] else ""
        )
        # A whole column name: "status" is not in "dispute_status" (SQLite updates a
        # partial index when its condition reads a column the UPDATE sets).
        touched = bool(columns & changed) or any(
            re.search(rf"\b{re.escape(c)}\b", predicate) for c in changed
        )
        out.append({"name": name, "updated": touched, "columns": sorted(c for c in columns if c)})
    return out
