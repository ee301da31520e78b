"""The invoice rollup: counts and sums per site, currency, mode, status and month.

The dashboard panel, the billing reports and the listing's per-currency totals read
:class:`~.models.InvoiceRollup` instead of the invoice table, so they make the same
queries, reading about as many rows, at a hundred invoices and at a million. It is kept
current where invoices change:

- :mod:`.lifecycle` calls :func:`moved` for every status change it makes (the one place
  statuses change), and :func:`expired_set` for each batch of the sweep's set-based
  path (one ``INSERT ... SELECT``, whatever the batch's size);
- a ``post_save`` receiver adds a new invoice (:func:`created`), and a ``post_delete``
  receiver takes away one that is removed from the database (a site's deletion, a
  queryset's ``delete()``); ``bulk_create`` and ``QuerySet.update()`` send no signal,
  so code that uses them on invoices runs :func:`rebuild` after
  (``manage.py client_billing_rebuild_rollup``).

Each change is an upsert that adds to the bucket's figures (``count = count + n``), so
concurrent changes never lose one another, and it commits with the change itself. Each
bucket is written for its site and for :data:`ALL_SITES` (every site together), which a
user who may bill for every site reads: a handful of rows whatever the number of sites.
``docs/rollup.md`` has the design.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    CharField,
    Count,
    DateField,
    F,
    Func,
    IntegerField,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, TruncMonth
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from .models import Invoice, InvoiceRollup
from .status import InvoiceStatus

#: The ``site_id`` of the buckets that add up every site.
ALL_SITES = InvoiceRollup.ALL_SITES
#: The pseudo-status of the buckets that count every invoice created, by creation month.
CREATED = "_created"

PAID = str(InvoiceStatus.PAID)

Key = tuple[int, str, bool, str, date]
Figures = list[int]  # count, amount, pay_seconds


def month_of(moment: datetime) -> date:
    """The first day of ``moment``'s month in the project's time zone (``TIME_ZONE``)."""
    local = timezone.localtime(moment, timezone.get_default_timezone())
    return local.date().replace(day=1)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp() // 1)


def _invoice_rows(
    *,
    site_id: int,
    currency: str,
    test_mode: bool,
    status: str,
    amount: int,
    created_at: datetime,
    paid_at: datetime | None,
    sign: int,
) -> list[tuple[Key, Figures]]:
    """One invoice's contribution to its status bucket, for its site and all sites."""
    if status == PAID:
        paid = paid_at or created_at
        month = month_of(paid)
        seconds = _seconds(paid) - _seconds(created_at)
    else:
        month, seconds = month_of(created_at), 0
    figures = [sign, sign * amount, sign * seconds]
    return [
        ((site, currency, bool(test_mode), str(status), month), list(figures))
        for site in (site_id, ALL_SITES)
    ]


def _rows_for(invoice: Invoice, status: str, paid_at: datetime | None, sign: int):
    return _invoice_rows(
        site_id=invoice.site_id,
        currency=invoice.currency,
        test_mode=invoice.test_mode,
        status=status,
        amount=invoice.amount,
        created_at=invoice.created_at,
        paid_at=paid_at,
        sign=sign,
    )


def _created_rows(invoice: Invoice, sign: int) -> list[tuple[Key, Figures]]:
    month = month_of(invoice.created_at)
    return [
        (
            (site, invoice.currency, bool(invoice.test_mode), CREATED, month),
            [sign, sign * invoice.amount, 0],
        )
        for site in (invoice.site_id, ALL_SITES)
    ]


def _table() -> str:
    return connection.ops.quote_name(InvoiceRollup._meta.db_table)


_COLUMNS = ("site_id", "currency", "test_mode", "status", "month", "count", "amount", "pay_seconds")


def _on_conflict() -> str:
    t = _table()
    key = "site_id, currency, test_mode, status, month"
    return (
        f" ON CONFLICT ({key}) DO UPDATE SET count = {t}.count + excluded.count, "
        f"amount = {t}.amount + excluded.amount, "
        f"pay_seconds = {t}.pay_seconds + excluded.pay_seconds"
    )


def add(rows: Iterable[tuple[Key, Figures]]) -> None:
    """Add ``rows``' figures to their buckets, in one upsert per 100 buckets."""
    merged: dict[Key, Figures] = defaultdict(lambda: [0, 0, 0])
    for key, figures in rows:
        for i, value in enumerate(figures):
            merged[key][i] += value
    # A fixed order (site 0 first, then by site, currency, mode, status and month, as
    # :func:`_insert_grouped` writes too), so two transactions lock buckets in the same
    # order and never wait for each other in a cycle.
    items = sorted((k, v) for k, v in merged.items() if any(v))
    for start in range(0, len(items), 100):
        chunk = items[start : start + 100]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
        params: list[Any] = []
        for (site, currency, test_mode, status, month), (n, amount, seconds) in chunk:
            params += [site, currency, test_mode, status, month, n, amount, seconds]
        sql = f"INSERT INTO {_table()} ({', '.join(_COLUMNS)}) VALUES {values}{_on_conflict()}"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


