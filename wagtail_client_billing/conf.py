"""The app's settings: one ``WAGTAIL_CLIENT_BILLING`` dict in Django settings.

Every key has a documented default in :data:`DEFAULTS`. Secrets fall back to an
environment variable of the same name, so a project can keep them out of
``settings.py`` entirely::

    WAGTAIL_CLIENT_BILLING = {
        "STRIPE_TEST_SECRET_KEY": "sk_test_...",        # or env STRIPE_TEST_SECRET_KEY
        "STRIPE_TEST_WEBHOOK_SECRETS": ["whsec_..."],   # or env STRIPE_TEST_WEBHOOK_SECRETS=whsec_a,whsec_b
    }

Read them through :data:`billing_settings`, a lazy object that is rebuilt whenever
Django's ``setting_changed`` fires, so ``override_settings`` works in tests::

    from wagtail_client_billing.conf import billing_settings
    billing_settings.PAYMENT_LINK_LIFETIME
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

SETTINGS_NAME = "WAGTAIL_CLIENT_BILLING"

#: Every key, with its default. ``docs/settings.md`` describes each one.
DEFAULTS: dict[str, Any] = {
    # Stripe keys of the platform account. Never stored in the database.
    "STRIPE_TEST_SECRET_KEY": None,
    "STRIPE_LIVE_SECRET_KEY": None,
    # Webhook signing secrets; a list each, so a secret can be rotated.
    "STRIPE_TEST_WEBHOOK_SECRETS": [],
    "STRIPE_LIVE_WEBHOOK_SECRETS": [],
    # None talks to Stripe; the emulator's address (http://127.0.0.1:12111) in the demo and tests.
    "STRIPE_API_BASE": None,
    # Seconds before a Stripe request gives up, and how often the client retries on network errors.
    "STRIPE_TIMEOUT": 20,
    "STRIPE_MAX_NETWORK_RETRIES": 2,
    # Tolerance of a webhook signature's timestamp, in seconds (Stripe's own default).
    "WEBHOOK_TOLERANCE": 300,
    # Webhook bodies larger than this are refused before they are parsed.
    "WEBHOOK_MAX_BODY_BYTES": 512 * 1024,
    # How long an emailed payment link can be paid; a site can override it in its settings.
    "PAYMENT_LINK_LIFETIME": timedelta(hours=24),
    # The platform's fee on each payment, in percent (0 = none).
    "APPLICATION_FEE_PERCENT": 0,
    # Currencies an editor may bill in (ISO 4217, upper case), the first one the default.
    "CURRENCIES": [
        "USD",
        "EUR",
        "GBP",
        "CAD",
        "AUD",
        "NZD",
        "CHF",
        "SEK",
        "NOK",
        "DKK",
        "PLN",
        "CZK",
        "JPY",
        "SGD",
        "HKD",
        "MXN",
        "BRL",
        "INR",
    ],
    # Fernet key for the SMTP passwords; None derives one from SECRET_KEY.
    "SMTP_ENCRYPTION_KEY": None,
    # Older keys still accepted when reading, while `client_billing_rotate_smtp_key` runs.
    "SMTP_PREVIOUS_ENCRYPTION_KEYS": [],
    # Networks (CIDR) a site's custom SMTP server may be on although they are not public:
    # loopback, link-local, private and reserved addresses are refused unless listed here.
    "SMTP_ALLOWED_NETWORKS": [],
    # Ports a site's custom SMTP server may use; ["*"] allows any port.
    "SMTP_ALLOWED_PORTS": [25, 465, 587, 2525],
    # Attempts at sending an invoice email before it is marked failed, and the first retry delay.
    "EMAIL_MAX_ATTEMPTS": 5,
    "EMAIL_RETRY_BACKOFF": timedelta(minutes=1),
    # Attempts at applying a stored webhook event before it stays failed, and the first
    # retry delay (doubled for each further attempt).
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOK_RETRY_BACKOFF": timedelta(minutes=1),
    # Send one reminder this long before a pending invoice expires; None = no reminders.
    "REMINDER_BEFORE": None,
    # An open Checkout Session is reused by the pay link while it has more than this left.
    "CHECKOUT_REUSE_MARGIN": timedelta(minutes=5),
    # Rows per UPDATE in the expiry sweep.
    "EXPIRE_BATCH_SIZE": 5000,
    # Stripe API requests per second the background tasks allow themselves, per mode.
    "STRIPE_TASK_RATE_LIMIT": {"test": 20, "live": 80},
}

#: Keys read from the environment when the settings dict does not set them.
ENV_KEYS = {
    "STRIPE_TEST_SECRET_KEY": str,
    "STRIPE_LIVE_SECRET_KEY": str,
    "STRIPE_TEST_WEBHOOK_SECRETS": list,
    "STRIPE_LIVE_WEBHOOK_SECRETS": list,
    "STRIPE_API_BASE": str,
    "SMTP_ENCRYPTION_KEY": str,
    "SMTP_PREVIOUS_ENCRYPTION_KEYS": list,
}


def _from_env(name: str, kind: type) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    if kind is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw.strip()


class BillingSettings:
    """Attribute access to the merged settings; unknown names raise ``AttributeError``."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        return getattr(settings, SETTINGS_NAME, None) or {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"{SETTINGS_NAME} has no setting {name!r}")
        if name not in self._cache:
            self._cache[name] = self._resolve(name)
        return self._cache[name]

    def _resolve(self, name: str) -> Any:
        user = self.user_settings
        if name in user and user[name] not in (None, ""):
            value = user[name]
        elif name in ENV_KEYS and (env := _from_env(name, ENV_KEYS[name])) is not None:
            value = env
        else:
            value = DEFAULTS[name]
        if name == "CURRENCIES":
            value = [code.upper() for code in value]
        if name == "SMTP_ENCRYPTION_KEY" and not value:
            value = derive_key(settings.SECRET_KEY)
        if isinstance(value, list):
            value = list(value)
        return value

    def secret_key(self, test_mode: bool) -> str | None:
        """The platform's Stripe secret key for a mode."""
        return self.STRIPE_TEST_SECRET_KEY if test_mode else self.STRIPE_LIVE_SECRET_KEY

    def webhook_secrets(self) -> list[tuple[bool, str]]:
        """Every configured webhook secret as ``(test_mode, secret)``, test first."""
        return [(True, s) for s in self.STRIPE_TEST_WEBHOOK_SECRETS] + [
            (False, s) for s in self.STRIPE_LIVE_WEBHOOK_SECRETS
        ]

    def reload(self) -> None:
        self._cache.clear()


def derive_key(secret: str) -> str:
    """A Fernet key derived from Django's ``SECRET_KEY`` (used when none is configured)."""
    digest = hashlib.sha256(("wagtail_client_billing.smtp:" + secret).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


billing_settings = BillingSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTINGS_NAME, "SECRET_KEY"):
        billing_settings.reload()


setting_changed.connect(_reload)
