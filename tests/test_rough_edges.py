"""The rough edges an editor met in a real browser (issue 22), each checked as the editor
would notice it, through Django's test client; the browser behaviours are in
``tests/e2e/test_rough_edges.py``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from tests.utils import connect, make_account, make_invoice, make_site, make_user
from wagtail_client_billing.models import ClientBillingSettings, InvoiceStatus, settings_url

NS = "wagtail_client_billing_invoices"


def url(name: str, *args) -> str:
    return reverse(f"{NS}:{name}", args=args)


@pytest.fixture
def admin(db, client):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return user


def breadcrumbs(html: str) -> list[str]:
    """The visible labels of Wagtail's breadcrumbs in the page header."""
    nav = re.search(r'<nav[^>]*aria-label="Breadcrumb"[^>]*>(.*?)</nav>', html, re.S)
    assert nav, "the page has no breadcrumbs"
    texts = [
        re.sub(r"<[^>]+>", " ", item) for item in re.findall(r"<li[^>]*>(.*?)</li>", nav[1], re.S)
    ]
    return [" ".join(text.split()) for text in texts if text.strip()]


# --- 3. the Resend pages' headers -------------------------------------------------------------


@pytest.mark.parametrize("status", [InvoiceStatus.PENDING, InvoiceStatus.PAID])
def test_resend_page_header_names_the_invoice_and_the_action(
    client, admin, connected_site, account, status
):
    invoice = make_invoice(connected_site, account, status=status)
    html = client.get(url("resend", invoice.pk)).content.decode()
    trail = breadcrumbs(html)
    assert trail[-1] == "Resend email"
    assert any(invoice.number in label for label in trail)
    assert "Invoices" in trail


# --- 2. the Expires column --------------------------------------------------------------------


def row_of(html: str, number: str) -> str:
    """The text of the table row that holds ``number``."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        if f">{number}<" in row:
            return " ".join(re.sub(r"<[^>]+>", " ", row).split())
    raise AssertionError(f"no row for {number}")


def cells_of(html: str, number: str) -> list[str]:
    """The texts of the cells of the table row that holds ``number``."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        if f">{number}<" in row:
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]
    raise AssertionError(f"no row for {number}")


def test_expires_column_shows_a_time_only_where_the_link_can_still_run_out(
    client, admin, connected_site, account
):
    now = timezone.now()
    pending = make_invoice(connected_site, account)
    paid = make_invoice(connected_site, account, status=InvoiceStatus.PAID, paid_at=now)
    deleted = make_invoice(connected_site, account, status=InvoiceStatus.DELETED)
    expired = make_invoice(
        connected_site,
        account,
        status=InvoiceStatus.EXPIRED,
        expires_at=now - timedelta(hours=3),
        expired_at=now - timedelta(hours=3),
    )
    listing = client.get(url("list"), {"status": ["pending", "paid", "deleted", "expired"]})
    html = listing.content.decode()
    assert "in 23 hours" in row_of(html, pending.number)
    assert "3 hours ago" in row_of(html, expired.number)
    for invoice in (paid, deleted):
        assert " in " not in f" {row_of(html, invoice.number)} ", row_of(html, invoice.number)

    tab = client.get(settings_url(connected_site)).content.decode()
    assert "in 23 hours" in row_of(tab, pending.number)
    table = next(t for t in re.findall(r"<table.*?</table>", tab, re.S) if pending.number in t)
    headings = [
        " ".join(re.sub(r"<[^>]+>", " ", th).split())
        for th in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)
    ]
    expires = headings.index("Expires")
    assert cells_of(tab, pending.number)[expires].startswith("in ")
    assert cells_of(tab, paid.number)[expires] == "—"


# --- 1. the same number on two sites ----------------------------------------------------------


def messages_of(response) -> list[str]:
    return [str(m).split("<span", 1)[0].strip() for m in response.context["messages"]]


@pytest.fixture
def same_number_on_two_sites(db):
    site_a, site_b = (
        make_site("a.example", title="Client A"),
        make_site("b.example", title="Client B"),
    )
    account = make_account()
    connect(site_a, account)
    connect(site_b, account)
    return make_invoice(site_a, account), make_invoice(site_b, account)


