"""The export of invoice lines: one row per line of the invoices the listing shows.

The invoice export has one row per invoice, its lines summarised in one column
(:func:`.billing.lines.summary`); this one has a row per line, for a spreadsheet that
sums by item. Amounts are in the currency's main unit, as in the invoice export.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy

from .models import Invoice, InvoiceLine, invoice_lines, site_display_name
from .money import to_major

#: The query parameter that asks the invoice listing's export for lines instead.
ROWS_PARAM = "rows"
ROWS_LINES = "lines"

LINE_EXPORT = [
    "number",
    "site",
    "email",
    "currency",
    "status",
    "position",
    "description",
    "quantity",
    "unit_price",
    "line_total",
    "product",
    "created_at",
]

LINE_HEADINGS = {
    "number": gettext_lazy("Invoice number"),
    "site": gettext_lazy("Site"),
    "email": gettext_lazy("Client email"),
    "currency": gettext_lazy("Currency"),
    "status": gettext_lazy("Status"),
    "position": gettext_lazy("Line"),
    "description": gettext_lazy("Description"),
    "quantity": gettext_lazy("Quantity"),
    "unit_price": gettext_lazy("Unit price"),
    "line_total": gettext_lazy("Line total"),
    "product": gettext_lazy("Catalogue product"),
    "created_at": gettext_lazy("Created"),
}


class _ChunkedLines:
    """The lines of ``invoices``, invoice by invoice, streamed in bounded memory."""

    model = InvoiceLine

    def __init__(self, invoices: QuerySet[Invoice]) -> None:
        self.invoices = invoices

    def __iter__(self) -> Any:
        invoices = self.invoices.select_related("site").prefetch_related("lines__product")
        for invoice in invoices.iterator(chunk_size=500):
            lines = invoice_lines(invoice)
            yield from lines


def lines_of(invoices: QuerySet[Invoice]) -> _ChunkedLines:
    return _ChunkedLines(invoices)


def line_row(line: InvoiceLine) -> dict[str, Any]:
    invoice = line.invoice
    return {
        "number": invoice.number,
        "site": site_display_name(invoice.site),
        "email": invoice.email,
        "currency": invoice.currency,
        "status": invoice.get_status_display(),
        "position": line.position + 1,
        "description": line.description,
        "quantity": line.quantity,
        "unit_price": to_major(line.unit_amount, invoice.currency),
        "line_total": to_major(line.line_total, invoice.currency),
        "product": line.product.name if line.product_id and line.product else "",
        "created_at": invoice.created_at,
    }
