"""The emulator's state and behaviour: Stripe objects, API operations and test controls.

:class:`EmulatorState` is one object holding all of Stripe's state (``store``), with
each Stripe resource's operations and controls mixed in from its own module:
``accounts`` (connected accounts, Account Links, the platform account), ``checkout``
(Checkout Sessions, payment intents), ``subscriptions`` (customers, subscriptions,
invoices) and ``webhook_endpoints`` (endpoints and event routing).  This module runs
one API request over them: idempotency, injected faults, and the table that routes
Stripe's URLs to the operations.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from . import rules
from .billing_portal import BillingPortalMixin
from .checkout import CheckoutMixin
from .delivery import Delivery, Target, WebhookDispatcher
from .disputes import DisputesMixin
from .errors import StripeError
from .store import ApiResponse, Fault, RequestContext, RequestRecord
from .subscription_changes import SubscriptionChangesMixin
from .webhook_endpoints import WebhookEndpointsMixin

#: Fault kinds accepted by :meth:`StripeEmulator.inject_fault`.
FAULT_KINDS = ("500", "500-stored", "429", "timeout", "reset")


class EmulatorState(
    CheckoutMixin,
    DisputesMixin,
    BillingPortalMixin,
    SubscriptionChangesMixin,
    WebhookEndpointsMixin,
):
    """Stripe's side of the world: accounts, links, sessions, subscriptions, events.

    The state and its attributes are :class:`~.store.Store`'s; each resource's
    operations come from its mixin, and this class runs the API requests over them.
    """

    def __init__(self, dispatcher: WebhookDispatcher, public_url: Callable[[], str]) -> None:
        super().__init__(dispatcher, public_url)
        dispatcher.router = self.webhook_routes

    # -- faults and idempotency ----------------------------------------------------

    def take_fault(self, path: str) -> str | None:
        """Consume and return the first injected fault that applies to ``path``."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(path):
                    fault.count -= 1
                    kind = fault.kind
                    self.faults = [f for f in self.faults if f.count > 0]
                    return kind
        return None

    # -- the API -------------------------------------------------------------------

    def handle(
        self, method: str, path: str, params: dict[str, Any], ctx: RequestContext
    ) -> tuple[ApiResponse, bool]:
        """Run one authenticated API request; return the response and whether replayed.

        POSTs with an ``Idempotency-Key`` are answered from the stored response when the
        key was used before with the same endpoint and parameters, as Stripe does;
        reusing a key with different parameters is an ``idempotency_error``.  Stripe
        stores a result "only after the execution of an endpoint begins": an error
        from parameter validation is not stored (a corrected retry may reuse the key),
        an error the endpoint raised while acting is, and is replayed like a success.
        """
        rules.check_idempotency_key(ctx.idempotency_key)
        with self.lock:
            fingerprint = json.dumps(params, sort_keys=True)
            scope = (ctx.livemode, ctx.account, ctx.idempotency_key)
            if method == "POST" and ctx.idempotency_key:
                stored = self.idempotency.get(scope)
                if stored is not None:
                    s_method, s_path, s_fingerprint, response = stored
                    if (s_method, s_path) != (method, path):
                        raise StripeError(
                            "Keys for idempotent requests can only be used for the same "
                            f"endpoint they were first used for ('{s_path}' vs '{path}'). "
                            f"Try using a key other than '{ctx.idempotency_key}' if you meant "
                            "to execute a different request.",
                            type="idempotency_error",
                        )
                    if s_fingerprint != fingerprint:
                        raise StripeError(
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other "
                            f"than '{ctx.idempotency_key}' if you meant to execute a "
                            "different request.",
                            type="idempotency_error",
                        )
                    return response, True
            self.expire_due_sessions()
            if ctx.account is not None:
                # Stripe checks the Stripe-Account header before anything else.
                self._account_for(ctx.account, ctx)
            try:
                status, body = self._route(method, path, params, ctx)
            except StripeError as error:
                if method == "POST" and ctx.idempotency_key and ctx.executing:
                    stored_error = ApiResponse(error.status, error.to_json(), error.headers)
                    self.idempotency[scope] = (method, path, fingerprint, stored_error)
                raise
            response = ApiResponse(status, body)
            if method == "POST" and ctx.idempotency_key:
                self.idempotency[scope] = (method, path, fingerprint, response)
            return response, False

    def remember_answer(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        livemode: bool,
        account: str | None,
        idempotency_key: str,
        status: int,
        body: dict[str, Any],
    ) -> None:
        """Keep an answer under its idempotency key, as Stripe keeps even a 500 for 24 h."""
        with self.lock:
            fingerprint = json.dumps(params, sort_keys=True)
            self.idempotency[(livemode, account, idempotency_key)] = (
                method,
                path,
                fingerprint,
                ApiResponse(status, body),
            )

    def _route(
        self, method: str, path: str, params: dict[str, Any], ctx: RequestContext
    ) -> tuple[int, dict[str, Any]]:
        routes: list[tuple[str, str, Callable[..., dict[str, Any]]]] = [
            ("GET", r"/v1/account", self.api_retrieve_current_account),
            ("POST", r"/v1/accounts", self.api_create_account),
            ("GET", r"/v1/accounts", self.api_list_accounts),
            ("GET", r"/v1/accounts/([^/]+)", self.api_retrieve_account),
            ("POST", r"/v1/accounts/([^/]+)", self.api_update_account),
            ("DELETE", r"/v1/accounts/([^/]+)", self.api_delete_account),
            ("POST", r"/v1/account_links", self.api_create_account_link),
            ("POST", r"/v1/checkout/sessions", self.api_create_session),
            ("GET", r"/v1/checkout/sessions", self.api_list_sessions),
            ("GET", r"/v1/checkout/sessions/([^/]+)", self.api_retrieve_session),
            ("GET", r"/v1/checkout/sessions/([^/]+)/line_items", self.api_list_line_items),
            ("POST", r"/v1/checkout/sessions/([^/]+)/expire", self.api_expire_session),
            ("POST", r"/v1/tax_rates", self.api_create_tax_rate),
            ("GET", r"/v1/tax_rates/([^/]+)", self.api_retrieve_tax_rate),
            ("POST", r"/v1/tax_rates/([^/]+)", self.api_update_tax_rate),
            ("POST", r"/v1/coupons", self.api_create_coupon),
            ("GET", r"/v1/coupons/([^/]+)", self.api_retrieve_coupon),
            ("POST", r"/v1/promotion_codes", self.api_create_promotion_code),
            ("GET", r"/v1/tax/settings", self.api_retrieve_tax_settings),
            ("GET", r"/v1/disputes", self.api_list_disputes),
            ("GET", r"/v1/disputes/([^/]+)", self.api_retrieve_dispute),
            ("POST", r"/v1/subscriptions/([^/]+)", self.api_update_subscription),
            ("DELETE", r"/v1/subscriptions/([^/]+)", self.api_cancel_subscription),
            ("POST", r"/v1/billing_portal/configurations", self.api_create_portal_configuration),
            (
                "GET",
                r"/v1/billing_portal/configurations/([^/]+)",
                self.api_retrieve_portal_configuration,
            ),
            (
                "POST",
                r"/v1/billing_portal/configurations/([^/]+)",
                self.api_update_portal_configuration,
            ),
            ("POST", r"/v1/billing_portal/sessions", self.api_create_portal_session),
            ("POST", r"/v1/refunds", self.api_create_refund),
            ("GET", r"/v1/refunds", self.api_list_refunds),
            ("GET", r"/v1/refunds/([^/]+)", self.api_retrieve_refund),
            ("POST", r"/v1/webhook_endpoints", self.api_create_webhook_endpoint),
            ("GET", r"/v1/webhook_endpoints", self.api_list_webhook_endpoints),
            ("GET", r"/v1/webhook_endpoints/([^/]+)", self.api_retrieve_webhook_endpoint),
            ("POST", r"/v1/webhook_endpoints/([^/]+)", self.api_update_webhook_endpoint),
            ("DELETE", r"/v1/webhook_endpoints/([^/]+)", self.api_delete_webhook_endpoint),
        ]
        for route_method, pattern, handler in routes:
            match = re.fullmatch(pattern, path.rstrip("/"))
            if match and route_method == method:
                ids = [urllib.parse.unquote(g) for g in match.groups()]
                return 200, handler(*ids, params=params, ctx=ctx)
        raise StripeError(
            f"Unrecognized request URL ({method}: {path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            status=404,
        )


__all__ = [
    "FAULT_KINDS",
    "ApiResponse",
    "Delivery",
    "EmulatorState",
    "Fault",
    "RequestContext",
    "RequestRecord",
    "Target",
]
