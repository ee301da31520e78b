"""A recurring invoice's subscription (issue 18): its state in the listing, the inspect
page, the export and the JSON status; failed renewals; cancellation by an editor, by the
client or in Stripe, and its undoing."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.test import TestCase
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.utils import make_emulated_invoice, make_invoice, make_user
from tests.webhook_helpers import post_event, session_event, stripe_invoice_obj, subscription_obj
from wagtail_client_billing import tasks
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    ClientBillingSettings,
    Invoice,
    RenewalFailure,
)
from wagtail_client_billing.testing.webhooks import random_id

pytestmark = pytest.mark.django_db

EDITOR_PERMS = (
    "wagtail_client_billing.view_invoice",
    "wagtail_client_billing.change_invoice",
)


def actions(invoice) -> list[str]:
    return list(
        ClientBillingLogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Invoice), object_id=str(invoice.pk)
        )
        .order_by("timestamp", "pk")
        .values_list("action", flat=True)
    )


def deliver(emulator) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        emulator.deliver_pending()


@pytest.fixture
def monthly_paid(stripe_emulator, client):
    """A monthly invoice paid through the emulator's Checkout: an active subscription."""
    invoice = make_emulated_invoice(
        stripe_emulator, "monthly.example", billing_type="monthly", email="payer@client.example"
    )
    config = ClientBillingSettings.for_site(invoice.site)
    config.billing_contacts = "boss@agency.example"
    config.save()
    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    stripe_emulator.pay(invoice.checkout_session_id)
    deliver(stripe_emulator)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.subscription_status) == ("paid", "active")
    mail.outbox = []
    return invoice


def editor_client(client, *extra_perms):
    client.force_login(make_user("editor", perms=EDITOR_PERMS + extra_perms))
    return client


def inspect_url(invoice) -> str:
    return reverse("wagtail_client_billing_invoices:inspect", args=[invoice.pk])


def subscription_url(invoice) -> str:
    return reverse("wagtail_client_billing_invoices:subscription", args=[invoice.pk])


def listing(client, **params) -> str:
    url = reverse("wagtail_client_billing_invoices:list")
    return client.get(f"{url}?{urlencode(params, doseq=True)}").content.decode()


# --- state shown --------------------------------------------------------------------------------


def test_an_active_subscription_shows_its_period_end_and_next_renewal(monthly_paid):
    invoice = monthly_paid
    assert invoice.subscription_current_period_end is not None
    assert invoice.next_renewal_at == invoice.subscription_current_period_end
    assert invoice.subscription_state_label == "Active"


def test_renewal_moves_the_period_end(stripe_emulator, monthly_paid):
    before = monthly_paid.subscription_current_period_end
    stripe_emulator.renew_subscription(monthly_paid.subscription_id)
    deliver(stripe_emulator)
    monthly_paid.refresh_from_db()
    assert monthly_paid.subscription_current_period_end > before


def test_the_json_status_carries_the_subscription_without_ids(client, monthly_paid):
    url = reverse("wagtail_client_billing:invoice_status", args=[monthly_paid.token])
    body = client.get(url).json()
    assert body["subscription"]["status"] == "active"
    assert body["subscription"]["next_renewal_at"] == (
        monthly_paid.subscription_current_period_end.isoformat()
    )
    assert monthly_paid.subscription_id not in str(body)


# --- failed renewals ----------------------------------------------------------------------------


def test_a_failed_renewal_sets_past_due_and_emails_client_and_contacts(
    stripe_emulator, monthly_paid
):
    stripe_invoice = stripe_emulator.fail_renewal(monthly_paid.subscription_id)
    deliver(stripe_emulator)

    invoice = Invoice.objects.get(pk=monthly_paid.pk)
    assert invoice.status == "paid"
    assert (invoice.subscription_status, invoice.renewal_failures) == ("past_due", 1)
    assert actions(invoice).count("wagtail_client_billing.renewal_failed") == 1
    by_recipient = {tuple(m.to): m for m in mail.outbox}
    assert set(by_recipient) == {("payer@client.example",), ("boss@agency.example",)}
    client_mail = by_recipient[("payer@client.example",)]
    assert stripe_invoice["hosted_invoice_url"] in client_mail.body
    assert "past due" in by_recipient[("boss@agency.example",)].body


