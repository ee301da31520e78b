"""The invoice's PDF from its inspect page: the stored file the client was emailed.

The invoice is looked up through the access scope (an invoice of a site the editor may
not bill for is a 404) and the editor needs the view permission on invoices (else 403);
Wagtail's admin sends a visitor who is not logged in to the login page.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBase
from django.views.generic import View

from .. import documents
from ..models import Invoice
from .admin_invoices import InvoiceScopeMixin


class InvoicePdfView(InvoiceScopeMixin, View):
    http_method_names = ["get"]

    def get(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        policy = Invoice.snippet_viewset.permission_policy
        if not policy.user_has_any_permission(request.user, ["view", "change"]):
            raise PermissionDenied
        response = documents.pdf_response(self.get_object(), as_attachment=True)
        response["Cache-Control"] = "private, no-store"
        return response
