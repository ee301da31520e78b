"""Scenario 7: an editor without this app's permissions sees none of it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import log_in
from .flows import LISTING, SETTINGS

#: Every admin screen of the app, with the site's and an invoice's ids filled in.
ADMIN_URLS = [
    LISTING,
    LISTING + "add/",
    SETTINGS,
    SETTINGS + "{site}/",
    "/admin/client-billing/connect/{site}/",
    "/admin/client-billing/connect/{site}/test/onboarding/",
    "/admin/client-billing/connect/{site}/test/unlink/",
]


@pytest.fixture
def editor_page(stack, new_context):
    page = new_context().new_page()
    log_in(page, stack, "editor", "editor")
    return page


def test_editor_without_billing_permissions_sees_no_menu_and_gets_403(stack, editor_page):
    page = editor_page
    sidebar = page.get_by_role("navigation", name="Main menu")
    expect(sidebar.get_by_role("button", name="Pages")).to_be_visible()
    expect(sidebar.get_by_text("Client billing", exact=True)).to_have_count(0)
    settings_menu = sidebar.get_by_role("button", name="Settings")
    if settings_menu.count():
        settings_menu.click()
        expect(sidebar.get_by_role("link", name="Client Billing")).to_have_count(0)

    (site,) = stack.sql("SELECT id FROM wagtailcore_site")[0]
    urls = [stack.url(url.format(site=site)) for url in ADMIN_URLS]
    test_email = stack.url(f"/admin/client-billing/email/test/{site}/")
    # Wagtail answers a refused admin view with 403 to scripts (X-Requested-With), and
    # sends a person to the dashboard with its "Sorry, you do not have permission"
    # message (wagtail.admin.auth.require_admin_access): both are checked.
    xhr = {"X-Requested-With": "XMLHttpRequest"}
    statuses = {url: page.request.get(url, headers=xhr, max_redirects=0).status for url in urls}
    statuses[test_email] = page.request.post(
        test_email, headers={**xhr, "X-CSRFToken": csrf_token(page)}, max_redirects=0
    ).status
    assert statuses == dict.fromkeys(statuses, 403)

    for url in urls:
        response = page.request.get(url, max_redirects=0)
        assert (response.status, response.headers["location"]) == (302, "/admin/"), url
    page.goto(urls[0])
    page.wait_for_url(stack.url("/admin/"))
    expect(page.locator(".messages")).to_contain_text(
        "Sorry, you do not have permission to access this area."
    )


def csrf_token(page):
    return next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
