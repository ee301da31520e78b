"""PDF invoices and receipts, the seller snapshot, and the branding of pages and emails.

The PDFs are read back with pypdf, as an accountant's software would: the text must
carry the invoice's number, its amounts formatted for the language, the seller and the
due date; the payment link's QR code is an image on the page.
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pypdfium2
import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone, translation
from PIL import Image as PILImage
from pypdf import PdfReader
from wagtail import hooks as wagtail_hooks
from wagtail.images.models import Image

from tests.utils import connect, make_account, make_invoice, make_site, make_user
from wagtail_client_billing import documents, emails, hooks, tasks
from wagtail_client_billing.billing import invoices as invoice_domain
from wagtail_client_billing.checks import check_pdf_fonts
from wagtail_client_billing.models import (
    Client,
    ClientBillingSettings,
    Invoice,
    InvoiceDocument,
    InvoiceLine,
    InvoiceStatus,
)

pytestmark = pytest.mark.django_db

#: The Japanese font CI installs (Debian's fonts-ipafont-gothic).
IPA_GOTHIC = Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf")
needs_cjk_font = pytest.mark.skipif(
    not IPA_GOTHIC.exists(),
    reason=f"{IPA_GOTHIC} is missing: apt-get install fonts-ipafont-gothic (CI installs it)",
)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def pdf_images(data: bytes) -> int:
    return sum(len(page.images) for page in PdfReader(io.BytesIO(data)).pages)


def png_logo(colour=(200, 30, 30)) -> Image:
    buffer = io.BytesIO()
    PILImage.new("RGB", (240, 80), colour).save(buffer, format="PNG")
    upload = SimpleUploadedFile("logo.png", buffer.getvalue(), content_type="image/png")
    return Image.objects.create(title="Acme logo", file=upload)


def seller(site, **values) -> ClientBillingSettings:
    config = ClientBillingSettings.for_site(site)
    defaults = {
        "seller_name": "Acme Studio GmbH",
        "seller_address": "Hauptstraße 1\n10115 Berlin",
        "seller_tax_id": "DE123456789",
        "accent_colour": "#1d6fa5",
        "document_footer": "IBAN DE00 1234 5678 9012 3456 78",
    }
    defaults.update(values)
    for name, value in defaults.items():
        setattr(config, name, value)
    config.save()
    return config


def three_line_invoice(site, account, currency, lines, **kwargs):
    total = sum(quantity * unit for _d, quantity, unit in lines)
    invoice = make_invoice(site, account, currency=currency, amount=total, **kwargs)
    for position, (description, quantity, unit) in enumerate(lines):
        InvoiceLine.objects.create(
            invoice=invoice,
            position=position,
            description=description,
            quantity=quantity,
            unit_amount=unit,
        )
    invoice.assign_number()
    invoice.save()
    return invoice


@pytest.fixture
def berlin(db):
    site = make_site("agentur.example")
    account = make_account("acct_test_berlin")
    connect(site, account)
    seller(site)
    return site, account


@needs_cjk_font
def test_a_taxed_jpy_invoice_in_japanese_embeds_the_japanese_text(berlin, settings):
    site, account = berlin
    seller(site, seller_name="株式会社アクメ", seller_address="東京都千代田区1-1")
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "PDF_FONTS": [str(IPA_GOTHIC)],
    }
    invoice = three_line_invoice(
        site,
        account,
        "JPY",
        [("ウェブサイト制作", 1, 120000), ("保守（月額）", 2, 15000), ("ドメイン", 3, 1500)],
        tax_name="消費税",
        tax_percentage=Decimal("10"),
        due_date=date(2026, 12, 24),
    )
    with translation.override("ja"):
        text = pdf_text(documents.render_invoice_pdf(invoice))
    assert invoice.number in text
    assert "株式会社アクメ" in text
    assert "ウェブサイト制作" in text and "ドメイン" in text
    # 120,000 + 30,000 + 4,500 = 154,500 yen; 10% tax 15,450; total 169,950.
    assert "￥154,500" in text
    assert "￥15,450" in text
    assert "￥169,950" in text
    assert "2026年12月24日" in text  # the due date, as Japanese writes it


def test_a_eur_invoice_in_german_has_seller_lines_tax_due_date_and_qr_code(berlin):
    site, account = berlin
    invoice = three_line_invoice(
        site,
        account,
        "EUR",
        [("Webdesign", 1, 250000), ("Hosting", 12, 1250), ("Domäne", 1, 990)],
        tax_name="USt.",
        tax_percentage=Decimal("19"),
        due_date=date(2026, 12, 24),
    )
    with translation.override("de"):
        data = documents.render_invoice_pdf(invoice)
    text = pdf_text(data)
    assert data.startswith(b"%PDF")
    assert f"Invoice {invoice.number}" in text or invoice.number in text
    assert "Acme Studio GmbH" in text and "Hauptstraße 1" in text and "DE123456789" in text
    assert "Webdesign" in text and "Domäne" in text
    # 2.500,00 + 150,00 + 9,90 = 2.659,90; 19% = 505,38; total 3.165,28 (German format).
    assert "2.659,90\xa0€" in text or "2.659,90 €" in text
    assert "505,38" in text
    assert "3.165,28" in text
    assert "24. Dezember 2026" in text
    assert invoice.get_pay_url() in text.replace("\n", "")
    assert pdf_images(data) >= 1  # the payment link's QR code
    assert "IBAN DE00" in text  # the footer


def test_without_fonts_the_builtin_font_still_draws_latin_text(berlin):
    site, account = berlin
    seller(site, seller_name="Société Générale d'Études")
    invoice = three_line_invoice(site, account, "EUR", [("Café", 1, 1000)])
    with translation.override("de"):
        text = pdf_text(documents.render_invoice_pdf(invoice))
    assert "Société Générale d'Études" in text
    assert "Café" in text


def test_a_logo_is_drawn_and_its_rendition_url_is_absolute(berlin):
    site, account = berlin
    seller(site, logo=png_logo())
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 1000)])
    invoice.due_date = None
    invoice.status = InvoiceStatus.PAID  # no QR code: only the logo is an image
    data = documents.render_invoice_pdf(invoice)
    assert pdf_images(data) == 1
    url = documents.seller_for(invoice)["logo_url"]
    assert url.startswith(site.root_url + "/")


def test_the_snapshot_keeps_the_seller_as_it_was_when_sent(berlin):
    site, account = berlin
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 1000)])
    documents.take_snapshot(invoice)
    seller(site, seller_name="New Name AG", seller_tax_id="DE999")
    text = pdf_text(documents.invoice_pdf(invoice))
    assert "Acme Studio GmbH" in text
    assert "New Name AG" not in text and "DE999" not in text


def test_create_and_send_copy_the_seller(berlin):
    site, account = berlin
    user = make_user(superuser=True)
    draft = make_invoice(site, account, currency="EUR", amount=1000)
    invoice_domain.save_draft(draft, user=user)
    assert not InvoiceDocument.objects.filter(invoice=draft).exists()
    with TestCase.captureOnCommitCallbacks(execute=False):
        invoice_domain.send(draft, user=user)
    assert InvoiceDocument.objects.get(invoice=draft).seller["name"] == "Acme Studio GmbH"
    new = Invoice(
        site=site,
        account=account,
        email="client@example.com",
        currency="EUR",
        amount=2000,
        success_url="https://client.example/thanks",
        cancel_url="https://client.example/cancelled",
        test_mode=True,
    )
    with TestCase.captureOnCommitCallbacks(execute=False):
        invoice_domain.create(new, user=user)
    assert InvoiceDocument.objects.get(invoice=new).seller["tax_id"] == "DE123456789"


def test_the_emailed_pdf_is_stored_and_is_the_one_downloaded(berlin, client):
    site, account = berlin
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 1000)])
    invoice_domain.queue_email(invoice)
    tasks.send_invoice_email(invoice.pk, 0)
    (message,) = mail.outbox
    ((name, attached, mimetype),) = message.attachments
    assert (name, mimetype) == (f"{invoice.number}.pdf", "application/pdf")
    assert "Acme Studio GmbH" in pdf_text(attached)

    seller(site, seller_name="Changed Later Ltd")
    response = client.get(urlsplit(invoice.public_url("invoice_pdf")).path)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="{invoice.number}.pdf"'
    assert b"".join(response.streaming_content) == attached


def test_the_public_pdf_needs_the_token(berlin, client):
    site, account = berlin
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 1000)])
    url = urlsplit(invoice.public_url("invoice_pdf")).path
    assert client.get(url.replace(invoice.token, "x" * 43)).status_code == 404
    assert client.get(url.replace(invoice.token, "a" * 65)).status_code == 404
    assert client.post(url).status_code == 405


def test_a_draft_has_no_public_pdf(berlin, client):
    site, account = berlin
    draft = make_invoice(site, account, status=InvoiceStatus.DRAFT)
    assert client.get(urlsplit(draft.public_url("invoice_pdf")).path).status_code == 404


def test_the_admin_download_is_scoped_like_the_inspect_page(berlin, client):
    site, account = berlin
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 1000)])
    url = reverse(Invoice.snippet_viewset.get_url_name("pdf"), args=[invoice.pk])
    # Anonymous: to the login page.
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]
    other = make_site("other.example")
    with wagtail_hooks.register_temporarily(hooks.SITES_FOR_USER, only_their_site):
        # An editor of another site only: not found.
        client.force_login(editor_of(other))
        assert client.get(url).status_code == 404
        # A user of the admin without the app's permissions: refused.
        client.force_login(make_user("nobody"))
        response = client.get(url)
        assert response.status_code in (302, 403, 404)
        assert response.get("Content-Type") != "application/pdf"
        # An editor of this site gets the stored file.
        client.force_login(editor_of(site))
        response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    assert pdf_text(b"".join(response.streaming_content)).count(invoice.number) >= 1


def editor_of(site):
    """Every permission of the app, on ``site`` only (the sites hook narrows them)."""
    from django.contrib.auth.models import Permission

    user = make_user(f"editor-{site.hostname}")
    user.groups.get().permissions.add(
        *Permission.objects.filter(content_type__app_label="wagtail_client_billing")
    )
    return user


def only_their_site(user, sites):
    return sites.filter(hostname=user.username.removeprefix("editor-"))


def test_a_receipt_pdf_lists_the_payment_and_refunds(berlin):
    from wagtail_client_billing.models import Payment, Refund

    site, account = berlin
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 10000)])
    payment = Payment.objects.create(
        invoice=invoice, amount=10000, currency="EUR", paid_at=timezone.now()
    )
    Refund.objects.create(
        invoice=invoice,
        payment=payment,
        amount=2500,
        currency="EUR",
        status="succeeded",
        stripe_refund_id="re_test_1",
        request_key="test-refund-1",
    )
    invoice.amount_refunded = 2500
    with translation.override("de"):
        data = documents.receipt_pdf(
            invoice, refund=True, amount=2500, currency="EUR", at=timezone.now()
        )
    text = pdf_text(data)
    assert invoice.number in text
    assert "25,00" in text  # the refund
    assert "100,00" in text  # what was paid
    assert "Acme Studio GmbH" in text


def test_receipt_emails_carry_the_receipt_pdf(berlin):
    site, account = berlin
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 10000)])
    result = emails.send_receipt(
        invoice, emails.RECEIPT, amount=10000, currency="EUR", at=timezone.now()
    )
    assert result.sent
    ((name, data, mimetype),) = mail.outbox[0].attachments
    assert name == f"{invoice.number}-receipt.pdf" and mimetype == "application/pdf"
    assert "€100.00" in pdf_text(data)


def test_test_mode_is_marked_in_the_pdf_email_and_page(berlin, client):
    site, account = berlin
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 1000)])
    assert invoice.test_mode
    assert "Test mode — no real payment" in pdf_text(documents.render_invoice_pdf(invoice))
    invoice_domain.queue_email(invoice)
    tasks.send_invoice_email(invoice.pk, 0)
    (message,) = mail.outbox
    assert "Test mode — no real payment" in message.body
    assert "Test mode — no real payment" in message.alternatives[0][0]
    assert 'src="http' not in message.alternatives[0][0]  # no logo set, none shown
    expire(invoice)
    page = client.get(urlsplit(invoice.get_pay_url()).path).content.decode()
    assert "Test mode — no real payment" in page
    assert "IBAN DE00" in page  # the footer
    assert "#1d6fa5" in page  # the accent colour


def test_a_live_invoice_has_no_test_marking(db):
    site = make_site("live.example")
    account = make_account("acct_live_1", test_mode=False)
    connect(site, account)
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 1000)])
    assert "Test mode" not in pdf_text(documents.render_invoice_pdf(invoice))
    invoice_domain.queue_email(invoice)
    tasks.send_invoice_email(invoice.pk, 0)
    assert "Test mode" not in mail.outbox[0].body
    assert "Test mode" not in mail.outbox[0].alternatives[0][0]


def expire(invoice):
    invoice.expires_at = timezone.now() - timedelta(minutes=1)
    invoice.save(update_fields=["expires_at"])


def test_the_email_shows_the_logo_by_its_absolute_url(berlin):
    site, account = berlin
    seller(site, logo=png_logo())
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 1000)])
    documents.take_snapshot(invoice)
    invoice_domain.queue_email(invoice)
    tasks.send_invoice_email(invoice.pk, 0)
    html = mail.outbox[0].alternatives[0][0]
    assert f'<img src="{site.root_url}/' in html


def test_a_missing_font_file_fails_the_system_check(settings, tmp_path):
    bad = tmp_path / "not-a-font.ttf"
    bad.write_text("hello")
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "PDF_FONTS": [str(tmp_path / "missing.ttf"), str(bad)],
    }
    errors = check_pdf_fonts()
    assert [e.id for e in errors] == ["wagtail_client_billing.E019"] * 2
    assert "missing.ttf" in errors[0].msg and "no such file" in errors[0].msg
    assert "not-a-font.ttf" in errors[1].msg


def test_a_pdf_fonts_string_is_an_error(settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "PDF_FONTS": "/usr/share/fonts/x.ttf",
    }
    assert [e.id for e in check_pdf_fonts()] == ["wagtail_client_billing.E019"]


def test_a_bad_accent_colour_is_a_field_error(berlin):
    from django.core.exceptions import ValidationError

    site, _account = berlin
    config = ClientBillingSettings.for_site(site)
    config.accent_colour = "red;background:url(x)"
    with pytest.raises(ValidationError) as caught:
        config.full_clean()
    assert "accent_colour" in caught.value.message_dict


def test_an_svg_logo_is_drawn_as_it_is(berlin):
    site, account = berlin
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40">'
        b'<rect width="120" height="40" fill="#00ff00"/></svg>'
    )
    upload = SimpleUploadedFile("logo.svg", svg, content_type="image/svg+xml")
    seller(site, logo=Image.objects.create(title="Acme", file=upload))
    invoice = three_line_invoice(site, account, "EUR", [("Design", 1, 1000)])
    invoice.status = InvoiceStatus.PAID  # no QR code
    snapshot = documents.seller_for(invoice)
    assert snapshot["logo"].startswith("data:image/svg+xml;base64,")
    data = documents.render_invoice_pdf(invoice)
    page = pypdfium2.PdfDocument(io.BytesIO(data))[0].render(scale=1).to_pil().convert("RGB")
    green = {colour: count for count, colour in page.getcolors(1 << 24)}.get((0, 255, 0), 0)
    assert green > 500  # the logo's green rectangle, drawn from the SVG
    assert "Acme Studio GmbH" in pdf_text(data)


def test_markup_in_editors_text_is_printed_as_text(berlin):
    site, account = berlin
    seller(site, seller_name="Smith & Sons <b>Ltd</b>", document_footer='<img src="/etc/passwd">')
    invoice = three_line_invoice(site, account, "EUR", [("<h1>Big</h1> & small", 1, 1000)])
    data = documents.render_invoice_pdf(invoice)
    text = pdf_text(data)
    assert "Smith & Sons <b>Ltd</b>" in text
    assert "<h1>Big</h1> & small" in text
    assert '<img src="/etc/passwd">' in text
    assert pdf_images(data) == 1  # the QR code only


def test_the_invoice_names_the_clients_details_from_the_directory(berlin):
    site, account = berlin
    client = Client.objects.create(
        email="buchhaltung@kunde.example",
        name="Erika Muster",
        company="Kunde AG",
        address="Marktplatz 5\n80331 München",
        tax_number="DE987654321",
    )
    invoice = three_line_invoice(
        site, account, "EUR", [("Webdesign", 1, 100000)], email=client.email
    )
    Invoice.objects.filter(pk=invoice.pk).update(client=client)
    invoice.refresh_from_db()
    with translation.override("de"):
        text = pdf_text(documents.render_invoice_pdf(invoice))
    for detail in ("Erika Muster", "Kunde AG", "Marktplatz 5", "80331 München", "DE987654321"):
        assert detail in text
    client.erased_at = timezone.now()
    client.save()
    invoice.refresh_from_db()
    with translation.override("de"):
        text = pdf_text(documents.render_invoice_pdf(invoice))
    assert "Erika Muster" not in text and "DE987654321" not in text


def fonts_of(data: bytes) -> dict[str, str]:
    """Each piece of text on the first page and the base font it is drawn in."""
    fonts: dict[str, str] = {}

    def visit(text, _cm, _tm, font, _size):
        if text.strip() and font is not None:
            fonts[text.strip()] = str(font.get("/BaseFont", ""))

    PdfReader(io.BytesIO(data)).pages[0].extract_text(visitor_text=visit)
    return fonts


def test_line_items_are_in_the_regular_face_after_the_bold_seller_name(berlin):
    site, account = berlin
    invoice = three_line_invoice(site, account, "EUR", [("Webdesign", 1, 250000)])
    fonts = fonts_of(documents.render_invoice_pdf(invoice))
    assert "Bold" in fonts["Acme Studio GmbH"]
    assert "Bold" not in fonts["Webdesign"]
