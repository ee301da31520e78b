"""Scenario 8: the create form by keyboard alone; labels; axe-core on the app's screens."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import payment_link, run_axe, screenshot
from .flows import LISTING, SETTINGS, add_billing_request, wait_for_status

#: Wagtail's own admin chrome, to leave out of axe if it ever reported on it rather than
#: on this app's markup. Empty: with Wagtail 8.0.1 axe finds nothing serious anywhere
#: (its one finding, "landmark-unique" on the listing's header, is moderate).
WAGTAIL_CHROME: list[str] = []


def tab_to(page, matches: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches the CSS selector ``matches``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(sel) => document.activeElement?.matches(sel) ?? false", matches):
            return
    raise AssertionError(f"{matches} is not reachable with Tab within {limit} presses")


def unlabelled_controls(page, scope: str) -> list[str]:
    """Visible form controls in ``scope`` without a label a screen reader would read."""
    return page.evaluate(
        """(scope) => [...document.querySelectorAll(
                `${scope} input, ${scope} select, ${scope} textarea`)]
            .filter((el) => el.type !== "hidden" && el.offsetParent !== null)
            .filter((el) => !(el.labels?.length || el.getAttribute("aria-label")
                              || el.getAttribute("aria-labelledby")))
            .map((el) => el.name || el.id || el.outerHTML)""",
        scope,
    )


def test_create_form_by_keyboard_alone_and_every_field_labelled(stack, admin_page):
    page = admin_page
    page.goto(stack.url(LISTING + "add/"))
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    form = "main form"
    assert unlabelled_controls(page, form) == []
    screenshot(page, "invoice-create")

    page.locator("body").focus()
    tab_to(page, "[name=site]")
    page.keyboard.press("ArrowDown")  # the one site
    tab_to(page, "[name=email]")
    page.keyboard.type("keyboard@client-a.example")
    tab_to(page, "[name=currency]")
    page.keyboard.type("USD")
    tab_to(page, "[name=amount]")
    page.keyboard.type("125.00")
    tab_to(page, "[name=description]")
    page.keyboard.type("Typed without a mouse")
    tab_to(page, "[name=success_url]")
    page.keyboard.type(stack.url("/?paid=1"))
    tab_to(page, "[name=cancel_url]")
    page.keyboard.type(stack.url("/?cancelled=1"))
    tab_to(page, "[name=test_mode]")
    if not page.evaluate("document.activeElement.checked"):
        page.keyboard.press("Space")
    tab_to(page, "main form button[type=submit]")
    page.keyboard.press("Enter")

    message = page.locator(".messages").first
    expect(message).to_contain_text("keyboard@client-a.example")
    number = re.search(r"INV-\d+", message.inner_text()).group(0)
    page.goto(stack.url(LISTING))
    expect(page.get_by_role("link", name=number, exact=True)).to_be_visible()
    stack.mailbox.wait_for(to="keyboard@client-a.example")


def test_axe_finds_no_serious_violations_on_the_apps_screens(stack, admin_page, new_context):
    page = admin_page
    found: dict[str, list[dict]] = {}

    page.goto(stack.url(SETTINGS))
    for tab in ("Stripe", "Email", "Defaults", "Invoices"):
        page.get_by_role("tab", name=tab, exact=True).click()
        found[f"settings: {tab}"] = run_axe(page, WAGTAIL_CHROME)

    page.goto(stack.url(LISTING + "add/"))
    found["create form"] = run_axe(page, WAGTAIL_CHROME)

    number = add_billing_request(
        page,
        stack,
        email="axe@client-a.example",
        currency="EUR",
        amount="80.00",
        description="Accessible invoice",
    )
    page.goto(stack.url(LISTING))
    found["listing"] = run_axe(page, WAGTAIL_CHROME)
    page.get_by_role("link", name=number, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(number)
    found["inspect"] = run_axe(page, WAGTAIL_CHROME)
    screenshot(page, "invoice-inspect")

    link = payment_link(stack.mailbox.wait_for(to="axe@client-a.example"))
    client = new_context().new_page()
    client.goto(link)
    client.get_by_role("button", name="Pay by bank debit (delayed)").click()
    expect(client.get_by_role("heading", name="Payment processing")).to_be_visible()
    wait_for_status(stack, number, "processing")  # the qcluster applies Stripe's event
    client.goto(link)
    expect(client.get_by_role("heading", name="Your payment is being processed")).to_be_visible()
    found["public: processing"] = run_axe(client)
    client.go_back()
    client.get_by_role("button", name="Settle payment").click()
    client.wait_for_url(re.compile(re.escape(stack.url("/?paid=1"))))
    wait_for_status(stack, number, "paid")
    client.goto(link)
    expect(client.get_by_role("heading", level=1)).to_be_visible()
    found["public: paid"] = run_axe(client)
    screenshot(client, "client-paid")

    assert {screen: v for screen, v in found.items() if v} == {}