# --- the changes ---------------------------------------------------------------------------


def created(invoice: Invoice) -> None:
    """A new invoice: count it as created and in its status."""
    add([*_created_rows(invoice, 1), *_rows_for(invoice, invoice.status, invoice.paid_at, 1)])


def removed(invoice: Invoice) -> None:
    """An invoice deleted from the database (not an editor's soft delete, a status)."""
    add([*_created_rows(invoice, -1), *_rows_for(invoice, invoice.status, invoice.paid_at, -1)])


def moved(invoice: Invoice, old: str, old_paid_at: datetime | None) -> None:
    """``invoice`` moved from ``old`` to its current status (called by :mod:`.lifecycle`)."""
    add(
        [
            *_rows_for(invoice, old, old_paid_at, -1),
            *_rows_for(invoice, invoice.status, invoice.paid_at, 1),
        ]
    )


def replaced(saved: Invoice, edited: Invoice) -> None:
    """An invoice saved again with other figures (a draft an editor edited: its amount,
    currency, site or mode): ``saved`` as it was, ``edited`` as it is now."""
    add(
        [
            *_created_rows(saved, -1),
            *_rows_for(saved, saved.status, saved.paid_at, -1),
            *_created_rows(edited, 1),
            *_rows_for(edited, edited.status, edited.paid_at, 1),
        ]
    )


def _on_save(sender: Any, instance: Invoice, created: bool, raw: bool = False, **kwargs: Any):
    if created and not raw:
        globals()["created"](instance)


def _on_delete(sender: Any, instance: Invoice, **kwargs: Any) -> None:
    removed(instance)


def connect() -> None:
    """Connect the creation and deletion receivers (from the app's ``ready()``)."""
    post_save.connect(_on_save, sender=Invoice, dispatch_uid="wagtail_client_billing.rollup.save")
    post_delete.connect(
        _on_delete, sender=Invoice, dispatch_uid="wagtail_client_billing.rollup.delete"
    )


# --- set-based: the sweep and the rebuild ----------------------------------------------------


