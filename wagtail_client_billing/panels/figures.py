"""The live total under the request form's tax and discount: ``wcb-figures``.

A small Stimulus controller (registered with Wagtail's own Stimulus application, no
other framework) posts the form to the ``figures`` URL of the invoice viewset as the
editor types, and shows the rows it answers: the same figures the email will show.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.urls import reverse
from wagtail.admin.panels import Panel


class FiguresPanel(Panel):
    class BoundPanel(Panel.BoundPanel):
        template_name = "wagtail_client_billing/admin/invoices/figures_panel.html"

        def get_context_data(self, parent_context: Any = None) -> dict[str, Any]:
            context: dict[str, Any] = super().get_context_data(parent_context)
            context["figures_url"] = reverse("wagtail_client_billing_invoices:figures")
            return context

        @property
        def media(self) -> forms.Media:
            return forms.Media(js=["wagtail_client_billing/js/figures.js"])
