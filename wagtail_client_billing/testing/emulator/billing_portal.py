"""Stripe's customer portal: portal configurations, portal sessions and the hosted portal.

As Stripe documents them (docs.stripe.com/api/customer_portal and
docs.stripe.com/customer-management):

* ``POST /v1/billing_portal/configurations`` makes a ``billing_portal.configuration``
  (``bpc_...``): ``features`` is required; ``subscription_cancel.mode`` is
  ``at_period_end`` (the default) or ``immediately``, and its ``proration_behavior``
  ``create_prorations`` only goes with ``immediately`` (``always_invoice`` is refused);
  ``business_profile`` URLs and ``default_return_url`` must be web addresses.
  ``POST /v1/billing_portal/configurations/<id>`` updates one (``active=false``
  deactivates it); there is no delete.
* ``POST /v1/billing_portal/sessions`` makes a ``billing_portal.session`` (``bps_...``)
  for an existing ``customer`` of the same account and mode, with a ``configuration`` of
  that account (or its default one) that is active; ``return_url`` may be left out only
  when the configuration has a ``default_return_url``. Its ``url`` is the hosted portal;
  sessions are short-lived: the emulator's lasts :data:`SESSION_SECONDS`.
* In the hosted portal the customer updates the card (``payment_method.attached`` and
  ``customer.updated`` with the new ``invoice_settings.default_payment_method``) and, when
  the configuration allows it, cancels a subscription: at the period's end
  (``customer.subscription.updated`` with ``cancel_at_period_end=true``) or immediately
  (``customer.subscription.deleted``), with ``cancellation_details.reason``
  ``cancellation_requested``. The emulator then sends the browser to the session's
  ``return_url``.
"""

from __future__ import annotations

from typing import Any

from .errors import EmulatorError, StripeError, resource_missing
from .store import RequestContext, is_url, new_id, public
from .subscription_changes import SubscriptionChangesMixin

#: How long a portal session's URL works, in seconds (Stripe: "short-lived").
SESSION_SECONDS = 3600
#: Subscription statuses the portal still offers to cancel.
CANCELLABLE = ("active", "past_due", "trialing", "unpaid", "paused")


