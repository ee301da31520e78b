"""The client's pages: the payment link, Checkout's return and cancel, the JSON status.

A client reaches these through the link in their email, so every answer is a page for
a person in the invoice's language (:func:`..languages.invoice_language`, the language of
the email that brought them here, whatever the browser asks for) (never a Stripe error, never the client's email or any
internal id), and none of them may be cached or indexed: the token in the URL is the
only key to the invoice. The templates live under
``templates/wagtail_client_billing/public/`` and extend ``base.html`` there, which a
site overrides to wrap them in its own layout.
"""

from __future__ import annotations

import logging
from email.utils import parseaddr
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.html import conditional_escape, format_html
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from .. import documents, gateway, ratelimit
from ..billing import checkout
from ..languages import invoice_language
from ..models import ClientBillingSettings, Invoice, site_display_name
from ..status import UNKNOWN_PAGE

logger = logging.getLogger(__name__)

TEMPLATE_DIR = "wagtail_client_billing/public/"

#: Seconds a client is asked to wait before trying again when Stripe is unavailable.
RETRY_AFTER_SECONDS = 30


class HttpResponseSeeOther(HttpResponseRedirect):
    """303: the browser follows with a GET, whatever brought it here."""

    status_code = 303


def private(view):
    """No caching, no indexing, and no Referer carrying the token to another site."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        add_never_cache_headers(response)
        response["Referrer-Policy"] = "no-referrer"
        response["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return wrapped


def rate_limited(view=None, *, as_json: bool = False):
    """Answer 429 with ``Retry-After`` once the client's address is over its limit
    (``PUBLIC_RATE_LIMIT`` requests a minute, see :mod:`..ratelimit`), before the token
    is looked up: a page for a person (``rate_limited.html``), or JSON."""

    def decorate(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            verdict = ratelimit.check(request)
            if verdict.allowed:
                return view(request, *args, **kwargs)
            response: HttpResponse
            if as_json:
                # Translators: client-facing.
                message = gettext("Too many requests. Please try again in a minute.")
                body = {"error": "rate_limited", "message": message}
                response = JsonResponse({**body, "retry_after": verdict.retry_after}, status=429)
            else:
                context = {"site_name": getattr(settings, "WAGTAIL_SITE_NAME", "")}
                context["retry_after"] = verdict.retry_after
                response = render(request, TEMPLATE_DIR + "rate_limited.html", context, status=429)
            response["Retry-After"] = str(verdict.retry_after)
            return response

        return wrapped

    return decorate(view) if view is not None else decorate


def get_invoice(token: str) -> Invoice:
    """The invoice whose token this is, or 404 (the same 404 for any wrong token)."""
    if not token or len(token) > 64:
        raise Http404
    try:
        return Invoice.objects.select_related("site", "account").get(token=token)
    except Invoice.DoesNotExist:
        raise Http404 from None


def contact_for(invoice: Invoice) -> dict[str, str]:
    """Who the client should ask about the invoice: the site's Reply-To, else its From."""
    billing = ClientBillingSettings.for_site(invoice.site)
    raw = billing.reply_to or billing.from_email or settings.DEFAULT_FROM_EMAIL or ""
    name, address = parseaddr(raw)
    return {"name": name, "email": address}


def contact_html(contact: dict[str, str], site_name: str) -> str:
    """``Acme Studio (<a href="mailto:...">billing@acme.example</a>)``, escaped."""
    if not contact["email"]:
        return conditional_escape(site_name)
    link = format_html('<a href="mailto:{0}">{0}</a>', contact["email"])
    if contact["name"]:
        return format_html("{} ({})", contact["name"], link)
    return link


def render_page(
    request: HttpRequest, invoice: Invoice, name: str, status: int = 200, **context: Any
) -> HttpResponse:
    """Render one of the public pages in the invoice's language.

    Not the browser's (``Accept-Language``): the client reads the page in the language
    of the email and the PDF they were sent, which the editor chose for them, and a
    shared or borrowed browser does not change it.
    """
    site_name = site_display_name(invoice.site)
    contact = contact_for(invoice)
    context = {
        **documents.branding(invoice),
        "invoice": invoice,
        "site_name": site_name,
        "contact": contact,
        "contact_html": contact_html(contact, site_name),
        **context,
    }
    with translation.override(invoice_language(invoice)):
        response = render(request, TEMPLATE_DIR + name, context, status=status)
        response["Content-Language"] = translation.get_language() or ""
    return response


