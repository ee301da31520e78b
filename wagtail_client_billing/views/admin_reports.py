"""The billing reports under Wagtail's Reports menu: revenue, time to pay, expiry rate.

Wagtail report views (filterable, exportable as CSV and XLSX) over the invoice rollup
(:mod:`..billing.reports`). Each shows a bar chart of its last twelve months, drawn
as SVG on the server (no script), with the same figures as a table beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import django_filters
from django import forms
from django.utils.functional import cached_property
from django.utils.timesince import timesince
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.filters import WagtailFilterSet
from wagtail.admin.ui.tables import Column
from wagtail.admin.views.reports import ReportView

from ..billing import reports
from ..conf import billing_settings
from ..filters import SiteFilter, _sites_for_request
from ..models import InvoiceRollup, Mode
from ..money import currency_choices, format_money, to_major
from ..permissions import invoice_permission_policy

TEMPLATE_DIR = "wagtail_client_billing/admin/reports/"


class ReportFilterSet(WagtailFilterSet):
    """The billing reports' filters; the view applies them (they need the user's scope)."""

    site = SiteFilter(
        label=_("Site"), queryset=_sites_for_request, empty_label=_("All"), method="keep"
    )
    by_site = django_filters.BooleanFilter(
        label=_("One row per site"),
        widget=forms.CheckboxInput,
        method="keep",
        # Unticked is the default: not "a filter is applied".
        initial=False,
    )
    mode = django_filters.ChoiceFilter(
        label=_("Mode"),
        choices=Mode.choices,
        widget=forms.RadioSelect,
        empty_label=_("All"),
        method="keep",
    )
    currency = django_filters.ChoiceFilter(
        label=_("Currency"),
        choices=lambda: currency_choices(billing_settings.CURRENCIES),
        widget=forms.Select,
        empty_label=_("All"),
        method="keep",
    )

    class Meta:
        model = InvoiceRollup
        fields: list[str] = []

    def keep(self, queryset: Any, name: str, value: Any) -> Any:
        return queryset


def _duration(seconds: float) -> str:
    """``seconds`` as an editor reads a delay: "2 days, 3 hours"."""
    if seconds < 60:
        return gettext("under a minute")
    return timesince(_EPOCH, _EPOCH + timedelta(seconds=seconds))


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class MoneyColumn(Column):
    def get_value(self, instance: Any) -> str:
        return format_money(instance[self.name], instance["currency"])


class MonthColumn(Column):
    def get_value(self, instance: Any) -> str:
        return reports.month_label(instance["month"])


class ModeColumn(Column):
    def get_value(self, instance: Any) -> str:
        return str(Mode.TEST.label if instance["test_mode"] else Mode.LIVE.label)


class AverageTimeColumn(Column):
    def get_value(self, instance: Any) -> str:
        return _duration(instance["pay_seconds"] / instance["paid"])


class RateColumn(Column):
    def get_value(self, instance: Any) -> str:
        return f"{100 * instance['expired'] / instance['created']:.1f} %"


class BillingReportView(ReportView):
    """What the three reports share: permission, filters, scope, chart and export."""

    header_icon = "client-billing"
    filterset_class = ReportFilterSet
    any_permission_required = ["add", "change", "delete", "view"]
    template_name = TEMPLATE_DIR + "report.html"
    results_template_name = TEMPLATE_DIR + "report_results.html"
    paginate_by = 50
    chart_title = ""
    chart_description = ""

    @cached_property
    def permission_policy(self) -> Any:
        return invoice_permission_policy()

    @cached_property
    def cleaned(self) -> dict[str, Any]:
        if self.filters and self.filters.is_valid():
            return dict(self.filters.form.cleaned_data)
        return {}

    @property
    def by_site(self) -> bool:
        return bool(self.cleaned.get("by_site"))

    def scoped(self) -> Any:
        return reports.buckets(
            self.request.user,
            site=self.cleaned.get("site"),
            mode=self.cleaned.get("mode") or "",
            currency=self.cleaned.get("currency") or "",
        )

    def group(self, queryset: Any, by_site: bool) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_base_queryset(self) -> Any:
        return self.group(self.scoped(), self.by_site)

    def get_queryset(self) -> Any:
        return self.get_base_queryset()

    def site_columns(self) -> list[Column]:
        return [Column("site_name", label=_("Site"))] if self.by_site else []

    def charts(self) -> list[reports.Chart]:  # pragma: no cover - abstract
        raise NotImplementedError

    def recent(self, rows: Any) -> list[Any]:
        """The last twelve months of ``rows`` (newest first in the query), oldest first."""
        months = sorted({row["month"] for row in rows})[-12:]
        return [row for row in rows if row["month"] in months]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["charts"] = [] if self.is_export else self.charts()
        return context

    def get_filename(self) -> str:
        return f"{self.export_filename}-{datetime.now(tz=UTC):%Y-%m-%d}"


class RevenueReportView(BillingReportView):
    page_title = _("Billing revenue")
    index_url_name = "wagtail_client_billing_reports:revenue"
    index_results_url_name = "wagtail_client_billing_reports:revenue_results"
    export_filename = "billing-revenue"
    list_export = ["month", "site_name", "currency", "mode", "paid", "revenue", "time_to_pay_hours"]
    export_headings = {
        "month": _("Month"),
        "site_name": _("Site"),
        "currency": _("Currency"),
        "mode": _("Mode"),
        "paid": _("Paid invoices"),
        "revenue": _("Revenue"),
        "time_to_pay_hours": _("Average time to pay (hours)"),
    }

    def group(self, queryset: Any, by_site: bool) -> Any:
        return reports.revenue(queryset, by_site=by_site)

    @cached_property
    def columns(self) -> list[Column]:
        return [
            MonthColumn("month", label=_("Month")),
            *self.site_columns(),
            Column("currency", label=_("Currency")),
            ModeColumn("test_mode", label=_("Mode")),
            Column("paid", label=_("Paid invoices")),
            MoneyColumn("revenue", label=_("Revenue")),
            AverageTimeColumn("pay_seconds", label=_("Average time to pay")),
        ]

    def to_row_dict(self, item: Any) -> dict[str, Any]:
        return {
            "month": item["month"],
            "site_name": item.get("site_name") or gettext("All sites"),
            "currency": item["currency"],
            "mode": str(Mode.TEST.label if item["test_mode"] else Mode.LIVE.label),
            "paid": item["paid"],
            "revenue": Decimal(to_major(item["revenue"], item["currency"])),
            "time_to_pay_hours": round(item["pay_seconds"] / item["paid"] / 3600, 1),
        }

    def charts(self) -> list[reports.Chart]:
        rows = list(reports.revenue(self.scoped()))
        out = []
        series = sorted({(row["test_mode"], row["currency"]) for row in rows})
        for test_mode, currency in series:
            mine = self.recent(
                [r for r in rows if r["currency"] == currency and r["test_mode"] == test_mode]
            )
            mine.sort(key=lambda r: r["month"])
            mode = gettext("test mode") if test_mode else gettext("live")
            out.append(
                reports.chart(
                    gettext("Revenue in %(currency)s (%(mode)s), by month of payment")
                    % {"currency": currency, "mode": mode},
                    gettext("Bar chart: one bar per month, its height the revenue."),
                    currency,
                    [
                        (
                            reports.month_label(r["month"]),
                            float(r["revenue"]),
                            format_money(r["revenue"], currency),
                        )
                        for r in mine
                    ],
                )
            )
        return out


class TimeToPayReportView(BillingReportView):
    page_title = _("Billing time to pay")
    index_url_name = "wagtail_client_billing_reports:time_to_pay"
    index_results_url_name = "wagtail_client_billing_reports:time_to_pay_results"
    export_filename = "billing-time-to-pay"
    list_export = ["month", "site_name", "paid", "time_to_pay_hours"]
    export_headings = {
        "month": _("Month"),
        "site_name": _("Site"),
        "paid": _("Paid invoices"),
        "time_to_pay_hours": _("Average time to pay (hours)"),
    }

    def group(self, queryset: Any, by_site: bool) -> Any:
        return reports.time_to_pay(queryset, by_site=by_site)

    @cached_property
    def columns(self) -> list[Column]:
        return [
            MonthColumn("month", label=_("Month")),
            *self.site_columns(),
            Column("paid", label=_("Paid invoices")),
            AverageTimeColumn("pay_seconds", label=_("Average time to pay")),
        ]

    def to_row_dict(self, item: Any) -> dict[str, Any]:
        return {
            "month": item["month"],
            "site_name": item.get("site_name") or gettext("All sites"),
            "paid": item["paid"],
            "time_to_pay_hours": round(item["pay_seconds"] / item["paid"] / 3600, 1),
        }

    def charts(self) -> list[reports.Chart]:
        rows = self.recent(list(reports.time_to_pay(self.scoped())))
        rows.sort(key=lambda r: r["month"])
        return [
            reports.chart(
                gettext("Average time to pay, by month of payment"),
                gettext("Bar chart: one bar per month, its height the average time to pay."),
                gettext("hours"),
                [
                    (
                        reports.month_label(r["month"]),
                        r["pay_seconds"] / r["paid"],
                        _duration(r["pay_seconds"] / r["paid"]),
                    )
                    for r in rows
                ],
            )
        ]


class ExpiryReportView(BillingReportView):
    page_title = _("Billing expiry rate")
    index_url_name = "wagtail_client_billing_reports:expiry"
    index_results_url_name = "wagtail_client_billing_reports:expiry_results"
    export_filename = "billing-expiry-rate"
    list_export = ["month", "site_name", "created", "expired", "expiry_rate"]
    export_headings = {
        "month": _("Month"),
        "site_name": _("Site"),
        "created": _("Invoices created"),
        "expired": _("Expired unpaid"),
        "expiry_rate": _("Expiry rate (%)"),
    }

    def group(self, queryset: Any, by_site: bool) -> Any:
        return reports.expiry(queryset, by_site=by_site)

    @cached_property
    def columns(self) -> list[Column]:
        return [
            MonthColumn("month", label=_("Month created")),
            *self.site_columns(),
            Column("created", label=_("Invoices created")),
            Column("expired", label=_("Expired unpaid")),
            RateColumn("expiry_rate", label=_("Expiry rate")),
        ]

    def to_row_dict(self, item: Any) -> dict[str, Any]:
        return {
            "month": item["month"],
            "site_name": item.get("site_name") or gettext("All sites"),
            "created": item["created"],
            "expired": item["expired"],
            "expiry_rate": round(100 * item["expired"] / item["created"], 1),
        }

    def charts(self) -> list[reports.Chart]:
        rows = self.recent(list(reports.expiry(self.scoped())))
        rows.sort(key=lambda r: r["month"])
        return [
            reports.chart(
                gettext("Expiry rate, by month of creation"),
                gettext(
                    "Bar chart: one bar per month, its height the share of the invoices "
                    "created that month that expired unpaid."
                ),
                "%",
                [
                    (
                        reports.month_label(r["month"]),
                        100 * r["expired"] / r["created"],
                        f"{100 * r['expired'] / r['created']:.1f} %",
                    )
                    for r in rows
                ],
            )
        ]


REPORTS = [
    ("revenue", RevenueReportView, _("Billing revenue"), 1300),
    ("time-to-pay", TimeToPayReportView, _("Billing time to pay"), 1310),
    ("expiry", ExpiryReportView, _("Billing expiry rate"), 1320),
]


def _urlpatterns() -> list[Any]:
    from django.urls import path

    patterns = []
    for slug, view, _label, _order in REPORTS:
        name = slug.replace("-", "_")
        patterns += [
            path(f"{slug}/", view.as_view(), name=name),
            path(f"{slug}/results/", view.as_view(results_only=True), name=f"{name}_results"),
        ]
    return patterns


urlpatterns = _urlpatterns()
