"""An editor saves a billing request as a draft, edits it, sends it; the client pays it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import AXE_JS, payment_link, run_axe, screenshot, text_body
from .flows import LISTING, field, fill_billing_request, open_add_form, reload_until_status


def more_actions(page) -> None:
    """Open the form footer's menu of further actions (Wagtail's dropdown)."""
    page.locator("footer [data-w-dropdown-target='toggle']").first.click()


def test_draft_is_saved_edited_sent_and_paid(stack, admin_page, new_context):
    page = admin_page
    open_add_form(page, stack)
    fill_billing_request(
        page,
        stack,
        email="dora@client-a.example",
        currency="USD",
        amount="90.00",
        description="Logo, first round",
    )
    field(page, "spinbutton", "Payment link lifetime").fill("7")
    more_actions(page)
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".messages").first).to_contain_text("Draft for dora@client-a.example saved")

    # The draft's own edit form: every field, still unsent and unnumbered.
    expect(field(page, "textbox", "Amount")).to_have_value("90.00")
    field(page, "textbox", "Amount").fill("150.00")
    field(page, "textbox", "Description").fill("Logo, two rounds")
    screenshot(page, "invoice-draft-edit")
    if AXE_JS.exists():  # npm ci installs it; without it the rest still runs
        assert run_axe(page) == []
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".messages").first).to_contain_text("Draft saved")

    page.goto(stack.url(LISTING + "?status=draft"))
    expect(page.get_by_role("link", name="Draft", exact=True)).to_have_count(1)
    page.get_by_role("link", name="Draft", exact=True).click()  # its page
    expect(page.get_by_text("7 days — counted from sending")).to_be_visible()
    page.get_by_role("link", name="Send", exact=True).first.click()
    page.get_by_role("button", name="Yes, send it").click()
    message = page.locator(".messages").first
    expect(message).to_contain_text("sent to dora@client-a.example")
    number = re.search(r"INV-\d+", message.inner_text())
    assert number, message.inner_text()

    email = stack.mailbox.wait_for(to="dora@client-a.example")
    body = text_body(email)
    assert "150.00" in body and "Logo, two rounds" in body
    client = new_context().new_page()
    client.goto(payment_link(email))
    expect(client.get_by_test_id("amount")).to_have_text("150.00 USD")
    client.get_by_role("button", name="Pay", exact=True).click()
    client.wait_for_url(re.compile(re.escape(stack.url("/?paid=1"))))

    reload_until_status(page, stack, number.group(0), "Paid")
