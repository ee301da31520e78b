"""The billing overview on the dashboard, the billing reports and their charts, in a browser.

An editor opens the dashboard, reads the panel, follows its links to the invoices behind
a figure, opens each report from Wagtail's Reports menu, reads the chart's figures as a
table, and exports; axe-core finds no serious or critical issue on any of these screens.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import ARTIFACTS, REPO, run_axe, screenshot
from .flows import LISTING

pytestmark = pytest.mark.e2e

#: Six months of billing on the connected site, made through the lifecycle (so the
#: rollup is kept as in production): payments each month, two outstanding requests (one
#: expiring within a day), and requests that expired unpaid.
HISTORY = """
from datetime import timedelta
from django.utils import timezone
from wagtail_client_billing import lifecycle
from wagtail_client_billing.models import ClientBillingSettings, Invoice

config = ClientBillingSettings.objects.filter(test_account__isnull=False).first()
site, account = config.site, config.test_account
now = timezone.now()

def make(amount, currency, created, expires):
    return Invoice.objects.create(
        site=site, account=account, test_mode=account.test_mode, email="dash@client-a.example",
        currency=currency, amount=amount, description="Monthly retainer",
        success_url="https://client.example/thanks", cancel_url="https://client.example/no",
        created_at=now - created, expires_at=now + expires,
    )

for months in range(6):
    for n, (amount, currency) in enumerate([(120000 + 15000 * months, "USD"), (45000, "EUR")]):
        created = timedelta(days=30 * months + 3 + n)
        invoice = make(amount, currency, created, timedelta(days=7) - created)
        # This month's are paid now: "now - 1 day" is last month on the 1st.
        paid_at = now if months == 0 else now - created + timedelta(days=2 + n)
        lifecycle.mark_paid(invoice, source="system", paid_at=paid_at)
    make(30000, "USD", timedelta(days=30 * months + 10), timedelta(days=-30 * months - 5))
make(80000, "USD", timedelta(hours=2), timedelta(days=3))
make(25000, "EUR", timedelta(hours=20), timedelta(hours=5))
lifecycle.expire_due()
print("history made")
"""

SHOTS = {
    "dashboard-billing-overview": "dashboard-billing-overview.png",
    "report-revenue": "report-revenue.png",
}


def keep_for_docs(name: str) -> None:
    """Copy a shot into docs/images/ when ``E2E_DOCS_IMAGES`` is set (``make docs-images``)."""
    import os
    import shutil

    if os.environ.get("E2E_DOCS_IMAGES"):
        shutil.copyfile(ARTIFACTS / f"{name}.png", REPO / "docs" / "images" / SHOTS[name])


def test_dashboard_panel_reports_and_chart(stack, admin_page):
    assert "history made" in stack.manage("shell", "-c", HISTORY)
    page = admin_page
    found: dict[str, list[dict]] = {}

    page.goto(stack.url("/admin/"))
    panel = page.get_by_role("region", name="Billing overview")
    expect(panel).to_be_visible()
    outstanding = panel.locator('[data-row="outstanding"]')
    expect(outstanding).to_contain_text("Outstanding (pending and processing)")
    expect(outstanding.locator(".wcb-overview__count")).to_have_text("2")
    expect(panel.locator('[data-row="paid-this-month"]')).to_contain_text("$")
    expect(panel.locator('[data-row="expiring"] .wcb-overview__count')).to_have_text("1")
    expect(page.get_by_role("link", name=re.compile(r"2 billing requests"))).to_be_visible()
    found["dashboard"] = run_axe(page)
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(ARTIFACTS / "dashboard-billing-overview.png"))
    keep_for_docs("dashboard-billing-overview")

    # A figure's link lists the invoices behind it, with their totals per currency.
    panel.get_by_role("link", name="Expiring in the next 24 hours").click()
    expect(page).to_have_url(re.compile(re.escape(LISTING) + r"\?expiring=24h"))
    expect(page.locator("[data-listing-totals]")).to_contain_text("€250.00 (1 invoice)")
    # Wagtail's own filter button, whose visible count of applied filters ("1") is not
    # in its accessible name ("Filter"), on any filtered listing: Wagtail's chrome.
    found["listing with totals"] = run_axe(page, [".w-slim-header-action-button"])
    page.go_back()
    page.get_by_role("region", name="Billing overview").get_by_role(
        "link", name="Outstanding (pending and processing)"
    ).click()
    expect(page.locator("[data-listing-totals]")).to_contain_text("$800.00 (1 invoice)")
    expect(page.locator("main table tbody tr")).to_have_count(2)

    # The Reports menu: the revenue report, its chart and the chart's table.
    page.get_by_role("button", name="Reports").click()
    page.get_by_role("link", name="Billing revenue").click()
    expect(page.get_by_role("heading", name="Billing revenue", level=1)).to_be_visible()
    chart = page.get_by_role("img", name=re.compile(r"Revenue in USD \(test mode\)"))
    expect(chart).to_be_visible()
    figure = page.locator("figure[data-chart]").filter(has=chart)
    bars = figure.locator("svg rect")
    # Six payments a month apart: five or six calendar months, one bar each.
    count = bars.count()
    assert count in (5, 6)
    figure.get_by_text("The chart's figures as a table").click()
    expect(figure.get_by_role("table")).to_be_visible()
    expect(figure.get_by_role("row")).to_have_count(count + 1)  # heading + a row per bar
    found["revenue report"] = run_axe(page)
    screenshot(page, "report-revenue")
    keep_for_docs("report-revenue")
    # The header's "Download CSV" (in its actions menu) exports the same figures.
    page.get_by_role("button", name="Actions").click()
    download_csv = page.get_by_role("link", name="Download CSV")
    expect(download_csv).to_be_visible()
    href = download_csv.get_attribute("href")
    page.keyboard.press("Escape")
    export = page.request.get(stack.url(href))
    assert export.ok and export.text().startswith("Month,Site,Currency,Mode,Paid invoices")
    assert "billing-revenue-" in export.headers["content-disposition"]

    for name, heading in (
        ("Billing time to pay", "Average time to pay, by month of payment"),
        ("Billing expiry rate", "Expiry rate, by month of creation"),
    ):
        page.get_by_role("button", name="Reports").click()
        page.get_by_role("link", name=name).click()
        expect(page.get_by_role("img", name=re.compile(re.escape(heading)))).to_be_visible()
        found[name] = run_axe(page)

    assert {screen: v for screen, v in found.items() if v} == {}
