"""The rough edges an editor met in a real browser (issue 22), each checked as the editor
would notice it, through Django's test client; the browser behaviours are in
``tests/e2e/test_rough_edges.py``."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.utils import make_invoice, make_user
from wagtail_client_billing.models import InvoiceStatus

NS = "wagtail_client_billing_invoices"


def url(name: str, *args) -> str:
    return reverse(f"{NS}:{name}", args=args)


@pytest.fixture
def admin(db, client):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return user


def breadcrumbs(html: str) -> list[str]:
    """The visible labels of Wagtail's breadcrumbs in the page header."""
    nav = re.search(r'<nav[^>]*aria-label="Breadcrumb"[^>]*>(.*?)</nav>', html, re.S)
    assert nav, "the page has no breadcrumbs"
    texts = [
        re.sub(r"<[^>]+>", " ", item) for item in re.findall(r"<li[^>]*>(.*?)</li>", nav[1], re.S)
    ]
    return [" ".join(text.split()) for text in texts if text.strip()]


# --- 3. the Resend pages' headers -------------------------------------------------------------


@pytest.mark.parametrize("status", [InvoiceStatus.PENDING, InvoiceStatus.PAID])
def test_resend_page_header_names_the_invoice_and_the_action(
    client, admin, connected_site, account, status
):
    invoice = make_invoice(connected_site, account, status=status)
    html = client.get(url("resend", invoice.pk)).content.decode()
    trail = breadcrumbs(html)
    assert trail[-1] == "Resend email"
    assert any(invoice.number in label for label in trail)
    assert "Invoices" in trail
