"""Refunds: an editor refunds a payment in full or in part; refunds made anywhere applied.

:func:`request_refund` is what the admin's refund screen calls (and site code may): it
checks the amount against what is left of the payment, saves the refund before asking
Stripe (keyed by the editor's confirmation, so a double click or a retry after a timeout
is the same refund with the same idempotency key), then creates it on the connected
account through :mod:`..gateway`. :func:`apply_refund` applies what Stripe says of a
refund (its answer, ``refund.*`` and ``charge.refunded`` events, reconciliation), made
here or in the Stripe dashboard, once, whatever the order: a refund's status only moves
forward (requested, pending, succeeded, failed or canceled), and the invoice's refunded
amount and status are added up again from its refunds each time
(:func:`.payments.refresh_refund_totals`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from wagtail.log_actions import log

from .. import gateway, lifecycle
from ..conf import billing_settings
from ..models import (
    ACTIVE_REFUND_STATUSES,
    ClientBillingSettings,
    Invoice,
    Payment,
    Refund,
    RefundReason,
    RefundStatus,
)
from ..money import format_money
from ..stripe_api import expandable_id, mapping, positive_int
from . import checkout, payments, receipts

logger = logging.getLogger(__name__)

REFUNDED_ACTION = "wagtail_client_billing.refunded"
REFUND_FAILED_ACTION = "wagtail_client_billing.refund_failed"

#: How far along a refund is: a status is applied only over one that is not further.
_RANK = {
    RefundStatus.REQUESTED: 0,
    RefundStatus.REQUIRES_ACTION: 1,
    RefundStatus.PENDING: 1,
    RefundStatus.SUCCEEDED: 2,
    RefundStatus.FAILED: 3,
    RefundStatus.CANCELED: 3,
}


class RefundRefused(Exception):
    """The refund cannot be made; ``str()`` says why, in words for the editor."""


def refundable_payments(invoice: Invoice) -> list[Payment]:
    """The invoice's payments with something left to refund, oldest first."""
    if invoice.status not in lifecycle.MONEY_RECEIVED:
        return []
    return [p for p in invoice.payments.order_by("paid_at", "pk") if available(p) > 0]


def available(payment: Payment) -> int:
    """What is left to refund of ``payment``: its amount less its refunds that are
    pending, succeeded, or asked of Stripe without an answer yet."""
    held = sum(
        payment.refunds.filter(
            Q(status__in=ACTIVE_REFUND_STATUSES) | Q(status=RefundStatus.REQUESTED)
        ).values_list("amount", flat=True)
    )
    return max(payment.amount - max(held, payment.charge_amount_refunded), 0)


def site_refunds_application_fee(invoice: Invoice) -> bool:
    """Whether the site's setting returns the platform's fee with a refund."""
    return bool(
        ClientBillingSettings.objects.filter(site_id=invoice.site_id)
        .values_list("refund_application_fee", flat=True)
        .first()
    )


def check_refund(invoice: Invoice, payment: Payment | None, amount: int) -> None:
    """Refuse a refund of an unpaid invoice, of another invoice's payment, of nothing, or
    of more than is left of the payment.

    Raises:
        RefundRefused: with the reason, for the editor.
    """
    if invoice.status not in lifecycle.MONEY_RECEIVED:
        raise RefundRefused(_("Only a paid invoice can be refunded; this one is not paid."))
    if payment is None or payment.invoice_id != invoice.pk:
        raise RefundRefused(_("That payment is not one of this invoice's."))
    if not (payment.payment_intent_id or payment.charge_id):
        raise RefundRefused(
            _("Stripe has not said which payment this was yet; try again in a minute.")
        )
    if amount <= 0:
        raise RefundRefused(_("Enter an amount to refund greater than zero."))
    left = available(payment)
    if amount > left:
        raise RefundRefused(
            _("You can refund at most %(left)s of this payment (paid %(paid)s).")
            % {
                "left": format_money(left, payment.currency),
                "paid": format_money(payment.amount, payment.currency),
            }
        )


