"""An editor refunds a paid invoice in part, then in full, from its page."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import payment_link, screenshot
from .flows import LISTING, add_billing_request, reload_until_status


def _open_refund_form(admin_page, stack, number):
    admin_page.goto(stack.url(LISTING))
    admin_page.get_by_role("link", name=number, exact=True).click()
    admin_page.wait_for_url(re.compile(r"/inspect/\d+/"))
    # The Refund action's address (its button is in the header's actions menu; that
    # it is offered only with the permission is tests/test_refunds.py's).
    href = admin_page.url.replace("/inspect/", "/refund/")
    admin_page.goto(href)


def _refund(admin_page, amount, shown):
    admin_page.get_by_label(re.compile(r"Amount to refund")).fill(amount)
    admin_page.get_by_label("Reason").select_option("requested_by_customer")
    admin_page.get_by_role("button", name="Continue").click()
    expect(admin_page.get_by_role("heading", name=f"Refund {shown}?")).to_be_visible()
    expect(admin_page.get_by_text("taken from the balance of the connected")).to_be_visible()
    admin_page.get_by_role("button", name="Yes, refund").click()
    expect(admin_page.locator(".messages").first).to_contain_text(f"{shown} of")


def test_an_editor_refunds_a_paid_invoice_in_part_then_in_full(stack, admin_page, new_context):
    number = add_billing_request(
        admin_page,
        stack,
        email="dora@client-a.example",
        currency="USD",
        amount="125.00",
        description="Logo design",
    )
    link = payment_link(stack.mailbox.wait_for(to="dora@client-a.example"))
    client = new_context().new_page()
    client.goto(link)
    client.get_by_role("button", name="Pay", exact=True).click()
    reload_until_status(admin_page, stack, number, "Paid")

    _open_refund_form(admin_page, stack, number)
    _refund(admin_page, "25.00", "$25.00")
    expect(admin_page.get_by_text("Refunded: $25.00")).to_be_visible()
    reload_until_status(admin_page, stack, number, "Partially refunded")
    screenshot(admin_page, "invoice-listing-partially-refunded")

    _open_refund_form(admin_page, stack, number)
    _refund(admin_page, "100.00", "$100.00")
    expect(admin_page.get_by_text("Refunded: $125.00")).to_be_visible()
    reload_until_status(admin_page, stack, number, "Refunded")
    screenshot(admin_page, "invoice-listing-refunded")

    # The client's link says so, and the client got a refund receipt for each.
    client.goto(link)
    expect(client.get_by_role("heading", name="This invoice was paid and refunded")).to_be_visible()
    stack.mailbox.wait_for(to="dora@client-a.example", containing="Refund: $100.00")
