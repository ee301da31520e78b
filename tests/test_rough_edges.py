"""The rough edges an editor met in a real browser (issue 22), each checked as the editor
would notice it, through Django's test client; the browser behaviours are in
``tests/e2e/test_rough_edges.py``."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.utils import make_invoice, make_user
from wagtail_client_billing.models import InvoiceStatus, settings_url

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


# --- 2. the Expires column --------------------------------------------------------------------


def row_of(html: str, number: str) -> str:
    """The text of the table row that holds ``number``."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        if f">{number}<" in row:
            return " ".join(re.sub(r"<[^>]+>", " ", row).split())
    raise AssertionError(f"no row for {number}")


def cells_of(html: str, number: str) -> list[str]:
    """The texts of the cells of the table row that holds ``number``."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        if f">{number}<" in row:
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]
    raise AssertionError(f"no row for {number}")


def test_expires_column_shows_a_time_only_where_the_link_can_still_run_out(
    client, admin, connected_site, account
):
    now = timezone.now()
    pending = make_invoice(connected_site, account)
    paid = make_invoice(connected_site, account, status=InvoiceStatus.PAID, paid_at=now)
    deleted = make_invoice(connected_site, account, status=InvoiceStatus.DELETED)
    expired = make_invoice(
        connected_site,
        account,
        status=InvoiceStatus.EXPIRED,
        expires_at=now - timedelta(hours=3),
        expired_at=now - timedelta(hours=3),
    )
    listing = client.get(url("list"), {"status": ["pending", "paid", "deleted", "expired"]})
    html = listing.content.decode()
    assert "in 23 hours" in row_of(html, pending.number)
    assert "3 hours ago" in row_of(html, expired.number)
    for invoice in (paid, deleted):
        assert " in " not in f" {row_of(html, invoice.number)} ", row_of(html, invoice.number)

    tab = client.get(settings_url(connected_site)).content.decode()
    assert "in 23 hours" in row_of(tab, pending.number)
    table = next(t for t in re.findall(r"<table.*?</table>", tab, re.S) if pending.number in t)
    headings = [
        " ".join(re.sub(r"<[^>]+>", " ", th).split())
        for th in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)
    ]
    expires = headings.index("Expires")
    assert cells_of(tab, pending.number)[expires].startswith("in ")
    assert cells_of(tab, paid.number)[expires] == "—"
