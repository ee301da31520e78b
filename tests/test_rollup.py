"""The invoice rollup stays equal to a recomputation from the invoices."""

import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from tests.utils import make_account, make_invoice, make_site, make_user
from wagtail_client_billing import lifecycle, rollup
from wagtail_client_billing.billing import invoices as billing
from wagtail_client_billing.lifecycle import Source
from wagtail_client_billing.models import Invoice, InvoiceRollup, InvoiceStatus

S = InvoiceStatus
pytestmark = pytest.mark.django_db


def recomputed() -> dict:
    """Every non-empty bucket, computed in Python from the invoices as they are."""
    tz = ZoneInfo(timezone.get_default_timezone_name())
    buckets: Counter = Counter()
    for inv in Invoice.objects.all():
        created_month = inv.created_at.astimezone(tz).date().replace(day=1)
        if inv.status == S.PAID:
            paid = inv.paid_at or inv.created_at
            month = paid.astimezone(tz).date().replace(day=1)
            seconds = int(paid.timestamp()) - int(inv.created_at.timestamp())
        else:
            month, seconds = created_month, 0
        for site in (inv.site_id, 0):
            key = (site, inv.currency, inv.test_mode, str(inv.status), month)
            buckets[key + ("count",)] += 1
            buckets[key + ("amount",)] += inv.amount
            buckets[key + ("seconds",)] += seconds
            created = (site, inv.currency, inv.test_mode, "_created", created_month)
            buckets[created + ("count",)] += 1
            buckets[created + ("amount",)] += inv.amount
    return {k: v for k, v in buckets.items() if v}


def stored() -> dict:
    out: dict = {}
    for row in InvoiceRollup.objects.all():
        key = (row.site_id, row.currency, row.test_mode, row.status, row.month)
        for name, value in (
            ("count", row.count),
            ("amount", row.amount),
            ("seconds", row.pay_seconds),
        ):
            if value:
                out[key + (name,)] = value
    return out


@override_settings(TIME_ZONE="Pacific/Auckland")
def test_rollup_equals_recomputation_after_mixed_changes():
    editor = make_user("editor", superuser=True)
    account = make_account()
    a, b = make_site("a.example"), make_site("b.example")
    start = datetime(2026, 1, 31, 11, 30, tzinfo=UTC)  # 1 February in Auckland
    with time_machine.travel(start, tick=False):
        made = [
            make_invoice(site, account, currency=currency, amount=1000 * (n + 1))
            for n, (site, currency) in enumerate(
                [(a, "USD"), (a, "EUR"), (b, "USD"), (b, "USD"), (a, "USD"), (b, "EUR")] * 3
            )
        ]
    assert rollup.month_of(made[0].created_at).isoformat() == "2026-02-01"
    with time_machine.travel(start + timedelta(days=1), tick=False):
        lifecycle.mark_paid(made[0], source=Source.WEBHOOK)
        lifecycle.mark_processing(made[1], source=Source.WEBHOOK)
        lifecycle.mark_processing(made[2], source=Source.WEBHOOK)
        lifecycle.payment_failed(made[2], source=Source.WEBHOOK, reason="card declined")
        lifecycle.expire(made[3], source=Source.EDITOR)
        # The admin's bulk delete: soft deletes through the lifecycle.
        assert billing.delete_many(made[4:7], user=editor) == 3
    with time_machine.travel(start + timedelta(days=40), tick=False):
        lifecycle.mark_paid(made[1], source=Source.WEBHOOK)  # processing -> paid, in March
        swept = lifecycle.expire_due(batch_size=2)  # the set-based sweep, in batches
        assert len(swept) >= 5
        lifecycle.mark_paid(made[3], source=Source.WEBHOOK)  # a late payment of an expired one
        Invoice.objects.filter(pk__in=[made[8].pk, made[9].pk]).delete()  # removed rows
        make_invoice(b, account, currency="GBP", amount=777)
    assert stored() == recomputed()
    march = rollup.month_of(made[1].paid_at)
    assert march.isoformat() == "2026-03-01"
    assert stored()[(0, "EUR", made[1].test_mode, "paid", march, "amount")] == made[1].amount
    # The rebuild command recomputes the same figures.
    before = stored()
    call_command("client_billing_rebuild_rollup", stdout=io.StringIO())
    assert stored() == before


def test_paid_bucket_by_payment_month_and_time_to_pay():
    account = make_account()
    site = make_site("c.example")
    created = datetime(2026, 3, 31, 20, 0, tzinfo=UTC)
    with time_machine.travel(created, tick=False):
        invoice = make_invoice(site, account, currency="USD", amount=5000)
    with time_machine.travel(created + timedelta(hours=6), tick=False):
        lifecycle.mark_paid(invoice, source=Source.WEBHOOK)
    row = InvoiceRollup.objects.get(site_id=site.pk, status="paid")
    assert (row.month.isoformat(), row.count, row.amount, row.pay_seconds) == (
        "2026-04-01",
        1,
        5000,
        6 * 3600,
    )
    assert not InvoiceRollup.objects.filter(site_id=site.pk, status="pending", count__gt=0).exists()
    assert InvoiceRollup.objects.get(site_id=0, status="_created").count == 1


def test_the_sweep_and_the_rebuild_put_an_invoice_in_the_month_it_was_made_to_the_microsecond():
    """In UTC, where SQLite takes the month in SQL (``rollup._MonthOf``): an invoice
    made in the last microsecond of January and one made at midnight on 1 February,
    both expired by the sweep, are counted in their own months, and a rebuild agrees."""
    account = make_account()
    site = make_site("edge.example")
    last_of_january = datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
    made = []
    for moment in (last_of_january, last_of_january + timedelta(microseconds=1)):
        with time_machine.travel(moment, tick=False):
            made.append(make_invoice(site, account, currency="USD", amount=100))
    with time_machine.travel(last_of_january + timedelta(days=30), tick=False):
        assert len(lifecycle.expire_due()) == 2
    expired = {
        row.month.isoformat(): row.count
        for row in InvoiceRollup.objects.filter(site_id=site.pk, status="expired")
    }
    assert expired == {"2026-01-01": 1, "2026-02-01": 1}
    assert stored() == recomputed()
    call_command("client_billing_rebuild_rollup", stdout=io.StringIO())
    assert stored() == recomputed()
