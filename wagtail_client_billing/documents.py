"""The client's documents and branding: the seller snapshot, the PDF invoice and receipt.

A sent invoice keeps a copy of its site's seller details (:func:`take_snapshot`, called
by :mod:`.billing.invoices` when it is sent), so changing the site's settings never
alters an invoice already sent. The PDF is drawn by fpdf2 (pure Python: it installs with
pip alone and embeds and subsets TTF/OTF fonts) from the HTML of a template a site can
override (``wagtail_client_billing/documents/invoice.html``, ``receipt.html``), in the
active language; the fonts are the ``PDF_FONTS`` setting's. The invoice PDF is made once,
stored (:class:`.models.InvoiceDocument`), attached to the billing request email and
served by every later download; a receipt is made for its email.

Pages and emails read the same seller details through :func:`branding`.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import segno
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.http import FileResponse, Http404
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.text import get_valid_filename
from django.utils.translation import gettext as _

from .conf import billing_settings
from .languages import format_date, format_datetime, invoice_language
from .models import (
    ClientBillingSettings,
    Invoice,
    InvoiceDocument,
    invoice_lines,
    site_display_name,
)
from .money import format_money

if TYPE_CHECKING:
    from fpdf import FPDF

logger = logging.getLogger(__name__)

TEMPLATE_DIR = "wagtail_client_billing/documents/"
INVOICE_TEMPLATE = TEMPLATE_DIR + "invoice.html"
RECEIPT_TEMPLATE = TEMPLATE_DIR + "receipt.html"
PDF_MIMETYPE = "application/pdf"

#: The logo's rendition: a PNG no larger than this (Wagtail's filter spec).
LOGO_RENDITION = "max-480x160|format-png"
#: The accent colour when a site sets none.
DEFAULT_ACCENT = "#1d1d1f"

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class FontProblem(Exception):
    """A ``PDF_FONTS`` file is missing or unreadable; ``str()`` says which and why."""


# --- the seller, copied when an invoice is sent ---------------------------------------------


def _logo(image: Any, root_url: str) -> dict[str, str]:
    """The logo as the PDF draws it (a data URI: a PNG rendition, or the SVG itself, which
    fpdf2 draws) and as pages and emails show it (the rendition's absolute URL)."""
    if image is None:
        return {}
    try:
        if getattr(image, "is_svg", lambda: False)():
            rendition = image.get_rendition("original")
            mime = "image/svg+xml"
        else:
            rendition = image.get_rendition(LOGO_RENDITION)
            mime = "image/png"
        with rendition.file.open("rb") as handle:
            data = handle.read()
    except Exception:  # a missing file, a broken image: no logo rather than no invoice
        logger.warning("Client billing: the logo %s cannot be read", image.pk, exc_info=True)
        return {}
    url = rendition.url
    if url.startswith("/"):
        url = root_url.rstrip("/") + url
    return {
        "logo": f"data:{mime};base64,{base64.b64encode(data).decode()}",
        "logo_url": url,
        "logo_alt": str(getattr(image, "title", "")),
    }


def seller_details(config: ClientBillingSettings) -> dict[str, str]:
    """A site's seller details as they are now (for a snapshot, or a draft's preview)."""
    site = config.site
    accent = config.accent_colour if _HEX.match(config.accent_colour or "") else ""
    return {
        "name": config.seller_name or site_display_name(site),
        "address": config.seller_address,
        "tax_id": config.seller_tax_id,
        "accent": accent,
        "footer": config.document_footer,
        **_logo(config.logo, site.root_url),
    }


def take_snapshot(invoice: Invoice) -> InvoiceDocument:
    """Copy the site's seller details into ``invoice`` once; later calls keep the first
    copy. Called when an invoice is sent."""
    existing = InvoiceDocument.objects.filter(invoice_id=invoice.pk).first()
    if existing is not None:
        return existing
    seller = seller_details(ClientBillingSettings.for_site(invoice.site))
    try:
        with transaction.atomic():
            return InvoiceDocument.objects.create(invoice=invoice, seller=seller)
    except IntegrityError:  # another process copied it first: theirs stands
        return InvoiceDocument.objects.get(invoice_id=invoice.pk)


def seller_for(invoice: Invoice) -> dict[str, str]:
    """The seller details an invoice shows: its snapshot once sent, else the site's now."""
    if invoice.number:
        return take_snapshot(invoice).seller
    return seller_details(ClientBillingSettings.for_site(invoice.site))


def branding(invoice: Invoice) -> dict[str, Any]:
    """What the client's pages and emails show around an invoice: the seller's logo,
    accent colour and footer, and whether it is a test-mode invoice."""
    seller = seller_for(invoice)
    return {
        "seller": seller,
        "accent": seller.get("accent", ""),
        "test_mode": invoice.test_mode,
    }


# --- fonts ----------------------------------------------------------------------------------


def font_problems(paths: Iterable[Any] | None = None) -> list[tuple[str, str]]:
    """``(path, problem)`` for each ``PDF_FONTS`` entry fpdf2 cannot embed."""
    from fontTools.ttLib import TTFont, TTLibError

    problems = []
    if paths is None:
        paths = billing_settings.PDF_FONTS
    if isinstance(paths, str | bytes) or not isinstance(paths, Iterable):
        return [(repr(paths), _("PDF_FONTS must be a list of font file paths."))]
    for path in paths:
        try:
            TTFont(str(path), lazy=True, fontNumber=0).close()
        except FileNotFoundError:
            problems.append((str(path), _("no such file")))
        except (OSError, TTLibError, AssertionError) as exc:
            problems.append((str(path), _("not a readable TTF or OTF font (%s)") % exc))
    return problems


def _new_pdf() -> tuple[FPDF, str]:
    """An empty PDF with the configured fonts; the family the text is set in."""
    from fpdf import FPDF

    pdf = FPDF(format=str(billing_settings.PDF_PAGE_SIZE or "A4"))
    pdf.set_auto_page_break(auto=True, margin=20)
    fonts = list(billing_settings.PDF_FONTS or [])
    problems = font_problems(fonts)
    if problems:
        path, problem = problems[0]
        raise FontProblem(f"PDF_FONTS: {path}: {problem}")
    families = []
    for index, path in enumerate(fonts):
        family = f"wcb{index}"
        # One file serves every style: a bold face, if any, is the font's own business.
        for style in ("", "B", "I", "BI"):
            pdf.add_font(family, style, str(path))
        families.append(family)
    if not families:
        pdf.core_fonts_encoding = "windows-1252"  # €, dashes and quotes too
        return pdf, "helvetica"
    if len(families) > 1:
        pdf.set_fallback_fonts(families[1:], exact_match=False)
    return pdf, families[0]


def _latin_only(html: str) -> str:
    """The PDF's built-in font covers Windows-1252 only (Western European letters, €,
    dashes, quotes): other characters become "?" (configure ``PDF_FONTS`` for them)."""
    html = html.replace("\N{NARROW NO-BREAK SPACE}", "\N{NO-BREAK SPACE}")
    html = html.replace("\N{MINUS SIGN}", "-")
    return html.encode("cp1252", errors="replace").decode("cp1252")


def _draw(html: str, *, footer: str, test_mode: bool, title: str) -> bytes:
    """The PDF of ``html`` (fpdf2's HTML subset) with ``footer`` and, for a test-mode
    document, the test marking at the foot of every page."""
    pdf, family = _new_pdf()
    marking = _("Test mode — no real payment") if test_mode else ""
    if family == "helvetica":
        html, footer, marking, title = (_latin_only(t) for t in (html, footer, marking, title))

    def draw_footer() -> None:
        pdf.set_y(-18)
        pdf.set_font(family, size=7)
        pdf.set_text_color(110, 110, 110)
        if footer:
            pdf.multi_cell(0, 3.5, footer, align="C", new_x="LMARGIN", new_y="NEXT")
        if marking:
            pdf.set_text_color(180, 30, 30)
            pdf.cell(0, 4, marking, align="C")

    pdf.footer = draw_footer  # type: ignore[method-assign]
    pdf.set_title(title)
    pdf.set_creator("wagtail-client-billing")
    pdf.add_page()
    pdf.set_font(family, size=10)
    with tempfile.TemporaryDirectory(prefix="wcb-pdf-") as folder:
        pdf.write_html(html, font_family=family, image_map=_svg_to_file(Path(folder)))
        return bytes(pdf.output())


def _svg_to_file(folder: Path) -> Callable[[str], str]:
    """fpdf2 draws an SVG logo from a ``.svg`` file only (a data URI goes to Pillow, which
    reads no SVG): an ``<img>``'s SVG data URI becomes a file in ``folder``."""
    prefix = "data:image/svg+xml;base64,"

    def image_map(src: str) -> str:
        if not src.startswith(prefix):
            return src
        path = folder / f"{len(list(folder.iterdir()))}.svg"
        path.write_bytes(base64.b64decode(src[len(prefix) :]))
        return str(path)

    return image_map


def _render(template: str, context: dict[str, Any], title: str) -> bytes:
    """The PDF of a document template, with the seller's footer and any test marking."""
    return _draw(
        render_to_string(template, context),
        footer=context["seller"].get("footer", ""),
        test_mode=context["test_mode"],
        title=title,
    )


def _qr_data_uri(url: str) -> str:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=6, border=2)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# --- the invoice ------------------------------------------------------------------------------


