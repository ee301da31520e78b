"""The only code that calls Stripe.

Views, tasks and webhooks call these functions; they return small dataclasses, never
Stripe objects, and raise only :class:`GatewayError` subclasses whose ``str()`` an
editor can read. Nothing here touches an invoice's status.

Why it is built this way:

* One :class:`stripe.StripeClient` per mode (test, live), built from
  :data:`~wagtail_client_billing.conf.billing_settings` and cached; the cache is
  dropped when ``WAGTAIL_CLIENT_BILLING`` changes (``override_settings`` in tests), so a
  test pointing ``STRIPE_API_BASE`` at the emulator gets a client that talks to it.
  A request on a test invoice can only ever use the test key, and a live one the live
  key, because the mode picks the client.
* Checkout Sessions are *direct charges* on the connected account (the
  ``Stripe-Account`` header): the client site owner's own Stripe account takes the
  payment, pays Stripe's fees and sees it in their dashboard; the platform only takes
  its optional application fee.
* Every create call carries an idempotency key, so a timeout followed by a retry can
  never make two accounts or two payable sessions for one attempt. Stripe replays any
  answer it gave (a 500 too) to the same key for 24 hours, so after an answer a retry
  needs a new key: :attr:`GatewayError.idempotency_key_spent` is that rule, and every
  caller that retries derives its next key from it.
* Parameters a ``client_billing_checkout_params`` hook returns are checked against the
  ``stripe`` package's own ``TypedDict`` of the call, and against the limits Stripe
  documents for values (metadata sizes, the fee percentage), before anything is sent,
  so a misspelt key or a 51st metadata key fails loudly in the developer's tests instead
  of as a 400 in production.
"""

from __future__ import annotations

import collections.abc
import decimal
import functools
import hashlib
import json
import logging
import math
import re
import sys
import threading
import types
import typing
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import stripe
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from . import __version__, hooks, money
from .conf import SETTINGS_NAME, billing_settings
from .languages import invoice_language
from .models import invoice_lines, site_display_name
from .stripe_api import STRIPE_API_VERSION, checkout_locale, expandable_id, text, unix_time

if TYPE_CHECKING:
    from stripe._base_address import BaseAddresses
    from stripe.params import (
        AccountCreateParams,
        AccountCreateParamsController,
        AccountLinkCreateParams,
    )
    from stripe.params.checkout import (
        SessionCreateParams,
        SessionCreateParamsLineItem,
        SessionCreateParamsLineItemPriceData,
        SessionCreateParamsLineItemPriceDataProductData,
    )

    from .models import Invoice

logger = logging.getLogger("wagtail_client_billing.gateway")

#: How this app introduces itself to Stripe (``User-Agent``), so Stripe support can tell
#: its requests apart from the rest of the platform's.
APP_INFO = {
    "name": "wagtail-client-billing",
    "version": __version__,
    "url": "https://github.com/wagtail-client-billing/wagtail-client-billing",
}

#: Stripe accepts a Checkout Session ``expires_at`` between 30 minutes and 24 hours after
#: creation. The margin covers the time between computing it here and Stripe's clock.
CHECKOUT_MIN_LIFETIME = timedelta(minutes=30)
CHECKOUT_MAX_LIFETIME = timedelta(hours=24)
CHECKOUT_LIFETIME_MARGIN = timedelta(minutes=2)
#: A session lifetime capped at 24 h is rounded down to this step, so the same request
#: retried a little later computes the same ``expires_at`` (and idempotency key).
CHECKOUT_EXPIRY_STEP = 300

#: Stripe's limits on every ``metadata`` (https://docs.stripe.com/api/metadata): 50 keys,
#: keys of 40 characters without square brackets, values of 500 characters.
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500

#: ``metadata.platform`` on every object this app creates, so webhooks and people
#: looking at a connected account's dashboard can tell them apart.
PLATFORM = "wagtail_client_billing"


class GatewayError(Exception):
    """A Stripe call failed. ``str()`` is a sentence for an editor; ``retryable`` says
    whether trying again later may work (network, rate limit, Stripe 5xx)."""

    retryable = False
    #: Stripe's ``error.code`` (``account_invalid``, ``resource_missing``...), if any.
    code: str | None = None
    #: Stripe's ``Request-Id`` of the failed request, for support tickets.
    request_id: str | None = None
    #: The HTTP status Stripe answered with; ``None`` when no answer came (network, timeout).
    http_status: int | None = None

    @property
    def idempotency_key_spent(self) -> bool:
        """Whether a retry of the request must send a new idempotency key.

        Stripe keeps the answer to a request it began to carry out under its idempotency
        key for 24 hours and replays it to every request with that key, a 500 included,
        so after any answer a retry with the same key gets the same failure. Only a
        request that got no answer (connection error, timeout) keeps its key: Stripe may
        have carried it out, and the same key then returns what it made instead of
        making it twice. A 429 comes from Stripe's rate limiter, in front of the
        idempotency layer, and is not kept: the key stays usable.

        Every caller that retries a create or expire call follows this one rule.
        """
        return self.http_status is not None and self.http_status != 429


class StripeUnavailable(GatewayError):
    """Could not reach Stripe, timed out, or Stripe answered 5xx."""

    retryable = True


class RateLimited(GatewayError):
    retryable = True


class PermissionDenied(GatewayError):
    """The platform key may not act on that account (e.g. deauthorized)."""


