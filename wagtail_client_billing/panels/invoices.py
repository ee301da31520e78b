"""The Invoices tab: this site's billing requests and "+ Add billing request".

It lists the same invoices as the global listing (Client billing -> Invoices), for one
site, newest first and paginated, without the filters. It has no form fields: creating
a request is its own screen, reached with the site already chosen.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.urls import reverse
from django.utils.http import urlencode
from wagtail.admin.panels import Panel

from ..models import Invoice, settings_url
from ..permissions import invoice_permission_policy
from ..scope import can_use_client_billing

#: The query-string parameter of the tab's page number (the settings form owns ``p``).
PAGE_PARAM = "invoices_page"


class SiteInvoicesPanel(Panel):
    """Lists the site's invoices to users with any invoice permission for that site."""

    #: Invoices per page of the tab.
    per_page = 20

    class BoundPanel(Panel.BoundPanel):
        template_name = "wagtail_client_billing/admin/invoices/site_panel.html"

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.site = getattr(self.instance, "site", None)

        def is_shown(self) -> bool:
            if self.site is None or self.request is None:
                return False
            user = self.request.user
            if not invoice_permission_policy().user_has_any_permission(
                user, {"add", "change", "delete", "view"}
            ):
                return False
            return can_use_client_billing(self.request, self.site)

        def get_context_data(self, parent_context: Any = None) -> dict[str, Any]:
            context: dict[str, Any] = super().get_context_data(parent_context)
            site = self.site
            assert site is not None  # is_shown() is False without a site
            viewset = Invoice.snippet_viewset
            queryset = (
                Invoice.objects.visible()
                .filter(site=self.site)
                .select_related("site")
                .order_by("-created_at", "-pk")
            )
            paginator = Paginator(queryset, self.panel.per_page)
            page = paginator.get_page(self.request.GET.get(PAGE_PARAM))
            can_add = invoice_permission_policy().user_has_permission(self.request.user, "add")
            add_url = ""
            if can_add:
                add_url = (
                    reverse(viewset.get_url_name("add"))
                    + "?"
                    + urlencode({"site": site.pk, "next": settings_url(site, "invoices")})
                )
            context.update(
                site=self.site,
                page=page,
                page_param=PAGE_PARAM,
                add_url=add_url,
                listing_url=reverse(viewset.get_url_name("list")) + f"?site={site.pk}",
                inspect_url_name=viewset.get_url_name("inspect"),
            )
            return context
