"""Stripe-shaped objects and signed deliveries for the webhook tests (issue 6).

The objects follow the shape of Stripe's own (a ``checkout.session``, an ``invoice``, a
``subscription``), trimmed to the fields the app reads plus a few it does not, so the
tests also show the handlers ignore what they do not need.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from django.test import TestCase
from django.urls import reverse

from wagtail_client_billing.models import Invoice, WebhookDelivery, WebhookEvent
from wagtail_client_billing.testing.webhooks import build_event, random_id, sign_payload

TEST_SECRET = "whsec_test_suite"
ROTATED_TEST_SECRET = "whsec_test_rotated"
LIVE_SECRET = "whsec_live_suite"


def webhook_url() -> str:
    return reverse("wagtail_client_billing:stripe_webhook")


def nothing_kept() -> bool:
    """Whether no delivery is kept and no event stored: what a refused request leaves."""
    return not WebhookDelivery.objects.exists() and not WebhookEvent.objects.exists()


def post_event(
    client,
    event: dict[str, Any],
    secret: str | None = TEST_SECRET,
    *,
    timestamp: int | None = None,
    body: bytes | None = None,
    run_tasks: bool = True,
):
    """POST ``event`` (or raw ``body``) to the webhook view, signed with ``secret``.

    The queued task runs too (django-q2 is synchronous in the tests, and the on-commit
    callbacks of the test's transaction are run), as a ``qcluster`` would run it; with
    ``run_tasks=False`` it stays queued in the test's transaction, as if no worker ran.
    """
    payload = body if body is not None else json.dumps(event).encode()
    headers = {}
    if secret is not None:
        headers["HTTP_STRIPE_SIGNATURE"] = sign_payload(payload, secret, timestamp)
    tasks_run = TestCase.captureOnCommitCallbacks(execute=True)
    with tasks_run if run_tasks else contextlib.nullcontext():
        return client.post(webhook_url(), data=payload, content_type="application/json", **headers)


def session_obj(invoice: Invoice, session_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A Checkout Session for ``invoice`` as Stripe sends it, ``open`` and unpaid."""
    obj: dict[str, Any] = {
        "id": session_id or random_id("cs_test_a1", 56),
        "object": "checkout.session",
        "amount_subtotal": invoice.amount,
        "amount_total": invoice.amount,
        "currency": invoice.currency.lower(),
        "client_reference_id": str(invoice.pk),
        "customer": None,
        "customer_details": {"email": invoice.email},
        "expires_at": int(time.time()) + 3600,
        "livemode": not invoice.test_mode,
        "metadata": {"invoice_id": str(invoice.pk), "platform": "wagtail_client_billing"},
        "mode": "subscription" if invoice.is_recurring else "payment",
        "payment_intent": None,
        "payment_status": "unpaid",
        "status": "open",
        "subscription": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "url": "https://checkout.stripe.com/c/pay/x",
    }
    obj.update(fields)
    return obj


def session_event(
    type: str, invoice: Invoice, session: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    kwargs.setdefault("account", invoice.account.stripe_id)
    kwargs.setdefault("livemode", not invoice.test_mode)
    return build_event(type, session, **kwargs)


def completed(invoice, session_id, *, paid=True, payment_intent="pi_test_1", **fields):
    session = session_obj(
        invoice,
        session_id,
        status="complete",
        payment_status="paid" if paid else "unpaid",
        payment_intent=payment_intent,
        url=None,
        **fields,
    )
    return session_event("checkout.session.completed", invoice, session)


def async_result(invoice, session_id, *, succeeded=True, payment_intent="pi_test_1"):
    session = session_obj(
        invoice,
        session_id,
        status="complete",
        payment_status="paid" if succeeded else "unpaid",
        payment_intent=payment_intent,
        url=None,
    )
    kind = "succeeded" if succeeded else "failed"
    return session_event(f"checkout.session.async_payment_{kind}", invoice, session)


def expired(invoice, session_id):
    session = session_obj(invoice, session_id, status="expired", url=None)
    return session_event("checkout.session.expired", invoice, session)


def subscription_obj(invoice, subscription_id, status="active", **fields):
    obj = {
        "id": subscription_id,
        "object": "subscription",
        "customer": "cus_test_1",
        "livemode": not invoice.test_mode,
        "metadata": {"invoice_id": str(invoice.pk)},
        "status": status,
    }
    obj.update(fields)
    return obj


def stripe_invoice_obj(invoice, subscription_id, billing_reason, stripe_invoice_id=None):
    now = int(time.time())
    return {
        "id": stripe_invoice_id or random_id("in_"),
        "object": "invoice",
        "amount_paid": invoice.amount,
        "billing_reason": billing_reason,
        "currency": invoice.currency.lower(),
        "customer": "cus_test_1",
        "livemode": not invoice.test_mode,
        "metadata": {},
        "parent": {
            "quote_details": None,
            "subscription_details": {
                "metadata": {"invoice_id": str(invoice.pk)},
                "subscription": subscription_id,
            },
            "type": "subscription_details",
        },
        "status": "paid",
        "status_transitions": {"paid_at": now},
    }


def pre_basil(stripe_invoice: dict[str, Any]) -> dict[str, Any]:
    """``stripe_invoice`` as API versions before 2025-03-31.basil shape it: the
    subscription and its metadata at the top level, no ``parent``."""
    old = {k: v for k, v in stripe_invoice.items() if k != "parent"}
    details = stripe_invoice["parent"]["subscription_details"]
    old["subscription"] = details["subscription"]
    old["subscription_details"] = {"metadata": details["metadata"]}
    return old


def account_event(type, obj, account_id, livemode=False, **kwargs):
    return build_event(type, obj, account=account_id, livemode=livemode, **kwargs)
