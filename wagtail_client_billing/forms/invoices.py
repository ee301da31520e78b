"""The billing request forms: create (every field) and edit (description and note only).

Amounts are typed in the currency's major unit ("125.50") and stored in minor units.
The form parses them itself instead of using ``DecimalField``, which would accept
``1e3``, ``NaN`` and locale-dependent separators: an invoice amount is money a client
pays, so anything that is not plainly digits with an optional decimal point is an error
rather than a guess.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.models import Page, Site

from ..conf import billing_settings
from ..emails import InvalidAddress, check_address
from ..models import Client, ClientBillingSettings, Invoice, StripeAccount, site_display_name
from ..money import (
    MAXIMUM_AMOUNT,
    currency_choices,
    format_money,
    minimum_amount,
    to_major,
)
from ..scope import clients_for_user, pages_for_user, site_choices
from .due_dates import DueDateFormMixin
from .fields import HttpURLField, ScopedChooser, SiteChoiceField, parse_money
from .lines import clean_lines, set_initial_prices, without_lines_allowed
from .tax import TaxDiscountFormMixin


class PageChoiceField(forms.ModelChoiceField):
    """A page of the invoice's site, indented by its depth and marked when it is a draft."""

    def label_from_instance(self, obj: Page) -> str:
        title = obj.get_admin_display_title()
        if not obj.live:
            title = gettext("%(title)s (draft)") % {"title": title}
        return "\N{EN DASH} " * max(obj.depth - 2, 0) + title


def parse_amount(raw: str, currency: str) -> int:
    """``"125.50", "USD"`` -> ``12550``, or a ``ValidationError`` an editor can act on
    (:func:`.fields.parse_money`, within Stripe's minimum and maximum)."""
    return parse_money(
        raw,
        currency,
        invalid=gettext("Enter the amount as a number such as 125 or 125.50 (no currency sign)."),
    )


def test_only_site_ids(sites: Any) -> set[int]:
    """Of ``sites`` (ids or a queryset), those with a test account and no live one."""
    return set(
        ClientBillingSettings.objects.filter(
            site__in=sites, test_account__isnull=False, live_account__isnull=True
        ).values_list("site_id", flat=True)
    )


def account_problem(account: StripeAccount | None, site: Site, test_mode: bool) -> str | None:
    """Why an invoice cannot be sent with ``account``, or ``None`` when it can."""
    name = site_display_name(site)
    if account is None:
        if test_mode:
            return gettext(
                "%(site)s has no connected test Stripe account. Connect one in "
                "Settings → Client Billing → Stripe, or turn test mode off."
            ) % {"site": name}
        return gettext(
            "%(site)s has no connected live Stripe account. Connect one in "
            "Settings → Client Billing → Stripe, or use test mode."
        ) % {"site": name}
    if not account.can_charge:
        if account.deauthorized_at:
            reason = gettext("it was disconnected from the platform")
        elif not account.details_submitted:
            reason = gettext("its onboarding is not finished")
        else:
            reason = gettext("Stripe has restricted it until more information is provided")
        return gettext(
            "The Stripe account %(account)s of %(site)s cannot take payments yet: "
            "%(reason)s. See Settings → Client Billing → Stripe."
        ) % {"account": account.stripe_id, "site": name, "reason": reason}
    return None


