"""The benchmark's data, built set-based: a million invoices in one ``INSERT ... SELECT``.

Rows come from ``generate_series`` on PostgreSQL and a recursive CTE on SQLite, so the
database generates them without a round trip per row. Row ``i`` (1-based) is created
``20 * i`` seconds before ``t0`` (row 1 is the newest) on site ``(i // 10) % SITES``, and its
status follows ``i % 10``:

====== ================================== =====
i % 10 status                             share
====== ================================== =====
3      pending, **due** (expired link)    10 %
5      pending, link open for a day more  10 %
7, 8   expired                            20 %
9      deleted                            10 %
other  paid                               50 %
====== ================================== =====

Every column the generator does not know gets its model default, so a field another
engineer adds to ``Invoice`` does not break the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, models, transaction
from django.utils import timezone
from wagtail.models import Page, Site

from wagtail_client_billing.models import (
    ClientBillingSettings,
    Invoice,
    InvoiceCounter,
    StripeAccount,
)

from .views import HIT_TABLE

SITES = 10
ACCOUNT = "acct_bench_1"
DUE, OPEN = 3, 5  # i % 10 of the due and of the still-payable pending invoices


@dataclass(frozen=True)
class Fixtures:
    site_ids: list[int]
    account_id: int
    user_id: int


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def migrate() -> None:
    call_command("migrate", verbosity=0, interactive=False)


def create_baseline_table() -> None:
    """The raw table the webhook baseline inserts into (no model, no migration)."""
    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {HIT_TABLE} (id bigserial PRIMARY KEY, body text NOT NULL)"
            )
        else:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {HIT_TABLE} "
                "(id integer PRIMARY KEY AUTOINCREMENT, body text NOT NULL)"
            )


def fixtures() -> Fixtures:
    """Ten sites sharing one connected test account, and a superuser (idempotent)."""
    account, _ = StripeAccount.objects.get_or_create(
        stripe_id=ACCOUNT,
        defaults={
            "test_mode": True,
            "country": "US",
            "privacy_policy_url": "https://agency.example/privacy",
            "terms_of_service_url": "https://agency.example/terms",
            "charges_enabled": True,
            "payouts_enabled": True,
            "details_submitted": True,
        },
    )
    root = Page.get_first_root_node()
    site_ids = []
    for n in range(SITES):
        hostname = f"client{n}.bench.example"
        site = Site.objects.filter(hostname=hostname).first()
        if site is None:
            page = root.add_child(instance=Page(title=f"Client {n}", slug=f"client-{n}"))
            site = Site.objects.create(
                hostname=hostname, port=80, root_page=page, site_name=f"Client {n}"
            )
        config, _ = ClientBillingSettings.objects.get_or_create(site=site)
        config.test_account = account
        config.save()
        site_ids.append(site.pk)
    User = get_user_model()
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    return Fixtures(site_ids=site_ids, account_id=account.pk, user_id=user.pk)


def _literal_default(field: models.Field) -> tuple[str, list]:
    if field.null:
        return "NULL", []
    if field.has_default() and not callable(field.default):
        return "%s", [field.get_db_prep_save(field.default, connection)]
    if isinstance(field, models.JSONField):
        return "%s", ["{}"]
    if isinstance(field, models.BooleanField):
        return "%s", [False]
    if isinstance(field, models.CharField | models.TextField):
        return "%s", [""]
    if isinstance(field, models.IntegerField):
        return "%s", [0]
    raise RuntimeError(f"benchmarks.data has no value for Invoice.{field.name}")


def insert_invoices(start: int, stop: int, t0: datetime, fx: Fixtures) -> int:
    """Insert invoices ``start..stop`` (inclusive) in one statement; returns how many."""
    pg = is_postgres()
    stamp = connection.ops.adapt_datetimefield_value(t0.replace(microsecond=0))
    site_ids = sorted(fx.site_ids)
    # The sites are made in one go, so their ids are consecutive.
    assert site_ids == list(range(site_ids[0], site_ids[0] + SITES)), site_ids

    def at(seconds: str) -> str:
        if pg:
            return f"(%s::timestamptz + ({seconds}) * interval '1 second')"
        return f"datetime(%s, printf('%%+d seconds', {seconds}))"

    created = at("-20 * i")
    m = "(i %% 10)"
    exprs: dict[str, tuple[str, list]] = {
        "token": ("'tok' || i", []),
        "site_id": (f"{site_ids[0]} + ((i / 10) %% {SITES})", []),
        "account_id": ("%s", [fx.account_id]),
        "test_mode": ("%s", [True]),
        "sequence": ("i", []),
        "number": ("'INV-' || lpad(i::text, 7, '0')" if pg else "printf('INV-%%07d', i)", []),
        "email": ("'client' || (i %% 50000) || '@example.com'", []),
        "currency": ("CASE i %% 3 WHEN 0 THEN 'USD' WHEN 1 THEN 'EUR' ELSE 'GBP' END", []),
        "amount": ("1000 + (i %% 90000)", []),
        "description": ("'Website work, month ' || (i %% 12)", []),
        "success_url": ("'https://client.example/thanks'", []),
        "cancel_url": ("'https://client.example/cancelled'", []),
        "created_at": (created, [stamp]),
        "status": (
            f"CASE WHEN {m} IN ({DUE}, {OPEN}) THEN 'pending' WHEN {m} IN (7, 8) THEN 'expired' "
            f"WHEN {m} = 9 THEN 'deleted' ELSE 'paid' END",
            [],
        ),
        "expires_at": (
            f"CASE {m} WHEN {DUE} THEN {at('-3600 - i')} WHEN {OPEN} THEN {at('86400 + i')} "
            f"ELSE {at('86400 - 20 * i')} END",
            [stamp, stamp, stamp],
        ),
        "paid_at": (
            f"CASE WHEN {m} IN (0, 1, 2, 4, 6) THEN {at('3600 - 20 * i')} END",
            [stamp],
        ),
        "expired_at": (f"CASE WHEN {m} IN (7, 8) THEN {at('86400 - 20 * i')} END", [stamp]),
        "deleted_at": (f"CASE WHEN {m} = 9 THEN {at('600 - 20 * i')} END", [stamp]),
        "email_status": ("'sent'", []),
        "email_attempts": ("1", []),
    }
    columns, selects, params = [], [], []
    for field in Invoice._meta.concrete_fields:
        if field.primary_key:
            continue
        sql, values = exprs.get(field.attname) or exprs.get(field.name) or _literal_default(field)
        columns.append(connection.ops.quote_name(field.column))
        selects.append(sql)
        params.extend(values)
    table = connection.ops.quote_name(Invoice._meta.db_table)
    cols, sel = ", ".join(columns), ", ".join(selects)
    if pg:
        sql = f"INSERT INTO {table} ({cols}) SELECT {sel} FROM generate_series(%s, %s) AS i"  # noqa: S608
        params += [start, stop]
    else:
        sql = (
            f"INSERT INTO {table} ({cols}) WITH RECURSIVE s(i) AS (SELECT %s UNION ALL "  # noqa: S608
            f"SELECT i + 1 FROM s WHERE i < %s) SELECT {sel} FROM s"
        )
        params = [start, stop, *params]
    with transaction.atomic(), connection.cursor() as cursor:
        if pg:
            # A bulk load: the rows reference rows that exist, so skip the per-row FK triggers.
            cursor.execute("SET LOCAL session_replication_role = replica")
        else:
            cursor.execute("PRAGMA cache_size = -262144")  # 256 MB while loading
        cursor.execute(sql, params)
        count = cursor.rowcount
        for site_id in site_ids:
            InvoiceCounter.objects.update_or_create(
                site_id=site_id, defaults={"last_sequence": stop}
            )
    return count


def _secondary_indexes() -> list[tuple[str, str]]:
    """``(name, DDL)`` of the invoice table's indexes that can be dropped and made again.

    Indexes behind a constraint (primary key, ``unique=True`` columns) stay.
    """
    table = Invoice._meta.db_table
    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
                [table],
            )
        else:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
                "AND sql IS NOT NULL",
                [table],
            )
        return list(cursor.fetchall())


def bulk_insert_invoices(start: int, stop: int, t0: datetime, fx: Fixtures) -> int:
    """:func:`insert_invoices` with the secondary indexes dropped and built again after.

    Building an index once over sorted keys is several times faster than growing it a
    row at a time; the indexes end up exactly as the migration made them.
    """
    indexes = _secondary_indexes()
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for name, _ddl in indexes:
            cursor.execute(f"DROP INDEX {qn(name)}")
    try:
        return insert_invoices(start, stop, t0, fx)
    finally:
        with connection.cursor() as cursor:
            if is_postgres():
                cursor.execute("SET maintenance_work_mem = '256MB'")
            else:
                cursor.execute("PRAGMA cache_size = -262144")
            for _name, ddl in indexes:
                cursor.execute(ddl)


def analyze(vacuum: bool = False) -> None:
    table = connection.ops.quote_name(Invoice._meta.db_table)
    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute(f"VACUUM ANALYZE {table}" if vacuum else f"ANALYZE {table}")
        else:
            cursor.execute("PRAGMA analysis_limit = 2000")
            cursor.execute("ANALYZE")


def build(total: int, small: int, fx: Fixtures, t0: datetime, between=None) -> dict:
    """``small`` invoices, ``between()`` (the small-data measurements), then up to ``total``."""
    import time

    timings = {}
    started = time.perf_counter()
    insert_invoices(1, small, t0, fx)
    analyze()
    timings["small_seconds"] = time.perf_counter() - started
    small_results = between() if between else None
    started = time.perf_counter()
    bulk_insert_invoices(small + 1, total, t0, fx)
    timings["insert_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    if is_postgres():
        # autocommit is needed for VACUUM; Django's connection is in autocommit here.
        analyze(vacuum=True)
    else:
        analyze()
    timings["analyze_seconds"] = time.perf_counter() - started
    return {"timings": timings, "small": small_results}


def t0_now() -> datetime:
    return timezone.now().replace(microsecond=0) - timedelta(seconds=1)