def request_refund(
    invoice: Invoice,
    *,
    payment: Payment,
    amount: int,
    reason: str = RefundReason.REQUESTED_BY_CUSTOMER,
    note: str = "",
    user: Any = None,
    request_key: str,
) -> Refund:
    """Refund ``amount`` (minor units) of ``payment`` on its connected account.

    ``request_key`` identifies the editor's confirmation: asked again with the same key
    (a double click, a retry after Stripe did not answer), the same refund row is used
    and Stripe gets the same idempotency key, so the money is returned once.

    Raises:
        RefundRefused: the refund is not allowed, or Stripe refused or did not answer
            (then asking again with the same key is safe).
    """
    with transaction.atomic():
        lifecycle.lock(invoice)
        refund = Refund.objects.filter(request_key=request_key[:64]).first()
        if refund is None:
            payment.refresh_from_db()
            check_refund(invoice, payment, amount)
            try:
                with transaction.atomic():
                    refund = Refund.objects.create(
                        payment=payment,
                        invoice=invoice,
                        payment_intent_id=payment.payment_intent_id,
                        charge_id=payment.charge_id,
                        account_id=invoice.account.stripe_id,
                        amount=amount,
                        currency=payment.currency,
                        reason=reason if reason in RefundReason.values else "",
                        note=note,
                        refund_application_fee=site_refunds_application_fee(invoice),
                        request_key=request_key[:64],
                        created_by=user,
                    )
            except IntegrityError:
                refund = Refund.objects.get(request_key=request_key[:64])
        elif refund.invoice_id != invoice.pk:
            raise RefundRefused(_("That refund is another invoice's."))
    if refund.stripe_refund_id or refund.status != RefundStatus.REQUESTED:
        return refund  # already made (or refused): a double click changes nothing
    try:
        state = gateway.create_refund(
            test_mode=invoice.test_mode,
            account_id=refund.account_id or invoice.account.stripe_id,
            refund_pk=refund.pk,
            amount=refund.amount,
            payment_intent=refund.payment_intent_id,
            charge=refund.charge_id,
            reason=refund.reason,
            refund_application_fee=refund.refund_application_fee,
            invoice_id=invoice.pk,
        )
    except gateway.GatewayError as exc:
        if exc.idempotency_key_spent:
            # Stripe refused for good (or stored the refusal under the key): nothing was
            # refunded; the row says why, and a new confirmation is a new request.
            Refund.objects.filter(pk=refund.pk, status=RefundStatus.REQUESTED).update(
                status=RefundStatus.CANCELED, request_error=str(exc)[:500]
            )
            raise RefundRefused(str(exc)) from exc
        Refund.objects.filter(pk=refund.pk).update(request_error=str(exc)[:500])
        raise RefundRefused(
            _(
                "%(error)s The refund was not made twice: confirm again to finish it, "
                "or check the invoice in a few minutes."
            )
            % {"error": exc}
        ) from exc
    with transaction.atomic():
        apply_refund(
            state,
            invoice=lifecycle.lock(invoice),
            source=lifecycle.Source.EDITOR,
            user=user,
            refund=refund,
        )
    refund.refresh_from_db()
    return refund


def finish_requested(invoice: Invoice, refund: Refund) -> Refund:
    """Ask Stripe again for a refund left ``requested`` (its answer was lost)."""
    return request_refund(
        invoice,
        payment=refund.payment,  # type: ignore[arg-type]
        amount=refund.amount,
        reason=refund.reason,
        note=refund.note,
        user=refund.created_by,
        request_key=refund.request_key,
    )


@dataclass(frozen=True)
class Outcome:
    refund: Refund | None
    changed: bool


def _rank(status: str) -> int:
    return _RANK.get(status, 1)  # type: ignore[call-overload]


def apply_refund(
    state: gateway.RefundState,
    *,
    invoice: Invoice | None,
    source: str,
    at: datetime | None = None,
    user: Any = None,
    refund: Refund | None = None,
    account_id: str = "",
) -> Outcome:
    """Record what Stripe says of a refund, once, whatever the order it is told in.

    ``invoice`` is the invoice of the refunded payment, locked by the caller (``None``
    when the payment is not recorded yet: the refund is kept and attached when it is).
    The refund row is found by its Stripe id, else by the app's refund id in its
    metadata, else made (a refund made in the dashboard). Its status moves forward only.
    Logs ``refunded`` when a refund's money starts leaving and ``refund_failed`` when it
    fails, once each; then adds up the invoice's refunds again.
    """
    if not state.id:
        return Outcome(None, False)
    row = refund or Refund.objects.filter(stripe_refund_id=state.id).first()
    if row is None:
        named = state.metadata.get("refund_id", "")
        if named.isdigit():
            row = Refund.objects.filter(pk=int(named), stripe_refund_id="").first()
    payment = payments.payment_for(payment_intent_id=state.payment_intent, charge_id=state.charge)
    if payment is not None and invoice is not None and payment.invoice_id != invoice.pk:
        payment = None
    if row is None:
        row = Refund(
            payment=payment,
            invoice=invoice if payment is not None else None,
            stripe_refund_id=state.id,
            payment_intent_id=state.payment_intent,
            charge_id=state.charge,
            account_id=account_id,
            amount=state.amount,
            currency=state.currency or (payment.currency if payment else ""),
            reason=state.reason if state.reason in RefundReason.values else "",
            status=RefundStatus.REQUESTED,
        )
        try:
            with transaction.atomic():
                row.save(force_insert=True)
        except IntegrityError:
            row = Refund.objects.get(stripe_refund_id=state.id)
    old = row.status
    new = state.status if state.status in RefundStatus.values else old
    changed = False
    if _rank(new) >= _rank(old) and (new != old or not row.stripe_refund_id):
        values: dict[str, Any] = {
            "stripe_refund_id": state.id,
            "status": new,
            "failure_reason": state.failure_reason[:64],
            "status_at": at or timezone.now(),
            "request_error": "",
        }
        if state.amount:
            values["amount"] = state.amount
        changed = bool(Refund.objects.filter(pk=row.pk, status=old).update(**values))
        if changed:
            for name, value in values.items():
                setattr(row, name, value)
    if row.invoice_id is None and payment is not None:
        Refund.objects.filter(pk=row.pk).update(payment=payment, invoice=payment.invoice_id)
        row.payment, row.invoice_id = payment, payment.invoice_id
    target = invoice if invoice is not None and row.invoice_id == invoice.pk else None
    if target is None:
        return Outcome(row, changed)
    if changed:
        became_active = new in ACTIVE_REFUND_STATUSES and old not in ACTIVE_REFUND_STATUSES
        # A failed refund: the charge's snapshot may still count it, and the refund's
        # own event is newer; an older charge.refunded arriving later is not applied.
        if new == RefundStatus.FAILED and row.payment_id is not None:
            Payment.objects.filter(pk=row.payment_id).update(
                charge_amount_refunded=0, charge_refunded_at=at or timezone.now()
            )
        if became_active:
            receipts.queue_receipt("refund", row, target)
        if became_active or new == RefundStatus.FAILED:
            log(
                instance=target,
                action=REFUNDED_ACTION if became_active else REFUND_FAILED_ACTION,
                user=user,
                data={
                    "refund": row.stripe_refund_id,
                    "amount": row.amount,
                    "currency": row.currency,
                    "reason": row.reason,
                    "failure_reason": row.failure_reason,
                    "note": row.note,
                },
            )
    payments.refresh_refund_totals(target, source=source, user=user)
    return Outcome(row, changed)


