"""Admin screens that do something to billing requests: create, send new, resend, delete.

Every view here checks the model permission it needs (``add``, ``change``, ``delete``)
and loads invoices only from the sites the user may bill for (:func:`..scope.invoices_for_user`),
so another site's invoice in a URL is a 404. What each action does is
:mod:`..billing.invoices`'s; the views handle the forms, messages and redirects.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.functional import cached_property, classproperty
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.ui.components import MediaContainer
from wagtail.admin.utils import get_valid_next_url_from_request
from wagtail.admin.views.bulk_action import BulkAction
from wagtail.admin.views.generic import WagtailAdminTemplateMixin
from wagtail.admin.views.generic.permissions import PermissionCheckedMixin
from wagtail.snippets.views.snippets import CreateView, DeleteView

from .. import lifecycle, status
from ..billing import invoices
from ..conf import billing_settings
from ..forms import lines
from ..forms.invoices import test_only_site_ids
from ..models import ClientBillingSettings, Invoice
from ..permissions import invoice_permission_policy
from ..scope import clients_for_user, invoices_for_user
from ..viewsets_pages import live_page_chooser, page_chooser

#: The name of the create form's "Save draft" button.
DRAFT_ACTION = "action-draft"


class InvoiceScopeMixin:
    """Load the invoice of the URL from the sites the user may bill for, or 404."""

    pk_url_kwarg = "pk"
    request: Any
    kwargs: dict[str, Any]

    def get_invoice_queryset(self) -> QuerySet[Invoice]:
        return invoices_for_user(
            self.request.user,
            Invoice.objects.select_related("site", "account", "created_by", "deleted_by"),
        )

    def get_object(self, queryset: Any = None) -> Invoice:
        pk = unquote(str(self.kwargs[self.pk_url_kwarg]))
        invoice: Invoice = get_object_or_404(self.get_invoice_queryset(), pk=pk)
        return invoice


def _url(name: str, invoice: Invoice) -> str:
    return reverse(Invoice.snippet_viewset.get_url_name(name), args=[quote(invoice.pk)])


# --- create and send new --------------------------------------------------------------------


class InvoiceCreateView(CreateView):
    """Add billing request: the form, then :func:`..billing.invoices.create`.

    The access scope and the ``client_billing_before_create_invoice`` hook
    (:func:`..billing.invoices.check_new`) run once the form is otherwise valid; what
    they refuse is shown on the form.
    """

    page_subtitle = gettext_lazy("Billing request")
    submit_button_label = gettext_lazy("Send billing request")
    submit_button_active_label = gettext_lazy("Sending…")
    error_message = gettext_lazy("The billing request could not be sent due to errors.")
    inspect_url_name: str | None = None

    def get_initial(self) -> dict[str, Any]:
        initial: dict[str, Any] = super().get_initial()
        site_id = self.request.GET.get("site")
        if site_id and site_id.isdigit():
            initial["site"] = int(site_id)
            settings = ClientBillingSettings.objects.filter(site_id=int(site_id)).first()
            initial["currency"] = settings.currency if settings else None
        client_id = self.request.GET.get("client")
        if client_id and client_id.isdigit():  # "Add billing request" on a client's page
            visible = clients_for_user(self.request.user).filter(erased_at__isnull=True)
            if visible.filter(pk=int(client_id)).exists():
                initial["client"] = int(client_id)
        return initial

    def get_form(self, form_class: Any = None) -> Any:
        form = super().get_form(form_class)
        # Wagtail's chooser modal, limited to the site chosen in the form, not a dropdown.
        for name, chooser in (
            ("publish_page_when_paid", page_chooser),
            ("unpublish_page_when_expired", live_page_chooser),
        ):
            if name in form.fields:
                form.fields[name].widget = chooser.widget()
        if not form.is_bound and not form.initial.get("currency"):
            form.initial["currency"] = form.instance.currency or billing_settings.CURRENCIES[0]
        return form

    def form_valid(self, form: Any) -> HttpResponse:
        # Checked here, not in is_valid(): Wagtail calls that only from 7.3 on.
        try:
            invoices.check_new(self.request, form.instance)
        except ValidationError as exc:
            self._add_errors(form, exc)
        if form.errors:
            self.produced_error_code = "validation_error"
            self.produced_error_message = self.get_error_message()
            return self.form_invalid(form)
        return super().form_valid(form)

    @staticmethod
    def _add_errors(form: Any, exc: ValidationError) -> None:
        if hasattr(exc, "error_dict"):
            for field, errors in exc.error_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, exc)

    @property
    def saving_draft(self) -> bool:
        """The editor pressed "Save draft": saved unsent (see :mod:`.admin_drafts`)."""
        return bool(self.request.POST.get(DRAFT_ACTION))

    def save_instance(self) -> Invoice:
        if self.saving_draft:
            invoice = invoices.save_draft(self.form.save(commit=False), user=self.request.user)
        else:
            invoice = invoices.create(self.form.save(commit=False), user=self.request.user)
        self.form.save_m2m()
        return invoice

    def get_success_message(self, instance: Invoice) -> str:
        if instance.is_draft:
            return _("Draft for %(email)s saved. It has not been sent.") % {"email": instance.email}
        return _("Billing request %(number)s sent to %(email)s") % {
            "number": instance.label,
            "email": instance.email,
        }

    def get_success_buttons(self) -> list[Any]:
        return [messages.button(_url("inspect", self.object), _("View"))]

    def get_success_url(self) -> str:
        if self.object is not None and self.object.is_draft:
            return _url("edit_draft", self.object)
        return get_valid_next_url_from_request(self.request) or reverse(self.index_url_name)

    def get_side_panels(self) -> MediaContainer:
        return MediaContainer([])

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["next"] = get_valid_next_url_from_request(self.request)
        context["copied_from"] = getattr(self, "source", None)
        context["draft_action"] = DRAFT_ACTION
        # Each offered site's default currency, so picking a site can preselect it.
        sites = self.form.fields["site"].queryset if "site" in self.form.fields else []
        context["site_currencies"] = {
            str(settings.site_id): settings.currency
            for settings in ClientBillingSettings.objects.filter(site__in=sites)
        }
        context["line_catalogue_json"] = json.dumps(lines.catalogue(self.request.user))
        context["currency_exponents_json"] = json.dumps(
            lines.currency_exponents(billing_settings.CURRENCIES)
        )
        context["test_only_sites"] = [str(pk) for pk in sorted(test_only_site_ids(sites))]
        return context

    def get_add_url(self) -> str:
        url: str = super().get_add_url()
        if self.request.GET:
            url += "?" + self.request.GET.urlencode()
        return url


class InvoiceSendNewView(InvoiceScopeMixin, InvoiceCreateView):
    """Send new invoice: the create form, filled from an expired or deleted invoice
    (:func:`..billing.invoices.copy`).

    An expired link is never revived; the client gets a new invoice with its own number
    and link, and ``copied_from`` keeps the trail.
    """

    def setup(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().setup(request, *args, **kwargs)
        self.source = self.get_object()

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        # Only users who may add are told why; the others get the permission error below.
        if self.user_has_permission("add"):
            try:
                self.new_request = invoices.copy(self.source)
            except invoices.NotAllowed as exc:
                messages.error(request, str(exc))
                return redirect(_url("inspect", self.source))
        response: HttpResponse = super().dispatch(request, *args, **kwargs)
        return response

    def get_initial_form_instance(self) -> Invoice:
        return self.new_request

    def get_add_url(self) -> str:
        return _url("copy", self.source)


# --- resend ----------------------------------------------------------------------------------


class InvoiceResendView(
    InvoiceScopeMixin, PermissionCheckedMixin, WagtailAdminTemplateMixin, TemplateView
):
    """Resend email: queue the same invoice email again (GET asks, POST does it)."""

    model = Invoice
    permission_required = "change"
    page_title = gettext_lazy("Resend email")
    header_icon = "mail"
    template_name = "wagtail_client_billing/admin/invoices/resend.html"
    index_url_name: str | None = None
    inspect_url_name: str | None = None

    def setup(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().setup(request, *args, **kwargs)
        self.object = self.get_object()

    def get_page_subtitle(self) -> str:
        return self.object.label

    def get_breadcrumbs_items(self) -> list[dict[str, Any]]:
        # Without them Wagtail's header reads "Home" and hides the page's heading.
        viewset = Invoice.snippet_viewset
        return [
            *self.breadcrumbs_items,
            {"url": reverse(viewset.get_url_name("list")), "label": viewset.menu_label},
            {"url": _url("inspect", self.object), "label": self.object.label},
            {"url": "", "label": self.get_page_title()},
        ]

    def get_success_url(self) -> str:
        return get_valid_next_url_from_request(self.request) or _url("inspect", self.object)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context.update(
            object=self.object,
            can_resend=self.object.is_payable,
            next=self.get_success_url(),
            action_url=self.request.get_full_path(),
        )
        return context

    def post(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        invoice = self.object
        try:
            invoices.resend(invoice)
        except invoices.NotAllowed as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("Billing request %(number)s will be sent again to %(email)s")
                % {"number": invoice.label, "email": invoice.email},
            )
        return HttpResponseRedirect(self.get_success_url())


# --- delete ----------------------------------------------------------------------------------


class InvoiceDeleteView(InvoiceScopeMixin, DeleteView):
    """Delete: a soft delete to status Deleted (:func:`..billing.invoices.delete`);
    refused once money has moved."""

    page_title = gettext_lazy("Delete billing request")
    inspect_url_name: str | None = None
    usage_url_name = None

    def get_usage_url(self) -> None:
        return None

    def get_usage(self) -> None:
        return None

    @property
    def confirmation_message(self) -> str:
        if self.object.is_draft:
            return _(
                "Discard this draft for %(email)s? It was never sent; the record stays, "
                "marked Deleted."
            ) % {"email": self.object.email}
        return _(
            "Delete billing request %(number)s? The client can no longer pay its link. "
            "The record stays, marked Deleted, and you can send a new one from it."
        ) % {"number": self.object.label}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["can_be_deleted"] = self.object.can_be_deleted
        context["refusal"] = self.object.deletion_refusal or None
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        invoice = self.object
        try:
            changed = invoices.delete(invoice, user=self.request.user)
        except lifecycle.TransitionNotAllowed as exc:
            messages.error(self.request, str(exc))
            return redirect(_url("inspect", invoice))
        if changed:
            messages.success(
                self.request,
                _("Billing request %(number)s deleted. Its payment link no longer works.")
                % {"number": invoice.label},
                buttons=[messages.button(_url("copy", invoice), _("Send new invoice"))],
            )
        else:
            messages.error(self.request, invoice.deletion_refusal)
            return redirect(_url("inspect", invoice))
        return redirect(self.get_success_url())


class InvoiceDeleteBulkAction(BulkAction):
    """Bulk delete from the listing: soft-deletes the pending and expired invoices chosen
    (:func:`..billing.invoices.delete_many`).

    Replaces Wagtail's snippet bulk delete for invoices (registered with a later hook
    order in ``wagtail_hooks.py``), which would remove the rows from the database.
    """

    display_name = gettext_lazy("Delete")
    action_type = "delete"
    aria_label = gettext_lazy("Delete selected billing requests")
    template_name = "wagtail_client_billing/admin/invoices/bulk_delete.html"
    action_priority = 30
    classes = {"serious"}

    @classproperty
    def models(cls) -> list[type[Invoice]]:
        return [Invoice]

    @cached_property
    def permission_policy(self) -> Any:
        return invoice_permission_policy()

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # Wagtail's bulk actions list the chosen items a user may not act on; without the
        # delete permission that would show invoice numbers to someone who may see none.
        if not self.permission_policy.user_has_permission(request.user, "delete"):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def get_all_objects_in_listing_query(self, parent_id: Any) -> Any:
        return (
            invoices_for_user(self.request.user)
            .filter(status__in=status.deletable_values())
            .values_list("pk", flat=True)
        )

    def get_queryset(self, model: Any, object_ids: Any) -> Any:
        return list(
            invoices_for_user(
                self.request.user, Invoice.objects.select_related("site").filter(pk__in=object_ids)
            )
        )

    def check_perm(self, invoice: Invoice) -> bool:
        return bool(
            self.permission_policy.user_has_permission(self.request.user, "delete")
            and invoice.can_be_deleted
        )

    def get_execution_context(self) -> dict[str, Any]:
        return {"user": self.request.user}

    @classmethod
    def execute_action(cls, objects: list[Invoice], user: Any = None, **kwargs: Any) -> Any:
        return invoices.delete_many(objects, user=user), 0

    def get_success_message(self, num_parent_objects: int, num_child_objects: int) -> str:
        return ngettext(
            "%(count)d billing request deleted.",
            "%(count)d billing requests deleted.",
            num_parent_objects,
        ) % {"count": num_parent_objects}

    def object_context(self, invoice: Invoice) -> dict[str, Any]:
        return {"item": invoice, "inspect_url": _url("inspect", invoice)}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["header_icon"] = Invoice.snippet_viewset.icon
        return context
