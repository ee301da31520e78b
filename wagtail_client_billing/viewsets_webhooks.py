"""The webhook event log in the Wagtail admin: read-only, with a Reprocess action.

An operator whose invoice did not turn Paid looks here: every Stripe event received,
its type, account, mode, outcome (processed, ignored with the reason, failed with the
error), when it arrived and was processed, filterable by outcome; a failed event's page
shows where applying it raised (its traceback). A failed or ignored
event can be applied again with **Reprocess** (after fixing what made it fail).

Nobody adds, edits or deletes events: they are the record of what Stripe said. The
permission policy refuses those actions to everyone, superusers included; viewing needs
``view_webhookevent`` and reprocessing ``change_webhookevent`` (labelled "Can change
webhook event" in the group editor).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from wagtail.admin.ui.tables import Column, DateColumn, StatusTagColumn
from wagtail.admin.views import generic
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.admin.widgets.button import Button

from .compat import pk_path_converter
from .models import WebhookDelivery, WebhookEvent, WebhookOutcome
from .permissions import webhook_event_permission_policy
from .scope import webhook_events_for_user
from .views.admin_webhooks import ReprocessView

permission_policy = webhook_event_permission_policy()


def can_reprocess(event: WebhookEvent) -> bool:
    return event.outcome in (WebhookOutcome.FAILED, WebhookOutcome.IGNORED)


class OutcomeColumn(StatusTagColumn):
    """The outcome as a status tag: failed stands out, processed is primary."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(
            name,
            accessor="get_outcome_display",
            primary=lambda event: event.outcome == WebhookOutcome.PROCESSED,
            **kwargs,
        )


class ModeColumn(Column):
    def get_value(self, instance: WebhookEvent) -> str:
        return _("Live") if instance.livemode else _("Test")


#: How old a kept delivery must be before the event log says no worker is storing them
#: (a worker takes one within ``WEBHOOK_QUEUE_DELAY``, a fraction of a second).
DELIVERY_OVERDUE = timedelta(minutes=1)


class WebhookEventIndexView(generic.IndexView):
    reprocess_url_name: str | None = None

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """The listing; for a superuser (who runs the workers), a warning when Stripe's
        deliveries wait to be stored: their events are not in the log yet."""
        if request.user.is_superuser and not getattr(self, "results_only", False):
            overdue = WebhookDelivery.objects.filter(
                received_at__lt=timezone.now() - DELIVERY_OVERDUE
            ).count()
            if overdue:
                messages.warning(
                    request,
                    ngettext(
                        "%(count)d delivery from Stripe has waited more than a minute to be "
                        "stored; its event shows here once a qcluster worker takes it. "
                        "Is qcluster running?",
                        "%(count)d deliveries from Stripe have waited more than a minute to "
                        "be stored; their events show here once a qcluster worker takes "
                        "them. Is qcluster running?",
                        overdue,
                    )
                    % {"count": overdue},
                )
        return super().get(request, *args, **kwargs)

    def get_base_queryset(self) -> Any:
        return webhook_events_for_user(self.request.user, super().get_base_queryset())

    def get_list_more_buttons(self, instance: WebhookEvent) -> list[Any]:
        buttons = super().get_list_more_buttons(instance)
        if can_reprocess(instance) and self.permission_policy.user_has_permission(
            self.request.user, "reprocess"
        ):
            buttons.append(
                Button(
                    _("Reprocess"),
                    url=reverse(self.reprocess_url_name, args=[quote(instance.pk)]),
                    icon_name="resubmit",
                    priority=40,
                )
            )
        return buttons