def test_same_number_on_two_sites_is_told_apart_by_its_site_in_every_message(
    client, admin, same_number_on_two_sites
):
    on_a, on_b = same_number_on_two_sites
    assert on_a.number == on_b.number
    bulk = (
        reverse("wagtail_bulk_action", args=("wagtail_client_billing", "invoice", "delete"))
        + f"?id={on_a.pk}&id={on_b.pk}"
    )
    confirmation = client.get(bulk).content.decode()
    assert f"{on_a.number} (Client A)" in confirmation
    assert f"{on_b.number} (Client B)" in confirmation

    inspect = client.get(url("inspect", on_b.pk)).content.decode()
    assert f"{on_b.number} (Client B)" in inspect
    resend = client.post(url("resend", on_a.pk), follow=True)
    assert f"Billing request {on_a.number} (Client A) will be sent again" in messages_of(resend)[0]
    deleted = client.post(url("delete", on_b.pk), follow=True)
    assert messages_of(deleted)[0].startswith(f"Billing request {on_b.number} (Client B) deleted.")
    edit = client.post(url("edit", on_a.pk), {"description": "x", "note": ""}, follow=True)
    assert f"{on_a.number} (Client A)" in messages_of(edit)[0]

    found = client.get(url("list"), {"q": on_a.number, "status": ["pending", "deleted"]})
    html = found.content.decode()
    rows = [
        r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S) if on_a.number in r and "<td" in r
    ]
    assert len(rows) == 2
    assert {"Client A", "Client B"} <= {
        site for row in rows for site in ("Client A", "Client B") if site in row
    }


# --- 5. the default currency ------------------------------------------------------------------


def settings_form(config: ClientBillingSettings, **changes) -> dict:
    data = {
        "use_custom_smtp": "",
        "smtp_host": "",
        "smtp_port": "587",
        "smtp_username": "",
        "smtp_password": "",
        "smtp_security": config.smtp_security,
        "smtp_timeout": "10",
        "from_email": "",
        "reply_to": "",
        "default_currency": "",
        "payment_link_lifetime_hours": "",
    }
    data.update(changes)
    return data


def test_default_currency_is_a_choice_of_the_projects_currencies(
    client, admin, connected_site, settings
):
    settings.WAGTAIL_CLIENT_BILLING = {"CURRENCIES": ["USD", "EUR", "GBP"]}
    config = ClientBillingSettings.for_site(connected_site)
    html = client.get(settings_url(connected_site)).content.decode()
    select = re.search(r'<select name="default_currency".*?</select>', html, re.S)
    assert select, "the default currency is not a select"
    assert re.findall(r'<option value="([A-Z]*)"', select[0]) == ["", "USD", "EUR", "GBP"]

    refused = client.post(
        settings_url(connected_site), settings_form(config, default_currency="XYZ")
    )
    assert refused.status_code == 200
    assert "Select a valid choice" in refused.content.decode()
    config.refresh_from_db()
    assert config.default_currency == ""

    client.post(settings_url(connected_site), settings_form(config, default_currency="EUR"))
    config.refresh_from_db()
    assert config.default_currency == "EUR"
    add = client.get(url("add"), {"site": connected_site.pk}).content.decode()
    assert re.search(r'<option value="EUR"[^>]*selected', add)


# --- 6. the connect form when the mode's slot is taken -----------------------------------------


def connect_page(site, mode: str = "") -> str:
    return f"/admin/client-billing/connect/{site.pk}/" + (f"?mode={mode}" if mode else "")


def test_connect_form_refuses_up_front_when_the_site_has_that_modes_account(
    client, admin, connected_site
):
    response = client.get(connect_page(connected_site, "test"), follow=True)
    assert response.redirect_chain[-1][0].startswith(settings_url(connected_site))
    assert "This site already has a test account. Unlink it first." in messages_of(response)
    assert 'name="privacy_policy_url"' not in response.content.decode()


