"""Run every benchmark on one database and write the figures as JSON.

``python -m benchmarks.run --db sqlite|postgres [--quick|--smoke] --out FILE`` (the
``python -m benchmarks`` entry point runs it once per database, in a fresh process,
because Django's settings are per process).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .util import REPO

# Each run has its own databases and Redis queue (named after its process id), so two
# runs at once do not drop each other's data; the migrated templates are shared.
BASE = "wcb_bench"
RUN_ID = os.environ.setdefault("BENCH_RUN_ID", str(os.getpid()))
SQLITE_PATH = Path(os.environ.get("BENCH_SQLITE_PATH", f"/tmp/{BASE}_{RUN_ID}.sqlite3"))  # noqa: S108
SQLITE_TEMPLATES = Path("/tmp")  # noqa: S108
PG_NAME = f"{BASE}_{RUN_ID}"

FULL = {
    "total": 1_000_000,
    "small": 100,
    # Pairs of a sweep and a loop: one pair's ratio moved between 28x and 38x on SQLite
    # for the same code (the loop's cost an invoice, mostly).
    "sweep_repeats": 5,
    "loop_sample": 1000,
    "listing_repeats": 5,
    "paylink_requests": 300,
    "webhook_events": 3000,  # a run of 2-3 s each: shorter ones gave ratios 0.6 to 1.0
    # Each pair of runs (the bare view's, the app's) gives a ratio 0.54 to 1.26 for the
    # same code on a 2-core machine; the medians of nine move less between full runs
    # than those of five (79 to 92 % for the same code) or three.
    "webhook_repeats": 9,
    "latency_events": 2000,
    "email_messages": 40,  # over the STARTTLS sink, 20 ms a reply
    "email_repeats": 2,
    "email_sites": 100,  # sending at once, 10 messages each
    "email_per_site": 10,
    "qcluster_messages": 1000,
    "overview_sites": 10_000,
}
QUICK = {
    "total": 100_000,
    "small": 100,
    "sweep_repeats": 3,
    "loop_sample": 300,
    "listing_repeats": 3,
    "paylink_requests": 100,
    # 10,000 of the 100,000 invoices are payable, and every event pays one: five pairs
    # of runs, the warm-up, the duplicates and the latency figure must fit in them.
    "webhook_events": 1500,
    "webhook_repeats": 5,
    "latency_events": 1000,
    "email_messages": 20,
    "email_repeats": 2,
    "email_sites": 100,
    "email_per_site": 10,
    "qcluster_messages": 300,
    "overview_sites": 10_000,
}
#: ``--smoke``: every benchmark once, on data small enough for a CI step
#: (``tests/test_benchmarks_smoke.py``). Its figures say nothing about speed; it checks
#: that each benchmark still runs to the end and reports every figure.
SMOKE = {
    "total": 10_000,  # 1,000 of them payable: the webhook and email runs use ~300
    "small": 100,
    "sweep_repeats": 1,
    "loop_sample": 20,
    "listing_repeats": 1,
    "paylink_requests": 10,
    "webhook_events": 40,
    "webhook_repeats": 1,
    "latency_events": 40,
    "email_messages": 3,
    "email_repeats": 1,
    "email_sites": 4,
    "email_per_site": 2,
    "qcluster_messages": 6,
    "overview_sites": 50,
}
# The load generator's connections and gunicorn's workers (one per core). SQLite lets
# one writer in at a time, so more threads per worker only queue on its lock (and its
# busy handler sleeps); PostgreSQL takes concurrent writers, and threads overlap their
# round trips. The baseline runs on the same server as the app, so the ratio is fair.
CONCURRENCY, WORKERS = 8, 2
THREADS = {"sqlite": 1, "postgres": 4}

_started = time.perf_counter()
_checkpoint = None  # writes the results so far, so a crash keeps what was measured


def say(message: str) -> None:
    print(f"[{time.perf_counter() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- the database --------------------------------------------------------------------------


def schema_key() -> str:
    """Changes whenever a migration the benchmark database needs could have changed."""
    import django
    import django_q
    import taggit
    import wagtail

    digest = hashlib.sha256()
    for module in (django, wagtail, django_q, taggit):
        digest.update(f"{module.__name__}={getattr(module, '__version__', '?')};".encode())
    for folder in ("wagtail_client_billing/migrations", "tests/testapp/migrations"):
        for path in sorted((REPO / folder).glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _pg_admin(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def prepare_database(db: str) -> tuple[str, str | None]:
    """A fresh, empty benchmark database; ``(url, template)`` where template is
    the migrated copy to clone, or None when migrations must run."""
    key = schema_key()
    if db == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
        template = SQLITE_TEMPLATES / f"{BASE}_template_{key}.sqlite3"
        if template.exists():
            shutil.copyfile(template, SQLITE_PATH)
            return f"sqlite:///{SQLITE_PATH}", str(template)
        return f"sqlite:///{SQLITE_PATH}", None
    admin_url = os.environ["DATABASE_URL"]
    template = f"{BASE}_template_{key}"
    with _pg_admin(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone()
        if exists:
            conn.execute(f'CREATE DATABASE "{PG_NAME}" TEMPLATE "{template}"')
        else:
            conn.execute(f'CREATE DATABASE "{PG_NAME}"')
    return _with_db(admin_url, PG_NAME), template if exists else None


def save_template(db: str) -> None:
    """Keep the freshly migrated schema, so the next run skips ``migrate``."""
    from django.db import connection

    key = schema_key()
    connection.close()
    if db == "sqlite":
        # Closed before the copy: a copy that opens and closes the file drops every POSIX
        # lock this process holds on it, and a connection still open after that leaves
        # the other processes free to delete the WAL under it.
        with contextlib.closing(sqlite3.connect(SQLITE_PATH)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for old in SQLITE_TEMPLATES.glob(f"{BASE}_template_*.sqlite3"):
            old.unlink()
        shutil.copyfile(SQLITE_PATH, SQLITE_TEMPLATES / f"{BASE}_template_{key}.sqlite3")
        return
    admin_url = os.environ["DATABASE_URL"]
    with _pg_admin(admin_url) as conn:
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{BASE}_template_%"]
        ).fetchall():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{BASE}_template_{key}" TEMPLATE "{PG_NAME}"')


def drop_database(db: str) -> None:
    from django.db import connections

    connections.close_all()
    if db == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
        return
    with _pg_admin(os.environ["DATABASE_URL"]) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')


def drop_templates() -> None:
    """``python -m benchmarks --clean``: remove the cached migrated schemas."""
    for old in SQLITE_TEMPLATES.glob(f"{BASE}_template_*.sqlite3"):
        old.unlink()
    if os.environ.get("DATABASE_URL"):
        with _pg_admin(os.environ["DATABASE_URL"]) as conn:
            for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{BASE}_template_%"]
            ).fetchall():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


# --- the run -------------------------------------------------------------------------------


def guarded(results: dict, name: str, fn, *args, **kwargs):
    say(f"{name} ...")
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    try:
        value = fn(*args, **kwargs)
    except Exception as exc:
        traceback.print_exc()
        value = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    if isinstance(value, dict):
        value.setdefault("wall_seconds", round(time.perf_counter() - started, 1))
        # The machine's 1-minute load average when it started and ended: on 2 cores
        # shared with others, what a figure's CPU-bound half had to share.
        value.setdefault("load_average", [round(load_before, 1), round(os.getloadavg()[0], 1)])
    results[name] = value
    say(f"{name} done in {time.perf_counter() - started:.1f}s")
    if _checkpoint:
        _checkpoint()
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny data: does every benchmark run?")
    parser.add_argument("--out", required=True)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--only", default="", help="sweep,listing,paylink,webhook,email,overview")
    args = parser.parse_args(argv)
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}

    def on(name: str) -> bool:
        return not wanted or name in wanted

    size = SMOKE if args.smoke else QUICK if args.quick else FULL

    from wagtail_client_billing.testing.stripe_emulator import StripeEmulator

    emulator = StripeEmulator(port=0).start()
    os.environ["BENCH_STRIPE_API_BASE"] = emulator.base_url
    url, template = prepare_database(args.db)
    os.environ["BENCH_DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

    import django

    django.setup()
    from django.db import connection

    from . import data, listing, mail, paylink, sweep, webhook
    from . import overview as overview_bench

    results: dict = {"database": args.db, "quick": args.quick, "smoke": args.smoke, "size": size}
    global _checkpoint
    _checkpoint = lambda: Path(args.out).write_text(json.dumps(results, indent=2, default=str))  # noqa: E731
    timings: dict = {}
    started = time.perf_counter()
    if template:
        timings["schema"] = "copied from the migrated template"
    else:
        say("migrate (first run only: the migrated schema is kept as a template) ...")
        data.migrate()
        save_template(args.db)
        timings["migrate_seconds"] = round(time.perf_counter() - started, 1)
    data.create_baseline_table()
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()" if args.db == "postgres" else "SELECT sqlite_version()")
        results["database_version"] = cursor.fetchone()[0]

    fx = data.fixtures()
    t0 = data.t0_now()
    small_listing: dict = {}

    def between() -> None:
        if not on("listing"):
            return
        guarded(
            small_listing,
            "listing_small",
            listing.measure_pages,
            fx.site_ids[0],
            size["listing_repeats"],
        )

    say(f"building {size['total']:,} invoices ...")
    built = data.build(size["total"], size["small"], fx, t0, between)
    timings.update({k: round(v, 1) for k, v in built["timings"].items()})
    results["data"] = timings
    say(f"data: {timings}")

    total = size["total"]
    if on("sweep"):
        guarded(
            results,
            "sweep",
            sweep.run,
            total // 10,
            total // 100,
            size["loop_sample"],
            size["sweep_repeats"],
        )
    if on("listing"):
        large: dict = {}
        guarded(
            large, "listing_large", listing.measure_pages, fx.site_ids[0], size["listing_repeats"]
        )
        results["listing"] = listing.compare(small_listing["listing_small"], large["listing_large"])
        results["listing"].setdefault("wall_seconds", large["listing_large"].get("wall_seconds"))
    if on("paylink"):
        guarded(results, "paylink", paylink.run, emulator, size["paylink_requests"])
    if on("webhook"):
        guarded(
        results, "webhook", webhook.run, emulator,
        events=size["webhook_events"], repeats=size["webhook_repeats"],
        concurrency=CONCURRENCY, workers=WORKERS, threads=THREADS[args.db],
        latency_events=size["latency_events"],
    )  # fmt: skip
    if on("email"):
        guarded(
            results,
            "email",
            mail.run,
            fx.site_ids[0],
            size["email_messages"],
            size["email_repeats"],
            sites=size["email_sites"],
            per_site=size["email_per_site"],
        )
        guarded(
            results, "email_scale_out", mail.scale_out, fx.site_ids[0], size["qcluster_messages"]
        )
    # Which invoice indexes the run's queries used (PostgreSQL's counters; the sweep's
    # figures say which ones each sweep had to update).
    results["invoice_index_scans"] = sweep.index_scans()
    if on("overview"):
        # Last: it replaces the invoices with its own, over 10,000 sites.
        guarded(
            results,
            "overview",
            overview_bench.run,
            total,
            size["small"],
            size["listing_repeats"],
            fx,
            t0,
            sites=size["overview_sites"],
        )
    results["stripe_calls_total"] = len(emulator.requests)
    results["total_seconds"] = round(time.perf_counter() - _started, 1)

    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    emulator.stop()
    if not args.keep:
        drop_database(args.db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
