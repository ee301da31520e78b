"""Benchmarks 3 and 6a: webhook ingest through gunicorn, and applying the events in
one and in two ``qcluster`` processes.

The runner starts gunicorn (gthread workers) on loopback with the benchmark settings,
and posts signed ``checkout.session.completed`` events for distinct pending invoices.
The view verifies, keeps and queues each delivery (Redis broker). The baseline posts the
same bodies to a view that verifies nothing and inserts one row. Then the first run's
deliveries are stored as events and applied, half by one ``qcluster``, the rest by two,
timed from queueing until every event is processed; each invoice must be paid once.
The Stripe emulator's request log must stay empty: applying an event needs no API call.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.db.models import Max, Min
from django.urls import reverse
from django.utils import timezone

from wagtail_client_billing import tasks
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    Invoice,
    InvoiceStatus,
    WebhookDelivery,
    WebhookEvent,
    WebhookOutcome,
)
from wagtail_client_billing.testing.webhooks import build_event, random_id, sign_payload
from wagtail_client_billing.webhooks import intake

from . import data, loadgen
from .util import (
    QClusters,
    app_cpu,
    captured,
    database_server_cpu,
    free_port,
    median,
    percentile,
    process_group_cpu,
    redis_broker_error,
    reset_app_cpu,
    start,
    stderr_tail,
    stop,
    wait_until,
)

SECRET = "whsec_test_suite"  # the first test webhook secret of tests/settings.py
PAID_ACTION = "wagtail_client_billing.paid"


class Gunicorn:
    def __init__(self, workers: int, threads: int) -> None:
        self.workers, self.threads = workers, threads
        self.port = free_port()
        self.process = None

    def __enter__(self) -> Gunicorn:
        self.process = start(
            [
                "-m", "gunicorn", "benchmarks.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers),
                "--worker-class", "gthread",
                "--threads", str(self.threads),
                "--keep-alive", "30",
                "--log-level", "warning",
            ]
        )  # fmt: skip
        path = reverse("bench_bare_redirect")

        def ready() -> bool:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", path)
                return conn.getresponse().status == 303
            except OSError:
                return False

        if not wait_until(ready, 60, 0.2):
            stop(self.process)
            raise RuntimeError(f"gunicorn did not start: {stderr_tail(self.process)!r}")
        # Every worker imports Django lazily; a few requests each warm them up.
        loadgen.run(self.port, [loadgen.Request("GET", path)] * (8 * self.workers), 4)
        return self

    def __exit__(self, *exc) -> None:
        stop(self.process)


class InvoicePool:
    """Hands out distinct pending, payable invoices (pks) for events."""

    def __init__(self) -> None:
        self.pks = list(
            Invoice.objects.filter(status=InvoiceStatus.PENDING, expires_at__gt=timezone.now())
            .order_by("pk")
            .values_list("pk", flat=True)[:200_000]
        )
        random.Random(7).shuffle(self.pks)

    def take(self, n: int) -> list[int]:
        if len(self.pks) < n:
            raise RuntimeError("not enough pending invoices left for the webhook benchmark")
        taken, self.pks = self.pks[:n], self.pks[n:]
        return taken


def completed_event(pk: int, amount: int = 5000, currency: str = "usd") -> bytes:
    session = {
        "id": random_id("cs_test_a1", 56),
        "object": "checkout.session",
        "amount_subtotal": amount,
        "amount_total": amount,
        "currency": currency,
        "client_reference_id": str(pk),
        "customer": None,
        "customer_details": {"email": "client@example.com"},
        "expires_at": int(time.time()) + 3600,
        "livemode": False,
        "metadata": {"invoice_id": str(pk), "platform": "wagtail_client_billing"},
        "mode": "payment",
        "payment_intent": random_id("pi_"),
        "payment_status": "paid",
        "status": "complete",
        "subscription": None,
        "url": None,
    }
    event = build_event("checkout.session.completed", session, account=data.ACCOUNT)
    return json.dumps(event).encode()


def signed(path: str, body: bytes) -> loadgen.Request:
    return loadgen.Request("POST", path, body, (("Stripe-Signature", sign_payload(body, SECRET)),))


def _event_ids(bodies: list[bytes]) -> list[str]:
    return [json.loads(body)["id"] for body in bodies]


@dataclass
class Batch:
    """Invoices and the event bodies posted for them; the deliveries the view kept."""

    pks: list[int]
    bodies: list[bytes]
    deliveries: list[int] | None = None


def _last_delivery() -> int:
    return WebhookDelivery.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def posted(batch: Batch, send) -> dict:
    """``send()``'s figures, with the deliveries it made kept on ``batch`` (nothing else
    posts to the app's view meanwhile)."""
    before = _last_delivery()
    stats = send()
    batch.deliveries = list(
        WebhookDelivery.objects.filter(pk__gt=before).order_by("pk").values_list("pk", flat=True)
    )
    return stats