class BillingPortalMixin(SubscriptionChangesMixin):
    """Portal configurations and sessions, mixed into :class:`~.core.EmulatorState`."""

    # -- configurations ------------------------------------------------------------------

    def api_create_portal_configuration(
        self, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        p = self._validated("portal_configuration.create", params)
        features = p["features"]
        cancel = features.get("subscription_cancel") or {}
        _check_cancel(cancel)
        _check_urls(p)
        now = self.now()
        self._created_seq += 1
        configuration: dict[str, Any] = {
            "id": new_id("bpc_", 24),
            "object": "billing_portal.configuration",
            "active": True,
            "application": None,
            "business_profile": {
                "headline": None,
                "privacy_policy_url": None,
                "terms_of_service_url": None,
                **{k: v or None for k, v in (p.get("business_profile") or {}).items()},
            },
            "created": now,
            "default_return_url": p.get("default_return_url") or None,
            "features": {
                "customer_update": {
                    "allowed_updates": [],
                    "enabled": False,
                    **(features.get("customer_update") or {}),
                },
                "invoice_history": {"enabled": False, **(features.get("invoice_history") or {})},
                "payment_method_update": {
                    "enabled": False,
                    **(features.get("payment_method_update") or {}),
                },
                "subscription_cancel": {
                    "cancellation_reason": {"enabled": False, "options": []},
                    "enabled": False,
                    "mode": "at_period_end",
                    "proration_behavior": "none",
                    **cancel,
                },
                "subscription_update": {
                    "default_allowed_updates": [],
                    "enabled": False,
                    "proration_behavior": "none",
                },
            },
            "is_default": False,
            "livemode": ctx.livemode,
            "login_page": {"enabled": False, "url": None},
            "metadata": dict(p.get("metadata") or {}),
            "name": p.get("name") or None,
            "updated": now,
            "_account": ctx.account,
            "_seq": self._created_seq,
        }
        self.billing_portal_configurations[configuration["id"]] = configuration
        return public(configuration)

    def _portal_configuration(self, configuration_id: str, ctx: RequestContext) -> dict[str, Any]:
        configuration = self.billing_portal_configurations.get(configuration_id)
        if (
            configuration is None
            or configuration["_account"] != ctx.account
            or configuration["livemode"] != ctx.livemode
        ):
            raise resource_missing("configuration", configuration_id, param="configuration")
        return configuration

    def api_retrieve_portal_configuration(
        self, configuration_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("portal_configuration.retrieve", params)
        return public(self._portal_configuration(configuration_id, ctx))

    def api_update_portal_configuration(
        self, configuration_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        p = self._validated("portal_configuration.update", params)
        unsupported = set(p) - {"active", "default_return_url", "metadata", "expand"}
        if unsupported:
            raise StripeError(
                f"The emulator does not update {', '.join(sorted(unsupported))} of a portal "
                "configuration.",
            )
        _check_urls(p)
        configuration = self._portal_configuration(configuration_id, ctx)
        if "active" in p:
            configuration["active"] = bool(p["active"])
        if "default_return_url" in p:
            configuration["default_return_url"] = p["default_return_url"] or None
        if "metadata" in p:
            configuration["metadata"] = {**configuration["metadata"], **(p["metadata"] or {})}
        configuration["updated"] = self.now()
        return public(configuration)

    # -- sessions ------------------------------------------------------------------------

    def api_create_portal_session(
        self, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        p = self._validated("portal_session.create", params)
        for unsupported in ("customer_account", "flow_data", "on_behalf_of", "after_expiration"):
            if unsupported in p:
                raise StripeError(
                    f"The emulator does not support {unsupported} on portal sessions.",
                    param=unsupported,
                )
        if "customer" not in p:
            raise StripeError(
                "Missing required param: customer.", code="parameter_missing", param="customer"
            )
        customer = self.customers.get(p["customer"])
        if (
            customer is None
            or customer["_account"] != ctx.account
            or customer["livemode"] != ctx.livemode
        ):
            raise StripeError(
                f"No such customer: '{p['customer']}'", code="resource_missing", param="customer"
            )
        if "configuration" in p:
            configuration = self._portal_configuration(p["configuration"], ctx)
            if not configuration["active"]:
                raise StripeError(
                    "This configuration is inactive. You can only create sessions with "
                    "active configurations.",
                    param="configuration",
                )
        else:
            configuration = self._default_portal_configuration(ctx)
        return_url = p.get("return_url") or configuration["default_return_url"]
        if "return_url" in p and not is_url(p["return_url"]):
            raise StripeError("Not a valid URL", param="return_url", code="url_invalid")
        if not return_url:
            raise StripeError(
                "You must provide a return_url, or set a default_return_url on the configuration.",
                param="return_url",
            )
        now = self.now()
        session_id = new_id("bps_", 24)
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": configuration["id"],
            "created": now,
            "customer": customer["id"],
            "flow": None,
            "livemode": ctx.livemode,
            "locale": p.get("locale"),
            "on_behalf_of": None,
            "return_url": return_url,
            "url": f"{self.public_url}/_hosted/billing_portal/{session_id}",
            "_account": ctx.account,
            "_expires_at": now + SESSION_SECONDS,
        }
        self.billing_portal_sessions[session_id] = session
        return public(session)

    def _default_portal_configuration(self, ctx: RequestContext) -> dict[str, Any]:
        """The account's default configuration (the Dashboard's settings), made on first
        use: the card can be updated, subscriptions cancelled at the period's end."""
        for configuration in self.billing_portal_configurations.values():
            if (
                configuration["is_default"]
                and configuration["_account"] == ctx.account
                and configuration["livemode"] == ctx.livemode
            ):
                return configuration
        created = self.api_create_portal_configuration(
            params={
                "features": {
                    "payment_method_update": {"enabled": "true"},
                    "subscription_cancel": {"enabled": "true"},
                }
            },
            ctx=ctx,
        )
        configuration = self.billing_portal_configurations[created["id"]]
        configuration["is_default"] = True
        return configuration

    # -- the hosted portal (what the customer does) ---------------------------------------

    def portal_session(self, session_id: str) -> dict[str, Any]:
        """A portal session the browser may still use (not expired)."""
        session = self.billing_portal_sessions.get(session_id)
        if session is None:
            raise EmulatorError(f"No such portal session: '{session_id}'", status=404)
        if self.now() >= session["_expires_at"]:
            raise EmulatorError("This portal session has expired.", status=410)
        return session

    def portal_view(self, session_id: str) -> dict[str, Any]:
        """What the hosted portal shows: the customer, their card, the configuration's
        features and the customer's subscriptions on the session's account."""
        with self.lock:
            session = self.portal_session(session_id)
            customer = self.customers[session["customer"]]
            configuration = self.billing_portal_configurations[session["configuration"]]
            return {
                "session": public(session),
                "customer": public(customer),
                "card": customer.get("_card_last4"),
                "features": configuration["features"],
                "subscriptions": [
                    public(s)
                    for s in self.subscriptions.values()
                    if s["customer"] == customer["id"]
                    and s["_account"] == session["_account"]
                    and s["livemode"] == session["livemode"]
                ],
            }

    def portal_update_card(self, session_id: str, card_number: str) -> str:
        """The customer saves a new card: ``payment_method.attached``, then
        ``customer.updated`` with it as the default; the session's return URL."""
        digits = "".join(c for c in card_number if c.isdigit())
        if not 12 <= len(digits) <= 19:
            raise EmulatorError("Your card number is incomplete.", status=400)
        with self.lock:
            session = self.portal_session(session_id)
            configuration = self.billing_portal_configurations[session["configuration"]]
            if not configuration["features"]["payment_method_update"]["enabled"]:
                raise EmulatorError("This portal does not allow updating the card.", 403)
            customer = self.customers[session["customer"]]
            account, livemode = session["_account"], session["livemode"]
            method = {
                "id": new_id("pm_", 24),
                "object": "payment_method",
                "billing_details": {"email": customer.get("email")},
                "card": {"brand": "visa", "last4": digits[-4:], "exp_month": 12, "exp_year": 2030},
                "created": self.now(),
                "customer": customer["id"],
                "livemode": livemode,
                "metadata": {},
                "type": "card",
            }
            self.emit("payment_method.attached", method, account=account, livemode=livemode)
            settings = customer.setdefault("invoice_settings", {"default_payment_method": None})
            previous = {"invoice_settings": dict(settings)}
            settings["default_payment_method"] = method["id"]
            customer["_card_last4"] = digits[-4:]
            self.emit(
                "customer.updated",
                customer,
                account=account,
                livemode=livemode,
                previous_attributes=previous,
            )
            return str(session["return_url"])

    def portal_cancel(self, session_id: str, subscription_id: str) -> str:
        """The customer cancels a subscription, as the configuration's mode says; the
        session's return URL."""
        with self.lock:
            session = self.portal_session(session_id)
            configuration = self.billing_portal_configurations[session["configuration"]]
            cancel = configuration["features"]["subscription_cancel"]
            if not cancel["enabled"]:
                raise EmulatorError("This portal does not allow cancelling.", 403)
            subscription = self.subscriptions.get(subscription_id)
            if (
                subscription is None
                or subscription["customer"] != session["customer"]
                or subscription["_account"] != session["_account"]
            ):
                raise EmulatorError(f"No such subscription: '{subscription_id}'", 404)
            if subscription["status"] not in CANCELLABLE:
                raise EmulatorError("This subscription has ended.", 409)
            if cancel["mode"] == "immediately":
                self._end_subscription(subscription)
            else:
                self._set_cancel_at_period_end(subscription, True)
            return str(session["return_url"])


def _check_cancel(cancel: dict[str, Any]) -> None:
    mode = cancel.get("mode", "at_period_end")
    proration = cancel.get("proration_behavior")
    if proration == "always_invoice":
        raise StripeError(
            "proration_behavior 'always_invoice' is not supported when canceling subscriptions.",
            param="features[subscription_cancel][proration_behavior]",
        )
    if proration == "create_prorations" and mode != "immediately":
        raise StripeError(
            "proration_behavior 'create_prorations' can only be used with mode 'immediately'.",
            param="features[subscription_cancel][proration_behavior]",
        )


def _check_urls(p: dict[str, Any]) -> None:
    profile = p.get("business_profile") or {}
    for name in ("privacy_policy_url", "terms_of_service_url"):
        if profile.get(name) and not is_url(profile[name]):
            raise StripeError(
                "Not a valid URL", code="url_invalid", param=f"business_profile[{name}]"
            )
    if p.get("default_return_url") and not is_url(p["default_return_url"]):
        raise StripeError("Not a valid URL", code="url_invalid", param="default_return_url")
