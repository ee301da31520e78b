"""The client's receipts: one per payment (each renewal too) and per refund, unless off."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from wagtail_client_billing import tasks
from wagtail_client_billing.billing import refunds
from wagtail_client_billing.models import ClientBillingSettings, Payment

pytestmark = pytest.mark.django_db


def pay(client, emulator, invoice):
    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    emulator.pay(invoice.checkout_session_id)
    deliver(emulator)
    invoice.refresh_from_db()
    return invoice


def deliver(emulator):
    """Deliver the emulator's events; the tasks their transactions queue run too."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        emulator.deliver_pending()


def refund(invoice, amount):
    with TestCase.captureOnCommitCallbacks(execute=True):
        refunds.request_refund(
            invoice, payment=invoice.payments.get(), amount=amount, request_key=uuid.uuid4().hex
        )


def receipts_to(address):
    return [m for m in mail.outbox if m.to == [address] and "Receipt" in m.subject]


def refund_receipts_to(address):
    return [m for m in mail.outbox if m.to == [address] and m.subject.startswith("Refund")]


def test_a_paid_invoice_and_its_refund_each_get_one_receipt(
    client, stripe_emulator, emulated_invoice
):
    invoice = pay(client, stripe_emulator, emulated_invoice)
    (receipt,) = receipts_to(invoice.email)
    assert receipt.subject.startswith("Receipt: $125.00 paid to")
    assert invoice.number in receipt.body
    assert "$125.00" in receipt.alternatives[0][0]

    # Redelivered and returned to: still one receipt.
    deliver(stripe_emulator)
    client.get(
        urlsplit(invoice.public_url("return")).path + f"?session_id={invoice.checkout_session_id}"
    )
    assert len(receipts_to(invoice.email)) == 1

    refund(invoice, 2500)
    deliver(stripe_emulator)
    (refund_mail,) = refund_receipts_to(invoice.email)
    assert "$25.00" in refund_mail.subject
    assert "5 to 10 business days" in refund_mail.body


def test_a_site_that_turned_receipts_off_sends_none(client, stripe_emulator, emulated_invoice):
    ClientBillingSettings.objects.filter(site=emulated_invoice.site).update(send_receipts=False)
    invoice = pay(client, stripe_emulator, emulated_invoice)
    refund(invoice, 100)
    deliver(stripe_emulator)
    assert not receipts_to(invoice.email)
    assert not refund_receipts_to(invoice.email)
    assert invoice.payments.get().receipt_queued_at is None


def test_each_renewal_gets_a_receipt(client, stripe_emulator):
    from tests.utils import make_emulated_invoice

    invoice = make_emulated_invoice(
        stripe_emulator, "monthly.example", email="monthly@client.example", billing_type="monthly"
    )
    invoice = pay(client, stripe_emulator, invoice)
    assert len(receipts_to(invoice.email)) == 1
    stripe_emulator.renew_subscription(invoice.subscription_id)
    deliver(stripe_emulator)
    assert len(receipts_to(invoice.email)) == 2
    kinds = sorted(invoice.payments.values_list("kind", flat=True))
    assert kinds == ["renewal", "subscription_create"]
    assert all(p.payment_intent_id.startswith("pi_") for p in invoice.payments.all())


def test_a_receipt_whose_task_was_lost_is_sent_by_the_sweep(
    client, stripe_emulator, emulated_invoice
):
    invoice = pay(client, stripe_emulator, emulated_invoice)
    payment = invoice.payments.get()
    Payment.objects.filter(pk=payment.pk).update(receipt_sent_at=None, receipt_claimed_at=None)
    mail.outbox.clear()
    assert tasks.resume_receipts() == 0  # just queued: its task may still run
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        assert tasks.resume_receipts() == 1
    assert len(receipts_to(invoice.email)) == 1
    payment.refresh_from_db()
    assert payment.receipt_sent_at is not None
    assert tasks.send_receipt("payment", payment.pk) == "already handled"
