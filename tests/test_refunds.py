"""Refunds: made from the admin through the emulator, and applied from Stripe's events."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.utils import make_user
from tests.webhook_helpers import completed, post_event, session_event
from wagtail_client_billing.billing import refunds
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    ClientBillingSettings,
    Invoice,
    Refund,
)

pytestmark = pytest.mark.django_db


def actions(invoice):
    return list(
        ClientBillingLogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Invoice), object_id=str(invoice.pk)
        )
        .order_by("timestamp", "pk")
        .values_list("action", flat=True)
    )


def refund_creates(emulator):
    return [r for r in emulator.requests if (r.method, r.path) == ("POST", "/v1/refunds")]


@pytest.fixture
def paid_invoice(client, stripe_emulator, emulated_invoice):
    """A one-time invoice of 125.00 USD (the default), paid through the emulator."""
    client.get(urlsplit(emulated_invoice.get_pay_url()).path)
    emulated_invoice.refresh_from_db()
    stripe_emulator.pay(emulated_invoice.checkout_session_id)
    stripe_emulator.deliver_pending()
    emulated_invoice.refresh_from_db()
    assert emulated_invoice.status == "paid"
    return emulated_invoice


def refund(invoice, amount, key=None, **kwargs):
    return refunds.request_refund(
        invoice,
        payment=invoice.payments.get(),
        amount=amount,
        request_key=key or uuid.uuid4().hex,
        **kwargs,
    )


def charge_of(emulator, invoice):
    intent = emulator.state.payment_intents[invoice.payments.get().payment_intent_id]
    return emulator.charge(intent["latest_charge"])


def test_refund_in_part_then_in_full(stripe_emulator, paid_invoice):
    paid = paid_invoice.payments.get().amount
    first = refund(paid_invoice, 2500, reason="requested_by_customer", note="Late delivery")
    stripe_emulator.deliver_pending()  # refund.created and charge.refunded, applied once
    paid_invoice.refresh_from_db()
    assert (paid_invoice.status, paid_invoice.amount_refunded) == ("partially_refunded", 2500)
    assert (first.status, first.stripe_refund_id[:3], first.note) == (
        "succeeded",
        "re_",
        "Late delivery",
    )

    refund(paid_invoice, paid - 2500)
    stripe_emulator.deliver_pending()
    paid_invoice.refresh_from_db()
    assert (paid_invoice.status, paid_invoice.amount_refunded) == ("refunded", paid)
    assert charge_of(stripe_emulator, paid_invoice)["amount_refunded"] == paid
    assert actions(paid_invoice)[-4:] == [
        "wagtail_client_billing.refunded",
        "wagtail_client_billing.partially_refunded",
        "wagtail_client_billing.refunded",
        "wagtail_client_billing.refunded_in_full",
    ]
    assert not paid_invoice.can_be_deleted


def test_refunding_more_than_was_paid_or_an_unpaid_invoice_is_refused(
    stripe_emulator, paid_invoice, emulated_invoice
):
    paid = paid_invoice.payments.get().amount
    with pytest.raises(refunds.RefundRefused, match="at most"):
        refund(paid_invoice, paid + 1)
    refund(paid_invoice, paid)
    with pytest.raises(refunds.RefundRefused):
        refund(paid_invoice, 1)
    assert len(refund_creates(stripe_emulator)) == 1

    unpaid = Invoice.objects.filter(status="pending").exclude(pk=paid_invoice.pk).first()
    if unpaid is not None:
        with pytest.raises(refunds.RefundRefused, match="Only a paid invoice"):
            refunds.check_refund(unpaid, None, 100)


def test_a_double_click_makes_one_refund(stripe_emulator, paid_invoice):
    key = uuid.uuid4().hex
    one = refund(paid_invoice, 1000, key)
    two = refund(paid_invoice, 1000, key)
    assert one.pk == two.pk
    assert len(stripe_emulator.state.refunds) == 1
    assert len(refund_creates(stripe_emulator)) == 1


def test_a_retry_after_a_stripe_timeout_makes_one_refund(stripe_emulator, paid_invoice):
    key = uuid.uuid4().hex
    stripe_emulator.inject_fault("timeout", path_prefix="/v1/refunds")
    with pytest.raises(refunds.RefundRefused, match="not made twice"):
        refund(paid_invoice, 1000, key)
    waiting = Refund.objects.get(request_key=key)
    assert waiting.status == "requested"  # Stripe made it; the answer was lost
    assert len(stripe_emulator.state.refunds) == 1

    again = refund(paid_invoice, 1000, key)
    assert (again.pk, again.status) == (waiting.pk, "succeeded")
    assert len(stripe_emulator.state.refunds) == 1
    keys = {r.idempotency_key for r in refund_creates(stripe_emulator)}
    assert keys == {f"wcb-refund-{waiting.pk}-0"}
    paid_invoice.refresh_from_db()
    assert paid_invoice.amount_refunded == 1000


def test_the_platform_fee_is_refunded_when_the_site_says_so(stripe_emulator, paid_invoice):
    ClientBillingSettings.objects.filter(site=paid_invoice.site).update(refund_application_fee=True)
    made = refund(paid_invoice, 1000)
    assert made.refund_application_fee
    assert refund_creates(stripe_emulator)[-1].params["refund_application_fee"] == "true"


def test_a_refund_that_fails_later_is_shown_and_the_money_counts_again(
    stripe_emulator, paid_invoice
):
    made = refund(paid_invoice, 1000)
    stripe_emulator.deliver_pending()
    stripe_emulator.fail_refund(made.stripe_refund_id)
    stripe_emulator.deliver_pending()

    made.refresh_from_db()
    paid_invoice.refresh_from_db()
    assert (made.status, made.failure_reason) == ("failed", "expired_or_canceled_card")
    assert (paid_invoice.status, paid_invoice.amount_refunded) == ("paid", 0)
    assert "wagtail_client_billing.refund_failed" in actions(paid_invoice)
    assert charge_of(stripe_emulator, paid_invoice)["amount_refunded"] == 0


# --- events from Stripe: refunds made anywhere, in any order, once ----------------------------


def _refund_obj(invoice, refund_id, amount, status="succeeded", intent="pi_test_paid", **fields):
    obj = {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "charge": "ch_" + intent,
        "currency": invoice.currency.lower(),
        "metadata": {},
        "payment_intent": intent,
        "reason": "requested_by_customer",
        "status": status,
    }
    obj.update(fields)
    return obj


def _charge_obj(invoice, amount_refunded, intent):
    return {
        "id": "ch_" + intent,
        "object": "charge",
        "amount": invoice.amount,
        "amount_refunded": amount_refunded,
        "currency": invoice.currency.lower(),
        "payment_intent": intent,
        "refunded": amount_refunded >= invoice.amount,
    }


SHUFFLE = hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SHUFFLE
@given(data=st.data())
def test_dashboard_refunds_in_any_order_and_redelivered_end_in_one_state(
    client, connected_site, account, data
):
    from tests.utils import make_invoice

    n = uuid.uuid4().hex[:8]
    intent, session, a, b = f"pi_{n}", f"cs_test_{n}", f"re_a{n}", f"re_b{n}"
    invoice = make_invoice(connected_site, account, checkout_session_id=session)
    post_event(client, completed(invoice, session, payment_intent=intent))
    third = invoice.amount // 4
    failed = {"failure_reason": "lost_or_stolen_card", "intent": intent}
    events = [
        session_event("refund.created", invoice, _refund_obj(invoice, a, third, intent=intent)),
        session_event(
            "charge.refunded", invoice, _charge_obj(invoice, third, intent), created=2_000_000_000
        ),
        session_event(
            "refund.created", invoice, _refund_obj(invoice, b, third, "pending", intent=intent)
        ),
        session_event(
            "refund.updated", invoice, _refund_obj(invoice, b, third, "failed", **failed)
        ),
        session_event("refund.failed", invoice, _refund_obj(invoice, b, third, "failed", **failed)),
    ]
    order = data.draw(st.permutations(events))
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=3))
    for event in [*order, *duplicates]:
        post_event(client, event)

    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_refunded) == ("partially_refunded", third)
    assert sorted(invoice.refunds.values_list("stripe_refund_id", "status")) == [
        (a, "succeeded"),
        (b, "failed"),
    ]
    logged = [
        (entry.action, entry.data.get("refund"))
        for entry in ClientBillingLogEntry.objects.filter(object_id=str(invoice.pk))
    ]
    assert logged.count(("wagtail_client_billing.refunded", a)) == 1
    assert logged.count(("wagtail_client_billing.refund_failed", b)) == 1


def test_a_refund_event_before_its_payment_is_applied_when_the_payment_is(client, invoice):
    post_event(
        client,
        session_event("refund.created", invoice, _refund_obj(invoice, "re_early", invoice.amount)),
    )
    post_event(client, completed(invoice, "cs_test_a1current", payment_intent="pi_test_paid"))
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_refunded) == ("refunded", invoice.amount)


def test_a_refund_event_from_another_account_is_ignored(client, invoice):
    post_event(client, completed(invoice, "cs_test_a1current", payment_intent="pi_test_paid"))
    event = session_event(
        "refund.created", invoice, _refund_obj(invoice, "re_x", 100), account="acct_other"
    )
    post_event(client, event)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_refunded) == ("paid", 0)


def test_money_received_still_wins_over_expiry_and_deletion_with_refunds(client, invoice):
    from wagtail_client_billing import lifecycle

    lifecycle.expire(invoice, source="sweep")
    post_event(client, completed(invoice, "cs_test_a1current", payment_intent="pi_test_paid"))
    invoice.refresh_from_db()
    assert (invoice.status, invoice.late_payment) == ("paid", True)
    post_event(client, session_event("refund.created", invoice, _refund_obj(invoice, "re_1", 100)))
    post_event(client, completed(invoice, "cs_test_a1current", payment_intent="pi_test_paid"))
    invoice.refresh_from_db()
    assert invoice.status == "partially_refunded"  # a redelivered payment does not un-refund


# --- the admin screen -------------------------------------------------------------------------


def test_an_editor_without_the_permission_gets_no_button_and_a_403(client, paid_invoice):
    editor = make_user(
        "viewer",
        perms=("wagtail_client_billing.view_invoice", "wagtail_client_billing.change_invoice"),
    )
    client.force_login(editor)
    inspect = reverse("wagtail_client_billing_invoices:inspect", args=[paid_invoice.pk])
    url = reverse("wagtail_client_billing_invoices:refund", args=[paid_invoice.pk])
    page = client.get(inspect)
    assert page.status_code == 200
    assert url not in page.content.decode()
    assert client.get(url).status_code == 403
    assert client.post(url, {"amount": "1"}).status_code == 403
    listing = client.get(reverse("wagtail_client_billing_invoices:list"))
    assert url not in listing.content.decode()


def test_an_editor_refunds_through_the_form_and_its_confirmation(
    client, stripe_emulator, paid_invoice
):
    editor = make_user(
        "refunder",
        perms=("wagtail_client_billing.view_invoice", "wagtail_client_billing.refund_invoice"),
    )
    client.force_login(editor)
    url = reverse("wagtail_client_billing_invoices:refund", args=[paid_invoice.pk])
    inspect = reverse("wagtail_client_billing_invoices:inspect", args=[paid_invoice.pk])
    assert url in client.get(inspect).content.decode()
    assert url in client.get(reverse("wagtail_client_billing_invoices:list")).content.decode()

    payment = paid_invoice.payments.get()
    key = uuid.uuid4().hex
    form = {
        "payment": payment.pk,
        "amount": "999999",
        "reason": "duplicate",
        "note": "",
        "request_key": key,
    }
    too_much = client.post(url, form)
    assert "You can refund at most" in too_much.content.decode()

    form["amount"] = "12.50"
    confirm = client.post(url, form)
    page = confirm.content.decode()
    assert "Refund $12.50?" in page
    assert "taken from the balance of the connected Stripe account" in page
    assert not stripe_emulator.state.refunds

    done = client.post(url, {**form, "confirm": "1"})
    assert done.status_code == 302
    again = client.post(url, {**form, "confirm": "1"})  # a double click
    assert again.status_code in (200, 302)
    assert len(stripe_emulator.state.refunds) == 1
    paid_invoice.refresh_from_db()
    assert (paid_invoice.status, paid_invoice.amount_refunded) == ("partially_refunded", 1250)
    shown = client.get(inspect).content.decode()
    assert "Refunded: $12.50" in shown
    assert Refund.objects.get().created_by == editor


# --- reconciliation -----------------------------------------------------------------------------


def dashboard_refund(invoice, amount: int) -> None:
    """A refund made in Stripe's Dashboard (not here): on Stripe only."""
    from wagtail_client_billing import gateway

    gateway.create_refund(
        test_mode=True,
        account_id=invoice.account.stripe_id,
        refund_pk=0,
        amount=amount,
        payment_intent=invoice.payments.get().payment_intent_id,
    )