class InvalidRequest(GatewayError):
    """Stripe refused the parameters; ``param`` names the one it objected to."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class CardError(GatewayError):
    pass


class NotConfigured(GatewayError):
    """The platform's settings do not allow the call: no secret key for the mode, or a
    setting whose value Stripe would refuse."""


@dataclass(frozen=True)
class AccountState:
    """A connected account as the app reads it (:func:`account_from_stripe`).

    Attributes:
        requirements_due: Stripe's ``requirements.currently_due``: what must be given to
            keep the account enabled (by ``current_deadline``, or now).
        requirements_past_due: Stripe's ``requirements.past_due``: what was not given by
            the deadline; the account is disabled until it is.
    """

    id: str
    country: str
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    requirements_due: list[str] = field(default_factory=list)
    requirements_past_due: list[str] = field(default_factory=list)
    disabled_reason: str = ""


@dataclass(frozen=True)
class CheckoutSession:
    """A Checkout Session as the app reads it.

    The amounts are integer minor units of ``currency`` (upper case), ``None`` where
    Stripe gave none: ``amount_subtotal`` is the line items before discounts and tax
    (what the invoice asked for), ``amount_total`` what the client was charged.
    """

    id: str
    url: str
    status: str  # open, complete, expired
    payment_status: str  # unpaid, paid, no_payment_required
    expires_at: datetime
    payment_intent: str = ""
    subscription: str = ""
    customer: str = ""
    #: The Stripe invoice of a subscription-mode session's first payment.
    invoice: str = ""
    client_reference_id: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    currency: str = ""
    amount_subtotal: int | None = None
    amount_discount: int | None = None
    amount_tax: int | None = None
    amount_shipping: int | None = None
    amount_total: int | None = None


# --- clients ---------------------------------------------------------------------------


def _mode(test_mode: bool) -> str:
    return "test" if test_mode else "live"


_clients: dict[str, tuple[tuple[Any, ...], stripe.StripeClient]] = {}
_clients_lock = threading.Lock()


def get_client(test_mode: bool) -> stripe.StripeClient:
    """The cached :class:`stripe.StripeClient` for a mode.

    Raises :class:`NotConfigured` when the platform has no secret key for that mode.
    """
    key = billing_settings.secret_key(test_mode)
    if not key:
        setting = "STRIPE_TEST_SECRET_KEY" if test_mode else "STRIPE_LIVE_SECRET_KEY"
        if test_mode:
            message = _(
                "Test payments are not set up on this platform yet: ask the site developer "
                "to set %(setting)s."
            )
        else:
            message = _(
                "Live payments are not set up on this platform yet: ask the site developer "
                "to set %(setting)s."
            )
        raise NotConfigured(message % {"setting": setting})
    base = billing_settings.STRIPE_API_BASE
    config = (
        key,
        base,
        billing_settings.STRIPE_TIMEOUT,
        billing_settings.STRIPE_MAX_NETWORK_RETRIES,
    )
    mode = _mode(test_mode)
    with _clients_lock:
        cached = _clients.get(mode)
        if cached is not None and cached[0] == config:
            return cached[1]
        client = _build_client(*config)
        _clients[mode] = (config, client)
        return client


def _build_client(key: str, base: str | None, timeout: float, retries: int) -> stripe.StripeClient:
    if stripe.app_info is None:
        # ``app_info`` is global in the stripe package; leave a project's own alone.
        stripe.set_app_info(APP_INFO["name"], version=APP_INFO["version"], url=APP_INFO["url"])
    base_addresses: BaseAddresses = {}
    if base:
        base = base.rstrip("/")
        base_addresses = {"api": base, "connect": base, "files": base}
    return stripe.StripeClient(
        key,
        # Pinned, so responses have the shapes the app reads whatever the account's
        # default version is or the installed ``stripe`` package speaks.
        stripe_version=STRIPE_API_VERSION,
        base_addresses=base_addresses,
        max_network_retries=int(retries),
        http_client=stripe.RequestsClient(timeout=float(timeout)),
    )


def reset_clients() -> None:
    """Forget the cached clients; the next call builds them from the current settings."""
    with _clients_lock:
        _clients.clear()


def reset_clients_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """Receiver of Django's ``setting_changed`` (connected in ``AppConfig.ready()``)."""
    if setting == SETTINGS_NAME:
        reset_clients()


# --- errors ----------------------------------------------------------------------------


def _raise_mapped(
    exc: stripe.StripeError, *, operation: str, test_mode: bool, account_id: str | None
) -> NoReturn:
    """Turn a Stripe exception into this app's, with a message an editor can act on."""
    error: GatewayError
    level = logging.WARNING
    if isinstance(exc, stripe.CardError):
        error = CardError(
            _("The card was declined: %(reason)s") % {"reason": exc.user_message or exc.code}
        )
    elif isinstance(exc, stripe.PermissionError):
        error = PermissionDenied(
            _(
                "The platform no longer has access to the Stripe account %(account)s: it may "
                "have been disconnected or deleted. Connect a Stripe account again in the "
                "site's Client Billing settings."
            )
            % {"account": account_id or "?"}
        )
    elif isinstance(exc, stripe.IdempotencyError):
        error = InvalidRequest(
            _(
                "Stripe refused a repeated request that differs from the first one. "
                "Try again in a minute."
            )
        )
    elif isinstance(exc, stripe.InvalidRequestError):
        param = getattr(exc, "param", None)
        if (exc.code or getattr(exc.error, "code", None)) == "account_invalid":
            error = PermissionDenied(
                _(
                    "The platform no longer has access to the Stripe account %(account)s: it "
                    "may have been disconnected or deleted. Connect a Stripe account again in "
                    "the site's Client Billing settings."
                )
                % {"account": account_id or "?"}
            )
        else:
            error = InvalidRequest(
                _("Stripe refused the request: %(reason)s")
                % {"reason": exc.user_message or str(exc)},
                param=param,
            )
    elif isinstance(exc, stripe.RateLimitError):
        error = RateLimited(
            _("Stripe is receiving too many requests from this platform. Try again in a minute.")
        )
    elif isinstance(exc, stripe.AuthenticationError):
        level = logging.ERROR
        setting = "STRIPE_TEST_SECRET_KEY" if test_mode else "STRIPE_LIVE_SECRET_KEY"
        error = NotConfigured(
            _(
                "Stripe refused the platform's Stripe key: ask the site developer to check "
                "%(setting)s."
            )
            % {"setting": setting}
        )
    elif isinstance(exc, stripe.APIConnectionError):
        error = StripeUnavailable(
            _(
                "Stripe could not be reached or did not answer in time. Nothing was "
                "charged twice; try again in a few minutes."
            )
        )
    else:  # APIError (5xx) and anything Stripe adds later
        level = logging.ERROR if exc.http_status is None or exc.http_status < 500 else level
        error = StripeUnavailable(
            _("Stripe had a problem answering the request. Try again in a few minutes.")
        )
    error.code = exc.code or getattr(exc.error, "code", None)
    error.http_status = exc.http_status
    error.request_id = exc.request_id
    logger.log(
        level,
        "Stripe %s failed: mode=%s account=%s status=%s code=%s request_id=%s error=%s",
        operation,
        _mode(test_mode),
        account_id or "-",
        exc.http_status,
        error.code,
        exc.request_id,
        type(exc).__name__,
    )
    raise error from exc


@contextmanager
def _calling(operation: str, *, test_mode: bool, account_id: str | None) -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as exc:
        _raise_mapped(exc, operation=operation, test_mode=test_mode, account_id=account_id)


def _log_ok(operation: str, obj: Any, *, test_mode: bool, account_id: str | None) -> None:
    response = getattr(obj, "last_response", None)
    logger.info(
        "Stripe %s: mode=%s account=%s id=%s request_id=%s",
        operation,
        _mode(test_mode),
        account_id or "-",
        getattr(obj, "id", None) or "-",
        getattr(response, "request_id", None) or "-",
    )


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a Stripe object or plain dict, ``default`` when missing or null."""
    try:
        value = obj[name]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


# --- accounts --------------------------------------------------------------------------


def _plain(obj: Any) -> dict[str, Any]:
    """A Stripe object as plain dicts (``StripeObject`` is not a mapping any more)."""
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else dict(obj)


def _names(value: Any) -> list[str]:
    """A list of requirement names, each once, in Stripe's order; ``[]`` for anything else."""
    names: list[str] = []
    for name in value if isinstance(value, list) else ():
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


def account_from_stripe(obj: Any) -> AccountState:
    """An :class:`AccountState` from an ``account`` as Stripe sends it.

    The one parser for both shapes it comes in: an API answer (a ``StripeObject``) and
    an ``account.updated`` event's ``data.object`` (plain JSON that reached the app from
    outside), so the two paths record the same thing for the same account. A field of
    the wrong type reads as empty or false. ``currently_due`` and ``past_due`` are kept
    apart, as Stripe gives them: a past-due field is listed in ``currently_due`` as well.
    """
    account = _plain(obj) if not isinstance(obj, dict) else obj
    requirements = account.get("requirements")
    requirements = requirements if isinstance(requirements, dict) else {}
    return AccountState(
        id=text(account.get("id")),
        country=text(account.get("country")),
        charges_enabled=account.get("charges_enabled") is True,
        payouts_enabled=account.get("payouts_enabled") is True,
        details_submitted=account.get("details_submitted") is True,
        requirements_due=_names(requirements.get("currently_due")),
        requirements_past_due=_names(requirements.get("past_due")),
        disabled_reason=text(requirements.get("disabled_reason")),
    )