def _check_applied(batch: Batch) -> dict:
    stored = WebhookEvent.objects.filter(event_id__in=_event_ids(batch.bodies))
    return {
        "events_stored": stored.count(),
        "events_processed": stored.filter(outcome=WebhookOutcome.PROCESSED).count(),
        "invoices_paid": Invoice.objects.filter(
            pk__in=batch.pks, status=InvoiceStatus.PAID
        ).count(),
        "status_changes_logged": ClientBillingLogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Invoice),
            object_id__in=[str(pk) for pk in batch.pks],
            action=PAID_ACTION,
        ).count(),
    }


def completed_events(pks: list[int]) -> list[bytes]:
    """A paid Checkout Session's event for each invoice, for its own amount and currency
    (as Stripe sends it), so applying it is the usual path, not the amount-mismatch one."""
    figures = dict(Invoice.objects.filter(pk__in=pks).values_list("pk", "amount").order_by())
    currencies = dict(Invoice.objects.filter(pk__in=pks).values_list("pk", "currency").order_by())
    return [completed_event(pk, figures[pk], currencies[pk].lower()) for pk in pks]


APP_VIEW, BARE_VIEW = "wagtail_client_billing:stripe_webhook", "bench_bare_insert"


def post(server: Gunicorn, view: str, bodies: list[bytes], concurrency: int) -> dict:
    """Sign and post ``bodies`` to ``view`` (:data:`APP_VIEW` or :data:`BARE_VIEW`)."""
    path = reverse(view)
    return loadgen.run(server.port, [signed(path, body) for body in bodies], concurrency)


def ingest(server: Gunicorn, pool: InvoicePool, events: int, concurrency: int):
    pks = pool.take(events)
    batch = Batch(pks, completed_events(pks))
    return posted(batch, lambda: post(server, APP_VIEW, batch.bodies, concurrency)), batch


def baseline(server: Gunicorn, events: int, concurrency: int) -> dict:
    return post(server, BARE_VIEW, [completed_event(0) for _ in range(events)], concurrency)


def duplicates(server: Gunicorn, pool: InvoicePool, distinct: int, copies: int, concurrency: int):
    """Each event ``copies`` times, shuffled, so copies of one event arrive concurrently."""
    pks = pool.take(distinct)
    batch = Batch(pks, completed_events(pks))
    path = reverse(APP_VIEW)
    requests = [signed(path, body) for body in batch.bodies for _ in range(copies)]
    random.Random(11).shuffle(requests)
    return posted(batch, lambda: loadgen.run(server.port, requests, concurrency)), batch