def _lines(invoice: Invoice) -> list[dict[str, Any]]:
    currency = invoice.currency
    rows = [
        {
            "description": line.description or invoice.description,
            "quantity": line.quantity,
            "unit_amount": format_money(line.unit_amount, currency),
            "total": format_money(line.line_total, currency),
        }
        for line in invoice_lines(invoice)
    ]
    if rows:
        return rows
    amount = format_money(invoice.amount, currency)
    return [
        {
            "description": invoice.description or _("Invoice %(number)s") % {"number": invoice},
            "quantity": 1,
            "unit_amount": amount,
            "total": amount,
        }
    ]


def document_context(invoice: Invoice) -> dict[str, Any]:
    """What the document templates get, in the active language."""
    seller = seller_for(invoice)
    sent_at = invoice.status_changed_at if invoice.number else None
    return {
        "invoice": invoice,
        "number": invoice.display_number,
        "seller": seller,
        "seller_address_lines": [line for line in seller.get("address", "").splitlines() if line],
        "accent": seller.get("accent") or DEFAULT_ACCENT,
        "client_email": invoice.email,
        **_client_details(invoice),
        "issued": format_date(invoice.created_at),
        "sent": format_date(sent_at) if sent_at else "",
        "due": format_date(invoice.due_date),
        "expires": format_datetime(invoice.expires_at),
        "lines": _lines(invoice),
        "figure_rows": invoice.figure_rows,
        "total": format_money(invoice.figures.gross, invoice.currency),
        "is_recurring": invoice.is_recurring,
        "pay_url": invoice.get_pay_url(),
        "qr_code": _qr_data_uri(invoice.get_pay_url()),
        "test_mode": invoice.test_mode,
        "language_code": translation.get_language() or "",
    }


