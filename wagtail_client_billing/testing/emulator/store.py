"""The emulator's shared state: every Stripe object store, the clock, ids and events.

:class:`Store` is the base of :class:`~.core.EmulatorState` and of the per-resource
mixins (``accounts``, ``checkout``, ``subscriptions``, ``webhook_endpoints``), so all
state lives on one object under one re-entrant lock: the HTTP handler threads, the
webhook thread and a test calling controls see one consistent Stripe.  Objects are
stored in their public JSON shape; bookkeeping that Stripe would not return lives under
keys starting with ``_`` and is stripped by :func:`public`.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..webhooks import DEFAULT_API_VERSION, build_event
from . import rules
from .delivery import Target, WebhookDispatcher
from .params import validate

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A random Stripe-style id such as ``acct_1Q...``."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def public(obj: Any) -> Any:
    """A deep copy of ``obj`` without the emulator's private ``_keys``."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return obj


def mask_key(key: str) -> str:
    """Stripe shows keys in errors as ``sk_test_****...abcd``."""
    if len(key) <= 12:
        return key[:8] + "****"
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def merge_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
    """Stripe's metadata merge: keys are set, ``""`` deletes a key, ``""`` clears all."""
    if update == "":
        return {}
    merged = dict(current)
    for key, value in (update or {}).items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def is_url(value: str) -> bool:
    parsed = urllib.parse.urlsplit(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


@dataclass
class RequestContext:
    """Who is calling, as the headers of one API request say.

    Attributes:
        api_key: the secret key from the ``Authorization`` header.
        livemode: ``True`` for live-mode keys (``sk_live_``, ``rk_live_``).
        account: the ``Stripe-Account`` header (a connected account), if any.
        idempotency_key: the ``Idempotency-Key`` header, if any.
        request_id: the ``req_...`` id the emulator gave this request.
        executing: set once the endpoint has validated its parameters and begun to
            act; from then on Stripe keeps the outcome under the idempotency key, an
            error included.
    """

    api_key: str
    livemode: bool
    account: str | None = None
    idempotency_key: str | None = None
    request_id: str = field(default_factory=lambda: new_id("req_", 14))
    executing: bool = False


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the emulator received it (see ``StripeEmulator.requests``).

    Attributes:
        method / path: e.g. ``"POST"``, ``"/v1/checkout/sessions"``.
        params: the decoded form or query parameters (nested dicts, strings).
        stripe_account: the ``Stripe-Account`` header, if any.
        idempotency_key: the ``Idempotency-Key`` header, if any.
        status: the status answered (``None`` when a ``reset`` fault dropped it).
        fault: the injected fault applied to this request, if any.
        replayed: whether the answer was an idempotent replay.
    """

    method: str
    path: str
    params: dict[str, Any]
    stripe_account: str | None
    idempotency_key: str | None
    status: int | None
    fault: str | None = None
    replayed: bool = False
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "params": self.params,
            "stripe_account": self.stripe_account,
            "idempotency_key": self.idempotency_key,
            "status": self.status,
            "fault": self.fault,
            "replayed": self.replayed,
            "at": self.at,
        }


@dataclass
class Fault:
    """A pending injected failure; see :meth:`StripeEmulator.inject_fault`."""

    kind: str
    count: int
    path_prefix: str | None = None

    def matches(self, path: str) -> bool:
        return self.count > 0 and (self.path_prefix is None or path.startswith(self.path_prefix))


@dataclass
class ApiResponse:
    """What the HTTP layer writes back for one API request."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _params_types() -> dict[str, type]:
    """The SDK TypedDicts each endpoint's parameters are validated against."""
    from stripe.params import (
        AccountCreateParams,
        AccountDeleteParams,
        AccountLinkCreateParams,
        AccountListParams,
        AccountRetrieveCurrentParams,
        AccountRetrieveParams,
        AccountUpdateParams,
        CouponCreateParams,
        CouponRetrieveParams,
        DisputeListParams,
        DisputeRetrieveParams,
        PromotionCodeCreateParams,
        RefundCreateParams,
        RefundListParams,
        RefundRetrieveParams,
        SubscriptionCancelParams,
        SubscriptionUpdateParams,
        TaxRateCreateParams,
        TaxRateRetrieveParams,
        TaxRateUpdateParams,
        WebhookEndpointCreateParams,
        WebhookEndpointDeleteParams,
        WebhookEndpointListParams,
        WebhookEndpointRetrieveParams,
        WebhookEndpointUpdateParams,
    )
    from stripe.params.billing_portal import (
        ConfigurationCreateParams,
        ConfigurationRetrieveParams,
        ConfigurationUpdateParams,
    )
    from stripe.params.billing_portal import SessionCreateParams as PortalSessionCreateParams
    from stripe.params.checkout import (
        SessionCreateParams,
        SessionExpireParams,
        SessionLineItemListParams,
        SessionListParams,
        SessionRetrieveParams,
    )
    from stripe.params.tax import SettingsRetrieveParams

    return {
        "account.create": AccountCreateParams,
        "dispute.list": DisputeListParams,
        "dispute.retrieve": DisputeRetrieveParams,
        "subscription.cancel": SubscriptionCancelParams,
        "subscription.update": SubscriptionUpdateParams,
        "account.retrieve": AccountRetrieveParams,
        "account.update": AccountUpdateParams,
        "account.delete": AccountDeleteParams,
        "account.retrieve_current": AccountRetrieveCurrentParams,
        "account.list": AccountListParams,
        "account_link.create": AccountLinkCreateParams,
        "session.create": SessionCreateParams,
        "session.retrieve": SessionRetrieveParams,
        "session.list": SessionListParams,
        "session.expire": SessionExpireParams,
        "session.line_items": SessionLineItemListParams,
        "refund.create": RefundCreateParams,
        "refund.retrieve": RefundRetrieveParams,
        "refund.list": RefundListParams,
        "webhook_endpoint.create": WebhookEndpointCreateParams,
        "webhook_endpoint.list": WebhookEndpointListParams,
        "webhook_endpoint.retrieve": WebhookEndpointRetrieveParams,
        "webhook_endpoint.update": WebhookEndpointUpdateParams,
        "webhook_endpoint.delete": WebhookEndpointDeleteParams,
        "tax_rate.create": TaxRateCreateParams,
        "tax_rate.retrieve": TaxRateRetrieveParams,
        "tax_rate.update": TaxRateUpdateParams,
        "coupon.create": CouponCreateParams,
        "coupon.retrieve": CouponRetrieveParams,
        "promotion_code.create": PromotionCodeCreateParams,
        "tax_settings.retrieve": SettingsRetrieveParams,
        "portal_configuration.create": ConfigurationCreateParams,
        "portal_configuration.retrieve": ConfigurationRetrieveParams,
        "portal_configuration.update": ConfigurationUpdateParams,
        "portal_session.create": PortalSessionCreateParams,
    }


class Store:
    """Stripe's side of the world: accounts, links, sessions, subscriptions, events.

    Attributes:
        clock: returns "now" as Unix seconds; replace it to move time (expiry tests).
        require_charges_enabled: refuse Checkout Sessions on connected accounts that
            have not finished onboarding, as Stripe does.
        api_version: the account's default API version: stamped on the events plain
            targets receive, and on those of webhook endpoints without a version.
    """

    def __init__(self, dispatcher: WebhookDispatcher, public_url: Callable[[], str]) -> None:
        self.lock = threading.RLock()
        self.dispatcher = dispatcher
        self._public_url = public_url
        self.clock: Callable[[], float] = time.time
        self.clock_offset = 0.0
        self.require_charges_enabled = True
        self.api_version = DEFAULT_API_VERSION
        self.platform_name = "Emulated Platform"
        self._types = _params_types()
        #: Receivers of endpoints made with ``add_webhook_endpoint`` (a callable cannot
        #: live in the JSON-shaped endpoint object); by endpoint id.
        self.endpoint_targets: dict[str, Target] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every object, event, request, fault and idempotency record."""
        with self.lock:
            self.accounts: dict[str, dict[str, Any]] = {}
            self.account_links: dict[str, dict[str, Any]] = {}
            self.checkout_sessions: dict[str, dict[str, Any]] = {}
            self.customers: dict[str, dict[str, Any]] = {}
            self.subscriptions: dict[str, dict[str, Any]] = {}
            self.invoices: dict[str, dict[str, Any]] = {}
            self.payment_intents: dict[str, dict[str, Any]] = {}
            self.disputes: dict[str, dict[str, Any]] = {}
            self.charges: dict[str, dict[str, Any]] = {}
            self.refunds: dict[str, dict[str, Any]] = {}
            self.webhook_endpoints: dict[str, dict[str, Any]] = {}
            self.billing_portal_configurations: dict[str, dict[str, Any]] = {}
            self.billing_portal_sessions: dict[str, dict[str, Any]] = {}
            self.endpoint_targets = {}
            self.events: list[dict[str, Any]] = []
            self.requests: list[RequestRecord] = []
            self.faults: list[Fault] = []
            self.idempotency: dict[tuple[Any, ...], tuple[str, str, str, ApiResponse]] = {}
            self.clock_offset = 0.0
            self._created_seq = 0

    #: The object stores a state file keeps across restarts (the demo's emulator).
    PERSISTED: tuple[str, ...] = (
        "accounts",
        "account_links",
        "checkout_sessions",
        "customers",
        "subscriptions",
        "invoices",
        "payment_intents",
        "disputes",
        "charges",
        "refunds",
        "webhook_endpoints",
        "billing_portal_configurations",
        "billing_portal_sessions",
    )

    def snapshot(self) -> dict[str, Any]:
        """Stripe's objects as plain JSON data (not requests, faults or idempotency records)."""
        with self.lock:
            data: dict[str, Any] = {name: getattr(self, name) for name in self.PERSISTED}
            data["_created_seq"] = self._created_seq
            return json.loads(json.dumps(data))

    def restore(self, data: dict[str, Any]) -> None:
        """Load objects saved by :meth:`snapshot`, so a restarted emulator knows them."""
        with self.lock:
            for name in self.PERSISTED:
                getattr(self, name).update(data.get(name, {}))
            self._created_seq = max(self._created_seq, int(data.get("_created_seq", 0)))

    def now(self) -> int:
        """The emulator's current time in whole seconds."""
        return int(self.clock() + self.clock_offset)

    def _created(self) -> int:
        return self.now()

    @property
    def public_url(self) -> str:
        return self._public_url().rstrip("/")

    # -- events --------------------------------------------------------------------

    def emit(
        self,
        type: str,
        obj: dict[str, Any],
        *,
        account: str | None,
        livemode: bool,
        ctx: RequestContext | None = None,
        previous_attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record an event and hand it to the dispatcher (which may drop or queue it)."""
        event = build_event(
            type,
            public(obj),
            account=account,
            livemode=livemode,
            created=self.now(),
            previous_attributes=previous_attributes,
            request_id=ctx.request_id if ctx else None,
            idempotency_key=ctx.idempotency_key if ctx else None,
            api_version=self.api_version,
        )
        if self.dispatcher.enabled:
            event["pending_webhooks"] = len(self.dispatcher.routes(event))
        else:
            event["pending_webhooks"] = 0
        self.events.append(event)
        self.dispatcher.enqueue(event)
        return event

    def trigger(
        self,
        type: str,
        obj: dict[str, Any],
        *,
        account: str | None = None,
        livemode: bool = False,
    ) -> dict[str, Any]:
        """An event no API call of the platform caused (the account holder acted in
        their own Dashboard, in either mode); it is routed like any other."""
        with self.lock:
            return self.emit(type, obj, account=account, livemode=livemode)

    def _newest_first(
        self, store: dict[str, dict[str, Any]], ctx: RequestContext, *, owner: str
    ) -> list[dict[str, Any]]:
        """The objects of ``store`` this key's mode and ``Stripe-Account`` may list, newest
        first; ``owner`` is the private key holding the account an object was made on."""
        return sorted(
            (
                obj
                for obj in store.values()
                if obj[owner] == ctx.account and obj["livemode"] == ctx.livemode
            ),
            key=lambda obj: obj["_seq"],
            reverse=True,
        )

    def _validated(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` checked against the SDK's type for ``name`` and Stripe's limits."""
        checked = validate(params, self._types[name])
        rules.check_metadata(checked)
        return checked
