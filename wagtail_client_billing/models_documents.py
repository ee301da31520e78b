"""A sent invoice's documents: the seller as it was when the invoice was sent, and the PDF
emailed to the client.

Imported by :mod:`.models` (Django finds the app's models there); it imports nothing of
the app, so it cannot take part in an import cycle. What goes into the snapshot and how
the PDF is drawn is :mod:`.documents`'s.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def pdf_upload_to(instance: InvoiceDocument, filename: str) -> str:
    """An unguessable folder per file: a project that serves its media folder publicly
    still does not hand out invoices by their number."""
    return f"client_billing/invoices/{secrets.token_urlsafe(18)}/{filename}"


class InvoiceDocument(models.Model):
    """What a sent invoice's documents are drawn from and the PDF the client was sent.

    Attributes:
        seller: the site's seller details (legal name, address, tax number, logo, accent
            colour, footer) copied when the invoice was sent; a later change of the
            site's settings never alters them.
        pdf: the invoice PDF attached to the billing request email, made once and served
            by every later download; empty until it is first made.
        pdf_language: the language it was rendered in.
    """

    invoice = models.OneToOneField(
        "wagtail_client_billing.Invoice",
        verbose_name=_("invoice"),
        on_delete=models.CASCADE,
        related_name="document",
    )
    seller = models.JSONField(_("seller"), default=dict, blank=True)
    pdf = models.FileField(_("PDF"), upload_to=pdf_upload_to, max_length=255, blank=True)
    pdf_language = models.CharField(max_length=35, blank=True, default="")
    created_at = models.DateTimeField(_("copied at"), default=timezone.now)
    pdf_created_at = models.DateTimeField(_("PDF made at"), null=True, blank=True)

    class Meta:
        verbose_name = _("invoice document")
        verbose_name_plural = _("invoice documents")

    def __str__(self) -> str:
        return f"{self.invoice_id}: {self.seller.get('name', '')}"
