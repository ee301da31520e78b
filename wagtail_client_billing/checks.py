"""Django system checks for a misconfigured install (``manage.py check``).

Ids are stable: ``wagtail_client_billing.E001`` ... errors stop ``runserver`` and
``migrate``; ``W...`` warnings do not. ``docs/troubleshooting.md`` lists each one.
``AppConfig.ready()`` registers the checks of :data:`CHECKS`; importing this module
registers nothing.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, Warning

from . import stripe_api
from .conf import DEFAULTS, SETTINGS_NAME, billing_settings
from .emails import parse_allowed_networks, parse_allowed_ports
from .money import MoneyError, fee_percent


def check_installed_apps(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = []
    for app, check_id in (("django_q", "E001"), ("wagtail.contrib.settings", "E002")):
        if not any(
            entry == app or entry.startswith(f"{app}.apps.") for entry in settings.INSTALLED_APPS
        ):
            errors.append(
                Error(
                    f"'{app}' is not in INSTALLED_APPS.",
                    hint=f"wagtail_client_billing needs it: add '{app}' to INSTALLED_APPS.",
                    id=f"wagtail_client_billing.{check_id}",
                )
            )
    return errors


#: What is wrong with the webhook settings -> (check id, hint).
WEBHOOK_PROBLEMS = {
    "not_a_list": ("E006", 'Use ["whsec_..."]; several secrets allow rotation.'),
    "malformed": (
        "E012",
        'Each endpoint is a dict like {"name": "live Connect", "live": True, "connect": True, '
        '"secrets": ["whsec_..."]}; see docs/settings.md.',
    ),
    "bad_secret": (
        "E013",
        "Copy the endpoint's signing secret (it starts with 'whsec_') from Stripe's "
        "dashboard; an unset environment variable often leaves None or an empty string.",
    ),
    "shared_secret": (
        "E014",
        "Every Stripe endpoint has its own secret: give each endpoint only its own.",
    ),
}


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    messages: list[Error | Warning] = []
    user = getattr(settings, SETTINGS_NAME, None)
    if user is not None and not isinstance(user, dict):
        return [
            Error(
                f"{SETTINGS_NAME} must be a dict.",
                hint="See docs/settings.md for the keys it takes.",
                id="wagtail_client_billing.E003",
            )
        ]
    for key in sorted(set(user or {}) - set(DEFAULTS)):
        messages.append(
            Warning(
                f"{SETTINGS_NAME} has an unknown key {key!r}.",
                hint="Check its spelling against docs/settings.md.",
                id="wagtail_client_billing.W001",
            )
        )

    endpoints, problems = billing_settings.webhook_config()
    for kind, message in problems:
        check_id, hint = WEBHOOK_PROBLEMS[kind]
        messages.append(Error(message, hint=hint, id=f"wagtail_client_billing.{check_id}"))

    test_key = billing_settings.STRIPE_TEST_SECRET_KEY
    live_key = billing_settings.STRIPE_LIVE_SECRET_KEY
    if not test_key and not live_key:
        messages.append(
            Error(
                "No Stripe secret key is configured for test or live mode.",
                hint=(
                    f"Set {SETTINGS_NAME}['STRIPE_TEST_SECRET_KEY'] (and/or STRIPE_LIVE_SECRET_KEY), "
                    "or the environment variable of the same name."
                ),
                id="wagtail_client_billing.E004",
            )
        )
    for mode, key, prefix in (("test", test_key, "sk_test_"), ("live", live_key, "sk_live_")):
        if key and not key.startswith((prefix, prefix.replace("sk_", "rk_"))):
            messages.append(
                Error(
                    f"STRIPE_{mode.upper()}_SECRET_KEY does not look like a {mode} key.",
                    hint=f"A {mode} secret key starts with '{prefix}' (or a restricted 'rk_' key).",
                    id="wagtail_client_billing.E005",
                )
            )
        has_endpoint = any(e.secrets and e.live == (mode == "live") for e in endpoints)
        if key and not has_endpoint and not problems:  # an error above says what is wrong
            messages.append(
                Warning(
                    f"A {mode} Stripe key is set but no {mode} webhook endpoint's secret.",
                    hint=(
                        f"Add the {mode} endpoint to STRIPE_WEBHOOK_ENDPOINTS (or its secret to "
                        f"STRIPE_{mode.upper()}_WEBHOOK_SECRETS): without it every {mode} "
                        "webhook is refused and statuses change only when a client returns "
                        "or reconciliation runs."
                    ),
                    id="wagtail_client_billing.W002",
                )
            )

    currencies = billing_settings.CURRENCIES
    if not currencies or any(len(code) != 3 or not code.isalpha() for code in currencies):
        messages.append(
            Error(
                "CURRENCIES must be a non-empty list of three-letter ISO 4217 codes.",
                hint='For example ["USD", "EUR"]; the first is the default.',
                id="wagtail_client_billing.E007",
            )
        )

    try:
        Fernet(billing_settings.SMTP_ENCRYPTION_KEY)
        for key in billing_settings.SMTP_PREVIOUS_ENCRYPTION_KEYS:
            Fernet(key)
    except (ValueError, TypeError):
        messages.append(
            Error(
                "SMTP_ENCRYPTION_KEY is not a valid Fernet key.",
                hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
                id="wagtail_client_billing.E008",
            )
        )

    messages.extend(_check_smtp_policy())

    try:
        fee_percent(billing_settings.APPLICATION_FEE_PERCENT)
    except MoneyError as problem:
        messages.append(
            Error(
                "APPLICATION_FEE_PERCENT must be a number from 0 to under 100 with at most "
                f"two decimal places ({problem}).",
                hint=(
                    "Stripe refuses an application_fee_percent with a third decimal, so "
                    "every subscription Checkout would fail: use 2.55, not 2.555. "
                    "0 means the platform takes no fee."
                ),
                id="wagtail_client_billing.E009",
            )
        )
    return messages


def _check_smtp_policy() -> list[Error | Warning]:
    """The outbound policy for custom SMTP servers: a broken one would refuse every site."""
    messages: list[Error | Warning] = []
    try:
        networks = parse_allowed_networks(billing_settings.SMTP_ALLOWED_NETWORKS)
    except ValueError as exc:
        messages.append(
            Error(
                f"SMTP_ALLOWED_NETWORKS is not a list of networks: {exc}.",
                hint='For example ["10.0.0.0/8"] or ["192.0.2.25/32"]; host bits must be zero.',
                id="wagtail_client_billing.E010",
            )
        )
    else:
        if any(network.prefixlen == 0 for network in networks):
            messages.append(
                Warning(
                    "SMTP_ALLOWED_NETWORKS allows every address: editors can point a site's "
                    "custom SMTP server at this machine and its private network.",
                    hint="List only the networks of your own mail relays.",
                    id="wagtail_client_billing.W003",
                )
            )
    try:
        parse_allowed_ports(billing_settings.SMTP_ALLOWED_PORTS)
    except ValueError as exc:
        messages.append(
            Error(
                f"SMTP_ALLOWED_PORTS is not a list of ports: {exc}.",
                hint='For example [25, 465, 587, 2525], or ["*"] for any port.',
                id="wagtail_client_billing.E011",
            )
        )
    return messages


def check_stripe_api_version(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Warn when the installed ``stripe`` package speaks an API version the app was not
    written for: the package's types and the app's payload readers would disagree."""
    package, installed = stripe_api.installed()
    if stripe_api.is_known(installed):
        return []
    return [
        Warning(
            f"The installed stripe package ({package}) speaks Stripe API version "
            f"{installed or '(none)'}, which this version of wagtail-client-billing does not know.",
            hint=(
                f"The app is written for {stripe_api.STRIPE_API_VERSION} and pins its requests "
                "to it; install a stripe package of a release it knows "
                f"({', '.join(sorted(stripe_api.KNOWN_RELEASES))}) or upgrade "
                "wagtail-client-billing."
            ),
            id="wagtail_client_billing.W004",
        )
    ]


