"""The invoice and client listings' filters (the invoices' search is :mod:`.search`).

The site filters offer only the sites the user may bill for (:mod:`.scope`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _
from wagtail.admin.filters import DateRangePickerWidget, WagtailFilterSet
from wagtail.models import Site

from .billing.overview import EXPIRING_SOON, expiring_soon
from .conf import billing_settings
from .forms.fields import SiteChoiceField
from .models import (
    CLOSED_DISPUTE_STATUSES,
    BillingType,
    Client,
    DisputeStatus,
    EmailStatus,
    Invoice,
    Mode,
    SubscriptionState,
)
from .money import currency_choices
from .scope import invoices_for_user, site_choices
from .status import choices as status_choices

if TYPE_CHECKING:
    from django.http import HttpRequest


class SiteFilter(django_filters.ModelChoiceFilter):
    field_class = SiteChoiceField


def _sites_for_request(request: HttpRequest | None) -> QuerySet[Site]:
    if request is None:
        return Site.objects.none()
    return site_choices(request.user)


def _currencies(request: HttpRequest | None = None) -> list[tuple[str, str]]:
    return currency_choices(billing_settings.CURRENCIES)


#: The dispute filter: an open dispute (awaiting a response or under review), one lost.
DISPUTE_FILTER_CHOICES = [("open", _("Open dispute")), ("lost", _("Dispute lost"))]


class InvoiceFilterSet(WagtailFilterSet):
    """The invoice listing's filters.

    Deleted invoices are hidden unless the status filter asks for them; the view does
    that (:meth:`~wagtail_client_billing.viewsets.InvoiceIndexView.filter_queryset`),
    so an invalid filter elsewhere in the form cannot reveal them.
    """

    site = SiteFilter(label=_("Site"), queryset=_sites_for_request, empty_label=_("All"))
    status = django_filters.MultipleChoiceFilter(
        label=_("Status"),
        choices=status_choices,  # every status in the status table, in its order
        widget=forms.CheckboxSelectMultiple,
        # ``status`` is a column of the invoice, so no row can match twice; without
        # this, django-filter adds a DISTINCT over every column, which makes the
        # database sort the filtered rows and count them without the index.
        distinct=False,
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
    overdue = django_filters.ChoiceFilter(
        label=_("Due date"),
        choices=[("overdue", _("Overdue"))],
        method="filter_overdue",
        widget=forms.RadioSelect,
        empty_label=_("All"),
        help_text=_("Overdue: past the due date, still payable until the link expires."),
    )
    # The dashboard's billing overview links here (billing/overview.py).
    expiring = django_filters.ChoiceFilter(
        label=_("Expiring"),
        choices=[(EXPIRING_SOON, _("In the next 24 hours"))],
        method="filter_expiring",
        widget=forms.RadioSelect,
        empty_label=_("Any time"),
    )
    email_status = django_filters.MultipleChoiceFilter(
        label=_("Email"),
        choices=EmailStatus.choices,
        widget=forms.CheckboxSelectMultiple,
        distinct=False,
    )
    subscription_status = django_filters.MultipleChoiceFilter(
        label=_("Subscription"),
        choices=SubscriptionState.choices,
        widget=forms.CheckboxSelectMultiple,
        distinct=False,
    )
    dispute = django_filters.ChoiceFilter(
        label=_("Dispute"),
        choices=DISPUTE_FILTER_CHOICES,
        method="filter_dispute",
        widget=forms.RadioSelect,
        empty_label=_("All"),
    )

    class Meta:
        model = Invoice
        fields = [
            "site",
            "status",
            "mode",
            "currency",
            "billing_type",
            "created_at",
            "paid_at",
            "overdue",
            "expiring",
            "email_status",
            "subscription_status",
            "dispute",
        ]

    def filter_mode(self, queryset: QuerySet[Invoice], name: str, value: str) -> QuerySet[Invoice]:
        if not value:
            return queryset
        return queryset.filter(test_mode=value == Mode.TEST)

    def filter_overdue(
        self, queryset: QuerySet[Invoice], name: str, value: str
    ) -> QuerySet[Invoice]:
        """Overdue is derived (a due date past, the link still open), not a status."""
        if not value:
            return queryset
        return queryset & Invoice.objects.overdue()

    def filter_expiring(
        self, queryset: QuerySet[Invoice], name: str, value: str
    ) -> QuerySet[Invoice]:
        return expiring_soon(queryset) if value else queryset

    def filter_dispute(
        self, queryset: QuerySet[Invoice], name: str, value: str
    ) -> QuerySet[Invoice]:
        if value == "open":
            return queryset.exclude(dispute_status="").exclude(
                dispute_status__in=CLOSED_DISPUTE_STATUSES
            )
        if value == "lost":
            return queryset.filter(dispute_status=DisputeStatus.LOST)
        return queryset


class ClientFilterSet(WagtailFilterSet):
    """The Clients listing's filters, over what the editor may see: a site lists the
    clients with a request on it (of any status), and "Awaiting payment" reads the count
    the listing shows (:func:`.billing.overview.with_client_figures` annotates it)."""

    site = SiteFilter(
        label=_("Site"),
        queryset=_sites_for_request,
        empty_label=_("All"),
        method="filter_site",
        help_text=_("Clients with a billing request on this site."),
    )
    outstanding = django_filters.ChoiceFilter(
        label=_("Awaiting payment"),
        choices=[("yes", _("Yes")), ("no", _("No"))],
        method="filter_outstanding",
        widget=forms.RadioSelect,
        empty_label=_("All"),
        help_text=_("Whether the client has a billing request that is pending or processing."),
    )

    class Meta:
        model = Client
        fields = ["site", "outstanding"]

    def filter_site(
        self, queryset: QuerySet[Client], name: str, value: Site | None
    ) -> QuerySet[Client]:
        if value is None:
            return queryset
        user = getattr(self.request, "user", None)
        billed = invoices_for_user(user).filter(site=value).order_by()
        return queryset.filter(pk__in=billed.values("client"))

    def filter_outstanding(
        self, queryset: QuerySet[Client], name: str, value: str
    ) -> QuerySet[Client]:
        # Q: the count is an annotation, which the type stubs do not know of.
        if value == "yes":
            return queryset.filter(Q(outstanding_count__gt=0))
        if value == "no":
            return queryset.filter(Q(outstanding_count=0))
        return queryset
