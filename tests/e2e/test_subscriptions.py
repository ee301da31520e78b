"""Issue 18: a monthly client's renewal fails, then the subscription is cancelled; the
listing and the invoice's page show both."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from .conftest import DEADLINE, payment_link, screenshot
from .flows import LISTING, add_monthly_request, reload_until_status


def subscription_in_listing(page, number):
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=number, exact=True))
    return row.locator(".wcb-subscription").first


def reload_until_subscription(page, stack, number, state):
    deadline = time.monotonic() + DEADLINE
    while True:
        page.goto(stack.url(LISTING))
        cell = subscription_in_listing(page, number)
        if cell.count() and (cell.text_content() or "").strip() == state:
            return
        if time.monotonic() > deadline:
            expect(cell).to_have_text(state, timeout=1)
            return
        page.wait_for_timeout(300)


def test_a_failed_renewal_and_a_cancellation_show_in_the_listing_and_on_the_invoice(
    stack, admin_page, new_context
):
    number = add_monthly_request(
        admin_page,
        stack,
        email="mo@client-a.example",
        amount="49.00",
        description="Hosting and care plan",
    )

    client = new_context().new_page()
    client.goto(payment_link(stack.mailbox.wait_for(to="mo@client-a.example")))
    client.get_by_role("button", name="Pay", exact=True).click()
    reload_until_status(admin_page, stack, number, "Paid")
    reload_until_subscription(admin_page, stack, number, "Active")

    ((subscription_id,),) = stack.sql(
        "SELECT subscription_id FROM wagtail_client_billing_invoice WHERE number = ?", (number,)
    )
    stack.emulator(f"/_emulator/subscriptions/{subscription_id}/fail_renewal", {})
    reload_until_subscription(admin_page, stack, number, "Past due")
    expect(
        admin_page.get_by_role("row").filter(has=admin_page.get_by_text(number, exact=True))
    ).to_contain_text("Paid")
    stack.mailbox.wait_for(to="mo@client-a.example", containing="did not go through")
    screenshot(admin_page, "listing-renewal-failed")

    admin_page.get_by_role("link", name=number, exact=True).click()
    details = admin_page.locator(".wcb-subscription-details")
    expect(details).to_contain_text("Past due")
    expect(details).to_contain_text("Failed renewals")
    admin_page.get_by_role("link", name="Cancel subscription").first.click()
    admin_page.get_by_role("button", name="Cancel now").click()
    expect(admin_page.locator(".messages").first).to_contain_text("is cancelled")
    expect(admin_page.locator(".wcb-subscription-details")).to_contain_text("Cancelled")
    expect(admin_page.locator(".wcb-subscription-details")).to_contain_text("None: cancelled on")
    screenshot(admin_page, "invoice-subscription-cancelled")

    reload_until_subscription(admin_page, stack, number, "Cancelled")
    admin_page.get_by_role("link", name=number, exact=True).click()
    admin_page.get_by_role("link", name="History").first.click()
    expect(
        admin_page.get_by_role("row", name=re.compile("^Subscription cancelled"))
    ).to_be_visible()
    expect(
        admin_page.get_by_role("row", name=re.compile("^Subscription renewal payment failed"))
    ).to_be_visible()
