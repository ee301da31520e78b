"""A per-address limit on the client's public pages, counted in Django's cache.

The payment link, Checkout's return and cancel, and the JSON status answer to a token
in the URL. Tokens are 256 bits, so guessing one is hopeless; the limit keeps anyone
from trying anyway at the cost of the database (every request looks a token up) and of
Stripe (the pay link and the return view call it), and from hammering one known token.

Requests are counted per client address in fixed windows of a minute: the first
``PUBLIC_RATE_LIMIT`` requests of an address in a window pass, the rest get 429 with
``Retry-After`` until the window ends. The counter lives in the cache named by
``PUBLIC_RATE_LIMIT_CACHE``; it is shared by every worker only when that cache is
(Redis or Memcached): a process-local cache counts per process, which
``wagtail_client_billing.W005`` points out.

:func:`count` counts any key in windows of any length: the client portal's "send me a
new link" form counts per client address and per email address, an hour each.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.cache import caches

from .conf import billing_settings

if TYPE_CHECKING:
    from django.http import HttpRequest

#: Seconds in one counting window.
WINDOW_SECONDS = 60
#: Cache backends whose counters each process keeps on its own.
PROCESS_LOCAL_BACKENDS = ("django.core.cache.backends.locmem.LocMemCache",)
#: The cache backend that keeps nothing, so nothing is ever over the limit.
DUMMY_BACKEND = "django.core.cache.backends.dummy.DummyCache"


def client_address(request: HttpRequest) -> str:
    """The address a request came from, as far as it can be trusted.

    ``REMOTE_ADDR`` by default. Behind ``TRUSTED_PROXY_COUNT`` proxies that each append
    the address they received the request from to ``X-Forwarded-For``, the client's is
    that many entries from the right: entries further left were written by the client
    itself and are not believed. IPv6 addresses count per /64, the block one client
    usually holds.
    """
    address = request.META.get("REMOTE_ADDR", "") or ""
    proxies = billing_settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:  # ::ffff:203.0.113.5 is that IPv4 client
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go on and, when not, how long until it may."""

    allowed: bool
    retry_after: int = 0


def check(request: HttpRequest, scope: str = "public") -> Verdict:
    """Count this request against its address's limit and say whether it passes."""
    return count(
        f"{scope}:{client_address(request)}", billing_settings.PUBLIC_RATE_LIMIT, WINDOW_SECONDS
    )


def count(key: str, limit: int, window_seconds: int) -> Verdict:
    """Count one use of ``key`` in fixed windows of ``window_seconds``: the first
    ``limit`` of a window pass (``0`` is no limit). ``key`` may hold anything (an email
    address): it is hashed into the cache key."""
    if not limit:
        return Verdict(True)
    now = time.time()
    window = int(now // window_seconds)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    cache_key = f"wcb:rate:{digest}:{window_seconds}:{window}"
    cache = caches[billing_settings.PUBLIC_RATE_LIMIT_CACHE]
    # add() then incr(): both are atomic on Redis and Memcached, so concurrent workers
    # cannot lose a count. The key outlives its window a little, never the next one's.
    cache.add(cache_key, 0, timeout=window_seconds + 5)
    try:
        used = cache.incr(cache_key)
    except ValueError:  # evicted between the two calls (or a cache that keeps nothing)
        cache.set(cache_key, 1, timeout=window_seconds + 5)
        used = 1
    if used <= limit:
        return Verdict(True)
    ends = (window + 1) * window_seconds
    return Verdict(False, retry_after=max(1, math.ceil(ends - now)))
