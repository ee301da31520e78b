"""The lines of a billing request: one form per line, and the checks of them all.

Each line has a description, a whole quantity and a unit price typed in the currency's
main unit, optionally filled in from a product of the site's catalogue. The request's
currency and site are the parent form's, so the lines are checked there, by
:func:`clean_lines`: the unit prices are parsed into minor units, the catalogue product
must be of the request's site and currency, and the total must be one Stripe can charge.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.formsets import DELETION_FIELD_NAME
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm

from ..billing.lines import MAX_LINES_ONE_TIME, MAX_LINES_RECURRING
from ..models import InvoiceLine, Product, site_display_name
from ..money import (
    MAXIMUM_AMOUNT,
    THREE_DECIMAL,
    MoneyError,
    exponent,
    format_money,
    to_major,
    to_minor,
)
from ..scope import products_for_user, site_choices

#: The formset's name: the invoice's related name for its lines.
LINES = "lines"
#: ASCII digits, optionally a decimal point and more digits (as the request's amount).
PRICE_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")


class ProductChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Product) -> str:
        return gettext("%(name)s · %(price)s · %(site)s") % {
            "name": obj.name,
            "price": obj.formatted_unit_amount,
            "site": site_display_name(obj.site),
        }


class InvoiceLineForm(WagtailAdminModelForm):
    """One line. ``unit_price`` is text in major units; :func:`clean_lines` turns it into
    the line's ``unit_amount`` once the request's currency is known."""

    product = ProductChoiceField(
        label=_("From the catalogue"),
        queryset=Product.objects.none(),
        required=False,
        help_text=_("Fills in the description and unit price; you can still change them."),
    )
    description = forms.CharField(label=_("Description"), max_length=500, required=False)
    quantity = forms.IntegerField(
        label=_("Quantity"),
        min_value=1,
        max_value=MAXIMUM_AMOUNT,
        initial=1,
        widget=forms.NumberInput(attrs={"min": "1", "step": "1", "inputmode": "numeric"}),
    )
    unit_price = forms.CharField(
        label=_("Unit price"),
        max_length=20,
        required=False,
        help_text=_("In the currency's main unit, such as 15 or 15.50."),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )

    class Meta:
        model = InvoiceLine
        fields = ["product", "description", "quantity"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sites = site_choices(self.for_user)
        self.fields["product"].queryset = products_for_user(
            self.for_user, Product.objects.filter(active=True, site__in=sites)
        ).select_related("site")


def parse_unit_price(raw: str, currency: str) -> int:
    """``"15.50", "USD"`` -> ``1550``: a line's unit price, zero allowed (a free line)."""
    raw = (raw or "").strip()
    if not PRICE_RE.match(raw):
        raise ValidationError(
            gettext("Enter the price as a number such as 15 or 15.50 (no currency sign)."),
            code="invalid",
        )
    try:
        minor = to_minor(Decimal(raw), currency)
    except MoneyError as exc:
        digits = exponent(currency)
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


def without_lines_allowed(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """The request form's arguments, with an empty set of lines when the submitted data
    has none at all (a request posted the quick way, by a form or code that predates
    lines), so it is one amount and description, as before, rather than a formset error.
    """
    data = args[0] if args else kwargs.get("data")
    prefix = kwargs.get("prefix")
    name = f"{prefix}-{LINES}" if prefix else LINES
    if data is None or f"{name}-TOTAL_FORMS" in data:
        return args, kwargs
    data = data.copy()
    data.update({f"{name}-TOTAL_FORMS": "0", f"{name}-INITIAL_FORMS": "0"})
    if args:
        return (data, *args[1:]), kwargs
    return args, {**kwargs, "data": data}


def set_initial_prices(form: Any, currency: str) -> None:
    """Show the unit price of lines the request starts with (a copy's) in major units."""
    formset = form.formsets.get(LINES)
    if formset is None or form.is_bound or not currency:
        return
    for line_form in formset.forms:
        if line_form.instance.unit_amount is not None:
            line_form.initial["unit_price"] = str(
                to_major(line_form.instance.unit_amount, currency)
            )


def line_forms(form: Any) -> list[Any]:
    """The line forms of the request form that hold a line: not deleted, not left empty."""
    formset = form.formsets.get(LINES)
    if formset is None:
        return []
    formset.is_valid()  # cleans every line form once
    kept = []
    for line_form in formset.forms:
        if line_form.cleaned_data.get(DELETION_FIELD_NAME):
            continue
        if not line_form.has_changed():
            continue  # an added line left empty: Wagtail's formset ignores it too
        kept.append(line_form)
    return kept


def clean_lines(form: Any, currency: str | None, site: Any, recurring: bool) -> int | None:
    """Check the request's lines and set each line's unit amount; their total in minor
    units, or ``None`` when the request has no lines (the quick path: one amount).

    Errors go on the line's field, or on the request form when they are about the sum.
    """
    kept = line_forms(form)
    if not kept:
        return None
    limit = MAX_LINES_RECURRING if recurring else MAX_LINES_ONE_TIME
    if len(kept) > limit:
        form.add_error(
            None,
            ValidationError(
                ngettext(
                    "Stripe takes at most %(limit)d line on this billing type.",
                    "Stripe takes at most %(limit)d lines on this billing type.",
                    limit,
                )
                % {"limit": limit},
                code="too_many_lines",
            ),
        )
    total = 0
    for line_form in kept:
        data = line_form.cleaned_data
        product: Product | None = data.get("product")
        if product is not None:
            if site is not None and product.site_id != site.pk:
                line_form.add_error(
                    "product", gettext("This product is in another site's catalogue.")
                )
                continue
            if currency and product.currency.upper() != currency:
                line_form.add_error(
                    "product",
                    gettext("This product is priced in %(currency)s.")
                    % {"currency": product.currency.upper()},
                )
                continue
        if "description" in data and not data["description"].strip():
            if product is not None:
                data["description"] = product.line_description[:500]
            else:
                line_form.add_error("description", gettext("Describe the line for the client."))
        raw = (data.get("unit_price") or "").strip()
        unit_amount: int | None = None
        if not raw and product is not None:
            unit_amount = product.unit_amount
        elif not raw:
            line_form.add_error("unit_price", gettext("Enter the price of one."))
        elif currency:
            try:
                unit_amount = parse_unit_price(raw, currency)
            except ValidationError as exc:
                line_form.add_error("unit_price", exc)
        quantity = data.get("quantity")
        if unit_amount is None or not quantity or line_form.errors:
            continue
        if unit_amount * quantity > MAXIMUM_AMOUNT:
            line_form.add_error(
                "quantity",
                gettext("This line comes to more than Stripe's maximum of %(limit)s.")
                % {"limit": format_money(MAXIMUM_AMOUNT, currency or "USD")},
            )
            continue
        line_form.instance.description = data["description"].strip()
        line_form.instance.unit_amount = unit_amount
        total += unit_amount * quantity
    return total


def catalogue(user: Any) -> dict[str, dict[str, Any]]:
    """The active products ``user`` may bill with, for the form's script: what choosing
    one copies into a line, and which site and currency it is offered for."""
    products = products_for_user(user, Product.objects.filter(active=True)).filter(
        site__in=site_choices(user)
    )
    return {
        str(product.pk): {
            "description": product.line_description,
            "unit_price": str(to_major(product.unit_amount, product.currency)),
            "currency": product.currency.upper(),
            "site": product.site_id,
        }
        for product in products
    }


def currency_exponents(codes: list[str]) -> dict[str, int]:
    """Each offered currency's decimal places as Stripe counts them, for the live total."""
    return {code: exponent(code) for code in codes}
