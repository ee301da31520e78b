"""The ``checkout.session.*`` events: a Checkout Session completed, settled, failed, expired.

Each reads the session with the gateway's one parser, finds the invoice by the
session's ``metadata.invoice_id`` or ``client_reference_id`` (the invoice's primary key,
as the gateway sets them), then by the session id recorded on the invoice, and applies
the session through :mod:`.billing.checkout`, the rules the client's return and
reconciliation use too.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from .. import gateway, lifecycle
from ..billing import checkout
from ..models import Invoice, InvoiceStatus
from ..stripe_api import unix_time
from .base import Applied, Ignored, find_invoice, locked_invoice


def _session_invoice(
    event: dict[str, Any], obj: dict[str, Any]
) -> tuple[Invoice, gateway.CheckoutSession]:
    session = gateway.session_from_stripe(obj)
    invoice = locked_invoice(
        event, find_invoice(pk=checkout.invoice_named_by(session), session_id=session.id)
    )
    if not checkout.session_belongs_to(invoice, session):
        raise Ignored(_("The Checkout Session names another invoice."), invoice)
    return invoice, session


def on_session_completed(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    invoice, session = _session_invoice(event, obj)
    checkout.apply_checkout_session(
        invoice, session, lifecycle.Source.WEBHOOK, at=unix_time(event.get("created"))
    )
    return Applied(invoice=invoice)


def on_async_payment_succeeded(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """The bank debit settled. Stripe's session then says ``payment_status: paid``; an
    event whose session does not is malformed, and money is never assumed from it."""
    invoice, session = _session_invoice(event, obj)
    if session.payment_status not in checkout.PAID_PAYMENT_STATUSES:
        raise Ignored(
            _("The settled payment's Checkout Session is not paid (payment_status %(status)s).")
            % {"status": session.payment_status or "-"},
            invoice,
        )
    checkout.remember_ids(invoice, session)
    checkout.delayed_payment_resolved(invoice, session.id)
    checkout.session_paid(
        invoice, session, lifecycle.Source.WEBHOOK, unix_time(event.get("created"))
    )
    return Applied(invoice=invoice)


def on_async_payment_failed(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """The bank debit failed: back to pending (or expired), with the failure recorded.

    Paid stays paid (the lifecycle has no way back from paid). When the failure
    overtakes its own ``completed (unpaid)`` the invoice is still pending: it goes through
    processing first, so the history and the end state are the same as in order.
    """
    invoice, session = _session_invoice(event, obj)
    if (
        invoice.status == InvoiceStatus.PROCESSING
        and invoice.payment_intent_id
        and session.payment_intent
        and invoice.payment_intent_id != session.payment_intent
    ):
        raise Ignored(_("Another payment of this invoice is processing."), invoice)
    checkout.delayed_payment_resolved(invoice, session.id)
    checkout.close_session(invoice, session.id)
    if invoice.status == InvoiceStatus.PENDING:
        lifecycle.mark_processing(
            invoice, source=lifecycle.Source.WEBHOOK, payment_intent_id=session.payment_intent
        )
    lifecycle.payment_failed(
        invoice,
        source=lifecycle.Source.WEBHOOK,
        reason=_("The client's bank payment failed."),
    )
    return Applied(invoice=invoice)


def on_session_expired(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    invoice, session = _session_invoice(event, obj)
    checkout.forget_session(invoice, session.id)
    return Applied(invoice=invoice)
