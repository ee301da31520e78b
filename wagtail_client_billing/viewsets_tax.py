"""Tax rates as Wagtail snippets: Client billing → Tax rates.

An editor defines a site's rates here (name, percentage, inclusive or not, country and
region). Stripe never changes a tax rate's percentage, so neither does this screen:
saving a change makes a new rate and archives the old one (``billing.taxes.revise``),
and "Delete" archives (requests that used a rate keep their own copy of its figures).
Only rates of the sites the editor may bill for are listed or offered.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from wagtail.admin import messages
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.panels import FieldPanel, FieldRowPanel, ObjectList
from wagtail.admin.ui.tables import BooleanColumn, Column
from wagtail.log_actions import log
from wagtail.snippets.views.snippets import (
    DeleteView,
    EditView,
    HistoryView,
    IndexView,
    SnippetViewSet,
    UsageView,
)

from .billing import taxes
from .forms.fields import SiteChoiceField
from .models import Invoice, TaxRate
from .money import to_major
from .scope import site_choices
from .viewsets_scoped import scoped_chooser_viewset, scoped_object_view

ICON = "client-billing"

#: The invoice export's tax and discount columns (``billed_figures``), in major units.
EXPORT_FIGURES = ["discount", "net", "tax", "total", "tax_name"]
EXPORT_FIGURE_HEADINGS = {
    "discount": gettext_lazy("Discount"),
    "net": gettext_lazy("Net"),
    "tax": gettext_lazy("Tax"),
    "total": gettext_lazy("Total"),
    "tax_name": gettext_lazy("Tax rate"),
}


def export_figures(invoice: Invoice) -> dict[str, Any]:
    """An invoice's export columns for :data:`EXPORT_FIGURES` (empty where unknown)."""
    row: dict[str, Any] = {
        name: "" if value is None else to_major(value, invoice.currency)
        for name, value in invoice.billed_figures.items()
    }
    if invoice.automatic_tax:
        row["tax_name"] = _("Stripe Tax")
    else:
        row["tax_name"] = invoice.tax_label if invoice.tax_percentage is not None else ""
    return row


class TaxRateForm(WagtailAdminModelForm):
    site = SiteChoiceField(label=gettext_lazy("Site"), queryset=TaxRate.objects.none())

    class Meta:
        model = TaxRate
        fields = ["site", "display_name", "percentage", "inclusive", "country", "state"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = site_choices(self.for_user)
        if self.instance.pk:
            self.fields["site"].disabled = True
        self.fields["percentage"].widget = forms.TextInput(
            attrs={"inputmode": "decimal", "autocomplete": "off"}
        )
        self.fields["percentage"].help_text = _("Such as 20 or 8.875: at most four decimal places.")

    def clean_country(self) -> str:
        value = (self.cleaned_data.get("country") or "").strip().upper()
        if value and not (len(value) == 2 and value.isalpha() and value.isascii()):
            raise forms.ValidationError(_("Enter a two-letter country code, such as DE."))
        return value

    def clean_state(self) -> str:
        value = (self.cleaned_data.get("state") or "").strip().upper()
        if value and not value.isalnum():
            raise forms.ValidationError(_("Enter the region's code, such as CA."))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean()
        if cleaned.get("state") and not cleaned.get("country"):
            self.add_error("country", _("A region needs its country."))
        return cleaned


def tax_rates_for_user(user: Any) -> QuerySet[TaxRate]:
    return TaxRate.objects.filter(site__in=site_choices(user).values("pk")).select_related("site")


def active_tax_rates_for_user(user: Any) -> QuerySet[TaxRate]:
    """The rates an editor may still pick (an archived one is kept for history only)."""
    return tax_rates_for_user(user).filter(active=True)


class TaxRateIndexView(IndexView):
    def get_base_queryset(self) -> QuerySet[TaxRate]:
        return active_tax_rates_for_user(self.request.user)


class TaxRateEditView(EditView):
    """Saving a change makes a new rate and archives this one (Stripe's rule)."""

    def get_queryset(self) -> QuerySet[TaxRate]:
        return active_tax_rates_for_user(self.request.user)

    object: TaxRate

    def save_instance(self) -> TaxRate:
        stored = TaxRate.objects.get(pk=self.object.pk)
        changes = {name: self.form.cleaned_data[name] for name in TaxRate.VERSIONED_FIELDS}
        new = taxes.revise(stored, changes)
        if new.pk != stored.pk:
            log(instance=new, action="wagtail.create", user=self.request.user)
        self.object = new
        return new

    def get_success_message(self, instance: Any = None) -> str:
        return _("Tax rate “%(rate)s” saved. Requests already sent keep their tax.") % {
            "rate": self.object
        }


class TaxRateDeleteView(DeleteView):
    """ "Delete" archives: the rate is no longer offered, and is archived on Stripe."""

    def get_queryset(self) -> QuerySet[TaxRate]:
        return active_tax_rates_for_user(self.request.user)

    template_name = "wagtail_client_billing/admin/tax_rates/delete.html"
    usage_url_name = None

    def get_usage_url(self) -> None:
        return None

    def get_usage(self) -> None:
        return None

    def form_valid(self, form: Any) -> HttpResponse:
        taxes.archive(self.object)
        messages.success(self.request, self.get_success_message())
        return redirect(self.get_success_url())

    def get_success_message(self) -> str:
        return _("Tax rate “%(rate)s” archived. Requests already sent keep their tax.") % {
            "rate": self.object
        }


class TaxRateViewSet(SnippetViewSet):
    model = TaxRate
    icon = ICON
    menu_label = gettext_lazy("Tax rates")
    menu_name = "client-billing-tax-rates"
    url_prefix = "client-billing/tax-rates"
    url_namespace = "wagtail_client_billing_tax_rates"
    add_to_admin_menu = False
    index_view_class = TaxRateIndexView
    edit_view_class = TaxRateEditView
    delete_view_class = TaxRateDeleteView
    history_view_class = scoped_object_view(HistoryView, tax_rates_for_user)
    usage_view_class = scoped_object_view(UsageView, tax_rates_for_user)
    chooser_viewset_class = scoped_chooser_viewset(
        TaxRate, tax_rates_for_user, listed=active_tax_rates_for_user
    )
    copy_view_enabled = False
    inspect_view_enabled = False
    list_display = [
        "display_name",
        Column("percentage", label=gettext_lazy("Percentage")),
        BooleanColumn("inclusive", label=gettext_lazy("Included in prices")),
        "country",
        "state",
        Column("site", label=gettext_lazy("Site")),
    ]
    edit_handler = ObjectList(
        [
            FieldPanel("site"),
            FieldPanel("display_name"),
            FieldRowPanel([FieldPanel("percentage"), FieldPanel("inclusive")]),
            FieldRowPanel([FieldPanel("country"), FieldPanel("state")]),
        ],
        base_form_class=TaxRateForm,
    )