def apply_charge(
    invoice: Invoice, payment: Payment, charge: dict[str, Any], *, at: datetime, source: str
) -> None:
    """``charge.refunded``: the charge's own refunded amount, newer than what is recorded.

    Counts a refund whose own event was lost (or not selected); refunds listed in the
    charge (when Stripe includes them) are applied one by one. The caller holds the
    invoice's row lock.
    """
    values: dict[str, Any] = {}
    charge_id = expandable_id(charge.get("id"))
    if charge_id and not payment.charge_id:
        values["charge_id"] = charge_id
    refunded = positive_int(charge.get("amount_refunded")) or 0
    if payment.charge_refunded_at is None or payment.charge_refunded_at <= at:
        values["charge_amount_refunded"] = min(refunded, payment.amount)
        values["charge_refunded_at"] = at
    if values:
        try:
            with transaction.atomic():
                Payment.objects.filter(pk=payment.pk).update(**values)
        except IntegrityError:
            values.pop("charge_id", None)
            Payment.objects.filter(pk=payment.pk).update(**values)
    listed = mapping(charge.get("refunds")).get("data")
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, dict):
            apply_refund(gateway.refund_from_stripe(item), invoice=invoice, source=source, at=at)
    payments.refresh_refund_totals(invoice, source=source)


# --- reconciliation: refunds whose webhook was lost ------------------------------------------


def payments_to_reconcile(now: datetime | None = None) -> Any:
    """Payments made within ``RECONCILE_PAYMENTS_WINDOW_DAYS`` of invoices that received
    money, with an id Stripe's refunds can be listed by; none when the window is off."""
    since = payments.reconcile_window_start(now)
    if since is None:
        return Payment.objects.none()
    return (
        Payment.objects.select_related("invoice__account")
        .filter(paid_at__gte=since, invoice__status__in=lifecycle.MONEY_RECEIVED)
        .exclude(payment_intent_id="", charge_id="")
        .order_by("pk")
    )


def reconcile_refunds(limit: int | None = None) -> checkout.ReconcileReport:
    """List each recent payment's refunds from Stripe and apply them, at the background
    tasks' rate (``STRIPE_TASK_RATE_LIMIT``): one Stripe request per payment; a failure
    is reported and the run goes on. Called by the reconciliation task and command."""
    report = checkout.ReconcileReport()
    rates = billing_settings.STRIPE_TASK_RATE_LIMIT
    pacers = {mode: checkout.Pacer(rates.get(mode, 20)) for mode in ("test", "live")}
    candidates = payments_to_reconcile()
    if limit:
        candidates = candidates[:limit]
    for payment in candidates.iterator(chunk_size=500):
        invoice = payment.invoice
        report.checked += 1
        pacers["test" if invoice.test_mode else "live"].wait()
        try:
            states = gateway.list_refunds(
                test_mode=invoice.test_mode,
                account_id=invoice.account.stripe_id,
                payment_intent=payment.payment_intent_id,
                charge=payment.charge_id if not payment.payment_intent_id else "",
            )
        except gateway.GatewayError as exc:
            report.errors.append(f"{invoice.number}: {exc}")
            report.count("error")
            continue
        changed = 0
        with transaction.atomic():
            lifecycle.lock(invoice)
            for state in states:
                changed += apply_refund(
                    state, invoice=invoice, source=lifecycle.Source.RECONCILE
                ).changed
        report.count("refunds_applied" if changed else "refunds_unchanged")
    if report.checked:
        logger.info("Reconciled refunds: %s", report)
    return report
