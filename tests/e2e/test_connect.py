"""Scenario 1: an editor connects a test Stripe account to a site and finishes onboarding."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import log_in, screenshot

SETTINGS = "/admin/settings/wagtail_client_billing/clientbillingsettings/"


def test_editor_connects_a_test_account_and_sees_charges_enabled(bare_stack, new_context):
    page = new_context().new_page()
    log_in(page, bare_stack, "admin", "admin")

    page.get_by_role("button", name="Settings").click()
    page.get_by_role("link", name="Client Billing", exact=True).click()
    expect(page.get_by_role("heading", name="Client Billing", level=1)).to_be_visible()
    page.get_by_role("tab", name="Stripe").click()
    test_slot = page.locator("[data-client-billing-account=test]")
    expect(test_slot).to_contain_text("No account connected")
    screenshot(page, "settings-stripe-empty")
    test_slot.get_by_role("link", name="Create client billing account").click()

    expect(page.get_by_role("heading", name="Create client billing account")).to_be_visible()
    page.get_by_label("Country").select_option(label="United States")
    page.get_by_label("Privacy Policy URL").fill("https://client-a.example/privacy")
    page.get_by_label("Terms of Service URL").fill("https://client-a.example/terms")
    page.get_by_role("button", name="Connect").click()

    # Stripe's hosted onboarding (the emulator's page), then back to the settings.
    expect(page.get_by_role("heading", name="Set up payments")).to_be_visible()
    expect(page.get_by_text("country US")).to_be_visible()
    page.get_by_role("button", name="Complete onboarding").click()

    page.wait_for_url(re.compile(re.escape(bare_stack.url(SETTINGS))))
    expect(page.locator(".messages")).to_contain_text("charges enabled")
    page.get_by_role("tab", name="Stripe").click()
    test_slot = page.locator("[data-client-billing-account=test]")
    expect(test_slot.locator(".w-status")).to_have_text("Charges enabled")
    expect(test_slot).to_contain_text("Onboarding complete")
    expect(test_slot.get_by_role("button", name="Refresh status")).to_be_visible()
    screenshot(page, "settings-stripe-connected")
