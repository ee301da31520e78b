"""The Stripe API version this app is written for.

Stripe shapes every response and every webhook event by an API version: the gateway's
requests carry :data:`STRIPE_API_VERSION`, and each webhook endpoint renders its events
in the version it was created with (or the account's default). The app is written for
:data:`STRIPE_API_VERSION` and its handlers also read the older shapes listed in
:data:`KNOWN_RELEASES` (for example, an invoice's subscription at the top level before
``2025-03-31.basil``, under ``parent.subscription_details`` since).

The readers at the end of this module are shared by the gateway (its answers) and the
webhook handlers (their payloads): a field of an unexpected type (a new API version, a
malformed event) reads as empty, never as something it is not, so nothing is marked
paid on a field that could not be read.

Since ``2024-09-30.acacia`` Stripe makes breaking changes only when a release's name
changes (acacia, basil, clover, ...); the monthly versions of one release add fields
and nothing else. So a version is known when its release is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import stripe

#: The version the gateway's client is pinned to and the webhook endpoints should use:
#: what the newest ``stripe`` package the app is tested with speaks.
STRIPE_API_VERSION = "2026-10-28.endive"

#: Releases whose payloads the webhook handlers read. Dated versions before acacia (no
#: release name) are read too: the handlers accept the pre-basil invoice shape.
KNOWN_RELEASES = frozenset({"acacia", "basil", "clover", "dahlia", "endive"})


def release(version: str) -> str:
    """The release name of a version (``"basil"`` of ``"2025-03-31.basil"``), else ``""``."""
    _date, _dot, name = version.partition(".")
    return name


def is_known(version: str) -> bool:
    """Whether the handlers were written for the shapes of ``version``'s release.

    A newer release may move a field the app reads; a dated version before acacia is
    known (the handlers read the oldest shapes still in use).
    """
    name = release(version)
    return name in KNOWN_RELEASES if name else version <= STRIPE_API_VERSION


def installed() -> tuple[str, str]:
    """``(package version, API version)`` of the installed ``stripe`` package."""
    return str(getattr(stripe, "VERSION", "?")), str(getattr(stripe, "api_version", "") or "")


# --- Checkout's languages ------------------------------------------------------------

#: The ``locale`` values a Checkout Session accepts (Stripe's API reference, Create a
#: Checkout Session); ``auto`` lets Checkout follow the browser.
CHECKOUT_LOCALES = frozenset(
    {
        "auto", "bg", "cs", "da", "de", "el", "en", "en-GB", "es", "es-419", "et", "fi",
        "fil", "fr", "fr-CA", "hi-IN", "hr", "hu", "id", "it", "ja", "ko", "lt", "lv", "ms",
        "mt", "nb", "nl", "pl", "pt", "pt-BR", "ro", "ru", "sk", "sl", "sv", "th", "tr",
        "vi", "zh", "zh-HK", "zh-TW",
    }
)  # fmt: skip

#: Django language codes whose Checkout locale is not their own code nor their base
#: language's: Latin American Spanish, Norwegian, and Chinese by script.
CHECKOUT_LOCALE_ALIASES = {
    "es-ar": "es-419",
    "es-co": "es-419",
    "es-mx": "es-419",
    "es-ni": "es-419",
    "es-ve": "es-419",
    "no": "nb",
    "nn": "nb",
    "zh-hans": "zh",
    "zh-cn": "zh",
    "zh-hant": "zh-TW",
}


def checkout_locale(language: str | None) -> str:
    """The Checkout ``locale`` of a Django language code: ``pt-br`` -> ``pt-BR``,
    ``de-at`` -> ``de``, ``es-mx`` -> ``es-419``; ``auto`` (the browser's language) for
    a language Checkout does not have."""
    code = (language or "").strip().lower().replace("_", "-")
    by_lower = {locale.lower(): locale for locale in CHECKOUT_LOCALES}
    if code in CHECKOUT_LOCALE_ALIASES:
        return CHECKOUT_LOCALE_ALIASES[code]
    return by_lower.get(code) or by_lower.get(code.split("-")[0]) or "auto"


# --- reading Stripe's objects ---------------------------------------------------------


def text(value: Any) -> str:
    """A string field; ``""`` for anything else."""
    return value if isinstance(value, str) else ""


def mapping(value: Any) -> dict[str, Any]:
    """A hash field; ``{}`` for anything else."""
    return value if isinstance(value, dict) else {}


def expandable_id(value: Any) -> str:
    """An expandable field as its id (``"pi_123"`` or ``{"id": "pi_123", ...}``)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def unix_time(value: Any) -> datetime | None:
    """A Unix time as an aware datetime; ``None`` for anything that is not a sane one."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def positive_int(value: Any) -> int | None:
    """A positive 64-bit integer, or a string of its digits; ``None`` for anything else.

    How an invoice's primary key comes back in ``metadata.invoice_id`` and
    ``client_reference_id`` (the gateway sends it as a string).
    """
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 18:
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    return None
