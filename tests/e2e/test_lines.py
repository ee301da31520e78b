"""A billing request of three lines: the editor sees the total as they type, the client
is emailed the lines and pays their sum on Checkout."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import ARTIFACTS, payment_link, screenshot
from .flows import field, open_add_form

LINES = [
    ("Homepage redesign", "1", "1200"),
    ("Hosting", "12", "15"),
    ("Logo variants", "3", "333.33"),
]


def test_an_editor_bills_three_lines_and_sees_their_total_live(stack, admin_page, new_context):
    page = admin_page
    open_add_form(page, stack)
    field(page, "textbox", "Client email").fill("dora@client-a.example")
    field(page, "combobox", "Currency").select_option("USD")
    field(page, "textbox", "Description").fill("Website package")
    field(page, "textbox", "Success URL").fill(stack.url("/?paid=1"))
    field(page, "textbox", "Cancel URL").fill(stack.url("/?cancelled=1"))
    test_mode = field(page, "checkbox", "Test mode")
    if not test_mode.is_checked():
        test_mode.check()

    total = page.get_by_test_id("wcb-lines-total")
    amount = field(page, "textbox", "Amount")
    expect(amount).to_be_enabled()  # no lines yet: the quick path's single amount
    for index, (description, quantity, price) in enumerate(LINES):
        page.get_by_role("button", name="Add line").click()
        page.locator(f'[name="lines-{index}-description"]').fill(description)
        page.locator(f'[name="lines-{index}-quantity"]').fill(quantity)
        page.locator(f'[name="lines-{index}-unit_price"]').fill(price)
    expect(total).to_have_text("$2,379.99")
    expect(amount).to_be_disabled()  # the amount is the lines' total now
    expect(amount).to_have_value("2379.99")

    # The total follows every change, in the chosen currency's format.
    page.locator('[name="lines-1-quantity"]').fill("6")
    expect(total).to_have_text("$2,289.99")
    screenshot(page, "billing-request-lines")
    # The last line and the total, for the editors' guide.
    page.locator('[name="lines-2-product"]').evaluate(
        "element => element.scrollIntoView({block: 'start', behavior: 'instant'})"
    )
    page.screenshot(path=str(ARTIFACTS / "billing-request-lines-total.png"))

    page.get_by_role("button", name=re.compile(r"^Send")).first.click()
    message = page.locator(".messages").first
    expect(message).to_contain_text("dora@client-a.example")

    email = stack.mailbox.wait_for(to="dora@client-a.example")
    body = email.get_body(preferencelist=("plain",)).get_content()
    assert "Hosting: 6 × $15.00 = $90.00" in body
    assert "Amount: $2,289.99" in body

    client = new_context().new_page()
    client.goto(payment_link(email))
    expect(client.get_by_test_id("amount")).to_have_text("2,289.99 USD")
    for description, quantity in (("Homepage redesign", 1), ("Hosting", 6), ("Logo variants", 3)):
        item = client.get_by_role("listitem").filter(has_text=description)
        expect(item).to_contain_text(f"× {quantity}")
    screenshot(client, "client-checkout-lines")


def test_a_catalogue_product_fills_in_a_line_and_the_total(stack, admin_page):
    page = admin_page
    page.goto(stack.url("/admin/client-billing/catalogue/add/"))
    field(page, "combobox", "Site").select_option(label="Client A Bakery")
    field(page, "textbox", "Name").fill("Hosting")
    field(page, "textbox", "Description").fill("Managed hosting, one month")
    field(page, "combobox", "Currency").select_option("USD")
    field(page, "textbox", "Unit price").fill("15")
    page.get_by_role("button", name="Save").first.click()
    expect(page.locator(".messages").first).to_contain_text("Hosting")

    open_add_form(page, stack)
    field(page, "combobox", "Currency").select_option("USD")
    page.get_by_role("button", name="Add line").click()
    page.locator('[name="lines-0-product"]').select_option(
        label="Hosting · $15.00 · Client A Bakery"
    )

    expect(page.locator('[name="lines-0-description"]')).to_have_value("Managed hosting, one month")
    expect(page.locator('[name="lines-0-unit_price"]')).to_have_value("15.00")
    page.locator('[name="lines-0-quantity"]').fill("12")
    expect(page.get_by_test_id("wcb-lines-total")).to_have_text("$180.00")
