"""The billing overview on the dashboard, the billing reports and the listing's totals."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
import time_machine
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from wagtail import hooks as wagtail_hooks

from tests.utils import make_account, make_invoice, make_site, make_user
from wagtail_client_billing import hooks, lifecycle
from wagtail_client_billing.billing import overview
from wagtail_client_billing.lifecycle import Source
from wagtail_client_billing.models import EmailStatus, Invoice

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
REPORTS = ["revenue", "time_to_pay", "expiry"]


def paid(invoice, at):
    with time_machine.travel(at, tick=False):
        assert lifecycle.mark_paid(invoice, source=Source.WEBHOOK)


@pytest.fixture
def world():
    """Two clients' sites; on each, invoices paid this month and last, outstanding ones,
    one expiring within a day and one whose email failed."""
    account = make_account(test_mode=False)
    a, b = make_site("client-a.example"), make_site("client-b.example")
    with time_machine.travel(NOW - timedelta(days=40), tick=False):
        old = [make_invoice(a, account, currency="USD", amount=10000) for _ in range(2)]
        old_b = make_invoice(b, account, currency="EUR", amount=7000)
    paid(old[0], NOW - timedelta(days=20))  # February
    paid(old[1], NOW - timedelta(days=2))  # March
    paid(old_b, NOW - timedelta(days=1))  # March, the other client's
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        later = {"expires_at": NOW + timedelta(days=3)}
        make_invoice(a, account, currency="USD", amount=2500, **later)
        soon = make_invoice(
            a, account, currency="EUR", amount=4000, expires_at=NOW + timedelta(hours=5)
        )
        processing = make_invoice(b, account, currency="USD", amount=999, **later)
        failed = make_invoice(a, account, currency="USD", amount=1234, **later)
    lifecycle.mark_processing(processing, source=Source.WEBHOOK)
    Invoice.objects.filter(pk=failed.pk).update(email_status=EmailStatus.FAILED)
    return {"a": a, "b": b, "account": account, "soon": soon, "failed": failed}


def superuser_client():
    client = Client()
    client.force_login(make_user("boss", superuser=True))
    return client


def panel_rows(html):
    rows = {}
    for name, body in re.findall(r'data-row="([\w-]+)"[^>]*>(.*?)</tr>', html, re.S):
        text = re.sub(r"<[^>]+>", " ", body)
        rows[name] = " ".join(text.split())
    return rows


def listing_numbers(client, url):
    html = client.get(url).content.decode()
    return sorted(set(re.findall(r"INV-\d+", html)))


@time_machine.travel(NOW, tick=False)
def test_panel_shows_each_figure_and_links_to_the_invoices_behind_it(world):
    client = superuser_client()
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    rows = panel_rows(html)
    assert rows["paid-this-month"].startswith("Paid in March 2026 2 ")
    assert "$100.00" in rows["paid-this-month"] and "€70.00" in rows["paid-this-month"]
    assert rows["paid-last-month"].startswith("Paid in February 2026 1 $100.00")
    assert rows["outstanding"].startswith("Outstanding (pending and processing) 4 ")
    assert "$47.33" in rows["outstanding"]  # 25.00 + 9.99 + 12.34
    assert rows["expiring"] == "Expiring in the next 24 hours 1 €40.00"
    assert rows["failed-emails"].startswith("Invoice emails that failed 1")
    # Each row's link lists the invoices it counts.
    links = dict(re.findall(r'data-row="([\w-]+)"[^>]*>\s*<th scope="row"><a href="([^"]+)"', html))
    links = {k: v.replace("&amp;", "&") for k, v in links.items()}
    assert listing_numbers(client, links["expiring"]) == [world["soon"].number]
    assert listing_numbers(client, links["failed-emails"]) == [world["failed"].number]
    assert len(listing_numbers(client, links["outstanding"])) == 4
    assert len(listing_numbers(client, links["paid-this-month"])) == 2
    # The summary item counts the outstanding ones.
    assert re.search(r"4 billing requests\s*<span class=\"w-sr-only\">outstanding", html)


@time_machine.travel(NOW, tick=False)
def test_panel_and_reports_are_scoped_to_the_users_sites(world):
    user = make_user("limited", perms=("wagtail_client_billing.view_invoice",))
    client = Client()
    client.force_login(user)

    def only_a(u, sites):
        return sites.filter(hostname="client-a.example")

    with wagtail_hooks.register_temporarily(hooks.SITES_FOR_USER, only_a):
        rows = panel_rows(client.get(reverse("wagtailadmin_home")).content.decode())
        assert "€70.00" not in rows["paid-this-month"]  # client-b's payment
        assert rows["outstanding"].startswith("Outstanding (pending and processing) 3 ")
        response = client.get(reverse("wagtail_client_billing_reports:revenue") + "?export=csv")
        body = b"".join(response.streaming_content).decode()
        assert "EUR" not in body and "100.00" in body
        # Asking for the other client's site shows nothing of it.
        response = client.get(
            reverse("wagtail_client_billing_reports:revenue"), {"site": world["b"].pk}
        )
        assert "€70.00" not in response.content.decode()


def test_no_panel_or_reports_without_the_apps_permissions(world):
    user = make_user("other")
    client = Client()
    client.force_login(user)
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    assert "client-billing-overview" not in html
    assert "billing requests" not in html
    for name in REPORTS:
        response = client.get(reverse(f"wagtail_client_billing_reports:{name}"))
        assert response.status_code in (302, 403)


@override_settings(TIME_ZONE="America/New_York")
def test_months_are_the_projects_time_zone():
    account = make_account()
    site = make_site("tz.example")
    with time_machine.travel(datetime(2026, 2, 20, tzinfo=UTC), tick=False):
        invoice = make_invoice(site, account, amount=5000)
    # 1 March 02:00 UTC is still February in New York.
    paid(invoice, datetime(2026, 3, 1, 2, 0, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 3, 5, tzinfo=UTC), tick=False):
        lines = {line.name: line for line in overview.overview(make_user("boss", superuser=True))}
    assert lines["paid-this-month"].figures.count == 0
    assert lines["paid-last-month"].figures.count == 1


@time_machine.travel(NOW, tick=False)
def test_reports_show_figures_chart_and_table_and_export(world):
    client = superuser_client()
    url = reverse("wagtail_client_billing_reports:revenue")
    html = client.get(url).content.decode()
    assert 'role="img"' in html and "<svg" in html
    assert "Revenue in USD" in html and "figures as a table" in html
    assert "Mar 2026: $100.00" in html  # a bar's tooltip, and the same in the table
    assert '<th scope="row">Mar 2026</th><td>$100.00</td>' in html
    response = client.get(url + "?export=csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["Month", "Site", "Currency"]
    assert ([r for r in rows if r[2] == "USD" and r[0] == "2026-03-01"][0][:6]) == [
        "2026-03-01",
        "All sites",
        "USD",
        "Live",
        "1",
        "100.00",
    ]
    assert "billing-revenue-2026-03-10" in response["Content-Disposition"]
    response = client.get(url + "?export=xlsx")
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert book.active.max_row == len(rows)
    # One row per site.
    html = client.get(url, {"by_site": "true"}).content.decode()
    assert "client-a.example" in html or "Client A" in html or "client-a" in html

    html = client.get(reverse("wagtail_client_billing_reports:expiry")).content.decode()
    assert "Expiry rate, by month of creation" in html
    html = client.get(reverse("wagtail_client_billing_reports:time_to_pay")).content.decode()
    html = html.replace("\xa0", " ")
    # February: paid 2 days after creation; March: 38 and 39 days.
    assert "2 weeks, 6 days" in html  # February: paid 20 days after creation
    assert "Average time to pay, by month of payment" in html


def test_expiry_report_counts_created_and_expired(world):
    client = superuser_client()
    with time_machine.travel(NOW + timedelta(days=4), tick=False):
        lifecycle.expire_due()
        response = client.get(reverse("wagtail_client_billing_reports:expiry") + "?export=csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    march = [r for r in rows if r[0] == "2026-03-01"][0]
    # Four created in March; the two pending ones (the failed email's too) expired.
    assert march[2:] == ["4", "3", "75.0"]


@time_machine.travel(NOW, tick=False)
def test_listing_totals_per_currency_for_the_current_filter(world):
    client = superuser_client()
    url = overview.listing_url()

    def totals(params):
        html = client.get(url, params).content.decode()
        match = re.search(r"data-listing-totals>(.*?)</p>", html, re.S)
        return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split()) if match else ""

    assert "$47.33 (3 invoices)" in totals({"status": ["pending", "processing"], "currency": "USD"})
    assert totals({"status": "paid", "site": world["b"].pk}).startswith(
        "Totals for this filter: €70.00 (1 invoice)"
    )
    # A search sums the invoices it finds.
    assert "€40.00 (1 invoice)" in totals({"q": world["soon"].number})
    assert "$" not in totals({"q": world["soon"].number})


def test_queries_do_not_grow_with_the_number_of_invoices(world):
    client = superuser_client()
    urls = [
        reverse("wagtailadmin_home"),
        *(reverse(f"wagtail_client_billing_reports:{name}") for name in REPORTS),
        overview.listing_url({"status": "paid"}),
    ]

    def counts():
        out = []
        for url in urls:
            client.get(url)  # warm caches
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(url).status_code == 200
            out.append(len(ctx.captured_queries))
        return out

    before = counts()
    account = world["account"]
    for n in range(30):
        invoice = make_invoice(
            world["a" if n % 2 else "b"], account, currency="GBP", amount=100 + n
        )
        if n % 3 == 0:
            lifecycle.mark_paid(invoice, source=Source.WEBHOOK)
    assert counts() == before


@time_machine.travel(NOW, tick=False)
def test_a_new_row_is_one_entry_in_the_list(world, monkeypatch):
    row = overview.OverviewRow(
        "disputes",
        lambda ctx: "Disputes needing a response",
        lambda ctx: overview.Figures(count=7),
        lambda ctx: {"status": ["paid"]},
        tone="critical",
    )
    monkeypatch.setattr(overview, "ROWS", [*overview.ROWS, row])
    html = superuser_client().get(reverse("wagtailadmin_home")).content.decode()
    assert panel_rows(html)["disputes"] == "Disputes needing a response 7"
    assert 'data-row="disputes" data-tone="critical"' in html


@time_machine.travel(NOW, tick=False)
def test_panel_counts_disputes_to_answer_and_past_due_subscriptions_and_links_to_them(world):
    account, a = world["account"], world["a"]
    with time_machine.travel(NOW - timedelta(days=3), tick=False):
        disputed, won, monthly, active = (
            make_invoice(a, account, currency="USD", amount=5000) for _ in range(4)
        )
    Invoice.objects.filter(pk=disputed.pk).update(dispute_status="needs_response")
    Invoice.objects.filter(pk=won.pk).update(dispute_status="won")
    Invoice.objects.filter(pk=monthly.pk).update(
        billing_type="monthly", subscription_id="sub_1", subscription_status="past_due"
    )
    Invoice.objects.filter(pk=active.pk).update(
        billing_type="monthly", subscription_id="sub_2", subscription_status="active"
    )
    client = superuser_client()
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    rows = panel_rows(html)
    assert rows["disputes"].startswith("Disputes needing a response 1")
    assert rows["past-due"].startswith("Subscriptions past due 1")
    links = dict(re.findall(r'data-row="([\w-]+)"[^>]*>\s*<th scope="row"><a href="([^"]+)"', html))
    links = {k: v.replace("&amp;", "&") for k, v in links.items()}
    assert listing_numbers(client, links["disputes"]) == [disputed.number]
    assert listing_numbers(client, links["past-due"]) == [monthly.number]
