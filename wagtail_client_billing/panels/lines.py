"""The lines of the Add billing request form: Wagtail's InlinePanel with the line form.

Wagtail's InlinePanel gives each line its add, delete and reorder controls; this one
builds its forms from :class:`..forms.lines.InvoiceLineForm` (the unit price in the
currency's main unit, the site's catalogue) and hands them the editor, whose sites the
catalogue is limited to.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import FieldPanel, FieldRowPanel, InlinePanel

from ..forms.lines import LINES, InvoiceLineForm


class LinesPanel(InlinePanel):
    def __init__(self, relation_name: str = LINES, **kwargs: Any) -> None:
        kwargs.setdefault(
            "panels",
            [
                FieldPanel("product"),
                FieldPanel("description"),
                FieldRowPanel([FieldPanel("quantity"), FieldPanel("unit_price")]),
            ],
        )
        kwargs.setdefault("heading", _("Lines"))
        kwargs.setdefault("label", _("Line"))
        kwargs.setdefault(
            "help_text",
            _(
                "Optional: bill several items, each a quantity at a unit price. Without "
                "lines, the request is the amount and description above."
            ),
        )
        super().__init__(relation_name, **kwargs)

    class BoundPanel(InlinePanel.BoundPanel):
        #: Wagtail's inline panel, with the lines' live total under "Add line".
        template_name = "wagtail_client_billing/admin/invoices/lines_panel.html"

    def get_form_options(self) -> dict[str, Any]:
        options: dict[str, Any] = super().get_form_options()
        formset = options["formsets"][self.relation_name]
        formset["form"] = InvoiceLineForm
        formset["inherit_kwargs"] = ["for_user"]
        return options
