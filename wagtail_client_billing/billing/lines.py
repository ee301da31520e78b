"""Line items of a billing request: the one place that makes ``Invoice.amount`` their sum.

A request made the quick way (one amount and a description, or by site code that sets
only ``amount``) gets one line of that amount and description; a request with lines gets
the sum of their totals as its amount. Either way the invoice and its lines agree before
it is saved, in integer minor units, so nothing drifts by rounding.
"""

from __future__ import annotations

from ..models import (
    Invoice,
    InvoiceLine,
    Product,
    invoice_lines,
    is_single_amount,
    lines_total,
)
from ..money import to_major

#: Checkout's limits on a session's line items: 100 in payment mode; in subscription
#: mode 20 with recurring prices (every line of a recurring request is one).
MAX_LINES_ONE_TIME = 100
MAX_LINES_RECURRING = 20


def max_lines(invoice: Invoice) -> int:
    """How many lines Checkout takes for ``invoice``'s billing type."""
    return MAX_LINES_RECURRING if invoice.is_recurring else MAX_LINES_ONE_TIME


def prepare(invoice: Invoice) -> list[InvoiceLine]:
    """Make the unsaved ``invoice`` and its lines agree, before it is saved.

    With no lines set, it gets one of its amount and description (quantity 1); with
    lines, they are numbered in order and the invoice's amount becomes their total.
    Saving the invoice saves the lines (it is a cluster).
    """
    lines = list(invoice.lines.all())
    if not lines:
        lines = invoice_lines(invoice)  # the one line of its amount and description
    for position, line in enumerate(lines):
        line.position = position
    invoice.lines = lines
    invoice.amount = lines_total(lines)
    return lines


def follow_quick_path(invoice: Invoice, saved: Invoice) -> None:
    """Before an edited draft is prepared again: when the draft as ``saved`` was on the
    quick path and the editor's form left its line as it was (they changed the amount
    and description, not the lines), drop that line so :func:`prepare` makes it anew
    from the new amount and description."""
    if not is_quick(saved):
        return
    key = [
        (line.pk, line.quantity, line.unit_amount, line.description)
        for line in invoice_lines(saved)
    ]
    if [
        (line.pk, line.quantity, line.unit_amount, line.description) for line in invoice.lines.all()
    ] == key:
        invoice.lines = []


def copy_lines(source: Invoice, new: Invoice) -> None:
    """Give ``new`` (made by "Send new invoice") copies of ``source``'s lines.

    A source whose only line is its amount and description stays on the quick path:
    the form shows the amount, and :func:`prepare` makes the line again.
    """
    lines = invoice_lines(source)
    if is_quick(source, lines):
        return
    # A product retired from the catalogue since is not offered on the form any more:
    # the new line keeps its copy of the description and price, without the product.
    active = set(
        Product.objects.filter(
            pk__in=[line.product_id for line in lines if line.product_id], active=True
        ).values_list("pk", flat=True)
    )
    new.lines = [
        InvoiceLine(
            position=line.position,
            description=line.description,
            quantity=line.quantity,
            unit_amount=line.unit_amount,
            product_id=line.product_id if line.product_id in active else None,
        )
        for line in lines
    ]


def is_quick(invoice: Invoice, lines: list[InvoiceLine] | None = None) -> bool:
    """Whether ``invoice`` is one line of its own amount and description (the quick path)."""
    return is_single_amount(invoice, lines)


def line_from_product(product: Product) -> InvoiceLine:
    """A line copied from a catalogue product: its description and unit amount now."""
    return InvoiceLine(
        description=product.line_description[:500],
        quantity=1,
        unit_amount=product.unit_amount,
        product=product,
    )


def summary(invoice: Invoice, lines: list[InvoiceLine] | None = None) -> str:
    """The lines in one cell of the export: ``2 × Hosting @ 15.00; 1 × Design @ 1200.00``.

    Amounts in major units without a currency sign (the row has its currency column).
    """
    lines = invoice_lines(invoice) if lines is None else lines
    return "; ".join(
        f"{line.quantity} × {line.description} @ {to_major(line.unit_amount, invoice.currency)}"
        for line in lines
    )