def warm_up(server: Gunicorn, pool: InvoicePool, events: int, concurrency: int) -> None:
    """Both views' first requests, untimed, then a checkpoint.

    A worker thread's first webhook opens its database and Redis connections, prepares
    the insert and imports what the first queued batch needs; the bare view's first
    request opens its connection. Timed, those would count against the first run only.
    The checkpoint writes out what the data build and earlier benchmarks left in the
    write-ahead log, so neither view's runs pay for it. The warm-up's deliveries are
    kept like any other; their tasks are dropped from the queue.
    """
    from django.db import connection
    from django_q.brokers import get_broker

    broker = get_broker()
    ingest(server, pool, events, concurrency)
    baseline(server, events, concurrency)
    wait_until(lambda: queued_events(broker)[1] >= events, 10, 0.05)
    broker.purge_queue()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("CHECKPOINT")
        else:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def queued_events(broker) -> tuple[int, int]:
    """``(tasks, deliveries)`` waiting on the Redis queue: the view queues its deliveries
    in batches."""
    from django_q.signing import SignedPackage

    tasks_ = events = 0
    for body in broker.connection.lrange(broker.list_key, 0, -1):
        task = SignedPackage.loads(body)
        # Only the tasks that store and apply events: a receipt's task (of the event
        # ``queries_per_event`` applied in this process) is not one.
        if task["func"].endswith((".admit_webhook_deliveries", ".apply_webhook_events")):
            tasks_, events = tasks_ + 1, events + len(task["args"][0])
        elif task["func"].endswith(".apply_webhook_event"):
            tasks_, events = tasks_ + 1, events + 1
    return tasks_, events


def apply(delivery_pks: list[int], clusters: int) -> dict:
    """Queue the kept deliveries as the view does and time ``clusters`` qclusters storing
    and applying them, from the first task queued to the last event processed; with the
    clusters' CPU time, split into the task functions' (the app's work) and the rest
    (django-q2's)."""
    kept = WebhookDelivery.objects.filter(pk__in=delivery_pks)
    stored = WebhookEvent.objects.filter(
        event_id__in=_event_ids(kept.values_list("body", flat=True))
    )

    def waiting() -> bool:
        return kept.exists() or stored.filter(outcome=WebhookOutcome.RECEIVED).exists()

    with QClusters(clusters) as running:
        reset_app_cpu()
        cpu_before = running.cpu_seconds()
        started = time.perf_counter()
        for pk in delivery_pks:
            intake.queue_delivery(pk)
        intake.deliveries.flush()
        done = wait_until(lambda: not waiting(), 600, 0.05)
        elapsed = time.perf_counter() - started
        cpu = running.cpu_seconds() - cpu_before
        if not done:
            raise RuntimeError(f"{kept.count()} of {len(delivery_pks)} deliveries not applied")
        spread = running.spread()
        app_seconds, task_count = app_cpu()
    events = len(delivery_pks)
    return {
        "events": events,
        "seconds": elapsed,
        "per_second": events / elapsed,
        "tasks_per_worker": spread,
        "tasks": task_count,
        "cpu_ms_per_event": cpu * 1000 / events,
        "app_cpu_ms_per_event": app_seconds * 1000 / events,
        "queue_cpu_ms_per_event": (cpu - app_seconds) * 1000 / events,
        "queue_over_app": (cpu - app_seconds) / app_seconds if app_seconds else None,
    }