def _client_details(invoice: Invoice) -> dict[str, Any]:
    """The billed client's name, company, address lines and tax number, from the client
    directory (none for a request without a client, or a client whose data was erased)."""
    client = invoice.client
    if client is None or client.erased_at:
        return {"client_lines": [], "client_tax_number": ""}
    lines = [client.name, client.company, *client.address.splitlines()]
    return {
        "client_lines": [line.strip() for line in lines if line.strip()],
        "client_tax_number": client.tax_number,
    }


def pdf_filename(invoice: Invoice, kind: str = "invoice") -> str:
    """``INV-000042.pdf``, ``INV-000042-receipt.pdf``: named with the invoice's number."""
    stem = get_valid_filename(invoice.number or f"draft-{invoice.pk}") or "invoice"
    return f"{stem}.pdf" if kind == "invoice" else f"{stem}-{kind}.pdf"


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """A new PDF of ``invoice`` in the active language (nothing is stored)."""
    context = document_context(invoice)
    # Translators: client-facing.
    return _render(INVOICE_TEMPLATE, context, _("Invoice %(number)s") % context)


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice's stored PDF; made in the active language and stored the first time.

    The PDF attached to the billing request email is the one every later download gets,
    so the client and their accountant hold the same document.
    """
    document = take_snapshot(invoice)
    if document.pdf:
        try:
            with document.pdf.open("rb") as handle:
                return handle.read()
        except OSError:
            logger.warning("Client billing: the stored PDF of invoice %s is gone", invoice.pk)
    data = render_invoice_pdf(invoice)
    document.pdf.save(pdf_filename(invoice), ContentFile(data), save=False)
    document.pdf_language = translation.get_language() or ""
    document.pdf_created_at = timezone.now()
    document.save(update_fields=["pdf", "pdf_language", "pdf_created_at"])
    return data


def pdf_response(invoice: Invoice, *, as_attachment: bool) -> FileResponse:
    """A download of the invoice's stored PDF (made in the invoice's language the first
    time); 404 for a draft, which was never sent."""
    if not invoice.number:
        raise Http404
    with translation.override(invoice_language(invoice)):
        data = invoice_pdf(invoice)
    return FileResponse(
        io.BytesIO(data),
        as_attachment=as_attachment,
        filename=pdf_filename(invoice),
        content_type=PDF_MIMETYPE,
    )


# --- the receipt ------------------------------------------------------------------------------


def receipt_pdf(
    invoice: Invoice,
    *,
    refund: bool,
    amount: int,
    currency: str,
    at: datetime,
    method: str = "",
) -> bytes:
    """The receipt of a payment (or, with ``refund``, of a refund) of ``invoice``: what
    was paid, when and how, and what was refunded of it so far; in the active language."""
    context = {
        **document_context(invoice),
        "refund": refund,
        "receipt_amount": format_money(amount, currency),
        "receipt_date": format_datetime(at),
        "method": method,
        "refunds": [
            {
                "amount": format_money(r.amount, r.currency),
                "date": format_date(r.created_at),
                "status": r.get_status_display(),
            }
            for r in invoice.refunds.order_by("created_at", "pk")
        ],
        "total_refunded": format_money(invoice.amount_refunded, invoice.currency),
    }
    # Translators: client-facing.
    return _render(RECEIPT_TEMPLATE, context, _("Receipt for %(number)s") % context)
