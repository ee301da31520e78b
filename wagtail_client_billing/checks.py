"""Django system checks for a misconfigured install (``manage.py check``).

Ids are stable: ``wagtail_client_billing.E001`` ... errors stop ``runserver`` and
``migrate``; ``W...`` warnings and ``I...`` notes do not. ``docs/troubleshooting.md``
lists each one. ``AppConfig.ready()`` registers the checks of :data:`CHECKS`; importing
this module registers nothing. No check calls the network; the one that reads the
database is tagged ``database``, so Django runs it only where it passes databases
(``migrate``, ``check --database default``).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning
from django.core.exceptions import ImproperlyConfigured

from . import stripe_api
from .conf import (
    DEFAULTS,
    SETTINGS_NAME,
    SQLITE_OPTIONS,
    billing_settings,
    shared_sqlite_databases,
)
from .documents import font_problems
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
    "no_secret": (
        "E013",
        "Give the endpoint its signing secret (whsec_...) from Stripe's dashboard; a list "
        "built from an unset environment variable is often empty.",
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
    blank = billing_settings.blank_webhook_settings()
    for name in blank:
        value = "None" if billing_settings.user_settings[name] is None else "an empty string"
        messages.append(
            Error(
                f"{SETTINGS_NAME}['{name}'] is {value}, and no environment variable "
                f"{name} is set: it configures no webhook secret.",
                hint=(
                    "An unset environment variable read with os.environ.get() leaves None: "
                    "set the variable, or remove the key. See docs/settings.md."
                ),
                id="wagtail_client_billing.E013",
            )
        )

    test_key = billing_settings.STRIPE_TEST_SECRET_KEY
    live_key = billing_settings.STRIPE_LIVE_SECRET_KEY
    if not test_key and not live_key and settings.DEBUG:
        messages.append(
            Warning(
                "No Stripe secret key is configured. DEBUG is on, so this is only a warning: "
                "python manage.py client_billing_dev runs the app against the bundled Stripe "
                "emulator with a test key of its own, but nothing else can reach Stripe.",
                hint=(
                    "To use Stripe itself, set the environment variable STRIPE_TEST_SECRET_KEY "
                    f"(or {SETTINGS_NAME}['STRIPE_TEST_SECRET_KEY']); see the README."
                ),
                id="wagtail_client_billing.W011",
            )
        )
    elif not test_key and not live_key:
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
        if key and not has_endpoint and not problems and not blank:  # an error says what
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
    except ImproperlyConfigured:
        # No SMTP_ENCRYPTION_KEY and an empty SECRET_KEY to derive one from.
        messages.append(
            Error(
                "SMTP_ENCRYPTION_KEY is not set and SECRET_KEY is empty, so there is no key "
                "to encrypt the sites' SMTP passwords with.",
                hint="Set SECRET_KEY, or set SMTP_ENCRYPTION_KEY to a Fernet key.",
                id="wagtail_client_billing.E008",
            )
        )
    except (ValueError, TypeError):
        messages.append(
            Error(
                "SMTP_ENCRYPTION_KEY is not a valid Fernet key.",
                hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
                id="wagtail_client_billing.E008",
            )
        )

    tolerance = billing_settings.WEBHOOK_TOLERANCE
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance <= 0:
        messages.append(
            Error(
                f"WEBHOOK_TOLERANCE must be a positive whole number of seconds, not {tolerance!r}.",
                hint=(
                    "It is how far a webhook's signed timestamp may be from now: with 0 or "
                    "less every event is refused as replayed. Stripe's libraries use 300."
                ),
                id="wagtail_client_billing.E018",
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


#: The ways a cancellation in Stripe's customer portal may take effect.
PORTAL_CANCEL_MODES = ("at_period_end", "immediately")


def check_client_portal(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """The client portal's settings: a positive link lifetime (E023), a cancel mode Stripe
    knows and whole numbers for the new-link limits (E024); with ``DEBUG`` off, a warning
    when either limit is off (W016)."""
    from datetime import timedelta

    messages: list[Error | Warning] = []
    max_age = billing_settings.PORTAL_LINK_MAX_AGE
    if not isinstance(max_age, timedelta) or max_age.total_seconds() <= 0:
        messages.append(
            Error(
                "PORTAL_LINK_MAX_AGE must be a positive timedelta.",
                hint="For example timedelta(days=14): how long a client portal link works.",
                id="wagtail_client_billing.E023",
            )
        )
    mode = billing_settings.PORTAL_CANCEL_MODE
    if mode not in PORTAL_CANCEL_MODES:
        messages.append(
            Error(
                f"PORTAL_CANCEL_MODE is {mode!r}, not 'at_period_end' or 'immediately'.",
                hint="How a client's cancellation in Stripe's customer portal takes effect.",
                id="wagtail_client_billing.E024",
            )
        )
    limits = ("PORTAL_LINK_REQUESTS_PER_ADDRESS", "PORTAL_LINK_REQUESTS_PER_EMAIL")
    bad = False
    for name in limits:
        value = getattr(billing_settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            bad = True
            messages.append(
                Error(
                    f"{name} must be a whole number of requests an hour.",
                    hint="For example 3; 0 turns that limit off.",
                    id="wagtail_client_billing.E024",
                )
            )
    if not bad and not settings.DEBUG:
        off = [name for name in limits if not getattr(billing_settings, name)]
        if off:
            messages.append(
                Warning(
                    f"{' and '.join(off)} is 0: the portal's 'send me a new link' form "
                    "sends as many emails as anyone asks for.",
                    hint="Set a limit, such as 10 an hour per address and 3 per email.",
                    id="wagtail_client_billing.W016",
                )
            )
    return messages


#: The app's URLs a check resolves: Stripe posts to the webhook, clients open the pay link.
URL_PROBES: tuple[tuple[str, dict[str, str], str], ...] = (
    ("stripe_webhook", {}, "the Stripe webhook"),
    ("pay", {"token": "check-token"}, "the payment link"),
)
URLS_INCLUDE = 'path("billing/", include("wagtail_client_billing.urls"))'


def check_urls(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The webhook and the pay link resolve to the app's own views.

    Not included, Stripe's deliveries and the clients' links answer 404; included after
    Wagtail's catch-all (``path("", include(wagtail_urls))``), Wagtail's page view answers
    them (404 too, or a page). Either way ``manage.py check`` would otherwise say nothing.
    """
    from django.urls import NoReverseMatch, Resolver404, resolve, reverse

    messages: list[Error] = []
    for name, url_kwargs, what in URL_PROBES:
        try:
            path = reverse(f"wagtail_client_billing:{name}", kwargs=url_kwargs)
        except NoReverseMatch:
            return [
                Error(
                    f"The app's URLs are not included in ROOT_URLCONF ({settings.ROOT_URLCONF}): "
                    "payment links and Stripe's webhook deliveries answer 404.",
                    hint=(
                        f"Add {URLS_INCLUDE} to urlpatterns, before Wagtail's catch-all "
                        'path("", include(wagtail_urls)).'
                    ),
                    id="wagtail_client_billing.E016",
                )
            ]
        try:
            match = resolve(path)
        except Resolver404:
            match = None
        if match and "wagtail_client_billing" in match.app_names and match.url_name == name:
            continue
        if match is None:
            lands = "nothing (404)"
        else:
            view = getattr(match.func, "view_class", match.func)
            lands = f"{view.__module__}.{view.__qualname__}"
        messages.append(
            Error(
                f"{path} ({what}) resolves to {lands}, not to wagtail_client_billing: a URL "
                "pattern listed before the app's include shadows it.",
                hint=(
                    f"In urlpatterns, move {URLS_INCLUDE} above Wagtail's catch-all "
                    'path("", include(wagtail_urls)) and any other pattern that matches it.'
                ),
                id="wagtail_client_billing.E017",
            )
        )
    return messages