def latency(server: Gunicorn, pool: InvoicePool, events: int, rate: float, workers: int) -> dict:
    """Events posted at ``rate`` a second (open loop) while one ``qcluster`` with
    ``workers`` workers stores and applies them: the time from each event's
    ``received_at`` (its delivery kept) to its ``processed_at`` (applied by a worker),
    p50 and p99."""
    pks = pool.take(events)
    batch = Batch(pks, completed_events(pks))
    path = reverse(APP_VIEW)
    stored = WebhookEvent.objects.filter(event_id__in=_event_ids(batch.bodies))
    with QClusters(1, workers=workers):
        stats = loadgen.run(
            server.port, [signed(path, body) for body in batch.bodies], 8, rate=rate
        )
        done = wait_until(
            lambda: stored.exclude(outcome=WebhookOutcome.RECEIVED).count() == events, 600, 0.05
        )
    if not done:
        raise RuntimeError("the events posted for the latency figure were not all applied")
    delays = [
        (processed - received).total_seconds()
        for received, processed in stored.values_list("received_at", "processed_at")
    ]
    span = stored.aggregate(first=Min("received_at"), last=Max("processed_at"))
    return {
        "events": events,
        "rate_asked": rate,
        "rate_sent": stats["per_second"],
        "statuses": stats["statuses"],
        "applied_per_second": events / (span["last"] - span["first"]).total_seconds(),
        "p50_ms": median(delays) * 1000,
        "p99_ms": percentile(delays, 99) * 1000,
        "workers": workers,
    }


def queries_per_event(pool: InvoicePool) -> dict:
    """Statements of the view (store and queue) and of the worker (apply) for one event,
    the second of two, so per-process caches (content types) are warm as in a server."""
    from django.test import Client
    from django_q.brokers import get_broker

    counts = {}
    for pk in pool.take(2):
        [body] = completed_events([pk])
        request = signed(reverse(APP_VIEW), body)
        with captured() as view:
            response = Client().post(
                request.path,
                data=body,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=dict(request.headers)["Stripe-Signature"],
            )
        assert response.status_code == 200, response.content
        intake.deliveries.flush()
        get_broker().purge_queue()
        with captured() as worker:
            outcome = tasks.admit_webhook_deliveries([_last_delivery()])
        assert outcome == {WebhookOutcome.PROCESSED: 1}, outcome
        counts = {"view": len(view.captured_queries), "worker": len(worker.captured_queries)}
    return counts


#: Where a run's CPU went: gunicorn's workers, the PostgreSQL server's processes (on
#: this machine; None on SQLite, whose work is the workers'), and this process, whose
#: threads are the load generator.
CPU_SIDES = ("web", "database", "load_generator")


def _cpu_now(server: Gunicorn) -> dict[str, float | None]:
    assert server.process is not None
    return {
        "web": process_group_cpu(server.process.pid),
        "database": database_server_cpu(),
        "load_generator": time.process_time(),
    }


def with_cpu(server: Gunicorn, send) -> dict:
    """``send()``'s load-generator figures, with the CPU microseconds each request cost
    on each side (:data:`CPU_SIDES`): on two cores the sides share, and a view that
    costs its workers more also waits longer for a core."""
    before = _cpu_now(server)
    stats = send()
    after = _cpu_now(server)
    spent: dict[str, float | None] = {}
    for side in CPU_SIDES:
        start, end = before[side], after[side]
        spent[side] = None if start is None or end is None else (end - start) * 1e6
    stats["cpu_us_per_request"] = {
        side: None if value is None else value / stats["requests"] for side, value in spent.items()
    }
    return stats


def _summary(runs: list[dict]) -> dict:
    return {
        "per_second": median([r["per_second"] for r in runs]),
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "requests": runs[0]["requests"],
        "runs": len(runs),
        "statuses": runs[-1]["statuses"],
        "cpu_us_per_request": {
            side: None
            if runs[0]["cpu_us_per_request"][side] is None
            else median([r["cpu_us_per_request"][side] for r in runs])
            for side in CPU_SIDES
        },
    }


#: The load of the latency figure, as a share of the intake rate measured in the same run.
LATENCY_LOAD = 0.7


