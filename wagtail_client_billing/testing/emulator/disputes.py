"""Disputes: a cardholder disputes a payment, and the dispute is answered, won or lost.

Stripe's documented life of a dispute (docs.stripe.com/disputes/how-disputes-work and
the ``dispute`` object): a chargeback opens as ``needs_response`` (an inquiry as
``warning_needs_response``) with ``charge.dispute.created``, and for a chargeback the
funds leave the balance at once (``charge.dispute.funds_withdrawn``). Evidence moves it
to ``under_review`` (``charge.dispute.updated``). It closes as ``won`` (``.closed``,
then ``.funds_reinstated``) or ``lost`` (``.closed``); an inquiry closes as
``warning_closed``. Every event carries the whole dispute as it is then.

The test controls open one on a payment intent (or its charge) and move it on;
``GET /v1/disputes/<id>`` and ``GET /v1/disputes?payment_intent=`` read them back.
"""

from __future__ import annotations

from typing import Any

from . import rules
from .errors import EmulatorError, StripeError
from .store import RequestContext, Store, new_id, public

#: ``dispute.reason`` values Stripe documents.
REASONS = frozenset(
    {
        "bank_cannot_process",
        "check_returned",
        "credit_not_processed",
        "customer_initiated",
        "debit_not_authorized",
        "duplicate",
        "fraudulent",
        "general",
        "incorrect_account_details",
        "insufficient_funds",
        "noncompliant",
        "product_not_received",
        "product_unacceptable",
        "subscription_canceled",
        "unrecognized",
    }
)
#: How long the account has to answer: Stripe's ``evidence_details.due_by`` is set by
#: the card network (usually 7 to 21 days); the emulator uses 14.
EVIDENCE_DAYS = 14


