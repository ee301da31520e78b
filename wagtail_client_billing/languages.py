"""The client's language: which one an invoice speaks, and its dates in that language.

Everything a client reads about an invoice (its emails, its pages, its PDF, Stripe
Checkout) is in one language, :func:`invoice_language`: the language an editor chose on
the billing request, else :func:`default_language` of its site and client. That rule
lives here and nowhere else.

Amounts are formatted by :func:`.money.format_money` and dates by :func:`format_date`
and :func:`format_datetime` here, both with Babel (CLDR data) in the active language, so
a German invoice reads ``1.234,56 €`` and ``3. Dezember 2026``. Templates use the
``client_date`` and ``client_datetime`` filters of ``client_billing_tags``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from babel import dates as babel_dates
from django.conf import settings
from django.utils import timezone

from .models import site_language
from .money import current_locale

if TYPE_CHECKING:
    from wagtail.models import Site

    from .models import Invoice


def available_language(code: str | None) -> str | None:
    """``code`` as the project's ``LANGUAGES`` spell it, else its base language's entry
    (``de-at`` -> ``de``), else ``None``: a language the project does not offer."""
    if not code:
        return None
    wanted = code.strip().lower().replace("_", "-")
    offered = {language.lower(): language for language, _name in settings.LANGUAGES}
    if wanted in offered:
        return offered[wanted]
    return offered.get(wanted.split("-")[0])


def default_language(site: Site, client_language: str | None = None) -> str:
    """The language of a billing request that names none: the client's own language
    (when the project offers it), else the site's (its root page's locale under
    Wagtail's i18n, :func:`.models.site_language`), else ``LANGUAGE_CODE``."""
    return (
        available_language(client_language)
        or available_language(site_language(site))
        or settings.LANGUAGE_CODE
    )


def client_language_of(invoice: Invoice) -> str | None:
    """The language of the invoice's client in the directory, if it names one."""
    client = invoice.client
    return (client.language or None) if client is not None else None


def invoice_language(invoice: Invoice) -> str:
    """The language everything client-facing about ``invoice`` is in: the one chosen on
    the request (when the project still offers it), else :func:`default_language`."""
    return available_language(invoice.language) or default_language(
        invoice.site, client_language_of(invoice)
    )


def language_choices() -> list[tuple[str, Any]]:
    """The project's ``LANGUAGES`` as form choices, each in its own name."""
    return [(code, name) for code, name in settings.LANGUAGES]


def language_name(code: str) -> str:
    """The name ``LANGUAGES`` gives ``code``, else the code itself."""
    return str(dict(language_choices()).get(code, code))


# --- dates in the active language ------------------------------------------------------------


def format_date(value: date | datetime | None, locale: str | None = None) -> str:
    """``3. Dezember 2026``: a date (a datetime in the project's time zone) in the given
    (or active) language's long form; ``""`` for none."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return babel_dates.format_date(value, format="long", locale=locale or current_locale())


def format_datetime(value: datetime | None, locale: str | None = None) -> str:
    """``3. Dezember 2026, 14:30 UTC``: the long date and the short time in the
    project's time zone, joined as the language joins them, with the zone's name."""
    if value is None:
        return ""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    name = locale or current_locale()
    pattern = str(babel_dates.get_datetime_format("long", locale=name))
    text = (
        pattern.replace("'", "")
        .replace("{0}", babel_dates.format_time(local, format="short", locale=name))
        .replace("{1}", babel_dates.format_date(local.date(), format="long", locale=name))
    )
    zone = local.tzname() if timezone.is_aware(local) else ""
    return f"{text} {zone}".strip() if zone else text
