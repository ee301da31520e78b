"""The client portal: one client's invoices on every site, paying them, their receipts,
and Stripe's customer portal for a subscription's card and cancellation.

A client arrives through a signed link (:mod:`..portal_links`) from any email. Opening
it (:func:`open_link`) keeps the link in a cookie scoped to the portal's own path and
sends the browser on to the portal without the link in its address; every portal page
reads the cookie and checks the link again (signature, age, the client's revocation
version), so an expired or revoked link closes a portal left open. Every invoice a page
shows or acts on is looked up among that client's own (``billing.portal.invoices_for``):
another client's id is a 404, never a page.

The "send me a new link" form (:func:`request_link`) is limited per client address and
per email address, answers with the same page and status whether the address is a
client's or not, and only queues the sending (``tasks.send_portal_link``), so neither
the answer nor its timing tells whether an address is known.
"""

from __future__ import annotations

import logging
from functools import wraps
from typing import Any

from django import forms
from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from wagtail.models import Site

from .. import documents, emails, ratelimit
from ..billing import portal
from ..conf import billing_settings
from ..languages import available_language, default_language
from ..models import Client, Invoice, RefundStatus, site_display_name
from ..portal_links import LinkExpired, LinkInvalid, read_token
from .public import RETRY_AFTER_SECONDS, HttpResponseSeeOther, private, rate_limited

logger = logging.getLogger(__name__)

TEMPLATE_DIR = "wagtail_client_billing/portal/"

#: The cookie that keeps the portal link while the client moves around the portal.
COOKIE_NAME = "wcb_portal"

#: Seconds in the window of the "send me a new link" limits.
LINK_REQUEST_WINDOW = 3600


def portal_page(view):
    """:func:`.public.private`, but ``Referrer-Policy: same-origin``: the portal's own
    forms post back to it, and under ``no-referrer`` a browser sends ``Origin: null``,
    which Django's CSRF check refuses. No portal address but the emailed link's holds a
    secret, and that one keeps ``no-referrer``; other sites still get no Referer."""
    inner = private(view)

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = inner(request, *args, **kwargs)
        response["Referrer-Policy"] = "same-origin"
        return response

    return wrapped


def _portal_path() -> str:
    return reverse("wagtail_client_billing:portal")


def _site_name(request: HttpRequest) -> str:
    site = Site.find_for_request(request)
    if site is not None:
        return site_display_name(site)
    return getattr(settings, "WAGTAIL_SITE_NAME", "")


def _language(request: HttpRequest, client: Client | None = None) -> str:
    """The portal's language: the client's own, else the site's, else ``LANGUAGE_CODE``
    (:func:`..languages.default_language`, the rule of every client-facing page)."""
    client_language = client.language if client is not None else None
    site = Site.find_for_request(request)
    if site is not None:
        return default_language(site, client_language)
    return available_language(client_language) or settings.LANGUAGE_CODE


def _render(
    request: HttpRequest, name: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    """One of the portal's pages, in the client's language (else the site's)."""
    context = {"site_name": _site_name(request), **context}
    with translation.override(_language(request, context.get("client"))):
        response = render(request, TEMPLATE_DIR + name, context, status=status)
        response["Content-Language"] = translation.get_language() or ""
    return response


def _forget(response: HttpResponse) -> HttpResponse:
    response.delete_cookie(COOKIE_NAME, path=_portal_path(), samesite="Lax")
    return response


def _expired(request: HttpRequest) -> HttpResponse:
    """The page of a link that no longer opens the portal (too old, or revoked): the
    same page for both, with the way to a new link."""
    return _forget(_render(request, "link_expired.html", {}, status=410))


def _client_of(request: HttpRequest) -> Client | HttpResponse:
    """The client whose portal this browser holds, or the response to give instead."""
    token = request.COOKIES.get(COOKIE_NAME, "")
    if not token:
        return HttpResponseSeeOther(reverse("wagtail_client_billing:portal_request_link"))
    try:
        return read_token(token)
    except LinkInvalid:
        return _forget(HttpResponseSeeOther(reverse("wagtail_client_billing:portal_request_link")))
    except LinkExpired:
        return _expired(request)


def _client_invoice(client: Client, pk: Any) -> Invoice:
    invoice = portal.invoice_for(client, pk)
    if invoice is None:
        raise Http404
    return invoice


@private
@rate_limited
@require_GET
def open_link(request: HttpRequest, token: str) -> HttpResponse:
    """The link in an email: keep it in the portal's cookie, then show the portal."""
    try:
        read_token(token)
    except LinkInvalid:
        return _render(request, "link_invalid.html", {}, status=404)
    except LinkExpired:
        return _expired(request)
    response = HttpResponseSeeOther(_portal_path())
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(billing_settings.PORTAL_LINK_MAX_AGE.total_seconds()),
        path=_portal_path(),
        secure=request.is_secure(),
        httponly=True,
        samesite="Lax",
    )
    return response


@portal_page
@rate_limited
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The client's invoices on every site, newest first, with their receipts."""
    client = _client_of(request)
    if isinstance(client, HttpResponse):
        return client
    invoices = list(portal.invoices_for(client).prefetch_related("payments", "refunds"))
    with translation.override(_language(request, client)):  # amounts in the client's locale
        rows = [_row(invoice) for invoice in invoices]
    return _render(request, "home.html", {"client": client, "rows": rows})


