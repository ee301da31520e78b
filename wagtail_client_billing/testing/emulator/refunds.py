"""Charges and refunds: each payment's charge, and refunds of it (Stripe's Refunds API).

Every paid payment intent (a Checkout payment, a subscription's invoice) gets a charge
(``ch_...``) with its ``amount_refunded``. ``POST /v1/refunds`` refunds a payment intent
or a charge on the connected account that owns it (the ``Stripe-Account`` header), in
full or in part, never more than is left (Stripe's ``charge_already_refunded`` and
``amount`` errors), with ``refund_application_fee`` returning the platform's fee in
proportion. A card refund succeeds at once and emits ``refund.created`` and
``charge.refunded`` (the charge without its ``refunds`` list, which Stripe no longer
includes); the :meth:`fail_refund` control makes a refund fail later, as Stripe's test
card ``4000000000005126`` does (``succeeded`` then ``failed`` with
``expired_or_canceled_card``): ``refund.updated`` and ``refund.failed``, and the amount
returns to the charge.
"""

from __future__ import annotations

from typing import Any

from .errors import EmulatorError, StripeError
from .store import RequestContext, Store, new_id, public


class RefundsMixin(Store):
    # -- charges (made by the payment flows) -------------------------------------------

    def _create_charge(
        self,
        *,
        amount: int,
        currency: str,
        account: str | None,
        livemode: bool,
        payment_intent: str | None,
        application_fee_amount: int | None = None,
    ) -> dict[str, Any]:
        charge: dict[str, Any] = {
            "id": new_id("ch_", 24),
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "application_fee_amount": application_fee_amount,
            "captured": True,
            "created": self.now(),
            "currency": currency,
            "disputed": False,
            "livemode": livemode,
            "metadata": {},
            "paid": True,
            "payment_intent": payment_intent,
            "refunded": False,
            "status": "succeeded",
            "_account": account,
            "_fee_refunded": 0,
        }
        self.charges[charge["id"]] = charge
        if payment_intent and payment_intent in self.payment_intents:
            self.payment_intents[payment_intent]["latest_charge"] = charge["id"]
        return charge

    def _charge_to_refund(self, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        charge_id = p.get("charge")
        intent_id = p.get("payment_intent")
        if bool(charge_id) == bool(intent_id):
            raise StripeError(
                "You must pass either `charge` or `payment_intent`, but not both."
                if charge_id
                else "One of the following params should be provided for this request: "
                "charge or payment_intent.",
            )
        if intent_id:
            intent = self.payment_intents.get(intent_id)
            if intent is None or intent.get("_account") != ctx.account:
                raise StripeError(
                    f"No such payment_intent: '{intent_id}'",
                    param="payment_intent",
                    code="resource_missing",
                    status=404,
                )
            charge_id = intent.get("latest_charge")
            if not charge_id:
                raise StripeError(
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to "
                    "refund.",
                    param="payment_intent",
                )
        charge = self.charges.get(charge_id or "")
        if charge is None or charge["_account"] != ctx.account:
            raise StripeError(
                f"No such charge: '{charge_id}'",
                param="charge",
                code="resource_missing",
                status=404,
            )
        if charge["livemode"] != ctx.livemode:
            raise StripeError(f"No such charge: '{charge_id}'", param="charge", status=404)
        return charge

    # -- the API -----------------------------------------------------------------------

    def api_create_refund(self, *, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        p = self._validated("refund.create", params)
        if "reverse_transfer" in p:
            raise StripeError(
                "`reverse_transfer` can only be used with destination charges or charges "
                "made on behalf of another account.",
                param="reverse_transfer",
            )
        with self.lock:
            charge = self._charge_to_refund(p, ctx)
            left = charge["amount"] - charge["amount_refunded"]
            if left <= 0:
                raise StripeError(
                    f"Charge {charge['id']} has already been refunded.",
                    code="charge_already_refunded",
                )
            amount = p.get("amount", left)
            if not isinstance(amount, int) or amount <= 0:
                raise StripeError("Invalid positive integer", param="amount")
            if amount > left:
                raise StripeError(
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                    f"({left})",
                    param="amount",
                )
            fee = charge["application_fee_amount"] or 0
            if p.get("refund_application_fee") and fee:
                if charge["amount_refunded"] + amount >= charge["amount"]:
                    charge["_fee_refunded"] = fee
                else:
                    charge["_fee_refunded"] += fee * amount // charge["amount"]
            ctx.executing = True
            refund = {
                "id": new_id("re_", 24),
                "object": "refund",
                "amount": amount,
                "balance_transaction": new_id("txn_", 24),
                "charge": charge["id"],
                "created": self.now(),
                "currency": charge["currency"],
                "destination_details": None,
                "metadata": dict(p.get("metadata") or {}),
                "payment_intent": charge["payment_intent"],
                "reason": p.get("reason"),
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": "succeeded",
                "transfer_reversal": None,
                "_account": ctx.account,
                "_livemode": charge["livemode"],
                "_seq": self._created_seq + 1,
            }
            self._created_seq += 1
            self.refunds[refund["id"]] = refund
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            account, livemode = charge["_account"], charge["livemode"]
            self.emit("refund.created", refund, account=account, livemode=livemode, ctx=ctx)
            self.emit("charge.refunded", charge, account=account, livemode=livemode, ctx=ctx)
            return public(refund)

    def _refund_for(self, refund_id: str, ctx: RequestContext) -> dict[str, Any]:
        refund = self.refunds.get(refund_id)
        if (
            refund is None
            or refund["_account"] != ctx.account
            or refund["_livemode"] != ctx.livemode
        ):
            raise StripeError(
                f"No such refund: '{refund_id}'", param="id", code="resource_missing", status=404
            )
        return refund

    def api_retrieve_refund(
        self, refund_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("refund.retrieve", params)
        with self.lock:
            return public(self._refund_for(refund_id, ctx))

    def api_list_refunds(self, *, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        p = self._validated("refund.list", params)
        limit = int(p.get("limit", 10))
        if not 1 <= limit <= 100:
            raise StripeError("Invalid limit: must be between 1 and 100", param="limit")
        with self.lock:
            found = [
                r
                for r in sorted(self.refunds.values(), key=lambda r: r["_seq"], reverse=True)
                if r["_account"] == ctx.account
                and r["_livemode"] == ctx.livemode
                and (not p.get("charge") or r["charge"] == p["charge"])
                and (not p.get("payment_intent") or r["payment_intent"] == p["payment_intent"])
            ]
            return {
                "object": "list",
                "data": [public(r) for r in found[:limit]],
                "has_more": len(found) > limit,
                "url": "/v1/refunds",
            }

    # -- test controls -----------------------------------------------------------------

    def charge(self, charge_id: str) -> dict[str, Any]:
        charge = self.charges.get(charge_id)
        if charge is None:
            raise EmulatorError(f"No such charge: '{charge_id}'", status=404)
        return charge

    def fail_refund(self, refund_id: str) -> dict[str, Any]:
        """The refund failed after it was made (the card was closed): its amount returns to
        the charge; ``refund.updated`` and ``refund.failed``."""
        with self.lock:
            refund = self.refunds.get(refund_id)
            if refund is None:
                raise EmulatorError(f"No such refund: '{refund_id}'", status=404)
            if refund["status"] in ("failed", "canceled"):
                raise EmulatorError(f"Refund {refund_id} is already {refund['status']}.", 409)
            refund["status"] = "failed"
            refund["failure_reason"] = "expired_or_canceled_card"
            refund["failure_balance_transaction"] = new_id("txn_", 24)
            charge = self.charges[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = False
            account, livemode = refund["_account"], refund["_livemode"]
            self.emit("refund.updated", refund, account=account, livemode=livemode)
            self.emit("refund.failed", refund, account=account, livemode=livemode)
            return public(refund)