def create_account(
    *,
    test_mode: bool,
    country: str,
    privacy_policy_url: str,
    terms_of_service_url: str,
    site_url: str,
    idempotency_key: str,
    email: str | None = None,
) -> AccountState:
    """Create a connected account that the client site's owner owns outright.

    The account is made with controller properties (not the legacy ``type``), set so
    that it behaves like a Standard account, which is what an agency billing its
    clients' sites wants: the site owner signs in to the full Stripe Dashboard, is the
    merchant of record, pays Stripe's processing fees on their own direct charges
    (``fees.payer = "account"``) and Stripe, not the platform, carries the risk of
    negative balances (``losses.payments = "stripe"``), with Stripe collecting the
    verification details (``requirement_collection = "stripe"``). Stripe only accepts
    ``stripe_dashboard.type = "full"`` together with exactly those three values; the
    alternative (``losses.payments = "application"``) would make the platform liable
    for every client's refunds and disputes, and needs ``fees.payer = "application"``
    and a dashboard other than the full one.

    Stripe's Accounts API has no field for a Privacy Policy or Terms of Service URL,
    so they travel in ``metadata`` (Stripe limits values to 500 characters; longer
    URLs stay only in this app's database).
    """
    metadata: dict[str, str] = {"platform": PLATFORM, "site": site_url[:500]}
    for name, url in (
        ("privacy_policy_url", privacy_policy_url),
        ("terms_of_service_url", terms_of_service_url),
    ):
        if url and len(url) <= 500:
            metadata[name] = url
    controller: AccountCreateParamsController = {
        "fees": {"payer": "account"},
        "losses": {"payments": "stripe"},
        "requirement_collection": "stripe",
        "stripe_dashboard": {"type": "full"},
    }
    params: AccountCreateParams = {
        "country": country.upper(),
        "controller": controller,
        "business_profile": {"url": site_url},
        "metadata": metadata,
    }
    if email:
        params["email"] = email
    client = get_client(test_mode)
    with _calling("create_account", test_mode=test_mode, account_id=None):
        account = client.v1.accounts.create(params, {"idempotency_key": idempotency_key})
    _log_ok("create_account", account, test_mode=test_mode, account_id=account.id)
    return account_from_stripe(account)


def create_account_link(
    *,
    test_mode: bool,
    account_id: str,
    refresh_url: str,
    return_url: str,
    idempotency_key: str | None = None,
) -> str:
    """An Account Link URL for onboarding (valid a few minutes, single use).

    Links are single use, so every call asks for a new one: the idempotency key is
    random per call (the stripe client's own network retries reuse it), unless the
    caller passes one to tie retries of the same editor action together.
    """
    params: AccountLinkCreateParams = {
        "account": account_id,
        "type": "account_onboarding",
        "refresh_url": refresh_url,
        "return_url": return_url,
    }
    key = idempotency_key or f"wcb-account-link-{account_id}-{uuid.uuid4().hex}"
    client = get_client(test_mode)
    with _calling("create_account_link", test_mode=test_mode, account_id=account_id):
        link = client.v1.account_links.create(params, {"idempotency_key": key})
    _log_ok("create_account_link", link, test_mode=test_mode, account_id=account_id)
    return str(link.url)


def retrieve_account(*, test_mode: bool, account_id: str) -> AccountState:
    client = get_client(test_mode)
    with _calling("retrieve_account", test_mode=test_mode, account_id=account_id):
        account = client.v1.accounts.retrieve(account_id)
    return account_from_stripe(account)


def delete_account(*, test_mode: bool, account_id: str) -> None:
    """Delete a TEST connected account on Stripe; refuses live accounts.

    A live account belongs to the client site's owner (it holds their balance and
    history), so this app never deletes one; "Unlink account" only detaches it.
    """
    if not test_mode:
        raise InvalidRequest(
            _(
                "Live Stripe accounts are never deleted from here: unlink the account "
                "instead; its owner can close it in their Stripe Dashboard."
            ),
            param="account",
        )
    client = get_client(test_mode)
    with _calling("delete_account", test_mode=test_mode, account_id=account_id):
        client.v1.accounts.delete(account_id)
    logger.info("Stripe delete_account: mode=test account=%s", account_id)


# --- platform checks (read-only) -------------------------------------------------------
#
# What ``manage.py client_billing_stripe_check`` asks Stripe. None of these changes
# anything on Stripe, so they carry no idempotency key.


class MissingPermission(PermissionDenied):
    """Stripe answered 403 to the platform's own key: a restricted key (``rk_...``)
    without the permission the call needs. ``permission`` is Stripe's name for it
    (``rak_webhook_read``...) when Stripe said which."""

    def __init__(self, message: str, permission: str | None = None) -> None:
        super().__init__(message)
        self.permission = permission


#: Stripe's 403 names the missing permission ("Having the 'rak_..._read' permission
#: would allow this request to continue"). Only that name is kept: the same message
#: quotes the start of the key.
_PERMISSION_NAME = re.compile(r"\brak_[a-z0-9_]+\b")


@dataclass(frozen=True)
class PlatformAccount:
    id: str
    display_name: str
    country: str


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    enabled_events: tuple[str, ...]
    #: ``""`` when the endpoint has none of its own: events then come in the account's
    #: default API version, which the API does not show.
    api_version: str
    status: str  # enabled, disabled
    livemode: bool
    description: str = ""


@contextmanager
def _reading(
    operation: str, action: str, *, test_mode: bool, account_id: str | None = None
) -> Iterator[None]:
    """Like :func:`_calling`, but a 403 other than ``account_invalid`` (a connected
    account gone away) is a permission the platform's key lacks; ``action`` says what it
    could not do."""
    try:
        yield
    except stripe.PermissionError as exc:
        if exc.code == "account_invalid":
            _raise_mapped(exc, operation=operation, test_mode=test_mode, account_id=account_id)
        match = _PERMISSION_NAME.search(exc.user_message or "")
        permission = match.group(0) if match else None
        logger.warning(
            "Stripe %s failed: mode=%s status=403 permission=%s request_id=%s",
            operation,
            _mode(test_mode),
            permission or "-",
            exc.request_id,
        )
        setting = "STRIPE_TEST_SECRET_KEY" if test_mode else "STRIPE_LIVE_SECRET_KEY"
        if permission:
            message = _(
                "The Stripe key in %(setting)s may not %(action)s: it lacks the permission "
                "%(permission)s."
            )
        else:
            message = _("The Stripe key in %(setting)s may not %(action)s.")
        error = MissingPermission(
            message % {"setting": setting, "action": action, "permission": permission},
            permission=permission,
        )
        error.code = exc.code
        error.http_status = exc.http_status
        error.request_id = exc.request_id
        raise error from exc
    except stripe.StripeError as exc:
        _raise_mapped(exc, operation=operation, test_mode=test_mode, account_id=account_id)


