"""Benchmark 4: the payment link of a pending invoice whose Checkout Session is open."""

from __future__ import annotations

import time
from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from wagtail_client_billing.models import Invoice, InvoiceStatus

from .util import captured, median

SESSION_URL = "https://checkout.stripe.com/c/pay/cs_test_bench_open"


def run(emulator, repeats: int) -> dict:
    invoice = (
        Invoice.objects.filter(status=InvoiceStatus.PENDING, expires_at__gt=timezone.now())
        .order_by("-created_at")
        .first()
    )
    Invoice.objects.filter(pk=invoice.pk).update(
        checkout_session_id="cs_test_bench_open",
        checkout_session_url=SESSION_URL,
        checkout_session_expires_at=timezone.now() + timedelta(hours=12),
    )
    pay = reverse("wagtail_client_billing:pay", kwargs={"token": invoice.token})
    bare = reverse("bench_bare_redirect")
    client = Client()
    stripe_calls_before = len(emulator.requests)

    def series(url: str, location: str) -> tuple[float, int]:
        response = client.get(url)  # warm up
        assert response.status_code == 303 and response["Location"] == location, response
        times, counts = [], []
        for _ in range(repeats):
            with captured() as ctx:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            assert response.status_code == 303
            counts.append(len(ctx.captured_queries))
        return median(times), median(counts)

    pay_seconds, pay_queries = series(pay, SESSION_URL)
    bare_seconds, bare_queries = series(bare, "https://checkout.stripe.com/c/pay/cs_test_bench")
    stripe_calls = len(emulator.requests) - stripe_calls_before
    return {
        "requests": repeats,
        "seconds": pay_seconds,
        "queries": pay_queries,
        "baseline_seconds": bare_seconds,
        "baseline_queries": bare_queries,
        "time_ratio": pay_seconds / bare_seconds,
        "stripe_calls": stripe_calls,
    }
