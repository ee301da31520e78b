"""Steps a person takes, shared by the scenarios: an editor's and a client's."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from .conftest import DEADLINE, Stack

SETTINGS = "/admin/settings/wagtail_client_billing/clientbillingsettings/"
LISTING = "/admin/client-billing/invoices/"


def open_settings_tab(page: Any, stack: Stack, tab: str) -> None:
    """Settings -> Client Billing (the only site), on ``tab``."""
    page.goto(stack.url(SETTINGS))
    expect(page.get_by_role("heading", name="Client Billing", level=1)).to_be_visible()
    page.get_by_role("tab", name=tab, exact=True).click()


def field(page: Any, role: str, label: str) -> Any:
    """A form control by its role and its label (Wagtail adds "*" to required ones)."""
    return page.get_by_role(role, name=re.compile(rf"^{re.escape(label)}\*?$"))


def open_add_form(page: Any, stack: Stack) -> None:
    """From the site's Client Billing tab: "+ Add billing request"."""
    open_settings_tab(page, stack, "Invoices")
    page.get_by_role("link", name="Add billing request").click()
    expect(field(page, "textbox", "Client email")).to_be_visible()


def fill_billing_request(
    page: Any,
    stack: Stack,
    *,
    email: str,
    currency: str,
    amount: str,
    description: str,
) -> None:
    field(page, "textbox", "Client email").fill(email)
    field(page, "combobox", "Currency").select_option(currency)
    field(page, "textbox", "Amount").fill(amount)
    field(page, "combobox", "Billing type").select_option(label="One-time")
    field(page, "textbox", "Description").fill(description)
    field(page, "textbox", "Success URL").fill(stack.url("/?paid=1"))
    field(page, "textbox", "Cancel URL").fill(stack.url("/?cancelled=1"))
    test_mode = field(page, "checkbox", "Test mode")
    if not test_mode.is_checked():
        test_mode.check()


def add_billing_request(page: Any, stack: Stack, **fields: str) -> str:
    """Add a billing request from the site's tab; the new invoice's number."""
    open_add_form(page, stack)
    fill_billing_request(page, stack, **fields)
    page.get_by_role("button", name=re.compile(r"^(Send|Create|Save)")).first.click()
    message = page.locator(".messages").first
    expect(message).to_contain_text(fields["email"])
    number = re.search(r"INV-\d+", message.inner_text())
    assert number, message.inner_text()
    return number.group(0)


def add_monthly_request(
    page: Any, stack: Stack, *, email: str, amount: str, description: str
) -> str:
    """Add a recurring monthly billing request in USD from the site's tab; its number."""
    open_add_form(page, stack)
    fill_billing_request(
        page, stack, email=email, currency="USD", amount=amount, description=description
    )
    field(page, "combobox", "Billing type").select_option(label="Recurring monthly")
    page.get_by_role("button", name=re.compile(r"^(Send|Create|Save)")).first.click()
    return re.search(r"INV-\d+", page.locator(".messages").first.inner_text()).group(0)


def status_in_listing(page: Any, number: str) -> Any:
    """The status cell of ``number``'s row in the invoice listing."""
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=number, exact=True))
    return row.locator(".wcb-status").first


def reload_until_status(page: Any, stack: Stack, number: str, status: str) -> None:
    """Reload the listing (as the editor would) until ``number`` shows ``status``."""
    deadline = time.monotonic() + DEADLINE
    while True:
        page.goto(stack.url(LISTING))
        cell = status_in_listing(page, number)
        if cell.count() and (cell.text_content() or "").strip() == status:
            return
        if time.monotonic() > deadline:
            expect(cell).to_have_text(status, timeout=1)
            return
        page.wait_for_timeout(300)


def wait_for_status(stack: Stack, number: str, status: str) -> None:
    """Wait until another process (a webhook, a task) has moved ``number`` to ``status``."""
    deadline = time.monotonic() + DEADLINE
    while stack.invoice_status(number) != status:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{number} is {stack.invoice_status(number)!r}, not {status!r}, after {DEADLINE}s"
            )
        time.sleep(0.1)
