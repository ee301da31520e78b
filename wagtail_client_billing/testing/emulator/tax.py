"""Tax rates, coupons, promotion codes, Stripe Tax settings, and a session's totals.

API operations on ``/v1/tax_rates``, ``/v1/coupons``, ``/v1/promotion_codes`` and
``/v1/tax/settings``, and :func:`session_totals`, which works out a Checkout Session's
``amount_subtotal``, ``total_details`` and ``amount_total`` from its line items, their
tax rates and its discount the way Stripe documents it:

* a coupon applies to the session: ``amount_off`` (at most the subtotal), or
  ``percent_off`` of the subtotal rounded to the nearest minor unit (a half up); the
  discount is shared among the line items in proportion to their amounts (whole minor
  units: each line's share rounded down, the units left over to the lines with the
  largest remainders, earlier lines first);
* each line's tax is worked out on what remains of it after its share of the discount,
  rounded to the nearest minor unit (a half up): an exclusive rate adds
  ``percentage`` percent, an inclusive one is the ``percentage / (100 + percentage)``
  part of it.

Written apart from the app's own ``pricing`` module on purpose (the emulator knows
nothing of the app): if the two readings differed, a test comparing them fails.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .errors import StripeError, resource_missing
from .store import RequestContext, Store, new_id, public

#: The tax Stripe Tax works out in the emulator, on top of the prices, once the client
#: has given an address (Stripe's depends on the address; the emulator's is fixed).
AUTOMATIC_TAX_PERCENT = Decimal(10)


def _nearest(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def session_totals(
    amounts: list[int],
    rates: list[dict[str, Any] | None],
    coupon: dict[str, Any] | None,
) -> dict[str, Any]:
    """A session's figures: per line ``discount``, ``tax``, ``total``; and the sums."""
    subtotal = sum(amounts)
    discount = 0
    if coupon is not None and subtotal > 0:
        if coupon.get("amount_off") is not None:
            discount = min(int(coupon["amount_off"]), subtotal)
        else:
            discount = min(
                _nearest(Decimal(subtotal) * Decimal(str(coupon["percent_off"])) / 100),
                subtotal,
            )
    shares = [0] * len(amounts)
    if discount and subtotal:
        exact = [(Decimal(discount) * a) / subtotal for a in amounts]
        shares = [int(x) for x in exact]  # rounded down: all non-negative
        rest = discount - sum(shares)
        by_remainder = sorted(range(len(amounts)), key=lambda i: (shares[i] - exact[i], i))
        for i in by_remainder[:rest]:
            shares[i] += 1
    lines = []
    for amount, share, rate in zip(amounts, shares, rates, strict=True):
        taxable = amount - share
        tax = 0
        added = 0
        if rate is not None:
            percent = Decimal(str(rate["percentage"]))
            if rate["inclusive"]:
                tax = _nearest(Decimal(taxable) * percent / (100 + percent))
            else:
                tax = _nearest(Decimal(taxable) * percent / 100)
                added = tax
        lines.append({"discount": share, "tax": tax, "total": taxable + added, "taxable": taxable})
    return {
        "subtotal": subtotal,
        "discount": discount,
        "tax": sum(line["tax"] for line in lines),
        "total": sum(line["total"] for line in lines),
        "lines": lines,
    }


