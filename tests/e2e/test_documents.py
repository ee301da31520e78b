"""A branded client page in two languages at a phone's and a desktop's width, and the
PDF invoice the client downloads from it (rendered to an image for the docs)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import pypdfium2
from playwright.sync_api import expect

from .conftest import ARTIFACTS, DOCS_IMAGES, REPO, payment_link, screenshot
from .flows import add_billing_request

#: The branding, set as an editor would in Settings → Client Billing → Documents, and the
#: site's clients' language (its root page's locale).
BRAND = """
import io, sys
from PIL import Image as P, ImageDraw, ImageFont
from django.core.files.uploadedfile import SimpleUploadedFile
from wagtail.images.models import Image
from wagtail.models import Locale, Site
from wagtail_client_billing.models import ClientBillingSettings
site = Site.objects.get(is_default_site=True)
picture = P.new("RGB", (240, 80), (29, 111, 165))
ImageDraw.Draw(picture).text((24, 14), "ACME", fill="white", font=ImageFont.load_default(size=44))
buffer = io.BytesIO(); picture.save(buffer, format="PNG")
logo = Image.objects.create(title="Acme", file=SimpleUploadedFile("acme.png", buffer.getvalue()))
config = ClientBillingSettings.for_site(site)
config.seller_name = "Acme Studio GmbH"
config.seller_address = "Hauptstraße 1\\n10115 Berlin"
config.seller_tax_id = "DE123456789"
config.accent_colour = "#1d6fa5"
config.document_footer = "IBAN DE00 1234 5678 9012 3456 78 · Acme Studio GmbH"
config.logo = logo
config.save()
root = site.root_page
root.locale = Locale.objects.get_or_create(language_code=sys.argv[-1])[0]
root.save(update_fields=["locale"])
"""

WIDTHS = (375, 1280)


def brand(stack, language: str) -> None:
    stack.manage("shell", "-c", BRAND.replace("sys.argv[-1]", repr(language)))


def expire(stack, number: str) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    stack.sql(
        "UPDATE wagtail_client_billing_invoice SET expires_at = ? WHERE number = ?",
        (past, number),
    )


def open_client_page(browser, link: str, width: int):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(link)
    return context, page


def assert_finished(page) -> None:
    """No sideways scrolling; the logo, the test-mode marking and the footer show."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{overflow}px of horizontal scroll"
    logo = page.locator(".site img")
    expect(logo).to_be_visible()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", logo.element_handle())
    expect(page.get_by_text("IBAN DE00")).to_be_visible()


def test_branded_client_pages_in_german_and_japanese_at_375_and_1280(stack, admin_page, browser):
    for language, currency, amount in (("de", "EUR", "1250"), ("ja", "JPY", "165000")):
        brand(stack, language)
        email = f"{language}@client-a.example"
        number = add_billing_request(
            admin_page, stack, email=email, currency=currency, amount=amount, description="Web"
        )
        message = stack.mailbox.wait_for(to=email)
        link = payment_link(message)
        expire(stack, number)
        for width in WIDTHS:
            context, page = open_client_page(browser, link, width)
            try:
                expect(page.get_by_text(number)).to_be_visible()
                expect(page.locator("html")).to_have_attribute("lang", language)
                # The test-mode marking in the page's language (English until translated).
                expect(page.locator(".test-mode")).to_be_visible()
                assert_finished(page)
                if (language, width) in (("de", 375), ("ja", 1280)):
                    screenshot(page, f"client-branded-{language}-{width}")
                if language == "de" and width == 1280:
                    href = page.get_by_role("link", name="PDF").first.get_attribute("href")
                    pdf = page.request.get(urljoin(page.url, href or ""))
                    assert pdf.headers["content-type"] == "application/pdf"
                    attached = next(message.iter_attachments()).get_content()
                    assert pdf.body() == attached  # the emailed file, stored
                    render_pdf(pdf.body(), "invoice-pdf")
            finally:
                context.close()


def render_pdf(data: bytes, name: str) -> None:
    """The PDF's first page as a PNG beside the screenshots (and into the docs)."""
    import os
    import shutil

    document = pypdfium2.PdfDocument(io.BytesIO(data))
    image = document[0].render(scale=1.5).to_pil()
    path = ARTIFACTS / f"{name}.png"
    image.save(path)
    if os.environ.get("E2E_DOCS_IMAGES"):
        shutil.copyfile(path, REPO / "docs" / "images" / DOCS_IMAGES[name])
