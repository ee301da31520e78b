"""The billing overview on the Wagtail dashboard, and the listing's per-currency totals.

The panel is a list of rows, :data:`ROWS`: each has a label, a function that reads its
figures (one query) and the filters of the invoice listing that shows the invoices
behind it. Adding a row (disputes needing a response, past-due subscriptions) is one
more :class:`OverviewRow` in that list, or an ``append`` to it from another module;
the template and the summary items need no change.

Every figure is scoped to the sites the user may bill for (:mod:`..scope`) and, where
it is a count or sum over many invoices, read from the invoice rollup
(:mod:`..rollup`): the panel makes the same few queries at any number of invoices.
Months are those of the project's time zone (``TIME_ZONE``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from ..models import (
    Client,
    DisputeStatus,
    EmailStatus,
    Invoice,
    Mode,
    Payment,
    SubscriptionState,
)
from ..money import format_money
from ..scope import invoices_for_user, rollups_for_user
from ..status import InvoiceStatus

S = InvoiceStatus
Label = str | Promise


@dataclass(frozen=True)
class Amount:
    """A sum in one currency and mode, with how many invoices make it."""

    currency: str
    test_mode: bool
    count: int
    amount: int
    #: The listing filtered to these invoices.
    url: str = ""

    @property
    def formatted(self) -> str:
        return format_money(self.amount, self.currency)


@dataclass
class Context:
    """What every row's figures are computed for."""

    user: Any
    now: datetime
    this_month: date
    last_month: date
    next_month: date

    @classmethod
    def for_user(cls, user: Any, now: datetime | None = None) -> Context:
        now = now or timezone.now()
        local = timezone.localtime(now, timezone.get_default_timezone())
        this_month = local.date().replace(day=1)
        last_month = (this_month - timedelta(days=1)).replace(day=1)
        next_month = (this_month + timedelta(days=32)).replace(day=1)
        return cls(user, now, this_month, last_month, next_month)


@dataclass
class Figures:
    """A row's result: a count, and sums per currency (empty for a count alone)."""

    count: int = 0
    amounts: list[Amount] = field(default_factory=list)


@dataclass(frozen=True)
class OverviewRow:
    """One row of the dashboard panel.

    Attributes:
        name: a stable identifier (the row's HTML id, ``data-row`` in tests).
        label: what the editor reads; may depend on the context (a month's name).
        figures: reads the row's figures (one query).
        filters: the invoice listing's query parameters that list the row's invoices.
        tone: ``critical`` for rows that need someone to act when not zero.
    """

    name: str
    label: Callable[[Context], Label]
    figures: Callable[[Context], Figures]
    filters: Callable[[Context], dict[str, Any]]
    tone: str = ""


def listing_url(filters: dict[str, Any] | None = None) -> str:
    """The invoice listing's URL with ``filters`` as its query string."""
    viewset = getattr(Invoice, "snippet_viewset", None)
    url = reverse(viewset.get_url_name("list")) if viewset else ""
    query = urlencode(filters or {}, doseq=True)
    return f"{url}?{query}" if query else url


def _amounts(rows: QuerySet, base: dict[str, Any]) -> list[Amount]:
    out = []
    for row in rows:
        mode = Mode.TEST if row["test_mode"] else Mode.LIVE
        filters = {**base, "currency": row["currency"], "mode": str(mode)}
        out.append(
            Amount(
                row["currency"],
                row["test_mode"],
                int(row["n"]),
                int(row["a"]),
                listing_url(filters),
            )
        )
    # Live money first, then by currency.
    out.sort(key=lambda a: (a.test_mode, a.currency))
    return out


def _figures(amounts: list[Amount]) -> Figures:
    return Figures(count=sum(a.count for a in amounts), amounts=amounts)


def _month_label(month: date) -> str:
    return f"{MONTHS[month.month]} {month.year}"


def _paid_filters(start: date, end: date) -> dict[str, Any]:
    return {
        "status": [str(S.PAID)],
        "paid_at_after": start.isoformat(),
        "paid_at_before": (end - timedelta(days=1)).isoformat(),
    }


def _paid_in(month_of: Callable[[Context], date]) -> Callable[[Context], Figures]:
    def read(ctx: Context) -> Figures:
        month = month_of(ctx)
        rows = (
            rollups_for_user(ctx.user)
            .filter(status=S.PAID, month=month)
            .values("currency", "test_mode")
            .annotate(n=Sum("count"), a=Sum("amount"))
            .filter(n__gt=0)
            .order_by()
        )
        end = ctx.next_month if month == ctx.this_month else ctx.this_month
        return _figures(_amounts(rows, _paid_filters(month, end)))

    return read


OUTSTANDING = [str(S.PENDING), str(S.PROCESSING)]