def test_connect_form_without_a_mode_offers_the_free_one(client, admin, connected_site):
    html = client.get(connect_page(connected_site)).content.decode()
    checkbox = re.search(r'<input type="checkbox" name="test_mode"[^>]*>', html)
    assert checkbox and "checked" not in checkbox[0]
    live = make_account("acct_live_1", test_mode=False)
    connect(connected_site, live)
    response = client.get(connect_page(connected_site), follow=True)
    assert "already has a live and a test account" in messages_of(response)[0]


# --- 7. "Connected" is when the account was attached to this site -----------------------------


def test_connected_shows_when_and_by_whom_the_account_was_attached_to_this_site(client, admin):
    from django.utils import formats

    from wagtail_client_billing.billing import accounts

    first, second = make_user("first", superuser=True), make_user("second", superuser=True)
    site_a, site_b = (
        make_site("a.example", title="Client A"),
        make_site("b.example", title="Client B"),
    )
    first_day = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    later = datetime(2026, 3, 20, 15, 30, tzinfo=UTC)
    with time_machine.travel(first_day, tick=False):
        account = make_account(connected_by=first, connected_at=first_day)
        accounts.attach(site_a, account, user=first)
    with time_machine.travel(later, tick=False):
        accounts.attach(site_b, account, user=second, reused=True)

    tab = " ".join(
        re.sub(r"<[^>]+>", " ", client.get(settings_url(site_b)).content.decode()).split()
    )
    shown = formats.date_format(timezone.localtime(later), "DATETIME_FORMAT")
    assert f"Connected to this site {shown} by second" in tab
    tab_a = " ".join(
        re.sub(r"<[^>]+>", " ", client.get(settings_url(site_a)).content.decode()).split()
    )
    first_shown = formats.date_format(timezone.localtime(first_day), "DATETIME_FORMAT")
    assert f"Connected to this site {first_shown} by first" in tab_a


# --- 9. onboarding requirements in words, badges in distinct tones ----------------------------


def test_stripe_tab_names_requirements_in_words_and_colours_each_state(client, admin, site):

    incomplete = make_account(
        "acct_incomplete",
        charges_enabled=False,
        requirements_due=["business_profile.mcc", "tos_acceptance.date", "tos_acceptance.ip"],
        disabled_reason="requirements.past_due",
    )
    enabled = make_account("acct_enabled", test_mode=False)
    connect(site, incomplete)
    connect(site, enabled)
    html = client.get(settings_url(site)).content.decode()
    text = unescape(" ".join(re.sub(r"<[^>]+>", " ", html).split()))
    assert "Business category (merchant category code)" in text
    assert text.count("Acceptance of Stripe's terms of service") == 1
    assert "business_profile.mcc" not in text and "tos_acceptance.ip" not in text
    assert "information Stripe asked for was not given in time" in text
    tones = dict(re.findall(r'data-tone="(\w+)" data-client-billing-state="(\w+)"', html)[::1])
    assert set(tones.values()) == {"enabled", "incomplete"}
    assert len(tones) == 2, "both states have the same tone"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("external_account", "Bank account or debit card for payouts"),
        ("individual.dob.day", "Date of birth"),
        ("representative.address.city", "Representative: address, city"),
        ("person_1AbC.first_name", "A person on the account: first name"),
    ],
)
def test_requirement_codes_read_as_words(code, words):
    from wagtail_client_billing.requirements import requirement_label

    assert requirement_label(code) == words


# --- 10. test mode on where the site has only a test account ----------------------------------


def mode_checkbox(html: str) -> str:
    match = re.search(r'<input type="checkbox" name="test_mode"[^>]*>', html)
    assert match, "no test mode checkbox"
    return match[0]


def test_add_form_starts_in_test_mode_where_the_site_has_only_a_test_account(
    client, admin, connected_site
):
    html = client.get(url("add"), {"site": connected_site.pk}).content.decode()
    assert "checked" in mode_checkbox(html)
    assert f'["{connected_site.pk}"]' in html  # for the site picker's script

    connect(connected_site, make_account("acct_live_1", test_mode=False))
    html = client.get(url("add"), {"site": connected_site.pk}).content.decode()
    assert "checked" not in mode_checkbox(html)


