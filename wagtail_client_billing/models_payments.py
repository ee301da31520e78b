"""Payments: one row per payment an invoice received, with the Stripe ids to match it by.

A one-time invoice has one payment (its Checkout Session's); a recurring one has its first
payment and one per renewal (one per Stripe invoice). Each carries the ids the pinned API
version gives for it (the Checkout Session, the payment intent, the charge, the Stripe
invoice), so that a refund, a dispute or a failure is matched to its payment from the
event alone, without asking Stripe.

Imported by :mod:`.models` (Django finds the app's models there); it imports nothing of
the app but :mod:`.money`, so it cannot take part in an import cycle.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .money import FormattedAmount, FormattedRefundedAmount


class PaymentKind(models.TextChoices):
    CHECKOUT = "checkout", _("Payment")
    SUBSCRIPTION_CREATE = "subscription_create", _("First subscription payment")
    RENEWAL = "renewal", _("Renewal")


def _unique_when_set(name: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(
        fields=[name], condition=~Q(**{name: ""}), name=f"wcb_payment_{name}"
    )


class Payment(FormattedRefundedAmount, models.Model):
    """One payment an invoice received.

    Each Stripe id is unique when it is set, so an event delivered again (or the same
    payment reported by two events: ``checkout.session.completed`` and ``invoice.paid``)
    records it once; a recurring invoice has at most one first payment.

    Attributes:
        kind: the Checkout payment of a one-time invoice, a subscription's first payment,
            or a renewal.
        checkout_session_id: the Checkout Session that took it (Checkout payments and a
            subscription's first payment).
        payment_intent_id: ``pi_...``: the Checkout Session's for a one-time invoice; for a
            subscription's invoices, ``invoice_payment.paid``'s (older API versions put it
            on the invoice itself).
        charge_id: ``ch_...``, when an event named it (refunds and disputes name it).
        stripe_invoice_id: ``in_...``, the Stripe invoice of a subscription payment.
        amount: what was paid, in minor units of ``currency`` (upper case).
        amount_refunded: how much of it was refunded, in the same units; never more than
            ``amount``.
        paid_at: when Stripe says it was paid.
    """

    invoice = models.ForeignKey(
        "wagtail_client_billing.Invoice",
        verbose_name=_("invoice"),
        on_delete=models.PROTECT,
        related_name="payments",
    )
    kind = models.CharField(
        _("kind"), max_length=32, choices=PaymentKind.choices, default=PaymentKind.CHECKOUT
    )
    checkout_session_id = models.CharField(
        _("Checkout Session"), max_length=255, blank=True, default=""
    )
    payment_intent_id = models.CharField(
        _("payment intent"), max_length=255, blank=True, default=""
    )
    charge_id = models.CharField(_("charge"), max_length=255, blank=True, default="")
    stripe_invoice_id = models.CharField(
        _("Stripe invoice"), max_length=255, blank=True, default=""
    )
    amount = models.PositiveBigIntegerField(_("amount (minor units)"), default=0)
    currency = models.CharField(_("currency"), max_length=3)
    amount_refunded = models.PositiveBigIntegerField(
        _("amount refunded (minor units)"), default=0, db_default=0
    )
    paid_at = models.DateTimeField(_("paid at"))
    created_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    #: The charge's own ``amount_refunded`` as the newest ``charge.refunded`` gave it
    #: (a refund whose own event was lost still counts), and that event's time.
    charge_amount_refunded = models.PositiveBigIntegerField(default=0, db_default=0)
    charge_refunded_at = models.DateTimeField(null=True, blank=True)
    #: The client's receipt: when it was wanted (``None``: none is sent, e.g. the site
    #: turned receipts off), when a worker took it, when it went out.
    receipt_queued_at = models.DateTimeField(null=True, blank=True)
    receipt_claimed_at = models.DateTimeField(null=True, blank=True)
    receipt_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["paid_at", "pk"]
        constraints = [
            _unique_when_set("checkout_session_id"),
            _unique_when_set("payment_intent_id"),
            _unique_when_set("charge_id"),
            _unique_when_set("stripe_invoice_id"),
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(kind="subscription_create"),
                name="wcb_payment_one_first_payment",
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded__lte=F("amount")),
                name="wcb_payment_refund_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_reference} ({self.formatted_amount})"

    @property
    def stripe_reference(self) -> str:
        """The id an editor would look the payment up by in Stripe."""
        return (
            self.payment_intent_id
            or self.charge_id
            or self.stripe_invoice_id
            or self.checkout_session_id
            or str(self.pk)
        )

    @property
    def refundable_amount(self) -> int:
        """What is left to refund, in minor units."""
        return max(self.amount - self.amount_refunded, 0)


class StripeInvoicePayment(models.Model):
    """What ``invoice_payment.paid`` said about a Stripe invoice before its ``invoice.paid``
    was applied: the payment intent or charge that paid it.

    Stripe does not order deliveries; this keeps the ids until the :class:`Payment` of that
    Stripe invoice is recorded, which then takes them. The row is also where the two
    events meet when two workers apply them at once (``billing.payments``): recording a
    renewal's payment makes it, without ids, if ``invoice_payment.paid`` has not. A row
    for a Stripe invoice that is not this app's stays unused (a few ids, no personal data).
    """

    stripe_invoice_id = models.CharField(_("Stripe invoice"), max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, default="")
    charge_id = models.CharField(max_length=255, blank=True, default="")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("Stripe invoice payment")
        verbose_name_plural = _("Stripe invoice payments")

    def __str__(self) -> str:
        return f"{self.stripe_invoice_id}: {self.payment_intent_id or self.charge_id}"


class RefundReason(models.TextChoices):
    """Stripe's reasons for a refund (``reason`` of a Refund create call)."""

    REQUESTED_BY_CUSTOMER = "requested_by_customer", _("Requested by the client")
    DUPLICATE = "duplicate", _("Duplicate payment")
    FRAUDULENT = "fraudulent", _("Fraudulent payment")


class RefundStatus(models.TextChoices):
    #: Asked of Stripe; no answer yet (a timeout): asking again replays the same request.
    REQUESTED = "requested", _("Requested")
    PENDING = "pending", _("Pending")
    REQUIRES_ACTION = "requires_action", _("Requires action")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Canceled")


#: Refund statuses whose money has left (or is leaving) the connected account.
ACTIVE_REFUND_STATUSES = (
    RefundStatus.PENDING,
    RefundStatus.REQUIRES_ACTION,
    RefundStatus.SUCCEEDED,
)


class Refund(FormattedAmount, models.Model):
    """A refund of one payment, made here or anywhere else (the Stripe dashboard).

    One row per Stripe refund (``stripe_refund_id`` unique); one made here is saved
    before Stripe is asked, keyed by the editor's confirmation (``request_key``), so a
    double click or a retry after a timeout is the same refund with the same idempotency
    key. A refund whose event arrives before its payment is recorded keeps the payment
    intent or charge it names and is attached when that payment is recorded.

    Attributes:
        status: Stripe's, or ``requested`` until Stripe answers.
        failure_reason: Stripe's ``failure_reason`` of a failed refund.
        note: the editor's note (kept here, never sent to Stripe or the client).
        status_at: Stripe's ``created`` of the event whose status is recorded.
    """

    payment = models.ForeignKey(
        Payment,
        verbose_name=_("payment"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refunds",
    )
    invoice = models.ForeignKey(
        "wagtail_client_billing.Invoice",
        verbose_name=_("invoice"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refunds",
    )
    stripe_refund_id = models.CharField(_("Stripe refund"), max_length=255, blank=True, default="")
    payment_intent_id = models.CharField(max_length=255, blank=True, default="")
    charge_id = models.CharField(max_length=255, blank=True, default="")
    account_id = models.CharField(max_length=64, blank=True, default="")
    amount = models.PositiveBigIntegerField(_("amount (minor units)"))
    currency = models.CharField(_("currency"), max_length=3)
    reason = models.CharField(
        _("reason"), max_length=32, choices=RefundReason.choices, blank=True, default=""
    )
    note = models.TextField(_("note"), blank=True, default="")
    status = models.CharField(
        _("status"), max_length=20, choices=RefundStatus.choices, default=RefundStatus.REQUESTED
    )
    failure_reason = models.CharField(_("failure reason"), max_length=64, blank=True, default="")
    refund_application_fee = models.BooleanField(_("application fee refunded"), default=False)
    request_key = models.CharField(max_length=64, blank=True, default="")
    request_error = models.CharField(_("last error"), max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("refunded by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    status_at = models.DateTimeField(null=True, blank=True)
    #: The client's receipt: when it was wanted (``None``: none is sent, e.g. the site
    #: turned receipts off), when a worker took it, when it went out.
    receipt_queued_at = models.DateTimeField(null=True, blank=True)
    receipt_claimed_at = models.DateTimeField(null=True, blank=True)
    receipt_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_refund_id"],
                condition=~Q(stripe_refund_id=""),
                name="wcb_refund_stripe_id",
            ),
            models.UniqueConstraint(
                fields=["request_key"], condition=~Q(request_key=""), name="wcb_refund_request"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_refund_id or self.request_key} ({self.formatted_amount})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_REFUND_STATUSES