def test_reconcile_catches_a_dashboard_refund_whose_webhook_was_lost(
    stripe_emulator, paid_invoice, settings
):
    from io import StringIO

    from django.core.management import call_command

    stripe_emulator.webhooks_enabled = False  # the refund's events never arrive
    dashboard_refund(paid_invoice, 3000)
    out = StringIO()
    call_command("client_billing_reconcile", stdout=out)
    assert "Reconciled refunds: 1 checked, 1 refunds_applied" in out.getvalue()
    paid_invoice.refresh_from_db()
    assert (paid_invoice.status, paid_invoice.amount_refunded) == ("partially_refunded", 3000)

    call_command("client_billing_reconcile", stdout=out)  # again: nothing new
    paid_invoice.refresh_from_db()
    assert paid_invoice.amount_refunded == 3000
    assert paid_invoice.refunds.count() == 1

    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "RECONCILE_PAYMENTS_WINDOW_DAYS": 0,
    }
    assert not refunds.payments_to_reconcile().exists()


@pytest.mark.parametrize("window_days", [120, 0])
def test_the_15_minute_schedule_also_finds_lost_refunds_and_disputes(
    stripe_emulator, paid_invoice, settings, django_capture_on_commit_callbacks, window_days
):
    """The scheduled reconciliation reads what the command reads: a refund made in the
    Dashboard and a dispute opened, both of whose webhooks were lost, are recorded by
    its next run, for payments within ``RECONCILE_PAYMENTS_WINDOW_DAYS``; 0 turns that
    off (the Checkout Sessions are still read)."""
    from wagtail_client_billing import tasks

    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "RECONCILE_PAYMENTS_WINDOW_DAYS": window_days,
    }
    stripe_emulator.webhooks_enabled = False  # neither the refund's nor the dispute's arrive
    dashboard_refund(paid_invoice, 3000)
    stripe_emulator.open_dispute(paid_invoice.payments.get().payment_intent_id)

    with django_capture_on_commit_callbacks(execute=True):
        summary = tasks.reconcile_open_sessions()

    paid_invoice.refresh_from_db()
    if window_days:
        assert (paid_invoice.status, paid_invoice.amount_refunded) == ("partially_refunded", 3000)
        assert paid_invoice.dispute_status == "needs_response"
        assert "1 refunds_applied" in summary and "1 opened or closed here" in summary
    else:
        assert (paid_invoice.status, paid_invoice.amount_refunded) == ("paid", 0)
        assert paid_invoice.dispute_status == ""
        assert not paid_invoice.refunds.exists() and not paid_invoice.disputes.exists()
        assert "0 accounts" in summary
