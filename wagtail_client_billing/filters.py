"""Which invoices an editor may see, and the filters of the invoice listing.

Two things live here because every invoice screen needs both: the *scope* (the sites a
user may bill for, narrowed by the ``client_billing_sites_for_user`` hook) and the
listing's :class:`InvoiceFilterSet`. Views, forms and the settings tab import the scope
from here so that no screen forgets it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from wagtail.admin.filters import DateRangePickerWidget, WagtailFilterSet
from wagtail.models import Site

from . import hooks
from .conf import billing_settings
from .models import BillingType, Invoice, InvoiceStatus, Mode
from .money import currency_choices

if TYPE_CHECKING:
    from django.http import HttpRequest


def sites_for_user(user: Any) -> QuerySet[Site]:
    """The sites ``user`` may bill for: every site, unless a hook narrows them.

    The ``client_billing_sites_for_user`` hook gets ``(user, sites)`` and returns a
    queryset (see ``docs/hooks.md``).
    """
    sites: QuerySet[Site] = hooks.fold(hooks.SITES_FOR_USER, Site.objects.all(), user)
    return sites


def invoices_for_user(user: Any, queryset: QuerySet[Invoice] | None = None) -> QuerySet[Invoice]:
    """``queryset`` (default: every invoice) limited to the sites ``user`` may bill for.

    Without a registered hook nothing is filtered, so the common case adds no subquery
    to listings of a million rows.
    """
    queryset = Invoice.objects.all() if queryset is None else queryset
    if not hooks.get(hooks.SITES_FOR_USER):
        return queryset
    return queryset.filter(site__in=sites_for_user(user).values("pk"))


def webhook_events_for_user(user: Any, queryset: QuerySet[Any] | None = None) -> QuerySet[Any]:
    """Webhook events ``user`` may see: those about invoices of sites they may bill for.

    Without a ``client_billing_sites_for_user`` hook (and for superusers) nothing is
    filtered. An editor narrowed to some sites sees only their invoices' events, not
    account-level events, which may concern other clients' accounts.
    """
    from .models import WebhookEvent

    queryset = WebhookEvent.objects.all() if queryset is None else queryset
    if not hooks.get(hooks.SITES_FOR_USER) or getattr(user, "is_superuser", False):
        return queryset
    return queryset.filter(invoice__site__in=sites_for_user(user).values("pk"))


def status_filter_asked(request: HttpRequest, prefix: str = "") -> list[str]:
    """The statuses the listing's status filter asks for, straight from the query string."""
    return [value for value in request.GET.getlist(f"{prefix}status") if value]


class SiteChoiceField(django_filters.fields.ModelChoiceField):
    def label_from_instance(self, obj: Site) -> str:
        return obj.site_name or obj.hostname


class SiteFilter(django_filters.ModelChoiceFilter):
    field_class = SiteChoiceField


def _sites_for_request(request: HttpRequest | None) -> QuerySet[Site]:
    if request is None:
        return Site.objects.none()
    return sites_for_user(request.user).order_by("site_name", "hostname")


def _currencies(request: HttpRequest | None = None) -> list[tuple[str, str]]:
    return currency_choices(billing_settings.CURRENCIES)


class InvoiceFilterSet(WagtailFilterSet):
    """The invoice listing's filters.

    Deleted invoices are hidden unless the status filter asks for them; the view does
    that (:meth:`~wagtail_client_billing.viewsets.InvoiceIndexView.filter_queryset`),
    so an invalid filter elsewhere in the form cannot reveal them.
    """

    site = SiteFilter(label=_("Site"), queryset=_sites_for_request, empty_label=_("All"))
    status = django_filters.MultipleChoiceFilter(
        label=_("Status"),
        choices=InvoiceStatus.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    mode = django_filters.ChoiceFilter(
        label=_("Mode"),
        choices=Mode.choices,
        method="filter_mode",
        widget=forms.RadioSelect,
        empty_label=_("All"),
    )
    currency = django_filters.ChoiceFilter(
        label=_("Currency"), choices=_currencies, widget=forms.Select, empty_label=_("All")
    )
    billing_type = django_filters.ChoiceFilter(
        label=_("Billing type"),
        choices=BillingType.choices,
        widget=forms.RadioSelect,
        empty_label=_("All"),
    )
    created_at = django_filters.DateFromToRangeFilter(
        label=_("Created"), widget=DateRangePickerWidget
    )
    paid_at = django_filters.DateFromToRangeFilter(label=_("Paid"), widget=DateRangePickerWidget)

    class Meta:
        model = Invoice
        fields = ["site", "status", "mode", "currency", "billing_type", "created_at", "paid_at"]

    def filter_mode(self, queryset: QuerySet[Invoice], name: str, value: str) -> QuerySet[Invoice]:
        if not value:
            return queryset
        return queryset.filter(test_mode=value == Mode.TEST)
