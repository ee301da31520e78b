"""The Stripe webhook endpoint: one URL for account and Connect events, test and live.

The work is in :mod:`wagtail_client_billing.webhooks`; this view only guards the door:
POST only, no CSRF (Stripe cannot send a token; the signature is the authentication),
and a body over ``WEBHOOK_MAX_BODY_BYTES`` refused before it is read, so a large request
costs neither memory nor a parse.
"""

from __future__ import annotations

import json
import logging

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..conf import billing_settings
from ..webhooks import intake

logger = logging.getLogger(__name__)

_JSON = json.JSONEncoder()


def _too_large(limit: int) -> HttpResponse:
    return JsonResponse({"error": f"Request body larger than {limit} bytes."}, status=413)


@csrf_exempt
@require_POST
@transaction.non_atomic_requests  # keep, then queue once kept, even with ATOMIC_REQUESTS
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Answer 200 once the delivery is kept and queued, 400 for anything that is not a
    correctly signed Stripe event, and 413 for an oversized body.

    Storing the event (once per event id: a redelivery is acknowledged the same way)
    and applying it happen in a ``qcluster`` worker, which retries a failure itself; a
    database that cannot keep the delivery answers 500, so Stripe delivers it again.
    """
    limit = int(billing_settings.WEBHOOK_MAX_BODY_BYTES)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return JsonResponse({"error": "Invalid Content-Length."}, status=400)
    if declared > limit:
        return _too_large(limit)
    payload = request.read(limit + 1)
    if len(payload) > limit:
        return _too_large(limit)

    try:
        delivery = intake.receive(payload, request.META.get("HTTP_STRIPE_SIGNATURE"))
    except intake.InvalidWebhook as exc:
        logger.warning("Refused a webhook request: %s", exc)
        return JsonResponse({"error": str(exc)}, status=400)

    body = {"id": delivery.event_id, "received": True}
    # JsonResponse's bytes, from one encoder made once (JsonResponse makes one per call).
    return HttpResponse(_JSON.encode(body), content_type="application/json")
