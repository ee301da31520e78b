"""The rough edges an editor met in the browser (issue 22) that only a browser shows:
scripts, focus and scrolling, menus, the clipboard, the address bar."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .flows import (
    LISTING,
    add_billing_request,
    field,
    fill_billing_request,
    open_add_form,
    open_settings_tab,
)

PAGE_BACKGROUNDS = {"rgb(255, 255, 255)", "rgba(0, 0, 0, 0)", "transparent"}


def background(locator) -> str:
    return locator.evaluate("element => getComputedStyle(element).backgroundColor")


def test_email_tab_fields_follow_custom_smtp_and_save_shows_only_where_there_is_something_to_save(
    stack, admin_page
):
    page = admin_page
    open_settings_tab(page, stack, "Email")
    host = field(page, "textbox", "SMTP host")
    expect(host).to_be_disabled()
    toggle = field(page, "checkbox", "Use a custom SMTP server")
    toggle.check()
    expect(host).to_be_enabled()
    toggle.uncheck()
    expect(host).to_be_disabled()

    save = page.get_by_role("button", name="Save", exact=True)
    expect(save).to_be_visible()
    for tab, shown in (("Stripe", False), ("Invoices", False), ("Defaults", True)):
        page.get_by_role("tab", name=tab, exact=True).click()
        expect(save).to_be_visible() if shown else expect(save).to_be_hidden()

    # Saving the Email tab comes back to the Email tab (it came back to Stripe).
    page.get_by_role("tab", name="Email", exact=True).click()
    field(page, "textbox", "Reply-To").fill("office@client-a.example")
    save.click()
    expect(page.locator(".messages")).to_contain_text("updated")
    expect(page.get_by_role("tab", name="Email", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    expect(field(page, "textbox", "Reply-To")).to_have_value("office@client-a.example")
    expect(field(page, "textbox", "SMTP host")).to_be_disabled()


def test_refresh_status_comes_back_with_its_message_in_view(stack, admin_page):
    page = admin_page
    open_settings_tab(page, stack, "Stripe")
    page.get_by_role("button", name="Refresh status").first.click()
    page.wait_for_url(re.compile(r"#tab-stripe$"))
    message = page.locator(".messages li").first
    expect(message).to_be_visible()
    expect(message).to_be_in_viewport()
    expect(page.get_by_role("tab", name="Stripe", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    # The account's state badge has its own colour: "Charges enabled" is not grey.
    badge = page.locator("[data-client-billing-state]").first
    expect(badge).to_have_text("Charges enabled")
    assert background(badge) not in PAGE_BACKGROUNDS


def test_copy_payment_link_says_so_and_closes_the_menu_and_delete_is_a_danger_button(
    stack, admin_page
):
    page = admin_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    number = add_billing_request(
        page,
        stack,
        email="copy@client-a.example",
        currency="EUR",
        amount="30",
        description="Copy me",
    )
    page.goto(stack.url(LISTING))
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=number, exact=True))
    row.get_by_role("button", name=re.compile("More options")).click()
    copy = page.get_by_role("link", name="Copy payment link")
    expect(copy).to_be_visible()
    copy.click()
    expect(page.locator(".messages")).to_contain_text("Payment link copied to the clipboard.")
    expect(copy).to_be_hidden()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert re.search(r"/billing/pay/[^/]+/$", copied), copied

    row.get_by_role("button", name=re.compile("More options")).click()
    page.get_by_role("link", name="Delete").click()
    yes = page.get_by_role("button", name="Yes, delete")
    expect(yes).to_be_visible()
    assert background(yes) not in PAGE_BACKGROUNDS

    open_settings_tab(page, stack, "Stripe")
    page.get_by_role("link", name="Unlink account").first.click()
    yes = page.get_by_role("button", name="Yes, unlink")
    expect(yes).to_be_visible()
    assert background(yes) not in PAGE_BACKGROUNDS


def test_a_filter_shows_in_the_address_and_survives_a_reload(stack, admin_page):
    page = admin_page
    number = add_billing_request(
        page, stack, email="f@client-a.example", currency="EUR", amount="30", description="F"
    )
    page.goto(stack.url(LISTING))
    page.get_by_role("button", name="Show filters").click()
    page.get_by_role("button", name=re.compile("^Currency")).click()
    page.get_by_role("combobox", name="Currency").select_option("EUR")
    page.wait_for_url(re.compile(r"\?currency=EUR$"))
    expect(page.get_by_role("link", name=number, exact=True)).to_be_visible()
    page.get_by_role("button", name=re.compile("^Back")).first.click()
    page.get_by_role("button", name=re.compile("^Status")).click()
    page.get_by_role("checkbox", name="Paid").check()
    page.wait_for_url(re.compile(r"status=paid"))
    assert "currency=EUR" in page.url
    expect(page.get_by_role("link", name=number, exact=True)).to_have_count(0)

    # A reload, or the address sent to a colleague, shows the same filtered view.
    shared = page.url
    page.goto(stack.url("/admin/"))
    page.goto(shared)
    expect(page.get_by_role("link", name=number, exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Show filters")).to_contain_text("2")


def test_page_to_publish_is_chosen_in_wagtails_chooser_among_the_sites_pages(stack, admin_page):
    page = admin_page
    open_add_form(page, stack)
    fill_billing_request(
        page, stack, email="pages@client-a.example", currency="EUR", amount="30", description="P"
    )
    expect(page.get_by_role("combobox", name=re.compile("Publish this page"))).to_have_count(0)
    page.get_by_role("button", name="Choose a page").first.click()
    modal = page.locator(".modal-content")
    expect(modal.get_by_role("heading", name="Choose a page of the invoice's site")).to_be_visible()
    expect(modal.get_by_text("Root", exact=True)).to_have_count(0)
    choice = modal.locator("a[data-chooser-modal-choice]").first
    title = choice.inner_text().strip()
    choice.click()
    expect(modal).to_be_hidden()
    expect(page.locator("#id_publish_page_when_paid-title")).to_have_text(title)
    page.get_by_role("button", name=re.compile(r"^(Send|Create|Save)")).first.click()
    expect(page.locator(".messages").first).to_contain_text("pages@client-a.example")
