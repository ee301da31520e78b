"""The events of a recurring invoice's subscription: ``invoice.paid`` and
``customer.subscription.*``.

The invoice is found by the ``invoice_id`` the gateway put in the subscription's
metadata, then by the subscription id recorded on the invoice. A renewal is counted
once per Stripe invoice, an ended subscription stays ended, and a late ``updated``
cannot overwrite a newer state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _
from wagtail.log_actions import log

from .. import lifecycle
from ..billing import notices, payments, subscriptions
from ..models import Invoice, PaymentKind, SubscriptionRenewal
from ..stripe_api import expandable_id, mapping, positive_int, text, unix_time
from .base import Applied, Ignored, event_created, find_invoice, locked_invoice

#: Subscription statuses after which Stripe never bills the subscription again.
TERMINAL_SUBSCRIPTION_STATUSES = frozenset({"canceled", "incomplete_expired"})

#: The time of an event without a ``created``: older than any recorded state.
EPOCH = datetime.fromtimestamp(0, tz=UTC)


def _reference(obj: dict[str, Any]) -> int | None:
    """The invoice pk named by a subscription's metadata (or a reference)."""
    metadata = mapping(obj.get("metadata"))
    return positive_int(metadata.get("invoice_id")) or positive_int(obj.get("client_reference_id"))