class DisputesMixin(Store):
    """Disputes, mixed into :class:`~.core.EmulatorState`."""

    def _intent_of(self, payment: str) -> tuple[dict[str, Any], str | None]:
        """The payment intent named by its id or its charge's, and its account."""
        intent = self.payment_intents.get(payment)
        if intent is None:
            intent = next(
                (i for i in self.payment_intents.values() if i.get("latest_charge") == payment),
                None,
            )
        if intent is None:
            raise EmulatorError(f"No such payment_intent or charge: '{payment}'", status=404)
        if intent.get("status") != "succeeded":
            raise EmulatorError(
                f"Payment intent {intent['id']} is {intent.get('status')}: only a succeeded "
                "payment can be disputed.",
                status=409,
            )
        session = next(
            (s for s in self.checkout_sessions.values() if s.get("payment_intent") == intent["id"]),
            None,
        )
        account = intent.get("_account") or (session["_account"] if session else None)
        return intent, account

    def dispute(self, dispute_id: str) -> dict[str, Any]:
        found = self.disputes.get(dispute_id)
        if found is None:
            raise EmulatorError(f"No such dispute: '{dispute_id}'", status=404)
        return found

    def open_dispute(
        self, payment: str, *, reason: str = "fraudulent", inquiry: bool = False
    ) -> dict[str, Any]:
        """The cardholder disputed the payment: ``charge.dispute.created`` (and, for a
        chargeback, ``charge.dispute.funds_withdrawn``)."""
        if reason not in REASONS:
            raise EmulatorError(f"Unknown dispute reason: '{reason}'", status=400)
        with self.lock:
            intent, account = self._intent_of(payment)
            charge = intent.get("latest_charge") or new_id("ch_", 24)
            intent["latest_charge"] = charge
            if any(d["charge"] == charge for d in self.disputes.values()):
                raise EmulatorError(f"Charge {charge} is already disputed.", status=409)
            now = self.now()
            dispute: dict[str, Any] = {
                "id": new_id("du_", 24),
                "object": "dispute",
                "amount": intent["amount"],
                "balance_transactions": [],
                "charge": charge,
                "created": now,
                "currency": intent["currency"],
                "evidence": {"uncategorized_text": None},
                "evidence_details": {
                    "due_by": now + EVIDENCE_DAYS * 86_400,
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                },
                "is_charge_refundable": False,
                "livemode": intent["livemode"],
                "metadata": {},
                "payment_intent": intent["id"],
                "reason": reason,
                "status": "warning_needs_response" if inquiry else "needs_response",
                "_account": account,
            }
            self.disputes[dispute["id"]] = dispute
            self._emit_dispute("charge.dispute.created", dispute)
            if not inquiry:
                dispute["balance_transactions"].append(self._dispute_txn(dispute, -1))
                self._emit_dispute("charge.dispute.funds_withdrawn", dispute)
            return public(dispute)

    def submit_dispute_evidence(self, dispute_id: str) -> dict[str, Any]:
        """Evidence submitted: ``under_review`` with ``charge.dispute.updated``."""
        with self.lock:
            dispute = self._open(dispute_id)
            previous = {"status": dispute["status"]}
            inquiry = dispute["status"].startswith("warning_")
            dispute["status"] = "warning_under_review" if inquiry else "under_review"
            details = dispute["evidence_details"]
            details.update(has_evidence=True, submission_count=details["submission_count"] + 1)
            self._emit_dispute("charge.dispute.updated", dispute, previous)
            return public(dispute)

    def win_dispute(self, dispute_id: str) -> dict[str, Any]:
        """Won: ``charge.dispute.closed``, then ``.funds_reinstated`` for a chargeback
        (an inquiry closes as ``warning_closed``, no money having moved)."""
        with self.lock:
            dispute = self._open(dispute_id)
            inquiry = dispute["status"].startswith("warning_")
            dispute["status"] = "warning_closed" if inquiry else "won"
            self._emit_dispute("charge.dispute.closed", dispute)
            if not inquiry:
                dispute["balance_transactions"].append(self._dispute_txn(dispute, 1))
                self._emit_dispute("charge.dispute.funds_reinstated", dispute)
            return public(dispute)

    def lose_dispute(self, dispute_id: str) -> dict[str, Any]:
        """Lost: ``charge.dispute.closed`` with ``lost``; the withdrawn funds stay gone."""
        with self.lock:
            dispute = self._open(dispute_id)
            if dispute["status"].startswith("warning_"):
                raise EmulatorError("An inquiry is not lost; it becomes a chargeback.", 409)
            dispute["status"] = "lost"
            self._emit_dispute("charge.dispute.closed", dispute)
            return public(dispute)

    def _open(self, dispute_id: str) -> dict[str, Any]:
        dispute = self.dispute(dispute_id)
        if dispute["status"] in ("won", "lost", "warning_closed", "prevented"):
            raise EmulatorError(f"Dispute {dispute_id} is closed ({dispute['status']}).", 409)
        return dispute

    def _dispute_txn(self, dispute: dict[str, Any], sign: int) -> dict[str, Any]:
        return {
            "id": new_id("txn_", 24),
            "object": "balance_transaction",
            "amount": sign * dispute["amount"],
            "currency": dispute["currency"],
            "created": self.now(),
            "reporting_category": "dispute" if sign < 0 else "dispute_reversal",
            "type": "adjustment",
        }

    def _emit_dispute(
        self, type: str, dispute: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> None:
        self.emit(
            type,
            dispute,
            account=dispute["_account"],
            livemode=dispute["livemode"],
            previous_attributes=previous,
        )

    # -- the API ---------------------------------------------------------------------

    def api_retrieve_dispute(
        self, dispute_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("dispute.retrieve", params)
        dispute = self.disputes.get(dispute_id)
        if (
            dispute is None
            or dispute["_account"] != ctx.account
            or dispute["livemode"] != ctx.livemode
        ):
            raise StripeError(
                f"No such dispute: '{dispute_id}'",
                status=404,
                code="resource_missing",
                param="dispute",
            )
        return public(dispute)

    def api_list_disputes(self, *, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        p = self._validated("dispute.list", params)
        disputes = [
            d
            for d in self.disputes.values()
            if d["_account"] == ctx.account and d["livemode"] == ctx.livemode
        ]
        disputes.sort(key=lambda d: (d["created"], d["id"]), reverse=True)
        for name in ("charge", "payment_intent"):
            if name in p:
                disputes = [d for d in disputes if d[name] == p[name]]
        created = p.get("created")
        if isinstance(created, dict):
            bounds = {k: int(v) for k, v in created.items() if k in ("gt", "gte", "lt", "lte")}
            disputes = [
                d
                for d in disputes
                if d["created"] >= bounds.get("gte", d["created"])
                and d["created"] > bounds.get("gt", d["created"] - 1)
                and d["created"] <= bounds.get("lte", d["created"])
                and d["created"] < bounds.get("lt", d["created"] + 1)
            ]
        elif created is not None:
            disputes = [d for d in disputes if d["created"] == int(created)]
        return rules.paginate(disputes, p, url="/v1/disputes", object_name="dispute", render=public)
