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
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from wagtail.admin import messages
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.panels import FieldPanel, FieldRowPanel, ObjectList
from wagtail.admin.ui.tables import BooleanColumn, Column
from wagtail.log_actions import log
from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.snippets.views import chooser as chooser_views
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


class TaxRateIndexView(IndexView):
    def get_base_queryset(self) -> QuerySet[TaxRate]:
        return tax_rates_for_user(self.request.user).filter(active=True)


class TaxRateEditView(EditView):
    """Saving a change makes a new rate and archives this one (Stripe's rule)."""

    def get_queryset(self) -> QuerySet[TaxRate]:
        return tax_rates_for_user(self.request.user).filter(active=True)

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
        return tax_rates_for_user(self.request.user).filter(active=True)

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


class _ScopedObject:
    """Load the rate of the URL from the sites the user may bill for, or 404."""

    request: Any
    kwargs: dict[str, Any]
    pk_url_kwarg = "pk"

    def get_object(self, queryset: Any = None) -> TaxRate:
        pk = unquote(str(self.kwargs[self.pk_url_kwarg]))
        rate: TaxRate = get_object_or_404(tax_rates_for_user(self.request.user), pk=pk)
        return rate


class TaxRateHistoryView(_ScopedObject, HistoryView):
    pass


class TaxRateUsageView(_ScopedObject, UsageView):
    pass


class _ScopedChooser:
    """Wagtail's snippet chooser, limited to the rates of the user's sites (and no
    creation from a modal: a rate is made on its own form)."""

    request: Any

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        policy = ModelPermissionPolicy(TaxRate)
        if not policy.user_has_any_permission(request.user, {"add", "change", "delete", "view"}):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def get_object_list(self) -> QuerySet[TaxRate]:
        return tax_rates_for_user(self.request.user).filter(active=True)

    def get_object(self, pk: Any) -> TaxRate:
        return tax_rates_for_user(self.request.user).get(pk=pk)

    def get_objects(self, pks: Any) -> QuerySet[TaxRate]:
        return tax_rates_for_user(self.request.user).filter(pk__in=pks)

    def can_create(self) -> bool:
        return False


class TaxRateChooseView(_ScopedChooser, chooser_views.ChooseView):
    pass


class TaxRateChooseResultsView(_ScopedChooser, chooser_views.ChooseResultsView):
    pass


class TaxRateChosenView(_ScopedChooser, chooser_views.SnippetChosenView):
    pass


class TaxRateChosenMultipleView(_ScopedChooser, chooser_views.SnippetChosenMultipleView):
    pass


class TaxRateChooserViewSet(chooser_views.SnippetChooserViewSet):
    choose_view_class = TaxRateChooseView
    choose_results_view_class = TaxRateChooseResultsView
    chosen_view_class = TaxRateChosenView
    chosen_multiple_view_class = TaxRateChosenMultipleView
    create_action_label = None

    def get_urlpatterns(self) -> list[Any]:
        return [
            pattern
            for pattern in super().get_urlpatterns()
            if getattr(pattern, "name", None) != "create"
        ]


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
    history_view_class = TaxRateHistoryView
    usage_view_class = TaxRateUsageView
    chooser_viewset_class = TaxRateChooserViewSet
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
