"""Checkout Sessions and their payment intents.

API operations on ``/v1/checkout/sessions``, lazy expiry, and the test controls for
the customer's side of the hosted page (pay, pay by a delayed bank debit, its
settlement or failure, expiry).  A paid ``subscription``-mode session makes its
customer, subscription and first invoice through ``subscriptions``.
"""

from __future__ import annotations

from typing import Any

from . import money, rules
from .accounts import AccountsMixin
from .errors import EmulatorError, StripeError, resource_missing
from .store import RequestContext, is_url, new_id, public
from .subscriptions import SubscriptionsMixin
from .tax import AUTOMATIC_TAX_PERCENT, TaxMixin, session_totals


class CheckoutMixin(SubscriptionsMixin, TaxMixin, AccountsMixin):
    """Checkout Sessions, mixed into :class:`~.core.EmulatorState`.

    A session checks the ``Stripe-Account`` it is made on (``accounts``) and, paid in
    ``subscription`` mode, starts a subscription (``subscriptions``).
    """

    # -- the API -------------------------------------------------------------------

    def _session_for(self, session_id: str, ctx: RequestContext) -> dict[str, Any]:
        """The session if it is visible to this key and ``Stripe-Account``, else 404."""
        session = self.checkout_sessions.get(session_id)
        if session is None or session["_account"] != ctx.account:
            raise resource_missing("checkout.session", session_id, param="session")
        if session["livemode"] != ctx.livemode:
            have, used = ("live", "test") if session["livemode"] else ("test", "live")
            raise StripeError(
                f"No such checkout.session: '{session_id}'; a similar object exists in "
                f"{have} mode, but a {used} mode key was used to make this request.",
                status=404,
                code="resource_missing",
                param="session",
            )
        return session

    def api_create_session(self, *, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        p = self._validated("session.create", params)
        mode = p.get("mode")
        if mode is None:
            raise StripeError(
                "Missing required param: mode.", code="parameter_missing", param="mode"
            )
        if mode == "setup":
            raise StripeError("The Stripe emulator does not implement `setup` mode.", param="mode")
        if p.get("ui_mode", "hosted") != "hosted":
            raise StripeError(
                "The Stripe emulator only implements `ui_mode=hosted`.", param="ui_mode"
            )
        for name in ("success_url", "cancel_url"):
            if name in p and not is_url(p[name].replace("{CHECKOUT_SESSION_ID}", "x")):
                raise StripeError("Not a valid URL", code="url_invalid", param=name)
        if "customer" in p and "customer_email" in p:
            raise StripeError(
                "You may only specify one of these parameters: customer, customer_email.",
                param="customer_email",
            )
        if mode != "subscription" and "subscription_data" in p:
            raise StripeError(
                "You can only specify `subscription_data` in `subscription` mode.",
                param="subscription_data",
            )
        if mode != "payment" and "payment_intent_data" in p:
            raise StripeError(
                "You can only specify `payment_intent_data` in `payment` mode.",
                param="payment_intent_data",
            )
        now = self.now()
        expires_at = p.get("expires_at", now + 24 * 3600)
        if expires_at < now + 30 * 60:
            raise StripeError(
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
                "creation.",
                param="expires_at",
            )
        if expires_at > now + 24 * 3600:
            raise StripeError(
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session "
                "creation.",
                param="expires_at",
            )
        line_items, currency, subtotal = self._line_items(p, mode)
        rates = self._line_tax_rates(p, ctx)
        automatic = bool(p.get("automatic_tax", {}).get("enabled"))
        if automatic and any(rates):
            raise StripeError(
                "You cannot use `tax_rates` on line items when `automatic_tax[enabled]` is true.",
                param="line_items[0][tax_rates]",
            )
        coupon, discounts = self.checkout_discount(p, currency, ctx)
        totals = session_totals([item["amount_subtotal"] for item in line_items], rates, coupon)
        amount = totals["total"]
        self._check_total(amount, currency, discounted=coupon is not None)
        self._apply_line_totals(line_items, totals, rates, discounts)
        self._check_fees(p, ctx, amount)
        if automatic:
            self.require_stripe_tax(ctx)
        ctx.executing = True
        if ctx.account is not None:
            account = self._account_for(ctx.account, ctx)
            if self.require_charges_enabled and not account["charges_enabled"]:
                raise StripeError(
                    "Your account cannot currently make charges. To find out why charge "
                    "creation is currently disabled, look at the `requirements.disabled_reason`"
                    f" property on this account (/v1/accounts/{account['id']}).",
                )
        if "customer" in p and (
            p["customer"] not in self.customers
            # A customer belongs to one account: another account's is "no such customer".
            or self.customers[p["customer"]].get("_account") != ctx.account
        ):
            raise resource_missing("customer", p["customer"], param="customer")
        prefix = "cs_live_" if ctx.livemode else "cs_test_"
        session_id = prefix + "a1" + new_id("", 56)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": p.get("allow_promotion_codes"),
            "amount_subtotal": subtotal,
            "amount_total": amount,
            "automatic_tax": {
                "enabled": automatic,
                "liability": {"type": "self"} if automatic else None,
                "status": "requires_location_inputs" if automatic else None,
            },
            "billing_address_collection": p.get("billing_address_collection"),
            "cancel_url": p.get("cancel_url"),
            "client_reference_id": p.get("client_reference_id"),
            "client_secret": None,
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": currency,
            "custom_fields": [],
            "custom_text": {
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            "customer": p.get("customer"),
            "customer_creation": (
                p.get("customer_creation", "if_required") if mode == "payment" else None
            ),
            "customer_details": None,
            "customer_email": p.get("customer_email"),
            "discounts": discounts,
            "expires_at": expires_at,
            "invoice": None,
            "invoice_creation": (
                {"enabled": False, "invoice_data": None} if mode == "payment" else None
            ),
            "livemode": ctx.livemode,
            "locale": p.get("locale"),
            "metadata": dict(p.get("metadata", {})),
            "mode": mode,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "always",
            "payment_method_options": {},
            "payment_method_types": list(p.get("payment_method_types", ["card"])),
            "payment_status": "unpaid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": p.get("submit_type"),
            "subscription": None,
            "success_url": p.get("success_url"),
            "tax_id_collection": {
                "enabled": bool(p.get("tax_id_collection", {}).get("enabled")),
                "required": p.get("tax_id_collection", {}).get("required", "never"),
            },
            "total_details": {
                "amount_discount": totals["discount"],
                "amount_shipping": 0,
                "amount_tax": totals["tax"],
            },
            "ui_mode": "hosted",
            "url": f"{self.public_url}/_hosted/checkout/{session_id}",
            "_account": ctx.account,
            "_line_items": line_items,
            "_coupon": coupon["id"] if coupon else None,
            "_tax_rates": [rate["id"] if rate else None for rate in rates],
            "_subscription_data": p.get("subscription_data", {}),
            "_payment_intent_data": p.get("payment_intent_data", {}),
            "_async": None,
            "_declined": False,
        }
        self._created_seq += 1
        session["_seq"] = self._created_seq
        self.checkout_sessions[session_id] = session
        return self._render_session(session, p.get("expand", []))

    @staticmethod
    def _check_fees(p: dict[str, Any], ctx: RequestContext, amount: int) -> None:
        """Application fees: only on a connected account (or to a destination), in range."""
        for group, name in (
            ("subscription_data", "application_fee_percent"),
            ("payment_intent_data", "application_fee_amount"),
        ):
            data = p.get(group, {})
            if name not in data:
                continue
            param = f"{group}[{name}]"
            destination = data.get("transfer_data", {}).get("destination")
            rules.check_fee_allowed(ctx.account is not None or bool(destination), param)
            if name == "application_fee_percent":
                rules.check_fee_percent(data[name], param)
            elif not 0 <= data[name] <= amount:
                raise StripeError(
                    f"This value must be greater than or equal to 0 and less than or equal "
                    f"to the amount, {amount} (it currently is '{data[name]}').",
                    param=param,
                )

    def _line_items(self, p: dict[str, Any], mode: str) -> tuple[list[dict[str, Any]], str, int]:
        """Check ``line_items`` the way Checkout does; return them, the currency, total."""
        items = p.get("line_items")
        if not items:
            raise StripeError(
                "Missing required param: line_items.",
                code="parameter_missing",
                param="line_items",
            )
        built: list[dict[str, Any]] = []
        currencies: set[str] = set()
        total = 0
        recurring_seen = False
        for index, item in enumerate(items):
            name = f"line_items[{index}]"
            if "price" in item:
                raise resource_missing("price", item["price"], param=f"{name}[price]")
            data = item.get("price_data")
            if data is None:
                raise StripeError(
                    f"You must specify either `price` or `price_data` in `{name}`.",
                    param=name,
                )
            if "quantity" not in item:
                raise StripeError(
                    f"Missing required param: {name}[quantity].",
                    code="parameter_missing",
                    param=f"{name}[quantity]",
                )
            quantity = item["quantity"]
            if quantity < 1:
                raise StripeError(
                    f"This value must be greater than or equal to 1 (it currently is "
                    f"'{quantity}').",
                    param=f"{name}[quantity]",
                )
            currency = data["currency"].lower()
            if currency not in money.SUPPORTED:
                raise StripeError(
                    f"Invalid currency: {currency}. Stripe currently supports these "
                    "currencies: " + ", ".join(sorted(money.SUPPORTED)),
                    param=f"{name}[price_data][currency]",
                )
            if "product" in data:
                raise resource_missing(
                    "product", data["product"], param=f"{name}[price_data][product]"
                )
            if "product_data" not in data:
                raise StripeError(
                    f"Missing required param: {name}[price_data][product_data].",
                    code="parameter_missing",
                    param=f"{name}[price_data][product_data]",
                )
            if "unit_amount" in data:
                unit_amount = data["unit_amount"]
            elif "unit_amount_decimal" in data:
                unit_amount = int(data["unit_amount_decimal"])
            else:
                raise StripeError(
                    f"Missing required param: {name}[price_data][unit_amount].",
                    code="parameter_missing",
                    param=f"{name}[price_data][unit_amount]",
                )
            if not 0 <= unit_amount <= money.MAXIMUM_AMOUNT:
                raise StripeError(
                    f"This value must be less than or equal to {money.MAXIMUM_AMOUNT} and "
                    f"greater than or equal to 0 (it currently is '{unit_amount}').",
                    param=f"{name}[price_data][unit_amount]",
                )
            recurring = data.get("recurring")
            if recurring is not None:
                recurring_seen = True
                if mode == "payment":
                    raise StripeError(
                        "You specified `payment` mode but passed a recurring price. Either "
                        "switch to `subscription` mode or use only one-time prices.",
                        param="mode",
                    )
            currencies.add(currency)
            total += unit_amount * quantity
            product = data["product_data"]
            built.append(
                {
                    "id": new_id("li_", 24),
                    "object": "item",
                    "amount_discount": 0,
                    "amount_subtotal": unit_amount * quantity,
                    "amount_tax": 0,
                    "amount_total": unit_amount * quantity,
                    "currency": currency,
                    "description": product.get("name"),
                    "price": {
                        "id": new_id("price_", 24),
                        "object": "price",
                        "active": False,
                        "currency": currency,
                        "product": new_id("prod_", 14),
                        "recurring": (
                            {
                                "interval": recurring["interval"],
                                "interval_count": recurring.get("interval_count", 1),
                                "usage_type": "licensed",
                            }
                            if recurring
                            else None
                        ),
                        "type": "recurring" if recurring else "one_time",
                        "unit_amount": unit_amount,
                    },
                    "quantity": quantity,
                    "_product_description": product.get("description"),
                }
            )
        self._check_line_item_counts(built, mode)
        if mode == "subscription" and not recurring_seen:
            raise StripeError(
                "You must provide at least one recurring price in `subscription` mode when "
                "using prices.",
                param="line_items",
            )
        if len(currencies) > 1:
            raise StripeError("All line items must use the same currency.", param="line_items")
        currency = currencies.pop()
        if "currency" in p and p["currency"].lower() != currency:
            raise StripeError(
                f"The currency `{p['currency']}` does not match the line items' currency "
                f"`{currency}`.",
                param="currency",
            )
        if total > money.MAXIMUM_AMOUNT:
            raise StripeError(
                "The Checkout Session's total amount due must be no more than "
                f"{money.format_amount(money.MAXIMUM_AMOUNT, currency)}",
                param="line_items",
            )
        return built, currency, total

    @staticmethod
    def _check_total(total: int, currency: str, *, discounted: bool) -> None:
        """Stripe's minimum charge, on what is due after discounts and tax; a session a
        discount brings to zero is allowed (nothing is charged)."""
        minimum = money.MINIMUM_CHARGE.get(currency)
        if minimum is not None and total < minimum and not (discounted and total == 0):
            raise StripeError(
                "The Checkout Session's total amount due must add up to at least "
                f"{money.format_amount(minimum, currency)}",
                param="line_items",
            )

    def _line_tax_rates(
        self, p: dict[str, Any], ctx: RequestContext
    ) -> list[dict[str, Any] | None]:
        """The tax rate of each line item (at most one each, as the app's reading)."""
        rates: list[dict[str, Any] | None] = []
        for index, item in enumerate(p.get("line_items") or []):
            ids = item.get("tax_rates") or []
            if len(ids) > 1:
                raise StripeError(
                    "The Stripe emulator applies at most one tax rate per line item.",
                    param=f"line_items[{index}][tax_rates]",
                )
            rates.append(
                self.checkout_tax_rate(ids[0], f"line_items[{index}][tax_rates]", ctx)
                if ids
                else None
            )
        return rates

    @staticmethod
    def _apply_line_totals(
        line_items: list[dict[str, Any]],
        totals: dict[str, Any],
        rates: list[dict[str, Any] | None],
        discounts: list[dict[str, Any]],
    ) -> None:
        for item, line, rate in zip(line_items, totals["lines"], rates, strict=True):
            item["amount_discount"] = line["discount"]
            item["amount_tax"] = line["tax"]
            item["amount_total"] = line["total"]
            item["discounts"] = (
                [{"amount": line["discount"], "discount": dict(discounts[0])}] if discounts else []
            )
            item["taxes"] = (
                [
                    {
                        "amount": line["tax"],
                        "rate": public(rate),
                        "taxability_reason": None,
                        "taxable_amount": line["taxable"],
                    }
                ]
                if rate is not None
                else []
            )

    def _recompute(self, session: dict[str, Any]) -> None:
        """Work a session's totals out again (a promotion code, Stripe Tax's address)."""
        items = session["_line_items"]
        coupon = self.coupons.get(session["_coupon"] or "")
        if session["automatic_tax"]["enabled"] and session["automatic_tax"]["status"] == "complete":
            rate: dict[str, Any] | None = {
                "id": "automatic",
                "percentage": float(AUTOMATIC_TAX_PERCENT),
                "inclusive": False,
            }
            rates = [rate for _item in items]
        else:
            rates = [self.tax_rates.get(r) if r else None for r in session["_tax_rates"]]
        totals = session_totals([item["amount_subtotal"] for item in items], rates, coupon)
        self._apply_line_totals(items, totals, rates, session["discounts"])
        session["amount_total"] = totals["total"]
        session["total_details"]["amount_discount"] = totals["discount"]
        session["total_details"]["amount_tax"] = totals["tax"]

    def _total_without_discount(self, session: dict[str, Any]) -> int:
        """The recurring items' total with their tax and no discount: a renewal's."""
        items = [i for i in session["_line_items"] if i["price"]["recurring"]]
        rates = [
            {
                "percentage": float(item["taxes"][0]["rate"]["percentage"]),
                "inclusive": item["taxes"][0]["rate"]["inclusive"],
            }
            if item.get("taxes")
            else None
            for item in items
        ]
        return int(
            session_totals([item["amount_subtotal"] for item in items], rates, None)["total"]
        )

    def apply_promotion_code(self, session_id: str, code: str) -> dict[str, Any]:
        """The client typed a promotion code on the hosted page."""
        with self.lock:
            session = self.session(session_id)
            if session["status"] != "open" or not session["allow_promotion_codes"]:
                raise EmulatorError("This Checkout Session does not take promotion codes.", 409)
            try:
                promo = self.find_promotion_code(session, code)
            except StripeError as error:
                raise EmulatorError(error.message, 400) from None
            session["_coupon"] = promo["promotion"]["coupon"]
            session["discounts"] = [{"coupon": None, "promotion_code": promo["id"]}]
            self._recompute(session)
            return public(session)

    @staticmethod
    def _check_line_item_counts(items: list[dict[str, Any]], mode: str) -> None:
        """Checkout's documented limits: at most 100 line items in payment mode; in
        subscription mode at most 20 with recurring prices and 20 with one-time prices,
        and every recurring price at the same interval (one subscription bills them)."""
        recurring = [i for i in items if i["price"]["recurring"]]
        if mode == "payment" and len(items) > 100:
            raise StripeError(
                "You may only specify up to 100 line items in `payment` mode.",
                param="line_items",
            )
        if mode == "subscription":
            if len(recurring) > 20 or len(items) - len(recurring) > 20:
                raise StripeError(
                    "You may only specify up to 20 recurring and 20 one-time line items in "
                    "`subscription` mode.",
                    param="line_items",
                )
            periods = {
                (i["price"]["recurring"]["interval"], i["price"]["recurring"]["interval_count"])
                for i in recurring
            }
            if len(periods) > 1:
                raise StripeError(
                    "Checkout does not support multiple prices with different billing intervals.",
                    param="line_items",
                )

    def _render_session(self, session: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        body = public(session)
        if "line_items" in expand:
            body["line_items"] = {
                "object": "list",
                "data": public(session["_line_items"]),
                "has_more": False,
                "url": f"/v1/checkout/sessions/{session['id']}/line_items",
            }
        return body

    def api_retrieve_session(
        self, session_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        p = self._validated("session.retrieve", params)
        return self._render_session(self._session_for(session_id, ctx), p.get("expand", []))

    def api_list_line_items(
        self, session_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        """``GET /v1/checkout/sessions/:id/line_items``: the session's items, in order,
        paginated like every Stripe list (``limit`` 1 to 100, default 10)."""
        p = self._validated("session.line_items", params)
        session = self._session_for(session_id, ctx)
        return rules.paginate(
            session["_line_items"],
            p,
            url=f"/v1/checkout/sessions/{session_id}/line_items",
            object_name="item",
            render=public,
        )

    def api_list_sessions(self, *, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        p = self._validated("session.list", params)
        sessions = self._newest_first(self.checkout_sessions, ctx, owner="_account")
        for name in ("status", "customer", "payment_intent", "subscription"):
            if name in p:
                sessions = [s for s in sessions if s[name] == p[name]]
        return rules.paginate(
            sessions,
            p,
            url="/v1/checkout/sessions",
            object_name="checkout.session",
            render=lambda s: self._render_session(s, []),
        )

    def api_expire_session(
        self, session_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("session.expire", params)
        ctx.executing = True
        session = self._session_for(session_id, ctx)
        if session["status"] != "open":
            raise StripeError(
                'Only Checkout Sessions with a status in ["open"] can be expired. This '
                f'Checkout Session has a status of "{session["status"]}".',
                param="session",
            )
        self._expire(session, ctx)
        return public(session)

    # -- lifecycle shared by the API, the hosted pages and the controls -------------

    def expire_due_sessions(self) -> list[str]:
        """Expire open sessions whose ``expires_at`` has passed; return their ids.

        Stripe expires sessions on its own schedule; the emulator does it whenever it is
        touched (an API call, a hosted page, a control, ``deliver_pending``), which is
        indistinguishable to a client and keeps the emulator free of timers.
        """
        with self.lock:
            now = self.now()
            due = [
                s
                for s in self.checkout_sessions.values()
                if s["status"] == "open" and s["expires_at"] <= now
            ]
            for session in due:
                self._expire(session, None)
            return [s["id"] for s in due]

    def _expire(self, session: dict[str, Any], ctx: RequestContext | None) -> None:
        session["status"] = "expired"
        session["url"] = None
        self.emit(
            "checkout.session.expired",
            session,
            account=session["_account"],
            livemode=session["livemode"],
            ctx=ctx,
        )

    def session(self, session_id: str) -> dict[str, Any]:
        """The stored session (with private keys), or :class:`EmulatorError` 404."""
        self.expire_due_sessions()
        session = self.checkout_sessions.get(session_id)
        if session is None:
            raise EmulatorError(f"No such checkout.session: '{session_id}'", status=404)
        return session

    def complete_session(self, session_id: str, *, delayed: bool) -> dict[str, Any]:
        """The customer paid (card) or submitted a bank debit that settles later."""
        with self.lock:
            session = self.session(session_id)
            if session["status"] == "expired":
                raise EmulatorError("This Checkout Session has expired.", status=409)
            if session["status"] == "complete":
                raise EmulatorError("This Checkout Session is already paid.", status=409)
            livemode = session["livemode"]
            account = session["_account"]
            if session["automatic_tax"]["enabled"]:
                # The client gave their address: Stripe Tax works the tax out now.
                session["automatic_tax"]["status"] = "complete"
                self._recompute(session)
            coupon = self.coupons.get(session["_coupon"] or "")
            if coupon is not None:
                coupon["times_redeemed"] += 1
                if coupon["duration"] == "once":
                    session["_renewal_total"] = self._total_without_discount(session)
            session["status"] = "complete"
            session["url"] = None
            if session["amount_total"] == 0:
                session["payment_status"] = "no_payment_required"
            else:
                session["payment_status"] = "unpaid" if delayed else "paid"
            named = self.customers.get(session["customer"] or "", {})
            # A session for an existing customer takes the customer's email (Checkout
            # prefills it and does not let the payer change it).
            email = named.get("email") or session["customer_email"] or "customer@example.com"
            session["customer_details"] = {
                "address": None,
                "business_name": None,
                "email": email,
                "individual_name": None,
                "name": None,
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            }
            session["_async"] = "pending" if delayed else None
            needs_customer = session["mode"] == "subscription" or (
                session["customer_creation"] == "always"
            )
            if needs_customer and session["customer"] is None:
                session["customer"] = self._create_customer(email, livemode, account)["id"]
            if session["mode"] == "payment":
                intent = {
                    "id": new_id("pi_", 24),
                    "object": "payment_intent",
                    "amount": session["amount_total"],
                    "currency": session["currency"],
                    "status": "processing" if delayed else "succeeded",
                    "metadata": dict(session["_payment_intent_data"].get("metadata", {})),
                    "livemode": livemode,
                    "_account": account,
                }
                self.payment_intents[intent["id"]] = intent
                session["payment_intent"] = intent["id"]
                if not delayed:
                    self._charge_session(session, intent)
            if session["mode"] == "subscription":
                # Made before the completed event, which names them as Stripe's does.
                subscription = self._create_subscription(session, delayed)
                invoice = self._create_invoice(
                    subscription, "subscription_create", paid=not delayed
                )
                session["invoice"] = invoice["id"]
            self.emit("checkout.session.completed", session, account=account, livemode=livemode)
            if session["mode"] == "subscription":
                self.emit(
                    "customer.subscription.created",
                    subscription,
                    account=account,
                    livemode=livemode,
                )
                if not delayed:
                    self._emit_invoice_paid(invoice, account=account, livemode=livemode)
            return public(session)

    def _charge_session(self, session: dict[str, Any], intent: dict[str, Any]) -> None:
        """The charge of a paid payment-mode session's payment intent."""
        self._create_charge(
            amount=intent["amount"],
            currency=intent["currency"],
            account=session["_account"],
            livemode=session["livemode"],
            payment_intent=intent["id"],
            application_fee_amount=session["_payment_intent_data"].get("application_fee_amount"),
        )

    def resolve_delayed(self, session_id: str, *, succeeded: bool) -> dict[str, Any]:
        """The bank debit of a ``pay_delayed`` session settled or failed."""
        with self.lock:
            session = self.session(session_id)
            if session["status"] != "complete" or session["_async"] != "pending":
                raise EmulatorError(
                    f"Checkout Session {session_id} has no delayed payment awaiting settlement.",
                    status=409,
                )
            account, livemode = session["_account"], session["livemode"]
            session["_async"] = "succeeded" if succeeded else "failed"
            if succeeded:
                session["payment_status"] = "paid"
            intent = self.payment_intents.get(session["payment_intent"] or "")
            if intent is not None:
                intent["status"] = "succeeded" if succeeded else "requires_payment_method"
                if succeeded:
                    self._charge_session(session, intent)
            event = (
                "checkout.session.async_payment_succeeded"
                if succeeded
                else "checkout.session.async_payment_failed"
            )
            self.emit(event, session, account=account, livemode=livemode)
            subscription = self.subscriptions.get(session["subscription"] or "")
            if subscription is not None:
                invoice = self.invoices[subscription["latest_invoice"]]
                if succeeded:
                    subscription["status"] = "active"
                    invoice.update(
                        status="paid", amount_paid=invoice["amount_due"], amount_remaining=0
                    )
                    self._emit_invoice_paid(invoice, account=account, livemode=livemode)
                else:
                    subscription["status"] = "incomplete_expired"
            return public(session)

    def expire_session(self, session_id: str) -> dict[str, Any]:
        """Expire an open session now (as if its time ran out)."""
        with self.lock:
            session = self.session(session_id)
            if session["status"] != "open":
                raise EmulatorError(
                    f"Checkout Session {session_id} is {session['status']}, not open.", status=409
                )
            self._expire(session, None)
            return public(session)
