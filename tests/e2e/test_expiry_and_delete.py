"""Scenarios 4 and 5: a link the client let expire, and a request the editor withdrew."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from .bootstrap import WELCOME
from .conftest import payment_link, run_axe, screenshot
from .flows import LISTING, add_billing_request, open_settings_tab, status_in_listing

DAY = 24 * 3600


def test_cancelled_then_expired_link_shows_expired_and_send_new_invoice_is_pending(
    stack, admin_page, new_context
):
    number = add_billing_request(
        admin_page,
        stack,
        email="dev@client-a.example",
        currency="GBP",
        amount="150",
        description="Landing page",
    )
    link = payment_link(stack.mailbox.wait_for(to="dev@client-a.example"))

    client = new_context().new_page()
    client.goto(link)
    client.get_by_role("button", name="Cancel", exact=True).click()
    client.wait_for_url(re.compile(re.escape(stack.url("/?cancelled=1"))))
    expect(client.get_by_text(WELCOME)).to_be_visible()

    # A day passes: Stripe's clock and the invoice's (its link ran out), and the
    # expiry sweep runs as the every-minute schedule would.
    stack.emulator("/_emulator/clock", {"advance": DAY + 3600})
    try:
        past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
        stack.sql(
            "UPDATE wagtail_client_billing_invoice SET expires_at = ? WHERE number = ?",
            (past, number),
        )
        assert "Expired 1 invoice" in stack.manage("client_billing_expire")
    finally:
        stack.emulator("/_emulator/clock", {"advance": -(DAY + 3600)})

    client.goto(link)
    expect(client.get_by_role("heading", name="This payment link has expired")).to_be_visible()
    expect(client.get_by_text(number)).to_be_visible()
    screenshot(client, "client-expired")
    assert run_axe(client) == []

    admin_page.goto(stack.url(LISTING))
    expect(status_in_listing(admin_page, number)).to_have_text("Expired")
    admin_page.get_by_role("link", name=number, exact=True).click()
    expect(admin_page.get_by_role("heading", level=1)).to_contain_text(number)
    screenshot(admin_page, "invoice-inspect-expired")
    admin_page.get_by_role("link", name="Send new invoice").first.click()
    expect(admin_page.get_by_text(f"filled in from {number}")).to_be_visible()
    admin_page.get_by_role("button", name=re.compile(r"^(Send|Create|Save)")).first.click()
    message = admin_page.locator(".messages").first
    expect(message).to_contain_text("dev@client-a.example")
    new_number = re.search(r"INV-\d+", message.inner_text()).group(0)
    assert new_number != number

    admin_page.goto(stack.url(LISTING))
    expect(status_in_listing(admin_page, new_number)).to_have_text("Pending")
    expect(status_in_listing(admin_page, number)).to_have_text("Expired")
    screenshot(admin_page, "invoice-listing")
    open_settings_tab(admin_page, stack, "Invoices")
    expect(admin_page.get_by_role("link", name=new_number)).to_be_visible()
    screenshot(admin_page, "settings-invoices-tab")
    # The client gets the new link, and it opens Checkout again.
    new_link = payment_link(
        stack.mailbox.wait_for(to="dev@client-a.example", containing=new_number)
    )
    assert new_link != link
    client.goto(new_link)
    expect(client.get_by_test_id("amount")).to_have_text("150.00 GBP")


def test_deleted_request_shows_the_client_the_withdrawn_page(stack, admin_page, new_context):
    number = add_billing_request(
        admin_page,
        stack,
        email="ben@client-a.example",
        currency="EUR",
        amount="800",
        description="Brand refresh",
    )
    link = payment_link(stack.mailbox.wait_for(to="ben@client-a.example"))

    admin_page.goto(stack.url(LISTING))
    row = admin_page.get_by_role("row").filter(
        has=admin_page.get_by_role("link", name=number, exact=True)
    )
    row.get_by_role("button", name=re.compile("More options")).click()
    row.get_by_role("link", name="Delete").click()
    expect(
        admin_page.get_by_text(re.compile(rf"Delete billing request {number} \(.+\)\?"))
    ).to_be_visible()
    admin_page.get_by_role("button", name="Yes, delete").click()
    expect(admin_page.locator(".messages")).to_contain_text(
        re.compile(rf"Billing request {number} \(.+\) deleted\. Its payment link no longer works\.")
    )
    expect(admin_page.get_by_role("link", name=number, exact=True)).to_have_count(0)

    client = new_context().new_page()
    response = client.goto(link)
    assert response.status == 410
    expect(client.get_by_role("heading", name="This billing request was withdrawn")).to_be_visible()
    screenshot(client, "client-withdrawn")
    assert run_axe(client) == []