class PaySeconds(Func):
    """Whole seconds from ``created_at`` to ``paid_at`` (or to ``created_at`` when unset),
    each moment cut to its second, as :func:`_invoice_rows` counts them."""

    output_field = IntegerField()

    def _columns(self, compiler: Any) -> tuple[str, str]:
        paid, _ = compiler.compile(F("paid_at").resolve_expression(compiler.query))
        created_sql, _ = compiler.compile(F("created_at").resolve_expression(compiler.query))
        return f"COALESCE({paid}, {created_sql})", created_sql

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        paid, created_sql = self._columns(compiler)
        return (
            f"(CAST(strftime('%%s', {paid}) AS INTEGER) - "
            f"CAST(strftime('%%s', {created_sql}) AS INTEGER))",
            [],
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        paid, created_sql = self._columns(compiler)
        return (
            f"(CAST(EXTRACT(EPOCH FROM date_trunc('second', {paid})) AS bigint) - "
            f"CAST(EXTRACT(EPOCH FROM date_trunc('second', {created_sql})) AS bigint))",
            [],
        )


class _MonthOf(TruncMonth):
    """``TruncMonth`` to a date, which on SQLite takes the month in SQL when it is
    UTC's (or, without ``USE_TZ``, the stored time's).

    Django's SQLite backend truncates with a Python function called for each row,
    a seventh of the expiry sweep's time at 10,000 due invoices (``docs/performance.md``);
    SQLite's own ``date(…, 'start of month')`` gives the same ``YYYY-MM-01``. In any
    other time zone SQLite cannot convert the stored UTC time, and Django's function does.
    """

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        if self.get_tzname() not in (None, "UTC"):
            return self.as_sql(compiler, connection, **extra_context)
        sql, params = compiler.compile(self.lhs)
        return f"date({sql}, 'start of month')", params


def _grouped(
    invoices: QuerySet[Invoice], *, status: str | None, paid: bool, per_site: bool
) -> tuple[str, list]:
    """SQL of ``invoices`` grouped into buckets, columns ``g_site, currency, test_mode,
    g_status, g_month, g_n, g_a, g_s``; ``status`` None groups by the invoices' own."""
    moment = Coalesce("paid_at", "created_at") if paid else F("created_at")
    tz = timezone.get_default_timezone()
    site = F("site_id") if per_site else Value(ALL_SITES, output_field=IntegerField())
    query = (
        invoices.order_by()
        .annotate(
            g_site=site,
            g_status=F("status") if status is None else Value(status, output_field=CharField()),
            g_month=_MonthOf(moment, output_field=DateField(), tzinfo=tz),
        )
        .values("g_site", "currency", "test_mode", "g_status", "g_month")
        .annotate(
            g_n=Count("pk"),
            g_a=Sum("amount"),
            g_s=Sum(PaySeconds()) if paid else Value(0, output_field=IntegerField()),
        )
    )
    sql, params = query.query.sql_with_params()
    return sql, list(params)


def _insert_grouped(
    parts: list[tuple[QuerySet[Invoice], str | None, int, bool]], *, upsert: bool
) -> None:
    """For each ``(invoices, status, sign, paid)``, add ``sign`` × the invoices' figures
    to their buckets (of ``status``, or of each invoice's own when None), per site and
    for all sites: one statement per level, whatever the number of invoices."""
    # Every site's buckets (site_id 0) first, then each site's, each statement's rows in
    # key order: the order in which :func:`add` writes buckets, so two transactions
    # (the sweep and a payment, say) never hold buckets the other waits for.
    for per_site in (False, True):
        selects, params = [], []
        for invoices, status, sign, paid in parts:
            sql, p = _grouped(invoices, status=status, paid=paid, per_site=per_site)
            assert sign in (1, -1)  # written into the SQL
            selects.append(
                f"SELECT g.g_site, g.currency, g.test_mode, g.g_status, g.g_month, "  # noqa: S608
                f"{sign} * g.g_n, {sign} * g.g_a, {sign} * g.g_s FROM ({sql}) g"
            )
            params += p
        body = " UNION ALL ".join(selects)
        sql = (
            f"INSERT INTO {_table()} ({', '.join(_COLUMNS)}) "  # noqa: S608
            f"SELECT * FROM ({body}) u WHERE true"
        )
        if connection.vendor == "postgresql":
            # Byte order, as Python sorts the keys in add() (SQLite has one writer).
            sql += (
                ' ORDER BY u.g_site, u.currency COLLATE "C", u.test_mode, '
                'u.g_status COLLATE "C", u.g_month'
            )
        if upsert:
            sql += _on_conflict()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _ids(pks: list[int]) -> RawSQL:
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", [pks])
    return RawSQL("SELECT value FROM json_each(%s)", [json.dumps(pks)])


def expired_set(pks: list[int]) -> None:
    """The sweep expired the pending invoices ``pks``: one statement, whatever their number.

    The invoices are read once, grouped into their sites' buckets (a ``WITH`` the
    all-sites buckets add up), and each bucket moves from *pending* to *expired*: a
    ``-1`` row and a ``+1`` row per bucket, written all-sites first and in key order
    (:func:`add`'s order, so the sweep and a payment never wait for each other in a
    cycle).
    """
    if not pks:
        return
    invoices = Invoice.objects.filter(pk__in=_ids(pks))
    grouped, params = _grouped(invoices, status=None, paid=False, per_site=True)
    pending, expired = str(InvoiceStatus.PENDING), str(InvoiceStatus.EXPIRED)
    assert pending.isalpha() and expired.isalpha()  # literals in the SQL below
    buckets = (
        f"WITH g AS ({grouped}) "  # noqa: S608
        "SELECT g_site, currency, test_mode, g_month, g_n, g_a FROM g UNION ALL "
        f"SELECT {int(ALL_SITES)}, currency, test_mode, g_month, SUM(g_n), SUM(g_a) FROM g "
        "GROUP BY currency, test_mode, g_month"
    )
    moves = f"SELECT '{pending}' AS st, -1 AS sg UNION ALL SELECT '{expired}', 1"
    order = "b.g_site, b.currency, b.test_mode, m.st, b.g_month"
    if connection.vendor == "postgresql":  # byte order, as Python sorts the keys in add()
        order = 'b.g_site, b.currency COLLATE "C", b.test_mode, m.st COLLATE "C", b.g_month'
    sql = (
        f"INSERT INTO {_table()} ({', '.join(_COLUMNS)}) "  # noqa: S608
        "SELECT b.g_site, b.currency, b.test_mode, m.st, b.g_month, m.sg * b.g_n, "
        f"m.sg * b.g_a, 0 FROM ({buckets}) b CROSS JOIN ({moves}) m WHERE true "
        f"ORDER BY {order}{_on_conflict()}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def rebuild(invoice_model: Any = None, rollup_model: Any = None) -> int:
    """Recompute the whole rollup from the invoices, in one transaction; returns its rows.

    The models may be given (a data migration passes its historical ones).
    """
    invoice_model = invoice_model or Invoice
    rollup_model = rollup_model or InvoiceRollup
    every = invoice_model.objects.all()
    with transaction.atomic():
        rollup_model.objects.all().delete()
        _insert_grouped(
            [
                (every.exclude(status=PAID), None, 1, False),
                (every.filter(status=PAID), PAID, 1, True),
                (every, CREATED, 1, False),
            ],
            upsert=False,
        )
        return int(rollup_model.objects.count())
