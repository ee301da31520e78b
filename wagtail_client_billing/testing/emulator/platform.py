"""The platform's own account, as ``GET /v1/account`` shows it.

Stripe answers ``GET /v1/account`` with the account the key belongs to (with a
``Stripe-Account`` header, with that connected account instead), and ``GET
/v1/accounts`` with the platform's connected accounts, newest first (an empty list for
an account that is not a Connect platform). The platform's id is the same in test and
live mode, as on Stripe, where the two modes are one account.
"""

from __future__ import annotations

from typing import Any

#: The id of the emulated platform account, in both modes.
PLATFORM_ACCOUNT_ID = "acct_1EmulatedPlatform"

#: When the emulated platform "signed up" (Unix seconds), before anything it creates.
PLATFORM_CREATED = 1_600_000_000


def platform_account(name: str) -> dict[str, Any]:
    """The platform's ``account`` object: a Standard account that can take payments."""
    return {
        "id": PLATFORM_ACCOUNT_ID,
        "object": "account",
        "business_profile": {"name": name, "url": None},
        "business_type": "company",
        "charges_enabled": True,
        "country": "US",
        "created": PLATFORM_CREATED,
        "default_currency": "usd",
        "details_submitted": True,
        "email": None,
        "metadata": {},
        "payouts_enabled": True,
        "settings": {"dashboard": {"display_name": name, "timezone": "Etc/UTC"}},
        "type": "standard",
    }
