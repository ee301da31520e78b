"""The app's settings: one ``WAGTAIL_CLIENT_BILLING`` dict in Django settings.

Every key has a documented default in :data:`DEFAULTS`. Secrets fall back to an
environment variable of the same name, so a project can keep them out of
``settings.py`` entirely::

    WAGTAIL_CLIENT_BILLING = {
        "STRIPE_TEST_SECRET_KEY": "sk_test_...",        # or env STRIPE_TEST_SECRET_KEY
        "STRIPE_WEBHOOK_ENDPOINTS": [                   # or env STRIPE_WEBHOOK_ENDPOINTS='[...]' (JSON)
            {"name": "test Connect", "live": False, "secrets": ["whsec_..."]},
        ],
    }

Read them through :data:`billing_settings`, a lazy object that is rebuilt whenever
Django's ``setting_changed`` fires (:func:`reload_on_setting_changed`), so
``override_settings`` works in tests::

    from wagtail_client_billing.conf import billing_settings
    billing_settings.PAYMENT_LINK_LIFETIME
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings

SETTINGS_NAME = "WAGTAIL_CLIENT_BILLING"

#: Every key, with its default. ``docs/settings.md`` describes each one.
DEFAULTS: dict[str, Any] = {
    # Stripe keys of the platform account. Never stored in the database.
    "STRIPE_TEST_SECRET_KEY": None,
    "STRIPE_LIVE_SECRET_KEY": None,
    # The webhook endpoints registered in Stripe that post to this app, each
    # {"name": str, "live": bool, "connect": bool (default True), "secrets": ["whsec_..."]}
    # (a list of secrets, so one can be rolled). See WebhookEndpoint.
    "STRIPE_WEBHOOK_ENDPOINTS": [],
    # Shorthand: the secrets of one test and one live Connect endpoint.
    "STRIPE_TEST_WEBHOOK_SECRETS": [],
    "STRIPE_LIVE_WEBHOOK_SECRETS": [],
    # None talks to Stripe; the emulator's address (http://127.0.0.1:12111) in the demo and tests.
    "STRIPE_API_BASE": None,
    # Seconds before a Stripe request gives up, and how often the client retries on network errors.
    "STRIPE_TIMEOUT": 20,
    "STRIPE_MAX_NETWORK_RETRIES": 2,
    # How far a webhook signature's timestamp may be from now, in seconds, in the past
    # (Stripe's own default) or, for a clock running behind Stripe's, in the future.
    "WEBHOOK_TOLERANCE": 300,
    # Webhook bodies larger than this are refused before they are parsed.
    "WEBHOOK_MAX_BODY_BYTES": 512 * 1024,
    # How long an emailed payment link can be paid; a site can override it in its settings.
    "PAYMENT_LINK_LIFETIME": timedelta(hours=24),
    # The longest lifetime an editor may give one request's link; a site can change it.
    "PAYMENT_LINK_MAX_LIFETIME": timedelta(days=30),
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
    # New webhook events a web process queues as one task, and the most seconds the first
    # of them waits for the others (1 or 0: one task per event, queued at once).
    "WEBHOOK_QUEUE_BATCH": 100,
    "WEBHOOK_QUEUE_DELAY": 0.1,
    # Stored webhook payloads (which hold clients' personal data) are emptied this long
    # after they were received; the event's record and outcome stay. None keeps them.
    "WEBHOOK_PAYLOAD_RETENTION": timedelta(days=90),
    # Send one reminder this long before a pending invoice is due (or, without a due date,
    # expires); None = no reminders. The default of every site's own setting.
    "REMINDER_BEFORE": None,
    # An open Checkout Session is reused by the pay link while it has more than this left.
    "CHECKOUT_REUSE_MARGIN": timedelta(minutes=5),
    # Rows per UPDATE in the expiry sweep.
    "EXPIRE_BATCH_SIZE": 5000,
    # Stripe API requests per second the background tasks allow themselves, per mode.
    "STRIPE_TASK_RATE_LIMIT": {"test": 20, "live": 80},
    # Reconciliation looks for refunds and disputes (whose webhooks were lost) of payments
    # made within this many days (Stripe's dispute window is about 120 days); 0: neither.
    "RECONCILE_PAYMENTS_WINDOW_DAYS": 120,
    # Requests a minute one client address may make to the public pages (pay link, return,
    # cancel, JSON status) before it gets 429; 0 turns the limit off.
    "PUBLIC_RATE_LIMIT": 60,
    # The CACHES alias that counts them: shared by every worker only if the cache is.
    "PUBLIC_RATE_LIMIT_CACHE": "default",
    # Proxies in front of Django that each append to X-Forwarded-For (0: use REMOTE_ADDR).
    "TRUSTED_PROXY_COUNT": 0,
    # Font files (TTF or OTF paths) the PDF invoices and receipts embed, in order: the
    # first sets the text, each next one draws the characters the ones before it lack
    # (a CJK font after a Latin one). Empty: the PDF's built-in Helvetica (Latin only).
    "PDF_FONTS": [],
    # The PDF page size: "A4" or "Letter".
    "PDF_PAGE_SIZE": "A4",
    # How long a client portal link (in every client email, or asked for on the portal's
    # "send me a new link" form) opens the portal; a timedelta.
    "PORTAL_LINK_MAX_AGE": timedelta(days=14),
    # "Send me a new link" requests an hour, per client address and per email address
    # (0 turns that limit off), counted in PUBLIC_RATE_LIMIT_CACHE.
    "PORTAL_LINK_REQUESTS_PER_ADDRESS": 10,
    "PORTAL_LINK_REQUESTS_PER_EMAIL": 3,
    # How a client's cancellation in Stripe's customer portal takes effect:
    # "at_period_end" (the plan runs to the end of the paid period) or "immediately".
    "PORTAL_CANCEL_MODE": "at_period_end",
}

#: Keys where ``None`` is a choice of the site developer (off), not "use the default".
NONE_MEANS_OFF = frozenset({"WEBHOOK_PAYLOAD_RETENTION"})

#: Keys read from the environment when the settings dict does not set them.
ENV_KEYS = {
    "STRIPE_TEST_SECRET_KEY": str,
    "STRIPE_LIVE_SECRET_KEY": str,
    "STRIPE_TEST_WEBHOOK_SECRETS": list,
    "STRIPE_LIVE_WEBHOOK_SECRETS": list,
    "STRIPE_WEBHOOK_ENDPOINTS": json,
    "STRIPE_API_BASE": str,
    "SMTP_ENCRYPTION_KEY": str,
    "SMTP_PREVIOUS_ENCRYPTION_KEYS": list,
}


#: The settings that hold webhook secrets.
WEBHOOK_SETTINGS = (
    "STRIPE_WEBHOOK_ENDPOINTS",
    "STRIPE_TEST_WEBHOOK_SECRETS",
    "STRIPE_LIVE_WEBHOOK_SECRETS",
)


def _from_env(name: str, kind: Any) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    if kind is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    if kind is json:
        try:
            return json.loads(raw)
        except ValueError:
            return raw  # the system check names it; nothing here may raise
    return raw.strip()


@dataclass(frozen=True)
class WebhookEndpoint:
    """One webhook endpoint registered in Stripe that posts to this app.

    Attributes:
        name: the label the system checks name the endpoint by.
        live: the endpoint was made in live mode. Only a live endpoint's secrets
            authenticate a live event, so a leaked test secret cannot move live money.
        connect: it listens to events on connected accounts. Stripe sends a live
            Connect endpoint the test events of connected accounts too, so its secrets
            also authenticate a test event that names an account.
        secrets: its signing secrets (``whsec_...``); more than one while one is rolled.
    """

    name: str
    live: bool
    connect: bool
    secrets: tuple[str, ...]

    def may_sign(self, livemode: bool, account: str) -> bool:
        """Whether Stripe sends this endpoint an event of that mode and account."""
        if livemode:
            return self.live
        return not self.live or (self.connect and bool(account))


#: ``(kind, message)``: kind is ``not_a_list``, ``malformed``, ``bad_secret``, ``no_secret``
#: or ``shared_secret``.
Problem = tuple[str, str]


#: Keys an entry of ``STRIPE_WEBHOOK_ENDPOINTS`` may have.
ENDPOINT_KEYS = frozenset({"name", "live", "connect", "secrets"})


def _secrets(value: Any, where: str, problems: list[Problem]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        problems.append(("not_a_list", f"{where} must be a list, not {type(value).__name__}."))
        return ()
    good = []
    for secret in value:
        if isinstance(secret, str) and secret.startswith("whsec_") and secret == secret.strip():
            good.append(secret)
        else:
            problems.append(
                ("bad_secret", f"{where} holds {_describe(secret)}, not a 'whsec_...' secret.")
            )
    return tuple(good)


def _describe(value: Any) -> str:
    """Say what a bad secret is without writing the secret itself into a message."""
    if not isinstance(value, str):
        return (
            repr(value) if value is None or isinstance(value, bool | int) else type(value).__name__
        )
    if not value.strip():
        return "an empty string"
    return "a string with spaces around it" if value.startswith("whsec_") else "a string"


def parse_webhook_endpoints(
    endpoints: Any, test_secrets: Any, live_secrets: Any
) -> tuple[list[WebhookEndpoint], list[Problem]]:
    """The usable endpoints of the settings, and what is wrong with the rest.

    A malformed entry or secret is left out (the system check reports it), so a webhook
    is never authenticated by something the developer did not mean as a secret.
    """
    found: list[WebhookEndpoint] = []
    problems: list[Problem] = []
    if not isinstance(endpoints, list | tuple):
        kind = type(endpoints).__name__
        problems.append(("malformed", f"STRIPE_WEBHOOK_ENDPOINTS must be a list, not {kind}."))
        endpoints = []
    for index, entry in enumerate(endpoints):
        where = f"STRIPE_WEBHOOK_ENDPOINTS[{index}]"
        if not isinstance(entry, dict):
            problems.append(("malformed", f"{where} must be a dict, not {type(entry).__name__}."))
            continue
        if entry.get("name"):
            where += f" ({entry['name']})"
        unknown = sorted(str(key) for key in set(entry) - ENDPOINT_KEYS)
        if unknown:
            problems.append(("malformed", f"{where} has unknown keys: {', '.join(unknown)}."))
        live, connect = entry.get("live"), entry.get("connect", True)
        if not isinstance(live, bool) or not isinstance(connect, bool):
            problems.append(
                ("malformed", f"{where} needs 'live' (and 'connect', if given) as True or False.")
            )
            continue
        if "secrets" not in entry:
            problems.append(("malformed", f"{where} needs 'secrets', a list of its secrets."))
        name = entry.get("name") or f"{'live' if live else 'test'} endpoint {index}"
        secrets = _secrets(entry["secrets"], where, problems) if "secrets" in entry else ()
        if entry.get("secrets") in ([], ()):
            problems.append(("no_secret", f"{where} has no secrets: it authenticates nothing."))
        found.append(WebhookEndpoint(str(name), live, connect, secrets))
    for live, setting, value in (
        (False, "STRIPE_TEST_WEBHOOK_SECRETS", test_secrets),
        (True, "STRIPE_LIVE_WEBHOOK_SECRETS", live_secrets),
    ):
        if value:  # the shorthand: the app's endpoints have always been Connect endpoints
            secrets = _secrets(value, setting, problems)
            # The same variable read into STRIPE_WEBHOOK_ENDPOINTS too adds nothing.
            if not any(
                e.live == live and e.connect and set(secrets) <= set(e.secrets) for e in found
            ):
                found.append(WebhookEndpoint(setting, live, True, secrets))
    live_set = {s for e in found if e.live for s in e.secrets}
    if any(s in live_set for e in found if not e.live for s in e.secrets):
        problems.append(
            (
                "shared_secret",
                "A secret is configured for a live and for a test endpoint; a test "
                "endpoint's secret must never authenticate live events.",
            )
        )
    return found, problems


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
        if name in user and (user[name] not in (None, "") or name in NONE_MEANS_OFF):
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

    def queue_batch_limits(self) -> tuple[int, float]:
        """``(WEBHOOK_QUEUE_BATCH, WEBHOOK_QUEUE_DELAY)``: the limits of the batches a
        process queues (webhook events, receipts); read at each call."""
        return int(self.WEBHOOK_QUEUE_BATCH), float(self.WEBHOOK_QUEUE_DELAY)

    def webhook_endpoints(self) -> list[WebhookEndpoint]:
        """The configured webhook endpoints: ``STRIPE_WEBHOOK_ENDPOINTS``, then the
        shorthand ``STRIPE_TEST_WEBHOOK_SECRETS`` / ``STRIPE_LIVE_WEBHOOK_SECRETS``."""
        if "webhook_endpoints" not in self._cache:
            self._cache["webhook_endpoints"] = self.webhook_config()[0]
        return list(self._cache["webhook_endpoints"])

    def webhook_config(self) -> tuple[list[WebhookEndpoint], list[Problem]]:
        """The endpoints and the problems of their settings (for the system check)."""
        return parse_webhook_endpoints(
            self.STRIPE_WEBHOOK_ENDPOINTS,
            self.STRIPE_TEST_WEBHOOK_SECRETS,
            self.STRIPE_LIVE_WEBHOOK_SECRETS,
        )

    def secret_values(self) -> list[str]:
        """Every secret the project's settings hold, longest first: what a text the app
        keeps or shows (a failed event's error and traceback) must never contain.

        The Stripe keys and webhook secrets (each entry as written, malformed ones too),
        the SMTP encryption keys, and Django's ``SECRET_KEY`` (and its fallbacks),
        ``EMAIL_HOST_PASSWORD`` and the databases' passwords.
        """
        found: list[Any] = [
            self.STRIPE_TEST_SECRET_KEY,
            self.STRIPE_LIVE_SECRET_KEY,
            *_as_list(self.STRIPE_TEST_WEBHOOK_SECRETS),
            *_as_list(self.STRIPE_LIVE_WEBHOOK_SECRETS),
            self.SMTP_ENCRYPTION_KEY,
            *_as_list(self.SMTP_PREVIOUS_ENCRYPTION_KEYS),
            getattr(settings, "SECRET_KEY", None),
            *_as_list(getattr(settings, "SECRET_KEY_FALLBACKS", None)),
            getattr(settings, "EMAIL_HOST_PASSWORD", None),
            *(
                db.get("PASSWORD")
                for db in getattr(settings, "DATABASES", {}).values()
                if isinstance(db, dict)
            ),
        ]
        for entry in _as_list(self.STRIPE_WEBHOOK_ENDPOINTS):
            if isinstance(entry, dict):
                found.extend(_as_list(entry.get("secrets")))
        secrets = {value for value in found if isinstance(value, str) and value}
        return sorted(secrets, key=len, reverse=True)

    def blank_webhook_settings(self) -> list[str]:
        """The webhook settings the dict sets to ``None`` or an empty string while no
        environment variable of that name fills them: what ``os.environ.get()`` of an
        unset variable leaves. The app then reads them as not set at all."""
        user = self.user_settings
        return [
            name
            for name in WEBHOOK_SETTINGS
            if name in user and user[name] in (None, "") and _from_env(name, ENV_KEYS[name]) is None
        ]

    def reload(self) -> None:
        self._cache.clear()


def _as_list(value: Any) -> list[Any]:
    """A setting meant as a list, as one: a lone string is a list of itself."""
    if isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, list | tuple | set | frozenset) else []


def derive_key(secret: str) -> str:
    """A Fernet key derived from Django's ``SECRET_KEY`` (used when none is configured)."""
    digest = hashlib.sha256(("wagtail_client_billing.smtp:" + secret).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


billing_settings = BillingSettings()


#: The SQLite options that let the web server, the qcluster and webhooks write side by
#: side (Django 5.1+), as the example project sets them: writers queue for the lock
#: instead of failing with "database is locked", and write-ahead logging lets readers
#: work beside the writer. The W010 check suggests them; ``client_billing_dev`` adds the
#: ones a database lacks.
SQLITE_OPTIONS = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL;",
}


def shared_sqlite_databases(databases: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(alias, OPTIONS)`` of each SQLite database in ``databases`` (Django's
    ``DATABASES``) that several processes open: a file, not an in-memory database."""
    found = []
    for alias, database in databases.items():
        engine = str(database.get("ENGINE", ""))
        name = str(database.get("NAME", ""))
        if not engine.endswith((".sqlite3", ".spatialite")):
            continue
        if name == ":memory:" or "mode=memory" in name:
            continue  # one process only: nobody to wait for
        found.append((alias, dict(database.get("OPTIONS") or {})))
    return found


def reload_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """Receiver of Django's ``setting_changed`` (connected in ``AppConfig.ready()``)."""
    if setting in (SETTINGS_NAME, "SECRET_KEY"):
        billing_settings.reload()
