"""The catalogue: each site's saved products, managed as snippets under Client billing.

Every screen (listing, add, edit, delete, history, the snippet chooser) is limited to the
sites the editor may bill for (:func:`.scope.products_for_user`), as invoices are;
managing products needs Django's ``add/change/delete_product`` permissions. Prices are
typed in the currency's main unit and stored in minor units.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.panels import FieldPanel, FieldRowPanel, ObjectList
from wagtail.admin.ui.tables import BooleanColumn, Column
from wagtail.models import Site
from wagtail.snippets.views.snippets import (
    CreateView,
    DeleteView,
    EditView,
    HistoryView,
    IndexView,
    SnippetViewSet,
    UsageView,
)

from .conf import billing_settings
from .forms.fields import SiteChoiceField
from .forms.lines import parse_unit_price
from .models import Product, site_display_name
from .money import currency_choices, to_major
from .scope import products_for_user, site_choices
from .viewsets_scoped import scoped_chooser_viewset, scoped_object_view


class ProductForm(WagtailAdminModelForm):
    """A catalogue product: one of the editor's sites, a price in the main unit."""

    site = SiteChoiceField(label=_("Site"), queryset=Site.objects.none())
    currency = forms.ChoiceField(label=_("Currency"), choices=())
    unit_price = forms.CharField(
        label=_("Unit price"),
        max_length=20,
        help_text=_("In the currency's main unit, such as 15 or 15.50."),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )

    class Meta:
        model = Product
        fields = ["site", "name", "description", "currency", "active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = site_choices(self.for_user)
        self.fields["currency"].choices = currency_choices(billing_settings.CURRENCIES)
        instance = self.instance
        if instance.pk and not self.is_bound:
            self.initial["unit_price"] = str(to_major(instance.unit_amount, instance.currency))

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean()
        currency, raw = cleaned.get("currency"), cleaned.get("unit_price")
        if currency and raw is not None and "unit_price" not in self.errors:
            try:
                self.instance.unit_amount = parse_unit_price(raw, currency)
            except ValidationError as exc:
                self.add_error("unit_price", exc)
            else:
                if self.instance.unit_amount == 0:
                    self.add_error("unit_price", gettext("Enter a price greater than zero."))
        return cleaned


def _products_with_sites(user: Any) -> QuerySet[Product]:
    return products_for_user(user, Product.objects.select_related("site"))


class _ScopedQuerySet:
    """Load products only from the sites the user may bill for: another site's is a 404.
    (Wagtail's edit and delete views load their object through ``get_queryset``.)"""

    request: Any

    def get_queryset(self) -> QuerySet[Product]:
        return _products_with_sites(self.request.user)


class ProductIndexView(IndexView):
    def get_base_queryset(self) -> QuerySet[Product]:
        return products_for_user(self.request.user, super().get_base_queryset())


class ProductCreateView(CreateView):
    pass


class ProductEditView(_ScopedQuerySet, EditView):
    pass


class ProductDeleteView(_ScopedQuerySet, DeleteView):
    pass


class SiteNameColumn(Column):
    def get_value(self, instance: Product) -> str:
        return site_display_name(instance.site)


class PriceColumn(Column):
    def get_value(self, instance: Product) -> str:
        return instance.formatted_unit_amount


class ProductViewSet(SnippetViewSet):
    """Catalogue products, per site: saved items an editor adds to billing requests."""

    model = Product
    icon = "list-ul"
    menu_label = _("Catalogue")
    menu_name = "client-billing-catalogue"
    url_prefix = "client-billing/catalogue"
    url_namespace = "wagtail_client_billing_catalogue"
    add_to_admin_menu = False
    index_view_class = ProductIndexView
    add_view_class = ProductCreateView
    edit_view_class = ProductEditView
    delete_view_class = ProductDeleteView
    history_view_class = scoped_object_view(HistoryView, products_for_user)
    usage_view_class = scoped_object_view(UsageView, products_for_user)
    chooser_viewset_class = scoped_chooser_viewset(
        Product, products_for_user, listed=_products_with_sites
    )
    copy_view_enabled = False
    list_display = [
        "name",
        PriceColumn("unit_amount", label=_("Unit price"), sort_key="unit_amount"),
        SiteNameColumn("site", label=_("Site")),
        BooleanColumn("active", label=_("Active"), sort_key="active"),
    ]
    # No site filter: django-filter would list every site's name, not the editor's.
    list_filter = ["currency", "active"]
    search_fields = ["name", "description"]
    search_backend_name = None
    ordering = ["name"]
    edit_handler = ObjectList(
        [
            FieldPanel("site"),
            FieldPanel("name"),
            FieldPanel("description"),
            FieldRowPanel([FieldPanel("currency"), FieldPanel("unit_price")]),
            FieldPanel("active"),
        ],
        base_form_class=ProductForm,
    )
