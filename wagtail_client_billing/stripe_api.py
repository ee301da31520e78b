"""The Stripe API version this app is written for.

Stripe shapes every response and every webhook event by an API version: the gateway's
requests carry :data:`STRIPE_API_VERSION`, and each webhook endpoint renders its events
in the version it was created with (or the account's default). The app is written for
:data:`STRIPE_API_VERSION` and its handlers also read the older shapes listed in
:data:`KNOWN_RELEASES` (for example, an invoice's subscription at the top level before
``2025-03-31.basil``, under ``parent.subscription_details`` since).

Since ``2024-09-30.acacia`` Stripe makes breaking changes only when a release's name
changes (acacia, basil, clover, ...); the monthly versions of one release add fields
and nothing else. So a version is known when its release is.
"""

from __future__ import annotations

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