def _outstanding(ctx: Context) -> Figures:
    rows = (
        rollups_for_user(ctx.user)
        .filter(status__in=OUTSTANDING)
        .values("currency", "test_mode")
        .annotate(n=Sum("count"), a=Sum("amount"))
        .filter(n__gt=0)
        .order_by()
    )
    return _figures(_amounts(rows, {"status": OUTSTANDING}))


#: The listing's filter value for "expires within the next 24 hours".
EXPIRING_SOON = "24h"


def expiring_soon(queryset: QuerySet[Invoice], now: datetime | None = None) -> QuerySet[Invoice]:
    """Pending invoices whose payment link runs out in the next 24 hours (through the
    partial index on pending invoices' ``expires_at``)."""
    now = now or timezone.now()
    return queryset.filter(
        status=S.PENDING, expires_at__gt=now, expires_at__lte=now + timedelta(hours=24)
    )


def _expiring(ctx: Context) -> Figures:
    rows = (
        expiring_soon(invoices_for_user(ctx.user), ctx.now)
        .values("currency", "test_mode")
        .annotate(n=Count("pk"), a=Sum("amount"))
        .order_by()
    )
    return _figures(_amounts(rows, {"expiring": EXPIRING_SOON}))


def failed_emails(queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
    """Invoices whose email could not be sent (through their partial index)."""
    return queryset.filter(email_status=EmailStatus.FAILED)


def _failed(ctx: Context) -> Figures:
    return Figures(count=failed_emails(invoices_for_user(ctx.user)).count())


#: Dispute statuses that wait for the agency's evidence (before the deadline).
NEEDS_RESPONSE = [str(DisputeStatus.NEEDS_RESPONSE), str(DisputeStatus.WARNING_NEEDS_RESPONSE)]
#: Subscription states whose renewal was not paid.
PAST_DUE = [str(SubscriptionState.PAST_DUE), str(SubscriptionState.UNPAID)]


def _disputes(ctx: Context) -> Figures:
    """Disputes waiting for a response, read from the partial index of disputed invoices
    (the query states its condition, ``dispute_status <> ''``, so SQLite can use it)."""
    disputed = invoices_for_user(ctx.user).exclude(dispute_status="")
    return Figures(count=disputed.filter(dispute_status__in=NEEDS_RESPONSE).count())


def _past_due(ctx: Context) -> Figures:
    """Subscriptions whose renewal failed, read from the partial index of subscription
    invoices (its condition stated, likewise)."""
    subscriptions = invoices_for_user(ctx.user).exclude(subscription_status="")
    return Figures(count=subscriptions.filter(subscription_status__in=PAST_DUE).count())


#: The panel's rows, in order. Append an :class:`OverviewRow` to add one.
ROWS: list[OverviewRow] = [
    OverviewRow(
        "paid-this-month",
        lambda ctx: _("Paid in %(month)s") % {"month": _month_label(ctx.this_month)},
        _paid_in(lambda ctx: ctx.this_month),
        lambda ctx: _paid_filters(ctx.this_month, ctx.next_month),
    ),
    OverviewRow(
        "paid-last-month",
        lambda ctx: _("Paid in %(month)s") % {"month": _month_label(ctx.last_month)},
        _paid_in(lambda ctx: ctx.last_month),
        lambda ctx: _paid_filters(ctx.last_month, ctx.this_month),
    ),
    OverviewRow(
        "outstanding",
        lambda ctx: _("Outstanding (pending and processing)"),
        _outstanding,
        lambda ctx: {"status": OUTSTANDING},
    ),
    OverviewRow(
        "expiring",
        lambda ctx: _("Expiring in the next 24 hours"),
        _expiring,
        lambda ctx: {"expiring": EXPIRING_SOON},
        tone="warning",
    ),
    OverviewRow(
        "failed-emails",
        lambda ctx: _("Invoice emails that failed"),
        _failed,
        lambda ctx: {"email_status": [str(EmailStatus.FAILED)]},
        tone="critical",
    ),
    OverviewRow(
        "disputes",
        lambda ctx: _("Disputes needing a response"),
        _disputes,
        lambda ctx: {"dispute": "open"},
        tone="critical",
    ),
    OverviewRow(
        "past-due",
        lambda ctx: _("Subscriptions past due"),
        _past_due,
        lambda ctx: {"subscription_status": PAST_DUE},
        tone="warning",
    ),
]


@dataclass
class Line:
    """A row as the panel shows it."""

    name: str
    label: Label
    figures: Figures
    url: str
    tone: str


def overview(user: Any, now: datetime | None = None) -> list[Line]:
    """The panel's rows for ``user``: one query each."""
    ctx = Context.for_user(user, now)
    return [
        Line(row.name, row.label(ctx), row.figures(ctx), listing_url(row.filters(ctx)), row.tone)
        for row in ROWS
    ]


# --- the listing's totals --------------------------------------------------------------------

#: The listing's filters the rollup can answer; any other (or a search) sums the invoices.
ROLLUP_FILTERS = frozenset({"site", "status", "mode", "currency"})


def listing_totals(
    user: Any,
    invoices: QuerySet[Invoice],
    cleaned: dict[str, Any] | None,
    *,
    searching: bool,
) -> list[Amount]:
    """Per-currency totals of the invoices the listing shows for its current filter.

    ``invoices`` is the listing's filtered queryset, ``cleaned`` its valid filter
    form's data (None when the form is not valid). Filtered by site, status, mode and
    currency alone, the totals come from the rollup (one query on a few rows); with a
    search or another filter, from the filtered invoices (one query).
    """
    used = {
        name for name, value in (cleaned or {}).items() if value not in (None, False, "", [], ())
    }
    if cleaned is not None and not searching and used <= ROLLUP_FILTERS:
        statuses = list(cleaned.get("status") or [])
        buckets = rollups_for_user(user, site=cleaned.get("site"))
        if statuses:
            buckets = buckets.filter(status__in=statuses)
        else:
            buckets = buckets.filter(
                ~Q(status__in=[str(S.DELETED), "_created"])
            )  # the listing hides deleted ones
        if cleaned.get("mode"):
            buckets = buckets.filter(test_mode=cleaned["mode"] == Mode.TEST)
        if cleaned.get("currency"):
            buckets = buckets.filter(currency=cleaned["currency"])
        rows: QuerySet[Any, Any] = (
            buckets.values("currency", "test_mode")
            .annotate(n=Sum("count"), a=Sum("amount"))
            .filter(n__gt=0)
            .order_by()
        )
    else:
        rows = (
            invoices.order_by()
            .values("currency", "test_mode")
            .annotate(n=Count("pk"), a=Sum("amount"))
        )
    return [Amount(r["currency"], r["test_mode"], int(r["n"]), int(r["a"])) for r in rows]


# --- a client's totals ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClientTotal:
    """What one client paid, owes and got back in one currency and mode (minor units)."""

    currency: str
    test_mode: bool
    paid: int = 0
    outstanding: int = 0
    refunded: int = 0

    @property
    def formatted_paid(self) -> str:
        return format_money(self.paid, self.currency)

    @property
    def formatted_outstanding(self) -> str:
        return format_money(self.outstanding, self.currency)

    @property
    def formatted_refunded(self) -> str:
        return format_money(self.refunded, self.currency)


def with_client_figures(clients: QuerySet[Client], user: Any) -> QuerySet[Client]:
    """``clients`` with what the Clients listing shows beside each one, counted over the
    invoices ``user`` may see (:func:`.scope.invoices_for_user`):

    - ``outstanding_count``: requests awaiting payment (pending or processing, as
      :data:`OUTSTANDING` counts them for the totals);
    - ``last_billed_at``: when the newest request that is not a draft was created
      (None if there is none).

    Two subqueries a row, each read from the ``(client, -created_at)`` index; a page of
    the listing makes the same queries at any number of invoices.
    """
    visible = invoices_for_user(user, Invoice.objects.filter(client=OuterRef("pk"))).order_by()
    outstanding = (
        visible.filter(status__in=OUTSTANDING).values("client").annotate(n=Count("pk")).values("n")
    )
    newest = visible.exclude(status=InvoiceStatus.DRAFT).order_by("-created_at")
    return clients.annotate(
        outstanding_count=Coalesce(Subquery(outstanding), 0),
        last_billed_at=Subquery(newest.values("created_at")[:1]),
    )


def client_totals(invoices: QuerySet[Invoice]) -> list[ClientTotal]:
    """Per-currency totals of ``invoices`` (one client's, already scoped), in two queries
    at any number of invoices: outstanding (pending and processing requests, as the
    listing sums them: :func:`listing_totals`) and paid and refunded (the payments they
    received, renewals included, and what was refunded of them)."""
    keyed: dict[tuple[str, bool], dict[str, int]] = {}
    owed = listing_totals(None, invoices.filter(status__in=OUTSTANDING), None, searching=True)
    for amount in owed:
        keyed.setdefault((amount.currency.upper(), amount.test_mode), {})["outstanding"] = (
            amount.amount
        )
    received = (
        Payment.objects.filter(invoice__in=invoices.order_by().values("pk"))
        .values("currency", "invoice__test_mode")
        .annotate(paid=Sum("amount"), refunded=Sum("amount_refunded"))
        .order_by()
    )
    for row in received:
        figures = keyed.setdefault((row["currency"].upper(), row["invoice__test_mode"]), {})
        figures["paid"] = int(row["paid"] or 0)
        figures["refunded"] = int(row["refunded"] or 0)
    totals = [ClientTotal(c, t, **figures) for (c, t), figures in keyed.items()]
    totals.sort(key=lambda total: (total.test_mode, total.currency))  # live money first
    return totals