def check_public_rate_limit(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """The public pages' rate limit: valid settings, and a cache every worker shares.

    A process-local cache is not an error (one process, the development server, a test
    run are fine); in production with several workers each counts on its own, so a
    client gets the limit once per worker. The warning is shown only with ``DEBUG`` off
    and the limit on, and can be silenced like any check (``SILENCED_SYSTEM_CHECKS``).
    """
    from django.core.cache import caches
    from django.core.cache.backends.base import InvalidCacheBackendError

    from .ratelimit import DUMMY_BACKEND, PROCESS_LOCAL_BACKENDS

    limit = billing_settings.PUBLIC_RATE_LIMIT
    proxies = billing_settings.TRUSTED_PROXY_COUNT
    messages: list[Error | Warning] = [
        Error(message, hint=hint, id="wagtail_client_billing.E015")
        for value, message, hint in (
            (
                limit,
                "PUBLIC_RATE_LIMIT must be a whole number of requests a minute.",
                "For example 60; 0 turns the limit off.",
            ),
            (
                proxies,
                "TRUSTED_PROXY_COUNT must be 0 or the number of proxies in front of Django.",
                "0 takes the client's address from REMOTE_ADDR.",
            ),
        )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0
    ]
    if messages or not limit or settings.DEBUG:
        return messages
    alias = billing_settings.PUBLIC_RATE_LIMIT_CACHE
    try:
        backend = caches[alias]
    except InvalidCacheBackendError:
        return [
            Error(
                f"PUBLIC_RATE_LIMIT_CACHE names the cache {alias!r}, which CACHES does not have.",
                hint="Name an alias of CACHES, such as 'default'.",
                id="wagtail_client_billing.E015",
            )
        ]
    path = f"{type(backend).__module__}.{type(backend).__qualname__}"
    if path == DUMMY_BACKEND:
        messages.append(
            Warning(
                f"The public pages' rate limit counts in the cache {alias!r}, a dummy cache "
                "that keeps nothing: the limit never applies.",
                hint="Point PUBLIC_RATE_LIMIT_CACHE at a real cache, or set the limit to 0 (off).",
                id="wagtail_client_billing.W005",
            )
        )
    elif path in PROCESS_LOCAL_BACKENDS:
        messages.append(
            Warning(
                f"The public pages' rate limit counts in the cache {alias!r} ({path}), "
                "which each process keeps on its own.",
                hint=(
                    "With several workers a client gets the limit once per worker. Use a "
                    "cache every worker shares (Redis or Memcached) for "
                    "PUBLIC_RATE_LIMIT_CACHE, or silence this check if one process serves "
                    "the site."
                ),
                id="wagtail_client_billing.W005",
            )
        )
    return messages


#: Each check and its tags, registered with Django by ``AppConfig.ready()``.
CHECKS = (
    (check_installed_apps, (Tags.compatibility,)),
    (check_settings, ()),
    (check_stripe_api_version, (Tags.compatibility,)),
    (check_public_rate_limit, (Tags.caches,)),
)