def test_a_second_attempt_counts_once_however_often_delivered(stripe_emulator, monthly_paid):
    stripe_emulator.duplicate_deliveries = 3
    stripe_emulator.shuffle_deliveries = True
    stripe_emulator.fail_renewal(monthly_paid.subscription_id)
    stripe_emulator.fail_renewal(monthly_paid.subscription_id)
    deliver(stripe_emulator)

    invoice = Invoice.objects.get(pk=monthly_paid.pk)
    assert invoice.renewal_failures == 2
    assert list(RenewalFailure.objects.values_list("attempt_count", flat=True).order_by("pk")) in (
        [1, 2],
        [2, 1],
    )
    assert actions(invoice).count("wagtail_client_billing.renewal_failed") == 2
    assert len([m for m in mail.outbox if m.to == ["payer@client.example"]]) == 2


def test_a_payment_after_the_failure_makes_it_active_again(stripe_emulator, monthly_paid):
    stripe_emulator.fail_renewal(monthly_paid.subscription_id)
    deliver(stripe_emulator)
    stripe_emulator.advance_clock(5)
    stripe_emulator.pay_failed_renewal(monthly_paid.subscription_id)
    deliver(stripe_emulator)

    monthly_paid.refresh_from_db()
    assert monthly_paid.subscription_status == "active"
    assert (monthly_paid.renewals_paid, monthly_paid.renewal_failures) == (1, 1)