#: The broker settings of django-q2; without one it uses Redis on localhost.
Q_BROKERS = ("orm", "redis", "django_redis", "sqs", "iron_mq", "mongo", "broker_class")


def suggested_q_cluster(name: str = "mysite", broker: str = '"orm": "default"') -> str:
    """A complete ``Q_CLUSTER`` for the app (why each value: docs/developers-guide.md);
    ``broker`` is its broker entry, or ``""`` to leave it out."""
    return (
        f'Q_CLUSTER = {{"name": "{name}", "workers": 2, "timeout": 300, "retry": 360, '
        f'"max_attempts": 3, "ack_failures": True, "catch_up": False'
        + (f", {broker}}}" if broker else "}")
    )


def check_q_cluster(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """django-q2's settings: a broker, and a ``retry`` above the ``timeout``.

    Without ``Q_CLUSTER`` django-q2 looks for Redis on localhost. Without a ``timeout``,
    or with ``retry`` not above it, django-q2 warns on every command and the ORM broker
    hands a task that is still running to a second worker; the app's email claim lease is
    that timeout too.
    """
    q_cluster = getattr(settings, "Q_CLUSTER", None)
    if q_cluster is None:
        return [
            Warning(
                "Q_CLUSTER is not set: django-q2 then looks for Redis on localhost:6379 and "
                "gives tasks no timeout, so invoice emails, expiry and webhooks may never run.",
                hint=f"Add {suggested_q_cluster()} (or the Redis broker: docs/developers-guide.md).",
                id="wagtail_client_billing.W006",
            )
        ]
    if not isinstance(q_cluster, dict):
        return [
            Warning(
                f"Q_CLUSTER must be a dict, not {type(q_cluster).__name__}.",
                hint=f"For example {suggested_q_cluster()}.",
                id="wagtail_client_billing.W007",
            )
        ]
    name = str(q_cluster.get("name") or "mysite")
    brokers = [key for key in Q_BROKERS if key in q_cluster]
    if not brokers or brokers == ["orm"]:
        alias = q_cluster.get("orm") or "default"
        broker = '"orm": "' + str(alias) + '"'
        hint = f"For example {suggested_q_cluster(name, broker)}."
    else:
        hint = f'For example {suggested_q_cluster(name, "")}, keeping your "{brokers[0]}" entry.'
    timeout: Any = q_cluster.get("timeout")
    retry: Any = q_cluster.get("retry", 60)
    problems = []
    if not brokers:
        problems.append("names no broker (django-q2 then looks for Redis on localhost:6379)")
    if not _is_number(timeout) or timeout <= 0:
        problems.append(
            "sets no timeout (django-q2 warns 'Retry and timeout are misconfigured' on "
            "every command, and a hung task is never stopped)"
        )
    elif not _is_number(retry) or retry <= timeout:
        problems.append(
            f"has retry {retry!r} not above timeout {timeout!r} (the ORM broker hands a task "
            "still running to a second worker)"
        )
    if not problems:
        return []
    return [
        Warning(
            f"Q_CLUSTER {' and '.join(problems)}.",
            hint=hint,
            id="wagtail_client_billing.W007",
        )
    ]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_production_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """With ``DEBUG`` off: Stripe itself, and a live key.

    The emulator (or any local stand-in) in production takes no money, yet its Checkout
    pages mark invoices paid; test keys only let editors send test invoices.
    """
    if settings.DEBUG:
        return []
    messages: list[Warning] = []
    base = billing_settings.STRIPE_API_BASE
    if base and _is_local_or_plain_http(base):
        parts = urlsplit(base)
        shown = f"{parts.scheme}://{parts.hostname or ''}" + (
            f":{parts.port}" if parts.port else ""
        )
        messages.append(
            Warning(
                f"STRIPE_API_BASE is {shown} while DEBUG is False: that is the Stripe emulator "
                "or another local stand-in (Stripe's API is HTTPS on api.stripe.com), so no "
                "payment reaches Stripe, and invoices paid on its pages were never paid.",
                hint=(
                    f"In production leave {SETTINGS_NAME}['STRIPE_API_BASE'] unset (None) and "
                    "remove the STRIPE_API_BASE environment variable."
                ),
                id="wagtail_client_billing.W008",
            )
        )
    if billing_settings.STRIPE_TEST_SECRET_KEY and not billing_settings.STRIPE_LIVE_SECRET_KEY:
        messages.append(
            Warning(
                "Only a test Stripe key is set while DEBUG is False: editors can send test "
                "invoices only, and no client can pay real money.",
                hint=(
                    "Set STRIPE_LIVE_SECRET_KEY (sk_live_...) and the live webhook endpoint in "
                    "production; on a staging site add this id to SILENCED_SYSTEM_CHECKS."
                ),
                id="wagtail_client_billing.W009",
            )
        )
    return messages


def _is_local_or_plain_http(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_sqlite_options(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """SQLite's default deferred transactions fail with ``database is locked`` when the
    qcluster and the web server write at once (a burst of webhooks does). Settings only:
    no connection is opened."""
    messages: list[Warning] = []
    for alias, options in shared_sqlite_databases(settings.DATABASES):
        if str(options.get("transaction_mode", "")).upper() == "IMMEDIATE":
            continue
        messages.append(
            Warning(
                f'DATABASES[{alias!r}] is SQLite without "transaction_mode": "IMMEDIATE": '
                "the qcluster and the web server writing at once fail with 'database is "
                "locked', and webhook events wait minutes for their retry.",
                hint=(
                    f'Add to DATABASES[{alias!r}]["OPTIONS"]: {SQLITE_OPTIONS!r} '
                    "(write-ahead logging lets readers and the writer work side by side); "
                    "use PostgreSQL in production."
                ),
                id="wagtail_client_billing.W010",
            )
        )
    return messages


def check_default_site_port(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """While ``DEBUG``: the default Site on port 80, as ``wagtail start`` leaves it, puts
    the payment links in emails on a port the development server does not listen on."""
    if not settings.DEBUG or not databases:
        return []
    from django.db import connections, router
    from wagtail.models import Site

    for alias in databases:
        if not router.allow_migrate_model(alias, Site):
            continue
        if Site._meta.db_table not in connections[alias].introspection.table_names():
            continue  # not migrated yet
        site = Site.objects.using(alias).filter(is_default_site=True).first()
        if site is not None and site.port == 80:
            return [
                Info(
                    f"The default Site is {site.hostname}:80 while DEBUG is on: the payment "
                    f"links in emails point to {site.root_url}/, where the development "
                    "server does not listen.",
                    hint=(
                        "Set the Site's port to the development server's (Settings → Sites), "
                        "or run python manage.py client_billing_dev, which offers to. In "
                        "production the Site is the public hostname on port 443."
                    ),
                    id="wagtail_client_billing.I001",
                )
            ]
    return []


def check_pdf_fonts(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Each ``PDF_FONTS`` file exists and is a font fpdf2 can embed: a missing one would
    leave every invoice email without its PDF."""
    return [
        Error(
            f"WAGTAIL_CLIENT_BILLING['PDF_FONTS']: {path}: {problem}.",
            hint=(
                "Name TTF or OTF files the web server and the qcluster workers can read, "
                "e.g. /usr/share/fonts/opentype/ipafont-gothic/ipag.ttf from Debian's "
                "fonts-ipafont-gothic for Japanese. See docs/documents.md."
            ),
            id="wagtail_client_billing.E019",
        )
        for path, problem in font_problems()
    ]


#: Each check and its tags, registered with Django by ``AppConfig.ready()``.
CHECKS = (
    (check_installed_apps, (Tags.compatibility,)),
    (check_settings, ()),
    (check_stripe_api_version, (Tags.compatibility,)),
    (check_public_rate_limit, (Tags.caches,)),
    (check_client_portal, ()),
    (check_urls, (Tags.urls,)),
    (check_q_cluster, (Tags.compatibility,)),
    (check_production_settings, ()),
    (check_sqlite_options, ()),
    (check_default_site_port, (Tags.database,)),
    (check_pdf_fonts, ()),
)
