"""Form fields the app's forms and filters share: a web address, a site, an amount of money,
a list of email addresses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from wagtail.models import Site
from wagtail.snippets.widgets import AdminSnippetChooser

from ..emails import InvalidAddress, check_address
from ..models import site_display_name, site_label, split_addresses
from ..money import (
    MAXIMUM_AMOUNT,
    THREE_DECIMAL,
    MoneyError,
    exponent,
    format_money,
    minimum_amount,
    to_minor,
)

#: ASCII digits, optionally a decimal point and more digits. Nothing else: no sign, no
#: exponent, and no digits of other scripts (``\d`` would take "١٢٣" as 123).
MONEY_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")


def parse_money(raw: str, currency: str, *, invalid: str, free: bool = False) -> int:
    """An amount typed in the currency's main unit (``"125.50", "USD"`` -> ``12550``), or
    a ``ValidationError`` an editor can act on: the one reading of typed money, for a
    request's amount, a line's unit price (``free``: zero allowed, no minimum) and a
    refund.

    Checks, in order: a plain number (else ``invalid``), not zero, the currency's
    decimal places, Stripe's minimum (unless ``free``) and maximum for the currency, and
    the trailing zero Stripe needs in three-decimal currencies. The limits are named in
    the editor's locale.
    """
    raw = (raw or "").strip()
    if raw.startswith("-") and not free:
        raise ValidationError(gettext("Enter an amount greater than zero."), code="negative")
    if not MONEY_RE.match(raw):
        raise ValidationError(invalid, code="invalid")
    value = Decimal(raw)
    if value == 0 and not free:
        raise ValidationError(gettext("Enter an amount greater than zero."), code="zero")
    digits = exponent(currency)
    try:
        minor = to_minor(value, currency)
    except MoneyError as exc:
        if digits == 0:
            message = gettext("%(currency)s amounts have no decimal places.") % {
                "currency": currency
            }
        else:
            message = ngettext(
                "%(currency)s amounts have at most %(digits)d decimal place.",
                "%(currency)s amounts have at most %(digits)d decimal places.",
                digits,
            ) % {"currency": currency, "digits": digits}
        raise ValidationError(message, code="decimal_places") from exc
    if not free and minor < minimum_amount(currency):
        raise ValidationError(
            gettext("The minimum for %(currency)s is %(limit)s.")
            % {"currency": currency, "limit": format_money(minimum_amount(currency), currency)},
            code="min_amount",
        )
    if minor > MAXIMUM_AMOUNT:
        raise ValidationError(
            gettext("The maximum for %(currency)s is %(limit)s.")
            % {"currency": currency, "limit": format_money(MAXIMUM_AMOUNT, currency)},
            code="max_amount",
        )
    if currency in THREE_DECIMAL and minor % 10:
        raise ValidationError(
            gettext("%(currency)s amounts must end in 0: Stripe charges them to 0.01.")
            % {"currency": currency},
            code="three_decimal",
        )
    return minor


#: A web address a browser may be sent to.
HTTP_URL_RE = re.compile(r"^https?://", re.IGNORECASE)


class HttpURLField(forms.URLField):
    """A URL that must start with ``http://`` or ``https://``, as typed.

    Django's ``URLField`` adds a scheme to ``client.example/path`` and ``//host/path``
    and accepts ``ftp:``. These addresses are shown to people who pay (Stripe's links to
    the account's policies) or are where the client is sent after paying, so only
    absolute web addresses are accepted: never a guess, a ``javascript:`` trap or a
    download.
    """

    default_validators = [URLValidator(schemes=["http", "https"])]
    default_error_messages = {
        "scheme": _("Enter a web address starting with http:// or https://."),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("assume_scheme", "https")
        kwargs.setdefault("max_length", 2000)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        value = (value or "").strip()
        if value and not HTTP_URL_RE.match(value):
            raise ValidationError(self.error_messages["scheme"], code="scheme")
        result: str | None = super().to_python(value)
        return result or ""


class SiteSelect(forms.Select):
    """Django's ``<select>``, its options written in one pass instead of through a
    template each: a site filter offers every site the editor may bill for, thousands
    for an agency, and rendering each option through the template engine (with
    :class:`SiteChoiceField`'s model instance each) took seconds at 10,000 sites.

    The markup is that of Django's ``Select`` for flat choices (no option groups); a
    single value, as a site field or filter has.
    """

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        chosen = set(self.format_value(value))
        options = format_html_join(
            "\n",
            '<option value="{}"{}>{}</option>',
            (
                (key, " selected" if key in chosen else "", label)
                for key, label in ((str(v), label) for v, label in self.choices)
            ),
        )
        final_attrs = self.build_attrs(self.attrs, attrs)
        return format_html(
            '<select name="{}"{}>\n{}\n</select>', name, flatatt(final_attrs), options
        )


class _SiteChoices(forms.models.ModelChoiceIterator):
    """``(pk, name)`` of each site from one query of two columns, without a model
    instance each (:class:`SiteChoiceField` looks a chosen site up when it cleans it)."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        rows = self.queryset.values_list("pk", "site_name", "hostname")
        for pk, site_name, hostname in rows.iterator():
            yield (pk, site_label(site_name, hostname))


class SiteChoiceField(forms.ModelChoiceField):
    """A choice of Wagtail sites, each named as everywhere else in the app."""

    widget = SiteSelect
    iterator = _SiteChoices

    def label_from_instance(self, obj: Site) -> str:
        return site_display_name(obj)


def clean_address_list(raw: str) -> str:
    """Plain addresses separated by commas, semicolons or line breaks, as stored: one a
    line, without repeats; a ``ValidationError`` naming those that are not plain
    addresses (a display name, several in one, a control character)."""
    addresses = split_addresses(raw or "")
    wrong = []
    for address in addresses:
        try:
            name, _plain = check_address(address)
        except InvalidAddress:
            wrong.append(address)
        else:
            if name or "<" in address:
                wrong.append(address)
    if wrong:
        raise ValidationError(
            gettext("Not an email address: %(addresses)s. Enter plain addresses, one a line.")
            % {"addresses": ", ".join(wrong)},
            code="invalid",
        )
    return "\n".join(addresses)


class ScopedChooser(AdminSnippetChooser):
    """Wagtail's snippet chooser whose value is read back only from ``queryset`` (the
    objects the editor may see): a form sent back with another object's id, or with
    nonsense, shows an empty chooser instead of that object's name (or a server error)."""

    def __init__(self, model: Any, queryset: Any, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.queryset = queryset

    def get_instance(self, value: Any) -> Any:
        if value is None or isinstance(value, self.model_class):
            return value
        if not str(value).isdigit():
            return None
        return self.queryset.filter(pk=int(value)).first()
