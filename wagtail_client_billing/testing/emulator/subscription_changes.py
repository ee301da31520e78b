"""Changing a subscription: cancel now, cancel at the period's end and undo that, and a
renewal whose payment fails.

As Stripe documents them (docs.stripe.com/billing/subscriptions/cancel and the
subscription and invoice objects):

* ``DELETE /v1/subscriptions/<id>`` ends it now: ``status=canceled``, ``canceled_at``
  and ``ended_at`` set, ``customer.subscription.deleted``.
* ``POST /v1/subscriptions/<id>`` with ``cancel_at_period_end=true`` keeps it active
  until the current period ends (``cancel_at`` is that time, ``canceled_at`` now);
  ``false`` undoes it. Each is a ``customer.subscription.updated`` with
  ``previous_attributes``. When the period ends, the subscription is deleted instead
  of renewed.
* A renewal whose charge fails leaves its invoice ``open`` with ``attempted=true``,
  ``attempt_count``, ``next_payment_attempt`` and a ``hosted_invoice_url`` where the
  customer pays and updates the card; ``invoice.payment_failed`` is sent and the
  subscription moves to ``past_due`` (``customer.subscription.updated``).

The test controls do the same as the customer (in Stripe's portal) or the account's
own Dashboard would: ``schedule_cancellation``, ``undo_cancellation``, ``fail_renewal``.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import EmulatorError, StripeError
from .store import RequestContext, public
from .subscriptions import SubscriptionsMixin

_LIVE = ("active", "past_due", "trialing", "unpaid", "paused")
#: Stripe's Smart Retries try again within days; the emulator says three.
RETRY_SECONDS = 3 * 86_400


class SubscriptionChangesMixin(SubscriptionsMixin):
    """Cancellations and failed renewals, mixed into :class:`~.core.EmulatorState`."""

    def _subscription_for(self, subscription_id: str, ctx: RequestContext) -> dict[str, Any]:
        subscription = self.subscriptions.get(subscription_id)
        if (
            subscription is None
            or subscription["_account"] != ctx.account
            or subscription["livemode"] != ctx.livemode
        ):
            raise StripeError(
                f"No such subscription: '{subscription_id}'",
                status=404,
                code="resource_missing",
                param="id",
            )
        return subscription

    # -- the API -----------------------------------------------------------------------

    def api_cancel_subscription(
        self, subscription_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("subscription.cancel", params)
        subscription = self._subscription_for(subscription_id, ctx)
        if subscription["status"] in ("canceled", "incomplete_expired"):
            raise StripeError(
                f"A canceled subscription can only update its cancellation_details and "
                f"metadata. ({subscription_id})",
                status=400,
            )
        self._end_subscription(subscription, ctx=ctx)
        return public(subscription)

    def api_update_subscription(
        self, subscription_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        p = self._validated("subscription.update", params)
        unsupported = set(p) - {"cancel_at_period_end", "metadata", "expand"}
        if unsupported:
            raise StripeError(
                f"The emulator does not update {', '.join(sorted(unsupported))} of a subscription.",
                status=400,
            )
        subscription = self._subscription_for(subscription_id, ctx)
        if subscription["status"] in ("canceled", "incomplete_expired"):
            raise StripeError(
                "A canceled subscription can only update its cancellation_details and metadata.",
                status=400,
            )
        if "cancel_at_period_end" in p:
            self._set_cancel_at_period_end(subscription, bool(p["cancel_at_period_end"]), ctx=ctx)
        return public(subscription)

    # -- the test controls ---------------------------------------------------------------

    def schedule_cancellation(self, subscription_id: str) -> dict[str, Any]:
        """The customer cancelled in Stripe's portal: ends at the period's end."""
        with self.lock:
            subscription = self.subscription(subscription_id)
            if subscription["status"] not in _LIVE:
                raise EmulatorError(f"Subscription {subscription_id} has ended.", 409)
            self._set_cancel_at_period_end(subscription, True)
            return public(subscription)

    def undo_cancellation(self, subscription_id: str) -> dict[str, Any]:
        """The scheduled cancellation was withdrawn (in the Dashboard or the portal)."""
        with self.lock:
            subscription = self.subscription(subscription_id)
            if subscription["status"] not in _LIVE:
                raise EmulatorError(f"Subscription {subscription_id} has ended.", 409)
            self._set_cancel_at_period_end(subscription, False)
            return public(subscription)

    def fail_renewal(self, subscription_id: str) -> dict[str, Any]:
        """The next period's charge fails: ``invoice.payment_failed`` and the
        subscription ``past_due``; a second call is the next attempt of the same invoice."""
        with self.lock:
            subscription = self.subscription(subscription_id)
            if subscription["status"] not in ("active", "past_due", "trialing"):
                raise EmulatorError(f"Subscription {subscription_id} does not renew.", 409)
            previous: dict[str, Any] = {"status": subscription["status"]}
            latest = self.invoices.get(subscription.get("latest_invoice") or "")
            if latest is not None and latest["status"] == "open":
                invoice = latest
                invoice["attempt_count"] += 1
            else:
                item = subscription["items"]["data"][0]
                previous["items"] = copy.deepcopy(subscription["items"])
                previous["latest_invoice"] = subscription["latest_invoice"]
                length = item["current_period_end"] - item["current_period_start"]
                item["current_period_start"] = item["current_period_end"]
                item["current_period_end"] = item["current_period_start"] + length
                invoice = self._create_invoice(subscription, "subscription_cycle", paid=False)
                invoice["hosted_invoice_url"] = f"{self.public_url}/invoice/{invoice['id']}"
            invoice["next_payment_attempt"] = self.now() + RETRY_SECONDS
            account, livemode = subscription["_account"], subscription["livemode"]
            self.emit("invoice.payment_failed", invoice, account=account, livemode=livemode)
            if subscription["status"] != "past_due":
                subscription["status"] = "past_due"
                self.emit(
                    "customer.subscription.updated",
                    subscription,
                    account=account,
                    livemode=livemode,
                    previous_attributes=previous,
                )
            return public(invoice)

    def pay_failed_renewal(self, subscription_id: str) -> dict[str, Any]:
        """A retry succeeds, or the customer pays on the hosted invoice page: the open
        invoice is paid (``invoice.paid``) and the subscription active again."""
        with self.lock:
            subscription = self.subscription(subscription_id)
            invoice = self.invoices.get(subscription.get("latest_invoice") or "")
            if invoice is None or invoice["status"] != "open":
                raise EmulatorError(f"Subscription {subscription_id} has no unpaid renewal.", 409)
            now = self.now()
            invoice.update(
                status="paid",
                amount_paid=invoice["amount_due"],
                amount_remaining=0,
                next_payment_attempt=None,
                status_transitions={"paid_at": now},
            )
            account, livemode = subscription["_account"], subscription["livemode"]
            self.emit("invoice.paid", invoice, account=account, livemode=livemode)
            previous = {"status": subscription["status"]}
            subscription["status"] = "active"
            self.emit(
                "customer.subscription.updated",
                subscription,
                account=account,
                livemode=livemode,
                previous_attributes=previous,
            )
            return public(invoice)

    def end_period(self, subscription_id: str) -> dict[str, Any]:
        """The current period ends: a subscription set to cancel at its end is deleted;
        any other renews (``renew_subscription``)."""
        with self.lock:
            subscription = self.subscription(subscription_id)
            if subscription["cancel_at_period_end"]:
                self._end_subscription(subscription)
                return public(subscription)
        return self.renew_subscription(subscription_id)

    # -- shared ----------------------------------------------------------------------------

    def _set_cancel_at_period_end(
        self, subscription: dict[str, Any], cancel: bool, *, ctx: RequestContext | None = None
    ) -> None:
        if subscription["cancel_at_period_end"] == cancel:
            return
        previous = {
            "cancel_at_period_end": subscription["cancel_at_period_end"],
            "cancel_at": subscription["cancel_at"],
            "canceled_at": subscription["canceled_at"],
        }
        end = subscription["items"]["data"][0]["current_period_end"]
        subscription.update(
            cancel_at_period_end=cancel,
            cancel_at=end if cancel else None,
            canceled_at=self.now() if cancel else None,
        )
        subscription["cancellation_details"] = {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if cancel else None,
        }
        self.emit(
            "customer.subscription.updated",
            subscription,
            account=subscription["_account"],
            livemode=subscription["livemode"],
            ctx=ctx,
            previous_attributes=previous,
        )

    def _end_subscription(
        self, subscription: dict[str, Any], *, ctx: RequestContext | None = None
    ) -> None:
        now = self.now()
        subscription.update(
            status="canceled",
            canceled_at=subscription["canceled_at"] or now,
            ended_at=now,
            cancel_at_period_end=False,
        )
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
            ctx=ctx,
        )
