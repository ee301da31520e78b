"""Benchmarks 3 and 6a: webhook ingest through gunicorn, against a bare insert view.

The runner starts gunicorn (gthread workers) on loopback with the benchmark settings,
and posts signed ``checkout.session.completed`` events for distinct pending invoices.
The baseline posts the same bodies to a view that verifies nothing and inserts one row.
The Stripe emulator's request log must stay empty: applying an event needs no API call.
"""

from __future__ import annotations

import http.client
import json
import random
import time

from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone
from wagtail.models import ModelLogEntry

from wagtail_client_billing.models import Invoice, InvoiceStatus, WebhookEvent, WebhookOutcome
from wagtail_client_billing.testing.webhooks import build_event, random_id, sign_payload

from . import data, loadgen
from .util import free_port, median, start, stop, wait_until

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
            raise RuntimeError(f"gunicorn did not start: {self.process.stderr.read()[-2000:]!r}")
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


def completed_event(pk: int, amount: int = 5000) -> bytes:
    session = {
        "id": random_id("cs_test_a1", 56),
        "object": "checkout.session",
        "amount_total": amount,
        "currency": "usd",
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


def _check_applied(pks: list[int], bodies: list[bytes]) -> dict:
    ids = _event_ids(bodies)
    stored = WebhookEvent.objects.filter(event_id__in=ids)
    return {
        "events_stored": stored.count(),
        "events_processed": stored.filter(outcome=WebhookOutcome.PROCESSED).count(),
        "invoices_paid": Invoice.objects.filter(pk__in=pks, status=InvoiceStatus.PAID).count(),
        "status_changes_logged": ModelLogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Invoice),
            object_id__in=[str(pk) for pk in pks],
            action=PAID_ACTION,
        ).count(),
    }


def ingest(server: Gunicorn, pool: InvoicePool, events: int, concurrency: int) -> dict:
    pks = pool.take(events)
    bodies = [completed_event(pk) for pk in pks]
    path = reverse("wagtail_client_billing:stripe_webhook")
    stats = loadgen.run(server.port, [signed(path, body) for body in bodies], concurrency)
    stats.update(_check_applied(pks, bodies))
    return stats


def baseline(server: Gunicorn, events: int, concurrency: int) -> dict:
    bodies = [completed_event(0) for _ in range(events)]
    path = reverse("bench_bare_insert")
    return loadgen.run(server.port, [signed(path, body) for body in bodies], concurrency)


def duplicates(
    server: Gunicorn, pool: InvoicePool, distinct: int, copies: int, concurrency: int
) -> dict:
    """Each event ``copies`` times, shuffled, so copies of one event arrive concurrently."""
    pks = pool.take(distinct)
    bodies = [completed_event(pk) for pk in pks]
    path = reverse("wagtail_client_billing:stripe_webhook")
    requests = [signed(path, body) for body in bodies for _ in range(copies)]
    random.Random(11).shuffle(requests)
    stats = loadgen.run(server.port, requests, concurrency)
    stats.update(_check_applied(pks, bodies))
    stats.update(distinct=distinct, copies=copies)
    return stats


def _summary(runs: list[dict]) -> dict:
    return {
        "per_second": median([r["per_second"] for r in runs]),
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "requests": runs[0]["requests"],
        "runs": len(runs),
        "statuses": runs[-1]["statuses"],
        **{k: v for k, v in runs[-1].items() if k.startswith(("events_", "invoices_", "status_"))},
    }


def run(
    emulator, *, events: int, repeats: int, concurrency: int, workers: int, threads: int
) -> dict:
    pool = InvoicePool()
    calls_before = len(emulator.requests)
    result: dict = {"workers": workers, "threads": threads, "concurrency": concurrency}
    with Gunicorn(workers, threads) as server:
        app_runs, base_runs = [], []
        for _ in range(repeats):  # alternate, so drift in machine load hits both alike
            base_runs.append(baseline(server, events, concurrency))
            app_runs.append(ingest(server, pool, events, concurrency))
        dup = duplicates(server, pool, max(10, events // 10), 10, concurrency)
    result["webhook"] = _summary(app_runs)
    result["baseline"] = _summary(base_runs)
    result["ratio"] = result["webhook"]["per_second"] / result["baseline"]["per_second"]
    result["all_ok"] = all(set(r["statuses"]) == {200} for r in app_runs + base_runs + [dup])
    result["all_applied"] = all(
        r["events_processed"] == r["requests"] == r["invoices_paid"] == r["status_changes_logged"]
        for r in app_runs
    )
    result["duplicates"] = {
        "per_second": dup["per_second"],
        "p50_ms": dup["p50_ms"],
        "p99_ms": dup["p99_ms"],
        "requests": dup["requests"],
        "distinct": dup["distinct"],
        "statuses": dup["statuses"],
        "events_stored": dup["events_stored"],
        "invoices_paid": dup["invoices_paid"],
        "status_changes_logged": dup["status_changes_logged"],
        "exactly_one_change_each": dup["status_changes_logged"] == dup["distinct"]
        and dup["events_stored"] == dup["distinct"],
    }
    result["stripe_calls"] = len(emulator.requests) - calls_before
    return result


def scale_out(emulator, *, events: int, repeats: int, concurrency: int, threads: int) -> dict:
    """The same load on 1 and on 2 gunicorn worker processes."""
    pool = InvoicePool()
    rates = {}
    for workers in (1, 2):
        with Gunicorn(workers, threads) as server:
            runs = [ingest(server, pool, events, concurrency) for _ in range(repeats)]
        rates[workers] = median([r["per_second"] for r in runs])
    return {
        "one_worker_per_second": rates[1],
        "two_workers_per_second": rates[2],
        "ratio": rates[2] / rates[1],
    }