class InvoiceCreateForm(TaxDiscountFormMixin, DueDateFormMixin, WagtailAdminModelForm):
    """A new billing request. Finds the site's Stripe account for the chosen mode.

    On a valid form, ``instance.account`` is the account the invoice will be charged
    through and ``instance.amount`` is in minor units; the view sets the rest
    (expiry, creator) when it saves.
    """

    site = SiteChoiceField(label=_("Site"), queryset=Site.objects.none())
    currency = forms.ChoiceField(label=_("Currency"), choices=())
    amount = forms.CharField(
        label=_("Amount"),
        max_length=20,
        required=False,
        help_text=_("In the currency's main unit, such as 125 or 125.50. With lines, their total."),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    success_url = HttpURLField(
        label=_("Success URL"), help_text=_("Where the client lands after paying.")
    )
    cancel_url = HttpURLField(
        label=_("Cancel URL"), help_text=_("Where the client lands if they cancel on Stripe.")
    )
    publish_page_when_paid = PageChoiceField(
        label=_("Publish this page when paid"),
        queryset=Page.objects.none(),
        required=False,
        help_text=_("A page of the invoice's site, published as you once the client pays."),
    )
    unpublish_page_when_expired = PageChoiceField(
        label=_("Unpublish this page when expired"),
        queryset=Page.objects.none(),
        required=False,
        help_text=_("A live page of the invoice's site, unpublished if the link expires unpaid."),
    )

    class Media:
        #: The lines' live total (a Stimulus controller on Wagtail's own application).
        js = ["wagtail_client_billing/admin/invoice-lines.js"]
        css = {"all": ["wagtail_client_billing/admin/invoices.css"]}

    class Meta:
        model = Invoice
        fields = [
            "site",
            "client",
            "email",
            "currency",
            "amount",
            "billing_type",
            "description",
            "success_url",
            "cancel_url",
            "test_mode",
            "publish_page_when_paid",
            "unpublish_page_when_expired",
            "note",
            "due_date",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        args, kwargs = without_lines_allowed(args, kwargs)
        super().__init__(*args, **kwargs)
        sites = site_choices(self.for_user)
        self.fields["site"].queryset = sites
        if not self.is_bound and not self.initial.get("site"):
            only = list(sites[:2])
            if len(only) == 1:  # nothing to choose: preselect the one site
                self.initial["site"] = only[0].pk
        self.fields["currency"].choices = currency_choices(billing_settings.CURRENCIES)
        self._limit_clients()
        self._limit_pages(sites)
        self.fields["test_mode"].help_text = _(
            "Uses the site's test Stripe account: no real money moves."
        )
        if "description" in self.fields:
            self.fields["description"].help_text = _(
                "Shown to the client in the email and on Stripe's payment page."
            )
        instance = self.instance
        if instance.amount and instance.currency and not self.is_bound:
            self.initial["amount"] = str(to_major(instance.amount, instance.currency))
        self.initial_discount()
        set_initial_prices(self, instance.currency)
        if not self.is_bound and instance.copied_from_id is None:
            site = self.initial.get("site")
            if site and test_only_site_ids([site]):
                # The only account is a test one: a live request could not be sent.
                self.initial["test_mode"] = True

    def _limit_clients(self) -> None:
        """The client is one the editor may see (Wagtail's chooser, scoped); without one,
        the address typed finds or adds the client when the request is saved."""
        client = self.fields["client"]
        choices = clients_for_user(self.for_user).filter(erased_at__isnull=True)
        client.queryset = choices
        client.help_text = _("Choose a client, or type a new client's email address below.")
        if getattr(Client, "snippet_viewset", None) is not None:
            client.widget = ScopedChooser(Client, choices)
        email = self.fields["email"]
        email.required = False
        email.help_text = _(
            "Where the billing request goes. Blank: the chosen client's billing email."
        )

    def clean_email(self) -> str:
        email: str = self.cleaned_data.get("email") or ""
        if not email:
            return email
        try:
            check_address(email)
        except InvalidAddress:
            raise ValidationError(_("Enter one email address."), code="invalid") from None
        return email

    def _limit_pages(self, sites: Any) -> None:
        """Offer the pages of the chosen site (of every site the editor may bill for while
        none is chosen); other sites' pages are neither listed nor accepted."""
        raw = self.data.get(self.add_prefix("site")) if self.is_bound else self.initial.get("site")
        site = sites.filter(pk=raw).first() if str(raw or "").isdigit() else None
        pages = pages_for_user(self.for_user, site=site)
        self.limit_tax_rates(site)
        self.fields["publish_page_when_paid"].queryset = pages
        self.fields["unpublish_page_when_expired"].queryset = pages.filter(live=True)

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean()
        if not cleaned.get("email") and "email" not in self.errors:
            client = cleaned.get("client")
            if client is not None:
                cleaned["email"] = client.email
            elif "client" not in self.errors:
                self.add_error(
                    "email",
                    ValidationError(
                        _("An email address is required: choose a client or type their address."),
                        code="required",
                    ),
                )
        currency = cleaned.get("currency")
        raw_amount = cleaned.get("amount")
        site = cleaned.get("site")
        recurring = cleaned.get("billing_type", "one_time") != "one_time"
        total = clean_lines(self, currency, site, recurring)
        if total is not None:
            # With lines, the amount is their total (the field is disabled in the form).
            self._check_total(total, currency)
            cleaned["amount"] = total
        elif not raw_amount and "amount" not in self.errors:
            # As before lines existed: the amount is required without them.
            required = self.fields["amount"].error_messages["required"]
            self.add_error("amount", ValidationError(required, code="required"))
        elif currency and raw_amount is not None and "amount" not in self.errors:
            try:
                cleaned["amount"] = parse_amount(raw_amount, currency)
            except ValidationError as exc:
                self.add_error("amount", exc)
        if site is not None:
            test_mode = bool(cleaned.get("test_mode"))
            settings = (
                ClientBillingSettings.objects.select_related("live_account", "test_account")
                .filter(site=site)
                .first()
            )
            account = settings.account_for(test_mode) if settings else None
            problem = account_problem(account, site, test_mode)
            if problem:
                self.add_error(None, ValidationError(problem, code="no_account"))
            else:
                self.instance.account = account
            self.clean_lifetime(site)
        self.clean_tax_and_discount(cleaned)
        return cleaned

    def _check_total(self, total: int, currency: str | None) -> None:
        """The lines' total must be one Stripe can charge in the currency."""
        if not currency:
            return
        problem = ""
        if total < minimum_amount(currency):
            problem = gettext("The minimum for %(currency)s is %(limit)s.") % {
                "currency": currency,
                "limit": format_money(minimum_amount(currency), currency),
            }
        elif total > MAXIMUM_AMOUNT:
            problem = gettext("The maximum for %(currency)s is %(limit)s.") % {
                "currency": currency,
                "limit": format_money(MAXIMUM_AMOUNT, currency),
            }
        if problem:
            message = gettext("The lines add up to %(total)s. %(problem)s") % {
                "total": format_money(total, currency),
                "problem": problem,
            }
            self.add_error(None, ValidationError(message, code="lines_total"))


class InvoiceEditForm(WagtailAdminModelForm):
    """After sending, only the description and the internal note may change."""

    class Meta:
        model = Invoice
        fields = ["description", "note"]
