"""Cancel a recurring invoice's subscription, now or at the period's end, or undo a
cancellation scheduled for the period's end (GET asks, POST does it).

Needs the ``cancel_subscription`` permission (without it: no button, and a 403 here)
and an invoice on a site the user may bill for (else a 404). What it does is
:mod:`..billing.subscriptions`'s; a Stripe error becomes a plain message.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.defaults import permission_denied
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.views.generic import WagtailAdminTemplateMixin

from .. import gateway
from ..billing import subscriptions
from ..models import Invoice
from .admin_invoices import InvoiceScopeMixin

#: The permission an editor needs, as ``user.has_perm`` names it.
PERMISSION = "wagtail_client_billing.cancel_subscription"

#: What the form may ask: ``action`` -> (function, its success message).
ACTIONS = ("cancel_now", "cancel_at_period_end", "undo")


def may_cancel(user: Any) -> bool:
    return bool(user.has_perm(PERMISSION))


class InvoiceSubscriptionView(InvoiceScopeMixin, WagtailAdminTemplateMixin, TemplateView):
    """The subscription's cancellation screen."""

    page_title = gettext_lazy("Cancel subscription")
    header_icon = "cross"
    template_name = "wagtail_client_billing/admin/invoices/subscription.html"

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not may_cancel(request.user):
            # A 403, not Wagtail's redirect to the dashboard: the URL is not for this user,
            # and a script that posts to it learns so plainly.
            return permission_denied(request, PermissionDenied())
        self.object = self.get_object()
        return super().dispatch(request, *args, **kwargs)

    def get_page_subtitle(self) -> str:
        return str(self.object)

    def inspect_url(self) -> str:
        viewset = Invoice.snippet_viewset
        return reverse(viewset.get_url_name("inspect"), args=[quote(self.object.pk)])

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context.update(
            object=self.object,
            invoice=self.object,
            next=self.inspect_url(),
            action_url=self.request.get_full_path(),
        )
        return context

    def post(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        invoice = self.object
        action = request.POST.get("action")
        if action not in ACTIONS:
            messages.error(request, _("Choose what to do with the subscription."))
            return HttpResponseRedirect(request.get_full_path())
        try:
            if action == "undo":
                subscriptions.undo_cancellation(invoice, user=request.user)
                done = _("The subscription of %(number)s renews again.")
            else:
                at_end = action == "cancel_at_period_end"
                subscriptions.cancel(invoice, at_period_end=at_end, user=request.user)
                done = (
                    _("The subscription of %(number)s ends when the current period ends.")
                    if at_end
                    else _("The subscription of %(number)s is cancelled.")
                )
        except subscriptions.CannotCancel as exc:
            messages.error(request, str(exc))
        except gateway.GatewayError as error:
            messages.error(
                request,
                _("Stripe did not change the subscription: %(error)s") % {"error": error},
            )
        else:
            messages.success(request, done % {"number": invoice.number})
        return HttpResponseRedirect(self.inspect_url())
