"""The request form's tax and discount fields, and their rules.

:class:`TaxDiscountFormMixin` is mixed into the Add billing request form. It offers the
chosen site's active tax rates when the site taxes with its own rates, copies the chosen
rate's figures into the request (a later change of the rate never changes it), turns on
Stripe Tax when the site uses it, parses the discount (an amount in the currency's main
unit, or a percentage), and refuses a discount that brings the total under Stripe's
minimum charge for the currency. The figures are :mod:`..pricing`'s, as everywhere.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm

from .. import pricing
from ..models import (
    ClientBillingSettings,
    DiscountDuration,
    DiscountKind,
    Invoice,
    TaxMode,
    TaxRate,
)
from ..money import THREE_DECIMAL, MoneyError, format_money, minimum_amount, to_major, to_minor
from .lines import line_forms

#: A plain non-negative number: digits, optionally a point and more digits.
NUMBER_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")


class TaxRateChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: TaxRate) -> str:
        return str(obj)


class TaxDiscountFormMixin(WagtailAdminModelForm):
    """Tax rate and discount fields; ``priced_lines`` gives the lines they apply to."""

    tax_rate = TaxRateChoiceField(
        label=_("Tax rate"),
        queryset=TaxRate.objects.none(),
        required=False,
        empty_label=_("No tax"),
        help_text=_("Applied to every line. Manage the rates under Client billing → Tax rates."),
    )
    discount_kind = forms.ChoiceField(
        label=_("Discount"), choices=DiscountKind.choices, required=False
    )
    discount_value = forms.CharField(
        label=_("Discount amount or percentage"),
        max_length=20,
        required=False,
        help_text=_(
            "An amount in the currency's main unit (such as 20 or 12.50), or a percentage."
        ),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    discount_duration = forms.ChoiceField(
        label=_("For recurring billing, the discount applies to"),
        choices=DiscountDuration.choices,
        required=False,
        initial=DiscountDuration.ONCE,
    )

    instance: Invoice

    def limit_tax_rates(self, site: Any) -> None:
        """Offer the active rates of ``site`` (none while no site is chosen)."""
        rates = TaxRate.objects.active().filter(site=site) if site is not None else None
        self.fields["tax_rate"].queryset = rates if rates is not None else TaxRate.objects.none()

    def initial_discount(self) -> None:
        """Show a copied request's discount as it was set, and its tax rate as it is now."""
        instance = self.instance
        if self.is_bound:
            return
        source = instance.copied_from
        rate = source.tax_rate if source is not None else None
        while rate is not None and not rate.active and rate.replaced_by_id:
            rate = rate.replaced_by  # the rate as it is now, if it was changed since
        if rate is not None and rate.active:
            self.initial["tax_rate"] = self.initial.get("tax_rate") or rate.pk
        if instance.discount_kind == DiscountKind.AMOUNT and instance.discount_amount:
            self.initial["discount_value"] = str(
                to_major(instance.discount_amount, instance.currency)
            )
        elif instance.discount_kind == DiscountKind.PERCENT and instance.discount_percent:
            self.initial["discount_value"] = str(instance.discount_percent.normalize())

    def priced_lines(self, cleaned: dict[str, Any]) -> list[tuple[int, int]] | None:
        """The request's lines as ``(unit_amount, quantity)`` pairs once they are valid
        (``forms.lines`` set each line's unit amount), else ``None``; without lines, its
        one amount."""
        kept = line_forms(self)
        if kept:
            if any(f.errors or f.instance.unit_amount is None for f in kept):
                return None
            return [(int(f.instance.unit_amount), int(f.cleaned_data["quantity"])) for f in kept]
        amount = cleaned.get("amount")
        return [(amount, 1)] if isinstance(amount, int) and "amount" not in self.errors else None

    def clean_tax_and_discount(self, cleaned: dict[str, Any]) -> None:
        """Copy the tax and discount into the instance; check the total they make."""
        site = cleaned.get("site")
        currency = cleaned.get("currency")
        instance = self.instance
        mode = TaxMode.NONE
        if site is not None:
            settings = ClientBillingSettings.objects.filter(site=site).only("tax_mode").first()
            mode = settings.tax_mode if settings else TaxMode.NONE
        rate = cleaned.get("tax_rate")
        instance.tax_rate = None
        instance.tax_name = ""
        instance.tax_percentage = None
        instance.tax_inclusive = False
        instance.automatic_tax = mode == TaxMode.STRIPE_TAX
        if mode == TaxMode.RATES and rate is not None:
            instance.tax_rate = rate
            instance.tax_name = rate.display_name
            instance.tax_percentage = rate.percentage
            instance.tax_inclusive = rate.inclusive
        cleaned["tax_rate"] = instance.tax_rate

        kind = cleaned.get("discount_kind") or DiscountKind.NONE
        instance.discount_kind = kind
        instance.discount_amount = None
        instance.discount_percent = None
        recurring = cleaned.get("billing_type") not in (None, "", "one_time")
        duration = cleaned.get("discount_duration") or DiscountDuration.ONCE
        instance.discount_duration = duration if recurring else DiscountDuration.ONCE
        cleaned["discount_duration"] = instance.discount_duration
        raw = (cleaned.get("discount_value") or "").strip()
        if kind in (DiscountKind.AMOUNT, DiscountKind.PERCENT):
            if not raw:
                self.add_error(
                    "discount_value", gettext("Enter the discount, or choose no discount.")
                )
                return
            if not NUMBER_RE.match(raw):
                self.add_error(
                    "discount_value",
                    gettext("Enter the discount as a number such as 20 or 12.50 (no sign)."),
                )
                return
            value = Decimal(raw)
            if kind == DiscountKind.PERCENT:
                if not 0 < value <= 100 or value != value.quantize(Decimal("0.01")):
                    self.add_error(
                        "discount_value",
                        gettext(
                            "Enter a percentage over 0 and up to 100, with at most two "
                            "decimal places."
                        ),
                    )
                    return
                instance.discount_percent = value
            elif currency:
                try:
                    minor = to_minor(value, currency)
                except MoneyError:
                    self.add_error(
                        "discount_value",
                        gettext("%(currency)s amounts cannot have that many decimal places.")
                        % {"currency": currency},
                    )
                    return
                if minor <= 0:
                    self.add_error("discount_value", gettext("Enter a discount over zero."))
                    return
                instance.discount_amount = minor
        lines = self.priced_lines(cleaned)
        if not currency or lines is None:
            return
        instance.currency = currency
        self.check_total(lines, currency)

    def check_total(self, lines: list[tuple[int, int]], currency: str) -> None:
        """Refuse a discount that leaves less than Stripe's minimum, or more than the
        subtotal; and, in three-decimal currencies, a total not ending in 0."""
        instance = self.instance
        discount = instance.pricing_discount()
        figures = pricing.compute(lines, currency, tax=instance.pricing_tax(), discount=discount)
        if discount is not None:
            if discount.amount_off is not None and discount.amount_off >= figures.subtotal:
                self.add_error(
                    "discount_value",
                    gettext("The discount must be less than the subtotal, %(subtotal)s.")
                    % {"subtotal": format_money(figures.subtotal, currency)},
                )
                return
            if figures.gross < minimum_amount(currency):
                self.add_error(
                    "discount_value",
                    gettext(
                        "With this discount the total is %(total)s, under Stripe's minimum "
                        "charge of %(minimum)s."
                    )
                    % {
                        "total": format_money(figures.gross, currency),
                        "minimum": format_money(minimum_amount(currency), currency),
                    },
                )
                return
        if currency.upper() in THREE_DECIMAL and figures.gross % 10:
            self.add_error(
                "discount_value" if discount is not None else "tax_rate",
                gettext(
                    "The total, %(total)s, must end in 0: Stripe charges %(currency)s to "
                    "0.01. Adjust the discount or the amounts."
                )
                % {"total": format_money(figures.gross, currency), "currency": currency},
            )
