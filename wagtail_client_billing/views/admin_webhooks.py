"""Admin: reprocess a stored Stripe webhook event (the webhook event log's one action).

GET asks for confirmation, POST applies the event again through
:func:`wagtail_client_billing.webhooks.intake.process` with ``force=True``: the same code path
as a delivery from Stripe, in one transaction, recording the new outcome. Meant for an
event that failed (a bug or an outage fixed since) or was ignored (an account connected
only after its event arrived). Applying is idempotent, so a second reprocess is harmless.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import quote
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView
from wagtail.admin.views.generic.base import BaseObjectMixin, WagtailAdminTemplateMixin
from wagtail.admin.views.generic.permissions import PermissionCheckedMixin

from ..models import WebhookEvent, WebhookOutcome
from ..scope import webhook_events_for_user
from ..webhooks import intake


class ReprocessView(
    PermissionCheckedMixin, BaseObjectMixin, WagtailAdminTemplateMixin, TemplateView
):
    model = WebhookEvent
    permission_required = "reprocess"
    template_name = "wagtail_client_billing/admin/webhooks/reprocess.html"
    page_title = gettext_lazy("Reprocess webhook event")
    header_icon = "resubmit"
    index_url_name: str | None = None
    inspect_url_name: str | None = None

    def get_base_object_queryset(self) -> Any:
        return webhook_events_for_user(self.request.user, super().get_base_object_queryset())

    def get_page_subtitle(self) -> str:
        return str(self.object)

    def get_breadcrumbs_items(self) -> list[dict[str, Any]]:
        items = [{"url": reverse(self.index_url_name), "label": _("Stripe webhook events")}]
        items.append({"url": self.inspect_url, "label": str(self.object)})
        items.append({"url": "", "label": str(self.page_title)})
        return self.breadcrumbs_items + items

    @property
    def inspect_url(self) -> str:
        return reverse(self.inspect_url_name, args=[quote(self.object.pk)])

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(event=self.object, inspect_url=self.inspect_url)
        return context

    def post(self, request, *args, **kwargs):
        receipt = intake.process(self.object.pk, force=True)
        outcome = receipt.record.outcome
        if outcome == WebhookOutcome.FAILED:
            messages.error(
                request,
                _("Reprocessing failed again: %(error)s") % {"error": receipt.record.error},
            )
        elif outcome == WebhookOutcome.IGNORED:
            messages.warning(
                request,
                _("The event was ignored: %(reason)s") % {"reason": receipt.record.error},
            )
        else:
            messages.success(request, _("The event was reprocessed."))
        return redirect(self.inspect_url)