def retrieve_platform_account(*, test_mode: bool) -> PlatformAccount:
    """The platform's own account (``GET /v1/account``): the key works and whose it is."""
    client = get_client(test_mode)
    with _reading("retrieve_platform_account", _("read the platform account"), test_mode=test_mode):
        account = _plain(client.v1.accounts.retrieve_current())
    dashboard = _get(_get(account, "settings", {}), "dashboard", {})
    name = _get(dashboard, "display_name", "") or _get(
        _get(account, "business_profile", {}), "name", ""
    )
    return PlatformAccount(
        id=str(account["id"]), display_name=str(name), country=_get(account, "country", "")
    )


def list_connected_accounts(*, test_mode: bool, limit: int = 1) -> list[str]:
    """Ids of the newest connected accounts of the platform (empty when it has none, or
    when the account is not a Connect platform)."""
    client = get_client(test_mode)
    with _reading("list_connected_accounts", _("list connected accounts"), test_mode=test_mode):
        page = client.v1.accounts.list({"limit": limit})
    return [str(_get(account, "id", "")) for account in page.data]


def list_checkout_sessions(
    *, test_mode: bool, account_id: str | None = None, limit: int = 1
) -> list[CheckoutSession]:
    """The newest Checkout Sessions of a connected account (or of the platform)."""
    client = get_client(test_mode)
    options: stripe.RequestOptions = {"stripe_account": account_id} if account_id else {}
    with _reading(
        "list_checkout_sessions",
        _("list Checkout Sessions"),
        test_mode=test_mode,
        account_id=account_id,
    ):
        page = client.v1.checkout.sessions.list({"limit": limit}, options)
    return [session_from_stripe(session) for session in page.data]


def list_webhook_endpoints(*, test_mode: bool) -> list[WebhookEndpoint]:
    """Every webhook endpoint registered for the mode, all pages."""
    client = get_client(test_mode)
    endpoints = []
    with _reading("list_webhook_endpoints", _("list webhook endpoints"), test_mode=test_mode):
        for item in client.v1.webhook_endpoints.list({"limit": 100}).auto_paging_iter():
            endpoint = _plain(item)
            endpoints.append(
                WebhookEndpoint(
                    id=str(endpoint["id"]),
                    url=_get(endpoint, "url", ""),
                    enabled_events=tuple(_get(endpoint, "enabled_events", [])),
                    api_version=_get(endpoint, "api_version", ""),
                    status=_get(endpoint, "status", ""),
                    livemode=bool(_get(endpoint, "livemode", False)),
                    description=_get(endpoint, "description", ""),
                )
            )
    return endpoints


# --- checkout sessions -----------------------------------------------------------------


def _amount(value: Any) -> int | None:
    """An amount in minor units; ``None`` for a missing or malformed one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _session_amounts(session: dict[str, Any]) -> dict[str, Any]:
    """A session's currency and amounts in the currency it was created in.

    Sessions that Adaptive Pricing localised before API version 2025-03-31 carry the
    client's currency in ``currency`` and the created one in ``currency_conversion``
    (``source_currency``, ``amount_subtotal``, ``amount_total``); their ``total_details``
    are in the client's currency, so they are not taken.
    """
    conversion = session.get("currency_conversion")
    if isinstance(conversion, dict) and text(conversion.get("source_currency")):
        return {
            "currency": text(conversion.get("source_currency")).upper(),
            "amount_subtotal": _amount(conversion.get("amount_subtotal")),
            "amount_total": _amount(conversion.get("amount_total")),
        }
    details = session.get("total_details")
    details = details if isinstance(details, dict) else {}
    return {
        "currency": text(session.get("currency")).upper(),
        "amount_subtotal": _amount(session.get("amount_subtotal")),
        "amount_discount": _amount(details.get("amount_discount")),
        "amount_tax": _amount(details.get("amount_tax")),
        "amount_shipping": _amount(details.get("amount_shipping")),
        "amount_total": _amount(session.get("amount_total")),
    }


def session_from_stripe(obj: Any) -> CheckoutSession:
    """A :class:`CheckoutSession` from a ``checkout.session`` as Stripe sends it.

    The one parser for both shapes it comes in: an API answer (a ``StripeObject``) and
    an event's ``data.object`` (plain JSON that reached the app from outside). A field
    of the wrong type reads as empty, never as something it is not, so nothing is marked
    paid on a field that could not be read.
    """
    session = _plain(obj) if not isinstance(obj, dict) else obj
    reference = session.get("client_reference_id")
    metadata = session.get("metadata")
    return CheckoutSession(
        id=text(session.get("id")),
        url=text(session.get("url")),
        status=text(session.get("status")),
        payment_status=text(session.get("payment_status")),
        expires_at=unix_time(session.get("expires_at")) or timezone.now(),
        payment_intent=expandable_id(session.get("payment_intent")),
        subscription=expandable_id(session.get("subscription")),
        customer=expandable_id(session.get("customer")),
        invoice=expandable_id(session.get("invoice")),
        client_reference_id=(
            str(reference)
            if isinstance(reference, str | int) and not isinstance(reference, bool)
            else ""
        ),
        metadata={
            str(k): v if isinstance(v, str) else json.dumps(v)
            for k, v in (metadata.items() if isinstance(metadata, dict) else ())
        },
        **_session_amounts(session),
    )


def clamp_checkout_expiry(expires_at: datetime, now: datetime | None = None) -> int:
    """``expires_at`` as a Unix time inside the window Stripe accepts.

    Stripe wants a session to live at least 30 minutes and at most 24 hours. An
    invoice payable for days gets a 24-hour session (the pay link makes a new one when
    that runs out); one about to expire gets the 30-minute minimum (a payment that
    lands after the invoice expired is still recorded: money received wins). The cap
    is rounded down to :data:`CHECKOUT_EXPIRY_STEP` so a retry a little later sends the
    same value and gets the same session back.
    """
    now = now or timezone.now()
    earliest = now + CHECKOUT_MIN_LIFETIME + CHECKOUT_LIFETIME_MARGIN
    latest = now + CHECKOUT_MAX_LIFETIME - CHECKOUT_LIFETIME_MARGIN
    if expires_at < earliest:
        return math.ceil(earliest.timestamp() / 60) * 60
    if expires_at > latest:
        return int(latest.timestamp()) // CHECKOUT_EXPIRY_STEP * CHECKOUT_EXPIRY_STEP
    return int(expires_at.timestamp())


def application_fee_percent() -> decimal.Decimal:
    """``APPLICATION_FEE_PERCENT`` as Stripe accepts it (0 to under 100, two decimals).

    The system check (``wagtail_client_billing.E009``) reports a bad value at start-up;
    this refuses to send one anyway, so a setting changed at run time cannot make Stripe
    refuse every subscription Checkout.

    Raises:
        NotConfigured: the setting is not a valid percentage.
    """
    value = billing_settings.APPLICATION_FEE_PERCENT
    try:
        return money.fee_percent(value)
    except money.MoneyError as problem:
        raise NotConfigured(
            _(
                "The platform's fee setting is not valid: ask the site developer to check "
                "APPLICATION_FEE_PERCENT (%(problem)s)."
            )
            % {"problem": problem}
        ) from None


def application_fee_amount(amount: int, percent: Any = None) -> int:
    """The platform's fee on ``amount`` minor units, rounded down (never over-charge)."""
    if percent is None:
        percent = application_fee_percent()
    fee = decimal.Decimal(amount) * decimal.Decimal(str(percent or 0)) / 100
    return int(fee.to_integral_value(rounding=decimal.ROUND_FLOOR))


