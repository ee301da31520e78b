"""A client reads their invoice in their language: the editor picks it on the request, the
email, Checkout and the client's pages follow, whatever the client's browser asks for."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import payment_link, run_axe, screenshot, text_body
from .flows import LISTING, field, fill_billing_request, open_add_form, wait_for_status

PHONE = {"width": 375, "height": 812}


def send_request(page, stack, *, language: str, email: str, amount: str, description: str):
    """Add a EUR billing request in ``language`` (the Language field's value)."""
    open_add_form(page, stack)
    fill_billing_request(
        page, stack, email=email, currency="EUR", amount=amount, description=description
    )
    field(page, "combobox", "Language").select_option(language)
    page.get_by_role("button", name=re.compile(r"^(Send|Create|Save)")).first.click()
    message = page.locator(".messages").first
    expect(message).to_contain_text(email)
    return re.search(r"INV-\d+", message.inner_text()).group(0)


def on_a_phone(new_context):
    """A client's phone whose browser asks for English pages."""
    page = new_context().new_page()
    page.set_viewport_size(PHONE)
    return page


def fits_the_screen(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_a_german_request_is_german_in_the_email_on_checkout_and_on_the_client_page(
    stack, admin_page, new_context
):
    number = send_request(
        admin_page,
        stack,
        language="de",
        email="kunde@client-a.example",
        amount="1234.56",
        description="Relaunch der Website",
    )
    message = stack.mailbox.wait_for(to="kunde@client-a.example")
    assert str(message["Subject"]).strip().startswith(f"Rechnung {number} von ")
    assert "1.234,56" in text_body(message) and "hat Ihnen eine Rechnung gesendet" in text_body(
        message
    )
    link = payment_link(message)

    client = on_a_phone(new_context)
    client.goto(link)
    expect(client.get_by_test_id("locale")).to_have_text("de")  # Checkout's language

    # The editor withdraws it: the client's page says so, in German.
    admin_page.goto(stack.url(LISTING))
    row = admin_page.get_by_role("row").filter(
        has=admin_page.get_by_role("link", name=number, exact=True)
    )
    row.get_by_role("button", name=re.compile("More options")).click()
    row.get_by_role("link", name="Delete").click()
    admin_page.get_by_role("button", name="Yes, delete").click()
    expect(admin_page.locator(".messages")).to_contain_text("deleted")

    response = client.goto(link)
    assert response.status == 410
    expect(client.locator("html")).to_have_attribute("lang", "de")
    expect(
        client.get_by_role("heading", name="Diese Zahlungsanforderung wurde zurückgezogen")
    ).to_be_visible()
    assert fits_the_screen(client)
    screenshot(client, "client-withdrawn-de")
    assert run_axe(client) == []


def test_a_french_request_paid_shows_the_paid_page_in_french(stack, admin_page, new_context):
    number = send_request(
        admin_page,
        stack,
        language="fr",
        email="client@client-a.example",
        amount="980",
        description="Refonte de la marque",
    )
    link = payment_link(stack.mailbox.wait_for(to="client@client-a.example"))

    client = on_a_phone(new_context)
    client.goto(link)
    expect(client.get_by_test_id("locale")).to_have_text("fr")
    client.get_by_role("button", name="Pay", exact=True).click()
    client.wait_for_url(re.compile(re.escape(stack.url("/?paid=1"))))
    wait_for_status(stack, number, "paid")

    client.goto(link)
    expect(client.locator("html")).to_have_attribute("lang", "fr")
    expect(client.get_by_role("heading", name="Cette facture a déjà été payée")).to_be_visible()
    expect(
        # \S+: the month (a JavaScript \w does not match the é of "décembre")
        client.get_by_text(re.compile(r"Elle a été payée le \d+ \S+ \d{4}\. Merci !"))
    ).to_be_visible()
    expect(client.get_by_text("980,00")).to_be_visible()
    assert fits_the_screen(client)
    screenshot(client, "client-paid-fr")
    assert run_axe(client) == []
