"""Template helpers for the app's admin screens and its client-facing pages and emails."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _
from wagtail.models import Site

from .. import languages, models

register = template.Library()


@register.simple_tag
def relative_time(value: datetime | None) -> str:
    """``in 23 hours`` or ``2 days ago``, with the exact date as a tooltip.

    Wagtail's ``human_readable_date`` reads every future date as "just now", which is
    wrong for an invoice that expires tomorrow.
    """
    if not value:
        return ""
    now = timezone.now()
    if value > now:
        text = _("in %(time)s") % {"time": timeuntil(value, now, depth=1)}
    else:
        text = _("%(time)s ago") % {"time": timesince(value, now, depth=1)}
    exact = formats.date_format(timezone.localtime(value), "DATETIME_FORMAT")
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, text)


@register.filter
def site_display_name(site: Site) -> str:
    """``{{ invoice.site|site_display_name }}``: the site's name, else its host name."""
    return models.site_display_name(site)


@register.filter
def lifetime(value: Any) -> str:
    """A payment link's lifetime (a ``timedelta``) as "7 days" or "36 hours"."""
    from ..forms.due_dates import describe

    return describe(value) if value else ""


@register.simple_tag
def invoice_expiry(invoice: models.Invoice) -> str:
    """The Expires column: when the link runs out while the client can pay it, when it ran
    out for an expired invoice, and a dash for the others (paid, processing, deleted),
    whose link no longer has an expiry that matters."""
    if invoice.is_payable:
        return relative_time(invoice.expires_at)
    if invoice.effective_status == models.InvoiceStatus.EXPIRED:
        return relative_time(invoice.expired_at or invoice.expires_at)
    return format_html('<span aria-label="{}">—</span>', _("No expiry"))


@register.filter
def invoice_language(invoice: models.Invoice) -> str:
    """The inspect view's Language: ``Deutsch``, or ``Deutsch (automatic)`` when the
    editor left it to :func:`..languages.default_language`."""
    name = languages.language_name(languages.invoice_language(invoice))
    if languages.available_language(invoice.language):
        return name
    return _("%(language)s (automatic)") % {"language": name}


@register.filter
def client_date(value: Any) -> str:
    """``{{ invoice.due_date|client_date }}``: ``3. Dezember 2026`` in the active language
    (the invoice's, on the client's pages and in their emails), with Babel."""
    return languages.format_date(value) if value else ""


@register.filter
def client_datetime(value: Any) -> str:
    """``{{ invoice.expires_at|client_datetime }}``: ``3. Dezember 2026, 14:30 UTC``."""
    return languages.format_datetime(value) if value else ""
