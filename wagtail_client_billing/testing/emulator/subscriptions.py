"""Customers, subscriptions and their invoices.

Checkout makes them when a ``subscription``-mode session is paid (see ``checkout``);
the test controls renew and cancel a subscription.  Prices and products exist only
inline, as the ``price_data`` of a session's line items.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import EmulatorError
from .refunds import RefundsMixin
from .store import new_id, public

_INTERVAL_SECONDS = {"day": 86_400, "week": 7 * 86_400, "month": 30 * 86_400, "year": 365 * 86_400}


class SubscriptionsMixin(RefundsMixin):
    """Customers, subscriptions and invoices, mixed into :class:`~.core.EmulatorState`."""

    def _create_customer(self, email: str, livemode: bool, account: str | None) -> dict[str, Any]:
        """The customer Checkout makes for a session that needs one and names none."""
        customer: dict[str, Any] = {
            "id": new_id("cus_", 14),
            "object": "customer",
            "created": self.now(),
            "email": email,
            "livemode": livemode,
            "metadata": {},
            "_account": account,
        }
        self.customers[customer["id"]] = customer
        return customer

    def _create_subscription(self, session: dict[str, Any], delayed: bool) -> dict[str, Any]:
        # Every recurring line item becomes a subscription item (Checkout refuses
        # recurring prices of different intervals); one-time items are on the first
        # invoice only, so a renewal charges the recurring items' sum.
        recurring_items = [i for i in session["_line_items"] if i["price"]["recurring"]]
        recurring = recurring_items[0]["price"]["recurring"]
        start = self.now()
        end = start + _INTERVAL_SECONDS[recurring["interval"]] * recurring["interval_count"]
        sub_id = new_id("sub_", 24)
        subscription = {
            "id": sub_id,
            "object": "subscription",
            "application": None,
            "billing_cycle_anchor": start,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "collection_method": "charge_automatically",
            "created": start,
            "currency": session["currency"],
            "customer": session["customer"],
            "description": session["_subscription_data"].get("description"),
            "ended_at": None,
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": new_id("si_", 14),
                        "object": "subscription_item",
                        "created": start,
                        "current_period_end": end,
                        "current_period_start": start,
                        "metadata": {},
                        "price": copy.deepcopy(item["price"]),
                        "quantity": item["quantity"],
                        "subscription": sub_id,
                    }
                    for item in recurring_items
                ],
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "latest_invoice": None,
            "livemode": session["livemode"],
            "metadata": dict(session["_subscription_data"].get("metadata", {})),
            "start_date": start,
            "status": "incomplete" if delayed else "active",
            "_account": session["_account"],
            # Renewals: the recurring items, with their tax, and their discount when the
            # coupon lasts "forever" (one lasting "once" discounts the first invoice only).
            "_amount": session.get(
                "_renewal_total", sum(i["amount_total"] for i in recurring_items)
            ),
            "_first_amount": session["amount_total"],
            "_application_fee_percent": session["_subscription_data"].get(
                "application_fee_percent"
            ),
        }
        self.subscriptions[sub_id] = subscription
        session["subscription"] = sub_id
        return subscription

    def _create_invoice(
        self, subscription: dict[str, Any], billing_reason: str, *, paid: bool
    ) -> dict[str, Any]:
        item = subscription["items"]["data"][0]
        first = billing_reason == "subscription_create"
        amount = subscription["_first_amount"] if first else subscription["_amount"]
        now = self.now()
        invoice = {
            "id": new_id("in_", 24),
            "object": "invoice",
            "amount_due": amount,
            "amount_paid": amount if paid else 0,
            "amount_remaining": 0 if paid else amount,
            "attempt_count": 1,
            "attempted": True,
            "billing_reason": billing_reason,
            "collection_method": "charge_automatically",
            "created": now,
            "currency": subscription["currency"],
            "customer": subscription["customer"],
            "customer_email": self.customers.get(subscription["customer"], {}).get("email"),
            "lines": {
                "object": "list",
                # A line per subscription item (a renewal's lines add up to its total).
                "data": [
                    {
                        "id": new_id("il_", 24),
                        "object": "line_item",
                        "amount": (
                            amount
                            if len(subscription["items"]["data"]) == 1
                            else line["price"]["unit_amount"] * line["quantity"]
                        ),
                        "currency": subscription["currency"],
                        "period": {
                            "start": item["current_period_start"],
                            "end": item["current_period_end"],
                        },
                        "quantity": line["quantity"],
                    }
                    for line in subscription["items"]["data"]
                ],
                "has_more": False,
                "url": "/v1/invoices/lines",
            },
            "livemode": subscription["livemode"],
            "metadata": {},
            "parent": {
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(subscription["metadata"]),
                    "subscription": subscription["id"],
                },
                "type": "subscription_details",
            },
            "period_end": item["current_period_end"],
            "period_start": item["current_period_start"],
            "status": "paid" if paid else "open",
            "status_transitions": {"paid_at": now if paid else None},
            "total": amount,
        }
        self.invoices[invoice["id"]] = invoice
        subscription["latest_invoice"] = invoice["id"]
        return invoice

    def _emit_invoice_paid(
        self, invoice: dict[str, Any], *, account: str | None, livemode: bool
    ) -> None:
        """A subscription's invoice was paid: its payment intent and charge, then
        ``invoice.paid`` and ``invoice_payment.paid`` (which names the payment intent;
        since 2025-03-31.basil the invoice itself does not)."""
        subscription = self.subscriptions[invoice["parent"]["subscription_details"]["subscription"]]
        amount = invoice["amount_paid"]
        intent = {
            "id": new_id("pi_", 24),
            "object": "payment_intent",
            "amount": amount,
            "amount_received": amount,
            "currency": invoice["currency"],
            "status": "succeeded",
            "metadata": {},
            "livemode": livemode,
            "_account": account,
        }
        self.payment_intents[intent["id"]] = intent
        percent = subscription.get("_application_fee_percent")
        self._create_charge(
            amount=amount,
            currency=invoice["currency"],
            account=account,
            livemode=livemode,
            payment_intent=intent["id"],
            application_fee_amount=round(amount * float(percent) / 100) if percent else None,
        )
        self.emit("invoice.paid", invoice, account=account, livemode=livemode)
        payment = {
            "id": new_id("inpay_", 24),
            "object": "invoice_payment",
            "amount_paid": amount,
            "amount_requested": amount,
            "created": self.now(),
            "currency": invoice["currency"],
            "invoice": invoice["id"],
            "is_default": True,
            "livemode": livemode,
            "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
            "status": "paid",
            "status_transitions": {"canceled_at": None, "paid_at": self.now()},
        }
        self.emit("invoice_payment.paid", payment, account=account, livemode=livemode)

    # -- test controls -------------------------------------------------------------

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            raise EmulatorError(f"No such subscription: '{subscription_id}'", status=404)
        return subscription

    def renew_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Charge the next period: ``invoice.paid`` then ``customer.subscription.updated``."""
        with self.lock:
            subscription = self.subscription(subscription_id)
            if subscription["status"] not in ("active", "past_due", "trialing"):
                raise EmulatorError(
                    f"Subscription {subscription_id} is {subscription['status']}; only active "
                    "subscriptions renew.",
                    status=409,
                )
            item = subscription["items"]["data"][0]
            previous = {
                "items": copy.deepcopy(subscription["items"]),
                "latest_invoice": subscription["latest_invoice"],
            }
            recurring = item["price"]["recurring"]
            length = _INTERVAL_SECONDS[recurring["interval"]] * recurring["interval_count"]
            start = item["current_period_end"]
            for each in subscription["items"]["data"]:  # every item shares the period
                each["current_period_start"] = start
                each["current_period_end"] = start + length
            invoice = self._create_invoice(subscription, "subscription_cycle", paid=True)
            account, livemode = subscription["_account"], subscription["livemode"]
            self._emit_invoice_paid(invoice, account=account, livemode=livemode)
            self.emit(
                "customer.subscription.updated",
                subscription,
                account=account,
                livemode=livemode,
                previous_attributes=previous,
            )
            return public(invoice)

    def cancel_subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription ended (customer or merchant cancelled): ``...deleted``."""
        with self.lock:
            subscription = self.subscription(subscription_id)
            if subscription["status"] == "canceled":
                raise EmulatorError(f"Subscription {subscription_id} is already canceled.", 409)
            now = self.now()
            subscription.update(status="canceled", canceled_at=now, ended_at=now)
            subscription["cancellation_details"] = {
                "comment": None,
                "feedback": None,
                "reason": "cancellation_requested",
            }
            self.emit(
                "customer.subscription.deleted",
                subscription,
                account=subscription["_account"],
                livemode=subscription["livemode"],
            )
            return public(subscription)