def test_a_lost_failure_notice_is_sent_by_the_sweep(monthly_paid):
    failure = RenewalFailure.objects.create(
        invoice=monthly_paid,
        stripe_invoice_id="in_lost_task",
        attempt_count=1,
        amount=monthly_paid.amount,
        currency="USD",
        hosted_invoice_url="https://invoice.stripe.example/i/in_lost_task",
        failed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.resume_renewal_failure_notices() == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["boss@agency.example", "payer@client.example"]
    assert tasks.resume_renewal_failure_notices() == 0
    assert tasks.send_renewal_failure_notices(failure.pk, 1) == "already handled"


SHUFFLE_SETTINGS = hypothesis_settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SHUFFLE_SETTINGS
@given(data=st.data())
def test_failure_cancellation_and_undo_events_in_any_order_end_in_one_state(
    client, connected_site, account, data
):
    invoice = make_invoice(connected_site, account, billing_type="monthly", status="paid")
    sub_id = random_id("sub_")
    Invoice.objects.filter(pk=invoice.pk).update(subscription_id=sub_id)
    t0 = 1_780_000_000
    period_end = {"items": {"data": [{"current_period_end": t0 + 30 * 86400}]}}
    failed = stripe_invoice_obj(invoice, sub_id, "subscription_cycle", random_id("in_"))
    failed.update(status="open", attempt_count=1, hosted_invoice_url="https://pay.example/x")
    events = [
        session_event("invoice.payment_failed", invoice, failed, created=t0),
        session_event(
            "customer.subscription.updated",
            invoice,
            subscription_obj(invoice, sub_id, "past_due", **period_end),
            created=t0,
        ),
        session_event(
            "customer.subscription.updated",
            invoice,
            subscription_obj(invoice, sub_id, "past_due", cancel_at_period_end=True, **period_end),
            created=t0 + 10,
        ),
        session_event(
            "customer.subscription.updated",
            invoice,
            subscription_obj(invoice, sub_id, "past_due", cancel_at_period_end=False, **period_end),
            created=t0 + 20,
        ),
    ]
    order = data.draw(st.permutations(range(len(events))))
    duplicates = data.draw(st.lists(st.sampled_from(range(len(events))), max_size=3))
    for index in [*order, *duplicates]:
        assert post_event(client, events[index]).status_code == 200

    invoice.refresh_from_db()
    assert invoice.subscription_status == "past_due"
    assert invoice.subscription_cancel_at_period_end is False
    assert invoice.renewal_failures == 1
    assert invoice.next_renewal_at == datetime.fromtimestamp(t0 + 30 * 86400, tz=UTC)


# --- cancellation -----------------------------------------------------------------------------------


def test_editor_without_the_permission_gets_no_button_and_a_403(client, monthly_paid):
    editor_client(client)

    page = client.get(inspect_url(monthly_paid)).content.decode()
    assert subscription_url(monthly_paid) not in page
    assert client.get(subscription_url(monthly_paid)).status_code == 403
    assert client.post(subscription_url(monthly_paid), {"action": "cancel_now"}).status_code == 403
    monthly_paid.refresh_from_db()
    assert monthly_paid.subscription_status == "active"


def test_editor_cancels_at_period_end_and_undoes_it(client, stripe_emulator, monthly_paid):
    editor_client(client, "wagtail_client_billing.cancel_subscription")
    assert subscription_url(monthly_paid) in client.get(inspect_url(monthly_paid)).content.decode()

    response = client.post(subscription_url(monthly_paid), {"action": "cancel_at_period_end"})
    assert response.status_code == 302
    deliver(stripe_emulator)
    invoice = Invoice.objects.get(pk=monthly_paid.pk)
    assert invoice.subscription_cancel_at_period_end
    assert invoice.next_renewal_at is None
    assert stripe_emulator.state.subscriptions[invoice.subscription_id]["cancel_at_period_end"]
    assert "ends " in listing(client)

    client.post(subscription_url(monthly_paid), {"action": "undo"})
    deliver(stripe_emulator)
    invoice.refresh_from_db()
    assert not invoice.subscription_cancel_at_period_end
    assert invoice.next_renewal_at == invoice.subscription_current_period_end
    assert actions(invoice)[-2:] == [
        "wagtail_client_billing.cancellation_scheduled",
        "wagtail_client_billing.cancellation_undone",
    ]
    entry = ClientBillingLogEntry.objects.filter(
        action="wagtail_client_billing.cancellation_undone"
    ).get()
    assert entry.user.username == "editor"


def test_editor_cancels_now_once_whatever_the_clicks(client, stripe_emulator, monthly_paid):
    editor_client(client, "wagtail_client_billing.cancel_subscription")

    client.post(subscription_url(monthly_paid), {"action": "cancel_now"})
    second = client.post(subscription_url(monthly_paid), {"action": "cancel_now"}, follow=True)
    deliver(stripe_emulator)

    invoice = Invoice.objects.get(pk=monthly_paid.pk)
    assert (invoice.status, invoice.subscription_status) == ("paid", "canceled")
    assert invoice.subscription_canceled_at is not None
    cancels = [r for r in stripe_emulator.requests if r.method == "DELETE"]
    assert len(cancels) == 1
    assert "ended already" in second.content.decode()
    assert actions(invoice).count("wagtail_client_billing.subscription_cancelled") == 1
    assert subscription_url(invoice) not in client.get(inspect_url(invoice)).content.decode()


def test_a_cancellation_by_the_client_in_stripe_shows_the_same_way(
    client, stripe_emulator, monthly_paid
):
    stripe_emulator.schedule_cancellation(monthly_paid.subscription_id)
    deliver(stripe_emulator)
    monthly_paid.refresh_from_db()
    assert monthly_paid.subscription_cancel_at_period_end
    assert "wagtail_client_billing.cancellation_scheduled" in actions(monthly_paid)

    stripe_emulator.end_period(monthly_paid.subscription_id)
    deliver(stripe_emulator)
    monthly_paid.refresh_from_db()
    assert monthly_paid.subscription_status == "canceled"
    assert actions(monthly_paid).count("wagtail_client_billing.subscription_cancelled") == 1
    editor_client(client)
    page = client.get(inspect_url(monthly_paid)).content.decode()
    assert "Cancelled" in page and "None: cancelled on" in page


def test_a_stripe_error_is_a_message_and_changes_nothing(client, stripe_emulator, monthly_paid):
    editor_client(client, "wagtail_client_billing.cancel_subscription")
    stripe_emulator.inject_fault("500", count=5, path_prefix="/v1/subscriptions")

    response = client.post(subscription_url(monthly_paid), {"action": "cancel_now"}, follow=True)

    assert "Stripe did not change the subscription" in response.content.decode()
    monthly_paid.refresh_from_db()
    assert monthly_paid.subscription_status == "active"


# --- the listing and the export ---------------------------------------------------------------------


def test_listing_shows_and_filters_the_subscription_state(client, connected_site, account):
    client.force_login(make_user("admin", superuser=True))
    active = make_invoice(
        connected_site, account, billing_type="monthly", status="paid", email="a@client.example"
    )
    past_due = make_invoice(
        connected_site, account, billing_type="monthly", status="paid", email="p@client.example"
    )
    Invoice.objects.filter(pk=active.pk).update(
        subscription_id="sub_a", subscription_status="active"
    )
    Invoice.objects.filter(pk=past_due.pk).update(
        subscription_id="sub_p", subscription_status="past_due"
    )

    page = listing(client)
    assert "wcb-subscription--active" in page and "wcb-subscription--past_due" in page
    filtered = listing(client, subscription_status=["past_due"])
    assert past_due.email in filtered and active.email not in filtered

    response = client.get(reverse("wagtail_client_billing_invoices:list") + "?export=csv")
    export = b"".join(response.streaming_content).decode()
    header = export.splitlines()[0]
    assert "Subscription" in header and "Next renewal" in header and "Dispute" in header
    assert "Past due" in export


def test_the_subscription_signal_and_hook_tell_of_each_change(stripe_emulator, monthly_paid):
    from wagtail import hooks as wagtail_hooks

    from wagtail_client_billing import hooks
    from wagtail_client_billing.signals import subscription_changed

    seen = []

    def receiver(sender, invoice, what, **kwargs):
        seen.append(what)

    subscription_changed.connect(receiver)
    try:
        with wagtail_hooks.register_temporarily(
            hooks.SUBSCRIPTION_CHANGED, lambda invoice, what: seen.append(f"hook:{what}")
        ):
            stripe_emulator.fail_renewal(monthly_paid.subscription_id)
            deliver(stripe_emulator)
            stripe_emulator.schedule_cancellation(monthly_paid.subscription_id)
            deliver(stripe_emulator)
            stripe_emulator.undo_cancellation(monthly_paid.subscription_id)
            deliver(stripe_emulator)
            stripe_emulator.cancel_subscription(monthly_paid.subscription_id)
            deliver(stripe_emulator)
    finally:
        subscription_changed.disconnect(receiver)

    assert [w for w in seen if not w.startswith("hook:")] == [
        "renewal_failed",
        "cancellation_scheduled",
        "cancellation_undone",
        "cancelled",
    ]
    assert len([w for w in seen if w.startswith("hook:")]) == 4


def test_a_failed_first_payment_or_an_unknown_subscription_is_stored_and_ignored(
    client, connected_site, account
):
    from wagtail_client_billing.models import WebhookEvent, WebhookOutcome

    invoice = make_invoice(connected_site, account, billing_type="monthly", status="paid")
    Invoice.objects.filter(pk=invoice.pk).update(subscription_id="sub_known")
    first = stripe_invoice_obj(invoice, "sub_known", "subscription_create")
    first.update(status="open", attempt_count=1)
    unknown = stripe_invoice_obj(invoice, "sub_unknown", "subscription_cycle")
    unknown["parent"]["subscription_details"]["metadata"] = {}
    events = [
        session_event("invoice.payment_failed", invoice, first),
        session_event("invoice.payment_failed", invoice, unknown),
    ]

    for event in events:
        assert post_event(client, event).status_code == 200

    outcomes = [WebhookEvent.objects.get(event_id=e["id"]).outcome for e in events]
    assert outcomes == [WebhookOutcome.IGNORED, WebhookOutcome.IGNORED]
    invoice.refresh_from_db()
    assert (invoice.renewal_failures, invoice.subscription_status) == (0, "")
    assert mail.outbox == []
