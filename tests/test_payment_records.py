"""Each payment an invoice receives is recorded once, with the Stripe ids to match it by."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.utils import make_invoice
from tests.webhook_helpers import (
    completed,
    post_event,
    session_event,
    session_obj,
    stripe_invoice_obj,
)
from wagtail_client_billing.models import Invoice, Payment, SubscriptionRenewal
from wagtail_client_billing.testing.webhooks import random_id

pytestmark = pytest.mark.django_db

SHUFFLE_SETTINGS = hypothesis_settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def invoice_payment(invoice, stripe_invoice_id, payment_intent):
    obj = {
        "id": random_id("inpay_"),
        "object": "invoice_payment",
        "amount_paid": invoice.amount,
        "amount_requested": invoice.amount,
        "currency": invoice.currency.lower(),
        "invoice": stripe_invoice_id,
        "is_default": True,
        "livemode": not invoice.test_mode,
        "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": 1_700_000_000},
    }
    return session_event("invoice_payment.paid", invoice, obj)


def test_a_one_time_payment_is_recorded_once_however_often_it_is_reported(client, invoice):
    event = completed(invoice, "cs_test_a1current", payment_intent="pi_test_once")
    post_event(client, event)
    post_event(client, event)
    post_event(client, completed(invoice, "cs_test_a1current", payment_intent="pi_test_once"))

    payment = invoice.payments.get()
    assert (payment.kind, payment.payment_intent_id, payment.checkout_session_id) == (
        "checkout",
        "pi_test_once",
        "cs_test_a1current",
    )
    assert (payment.amount, payment.currency, payment.amount_refunded) == (
        invoice.amount,
        invoice.currency.upper(),
        0,
    )


def subscription_events(invoice):
    session = session_obj(
        invoice,
        "cs_test_a1sub",
        status="complete",
        payment_status="paid",
        mode="subscription",
        payment_intent=None,
        subscription="sub_test_rec",
        url=None,
    )
    session["invoice"] = "in_test_first"
    first = stripe_invoice_obj(invoice, "sub_test_rec", "subscription_create", "in_test_first")
    renewal = stripe_invoice_obj(invoice, "sub_test_rec", "subscription_cycle", "in_test_second")
    return [
        session_event("checkout.session.completed", invoice, session),
        session_event("invoice.paid", invoice, first),
        invoice_payment(invoice, "in_test_first", "pi_test_first"),
        session_event("invoice.paid", invoice, renewal),
        invoice_payment(invoice, "in_test_second", "pi_test_second"),
    ]


@SHUFFLE_SETTINGS
@given(data=st.data())
def test_subscription_payments_are_recorded_once_in_any_order(client, monthly, data):
    Payment.objects.filter(invoice=monthly).delete()
    events = subscription_events(monthly)
    order = data.draw(st.permutations(events))
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=3))
    for event in [*order, *duplicates]:
        post_event(client, event)

    recorded = {
        (p.kind, p.stripe_invoice_id, p.payment_intent_id, p.amount)
        for p in Payment.objects.filter(invoice=monthly)
    }
    assert recorded == {
        ("subscription_create", "in_test_first", "pi_test_first", monthly.amount),
        ("renewal", "in_test_second", "pi_test_second", monthly.amount),
    }
    assert Payment.objects.get(kind="subscription_create").checkout_session_id == "cs_test_a1sub"
    SubscriptionRenewal.objects.filter(invoice=monthly).delete()
    Payment.objects.filter(invoice=monthly).delete()


def test_an_invoice_payment_of_an_unknown_stripe_invoice_changes_no_payment(client, monthly):
    post_event(client, invoice_payment(monthly, "in_test_elsewhere", "pi_test_elsewhere"))
    assert not Payment.objects.exists()


def test_the_upgrade_records_a_payment_per_paid_invoice_and_per_renewal(connected_site, account):
    once = make_invoice(connected_site, account, checkout_session_id="cs_test_old")
    monthly = make_invoice(connected_site, account, billing_type="monthly")
    unpaid = make_invoice(connected_site, account)
    Invoice.objects.filter(pk=once.pk).update(
        status="paid",
        payment_intent_id="pi_test_old",
        checkout_currency="USD",
        checkout_amount_total=1234,
    )
    Invoice.objects.filter(pk=monthly.pk).update(status="paid")
    SubscriptionRenewal.objects.create(
        invoice=monthly,
        stripe_invoice_id="in_test_old",
        amount=500,
        currency="",
        paid_at=monthly.created_at,
    )
    migration = importlib.import_module("wagtail_client_billing.migrations.0019_payments")
    migration.backfill_payments(apps, SimpleNamespace(connection=connection))

    assert not unpaid.payments.exists()
    old = once.payments.get()
    assert (old.kind, old.payment_intent_id, old.checkout_session_id, old.amount) == (
        "checkout",
        "pi_test_old",
        "cs_test_old",
        1234,
    )
    assert sorted(
        monthly.payments.values_list("kind", "stripe_invoice_id", "amount", "currency")
    ) == [
        ("renewal", "in_test_old", 500, monthly.currency.upper()),
        ("subscription_create", "", monthly.amount, monthly.currency.upper()),
    ]
