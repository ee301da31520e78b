"""Recording the payments an invoice receives: one :class:`~..models.Payment` per payment.

Called by the Checkout domain (a Checkout Session paid) and by the subscription webhooks
(``invoice.paid`` for a subscription's first payment and each renewal,
``invoice_payment.paid`` for the payment intent or charge that paid a Stripe invoice).
The callers hold the invoice's row lock; each payment's Stripe ids are unique, so the same
payment reported twice (redelivered, or by two different events) is one row, whose
missing ids the later report fills in.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .. import lifecycle
from ..conf import billing_settings
from ..models import (
    ACTIVE_REFUND_STATUSES,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentKind,
    Refund,
    StripeInvoicePayment,
)
from . import receipts

logger = logging.getLogger(__name__)

#: The ids a payment is matched by, in the order they are trusted.
ID_FIELDS = ("checkout_session_id", "stripe_invoice_id", "payment_intent_id", "charge_id")


def _matching(invoice: Invoice, kind: str, ids: dict[str, str]) -> Payment | None:
    match = Q(pk__in=[])
    for name, value in ids.items():
        if value:
            match |= Q(**{name: value})
    if kind == PaymentKind.SUBSCRIPTION_CREATE:
        match |= Q(invoice=invoice, kind=PaymentKind.SUBSCRIPTION_CREATE)
    return Payment.objects.filter(match, invoice=invoice).order_by("pk").first()


def record_payment(
    invoice: Invoice,
    *,
    kind: str,
    amount: int | None,
    currency: str,
    paid_at: datetime | None,
    checkout_session_id: str = "",
    payment_intent_id: str = "",
    charge_id: str = "",
    stripe_invoice_id: str = "",
) -> tuple[Payment | None, bool]:
    """Record a payment of ``invoice`` once; return it and whether this call created it
    (``None`` when its ids are another invoice's payment's).

    A payment already recorded under one of the ids (or, for a subscription's first
    payment, the invoice's first payment) gets the ids it lacked; its amount is kept
    unless it was unknown (0). The caller holds the invoice's row lock.
    """
    ids = {
        "checkout_session_id": checkout_session_id[:255],
        "stripe_invoice_id": stripe_invoice_id[:255],
        "payment_intent_id": payment_intent_id[:255],
        "charge_id": charge_id[:255],
    }
    existing = _matching(invoice, kind, ids)
    if stripe_invoice_id and not (payment_intent_id or charge_id):
        kept = _kept_invoice_payment(stripe_invoice_id, meet=existing is None)
        if kept is not None and (kept.payment_intent_id or kept.charge_id):
            ids["payment_intent_id"] = kept.payment_intent_id
            ids["charge_id"] = kept.charge_id
            existing = existing or _matching(invoice, kind, ids)
    if existing is None:
        payment = Payment(
            invoice=invoice,
            kind=kind,
            amount=max(amount or 0, 0),
            currency=(currency or invoice.currency).upper()[:3],
            paid_at=paid_at or timezone.now(),
            **ids,
        )
        try:
            with transaction.atomic():
                payment.save(force_insert=True)
        except IntegrityError:
            existing = _matching(invoice, kind, ids)
            if existing is None:
                # One of its ids is another invoice's payment: Stripe never pays two
                # invoices with one payment, so the report is not this invoice's to record.
                logger.warning(
                    "Payment %s of invoice %s not recorded: its ids belong to another invoice",
                    ids,
                    invoice.number,
                )
                return None, False
        else:
            if payment.amount:
                receipts.queue_receipt("payment", payment, invoice)
            attach_refunds(payment)
            refresh_refund_totals(invoice, source=lifecycle.Source.WEBHOOK)
            return payment, True
    completed = _complete(existing, ids, amount, currency)
    if attach_refunds(completed):
        refresh_refund_totals(invoice, source=lifecycle.Source.WEBHOOK)
    return completed, False


def _complete(payment: Payment, ids: dict[str, str], amount: int | None, currency: str) -> Payment:
    """Fill in what ``payment`` lacked: ids it had none of, an unknown amount."""
    values: dict[str, Any] = {
        name: value for name, value in ids.items() if value and not getattr(payment, name)
    }
    if not payment.amount and amount:
        values["amount"] = amount
        if currency:
            values["currency"] = currency.upper()[:3]
    if values:
        try:
            with transaction.atomic():
                Payment.objects.filter(pk=payment.pk).update(**values)
        except IntegrityError:
            return payment  # another payment holds one of those ids: keep what is recorded
        for name, value in values.items():
            setattr(payment, name, value)
    return payment


def payment_of_stripe_invoice(stripe_invoice_id: str) -> Payment | None:
    """The recorded payment of a subscription's Stripe invoice, with its invoice."""
    if not stripe_invoice_id:
        return None
    return (
        Payment.objects.select_related("invoice__account")
        .filter(stripe_invoice_id=stripe_invoice_id)
        .first()
    )


def _kept_invoice_payment(stripe_invoice_id: str, *, meet: bool) -> StripeInvoicePayment | None:
    """What ``invoice_payment.paid`` said about the Stripe invoice's payment, if anything.

    ``meet``: the payment is about to be recorded, so this is where ``invoice.paid`` and
    ``invoice_payment.paid``, applied at once by two workers, meet (see
    :func:`keep_invoice_payment`): the Stripe invoice's row is made if it is missing, and
    locked until the payment is committed.
    """
    rows = StripeInvoicePayment.objects.filter(stripe_invoice_id=stripe_invoice_id[:255])
    if not meet:
        return rows.first()
    kept, _created = rows.select_for_update().get_or_create(
        stripe_invoice_id=stripe_invoice_id[:255]
    )
    return kept


def keep_invoice_payment(
    stripe_invoice_id: str, *, payment_intent_id: str = "", charge_id: str = ""
) -> Payment | None:
    """Keep what ``invoice_payment.paid`` said for the Stripe invoice's payment, which
    :func:`record_payment` takes once ``invoice.paid`` is applied; or return that payment,
    recorded meanwhile, for the caller to complete under its invoice's lock.

    Stripe does not order the two events, and two workers may apply them at once. Both
    sides go through the Stripe invoice's :class:`StripeInvoicePayment` row, made if
    missing and locked (:func:`_kept_invoice_payment`), and look at the other side's
    record only once they hold it: without that, each could miss the other's uncommitted
    write and the payment would stay without the payment intent its refunds name. The
    row is locked before the invoice here and after it in ``invoice.paid``, but that
    side locks it only while the payment is not recorded, and this side locks the
    invoice only once it is, so the two never wait for each other in a circle.
    """
    kept, created = StripeInvoicePayment.objects.select_for_update().get_or_create(
        stripe_invoice_id=stripe_invoice_id[:255],
        defaults={"payment_intent_id": payment_intent_id[:255], "charge_id": charge_id[:255]},
    )
    payment = payment_of_stripe_invoice(stripe_invoice_id)
    if payment is None and not created and not (kept.payment_intent_id or kept.charge_id):
        kept.payment_intent_id, kept.charge_id = payment_intent_id[:255], charge_id[:255]
        kept.save(update_fields=["payment_intent_id", "charge_id"])
    return payment


def record_invoice_payment(
    stripe_invoice_id: str, *, payment_intent_id: str = "", charge_id: str = ""
) -> Payment | None:
    """Fill in the payment intent or charge that paid a Stripe invoice on its payment
    (``invoice_payment.paid``). The caller holds the invoice's row lock."""
    payment = Payment.objects.filter(stripe_invoice_id=stripe_invoice_id).first()
    if payment is None:
        return None
    ids = {"payment_intent_id": payment_intent_id[:255], "charge_id": charge_id[:255]}
    return _complete(payment, ids, None, "")


def payment_for(*, payment_intent_id: str = "", charge_id: str = "") -> Payment | None:
    """The recorded payment a refund or dispute names, by its payment intent or charge."""
    match = Q(pk__in=[])
    if payment_intent_id:
        match |= Q(payment_intent_id=payment_intent_id)
    if charge_id:
        match |= Q(charge_id=charge_id)
    return Payment.objects.select_related("invoice").filter(match).order_by("pk").first()


# --- refunded amounts -------------------------------------------------------------------------


def attach_refunds(payment: Payment) -> int:
    """Refunds whose events came before their payment was recorded, now attached to it."""
    match = Q(pk__in=[])
    if payment.payment_intent_id:
        match |= Q(payment_intent_id=payment.payment_intent_id)
    if payment.charge_id:
        match |= Q(charge_id=payment.charge_id)
    return Refund.objects.filter(match, payment__isnull=True).update(
        payment=payment, invoice=payment.invoice_id
    )


def refund_state(refunded: int, paid: int) -> str:
    """The status an invoice's money is in: refunded in full, in part, or paid."""
    if refunded <= 0 or paid <= 0:
        return InvoiceStatus.PAID
    return InvoiceStatus.REFUNDED if refunded >= paid else InvoiceStatus.PARTIALLY_REFUNDED


def refresh_refund_totals(
    invoice: Invoice, *, source: str, user: Any = None, data: dict[str, Any] | None = None
) -> str:
    """Add up each payment's refunds, and the invoice's; move its status to paid,
    partially refunded or refunded accordingly. The caller holds the invoice's row lock.

    A payment's refunded amount is what its pending and succeeded refunds add up to, or
    its charge's own ``amount_refunded`` when that says more (a refund whose event was
    lost), never more than the payment. Returns the invoice's status.
    """
    total_refunded = total_paid = 0
    for payment in Payment.objects.filter(invoice=invoice):
        active = sum(
            payment.refunds.filter(status__in=ACTIVE_REFUND_STATUSES).values_list(
                "amount", flat=True
            )
        )
        refunded = min(max(active, payment.charge_amount_refunded), payment.amount)
        if refunded != payment.amount_refunded:
            Payment.objects.filter(pk=payment.pk).update(amount_refunded=refunded)
        total_refunded += refunded
        total_paid += payment.amount
    if total_refunded != invoice.amount_refunded:
        Invoice.objects.filter(pk=invoice.pk).update(amount_refunded=total_refunded)
        invoice.amount_refunded = total_refunded
    if invoice.status in lifecycle.MONEY_RECEIVED:
        lifecycle.set_refund_state(
            invoice,
            refund_state(total_refunded, total_paid),
            source=source,
            user=user,
            data={"amount_refunded": total_refunded, **(data or {})},
        )
    return invoice.status


def reconcile_window_start(now: datetime | None = None) -> datetime | None:
    """The oldest payment whose refunds and disputes reconciliation still looks for:
    ``RECONCILE_PAYMENTS_WINDOW_DAYS`` ago (Stripe's dispute window is about 120 days),
    or ``None`` when the setting is 0 and reconciliation reads neither."""
    days = int(billing_settings.RECONCILE_PAYMENTS_WINDOW_DAYS or 0)
    if days <= 0:
        return None
    return (now or timezone.now()) - timedelta(days=days)
