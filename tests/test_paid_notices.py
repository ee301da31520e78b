"""Paid notices (issue 18): the billing contacts hear of each payment, in a daily
digest, or not at all, per site; each payment once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from tests.utils import make_invoice
from tests.webhook_helpers import completed, post_event, session_event, stripe_invoice_obj
from wagtail_client_billing import tasks
from wagtail_client_billing.models import ClientBillingSettings, PaidNotice
from wagtail_client_billing.testing.webhooks import random_id

pytestmark = pytest.mark.django_db


def configure(site, mode: str, contacts: str = "boss@agency.example") -> None:
    config = ClientBillingSettings.for_site(site)
    config.paid_notices = mode
    config.billing_contacts = contacts
    config.save()


def pay(client, invoice, session_id="cs_test_a1current"):
    assert post_event(client, completed(invoice, session_id, payment_intent=random_id("pi_")))
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def notices_to_contacts():
    return [m for m in mail.outbox if m.to == ["boss@agency.example"]]


def test_each_payment_is_told_once(client, invoice):
    configure(invoice.site, "each")
    event = completed(invoice, "cs_test_a1current", payment_intent="pi_once")

    post_event(client, event)
    post_event(client, event)  # redelivered

    (notice,) = notices_to_contacts()
    assert invoice.number in notice.subject
    assert "$125.00" in notice.body and invoice.email in notice.body


def test_each_renewal_is_told_too(client, monthly):
    configure(monthly.site, "each")
    sub_id = random_id("sub_")
    post_event(
        client, completed(monthly, "cs_test_a1sub", payment_intent=None, subscription=sub_id)
    )
    renewal = stripe_invoice_obj(monthly, sub_id, "subscription_cycle")

    post_event(client, session_event("invoice.paid", monthly, renewal))
    post_event(client, session_event("invoice.paid", monthly, renewal))

    subjects = [m.subject for m in notices_to_contacts()]
    assert len(subjects) == 2
    assert subjects[1].startswith("Renewal paid")


def test_off_tells_nobody(client, invoice):
    configure(invoice.site, "off")
    pay(client, invoice)
    assert notices_to_contacts() == []
    assert not PaidNotice.objects.exists()


def test_without_contacts_the_author_hears(client, connected_site, account):
    from tests.utils import make_user

    configure(connected_site, "each", contacts="")
    invoice = make_invoice(
        connected_site, account, checkout_session_id="cs_test_a1auth", created_by=make_user("ann")
    )
    pay(client, invoice, "cs_test_a1auth")
    # The author gets the notice; the client, its receipt.
    assert sorted(m.to for m in mail.outbox) == sorted([["ann@example.com"], [invoice.email]])


def test_a_daily_digest_has_each_payment_exactly_once(client, connected_site, account):
    configure(connected_site, "daily")
    first = make_invoice(connected_site, account, checkout_session_id="cs_test_a1one")
    second = make_invoice(connected_site, account, checkout_session_id="cs_test_a1two")
    pay(client, first, "cs_test_a1one")
    pay(client, second, "cs_test_a1two")
    assert notices_to_contacts() == []  # nothing at once

    assert tasks.send_paid_digests() == "1 digests, 2 payments"
    (digest,) = notices_to_contacts()
    assert "2 payments" in digest.subject
    assert first.number in digest.body and second.number in digest.body

    assert tasks.send_paid_digests() == "0 digests, 0 payments"
    third = make_invoice(connected_site, account, checkout_session_id="cs_test_a1three")
    pay(client, third, "cs_test_a1three")
    tasks.send_paid_digests()
    latest = notices_to_contacts()[-1]
    assert third.number in latest.body and first.number not in latest.body


def test_a_digest_that_failed_is_claimed_again_a_day_later(client, invoice, settings):
    configure(invoice.site, "daily")
    pay(client, invoice)
    PaidNotice.objects.update(digest="19990101000000-lostrun")

    assert tasks.send_paid_digests() == "1 digests, 1 payments"
    assert PaidNotice.objects.get().sent_at is not None


def test_a_lost_each_notice_is_found_by_the_sweep(invoice):
    configure(invoice.site, "each")
    PaidNotice.objects.create(
        invoice=invoice,
        key=f"invoice:{invoice.pk}",
        mode="each",
        amount=invoice.amount,
        currency="USD",
        paid_at=timezone.now() - timedelta(hours=1),
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.resume_paid_notices() == 1
    assert len(notices_to_contacts()) == 1
    assert tasks.resume_paid_notices() == 0


def test_the_schedules_include_the_digest_and_the_sweep():
    names = {spec.name for spec in tasks.schedule_specs()}
    assert {"client_billing_paid_digest", "client_billing_resume_paid_notices"} <= names
