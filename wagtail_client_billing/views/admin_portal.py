"""Revoke a client's portal links (GET asks, POST does it).

Needs the ``change_client`` permission (without it: no button, and a 403 here) and a
client the user may see (else a 404). What it does is :func:`..billing.portal.revoke_links`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.defaults import permission_denied
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.views.generic import WagtailAdminTemplateMixin

from .. import scope
from ..billing import portal
from ..conf import billing_settings
from ..models import Client, ClientPortalLinks

#: The permission an editor needs, as ``user.has_perm`` names it.
PERMISSION = "wagtail_client_billing.change_client"


def may_revoke(user: Any) -> bool:
    return bool(user.has_perm(PERMISSION))


class RevokePortalLinksView(WagtailAdminTemplateMixin, TemplateView):
    """The confirmation screen of "Revoke portal links"."""

    page_title = gettext_lazy("Revoke portal links")
    header_icon = "lock"
    template_name = "wagtail_client_billing/admin/portal/revoke.html"

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not may_revoke(request.user):
            return permission_denied(request, PermissionDenied())
        visible = scope.clients_for_user(request.user)
        found = visible.filter(pk=kwargs["pk"], erased_at__isnull=True).first()
        if found is None:
            raise Http404
        self.object: Client = found
        return super().dispatch(request, *args, **kwargs)

    def get_page_subtitle(self) -> str:
        return str(self.object)

    def next_url(self) -> str:
        candidate = self.request.GET.get("next") or self.request.POST.get("next") or ""
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={self.request.get_host()}, require_https=False
        ):
            return candidate
        return reverse("wagtail_client_billing_clients:list")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context.update(
            client=self.object,
            next=self.next_url(),
            action_url=self.request.get_full_path(),
            max_age=billing_settings.PORTAL_LINK_MAX_AGE,
            revoked_at=ClientPortalLinks.objects.filter(client=self.object)
            .values_list("revoked_at", flat=True)
            .first(),
        )
        return context

    def post(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        portal.revoke_links(self.object, user=request.user)
        messages.success(
            request,
            _("The portal links of %(client)s no longer work. New emails carry new links.")
            % {"client": self.object},
        )
        return HttpResponseRedirect(self.next_url())


urlpatterns = [
    path("<int:pk>/revoke-portal-links/", RevokePortalLinksView.as_view(), name="revoke"),
]


def revoke_url(client: Client) -> str:
    return reverse("wagtail_client_billing_portal:revoke", args=[client.pk])