def _row(invoice: Invoice) -> dict[str, Any]:
    """What the portal shows of one invoice."""
    refunds = [
        r
        for r in invoice.refunds.all()
        if r.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING)
    ]
    return {
        "invoice": invoice,
        "site_name": site_display_name(invoice.site),
        # What the client pays: after any discount, with any tax rate's tax.
        "amount": emails.payable_amount(invoice),
        "status": invoice.effective_status_definition,
        "payable": invoice.is_payable,
        "payments": list(invoice.payments.all()),
        "refunds": refunds,
        "manageable": bool(
            invoice.is_recurring
            and invoice.subscription_id
            and invoice.customer_id
            and invoice.subscription_is_live
        ),
    }


@portal_page
@rate_limited
@require_GET
def pay(request: HttpRequest, pk: int) -> HttpResponse:
    """Pay one of the client's invoices: on to its payment link, which opens Checkout
    (or says why it cannot)."""
    client = _client_of(request)
    if isinstance(client, HttpResponse):
        return client
    invoice = _client_invoice(client, pk)
    return HttpResponseSeeOther(
        reverse("wagtail_client_billing:pay", kwargs={"token": invoice.token})
    )


@portal_page
@rate_limited
@require_POST
def manage_subscription(request: HttpRequest, pk: int) -> HttpResponse:
    """Open Stripe's customer portal for one of the client's subscriptions (update the
    card, cancel), on its connected account; Stripe sends the client back here."""
    client = _client_of(request)
    if isinstance(client, HttpResponse):
        return client
    invoice = _client_invoice(client, pk)
    return_url = invoice.site.root_url.rstrip("/") + _portal_path()
    try:
        url = portal.customer_portal_url(invoice, return_url)
    except portal.PortalUnavailable as exc:
        response = _render(
            request,
            "unavailable.html",
            {"client": client, "message": str(exc), "retryable": exc.retryable},
            status=503 if exc.retryable else 409,
        )
        if exc.retryable:
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return HttpResponseSeeOther(url)


@portal_page
@rate_limited
@require_GET
def invoice_pdf(request: HttpRequest, pk: int) -> HttpResponse | FileResponse:
    """The PDF of one of the client's invoices: the very file their email carried."""
    client = _client_of(request)
    if isinstance(client, HttpResponse):
        return client
    return documents.pdf_response(_client_invoice(client, pk), as_attachment=False)


@portal_page
@rate_limited
@require_GET
def receipt_pdf(request: HttpRequest, pk: int, kind: str, item: int) -> HttpResponse:
    """The PDF receipt of one payment (``kind`` "payment") or refund ("refund") of one
    of the client's invoices, in the client's language; another's is a 404."""
    client = _client_of(request)
    if isinstance(client, HttpResponse):
        return client
    invoice = _client_invoice(client, pk)
    if kind == "payment":
        payment = invoice.payments.filter(pk=item).first()
        if payment is None:
            raise Http404
        amount, currency, at = payment.amount, payment.currency, payment.paid_at
    else:
        refund = invoice.refunds.filter(pk=item, status=RefundStatus.SUCCEEDED).first()
        if refund is None:
            raise Http404
        amount, currency, at = refund.amount, refund.currency, refund.created_at
    with translation.override(_language(request, client)):
        data = documents.receipt_pdf(
            invoice, refund=kind == "refund", amount=amount, currency=currency, at=at
        )
    response = HttpResponse(data, content_type=documents.PDF_MIMETYPE)
    filename = documents.pdf_filename(invoice, f"{kind}-{item}-receipt")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@portal_page
@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """Forget the portal link in this browser."""
    url = reverse("wagtail_client_billing:portal_request_link") + "?signed_out=1"
    return _forget(HttpResponseSeeOther(url))


class LinkRequestForm(forms.Form):
    # Translators: client-facing.
    email = forms.EmailField(label=_("Your email address"), max_length=254)


@portal_page
@rate_limited
@require_http_methods(["GET", "POST"])
def request_link(request: HttpRequest) -> HttpResponse:
    """ "Send me a new link": the same answer for every address, and the email queued."""
    if request.method == "GET":
        context = {"form": LinkRequestForm(), "signed_out": "signed_out" in request.GET}
        return _render(request, "request_link.html", context)
    verdict = ratelimit.count(
        f"portal-link:address:{ratelimit.client_address(request)}",
        billing_settings.PORTAL_LINK_REQUESTS_PER_ADDRESS,
        LINK_REQUEST_WINDOW,
    )
    form = LinkRequestForm(request.POST)
    if verdict.allowed and form.is_valid():
        email = form.cleaned_data["email"].strip().lower()
        verdict = ratelimit.count(
            f"portal-link:email:{email}",
            billing_settings.PORTAL_LINK_REQUESTS_PER_EMAIL,
            LINK_REQUEST_WINDOW,
        )
        if verdict.allowed:
            portal.request_link(email, Site.find_for_request(request))
            return _render(request, "link_sent.html", {})
    if not verdict.allowed:
        response = _render(
            request,
            "link_rate_limited.html",
            {"retry_minutes": max(1, verdict.retry_after // 60)},
            status=429,
        )
        response["Retry-After"] = str(verdict.retry_after)
        return response
    return _render(request, "request_link.html", {"form": form}, status=400)