class WebhookEventInspectView(generic.InspectView):
    reprocess_url_name: str | None = None

    def get_object(self, queryset: Any = None) -> WebhookEvent:
        events = webhook_events_for_user(self.request.user)
        return get_object_or_404(events, pk=unquote(str(self.pk)))

    def get_payload_display_value(self) -> str:
        return format_html(
            "<pre style='white-space: pre-wrap; overflow-wrap: anywhere'>{}</pre>",
            json.dumps(self.object.payload, indent=2, sort_keys=True),
        )

    def get_traceback_display_value(self) -> str:
        return render_to_string(
            "wagtail_client_billing/admin/webhooks/traceback.html",
            {"event": self.object},
            request=self.request,
        )

    def get_fields_context(self) -> list[dict[str, Any]]:
        """The traceback only on the page of an event that has one (a failed event)."""
        return [
            self.get_context_for_field(name)
            for name in self.fields
            if name != "traceback" or self.object.traceback
        ]

    @property
    def header_more_buttons(self) -> list[Any]:
        buttons = list(super().header_more_buttons)
        if can_reprocess(self.object) and self.permission_policy.user_has_permission(
            self.request.user, "reprocess"
        ):
            buttons.append(
                Button(
                    _("Reprocess"),
                    url=reverse(self.reprocess_url_name, args=[quote(self.object.pk)]),
                    icon_name="resubmit",
                    priority=30,
                )
            )
        return buttons


class WebhookEventViewSet(ModelViewSet):
    """Stripe webhook events as received: a read-only log with Reprocess."""

    model = WebhookEvent
    permission_policy = permission_policy
    icon = "resubmit"
    menu_label = gettext_lazy("Stripe webhook events")
    menu_name = "client-billing-webhook-events"
    url_prefix = "client-billing/webhook-events"
    name = "client_billing_webhook_events"
    add_to_admin_menu = False
    inspect_view_enabled = True
    copy_view_enabled = False
    #: A log of what Stripe sent is not content other objects refer to; indexing it would
    #: cost every webhook delivery three more queries.
    add_to_reference_index = False
    index_view_class = WebhookEventIndexView
    inspect_view_class = WebhookEventInspectView
    list_filter = ["outcome", "type", "livemode"]
    search_fields = ["event_id", "type", "account"]
    list_display = [
        "type",
        "account",
        ModeColumn("livemode", label=gettext_lazy("Mode")),
        OutcomeColumn("outcome", label=gettext_lazy("Outcome")),
        "error",
        DateColumn("received_at", label=gettext_lazy("Received")),
        DateColumn("processed_at", label=gettext_lazy("Processed")),
    ]
    inspect_view_fields = [
        "event_id",
        "type",
        "account",
        "livemode",
        "outcome",
        "error",
        "traceback",
        "attempts",
        "received_at",
        "processed_at",
        "invoice",
        "payload",
    ]

    def get_index_view_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_index_view_kwargs(
            reprocess_url_name=self.get_url_name("reprocess"), **kwargs
        )

    def get_inspect_view_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_inspect_view_kwargs(
            reprocess_url_name=self.get_url_name("reprocess"), **kwargs
        )

    @property
    def reprocess_view(self):
        return self.construct_view(ReprocessView)

    def get_permissions_to_register(self):
        """Only view and change (reprocess): add and delete mean nothing for a log."""
        return (
            super()
            .get_permissions_to_register()
            .filter(codename__in=["view_webhookevent", "change_webhookevent"])
        )

    def get_common_view_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        """No view of this log links to add, edit, delete, copy, history or usage screens."""
        view_kwargs = super().get_common_view_kwargs(**kwargs)
        for name in ("add", "edit", "delete", "copy", "history", "usage"):
            view_kwargs[f"{name}_url_name"] = None
        return view_kwargs

    def get_urlpatterns(self):
        """Only the listing, the inspect view and Reprocess exist: nothing edits a log."""
        conv = pk_path_converter(self)
        return [
            path("", self.index_view, name="index"),
            path("results/", self.index_results_view, name="index_results"),
            path(f"inspect/<{conv}:pk>/", self.inspect_view, name="inspect"),
            path(f"reprocess/<{conv}:pk>/", self.reprocess_view, name="reprocess"),
        ]