class TaxMixin(Store):
    """Tax rates, coupons, promotion codes and tax settings, mixed into the state."""

    PERSISTED: tuple[str, ...] = (
        *Store.PERSISTED,
        "tax_rates",
        "coupons",
        "promotion_codes",
        "tax_settings",
    )

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.tax_rates: dict[str, dict[str, Any]] = {}
            self.coupons: dict[str, dict[str, Any]] = {}
            self.promotion_codes: dict[str, dict[str, Any]] = {}
            #: Stripe Tax's settings status per connected account (``pending`` unless set).
            self.tax_settings: dict[str, str] = {}

    def _owned(
        self, store: dict[str, dict[str, Any]], kind: str, obj_id: str, ctx: RequestContext
    ) -> dict[str, Any]:
        obj = store.get(obj_id)
        if obj is None or obj["_account"] != ctx.account or obj["livemode"] != ctx.livemode:
            raise resource_missing(kind, obj_id, param="id")
        return obj

    # -- tax rates ----------------------------------------------------------------------

    def api_create_tax_rate(self, *, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        p = self._validated("tax_rate.create", params)
        for name in ("display_name", "inclusive", "percentage"):
            if name not in p:
                raise StripeError(
                    f"Missing required param: {name}.", code="parameter_missing", param=name
                )
        percentage = Decimal(str(p["percentage"]))
        if not 0 <= percentage <= 100:
            raise StripeError(
                "Percentage must be between 0 and 100 (inclusive).", param="percentage"
            )
        if percentage != percentage.quantize(Decimal("0.0001")):
            raise StripeError("Percentage must have at most 4 decimal places.", param="percentage")
        if "state" in p and "country" not in p:
            raise StripeError("A state requires a country.", param="state")
        ctx.executing = True
        rate = {
            "id": new_id("txr_", 24),
            "object": "tax_rate",
            "active": p.get("active", True),
            "country": p.get("country"),
            "created": self._created(),
            "description": p.get("description"),
            "display_name": p["display_name"],
            "effective_percentage": float(percentage),
            "inclusive": bool(p["inclusive"]),
            "jurisdiction": p.get("jurisdiction"),
            "jurisdiction_level": None,
            "livemode": ctx.livemode,
            "metadata": dict(p.get("metadata", {})),
            "percentage": float(percentage),
            "state": p.get("state"),
            "tax_type": p.get("tax_type"),
            "_account": ctx.account,
            "_percentage": str(percentage),
        }
        self.tax_rates[rate["id"]] = rate
        return public(rate)

    def api_retrieve_tax_rate(
        self, rate_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("tax_rate.retrieve", params)
        return public(self._owned(self.tax_rates, "tax_rate", rate_id, ctx))

    def api_update_tax_rate(
        self, rate_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        # The SDK's update type has no percentage nor inclusive: Stripe refuses them.
        p = self._validated("tax_rate.update", params)
        rate = self._owned(self.tax_rates, "tax_rate", rate_id, ctx)
        ctx.executing = True
        for name in ("active", "country", "description", "display_name", "jurisdiction", "state"):
            if name in p:
                rate[name] = p[name]
        if "metadata" in p:
            rate["metadata"].update(p["metadata"])
        return public(rate)

    # -- coupons and promotion codes ----------------------------------------------------

    def api_create_coupon(self, *, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        p = self._validated("coupon.create", params)
        has_amount, has_percent = "amount_off" in p, "percent_off" in p
        if has_amount == has_percent:
            raise StripeError(
                "You must pass exactly one of amount_off or percent_off.",
                param="amount_off" if has_amount else "percent_off",
            )
        if has_amount:
            if "currency" not in p:
                raise StripeError(
                    "You must pass currency when passing amount_off.", param="currency"
                )
            if p["amount_off"] < 1:
                raise StripeError("Invalid positive integer", param="amount_off")
        if has_percent:
            percent = Decimal(str(p["percent_off"]))
            if not 0 < percent <= 100:
                raise StripeError(
                    "percent_off must be greater than 0 and at most 100.", param="percent_off"
                )
        duration = p.get("duration", "once")
        if duration == "repeating" and "duration_in_months" not in p:
            raise StripeError(
                "You must pass duration_in_months when duration is repeating.",
                param="duration_in_months",
            )
        coupon_id = p.get("id") or new_id("", 8)
        if coupon_id in self.coupons:
            raise StripeError("Coupon already exists.", code="resource_already_exists", param="id")
        ctx.executing = True
        coupon = {
            "id": coupon_id,
            "object": "coupon",
            "amount_off": p.get("amount_off"),
            "created": self._created(),
            "currency": p["currency"].lower() if has_amount else None,
            "duration": duration,
            "duration_in_months": p.get("duration_in_months"),
            "livemode": ctx.livemode,
            "max_redemptions": p.get("max_redemptions"),
            "metadata": dict(p.get("metadata", {})),
            "name": p.get("name"),
            "percent_off": float(p["percent_off"]) if has_percent else None,
            "redeem_by": p.get("redeem_by"),
            "times_redeemed": 0,
            "valid": True,
            "_account": ctx.account,
        }
        self.coupons[coupon_id] = coupon
        return public(coupon)

    def api_retrieve_coupon(
        self, coupon_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("coupon.retrieve", params)
        return public(self._owned(self.coupons, "coupon", coupon_id, ctx))

    def api_create_promotion_code(
        self, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        p = self._validated("promotion_code.create", params)
        promotion = p.get("promotion") or {}
        coupon_id = promotion.get("coupon")
        if not coupon_id:
            raise StripeError(
                "Missing required param: promotion[coupon].",
                code="parameter_missing",
                param="promotion[coupon]",
            )
        coupon = self._owned(self.coupons, "coupon", coupon_id, ctx)
        code = p.get("code") or new_id("", 8).upper()
        ctx.executing = True
        promotion_code = {
            "id": new_id("promo_", 24),
            "object": "promotion_code",
            "active": p.get("active", True),
            "code": code,
            "created": self._created(),
            "livemode": ctx.livemode,
            "metadata": dict(p.get("metadata", {})),
            "promotion": {"coupon": coupon["id"], "type": "coupon"},
            "times_redeemed": 0,
            "_account": ctx.account,
        }
        self.promotion_codes[promotion_code["id"]] = promotion_code
        return public(promotion_code)

    # -- Stripe Tax -----------------------------------------------------------------------

    def api_retrieve_tax_settings(
        self, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("tax_settings.retrieve", params)
        status = self.tax_settings.get(ctx.account or "", "pending")
        return {
            "object": "tax.settings",
            "defaults": {"tax_behavior": None, "tax_code": "txcd_10000000"},
            "head_office": None,
            "livemode": ctx.livemode,
            "status": status,
            "status_details": (
                {"active": {}}
                if status == "active"
                else {"pending": {"missing_fields": ["head_office"]}}
            ),
        }

    # -- what Checkout needs --------------------------------------------------------------

    def checkout_tax_rate(self, rate_id: str, param: str, ctx: RequestContext) -> dict[str, Any]:
        rate = self.tax_rates.get(rate_id)
        if rate is None or rate["_account"] != ctx.account or rate["livemode"] != ctx.livemode:
            raise resource_missing("tax_rate", rate_id, param=param)
        if not rate["active"]:
            raise StripeError(
                f"The tax rate {rate_id} is archived and cannot be used.", param=param
            )
        return rate

    def checkout_discount(
        self, p: dict[str, Any], currency: str, ctx: RequestContext
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The coupon a session's ``discounts`` names, and the session's ``discounts``."""
        discounts = p.get("discounts") or []
        if discounts and p.get("allow_promotion_codes"):
            raise StripeError(
                "You may only specify one of these parameters: allow_promotion_codes, discounts.",
                param="discounts",
            )
        if len(discounts) > 1:
            raise StripeError(
                "You may only specify one discount for a Checkout Session.", param="discounts"
            )
        if not discounts:
            return None, []
        entry = discounts[0]
        coupon_id = entry.get("coupon")
        promotion_code_id = entry.get("promotion_code")
        if promotion_code_id:
            promo = self._owned(self.promotion_codes, "promotion_code", promotion_code_id, ctx)
            coupon_id = promo["promotion"]["coupon"]
        if not coupon_id:
            raise StripeError(
                "You must specify either coupon or promotion_code.", param="discounts[0]"
            )
        coupon = self.coupons.get(coupon_id)
        if coupon is None or coupon["_account"] != ctx.account:
            raise resource_missing("coupon", coupon_id, param="discounts[0][coupon]")
        if coupon["currency"] is not None and coupon["currency"] != currency:
            raise StripeError(
                f"The coupon {coupon_id} is in {coupon['currency']}, but the Checkout "
                f"Session is in {currency}.",
                param="discounts[0][coupon]",
            )
        if coupon["max_redemptions"] is not None and (
            coupon["times_redeemed"] >= coupon["max_redemptions"]
        ):
            raise StripeError(f"Coupon {coupon_id} has been redeemed the maximum times.")
        return coupon, [{"coupon": coupon_id, "promotion_code": promotion_code_id}]

    def require_stripe_tax(self, ctx: RequestContext) -> None:
        if self.tax_settings.get(ctx.account or "", "pending") != "active":
            raise StripeError(
                "Stripe Tax has not been activated on your account. Please visit "
                "https://stripe.com/docs/tax/set-up to get started.",
                param="automatic_tax[enabled]",
            )

    def find_promotion_code(self, session: dict[str, Any], code: str) -> dict[str, Any]:
        for promo in self.promotion_codes.values():
            if (
                promo["code"].lower() == code.lower()
                and promo["active"]
                and promo["_account"] == session["_account"]
                and promo["livemode"] == session["livemode"]
            ):
                return promo
        raise StripeError(f"This code is invalid: {code}", code="promotion_code_invalid")

    # -- test controls ------------------------------------------------------------------

    def activate_stripe_tax(self, account_id: str) -> dict[str, Any]:
        with self.lock:
            self.tax_settings[account_id] = "active"
            return {"account": account_id, "status": "active"}


__all__ = ["AUTOMATIC_TAX_PERCENT", "TaxMixin", "public", "session_totals"]
