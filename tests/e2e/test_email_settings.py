"""Scenario 6: a site's own SMTP server, a wrong password, then the right one."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import screenshot
from .flows import field, open_settings_tab


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_test_email_shows_the_smtp_error_then_sends_once_the_password_is_fixed(
    stack, admin_page, smtp_with_login
):
    mailbox, port, (username, password) = smtp_with_login
    page = admin_page
    open_settings_tab(page, stack, "Email")
    field(page, "checkbox", "Use a custom SMTP server").check()
    field(page, "textbox", "SMTP host").fill("127.0.0.1")
    field(page, "spinbutton", "SMTP port").fill(str(port))
    field(page, "combobox", "Security").select_option(label="None")
    field(page, "textbox", "SMTP username").fill(username)
    field(page, "textbox", "SMTP password").fill("wrong-password")
    field(page, "textbox", "From").fill("Client A Bakery <billing@client-a.example>")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("updated")

    page.get_by_role("tab", name="Email", exact=True).click()
    # Write-only: the stored password is never shown back.
    expect(field(page, "textbox", "SMTP password")).to_have_value("")
    expect(page.get_by_text("A password is stored.")).to_be_visible()
    page.get_by_role("button", name="Send test email").click()
    error = page.locator(".messages .error, .messages [class*=error]").first
    expect(error).to_contain_text("The test email could not be sent.")
    expect(error).to_contain_text("password", ignore_case=True)
    assert "wrong-password" not in page.content()
    assert mailbox.messages == []
    screenshot(page, "settings-email-error")

    page.get_by_role("tab", name="Email", exact=True).click()
    field(page, "textbox", "SMTP password").fill(password)
    page.get_by_role("button", name="Save").click()
    page.get_by_role("tab", name="Email", exact=True).click()
    page.get_by_role("button", name="Send test email").click()
    expect(page.locator(".messages")).to_contain_text("Test email sent to admin@agency.example")
    message = mailbox.wait_for(to="admin@agency.example")
    assert "billing@client-a.example" in str(message["From"])
