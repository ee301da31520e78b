"""The page chooser of the Add billing request form: the pages of the invoice's site.

"Publish this page when paid" and "Unpublish this page when expired" take a page of the
site the invoice is for. Wagtail's page chooser browses the whole tree from Root and
cannot be told about another field of the form, so these two fields use a chooser of
their own (Wagtail's generic :class:`~wagtail.admin.viewsets.chooser.ChooserViewSet`):
its widget sends the form's current site along (``linked_fields``), and the modal lists,
searches and accepts only that site's pages among those the editor may bill for
(:func:`..scope.pages_for_user`); the unpublish chooser only live ones.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy
from wagtail.admin.views.generic import chooser as chooser_views
from wagtail.admin.viewsets.chooser import ChooserViewSet
from wagtail.models import Page, Site

from .permissions import invoice_permission_policy
from .scope import pages_for_user, sites_for_user

#: The form field whose value names the invoice's site (the Add billing request form).
SITE_FIELD = "#id_site"


class _InvoiceSitePages:
    """The pages the modal offers: the linked site's, in the editor's scope."""

    request: Any
    live_only = False

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not invoice_permission_policy().user_has_any_permission(request.user, {"add", "change"}):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def site(self) -> Site | None:
        raw = str(self.request.GET.get("site") or "")
        if not raw.isdigit():
            return None
        return sites_for_user(self.request.user).filter(pk=int(raw)).first()

    def pages(self) -> QuerySet[Page]:
        site = self.site()
        if site is None and self.request.GET.get("site"):
            return Page.objects.none()
        pages = pages_for_user(self.request.user, site=site)
        return pages.filter(live=True) if self.live_only else pages

    def get_object_list(self) -> QuerySet[Page]:
        return self.pages()

    def get_object(self, pk: Any) -> Page:
        return self.pages().get(pk=pk).specific


class PageChooseView(_InvoiceSitePages, chooser_views.ChooseView):
    pass


class PageChooseResultsView(_InvoiceSitePages, chooser_views.ChooseResultsView):
    pass


class PageChosenView(_InvoiceSitePages, chooser_views.ChosenView):
    pass


class LivePageChooseView(PageChooseView):
    live_only = True


class LivePageChooseResultsView(PageChooseResultsView):
    live_only = True


class LivePageChosenView(PageChosenView):
    live_only = True


class InvoicePageChooserViewSet(ChooserViewSet):
    """Choose a page of the invoice's site."""

    model = Page
    icon = "doc-empty-inverse"
    choose_one_text = gettext_lazy("Choose a page")
    choose_another_text = gettext_lazy("Choose another page")
    page_title = gettext_lazy("Choose a page of the invoice's site")
    preserve_url_parameters = ["multiple", "site"]
    choose_view_class = PageChooseView
    choose_results_view_class = PageChooseResultsView
    chosen_view_class = PageChosenView
    ordering = "path"

    def get_urlpatterns(self) -> list[Any]:
        # One page at a time, and no creation: Wagtail's generic "chosen multiple" and
        # "create" views would read and make pages outside the invoice's site.
        return [
            pattern
            for pattern in super().get_urlpatterns()
            if getattr(pattern, "name", None) not in ("create", "chosen_multiple")
        ]

    def widget(self) -> Any:
        """The form widget: sends the form's chosen site to the modal."""
        return self.widget_class(linked_fields={"site": SITE_FIELD})


class LivePageChooserViewSet(InvoicePageChooserViewSet):
    """Choose a live page of the invoice's site (to unpublish)."""

    page_title = gettext_lazy("Choose a live page of the invoice's site")
    choose_view_class = LivePageChooseView
    choose_results_view_class = LivePageChooseResultsView
    chosen_view_class = LivePageChosenView


page_chooser = InvoicePageChooserViewSet(
    "wagtail_client_billing_pages", url_prefix="client-billing/choose-page"
)
live_page_chooser = LivePageChooserViewSet(
    "wagtail_client_billing_live_pages", url_prefix="client-billing/choose-live-page"
)
