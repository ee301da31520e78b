"""The events of refunds: ``refund.created``, ``refund.updated``, ``refund.failed`` and
``charge.refunded``.

A refund is matched to its payment by the payment intent or charge it names (recorded on
each :class:`~..models.Payment`), so refunds made in the Stripe dashboard are applied as
well as the app's own. The invoice is locked and checked against the event's account and
mode (:func:`.base.locked_invoice`); :mod:`..billing.refunds` applies the refund once,
whatever the order: a refund's status only moves forward, and the invoice's refunded
amount and status are added up again from its refunds.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from .. import gateway, lifecycle
from ..billing import payments, refunds
from ..stripe_api import expandable_id, text, unix_time
from .base import Applied, Ignored, locked_invoice


def on_refund(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """A refund was created, changed status or failed."""
    state = gateway.refund_from_stripe(obj)
    if not state.id:
        raise Ignored(_("The refund has no id."))
    at = unix_time(event.get("created")) or timezone.now()
    payment = payments.payment_for(payment_intent_id=state.payment_intent, charge_id=state.charge)
    if payment is None:
        # The payment's own event has not been applied yet: keep the refund, attached to
        # the payment when it is recorded.
        refunds.apply_refund(
            state,
            invoice=None,
            source=lifecycle.Source.WEBHOOK,
            at=at,
            account_id=text(event.get("account")),
        )
        return Applied(
            reason=_("No payment recorded here is refunded by %(id)s yet; the refund is kept.")
            % {"id": state.id}
        )
    invoice = locked_invoice(event, payment.invoice)
    refunds.apply_refund(state, invoice=invoice, source=lifecycle.Source.WEBHOOK, at=at)
    return Applied(invoice=invoice)


def on_charge_refunded(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """A charge was refunded, in full or in part, here or anywhere else."""
    payment = payments.payment_for(
        payment_intent_id=expandable_id(obj.get("payment_intent")),
        charge_id=expandable_id(obj.get("id")),
    )
    if payment is None:
        raise Ignored(_("No payment recorded here is this charge."))
    invoice = locked_invoice(event, payment.invoice)
    payment.refresh_from_db()
    refunds.apply_charge(
        invoice,
        payment,
        obj,
        at=unix_time(event.get("created")) or timezone.now(),
        source=lifecycle.Source.WEBHOOK,
    )
    return Applied(invoice=invoice)
