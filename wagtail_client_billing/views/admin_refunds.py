"""Refund a payment: the form, a confirmation saying what happens, then the refund.

Needs the app's ``refund_invoice`` permission (a 403 without it) and an invoice of a site
the user may bill for (a 404 otherwise). What a refund does is
:func:`..billing.refunds.request_refund`'s; this view handles the form, the confirmation
and the messages. The confirmation carries the form's ``request_key``, so confirming twice
(a double click, or again after Stripe did not answer) makes one refund.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, HttpResponseBase, HttpResponseForbidden, HttpResponseRedirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.views.generic import WagtailAdminTemplateMixin
from wagtail.admin.views.generic.permissions import PermissionCheckedMixin

from ..billing import receipts, refunds
from ..forms.refunds import RefundForm
from ..models import Invoice, site_display_name
from ..money import format_money
from ..permissions import invoice_permission_policy
from .admin_invoices import InvoiceScopeMixin, _url


class InvoiceRefundView(
    InvoiceScopeMixin, PermissionCheckedMixin, WagtailAdminTemplateMixin, TemplateView
):
    model = Invoice
    permission_required = "refund"
    page_title = gettext_lazy("Refund")
    header_icon = "undo"
    template_name = "wagtail_client_billing/admin/invoices/refund.html"

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # A plain 403, not Wagtail's redirect to the dashboard: an editor without the
        # permission who follows a link learns that they may not, and nothing is loaded.
        if not invoice_permission_policy().user_has_permission(request.user, "refund"):
            return HttpResponseForbidden(_("You do not have permission to refund invoices."))
        self.object = self.get_object()
        self.payments = refunds.refundable_payments(self.object)
        response: HttpResponseBase = super().dispatch(request, *args, **kwargs)
        return response

    def get_page_subtitle(self) -> str:
        return str(self.object)

    def get_form(self) -> RefundForm:
        data = self.request.POST if self.request.method == "POST" else None
        return RefundForm(data, payments=self.payments, currency=self.object.currency)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        invoice = self.object
        context.update(
            object=invoice,
            invoice=invoice,
            refusal=self._refusal(),
            inspect_url=_url("inspect", invoice),
            action_url=self.request.get_full_path(),
            site_name=site_display_name(invoice.site),
            fee_refunded=refunds.site_refunds_application_fee(invoice),
            invoice_site_sends_receipts=receipts.site_sends_receipts(invoice),
        )
        context.setdefault("form", self.get_form())
        return context

    def _refusal(self) -> str:
        invoice = self.object
        if invoice.status not in ("paid", "partially_refunded", "refunded"):
            return _("Only a paid invoice can be refunded; %(number)s is %(status)s.") % {
                "number": invoice.number,
                "status": invoice.get_status_display(),
            }
        if not self.payments:
            return _("Everything %(number)s received has been refunded already.") % {
                "number": invoice.number
            }
        return ""

    def post(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        form = self.get_form()
        if self._refusal() or not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        payment, amount = form.cleaned_data["payment"], form.cleaned_data["amount"]
        if "confirm" not in request.POST:
            return self.render_to_response(
                self.get_context_data(
                    form=form,
                    confirming=True,
                    payment=payment,
                    amount=format_money(amount, payment.currency),
                    left_after=format_money(payment.refundable_amount - amount, payment.currency),
                    full=amount == payment.refundable_amount,
                    reason_label=dict(form.fields["reason"].choices).get(  # type: ignore[attr-defined]
                        form.cleaned_data["reason"], ""
                    ),
                )
            )
        try:
            refund = refunds.request_refund(
                self.object,
                payment=payment,
                amount=amount,
                reason=form.cleaned_data["reason"],
                note=form.cleaned_data["note"],
                user=request.user,
                request_key=form.cleaned_data["request_key"],
            )
        except refunds.RefundRefused as exc:
            messages.error(request, str(exc))
            return self.render_to_response(self.get_context_data(form=form))
        if refund.status == "failed":
            messages.error(
                request,
                _("Stripe could not refund %(amount)s: %(reason)s")
                % {"amount": refund.formatted_amount, "reason": refund.failure_reason or "-"},
            )
        else:
            messages.success(
                request,
                _("%(amount)s of %(number)s refunded to %(email)s.")
                % {
                    "amount": refund.formatted_amount,
                    "number": self.object.number,
                    "email": self.object.email,
                },
            )
        return HttpResponseRedirect(_url("inspect", self.object))