@private
@rate_limited
@require_GET
def pay(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the client's email: go to Stripe Checkout, or say why not."""
    invoice = get_invoice(token)
    page = _not_payable_page(request, invoice)
    if page is not None:
        return page
    if invoice.account.deauthorized_at is not None:
        return _unavailable(request, invoice, retryable=False)
    try:
        url = checkout.checkout_url(invoice)
    except checkout.NotPayable:
        # Paid or withdrawn while Stripe made the session (which is expired already).
        return _not_payable_page(request, invoice) or _unavailable(
            request, invoice, retryable=False
        )
    except gateway.GatewayError as exc:
        logger.warning("Could not open Checkout for invoice %s: %s", invoice, exc)
        return _unavailable(request, invoice, retryable=exc.retryable)
    return HttpResponseSeeOther(url)


def _not_payable_page(request: HttpRequest, invoice: Invoice) -> HttpResponse | None:
    """The page the status table gives a status that is not payable; None if payable.

    Only a status the table marks payable goes on to Checkout: one it does not know
    gets its fallback page (cannot be paid online), never a payment page.
    """
    definition = invoice.effective_status_definition
    if definition.payable:
        return None
    page = definition.page or UNKNOWN_PAGE
    return render_page(request, invoice, page.template, status=page.http_status)


def _unavailable(request: HttpRequest, invoice: Invoice, *, retryable: bool) -> HttpResponse:
    response = render_page(request, invoice, "unavailable.html", status=503, retryable=retryable)
    if retryable:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@private
@rate_limited
@require_GET
def checkout_return(request: HttpRequest, token: str) -> HttpResponse:
    """Checkout's ``success_url``: record what Stripe says, then go to the invoice's page.

    The session is read once, so the invoice shows Paid before any webhook arrives. If
    Stripe cannot answer the client still goes on to the success URL; the webhook (or
    reconciliation) records the payment.
    """
    invoice = get_invoice(token)
    checkout.apply_return(invoice, request.GET.get("session_id", "")[:255])
    return HttpResponseSeeOther(invoice.success_url)


@private
@rate_limited
@require_GET
def checkout_cancel(request: HttpRequest, token: str) -> HttpResponse:
    """Checkout's ``cancel_url``: straight on to the invoice's cancel URL."""
    return HttpResponseSeeOther(get_invoice(token).cancel_url)


@private
@rate_limited(as_json=True)
@require_GET
def invoice_status(request: HttpRequest, token: str) -> HttpResponse:
    """The invoice's public status as JSON, for headless front ends.

    What the client may see and nothing more: no email, no ids, no internal note.
    ``status`` is the effective one (pending past its expiry reads ``expired``).
    """
    invoice = get_invoice(token)
    return JsonResponse(
        {
            "number": invoice.number,
            "status": str(invoice.effective_status),
            "amount": str(invoice.amount_major),
            "amount_minor": invoice.amount,
            # After any discount, with any tax rate's tax (under Stripe Tax, before tax).
            "total_minor": invoice.figures.gross,
            "tax_minor": None if invoice.automatic_tax else invoice.figures.tax,
            "currency": invoice.currency,
            "description": invoice.description,
            "billing_type": invoice.billing_type,
            "expires_at": invoice.expires_at.isoformat(),
            "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
            "overdue": invoice.is_overdue,
            "paid_at": invoice.paid_at.isoformat() if invoice.paid_at else None,
            "payable": invoice.is_payable,
            "pay_url": invoice.get_pay_url(),
            "subscription": _subscription_json(invoice),
        }
    )


@private
@rate_limited
@require_GET
def invoice_pdf(request: HttpRequest, token: str) -> HttpResponseBase:
    """The invoice's PDF, the very file the client was emailed; the token is the key."""
    return documents.pdf_response(get_invoice(token), as_attachment=False)


def _subscription_json(invoice: Invoice) -> dict[str, Any] | None:
    """A recurring invoice's subscription as its client may see it (no Stripe ids)."""
    if not invoice.subscription_status:
        return None
    end = invoice.subscription_current_period_end
    renewal = invoice.next_renewal_at
    return {
        "status": invoice.subscription_status,
        "current_period_end": end.isoformat() if end else None,
        "next_renewal_at": renewal.isoformat() if renewal else None,
        "cancel_at_period_end": invoice.subscription_cancel_at_period_end,
    }
