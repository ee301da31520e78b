"""Scenarios 2 and 3: a client pays by card, or by a bank debit that settles later."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .bootstrap import WELCOME
from .conftest import payment_link, screenshot
from .flows import LISTING, add_billing_request, reload_until_status, status_in_listing


def test_client_pays_a_usd_request_by_card_and_the_listing_shows_paid(
    stack, admin_page, new_context
):
    number = add_billing_request(
        admin_page,
        stack,
        email="ana@client-a.example",
        currency="USD",
        amount="125.00",
        description="Website build, phase 1",
    )
    admin_page.goto(stack.url(LISTING))
    expect(status_in_listing(admin_page, number)).to_have_text("Pending")

    message = stack.mailbox.wait_for(to="ana@client-a.example")
    link = payment_link(message)
    assert link.startswith(stack.base_url)

    client = new_context().new_page()
    client.goto(link)
    # Stripe Checkout (the emulator's hosted page) on the connected account.
    expect(client.get_by_test_id("amount")).to_have_text("125.00 USD")
    expect(client.get_by_role("heading", level=1)).to_contain_text("Website build, phase 1")
    screenshot(client, "client-checkout")
    client.get_by_role("button", name="Pay", exact=True).click()
    client.wait_for_url(re.compile(re.escape(stack.url("/?paid=1"))))
    expect(client.get_by_text(WELCOME)).to_be_visible()

    reload_until_status(admin_page, stack, number, "Paid")
    screenshot(admin_page, "invoice-listing-paid")


def test_jpy_bank_debit_is_processing_then_paid_when_it_settles(stack, admin_page, new_context):
    number = add_billing_request(
        admin_page,
        stack,
        email="carla@client-a.example",
        currency="JPY",
        amount="30000",
        description="Translation (Japanese)",
    )
    link = payment_link(stack.mailbox.wait_for(to="carla@client-a.example"))

    client = new_context().new_page()
    client.goto(link)
    expect(client.get_by_test_id("amount")).to_have_text("30,000 JPY")
    client.get_by_role("button", name="Pay by bank debit (delayed)").click()
    expect(client.get_by_role("heading", name="Payment processing")).to_be_visible()

    reload_until_status(admin_page, stack, number, "Processing")
    # The client's link now says the payment is on its way, not "pay again".
    client.goto(link)
    expect(client.get_by_role("heading", name="Your payment is being processed")).to_be_visible()
    expect(client.get_by_text("INV-")).to_have_text(number)
    screenshot(client, "client-processing")

    # The bank settles the debit (the emulator's button on its processing page).
    client.go_back()
    client.get_by_role("button", name="Settle payment").click()
    reload_until_status(admin_page, stack, number, "Paid")
