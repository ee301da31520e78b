"""The one retry schedule of the tasks that retry: the invoice email, a Stripe event that
failed to apply, and expiring a withdrawn invoice's Checkout Session. Each retry is a
one-off django-q2 schedule ``client_billing_<what>_<pk>_<attempts made>``, due after the
backoff doubled for each attempt already made, until the last attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from tests.utils import make_invoice, use_custom_smtp
from wagtail_client_billing import emails, gateway, lifecycle, signals, tasks
from wagtail_client_billing.models import EmailStatus, Invoice, WebhookEvent
from wagtail_client_billing.testing.webhooks import build_event

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


def retries(prefix: str) -> list[tuple[int, timedelta]]:
    """``(attempts made, delay)`` of each retry scheduled under ``prefix``, in order."""
    now = timezone.now()
    found = [
        (int(s.name.rsplit("_", 1)[1]), s.next_run - now)
        for s in Schedule.objects.filter(name__startswith=prefix)
    ]
    return sorted(found)


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(timezone.now(), tick=False)


def test_retry_delay_doubles_from_the_backoff():
    assert [tasks.retry_delay(MINUTE, attempt) for attempt in (1, 2, 3, 4)] == [
        MINUTE,
        2 * MINUTE,
        4 * MINUTE,
        8 * MINUTE,
    ]


def test_the_invoice_email_is_retried_on_the_doubling_schedule_until_the_last_attempt(
    connected_site, account, settings, frozen
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "EMAIL_MAX_ATTEMPTS": 4,
        "EMAIL_RETRY_BACKOFF": MINUTE,
    }
    use_custom_smtp(connected_site)  # nothing listens there: a transient failure
    invoice = make_invoice(connected_site, account)
    tasks.queue_invoice_email(invoice)

    results = [tasks.send_invoice_email(invoice.pk, attempt) for attempt in range(4)]

    assert results == ["retrying", "retrying", "retrying", "failed"]
    assert retries(f"client_billing_email_{invoice.pk}_") == [
        (1, MINUTE),
        (2, 2 * MINUTE),
        (3, 4 * MINUTE),
    ]
    invoice.refresh_from_db()
    assert invoice.email_status == EmailStatus.FAILED
    assert invoice.email_queued_at == timezone.now() + 4 * MINUTE  # the last retry's time


def test_an_email_retry_is_not_scheduled_when_a_resend_started_over(
    connected_site, account, frozen
):
    invoice = make_invoice(connected_site, account)
    # A worker claimed attempt 1 and could not connect; meanwhile a Resend started over
    # (attempts back to 0) and queued a task of its own.
    tasks.queue_invoice_email(invoice)
    failed = emails.SendResult(
        invoice.pk, emails.DeliveryError(kind="connect", transient=True, message="Cannot connect")
    )

    assert tasks._record_email_result(invoice, 1, failed) == "retrying"

    assert retries(f"client_billing_email_{invoice.pk}_") == []
    invoice.refresh_from_db()
    assert (invoice.email_status, invoice.email_last_error) == (EmailStatus.QUEUED, "")


def test_a_failed_stripe_event_is_retried_on_the_doubling_schedule_until_the_last_attempt(
    settings, frozen
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_MAX_ATTEMPTS": 4,
        "WEBHOOK_RETRY_BACKOFF": MINUTE,
    }
    event = build_event("customer.created", {"id": "cus_1", "object": "customer"})
    record = WebhookEvent.objects.create(
        event_id=event["id"], type=event["type"], payload=event, account=""
    )

    def explode(**kwargs):
        raise RuntimeError("downstream system unavailable")

    signals.stripe_event_applied.connect(explode)
    try:
        results = [tasks.apply_webhook_event(record.pk) for _attempt in range(4)]
    finally:
        signals.stripe_event_applied.disconnect(explode)

    assert results == ["retrying", "retrying", "retrying", "failed"]
    assert retries(f"client_billing_webhook_{record.pk}_") == [
        (1, MINUTE),
        (2, 2 * MINUTE),
        (3, 4 * MINUTE),
    ]


def test_a_session_expiry_is_retried_on_the_doubling_schedule_until_the_last_attempt(
    connected_site, account, frozen
):
    invoice = make_invoice(connected_site, account)
    Invoice.objects.filter(pk=invoice.pk).update(checkout_session_id="cs_test_1")
    lifecycle.delete(invoice, user=None)

    # STRIPE_API_BASE points at a closed port in the test settings: Stripe is unreachable.
    for attempt in range(tasks.EXPIRE_SESSION_MAX_ATTEMPTS):
        with pytest.raises(gateway.StripeUnavailable):
            tasks.expire_checkout_session(invoice.pk, attempt)

    assert tasks.EXPIRE_SESSION_MAX_ATTEMPTS == 5
    assert retries(f"client_billing_expire_session_{invoice.pk}_") == [
        (1, MINUTE),
        (2, 2 * MINUTE),
        (3, 4 * MINUTE),
        (4, 8 * MINUTE),
    ]
    args = Schedule.objects.get(name=f"client_billing_expire_session_{invoice.pk}_4").args
    assert args == repr((invoice.pk, 4, 0))  # no answer came: the same idempotency key
