"""Which handler applies which Stripe event type.

:data:`HANDLERS` is what :func:`.intake.dispatch` looks up; its keys,
:data:`HANDLED_EVENT_TYPES`, are also the events ``client_billing_stripe_check`` expects
a webhook endpoint to listen to and the docs ask a site to select in Stripe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import accounts, checkout, disputes, refunds, subscriptions
from .base import Applied

#: A handler: ``(event, event["data"]["object"]) -> Applied``; it may raise
#: :class:`~.base.Ignored`.
Handler = Callable[[dict[str, Any], dict[str, Any]], Applied]

#: Event type -> its handler.
HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": checkout.on_session_completed,
    "checkout.session.async_payment_succeeded": checkout.on_async_payment_succeeded,
    "checkout.session.async_payment_failed": checkout.on_async_payment_failed,
    "checkout.session.expired": checkout.on_session_expired,
    "invoice.paid": subscriptions.on_invoice_paid,
    "invoice_payment.paid": subscriptions.on_invoice_payment_paid,
    "customer.subscription.created": subscriptions.on_subscription_changed,
    "customer.subscription.updated": subscriptions.on_subscription_changed,
    "customer.subscription.deleted": subscriptions.on_subscription_changed,
    "invoice.payment_failed": subscriptions.on_invoice_payment_failed,
    "charge.refunded": refunds.on_charge_refunded,
    "refund.created": refunds.on_refund,
    "refund.updated": refunds.on_refund,
    "refund.failed": refunds.on_refund,
    "account.updated": accounts.on_account_updated,
    "account.application.deauthorized": accounts.on_account_deauthorized,
    "charge.dispute.created": disputes.on_dispute_event,
    "charge.dispute.updated": disputes.on_dispute_event,
    "charge.dispute.closed": disputes.on_dispute_event,
    "charge.dispute.funds_withdrawn": disputes.on_dispute_event,
    "charge.dispute.funds_reinstated": disputes.on_dispute_event,
}

#: The event types to select for the webhook endpoint in the Stripe dashboard.
HANDLED_EVENT_TYPES = tuple(HANDLERS)