def _subscription_of_invoice(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A Stripe invoice's subscription id and metadata, in old and new API shapes."""
    details = mapping(mapping(obj.get("parent")).get("subscription_details"))
    old = mapping(obj.get("subscription_details"))
    subscription = expandable_id(details.get("subscription")) or expandable_id(
        obj.get("subscription")
    )
    metadata = (
        mapping(details.get("metadata"))
        or mapping(old.get("metadata"))
        or mapping(obj.get("metadata"))
    )
    return subscription, metadata


def on_invoice_paid(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """A subscription's invoice was paid: the first payment, or a renewal.

    The first one (``billing_reason=subscription_create``) is the payment Checkout
    already reports; it marks the invoice paid and is not counted as a renewal. Every
    later one bumps ``renewals_paid`` once per Stripe invoice, whatever the order and
    however often it is delivered.
    """
    subscription_id, metadata = _subscription_of_invoice(obj)
    if not subscription_id:
        raise Ignored(_("Not a subscription payment."))
    invoice = locked_invoice(
        event,
        find_invoice(pk=positive_int(metadata.get("invoice_id")), subscription_id=subscription_id),
    )
    paid_at = (
        unix_time(mapping(obj.get("status_transitions")).get("paid_at"))
        or unix_time(event.get("created"))
        or timezone.now()
    )
    customer = expandable_id(obj.get("customer"))
    if lifecycle.mark_paid(
        invoice,
        source=lifecycle.Source.WEBHOOK,
        paid_at=paid_at,
        subscription_id=subscription_id,
        customer_id=customer,
    ):
        notices.record_payment(
            invoice,
            key=f"invoice:{invoice.pk}",
            amount=positive_int(obj.get("amount_paid")) or invoice.amount,
            currency=text(obj.get("currency")).upper()[:3],
            paid_at=paid_at,
        )
    stripe_invoice = expandable_id(obj.get("id"))
    first = obj.get("billing_reason") == "subscription_create"
    payments.record_payment(
        invoice,
        kind=PaymentKind.SUBSCRIPTION_CREATE if first else PaymentKind.RENEWAL,
        amount=positive_int(obj.get("amount_paid")) or 0,
        currency=text(obj.get("currency")),
        paid_at=paid_at,
        stripe_invoice_id=stripe_invoice,
        # Before 2025-03-31.basil the invoice named them; since, invoice_payment.paid does.
        payment_intent_id=expandable_id(obj.get("payment_intent")),
        charge_id=expandable_id(obj.get("charge")),
    )
    if first:
        return Applied(invoice=invoice)
    renewal = SubscriptionRenewal(
        invoice=invoice,
        stripe_invoice_id=stripe_invoice[:255],
        amount=positive_int(obj.get("amount_paid")) or 0,
        currency=text(obj.get("currency")).upper()[:3],
        billing_reason=text(obj.get("billing_reason"))[:64],
        paid_at=paid_at,
    )
    try:
        with transaction.atomic():
            renewal.save(force_insert=True)
    except IntegrityError:
        return Applied(invoice=invoice)  # this Stripe invoice was counted already
    Invoice.objects.filter(pk=invoice.pk).update(
        renewals_paid=F("renewals_paid") + 1,
        last_renewal_paid_at=Case(
            When(
                Q(last_renewal_paid_at__isnull=True) | Q(last_renewal_paid_at__lt=paid_at),
                then=Value(paid_at),
            ),
            default=F("last_renewal_paid_at"),
        ),
    )
    invoice.refresh_from_db(fields=["renewals_paid", "last_renewal_paid_at"])
    notices.record_payment(
        invoice,
        key=f"renewal:{stripe_invoice}",
        amount=renewal.amount,
        currency=renewal.currency,
        paid_at=paid_at,
    )
    log(
        instance=invoice,
        action="wagtail_client_billing.renewal_paid",
        data={
            "stripe_invoice": stripe_invoice,
            "amount": renewal.amount,
            "currency": renewal.currency,
            "billing_reason": renewal.billing_reason,
            "paid_at": paid_at.isoformat(),
        },
    )
    return Applied(invoice=invoice)


def on_subscription_changed(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """Record the subscription's state on its invoice (:func:`.billing.subscriptions.apply_state`).

    An ended subscription stays ended whatever arrives after, and otherwise the newest
    event (by Stripe's ``created``) wins, so a late ``updated`` cannot overwrite a newer
    state. A cancellation made in Stripe (now or at the period's end) or its undoing is
    logged as an editor's would be.
    """
    subscription_id = expandable_id(obj.get("id"))
    invoice = locked_invoice(
        event, find_invoice(pk=_reference(obj), subscription_id=subscription_id)
    )
    if invoice.subscription_id and invoice.subscription_id != subscription_id:
        raise Ignored(_("The invoice belongs to another subscription."), invoice)
    try:
        subscriptions.apply_state(
            invoice,
            obj,
            unix_time(event_created(event)) or EPOCH,
            deleted=event["type"] == "customer.subscription.deleted",
        )
    except subscriptions.Stale as stale:
        raise Ignored(str(stale), invoice) from None
    return Applied(invoice=invoice)


def on_invoice_payment_failed(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """A renewal's charge failed: record the attempt once, set the subscription past due,
    and tell the client (Stripe's hosted invoice page) and the billing contacts.

    The first payment's failure (``billing_reason=subscription_create``) is Checkout's
    to report, and ignored here.
    """
    subscription_id, metadata = _subscription_of_invoice(obj)
    if not subscription_id:
        raise Ignored(_("Not a subscription payment."))
    invoice = locked_invoice(
        event,
        find_invoice(pk=positive_int(metadata.get("invoice_id")), subscription_id=subscription_id),
    )
    if obj.get("billing_reason") == "subscription_create":
        raise Ignored(_("The first payment of a subscription is Checkout's."), invoice)
    if invoice.subscription_id and invoice.subscription_id != subscription_id:
        raise Ignored(_("The invoice belongs to another subscription."), invoice)
    failure = subscriptions.record_renewal_failure(invoice, obj, unix_time(event_created(event)))
    if failure is None:
        raise Ignored(_("This attempt was recorded already."), invoice)
    return Applied(invoice=invoice)


def _invoice_payment_ids(obj: dict[str, Any]) -> tuple[str, str]:
    """The payment intent and charge an ``invoice_payment`` names: under ``payment`` since
    2025-03-31.basil, at the top level in later previews."""
    payment = mapping(obj.get("payment"))
    intent = expandable_id(payment.get("payment_intent")) or expandable_id(
        obj.get("payment_intent")
    )
    charge = expandable_id(payment.get("charge")) or expandable_id(obj.get("charge"))
    return intent, charge


def on_invoice_payment_paid(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """``invoice_payment.paid``: which payment intent (or charge) paid a Stripe invoice.

    Recorded on that Stripe invoice's payment, so that its refunds and disputes, which
    name the payment intent or the charge, find it. When it arrives before the
    ``invoice.paid`` it belongs to, the ids are kept until that is applied.
    """
    stripe_invoice = expandable_id(obj.get("invoice"))
    intent, charge = _invoice_payment_ids(obj)
    if not stripe_invoice or not (intent or charge):
        raise Ignored(_("The invoice payment names no Stripe invoice or no payment."))
    if text(obj.get("status")) not in ("", "paid"):
        raise Ignored(_("The invoice payment is not paid."))
    payment = payments.payment_of_stripe_invoice(stripe_invoice) or payments.keep_invoice_payment(
        stripe_invoice, payment_intent_id=intent, charge_id=charge
    )
    if payment is None:
        return Applied(
            reason=_("No payment of Stripe invoice %(id)s is recorded yet; its ids are kept.")
            % {"id": stripe_invoice}
        )
    invoice = locked_invoice(event, payment.invoice)
    payments.record_invoice_payment(stripe_invoice, payment_intent_id=intent, charge_id=charge)
    return Applied(invoice=invoice)
