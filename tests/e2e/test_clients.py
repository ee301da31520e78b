"""The Clients screens: a request to a new address adds the client, the list shows what
they owe and filters by it, their page shows the request, and paying it clears it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import AXE_JS, payment_link, run_axe, screenshot
from .flows import add_billing_request, wait_for_status

CLIENTS = "/admin/client-billing/clients/"


def client_row(page, email: str):
    return page.get_by_role("row").filter(has_text=email)


def awaiting_cell(page, email: str):
    """The "Awaiting payment" cell of the client's row (its column found by its header)."""
    headers = page.locator("table.listing thead th")
    labels = [text.strip() for text in headers.all_inner_texts()]
    column = next(i for i, label in enumerate(labels) if label.startswith("Awaiting payment"))
    return client_row(page, email).locator("td").nth(column)


def test_a_client_is_listed_with_what_they_owe_filtered_and_cleared_by_paying(
    stack, admin_page, new_context
):
    page = admin_page
    email = "cleo@client-a.example"
    number = add_billing_request(
        page, stack, email=email, currency="EUR", amount="48.00", description="Hosting, May"
    )

    # The request added the client; the list says one request awaits payment.
    page.goto(stack.url(CLIENTS))
    expect(client_row(page, email)).to_have_count(1)
    expect(awaiting_cell(page, email)).to_have_text("1")
    screenshot(page, "clients-listing")
    if AXE_JS.exists():  # npm ci installs it; without it the rest still runs
        assert run_axe(page) == []

    # The filter: those awaiting payment include Cleo, those who owe nothing do not.
    page.goto(stack.url(CLIENTS + "?outstanding=yes"))
    expect(client_row(page, email)).to_have_count(1)
    page.goto(stack.url(CLIENTS + "?outstanding=no"))
    expect(client_row(page, email)).to_have_count(0)

    # Her page: the request, and what is outstanding in euros.
    page.goto(stack.url(CLIENTS))
    client_row(page, email).get_by_role("link").first.click()
    expect(page.get_by_role("link", name=re.compile(rf"^{number} "))).to_be_visible()
    expect(page.locator("main")).to_contain_text("48.00")
    if AXE_JS.exists():
        assert run_axe(page) == []

    # She pays; the list no longer counts the request, and the filter agrees.
    client = new_context().new_page()
    client.goto(payment_link(stack.mailbox.wait_for(to=email)))
    client.get_by_role("button", name="Pay", exact=True).click()
    wait_for_status(stack, number, "paid")  # the webhook, applied by qcluster
    page.goto(stack.url(CLIENTS + "?outstanding=no"))
    expect(client_row(page, email)).to_have_count(1)
    expect(awaiting_cell(page, email)).to_have_text("")
