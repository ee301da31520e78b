"""The billing overview on the Wagtail dashboard: a home panel and a summary item.

Registered by ``wagtail_hooks`` (``construct_homepage_panels`` and
``construct_homepage_summary_items``); the figures are :mod:`..billing.overview`'s.
Both are shown to users with any of the app's invoice permissions; the panel's rows
are computed once per request and shared with the summary item.
"""

from __future__ import annotations

from typing import Any

from django.forms import Media
from wagtail.admin.site_summary import SummaryItem
from wagtail.admin.ui.components import Component

from ..billing.overview import Line, listing_url, overview
from ..permissions import invoice_permission_policy

TEMPLATE_DIR = "wagtail_client_billing/admin/overview/"


def may_see_overview(user: Any) -> bool:
    """Whether ``user`` has any of the app's invoice permissions."""
    return bool(
        invoice_permission_policy().user_has_any_permission(
            user, ["add", "change", "delete", "view"]
        )
    )


def _lines(request: Any) -> list[Line]:
    lines = getattr(request, "_client_billing_overview", None)
    if lines is None:
        lines = overview(request.user)
        request._client_billing_overview = lines
    return lines


class BillingOverviewPanel(Component):
    """The dashboard panel: one table row per :data:`..billing.overview.ROWS` entry."""

    name = "client_billing_overview"
    order = 150
    template_name = TEMPLATE_DIR + "panel.html"

    def __init__(self, request: Any) -> None:
        self.request = request

    def get_context_data(self, parent_context: Any = None) -> dict[str, Any]:
        return {"lines": _lines(self.request), "listing_url": listing_url()}

    @property
    def media(self) -> Media:
        return Media(css={"all": ["wagtail_client_billing/admin/overview.css"]})


class OutstandingSummaryItem(SummaryItem):
    """The dashboard summary: how many billing requests are outstanding."""

    order = 500
    template_name = TEMPLATE_DIR + "summary_item.html"

    def get_context_data(self, parent_context: Any = None) -> dict[str, Any]:
        line = next(line for line in _lines(self.request) if line.name == "outstanding")
        return {"line": line}

    def is_shown(self) -> bool:
        return may_see_overview(self.request.user)