def checkout_params(
    invoice: Invoice,
    *,
    success_url: str,
    cancel_url: str,
    expires_at: datetime,
    requested_at: datetime | None = None,
    extras: CheckoutExtras | None = None,
) -> SessionCreateParams:
    """The Checkout Session parameters for an invoice, before hooks run; the session's
    lifetime is reckoned from ``requested_at`` (default now). Checkout's ``locale`` and the
    lines' descriptions are in the invoice's language."""
    language = invoice_language(invoice)
    metadata = {
        "invoice_id": str(invoice.pk),
        "invoice_number": invoice.number,
        "site_id": str(invoice.site_id),
        "platform": PLATFORM,
    }
    interval = invoice.recurring_interval
    with translation.override(language):
        # Translators: client-facing. Stripe's payment page shows it under each line.
        from_line = _("Invoice %(number)s from %(site)s") % {
            "number": invoice.number,
            "site": site_display_name(invoice.site),
        }
    line_items: list[SessionCreateParamsLineItem] = []
    # One Checkout line per invoice line (a request made the quick way has one, of its
    # amount and description); Checkout's subtotal is their sum, as the invoice's amount.
    for line in invoice_lines(invoice):
        product: SessionCreateParamsLineItemPriceDataProductData = {
            "name": (line.description or invoice.description or invoice.number)[:250],
            "description": from_line,
        }
        price_data: SessionCreateParamsLineItemPriceData = {
            "currency": invoice.currency.lower(),
            "unit_amount": int(line.unit_amount),
            "product_data": product,
        }
        if interval:
            # Subscription mode: every line recurs, at the one interval of the request.
            price_data["recurring"] = {"interval": typing.cast(Any, interval)}
        line_items.append({"price_data": price_data, "quantity": int(line.quantity)})
    params: SessionCreateParams = {
        "mode": "subscription" if interval else "payment",
        "line_items": line_items,
        "client_reference_id": str(invoice.pk),
        "metadata": dict(metadata),
        "success_url": success_url,
        "cancel_url": cancel_url,
        "expires_at": clamp_checkout_expiry(expires_at, requested_at),
        "locale": typing.cast(Any, checkout_locale(language)),
    }
    apply_tax_and_discount(params, invoice, extras)
    apply_customer(params, invoice, extras)
    percent = application_fee_percent()
    if interval:
        params["subscription_data"] = {"metadata": dict(metadata)}
        if percent:
            params["subscription_data"]["application_fee_percent"] = float(percent)
    else:
        params["payment_intent_data"] = {"metadata": dict(metadata)}
        # On what the client pays before any tax Stripe Tax adds: never over the charge.
        fee = application_fee_amount(invoice.figures.gross, percent)
        if fee > 0:
            params["payment_intent_data"]["application_fee_amount"] = fee
    return params


def checkout_idempotency_key(invoice: Invoice, params: Any) -> str:
    """``wcb-invoice-<pk>-checkout-<attempt>-<hash of params>``.

    The attempt number changes when the app wants a new session; the hash changes
    when the request does (another success URL, a hook's new parameter), which Stripe
    would otherwise refuse as a replay with different parameters. The same request
    retried gets the same key, and Stripe answers with the same session.
    """
    canonical = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return f"wcb-invoice-{invoice.pk}-checkout-{invoice.checkout_attempt}-{digest}"


def create_checkout_session(
    invoice: Invoice,
    *,
    success_url: str,
    cancel_url: str,
    expires_at: datetime,
    requested_at: datetime | None = None,
    extras: CheckoutExtras | None = None,
) -> CheckoutSession:
    """A Checkout Session on the invoice's connected account (a direct charge).

    Idempotency key ``wcb-invoice-<pk>-checkout-<invoice.checkout_attempt>-<hash>``:
    the caller bumps ``checkout_attempt`` before asking for a new session.

    The ``client_billing_checkout_params`` hook may change the parameters; what it
    returns is validated against ``stripe.params.checkout.SessionCreateParams`` and an
    unknown key or a wrong type raises :class:`InvalidRequest` before any request.
    """
    params = checkout_params(
        invoice,
        success_url=success_url,
        cancel_url=cancel_url,
        expires_at=expires_at,
        requested_at=requested_at,
        extras=extras,
    )
    params = hooks.fold(hooks.CHECKOUT_PARAMS, params, invoice)
    validate_params(params, _session_create_params_type())
    account_id = invoice.account.stripe_id
    test_mode = invoice.test_mode
    client = get_client(test_mode)
    options: stripe.RequestOptions = {
        "stripe_account": account_id,
        "idempotency_key": checkout_idempotency_key(invoice, params),
    }
    with _calling("create_checkout_session", test_mode=test_mode, account_id=account_id):
        session = client.v1.checkout.sessions.create(params, options)
    _log_ok("create_checkout_session", session, test_mode=test_mode, account_id=account_id)
    return session_from_stripe(session)


def retrieve_checkout_session(
    *, test_mode: bool, account_id: str, session_id: str
) -> CheckoutSession:
    client = get_client(test_mode)
    with _calling("retrieve_checkout_session", test_mode=test_mode, account_id=account_id):
        session = client.v1.checkout.sessions.retrieve(
            session_id, options={"stripe_account": account_id}
        )
    return session_from_stripe(session)


def expire_checkout_session(
    *, test_mode: bool, account_id: str, session_id: str, attempt: int = 0
) -> CheckoutSession:
    """Expire an open session so its page can no longer be paid; return its state.

    A session that is already expired or complete is not an error (two editors, or an
    editor and Stripe's own expiry, got there first): its current state is returned,
    and the caller learns from ``status`` whether it was paid meanwhile.

    Idempotency key ``wcb-expire-<session id>-<attempt>``: a caller retrying after an
    error whose :attr:`~GatewayError.idempotency_key_spent` is true passes the next
    ``attempt``, or Stripe would replay the stored failure to every retry.
    """
    client = get_client(test_mode)
    options: stripe.RequestOptions = {
        "stripe_account": account_id,
        "idempotency_key": f"wcb-expire-{session_id}-{attempt}",
    }
    try:
        with _calling("expire_checkout_session", test_mode=test_mode, account_id=account_id):
            session = client.v1.checkout.sessions.expire(session_id, options=options)
    except InvalidRequest as error:
        if error.code == "resource_missing":
            raise
        current = retrieve_checkout_session(
            test_mode=test_mode, account_id=account_id, session_id=session_id
        )
        if current.status == "open":
            raise
        return current
    _log_ok("expire_checkout_session", session, test_mode=test_mode, account_id=account_id)
    return session_from_stripe(session)


# --- tax rates, coupons and Stripe Tax ---------------------------------------------------


@dataclass(frozen=True)
class CheckoutExtras:
    """What a Checkout Session names that was made on Stripe before it: the tax rate and
    coupon (``billing.taxes``), the client's customer on the account (``billing.clients``)."""

    tax_rate_id: str | None = None
    coupon_id: str | None = None
    customer_id: str | None = None