# --- 13. exports: dates, amounts' decimals, file names ----------------------------------------


@pytest.fixture
def exported(connected_site, account):
    created = datetime(2026, 11, 30, 4, 57, 53, 594566, tzinfo=UTC)
    with time_machine.travel(created, tick=False):
        make_invoice(connected_site, account, amount=3000, currency="USD", created_at=created)
        make_invoice(connected_site, account, amount=500, currency="JPY", created_at=created)
    return created


def test_csv_export_writes_times_to_the_second_in_the_projects_time_zone(
    client, admin, exported, settings
):
    import csv
    import io

    settings.TIME_ZONE = "Europe/Berlin"
    with time_machine.travel(exported + timedelta(hours=1), tick=False):
        response = client.get(url("list"), {"export": "csv"})
    assert 'filename="invoices-2026-11-30.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["Created"] for row in rows} == {"2026-11-30 05:57:53"}


def test_xlsx_export_shows_amounts_with_their_currencys_decimals(client, admin, exported):
    import io

    from openpyxl import load_workbook

    with time_machine.travel(exported + timedelta(hours=1), tick=False):
        response = client.get(url("list"), {"export": "xlsx"})
    assert "invoices-2026-11-30.xlsx" in response["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    header, *rows = list(sheet.iter_rows())
    columns = [cell.value for cell in header]
    formats = {
        row[columns.index("Currency")].value: row[columns.index("Amount")].number_format
        for row in rows
    }
    assert formats == {"USD": "#,##0.00", "JPY": "#,##0"}
    created = rows[0][columns.index("Created")].value
    assert created == exported.replace(tzinfo=None, microsecond=0)


# --- 11. confirmations: the button that confirms is a danger button ---------------------------


def test_yes_delete_and_yes_unlink_are_danger_buttons(client, admin, connected_site, account):
    invoice = make_invoice(connected_site, account)
    delete = client.get(url("delete", invoice.pk)).content.decode()
    unlink = client.get(f"/admin/client-billing/connect/{connected_site.pk}/test/unlink/")
    for html, label in ((delete, "Yes, delete"), (unlink.content.decode(), "Yes, unlink")):
        button = re.search(rf'<button[^>]*class="([^"]*)"[^>]*>\s*{label}', html)
        assert button, label
        assert "wcb-button-danger" in button[1].split(), button[0]
        assert "invoices.css" in html


# --- 12. the page fields are choosers limited to the invoice's site ---------------------------


def test_page_fields_are_choosers_of_the_invoices_site_pages(client, admin, connected_site):
    from wagtail.models import Page

    other = make_site("other.example", title="Other client")
    mine = connected_site.root_page.add_child(instance=Page(title="Thank you A", slug="thanks-a"))
    theirs = other.root_page.add_child(instance=Page(title="Thank you B", slug="thanks-b"))
    draft = connected_site.root_page.add_child(
        instance=Page(title="Draft A", slug="draft-a", live=False)
    )

    form = client.get(url("add"), {"site": connected_site.pk}).content.decode()
    assert '<select name="publish_page_when_paid"' not in form
    assert "Choose a page" in form
    assert '"linkedFields": {"site": "#id_site"}' in unescape(form).replace("&quot;", '"')

    choose = "/admin/client-billing/choose-page/"
    listed = client.get(choose, {"site": connected_site.pk}).content.decode()
    listed = unescape(listed)
    assert "Thank you A" in listed and "Draft A" in listed
    assert "Thank you B" not in listed and ">Root<" not in listed
    assert "Thank you B" in client.get(choose, {"site": other.pk}).content.decode()
    live = client.get("/admin/client-billing/choose-live-page/", {"site": connected_site.pk})
    assert "Draft A" not in live.content.decode()
    chosen = client.get(f"{choose}chosen/{theirs.pk}/", {"site": connected_site.pk})
    assert chosen.status_code == 404
    assert client.get(f"{choose}chosen/{mine.pk}/", {"site": connected_site.pk}).status_code == 200
    assert draft.pk
