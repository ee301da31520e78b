"""The payment link against the Stripe emulator: Checkout, return, webhooks, reconciliation."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from urllib.parse import urlsplit

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.utils import timezone

from tests.utils import connect, make_account, make_invoice, make_site
from wagtail_client_billing import gateway
from wagtail_client_billing.billing import checkout
from wagtail_client_billing.models import ClientBillingLogEntry, Invoice

pytestmark = pytest.mark.django_db


@pytest.fixture
def emulated_invoice(stripe_emulator):
    """Invoices on a connected account that exists, onboarded, in the emulator."""
    made: list[int] = []

    def build(**kwargs):
        made.append(1)
        state = gateway.create_account(
            test_mode=True,
            country="US",
            privacy_policy_url="https://agency.example/privacy",
            terms_of_service_url="https://agency.example/terms",
            site_url="https://client-a.example/",
            idempotency_key=f"wcb-test-payments-{len(made)}",
        )
        stripe_emulator.complete_onboarding(state.id)
        account = make_account(state.id)
        site = make_site(f"client-{len(made)}.example")
        connect(site, account)
        return make_invoice(site, account, **kwargs)

    return build


def session_creates(emulator):
    return [r for r in emulator.requests if (r.method, r.path) == ("POST", "/v1/checkout/sessions")]


def stripe_api_calls(emulator):
    return [r for r in emulator.requests if r.path.startswith("/v1/")]


def click(client, invoice):
    """The client clicks the emailed link; returns the response and the fresh invoice."""
    response = client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    return response, invoice


def actions(invoice):
    return list(
        ClientBillingLogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Invoice), object_id=str(invoice.pk)
        )
        .order_by("timestamp", "pk")
        .values_list("action", flat=True)
    )


def return_path(invoice, session_id):
    return urlsplit(invoice.public_url("return")).path + f"?session_id={session_id}"


# --- the happy paths -------------------------------------------------------------------------


def test_paying_through_the_link_then_the_webhook_marks_it_paid(
    client, stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice()
    stripe_emulator.deliver_pending()  # onboarding's account.updated

    response, invoice = click(client, invoice)

    assert response.status_code == 303
    assert response["Location"] == invoice.checkout_session_url
    session = stripe_emulator.get_session(invoice.checkout_session_id)
    assert session["status"] == "open"
    assert session["success_url"] == (
        "http://client-1.example/billing/return/"
        + invoice.token
        + "/?session_id={CHECKOUT_SESSION_ID}"
    )
    assert session["cancel_url"] == f"http://client-1.example/billing/cancel/{invoice.token}/"
    assert "wagtail_client_billing.checkout_opened" in actions(invoice)

    stripe_emulator.pay(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()

    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert invoice.payment_intent_id.startswith("pi_")
    assert all(d.ok for d in stripe_emulator.deliveries)


def test_return_from_checkout_marks_it_paid_without_webhooks(
    client, stripe_emulator, emulated_invoice
):
    stripe_emulator.webhooks_enabled = False
    invoice = emulated_invoice()
    _, invoice = click(client, invoice)
    stripe_emulator.pay(invoice.checkout_session_id)

    response = client.get(return_path(invoice, invoice.checkout_session_id))

    assert response.status_code == 303
    assert response["Location"] == invoice.success_url
    invoice.refresh_from_db()
    assert (invoice.status, invoice.status_source) == ("paid", "return")


def test_return_when_stripe_fails_still_redirects_and_marks_nothing(
    client, stripe_emulator, emulated_invoice
):
    stripe_emulator.webhooks_enabled = False
    invoice = emulated_invoice()
    _, invoice = click(client, invoice)
    stripe_emulator.pay(invoice.checkout_session_id)
    stripe_emulator.inject_fault("500", count=3)

    response = client.get(return_path(invoice, invoice.checkout_session_id))

    assert response.status_code == 303
    assert response["Location"] == invoice.success_url
    invoice.refresh_from_db()
    assert invoice.status == "pending"


def test_return_with_another_invoices_session_marks_nothing(
    client, stripe_emulator, emulated_invoice
):
    stripe_emulator.webhooks_enabled = False
    mine = emulated_invoice()
    other = make_invoice(mine.site, mine.account)
    _, other = click(client, other)
    stripe_emulator.pay(other.checkout_session_id)

    response = client.get(return_path(mine, other.checkout_session_id))

    assert response.status_code == 303
    mine.refresh_from_db()
    assert mine.status == "pending"


def test_return_for_a_paid_invoice_asks_stripe_nothing(client, stripe_emulator, emulated_invoice):
    invoice = emulated_invoice()
    _, invoice = click(client, invoice)
    stripe_emulator.pay(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()
    calls = len(stripe_api_calls(stripe_emulator))

    client.get(return_path(invoice, invoice.checkout_session_id))

    assert len(stripe_api_calls(stripe_emulator)) == calls


def test_delayed_bank_payment_is_processing_then_paid(client, stripe_emulator, emulated_invoice):
    invoice = emulated_invoice()
    _, invoice = click(client, invoice)

    stripe_emulator.pay_delayed(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert invoice.status == "processing"
    response, _ = click(client, invoice)
    assert b"being processed" in response.content

    stripe_emulator.settle(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_delayed_bank_payment_that_fails_is_payable_again(
    client, stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice()
    _, invoice = click(client, invoice)
    first_session = invoice.checkout_session_id
    stripe_emulator.pay_delayed(first_session)
    stripe_emulator.deliver_pending()

    stripe_emulator.fail_payment(first_session)
    stripe_emulator.deliver_pending()

    invoice.refresh_from_db()
    assert invoice.status == "pending"
    assert invoice.payment_failure
    response, invoice = click(client, invoice)
    assert response.status_code == 303
    assert invoice.checkout_session_id != first_session


# --- sessions: reuse, expiry, Stripe's limits ---------------------------------------------------


def test_second_click_reuses_the_open_session_without_asking_stripe(
    client, stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice()
    first, invoice = click(client, invoice)
    calls = len(stripe_api_calls(stripe_emulator))

    second, invoice = click(client, invoice)

    assert second["Location"] == first["Location"]
    assert len(stripe_api_calls(stripe_emulator)) == calls
    assert len(session_creates(stripe_emulator)) == 1


def test_session_about_to_run_out_is_replaced(client, stripe_emulator, emulated_invoice):
    invoice = emulated_invoice(expires_at=timezone.now() + timedelta(days=3))
    _, invoice = click(client, invoice)
    first = invoice.checkout_session_id

    with time_machine.travel(invoice.checkout_session_expires_at - timedelta(minutes=4)):
        response, invoice = click(client, invoice)

    assert invoice.checkout_session_id != first
    assert invoice.checkout_attempt == 2
    assert len(session_creates(stripe_emulator)) == 2
    assert response["Location"] == invoice.checkout_session_url


def test_expired_session_then_a_click_makes_a_new_one(client, stripe_emulator, emulated_invoice):
    invoice = emulated_invoice()
    _, invoice = click(client, invoice)
    first = invoice.checkout_session_id

    stripe_emulator.expire_session(first)
    stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert invoice.checkout_session_id == ""
    assert invoice.status == "pending"

    response, invoice = click(client, invoice)

    assert response.status_code == 303
    assert invoice.checkout_session_id not in ("", first)
    assert stripe_emulator.get_session(invoice.checkout_session_id)["status"] == "open"
    assert actions(invoice).count("wagtail_client_billing.checkout_opened") == 2


def test_session_never_outlives_the_invoice(client, stripe_emulator, emulated_invoice):
    invoice = emulated_invoice(expires_at=timezone.now() + timedelta(hours=3))
    _, invoice = click(client, invoice)
    assert invoice.checkout_session_expires_at <= invoice.expires_at


def test_invoice_payable_for_days_gets_stripes_longest_session(
    client, stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice(expires_at=timezone.now() + timedelta(days=5))

    _, invoice = click(client, invoice)

    lifetime = invoice.checkout_session_expires_at - timezone.now()
    assert timedelta(hours=23, minutes=45) <= lifetime <= timedelta(hours=24)


def test_invoice_with_minutes_left_gets_stripes_minimum_session(
    client, stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice(expires_at=timezone.now() + timedelta(minutes=10))

    response, invoice = click(client, invoice)

    assert response.status_code == 303
    lifetime = invoice.checkout_session_expires_at - timezone.now()
    assert timedelta(minutes=30) <= lifetime <= timedelta(minutes=35)
    with time_machine.travel(invoice.expires_at + timedelta(seconds=1)):
        response, _ = click(client, invoice)
    assert response.status_code == 410  # the invoice's own expiry still decides


def test_stripe_unavailable_shows_try_again_with_retry_after(
    client, stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice()
    stripe_emulator.inject_fault("500", count=1, path_prefix="/v1/checkout/sessions")

    response, invoice = click(client, invoice)

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert b"try again" in response.content
    assert invoice.checkout_session_id == ""
    assert b"client@example.com" not in response.content

    response, invoice = click(client, invoice)  # a moment later Stripe is back
    assert response.status_code == 303


# --- subscriptions, duplicates and shuffles ------------------------------------------------------


def test_subscription_checkout_with_renewals_and_cancellation(
    client, stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice(billing_type="monthly")
    _, invoice = click(client, invoice)
    assert stripe_emulator.get_session(invoice.checkout_session_id)["mode"] == "subscription"

    stripe_emulator.pay(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert invoice.subscription_id.startswith("sub_")
    assert (invoice.renewals_paid, invoice.subscription_status) == (0, "active")

    stripe_emulator.renew_subscription(invoice.subscription_id)
    stripe_emulator.renew_subscription(invoice.subscription_id)
    stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert invoice.renewals_paid == 2
    assert invoice.last_renewal_paid_at is not None
    assert actions(invoice).count("wagtail_client_billing.renewal_paid") == 2

    stripe_emulator.cancel_subscription(invoice.subscription_id)
    stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert (invoice.status, invoice.subscription_status) == ("paid", "canceled")


def test_duplicated_and_shuffled_deliveries_end_paid_once(
    client, stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice(billing_type="monthly")
    _, invoice = click(client, invoice)
    stripe_emulator.duplicate_deliveries = 3
    stripe_emulator.shuffle_deliveries = True

    stripe_emulator.pay_delayed(invoice.checkout_session_id)
    stripe_emulator.settle(invoice.checkout_session_id)
    session = stripe_emulator.get_session(invoice.checkout_session_id)
    stripe_emulator.renew_subscription(session["subscription"])
    stripe_emulator.deliver_pending()

    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert invoice.renewals_paid == 1
    assert actions(invoice).count("wagtail_client_billing.paid") == 1
    assert all(d.ok for d in stripe_emulator.deliveries)


# --- reconciliation ------------------------------------------------------------------------------


def test_reconcile_applies_sessions_whose_webhooks_never_came(
    client, stripe_emulator, emulated_invoice
):
    stripe_emulator.webhooks_enabled = False
    paid = emulated_invoice()
    delayed = emulated_invoice()
    untouched = emulated_invoice()
    for invoice in (paid, delayed, untouched):
        click(client, invoice)
        invoice.refresh_from_db()
    stripe_emulator.pay(paid.checkout_session_id)
    stripe_emulator.pay_delayed(delayed.checkout_session_id)
    out = StringIO()

    call_command("client_billing_reconcile", stdout=out)

    states = {
        i.pk: i.status for i in Invoice.objects.filter(pk__in=[paid.pk, delayed.pk, untouched.pk])
    }
    assert states == {paid.pk: "paid", delayed.pk: "processing", untouched.pk: "pending"}
    assert "3 checked" in out.getvalue()
    assert "1 paid" in out.getvalue()


def test_reconcile_reports_stripe_errors_and_goes_on(client, stripe_emulator, emulated_invoice):
    stripe_emulator.webhooks_enabled = False
    first, second = emulated_invoice(), emulated_invoice()
    for invoice in (first, second):
        click(client, invoice)
        invoice.refresh_from_db()
    stripe_emulator.pay(second.checkout_session_id)
    stripe_emulator.inject_fault("500", count=1, path_prefix="/v1/checkout/sessions")

    report = checkout.reconcile_open_sessions()

    assert report.checked == 2
    assert len(report.errors) == 1
    second.refresh_from_db()
    assert second.status == "paid"


def test_reconciliation_pacer_keeps_under_the_rate_and_sleeps_only_when_needed():
    from wagtail_client_billing.billing.checkout import Pacer

    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 3))
        now[0] += seconds

    pacer = Pacer(3, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        pacer.wait()  # a burst up to the rate goes at once
    assert slept == []
    now[0] += 0.25
    pacer.wait()  # the fourth call within the second waits for the first to age out
    assert slept == [0.75]
    now[0] += 5
    pacer.wait()
    assert slept == [0.75]