def create_tax_rate(
    *,
    test_mode: bool,
    account_id: str,
    display_name: str,
    percentage: decimal.Decimal,
    inclusive: bool,
    country: str = "",
    state: str = "",
    key: str = "",
) -> str:
    """A tax rate on the connected account; its id.

    Idempotency key ``wcb-taxrate-<key>-<hash of the figures>``: the same rate asked
    for twice (two Checkout clicks at once) is made once.
    """
    params: dict[str, Any] = {
        "display_name": display_name[:50],
        "percentage": float(percentage),
        "inclusive": inclusive,
        "metadata": {"platform": PLATFORM},
    }
    if country:
        params["country"] = country.upper()
        if state:
            params["state"] = state.upper()
    canonical = json.dumps(params, sort_keys=True, default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    client = get_client(test_mode)
    options: stripe.RequestOptions = {
        "stripe_account": account_id,
        "idempotency_key": f"wcb-taxrate-{key}-{account_id}-{digest}",
    }
    with _calling("create_tax_rate", test_mode=test_mode, account_id=account_id):
        rate = client.v1.tax_rates.create(typing.cast(Any, params), options)
    _log_ok("create_tax_rate", rate, test_mode=test_mode, account_id=account_id)
    return str(rate.id)


def archive_tax_rate(
    *, test_mode: bool, account_id: str, tax_rate_id: str, attempt: int = 0
) -> None:
    """Archive a tax rate (``active=false``): Stripe keeps it for what used it.

    The idempotency key names the ``attempt``: Stripe replays a stored 500 to every retry
    with the same key, and archiving twice changes nothing.
    """
    client = get_client(test_mode)
    options: stripe.RequestOptions = {
        "stripe_account": account_id,
        "idempotency_key": f"wcb-taxrate-archive-{tax_rate_id}-{attempt}",
    }
    with _calling("archive_tax_rate", test_mode=test_mode, account_id=account_id):
        client.v1.tax_rates.update(tax_rate_id, {"active": False}, options)


def create_coupon(invoice: Invoice) -> str:
    """The coupon for an invoice's editor-set discount, on its connected account.

    ``amount_off`` (in the invoice's currency) or ``percent_off``; ``duration`` is
    ``once`` for a one-time payment, the editor's choice (``once``/``forever``) for
    recurring billing; ``max_redemptions`` 1, so the coupon serves this request only.
    Idempotency key ``wcb-invoice-<pk>-coupon-<hash of the parameters>``.
    """
    params: dict[str, Any] = {
        "duration": invoice.discount_duration if invoice.is_recurring else "once",
        "max_redemptions": 1,
        "name": str(_("Discount on %(number)s") % {"number": invoice.number})[:40],
        "metadata": {"invoice_id": str(invoice.pk), "platform": PLATFORM},
    }
    if invoice.discount_kind == "amount":
        params["amount_off"] = int(invoice.discount_amount or 0)
        params["currency"] = invoice.currency.lower()
    else:
        params["percent_off"] = float(invoice.discount_percent or 0)
    canonical = json.dumps(params, sort_keys=True, default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    account_id = invoice.account.stripe_id
    client = get_client(invoice.test_mode)
    options: stripe.RequestOptions = {
        "stripe_account": account_id,
        "idempotency_key": f"wcb-invoice-{invoice.pk}-coupon-{digest}",
    }
    with _calling("create_coupon", test_mode=invoice.test_mode, account_id=account_id):
        coupon = client.v1.coupons.create(typing.cast(Any, params), options)
    _log_ok("create_coupon", coupon, test_mode=invoice.test_mode, account_id=account_id)
    return str(coupon.id)


def retrieve_tax_settings_status(*, test_mode: bool, account_id: str) -> str:
    """The connected account's Stripe Tax settings ``status``: ``active`` or ``pending``."""
    client = get_client(test_mode)
    with _calling("retrieve_tax_settings", test_mode=test_mode, account_id=account_id):
        settings = client.v1.tax.settings.retrieve(options={"stripe_account": account_id})
    return text(_get(settings, "status"))


def apply_tax_and_discount(
    params: SessionCreateParams, invoice: Invoice, extras: CheckoutExtras | None
) -> None:
    """Add the invoice's tax and discount to its Checkout Session parameters.

    A tax rate goes on every line (``line_items[].tax_rates``); Stripe Tax turns on
    ``automatic_tax`` with the client's billing address and, for businesses, their tax
    ID collected; a discount is the coupon (``discounts``), or the client may type a
    promotion code (``allow_promotion_codes``): Stripe takes only one of the two.
    """
    extras = extras or CheckoutExtras()
    if extras.tax_rate_id:
        for item in params["line_items"]:
            item["tax_rates"] = [extras.tax_rate_id]
    if invoice.automatic_tax:
        params["automatic_tax"] = {"enabled": True}
        params["billing_address_collection"] = "required"
        params["tax_id_collection"] = {"enabled": True}
        if params.get("mode") == "payment":
            params["customer_creation"] = "always"
    if extras.coupon_id:
        params["discounts"] = [{"coupon": extras.coupon_id}]
    elif invoice.discount_kind == "promotion_code":
        params["allow_promotion_codes"] = True


def apply_customer(
    params: SessionCreateParams, invoice: Invoice, extras: CheckoutExtras | None
) -> None:
    """Who pays: the client's Stripe customer on this account when there is one
    (``customer``; Stripe then prefills the email from it and refuses ``customer_email``
    or ``customer_creation`` beside it), else the request's address (``customer_email``).
    A one-time payment of a client in the directory creates a customer
    (``customer_creation=always``), so that their next Checkout on the account reuses it.
    """
    customer_id = extras.customer_id if extras else None
    if customer_id:
        params["customer"] = customer_id
        params.pop("customer_creation", None)
        return
    params["customer_email"] = invoice.email
    if params.get("mode") == "payment" and invoice.client_id is not None:
        params["customer_creation"] = "always"


# --- validating parameters against the stripe package's TypedDicts ---------------------


def _session_create_params_type() -> type:
    from stripe.params.checkout import SessionCreateParams

    return SessionCreateParams


def validate_params(params: Any, td: type) -> None:
    """Check ``params`` (Python values, before encoding) against a stripe ``TypedDict``.

    Unknown keys, missing required keys, wrong basic types (string, integer,
    number, boolean, list, object) and values outside Stripe's documented limits
    (:data:`_VALUE_RULES`) raise :class:`InvalidRequest` naming the key in Stripe's
    bracket notation (``line_items[0][price_data][currency]``). Enumerations
    are checked as strings only, because the SDK deliberately allows values newer than
    itself. Client options (``api_key``, ``stripe_account``...) are not parameters and
    are refused: a hook must not redirect a request to another account or key.
    """
    _check_typeddict(params, td, "")


def _refuse(name: str, problem: str) -> NoReturn:
    raise InvalidRequest(
        _("The Checkout parameter %(name)s is not valid: %(problem)s")
        % {"name": name, "problem": problem},
        param=name,
    )


@functools.cache
def _hints(td: type) -> dict[str, Any]:
    """Resolved field types of a params TypedDict, without the client-side options."""
    from stripe._request_options import RequestOptions
    from stripe._stripe_context import StripeContext

    namespace = {
        **vars(sys.modules[td.__module__]),
        "Mapping": collections.abc.Mapping,
        "StripeContext": StripeContext,
    }
    hints = typing.get_type_hints(td, globalns=namespace)
    return {k: v for k, v in hints.items() if k not in RequestOptions.__annotations__}


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def _check_typeddict(value: Any, td: type, name: str) -> None:
    if not isinstance(value, dict):
        _refuse(name, _("expected an object"))
    hints = _hints(td)
    for key in value:
        if not isinstance(key, str) or key not in hints:
            _refuse(_join(name, str(key)), _("Stripe has no such parameter"))
    for key in sorted(getattr(td, "__required_keys__", ())):
        if key in hints and key not in value:
            _refuse(_join(name, key), _("it is required"))
    for key, item in value.items():
        _check_value(item, hints[key], _join(name, key))
        rule = _VALUE_RULES.get(key)
        if rule is not None:
            rule(item, _join(name, key))


def _check_fee_percent(value: Any, name: str) -> None:
    try:
        money.fee_percent(value)
    except money.MoneyError:
        _refuse(
            name,
            _("expected a percentage from 0 to under 100 with at most two decimal places"),
        )


def _check_metadata(value: Any, name: str) -> None:
    if not isinstance(value, dict):
        return  # the type check has refused it already, or it is null (unset)
    if len(value) > METADATA_MAX_KEYS:
        _refuse(
            name,
            _("Stripe allows at most %(limit)d keys, there are %(count)d")
            % {"limit": METADATA_MAX_KEYS, "count": len(value)},
        )
    for item_key, item in value.items():
        key = str(item_key)
        if len(key) > METADATA_MAX_KEY_LENGTH:
            _refuse(
                _join(name, key),
                _("Stripe allows keys of at most %(limit)d characters, this one has %(count)d")
                % {"limit": METADATA_MAX_KEY_LENGTH, "count": len(key)},
            )
        if "[" in key or "]" in key:
            _refuse(_join(name, key), _("Stripe allows no square brackets in keys"))
        if isinstance(item, str) and len(item) > METADATA_MAX_VALUE_LENGTH:
            _refuse(
                _join(name, key),
                _("Stripe allows values of at most %(limit)d characters, this one has %(count)d")
                % {"limit": METADATA_MAX_VALUE_LENGTH, "count": len(item)},
            )


#: Limits Stripe puts on a parameter's value wherever it appears, beyond its type.
_VALUE_RULES: dict[str, Callable[[Any, str], None]] = {
    "application_fee_percent": _check_fee_percent,
    "metadata": _check_metadata,
}


_TYPE_NAMES: dict[Any, Callable[[], str]] = {
    str: lambda: _("expected a string"),
    int: lambda: _("expected an integer"),
    float: lambda: _("expected a number"),
    bool: lambda: _("expected true or false"),
}


def _accepts(value: Any, tp: Any, name: str) -> bool:
    """Whether ``value`` fits ``tp``; raises for a mismatch deeper inside an object."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return True
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        # Objects first, so an unknown key inside one is reported by its full name.
        structured = [o for o in options if _is_structured(o)]
        if isinstance(value, (dict, list)) and len(structured) == 1:
            return _accepts(value, structured[0], name)
        return any(_accepts_quietly(value, option, name) for option in options)
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if _is_typeddict(tp):
        _check_typeddict(value, tp, name)
        return True
    if origin in (list, collections.abc.Sequence) or tp is list:
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(tp)
        for index, item in enumerate(value):
            _check_value(item, args[0] if args else Any, f"{name}[{index}]")
        return True
    if origin in (dict, collections.abc.Mapping) or tp is dict or _is_untyped_object(tp):
        if not isinstance(value, dict):
            return False
        args = typing.get_args(tp)
        for key, item in value.items():
            _check_value(item, args[-1] if args else Any, _join(name, str(key)))
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp in (float, decimal.Decimal):
        return isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is type(None):
        return value is None
    return True  # a type this walker does not model: let Stripe judge it


def _accepts_quietly(value: Any, tp: Any, name: str) -> bool:
    try:
        return _accepts(value, tp, name)
    except InvalidRequest:
        return False


def _is_structured(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return _is_typeddict(tp) or origin in (list, dict, collections.abc.Mapping)


def _is_untyped_object(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return isinstance(origin, type) and origin.__name__ == "UntypedStripeObject"


def _check_value(value: Any, tp: Any, name: str) -> None:
    if _accepts(value, tp, name):
        return
    base = tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        plain = [o for o in typing.get_args(tp) if typing.get_origin(o) is not typing.Literal]
        base = plain[0] if len(plain) == 1 else None
    if _is_structured(base) if base is not None else False:
        origin = typing.get_origin(base) or base
        problem = _("expected a list") if origin is list else _("expected an object")
    else:
        problem = _TYPE_NAMES.get(base, lambda: _("wrong type"))()
    _refuse(name, problem)


# --- disputes ------------------------------------------------------------------------------------


def list_disputes(
    *,
    test_mode: bool,
    account_id: str,
    payment_intent: str = "",
    created_gte: int | None = None,
    starting_after: str = "",
    limit: int = 10,
) -> list[dict[str, Any]]:
    """A connected account's disputes (of one payment intent, when given; created since
    ``created_gte``), newest first, one page after ``starting_after``, as plain dicts for
    :func:`.billing.disputes.from_stripe`."""
    client = get_client(test_mode)
    params: dict[str, Any] = {"limit": limit}
    if payment_intent:
        params["payment_intent"] = payment_intent
    if created_gte is not None:
        params["created"] = {"gte": created_gte}
    if starting_after:
        params["starting_after"] = starting_after
    with _calling("list_disputes", test_mode=test_mode, account_id=account_id):
        page = client.v1.disputes.list(params, {"stripe_account": account_id})  # type: ignore[arg-type]
    return [_plain(dispute) for dispute in page.data]


# --- subscriptions -------------------------------------------------------------------------------


def _subscription_key(subscription_id: str, action: str, version: str) -> str:
    """``wcb-sub-<id>-<action>-<version>``: ``version`` is the recorded state the editor
    acted on, so a double click or a retry after a timeout asks Stripe once, and the
    same action asked again after a change (schedule, undo, schedule) is a new request."""
    return f"wcb-sub-{subscription_id}-{action}-{version}"[:255]


def cancel_subscription(
    *, test_mode: bool, account_id: str, subscription_id: str, version: str = ""
) -> dict[str, Any]:
    """Cancel a connected account's subscription now (``DELETE /v1/subscriptions/<id>``);
    the subscription as Stripe has it then."""
    client = get_client(test_mode)
    options: stripe.RequestOptions = {
        "stripe_account": account_id,
        "idempotency_key": _subscription_key(subscription_id, "cancel", version),
    }
    with _calling("cancel_subscription", test_mode=test_mode, account_id=account_id):
        subscription = client.v1.subscriptions.cancel(subscription_id, options=options)
    _log_ok("cancel_subscription", subscription, test_mode=test_mode, account_id=account_id)
    return _plain(subscription)


def set_cancel_at_period_end(
    *, test_mode: bool, account_id: str, subscription_id: str, cancel: bool, version: str = ""
) -> dict[str, Any]:
    """Schedule (``cancel=True``) or undo the end of a subscription at its current
    period's end (``POST /v1/subscriptions/<id>`` with ``cancel_at_period_end``)."""
    client = get_client(test_mode)
    action = "cancel-at-period-end" if cancel else "keep"
    options: stripe.RequestOptions = {
        "stripe_account": account_id,
        "idempotency_key": _subscription_key(subscription_id, action, version),
    }
    with _calling("update_subscription", test_mode=test_mode, account_id=account_id):
        subscription = client.v1.subscriptions.update(
            subscription_id, {"cancel_at_period_end": cancel}, options=options
        )
    _log_ok("update_subscription", subscription, test_mode=test_mode, account_id=account_id)
    return _plain(subscription)


# --- refunds ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundState:
    """A Stripe refund as the app reads it (an API answer or an event's object)."""

    id: str
    amount: int
    currency: str
    status: str
    payment_intent: str = ""
    charge: str = ""
    reason: str = ""
    failure_reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


def refund_from_stripe(obj: Any) -> RefundState:
    """A :class:`RefundState` from a ``refund`` as Stripe sends it; a field of the wrong
    type reads as empty."""
    refund = _plain(obj) if not isinstance(obj, dict) else obj
    metadata = refund.get("metadata")
    return RefundState(
        id=text(refund.get("id")),
        amount=_amount(refund.get("amount")) or 0,
        currency=text(refund.get("currency")).upper(),
        status=text(refund.get("status")),
        payment_intent=expandable_id(refund.get("payment_intent")),
        charge=expandable_id(refund.get("charge")),
        reason=text(refund.get("reason")),
        failure_reason=text(refund.get("failure_reason")),
        metadata={
            str(k): v
            for k, v in (metadata.items() if isinstance(metadata, dict) else ())
            if isinstance(v, str)
        },
    )


def refund_idempotency_key(refund_pk: int, attempt: int = 0) -> str:
    """``wcb-refund-<pk>-<attempt>``: one per refund row (one per editor's confirmation),
    so a double click or a retry after a timeout replays the same request; a new
    ``attempt`` only after an error that spent the key."""
    return f"wcb-refund-{refund_pk}-{attempt}"


def create_refund(
    *,
    test_mode: bool,
    account_id: str,
    refund_pk: int,
    amount: int,
    payment_intent: str = "",
    charge: str = "",
    reason: str = "",
    refund_application_fee: bool = False,
    invoice_id: int | None = None,
    attempt: int = 0,
) -> RefundState:
    """Refund ``amount`` of a payment on its connected account (a direct charge's refund).

    ``refund_application_fee`` returns the platform's fee in proportion to the amount
    refunded (Stripe's rule for direct charges). The refund's metadata names the app's
    refund row, which its events are then matched by.
    """
    params: dict[str, Any] = {
        "amount": amount,
        "metadata": {"refund_id": str(refund_pk), "invoice_id": str(invoice_id or "")},
    }
    if payment_intent:
        params["payment_intent"] = payment_intent
    elif charge:
        params["charge"] = charge
    else:
        raise InvalidRequest(_("The payment has no Stripe payment to refund."))
    if reason:
        params["reason"] = reason
    if refund_application_fee:
        params["refund_application_fee"] = True
    client = get_client(test_mode)
    options: stripe.RequestOptions = {
        "stripe_account": account_id,
        "idempotency_key": refund_idempotency_key(refund_pk, attempt),
    }
    with _calling("create_refund", test_mode=test_mode, account_id=account_id):
        refund = client.v1.refunds.create(params, options)  # type: ignore[arg-type]
    _log_ok("create_refund", refund, test_mode=test_mode, account_id=account_id)
    return refund_from_stripe(refund)


def list_refunds(
    *, test_mode: bool, account_id: str, payment_intent: str = "", charge: str = ""
) -> list[RefundState]:
    """The refunds of one payment (its payment intent or charge), newest first."""
    params: dict[str, Any] = {"limit": 100}
    if payment_intent:
        params["payment_intent"] = payment_intent
    elif charge:
        params["charge"] = charge
    client = get_client(test_mode)
    with _calling("list_refunds", test_mode=test_mode, account_id=account_id):
        page = client.v1.refunds.list(params, {"stripe_account": account_id})  # type: ignore[arg-type]
    return [refund_from_stripe(item) for item in _get(page, "data", [])]


# --- the customer portal ---------------------------------------------------------------


def portal_configuration_params(
    *, privacy_policy_url: str, terms_of_service_url: str, default_return_url: str
) -> dict[str, Any]:
    """The customer portal the app offers a client on a connected account: update the
    card, see Stripe's invoice history, cancel a subscription (at the period's end, or
    immediately: ``PORTAL_CANCEL_MODE``); nothing else (no plan or customer changes,
    which would drift from the invoice the editor sent)."""
    mode = billing_settings.PORTAL_CANCEL_MODE
    params: dict[str, Any] = {
        "features": {
            "payment_method_update": {"enabled": True},
            "invoice_history": {"enabled": True},
            "subscription_cancel": {"enabled": True, "mode": mode, "proration_behavior": "none"},
            "customer_update": {"enabled": False},
            "subscription_update": {"enabled": False},
        },
        "default_return_url": default_return_url,
        "metadata": {"platform": PLATFORM},
    }
    profile = {
        name: url
        for name, url in (
            ("privacy_policy_url", privacy_policy_url),
            ("terms_of_service_url", terms_of_service_url),
        )
        if url
    }
    if profile:
        params["business_profile"] = profile
    return params


def create_portal_configuration(
    *, test_mode: bool, account_id: str, params: dict[str, Any], replaces: str = ""
) -> str:
    """Create the customer portal configuration of a connected account; its id.

    Idempotency key ``wcb-portal-config-<account>-<hash of the parameters>-<replaces>``:
    two clients opening the portal at once make one configuration, and replacing one
    that Stripe no longer has (``replaces`` is its id) is a new request.
    """
    from stripe.params.billing_portal import ConfigurationCreateParams

    validate_params(params, ConfigurationCreateParams)
    canonical = json.dumps(params, sort_keys=True, default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    key = f"wcb-portal-config-{account_id}-{digest}-{replaces or 'first'}"[:255]
    client = get_client(test_mode)
    options: stripe.RequestOptions = {"stripe_account": account_id, "idempotency_key": key}
    with _calling("create_portal_configuration", test_mode=test_mode, account_id=account_id):
        configuration = client.v1.billing_portal.configurations.create(
            typing.cast(Any, params), options
        )
    _log_ok(
        "create_portal_configuration", configuration, test_mode=test_mode, account_id=account_id
    )
    return str(configuration.id)


def create_portal_session(
    *, test_mode: bool, account_id: str, customer_id: str, configuration_id: str, return_url: str
) -> str:
    """A customer portal session on a connected account; its URL (short-lived, for one
    visit: never stored or logged). Each click is a new session, so the idempotency key
    is random (the client's own network retries reuse it)."""
    params: dict[str, Any] = {
        "customer": customer_id,
        "configuration": configuration_id,
        "return_url": return_url,
    }
    client = get_client(test_mode)
    options: stripe.RequestOptions = {
        "stripe_account": account_id,
        "idempotency_key": f"wcb-portal-session-{uuid.uuid4().hex}",
    }
    with _calling("create_portal_session", test_mode=test_mode, account_id=account_id):
        session = client.v1.billing_portal.sessions.create(typing.cast(Any, params), options)
    _log_ok("create_portal_session", session, test_mode=test_mode, account_id=account_id)
    return str(session.url)
