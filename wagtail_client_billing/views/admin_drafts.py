"""Admin screens of drafts: edit a draft (every field of the create form), send it.

A draft is a billing request saved unsent (:func:`..billing.invoices.save_draft`): no
number, no email, not payable. Its edit screen saves it again or sends it; the send
screen (from the inspect page and the listing) asks, then sends. What each does is
:mod:`..billing.invoices`'s; the views handle forms, messages and redirects.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.ui.components import MediaContainer
from wagtail.admin.utils import get_valid_next_url_from_request
from wagtail.admin.views.generic import WagtailAdminTemplateMixin
from wagtail.admin.views.generic.permissions import PermissionCheckedMixin
from wagtail.snippets.views.snippets import EditView

from ..billing import invoices, lines
from ..models import Invoice
from ..scope import invoices_for_user
from .admin_invoices import InvoiceCreateView, InvoiceScopeMixin, _url

#: The name of the submit button that sends the draft from its edit form.
SEND_ACTION = "action-send"


def sent_message(invoice: Invoice) -> str:
    return _("Billing request %(number)s sent to %(email)s") % {
        "number": invoice.number,
        "email": invoice.email,
    }


class InvoiceDraftEditView(EditView):
    """Edit a draft with the create form's fields; "Save draft" or "Send"."""

    page_title = gettext_lazy("Edit draft")
    submit_button_label = gettext_lazy("Save draft")
    submit_button_active_label = gettext_lazy("Saving…")
    template_name = "wagtail_client_billing/admin/invoices/edit_draft.html"
    error_message = gettext_lazy("The draft could not be saved due to errors.")

    def get_queryset(self) -> Any:
        return invoices_for_user(self.request.user, Invoice.objects.select_related("site"))

    object: Invoice

    def get_object(self, queryset: Any = None) -> Invoice:
        invoice: Invoice = super().get_object(queryset)
        if invoice.is_draft and lines.is_quick(invoice):
            # A draft made the quick way is edited as it was made, by its amount and
            # description, not as the one line they stand for (saving makes it anew).
            invoice.lines = []
        return invoice

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.object.is_draft:
            messages.error(request, _("Only a draft can be edited like this."))
            return redirect(_url("inspect", self.object))
        response: HttpResponse = super().dispatch(request, *args, **kwargs)
        return response

    def get_page_subtitle(self) -> str:
        return _("Draft for %(email)s") % {"email": self.object.email}

    def get_edit_url(self) -> str:
        return _url("edit_draft", self.object)

    def get_side_panels(self) -> MediaContainer:
        return MediaContainer([])

    def form_valid(self, form: Any) -> HttpResponse:
        self.form = form
        try:
            invoices.check_new(self.request, form.instance)
        except ValidationError as exc:
            InvoiceCreateView._add_errors(form, exc)
            self.produced_error_code = "validation_error"
            self.produced_error_message = self.get_error_message()
            return self.form_invalid(form)
        try:
            invoice = invoices.update_draft(form.save(commit=False), user=self.request.user)
        except invoices.NotAllowed as exc:
            messages.error(self.request, str(exc))
            return redirect(_url("inspect", self.object))
        form.save_m2m()
        self.object = invoice
        if SEND_ACTION not in self.request.POST:
            messages.success(self.request, _("Draft saved. It has not been sent."))
            return redirect(self.get_edit_url())
        try:
            invoices.send(invoice, user=self.request.user)
        except invoices.NotAllowed as exc:
            messages.error(self.request, _("Draft saved, not sent: %(reason)s") % {"reason": exc})
            return redirect(self.get_edit_url())
        messages.success(
            self.request,
            sent_message(invoice),
            buttons=[messages.button(_url("inspect", invoice), _("View"))],
        )
        return redirect(reverse(self.index_url_name))

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["send_action"] = SEND_ACTION
        return context


class InvoiceSendView(
    InvoiceScopeMixin, PermissionCheckedMixin, WagtailAdminTemplateMixin, TemplateView
):
    """Send a draft: GET asks, POST numbers it, starts its lifetime and emails it."""

    model = Invoice
    permission_required = "change"
    page_title = gettext_lazy("Send draft")
    header_icon = "mail"
    template_name = "wagtail_client_billing/admin/invoices/send.html"
    index_url_name: str | None = None
    inspect_url_name: str | None = None

    def setup(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().setup(request, *args, **kwargs)
        self.object = self.get_object()

    def get_page_subtitle(self) -> str:
        return _("Draft for %(email)s") % {"email": self.object.email}

    def get_success_url(self) -> str:
        return get_valid_next_url_from_request(self.request) or _url("inspect", self.object)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context.update(
            object=self.object,
            can_send=self.object.is_draft,
            lifetime=invoices.lifetime(self.object),
            next=self.get_success_url(),
            action_url=self.request.get_full_path(),
        )
        return context

    def post(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        invoice = self.object
        try:
            invoices.check_new(request, invoice)
            invoices.send(invoice, user=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        except invoices.NotAllowed as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, sent_message(invoice))
        return HttpResponseRedirect(self.get_success_url())