def run(
    emulator,
    *,
    events: int,
    repeats: int,
    concurrency: int,
    workers: int,
    threads: int,
    latency_events: int = 2000,
) -> dict:
    from django_q.brokers import get_broker

    if skipped := redis_broker_error():
        return {"skipped": skipped}
    broker = get_broker()
    broker.purge_queue()
    pool = InvoicePool()
    calls_before = len(emulator.requests)
    result: dict = {"workers": workers, "threads": threads, "concurrency": concurrency}
    result["queries"] = queries_per_event(pool)
    app_runs, base_runs, batches = [], [], []
    with Gunicorn(workers, threads) as server:
        warm_up(server, pool, 25 * workers * threads, concurrency)
        for _ in range(repeats):  # alternate, so drift in machine load hits both alike
            # The bodies are made before each timed run, the same way for both views.
            bare = [completed_event(0) for _ in range(events)]
            base_runs.append(
                with_cpu(server, lambda b=bare: post(server, BARE_VIEW, b, concurrency))
            )
            pks = pool.take(events)
            batch = Batch(pks, completed_events(pks))
            app_runs.append(
                with_cpu(
                    server,
                    lambda b=batch: posted(
                        b, lambda: post(server, APP_VIEW, b.bodies, concurrency)
                    ),
                )
            )
            batches.append(batch)
        dup_stats, dup_batch = duplicates(server, pool, max(10, events // 10), 10, concurrency)
        expected = events * repeats + dup_stats["requests"]
        # Each worker queues what it holds within WEBHOOK_QUEUE_DELAY of its last event.
        wait_until(lambda: queued_events(broker)[1] >= expected, 10, 0.05)
        tasks_queued, events_queued = queued_events(broker)
        broker.purge_queue()  # applied below, by one and then two clusters, timed
        capacity = median([r["per_second"] for r in app_runs])
        result["latency"] = latency(
            server, pool, latency_events, LATENCY_LOAD * capacity, workers=workers
        )

    # Applying is timed on the first run's deliveries (the intake runs are long, so that
    # their ratio is steady; applying them all would take minutes more). The duplicates'
    # copies are stored and applied by two clusters at once, untimed: each event once.
    assert batches[0].deliveries is not None and dup_batch.deliveries is not None
    half = len(batches[0].deliveries) // 2
    one = apply(batches[0].deliveries[:half], 1)
    two = apply(batches[0].deliveries[half:], 2)
    apply(dup_batch.deliveries, 2)

    result["webhook"] = _summary(app_runs)
    result["baseline"] = _summary(base_runs)
    result["ratio"] = result["webhook"]["per_second"] / result["baseline"]["per_second"]
    # Each run against the baseline run just before it: the spread is the noise.
    result["ratio_each"] = [
        round(a["per_second"] / b["per_second"], 3)
        for a, b in zip(app_runs, base_runs, strict=True)
    ]
    result["all_ok"] = all(set(r["statuses"]) == {200} for r in [*app_runs, *base_runs, dup_stats])
    # Every run's deliveries kept by the view; the first run's stored and applied.
    result["all_stored"] = all(len(batch.deliveries or ()) == events for batch in batches)
    first = _check_applied(batches[0])
    result["all_applied"] = (
        first["events_stored"]
        == first["events_processed"]
        == first["invoices_paid"]
        == first["status_changes_logged"]
        == events
    )
    result["applied_events"] = first["events_processed"]
    dup = _check_applied(dup_batch)
    distinct = len(dup_batch.pks)
    result["tasks_queued"] = tasks_queued
    result["events_queued"] = events_queued
    result["tasks_expected"] = expected
    result["duplicates"] = {
        "per_second": dup_stats["per_second"],
        "p50_ms": dup_stats["p50_ms"],
        "p99_ms": dup_stats["p99_ms"],
        "requests": dup_stats["requests"],
        "distinct": distinct,
        "statuses": dup_stats["statuses"],
        **dup,
        "exactly_one_change_each": dup["status_changes_logged"] == distinct
        and dup["events_stored"] == distinct
        and dup["invoices_paid"] == distinct,
    }
    result["apply"] = {
        "one_cluster": one,
        "two_clusters": two,
        "ratio": two["per_second"] / one["per_second"],
    }
    result["stripe_calls"] = len(emulator.requests) - calls_before
    return result
