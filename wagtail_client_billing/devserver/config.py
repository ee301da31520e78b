"""What ``client_billing_dev`` changes in the settings of the processes it starts.

The dev server and the qcluster run with the project's own settings module, wrapped by
:mod:`wagtail_client_billing.devserver.settings`, which applies the patches computed here
by :func:`plan` (passed as JSON in the :data:`ENV` environment variable). Each patch is
there so that the parts agree: mail goes to the sink, the app talks to the emulator
with a test key, and the emulator signs its webhooks with a secret the app accepts.

Patches merge into dictionaries (``WAGTAIL_CLIENT_BILLING``, ``DATABASES``) key by key and
replace other values. Nothing here touches the database or the project's files.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The environment variable that carries the base settings module and the patches.
ENV = "CLIENT_BILLING_DEV"
#: The settings module the children run with.
SETTINGS_MODULE = "wagtail_client_billing.devserver.settings"
#: A test key the emulator accepts, when the project configures none.
DEV_TEST_SECRET_KEY = "sk_test_client_billing_dev"  # noqa: S105 (the emulator's, not a secret)
#: The webhook secret, when the project configures no test endpoint with one.
DEV_WEBHOOK_SECRET = "whsec_client_billing_dev"  # noqa: S105 (the emulator's, not a secret)
#: The django-q2 settings of ``docs/developers-guide.md``, with the ORM broker, when the
#: project has no ``Q_CLUSTER``.
DEV_Q_CLUSTER = {
    "name": "client_billing_dev",
    "workers": 2,
    "timeout": 300,
    "retry": 360,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "orm": "default",
}


@dataclass
class Plan:
    """The patches for the children's settings, and one line per patch for the console."""

    webhook_secret: str
    patches: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def patch(self, name: str, value: Any, note: str) -> None:
        self.patches[name] = merge(self.patches.get(name), value)
        self.notes.append(note)


def merge(base: Any, patch: Any) -> Any:
    """``patch`` over ``base``: dictionaries key by key (recursively), anything else replaced."""
    if isinstance(base, Mapping) and isinstance(patch, Mapping):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base.get(key), value)
        return merged
    return patch


def apply(namespace: dict[str, Any], patches: Mapping[str, Any]) -> None:
    """Apply :attr:`Plan.patches` to a settings module's namespace."""
    for name, patch in patches.items():
        namespace[name] = merge(namespace.get(name), patch)


def is_loopback(hostname: str) -> bool:
    """``localhost``, ``*.localhost`` (browsers resolve it to loopback) or a loopback address."""
    hostname = hostname.strip("[]").lower()
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def plan(settings: Any, *, api_base: str, smtp_host: str, smtp_port: int) -> Plan:
    """The patches that make the project's settings agree with the parts the command runs.

    ``settings`` is Django's settings object (the project's own, as loaded by the command).
    """
    from django.http.request import validate_host

    from ..conf import SQLITE_OPTIONS, billing_settings, shared_sqlite_databases

    test_secrets = [
        s for e in billing_settings.webhook_endpoints() if not e.live for s in e.secrets
    ]
    result = Plan(webhook_secret=test_secrets[0] if test_secrets else DEV_WEBHOOK_SECRET)

    result.patch(
        "EMAIL_BACKEND",
        "django.core.mail.backends.smtp.EmailBackend",
        f"email: Django's SMTP backend to the sink at {smtp_host}:{smtp_port}",
    )
    for name, value in (
        ("EMAIL_HOST", smtp_host),
        ("EMAIL_PORT", smtp_port),
        ("EMAIL_USE_TLS", False),
        ("EMAIL_USE_SSL", False),
        ("EMAIL_HOST_USER", ""),
        ("EMAIL_HOST_PASSWORD", ""),
    ):
        result.patches[name] = value

    billing: dict[str, Any] = {"STRIPE_API_BASE": api_base}
    notes = [f"STRIPE_API_BASE={api_base} (the emulator)"]
    if not billing_settings.STRIPE_TEST_SECRET_KEY:
        billing["STRIPE_TEST_SECRET_KEY"] = DEV_TEST_SECRET_KEY
        notes.append(f"STRIPE_TEST_SECRET_KEY={DEV_TEST_SECRET_KEY} (none is configured)")
    if not test_secrets:
        billing["STRIPE_TEST_WEBHOOK_SECRETS"] = [DEV_WEBHOOK_SECRET]
        notes.append(
            f"STRIPE_TEST_WEBHOOK_SECRETS=[{DEV_WEBHOOK_SECRET!r}] (no test endpoint has a secret)"
        )
    else:
        notes.append("the emulator signs webhooks with your first test endpoint's secret")
    result.patch("WAGTAIL_CLIENT_BILLING", billing, "WAGTAIL_CLIENT_BILLING: " + "; ".join(notes))

    # The options of the W010 check, where the project set none of its own.
    for alias, options in shared_sqlite_databases(settings.DATABASES):
        missing = {k: v for k, v in SQLITE_OPTIONS.items() if k not in options}
        if missing:
            result.patch(
                "DATABASES",
                {alias: {"OPTIONS": missing}},
                f"DATABASES[{alias!r}]['OPTIONS'] += {missing} (three processes write to SQLite)",
            )

    if not getattr(settings, "Q_CLUSTER", None):
        result.patch("Q_CLUSTER", DEV_Q_CLUSTER, "Q_CLUSTER: the ORM broker (none is configured)")

    allowed = list(settings.ALLOWED_HOSTS)
    if not allowed and not settings.DEBUG:
        result.patch(
            "ALLOWED_HOSTS",
            [".localhost", "127.0.0.1", "[::1]"],
            "ALLOWED_HOSTS: loopback (it is empty and DEBUG is off)",
        )
    elif allowed and not validate_host("127.0.0.1", allowed):
        result.patch(
            "ALLOWED_HOSTS",
            [*allowed, "127.0.0.1"],
            "ALLOWED_HOSTS += ['127.0.0.1'] (the emulator posts its webhooks there)",
        )
    return result
