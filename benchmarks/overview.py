"""Benchmark: the billing overview, the billing reports and the listing's totals at 100
invoices and at N (1,000,000; 100,000 with ``--quick``) over 10,000 sites.

Runs last, on data of its own: the other benchmarks' invoices are removed, 10,000 sites
(50 with ``--smoke``) are added (sharing one root page), then 100 invoices are loaded
the set-based way of :mod:`.data` (rows spread over every site), the rollup rebuilt
(``rollup.rebuild()``, as after any bulk load) and every figure measured; then the
rest up to N, rebuilt and measured again. The ratio of each figure at N to the same
figure at 100 invoices, in the same run, is printed beside the target (at most 3x, the
same number of queries).

Pages are requested in-process through Django's test ``Client`` as a superuser (who
reads the all-sites buckets); the panel and the listing totals are also timed alone,
without the rest of the page around them.
"""

from __future__ import annotations

import time
from datetime import datetime
from types import SimpleNamespace

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from wagtail.models import Page, Site

from wagtail_client_billing import rollup
from wagtail_client_billing.billing import overview as billing_overview
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    Invoice,
    InvoiceRollup,
    WebhookEvent,
)

from . import data
from .util import captured, median


def _sites(count: int) -> list[int]:
    """``count`` sites with consecutive ids, all on one root page (hostnames are unique)."""
    root = Page.objects.filter(depth=2).order_by("pk").first() or Page.get_first_root_node()
    start = (Site.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    Site.objects.bulk_create(
        [
            Site(
                pk=start + n,
                hostname=f"overview{n}.bench.example",
                port=80,
                root_page=root,
                site_name=f"Overview client {n}",
            )
            for n in range(count)
        ],
        batch_size=500,
    )
    return list(range(start, start + count))


def _clear_invoices() -> None:
    """Remove every invoice and what points at it (the other benchmarks' data)."""
    with transaction.atomic():
        WebhookEvent.objects.update(invoice=None)
        # The rows that point at invoices, and at those (payments, refunds, notices,
        # lines, disputes: what applying the webhook benchmark's events made).
        for model in _pointing_at(Invoice):
            model.objects.all()._raw_delete(connection.alias)
        ClientBillingLogEntry.objects.all()._raw_delete(connection.alias)
        Invoice.objects.all()._raw_delete(connection.alias)
        InvoiceRollup.objects.all()._raw_delete(connection.alias)


def _pointing_at(model, seen: set | None = None) -> list:
    """The app's models with a foreign key to ``model``, or to one of those, deepest first."""
    seen = set() if seen is None else seen
    found = []
    for relation in model._meta.related_objects:
        other = relation.related_model
        if other in seen or other in (Invoice, WebhookEvent):
            continue
        if other._meta.app_label != Invoice._meta.app_label:
            continue
        seen.add(other)
        found += [*_pointing_at(other, seen), other]
    return found


def _load(start: int, stop: int, t0: datetime, fx: data.Fixtures, *, bulk: bool) -> float:
    """Invoices ``start..stop`` over the overview's sites, then the rollup rebuilt; seconds."""
    started = time.perf_counter()
    saved = data.SITES, data.InvoiceCounter
    # data.insert_invoices spreads rows over data.SITES consecutive sites, and sets each
    # site's invoice counter (two queries a site): not needed here, 20,000 queries saved.
    data.SITES = len(fx.site_ids)
    data.InvoiceCounter = SimpleNamespace(  # type: ignore[assignment]
        objects=SimpleNamespace(update_or_create=lambda **kwargs: None)
    )
    try:
        (data.bulk_insert_invoices if bulk else data.insert_invoices)(start, stop, t0, fx)
    finally:
        data.SITES, data.InvoiceCounter = saved
    rollup.rebuild()
    data.analyze()
    return time.perf_counter() - started


def _targets(client: Client) -> dict[str, object]:
    reports = {
        f"report_{name}": reverse(f"wagtail_client_billing_reports:{name}")
        for name in ("revenue", "time_to_pay", "expiry")
    }
    listing = billing_overview.listing_url()
    user = client.user  # type: ignore[attr-defined]
    paid = Invoice.objects.filter(status="paid")

    def panel() -> None:
        billing_overview.overview(user)

    def totals_all() -> None:
        billing_overview.listing_totals(user, Invoice.objects.all(), {}, searching=False)

    def totals_paid() -> None:
        billing_overview.listing_totals(user, paid, {"status": ["paid"]}, searching=False)

    return {
        "dashboard_page": reverse("wagtailadmin_home"),
        "panel_alone": panel,
        **reports,
        "listing_totals_all": totals_all,
        "listing_totals_paid": totals_paid,
        "listing_paid_page": f"{listing}?status=paid",
    }


def _measure(client: Client, repeats: int) -> dict:
    out = {}
    for name, target in _targets(client).items():

        def call(target=target) -> None:
            if callable(target):
                target()
            else:
                response = client.get(target)
                assert response.status_code == 200, (target, response.status_code)

        call()  # warm up: templates, translations, the session
        times, counts = [], []
        for _ in range(repeats):
            with captured() as ctx:
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
            counts.append(len(ctx.captured_queries))
        out[name] = {"seconds": median(times), "queries": median(counts)}
    return out


def run(
    total: int, small: int, repeats: int, fx: data.Fixtures, t0: datetime, *, sites: int
) -> dict:
    from .listing import client_for_superuser

    client = client_for_superuser()
    client.user = get_user_model().objects.get(username="bench")  # type: ignore[attr-defined]
    _clear_invoices()
    site_ids = _sites(sites)
    ten_k = data.Fixtures(site_ids=site_ids, account_id=fx.account_id, user_id=fx.user_id)
    load_small = _load(1, small, t0, ten_k, bulk=False)
    little = _measure(client, repeats)
    load_large = _load(small + 1, total, t0, ten_k, bulk=True)
    big = _measure(client, repeats)
    figures = {}
    for name, large in big.items():
        base = little[name]
        figures[name] = {
            "small_seconds": base["seconds"],
            "large_seconds": large["seconds"],
            "time_ratio": large["seconds"] / base["seconds"],
            "small_queries": base["queries"],
            "large_queries": large["queries"],
            "queries_equal": base["queries"] == large["queries"],
        }
    return {
        "sites": sites,
        "invoices": total,
        "rollup_rows": InvoiceRollup.objects.count(),
        "load_small_seconds": round(load_small, 2),
        "load_large_seconds": round(load_large, 1),
        "figures": figures,
    }
