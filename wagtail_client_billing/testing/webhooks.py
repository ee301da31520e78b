"""Sign and build Stripe webhook events, for tests that post webhooks to the app.

Stripe signs every delivery with a ``Stripe-Signature`` header,
``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed by the endpoint secret>``.
These helpers produce exactly that, so a test can send an event through the app's real
webhook view (which verifies it with ``stripe.Webhook.construct_event``) instead of
bypassing verification::

    from wagtail_client_billing.testing.webhooks import build_event, sign_payload

    event = build_event("checkout.session.completed", session, account="acct_123")
    body = json.dumps(event).encode()
    client.post(
        "/billing/webhook/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign_payload(body, "whsec_test"),
    )

The emulator (:mod:`wagtail_client_billing.testing.stripe_emulator`) uses the same two
functions for its deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from typing import Any

#: The API version stamped on events when the caller does not pass one: the version the
#: installed ``stripe`` package was generated for, which is what a Stripe account pinned
#: to that SDK would send.
try:
    from stripe import api_version as DEFAULT_API_VERSION
except ImportError:  # pragma: no cover - stripe is a dependency of the app
    DEFAULT_API_VERSION = "2025-01-27.acacia"

_ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id: ``prefix`` + random base62 (``evt_1Q2w3E...``)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """The hex ``v1`` signature Stripe computes for ``payload`` at ``timestamp``."""
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Return the ``Stripe-Signature`` header value for ``payload``.

    Args:
        payload: the exact bytes that will be sent as the request body; the signature
            covers them byte for byte, so re-serialising the JSON afterwards breaks it.
        secret: the endpoint's signing secret (``whsec_...``).
        timestamp: the signing time; defaults to now.  Pass an old one to test the
            receiver's replay tolerance (``stripe.Webhook`` rejects > 300 s by default).
    """
    if isinstance(payload, str):  # be forgiving: the signature is over UTF-8 bytes
        payload = payload.encode("utf-8")
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={ts},v1={compute_signature(payload, secret, ts)}"


def build_event(
    type: str,
    obj: dict[str, Any],
    account: str | None = None,
    livemode: bool = False,
    *,
    created: int | None = None,
    previous_attributes: dict[str, Any] | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
    api_version: str | None = None,
    pending_webhooks: int = 1,
) -> dict[str, Any]:
    """Build an event dict shaped like the ones Stripe delivers.

    Args:
        type: the event type, e.g. ``"checkout.session.completed"``.
        obj: the object as it is after the change (``data.object``).
        account: the connected account the event happened on; Stripe sets the
            top-level ``account`` only for events from connected accounts, and the app
            routes events by it.
        livemode: whether the event happened in live mode.
        created: event time; defaults to now.
        previous_attributes: for ``*.updated`` events, the changed fields' old values.
        request_id / idempotency_key: the API request that caused the event (``None``
            for events caused by a person on a Stripe page or by Stripe itself).
        api_version: defaults to the installed SDK's API version.
        pending_webhooks: how many endpoints still have to receive it.
    """
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    event: dict[str, Any] = {
        "id": random_id("evt_"),
        "object": "event",
        "api_version": api_version or DEFAULT_API_VERSION,
        "created": int(time.time()) if created is None else int(created),
        "data": data,
        "livemode": bool(livemode),
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": type,
    }
    if account is not None:
        event["account"] = account
    return event


__all__ = ["DEFAULT_API_VERSION", "build_event", "compute_signature", "random_id", "sign_payload"]
