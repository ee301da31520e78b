"""Issue 21: a monthly client opens the portal from their email on a phone (375 px), sees
the invoice and its receipt, changes the card and cancels in Stripe's customer portal,
and comes back to the portal; the admin shows the cancellation."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from .conftest import DEADLINE, payment_link, screenshot, text_body
from .flows import add_monthly_request, reload_until_status

PHONE = {"width": 375, "height": 812}
#: The invoice's client in the directory (made and linked if the billing request did not).
LINK_CLIENT = (
    "from wagtail_client_billing.models import Client, Invoice; "
    "client, _ = Client.objects.get_or_create(email='mo@client-a.example'); "
    "Invoice.objects.filter(email='mo@client-a.example').update(client=client)"
)
DESKTOP = {"width": 1280, "height": 800}


def portal_link(message: Any) -> str:
    match = re.search(r"https?://\S+/billing/portal/open/[^\s/]+/", text_body(message))
    assert match, f"no portal link in the email:\n{text_body(message)}"
    return match.group(0)


def no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page is {width}px wide"


def reload_until(page: Any, url: str, text: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        page.goto(url)
        if text in page.locator("main").inner_text():
            return
        if time.monotonic() > deadline:
            expect(page.locator("main")).to_contain_text(text, timeout=1)
            return
        page.wait_for_timeout(300)


def test_a_client_walks_the_portal_on_a_phone_and_cancels_in_stripes_portal(
    stack, admin_page, browser
):
    number = add_monthly_request(
        admin_page,
        stack,
        email="mo@client-a.example",
        amount="49.00",
        description="Hosting and care plan",
    )

    phone = browser.new_context(viewport=PHONE, locale="en-US", is_mobile=True, has_touch=True)
    phone.set_default_timeout(15_000)
    client = phone.new_page()
    message = stack.mailbox.wait_for(to="mo@client-a.example")
    client.goto(payment_link(message))
    client.get_by_role("button", name="Pay", exact=True).click()
    reload_until_status(admin_page, stack, number, "Paid")

    # The client asks the portal for a link (the invoice's client, in the directory).
    stack.manage("shell", "-c", LINK_CLIENT)
    client.goto(stack.url("/billing/portal/new-link/"))
    client.get_by_label("Your email address").fill("mo@client-a.example")
    client.get_by_role("button", name="Email me a link").click()
    expect(client.get_by_role("heading", name="Check your email")).to_be_visible()
    no_horizontal_scroll(client)
    screenshot(client, "portal-new-link-375")
    link = portal_link(stack.mailbox.wait_for(to="mo@client-a.example", containing="portal/open"))

    # The portal: the invoice, paid, with its receipt.
    client.goto(link)
    expect(client.get_by_role("heading", name="Your invoices")).to_be_visible()
    card = client.get_by_test_id("portal-invoice").filter(has_text=number)
    expect(card).to_contain_text("Paid")
    expect(card).to_contain_text("$49.00")
    reload_until(client, stack.url("/billing/portal/"), "Subscription: Active")
    expect(card).to_contain_text("Paid $49.00 on")
    no_horizontal_scroll(client)
    screenshot(client, "portal-375")

    # Stripe's customer portal: a new card, then cancel at the period's end.
    card.get_by_role("button", name="Manage card / cancel").click()
    expect(client.get_by_role("heading", name="Manage your billing")).to_be_visible()
    client.get_by_label("New card number").fill("4000 0566 5566 5556")
    client.get_by_role("button", name="Update card").click()
    expect(client.get_by_role("heading", name="Your invoices")).to_be_visible()
    card.get_by_role("button", name="Manage card / cancel").click()
    expect(client.get_by_test_id("card")).to_contain_text("5556")
    client.get_by_role("button", name="Cancel plan").click()
    expect(client.get_by_role("heading", name="Your invoices")).to_be_visible()
    reload_until(client, stack.url("/billing/portal/"), "ends on")
    no_horizontal_scroll(client)

    # The period ends: Stripe deletes the subscription; the admin shows it cancelled.
    ((subscription_id,),) = stack.sql(
        "SELECT subscription_id FROM wagtail_client_billing_invoice WHERE number = ?", (number,)
    )
    stack.emulator(f"/_emulator/subscriptions/{subscription_id}/end_period", {})
    reload_until(client, stack.url("/billing/portal/"), "Subscription: Cancelled")
    expect(card.get_by_role("button", name="Manage card / cancel")).to_have_count(0)
    admin_page.goto(stack.url("/admin/client-billing/invoices/"))
    admin_page.get_by_role("link", name=number, exact=True).click()
    expect(admin_page.locator(".wcb-subscription-details")).to_contain_text("Cancelled")

    # The same portal on a desktop.
    desktop = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = desktop.new_page()
    page.goto(link)
    expect(page.get_by_test_id("portal-invoice").filter(has_text=number)).to_contain_text("Paid")
    screenshot(page, "portal-1280")

    # Signing out closes the portal in this browser.
    client.get_by_role("button", name="Sign out").click()
    expect(client.get_by_role("status")).to_contain_text("You are signed out.")
    client.goto(stack.url("/billing/portal/"))
    expect(client.get_by_role("heading", name="Get a link to your invoices")).to_be_visible()
    phone.close()
    desktop.close()
