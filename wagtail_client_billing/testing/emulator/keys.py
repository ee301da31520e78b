"""API keys: secret keys, and restricted keys with permissions a test takes away.

Stripe takes secret keys (``sk_test_...`` / ``sk_live_...``), which may do anything,
and restricted keys (``rk_test_...`` / ``rk_live_...``), which may do only what their
permissions allow; the part after the prefix says the mode. A restricted key asked for
something it may not do gets a 403 whose message names the permission that would allow
it ("Having the 'rak_..._read' permission would allow this request to continue").

The emulator does not know Stripe's table of permissions, so it invents none: a
restricted key may do everything until a test takes a permission away with
:meth:`RestrictedKeys.deny`, naming the requests it covers and Stripe's name for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import StripeError
from .store import mask_key

#: A key the emulator accepts (any other is a 401, as an unknown key is on Stripe).
KEY_PATTERN = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9_]+")


def is_live(key: str) -> bool:
    """Whether ``key`` is a live-mode key (secret or restricted)."""
    return key.startswith(("sk_live_", "rk_live_"))


@dataclass(frozen=True)
class Denial:
    method: str
    path_prefix: str
    permission: str


class RestrictedKeys:
    """The permissions taken away from restricted keys, by key."""

    def __init__(self) -> None:
        self.denials: dict[str, list[Denial]] = {}

    def deny(self, key: str, path_prefix: str, permission: str, method: str = "GET") -> None:
        """Refuse ``method`` requests under ``path_prefix`` made with ``key``, as a
        restricted key without ``permission`` is refused."""
        if not key.startswith(("rk_test_", "rk_live_")):
            raise ValueError(f"Only restricted keys (rk_...) have permissions, not {key[:8]}...")
        self.denials.setdefault(key, []).append(Denial(method.upper(), path_prefix, permission))

    def check(self, key: str, method: str, path: str, account: str) -> None:
        """Raise Stripe's 403 when ``key`` lacks the permission for this request."""
        for denial in self.denials.get(key, []):
            if denial.method == method and path.startswith(denial.path_prefix):
                raise StripeError(
                    f"The provided key '{mask_key(key)}' does not have the required "
                    f"permissions for this endpoint on account '{account}'. Having the "
                    f"'{denial.permission}' permission would allow this request to continue.",
                    status=403,
                )
