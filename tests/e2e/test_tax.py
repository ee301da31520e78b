"""An editor sends a taxed, discounted request; the live total, the email and Stripe's
payment page show the same total, and the client pays it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import payment_link, screenshot, text_body
from .flows import field, fill_billing_request, open_add_form, reload_until_status


def test_a_taxed_discounted_request_shows_one_total_from_the_form_to_checkout(
    stack, admin_page, new_context
):
    # The site taxes with its own rates: one sales tax, 8.25% on top.
    stack.sql("UPDATE wagtail_client_billing_clientbillingsettings SET tax_mode = 'rates'")
    (site_id,) = stack.sql("SELECT site_id FROM wagtail_client_billing_clientbillingsettings")[0]
    stack.sql(
        "INSERT INTO wagtail_client_billing_taxrate (site_id, display_name, percentage, "
        "inclusive, country, state, active, stripe_ids, created_at) "
        "VALUES (?, 'Sales tax', 8.25, 0, 'US', 'CA', 1, '{}', datetime('now'))",
        (site_id,),
    )

    open_add_form(admin_page, stack)
    fill_billing_request(
        admin_page,
        stack,
        email="tess@client-a.example",
        currency="USD",
        amount="2379.99",
        description="Website package",
    )
    field(admin_page, "combobox", "Tax rate").select_option(label="Sales tax 8.25% (US-CA)")
    field(admin_page, "combobox", "Discount").select_option(label="A percentage off")
    field(admin_page, "textbox", "Discount amount or percentage").fill("10")

    # The live total: 2,379.99 less 10% (238.00) is 2,141.99; 8.25% tax on it, rounded,
    # is 176.71; 2,318.70 in all, as pricing computes it.
    live = admin_page.locator('[data-controller="wcb-figures"] table')
    expect(live).to_contain_text("$2,318.70")
    expect(live).to_contain_text("$176.71")
    live.scroll_into_view_if_needed()
    screenshot(admin_page, "request-tax-discount")

    admin_page.get_by_role("button", name=re.compile(r"^(Send|Create|Save)")).first.click()
    message = admin_page.locator(".messages").first
    expect(message).to_contain_text("tess@client-a.example")
    number = re.search(r"INV-\d+", message.inner_text())
    assert number

    email = stack.mailbox.wait_for(to="tess@client-a.example")
    body = text_body(email)
    assert "$2,318.70" in body
    assert "Sales tax 8.25%: $176.71" in body

    client = new_context().new_page()
    client.goto(payment_link(email))
    expect(client.get_by_test_id("amount")).to_have_text("2,318.70 USD")
    expect(client.get_by_test_id("totals")).to_contain_text("176.71 USD")
    screenshot(client, "client-checkout-tax")
    client.get_by_role("button", name="Pay", exact=True).click()
    client.wait_for_url(re.compile(re.escape(stack.url("/?paid=1"))))

    reload_until_status(admin_page, stack, number.group(0), "Paid")
