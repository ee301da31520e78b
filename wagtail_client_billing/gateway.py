"""The only code that calls Stripe. (Interface fixed; bodies being built: issue 3.)

Views, tasks and webhooks call these functions; they return small dataclasses, never
Stripe objects, and raise only :class:`GatewayError` subclasses whose ``str()`` an
editor can read. Nothing here touches an invoice's status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Invoice


class GatewayError(Exception):
    """A Stripe call failed. ``str()`` is a sentence for an editor; ``retryable`` says
    whether trying again later may work (network, rate limit, Stripe 5xx)."""

    retryable = False


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
    """No secret key is configured for the mode asked for."""


@dataclass(frozen=True)
class AccountState:
    id: str
    country: str
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    requirements_due: list[str] = field(default_factory=list)
    disabled_reason: str = ""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    status: str  # open, complete, expired
    payment_status: str  # unpaid, paid, no_payment_required
    expires_at: datetime
    payment_intent: str = ""
    subscription: str = ""
    customer: str = ""
    client_reference_id: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


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
    raise NotImplementedError


def create_account_link(
    *, test_mode: bool, account_id: str, refresh_url: str, return_url: str
) -> str:
    """An Account Link URL for onboarding (valid a few minutes, single use)."""
    raise NotImplementedError


def retrieve_account(*, test_mode: bool, account_id: str) -> AccountState:
    raise NotImplementedError


def delete_account(*, test_mode: bool, account_id: str) -> None:
    """Delete a TEST connected account on Stripe; refuses live accounts."""
    raise NotImplementedError


def create_checkout_session(
    invoice: Invoice, *, success_url: str, cancel_url: str, expires_at: datetime
) -> CheckoutSession:
    """A Checkout Session on the invoice's connected account (a direct charge).

    Idempotency key ``invoice-<pk>-checkout-<invoice.checkout_attempt>``: the caller
    bumps ``checkout_attempt`` before asking for a new session.
    """
    raise NotImplementedError


def retrieve_checkout_session(
    *, test_mode: bool, account_id: str, session_id: str
) -> CheckoutSession:
    raise NotImplementedError


def expire_checkout_session(
    *, test_mode: bool, account_id: str, session_id: str
) -> CheckoutSession:
    raise NotImplementedError
