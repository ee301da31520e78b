"""The billing reports' figures: revenue, time to pay and expiry rate per month.

Each report is a grouping of the invoice rollup's buckets (:mod:`..rollup`) that the
user may see (:func:`..scope.rollups_for_user`), so a report page makes the same
queries at any number of invoices. A report's chart shows the last twelve months of
the same figures; :func:`chart` lays it out for the server-rendered SVG.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Case, IntegerField, OuterRef, QuerySet, Subquery, Sum, When
from django.db.models.functions import Coalesce
from django.utils.dates import MONTHS_3
from wagtail.models import Site

from ..models import Mode
from ..rollup import CREATED
from ..scope import rollups_for_user
from ..status import InvoiceStatus

S = InvoiceStatus


def buckets(user: Any, *, site: Site | None, mode: str = "", currency: str = "") -> QuerySet:
    """The rollup's buckets ``user`` may see, narrowed by the report's filters."""
    queryset = rollups_for_user(user, site=site)
    if mode:
        queryset = queryset.filter(test_mode=mode == Mode.TEST)
    if currency:
        queryset = queryset.filter(currency=currency)
    return queryset


def _grouped(queryset: QuerySet, by_site: bool, *keys: str) -> QuerySet:
    fields = ["month", *(["site_id"] if by_site else []), *keys]
    grouped = queryset.values(*fields)
    if by_site:
        name = Site.objects.filter(pk=OuterRef("site_id")).values("site_name")[:1]
        grouped = grouped.annotate(site_name=Subquery(name))
    return grouped


def revenue(queryset: QuerySet, *, by_site: bool = False) -> QuerySet:
    """Paid invoices per month (of payment), currency and mode: count, revenue, time to pay."""
    return (
        _grouped(queryset.filter(status=S.PAID), by_site, "currency", "test_mode")
        .annotate(paid=Sum("count"), revenue=Sum("amount"), pay_seconds=Sum("pay_seconds"))
        .filter(paid__gt=0)
        .order_by("-month", *(["site_id"] if by_site else []), "test_mode", "currency")
    )


def time_to_pay(queryset: QuerySet, *, by_site: bool = False) -> QuerySet:
    """Paid invoices per month (of payment): how many, and the seconds they took in all."""
    return (
        _grouped(queryset.filter(status=S.PAID), by_site)
        .annotate(paid=Sum("count"), pay_seconds=Sum("pay_seconds"))
        .filter(paid__gt=0)
        .order_by("-month", *(["site_id"] if by_site else []))
    )


def expiry(queryset: QuerySet, *, by_site: bool = False) -> QuerySet:
    """Invoices per month of creation: how many were created, and how many expired unpaid."""

    def of(status: str) -> Any:
        return Coalesce(
            Sum(Case(When(status=status, then="count"), output_field=IntegerField())), 0
        )

    return (
        _grouped(queryset.filter(status__in=[CREATED, str(S.EXPIRED)]), by_site)
        .annotate(created=of(CREATED), expired=of(str(S.EXPIRED)))
        .filter(created__gt=0)
        .order_by("-month", *(["site_id"] if by_site else []))
    )


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str
    x: float = 0
    y: float = 0
    width: float = 0
    height: float = 0


@dataclass(frozen=True)
class Chart:
    """A bar chart laid out for the SVG template: one bar per month."""

    title: str
    description: str
    unit: str
    bars: list[Bar]
    width: int
    height: int
    baseline: float
    max_text: str


def chart(title: str, description: str, unit: str, points: list[tuple[str, float, str]]) -> Chart:
    """Lay out ``points`` (label, value, the value as text) as bars, oldest first."""
    width, height, top, bottom, left = 640, 240, 20, 40, 8
    slot = (width - left * 2) / max(len(points), 1)
    peak = max((value for _, value, _ in points), default=0) or 1
    usable = height - top - bottom
    bars = []
    for i, (label, value, text) in enumerate(points):
        h = usable * value / peak
        bars.append(
            Bar(
                label,
                value,
                text,
                x=round(left + i * slot + slot * 0.15, 1),
                y=round(top + usable - h, 1),
                width=round(slot * 0.7, 1),
                height=round(h, 1),
            )
        )
    peak_text = max(points, key=lambda p: p[1])[2] if points else ""
    return Chart(title, description, unit, bars, width, height, top + usable, peak_text)


def month_label(month: date) -> str:
    return f"{MONTHS_3[month.month].title()} {month.year}"
