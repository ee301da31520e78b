"""Billing requests in the Wagtail admin: create, list, filter, export, inspect, act on them.

Each test drives the admin through Django's test client as an editor would and checks
what that editor (or the client) would notice: the stored invoice, the page, the file.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from wagtail import hooks as wagtail_hooks
from wagtail.models import Site
from wagtail.users.models import UserProfile

from tests.utils import connect, make_account, make_invoice, make_site, make_user
from wagtail_client_billing import hooks
from wagtail_client_billing.models import ClientBillingLogEntry, ClientBillingSettings, Invoice

NS = "wagtail_client_billing_invoices"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def url(name: str, *args) -> str:
    return reverse(f"{NS}:{name}", args=args)


def form_data(site: Site | None, **overrides) -> dict[str, str]:
    data = {
        "site": str(site.pk) if site else "",
        "email": "client@example.com",
        "currency": "USD",
        "amount": "125.50",
        "billing_type": "one_time",
        "description": "Website build, phase 2",
        "success_url": "https://client.example/thanks",
        "cancel_url": "https://client.example/cancelled",
        "test_mode": "on",
        "note": "Agreed on the phone",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def messages_of(response) -> list[str]:
    """The text of the admin's flash messages, without their buttons' HTML."""
    if not response.context:
        return []
    return [str(m).split("<span", 1)[0].strip() for m in response.context["messages"]]


@pytest.fixture
def admin(db, client):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def only_site_a():
    """Register the sites-for-user hook so that non-superusers bill for client-a only."""

    def limit(user, sites):
        if user.is_superuser:
            return sites
        return sites.filter(hostname="client-a.example")

    with wagtail_hooks.register_temporarily(hooks.SITES_FOR_USER, limit):
        yield


def form_errors(response) -> dict[str, list[str]]:
    form = response.context["form"]
    return {name: [str(e) for e in errors] for name, errors in form.errors.items()}


# --- create ---------------------------------------------------------------------------------


def test_create_billing_request_saves_pending_invoice_and_queues_email(
    client, admin, connected_site, account
):
    ClientBillingSettings.objects.filter(site=connected_site).update(payment_link_lifetime_hours=48)
    with time_machine.travel(NOW, tick=False):
        response = client.post(url("add"), form_data(connected_site), follow=True)

    invoice = Invoice.objects.get()
    assert invoice.status == "pending"
    assert invoice.amount == 12550 and invoice.currency == "USD"
    assert invoice.account == account and invoice.test_mode is True
    assert invoice.expires_at == NOW + timedelta(hours=48)
    assert invoice.number == "INV-000001"
    assert invoice.created_by == admin
    assert invoice.email_status == "queued"
    assert invoice.note == "Agreed on the phone"
    assert (
        "Billing request INV-000001 (client-a.example) sent to client@example.com"
        in messages_of(response)
    )
    assert ClientBillingLogEntry.objects.filter(
        object_id=str(invoice.pk), action="wagtail_client_billing.created", user=admin
    ).exists()


def test_create_form_preselects_the_site_and_its_default_currency(client, admin, connected_site):
    ClientBillingSettings.objects.filter(site=connected_site).update(default_currency="eur")
    response = client.get(url("add") + f"?site={connected_site.pk}")
    form = response.context["form"]
    assert form.initial["site"] == connected_site.pk
    assert form.initial["currency"] == "EUR"
    assert "Japanese Yen" in response.content.decode()  # currencies shown with their names
    assert "Send billing request" in response.content.decode()


def test_create_form_preselects_the_only_site_an_editor_may_bill_for(
    client, connected_site, only_site_a
):
    make_site("client-b.example")
    editor = make_user(
        "biller",
        perms=("wagtail_client_billing.add_invoice", "wagtail_client_billing.view_invoice"),
    )
    client.force_login(editor)
    form = client.get(url("add")).context["form"]
    assert list(form.fields["site"].queryset) == [connected_site]
    assert form.initial["site"] == connected_site.pk


def test_create_form_knows_each_sites_default_currency(client, admin, connected_site):
    other = make_site("client-b.example")
    ClientBillingSettings.objects.create(site=other, default_currency="GBP")
    html = client.get(url("add")).content.decode()
    assert f'"{other.pk}": "GBP"' in html
    assert f'"{connected_site.pk}": "USD"' in html


def test_create_form_offers_the_page_choosers(client, admin, connected_site):
    form = client.get(url("add")).context["form"]
    assert "publish_page_when_paid" in form.fields
    assert "unpublish_page_when_expired" in form.fields


def test_the_page_fields_take_only_pages_of_the_invoices_site(client, admin, connected_site):
    from wagtail.models import Page

    other = make_site("client-b.example")
    own_draft = connected_site.root_page.add_child(
        instance=Page(title="Own draft", slug="own-draft", live=False)
    )
    other_page = other.root_page.add_child(instance=Page(title="Other page", slug="other"))
    form = client.get(url("add") + f"?site={connected_site.pk}").context["form"]
    assert list(form.fields["publish_page_when_paid"].queryset) == [
        connected_site.root_page,
        own_draft,
    ]
    assert list(form.fields["unpublish_page_when_expired"].queryset) == [connected_site.root_page]

    data = form_data(connected_site, publish_page_when_paid=str(other_page.pk))
    response = client.post(url("add"), data)
    assert "publish_page_when_paid" in form_errors(response)
    assert not Invoice.objects.exists()
    response = client.post(
        url("add"), form_data(connected_site, unpublish_page_when_expired=str(own_draft.pk))
    )
    assert "unpublish_page_when_expired" in form_errors(response)
    client.post(url("add"), form_data(connected_site, publish_page_when_paid=str(own_draft.pk)))
    assert Invoice.objects.get().publish_page_when_paid == own_draft


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"amount": "-5"}, "amount", "greater than zero"),
        ({"amount": "0"}, "amount", "greater than zero"),
        ({"amount": "0.00"}, "amount", "greater than zero"),
        ({"amount": "NaN"}, "amount", "as a number"),
        ({"amount": "Infinity"}, "amount", "as a number"),
        ({"amount": "1e3"}, "amount", "as a number"),
        ({"amount": "$12"}, "amount", "as a number"),
        ({"amount": "12,50"}, "amount", "as a number"),
        ({"amount": ""}, "amount", "required"),
        ({"amount": "12.505"}, "amount", "at most 2 decimal places"),
        ({"amount": "0.49"}, "amount", "The minimum for USD is $0.50"),
        ({"amount": "1000000"}, "amount", "The maximum for USD is $999,999.99"),
        ({"amount": "12.5", "currency": "JPY"}, "amount", "JPY amounts have no decimal places"),
        ({"amount": "49", "currency": "JPY"}, "amount", "The minimum for JPY is ¥50"),
        ({"amount": "2.005", "currency": "KWD"}, "amount", "KWD amounts must end in 0"),
        ({"currency": "XYZ"}, "currency", "Select a valid choice"),
        ({"currency": ""}, "currency", "required"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"email": ""}, "email", "required"),
        ({"success_url": "javascript:alert(1)"}, "success_url", "https://"),
        ({"success_url": "data:text/html,<b>hi</b>"}, "success_url", "https://"),
        ({"success_url": "//evil.example/thanks"}, "success_url", "https://"),
        ({"success_url": "ftp://client.example/x"}, "success_url", "https://"),
        ({"success_url": "client.example/thanks"}, "success_url", "https://"),
        ({"success_url": ""}, "success_url", "required"),
        ({"cancel_url": "javascript:history.back()"}, "cancel_url", "https://"),
        ({"cancel_url": ""}, "cancel_url", "required"),
        ({"billing_type": "daily"}, "billing_type", "Select a valid choice"),
        ({"billing_type": ""}, "billing_type", "required"),
        ({"description": "x" * 501}, "description", "at most 500 characters"),
        ({"site": ""}, "site", "required"),
        ({"site": "999999"}, "site", "Select a valid choice"),
    ],
)
def test_create_refuses_invalid_input_with_a_field_error(
    client, admin, connected_site, overrides, field, message
):
    data = form_data(connected_site)
    data.update(overrides)
    response = client.post(url("add"), data)
    assert response.status_code == 200
    errors = form_errors(response)
    assert field in errors, errors
    assert any(message in error for error in errors[field]), errors[field]
    assert not Invoice.objects.exists()


@pytest.mark.parametrize(
    ("currency", "typed", "stored"),
    [
        ("JPY", "5000", 5000),
        ("KWD", "12.340", 12340),
        ("KWD", "12.34", 12340),
        ("KWD", "0.2", 200),
        ("USD", "99", 9900),
        ("USD", "0.50", 50),
        ("USD", "999999.99", 99_999_999),
    ],
)
def test_amount_is_stored_in_minor_units_of_its_currency(
    client, admin, connected_site, currency, typed, stored
):
    response = client.post(url("add"), form_data(connected_site, currency=currency, amount=typed))
    assert response.status_code == 302, form_errors(response)
    invoice = Invoice.objects.get()
    assert (invoice.amount, invoice.currency) == (stored, currency)


def test_create_refused_when_the_site_has_no_connected_account(client, admin, site):
    response = client.post(url("add"), form_data(site))
    errors = form_errors(response)
    assert "has no connected test Stripe account" in errors["__all__"][0]
    assert not Invoice.objects.exists()


def test_live_request_refused_when_only_a_test_account_is_connected(client, admin, connected_site):
    response = client.post(url("add"), form_data(connected_site, test_mode=None))
    assert "has no connected live Stripe account" in form_errors(response)["__all__"][0]
    assert not Invoice.objects.exists()


def test_create_refused_when_the_account_cannot_take_charges(client, admin, site):
    connect(site, make_account("acct_incomplete", charges_enabled=False))
    response = client.post(url("add"), form_data(site))
    error = form_errors(response)["__all__"][0]
    assert "acct_incomplete" in error and "cannot take payments yet" in error
    assert not Invoice.objects.exists()


def test_live_request_uses_the_live_account(client, admin, connected_site):
    live = make_account("acct_live_a", test_mode=False)
    connect(connected_site, live)
    response = client.post(url("add"), form_data(connected_site, test_mode=None))
    assert response.status_code == 302
    invoice = Invoice.objects.get()
    assert invoice.account == live and invoice.test_mode is False


def test_before_create_hook_error_is_shown_on_the_form(client, admin, connected_site):
    seen = []

    def no_gmail(request, invoice):
        seen.append((request.user, invoice.amount))
        if invoice.email.endswith("@gmail.com"):
            raise ValidationError({"email": "Bill the company address, not a personal one."})

    with wagtail_hooks.register_temporarily(hooks.BEFORE_CREATE_INVOICE, no_gmail):
        response = client.post(url("add"), form_data(connected_site, email="boss@gmail.com"))
        assert form_errors(response)["email"] == ["Bill the company address, not a personal one."]
        assert seen == [(admin, 12550)]
        assert not Invoice.objects.exists()

        response = client.post(url("add"), form_data(connected_site))
        assert response.status_code == 302
        assert Invoice.objects.count() == 1


def test_create_only_offers_the_sites_the_hook_allows(client, connected_site, only_site_a):
    other = make_site("client-b.example")
    connect(other, make_account("acct_test_b"))
    user = make_user(perms=("wagtail_client_billing.add_invoice",))
    client.force_login(user)

    form = client.get(url("add")).context["form"]
    assert list(form.fields["site"].queryset) == [connected_site]

    response = client.post(url("add"), form_data(other))
    assert "Select a valid choice" in form_errors(response)["site"][0]
    assert not Invoice.objects.exists()


def test_create_returns_to_the_site_settings_tab_it_came_from(client, admin, connected_site):
    next_url = f"/admin/settings/wagtail_client_billing/clientbillingsettings/{connected_site.pk}/"
    data = form_data(connected_site, next=next_url)
    response = client.post(url("add") + f"?site={connected_site.pk}&next={next_url}", data)
    assert response.status_code == 302
    assert response["Location"] == next_url


# --- edit -----------------------------------------------------------------------------------


def test_edit_changes_only_description_and_note(client, admin, connected_site, account):
    invoice = make_invoice(connected_site, account)
    response = client.get(url("edit", invoice.pk))
    assert set(response.context["form"].fields) == {"description", "note"}
    assert "cannot change" in response.content.decode()

    data = {
        "description": "Corrected",
        "note": "Called them",
        "amount": "1.00",
        "email": "x@evil.example",
    }
    response = client.post(url("edit", invoice.pk), data)
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert (invoice.description, invoice.note) == ("Corrected", "Called them")
    assert (invoice.amount, invoice.email) == (12500, "client@example.com")


# --- listing --------------------------------------------------------------------------------


@pytest.fixture
def listing_invoices(connected_site, account):
    """A mix of invoices on two sites, in several statuses, modes and currencies."""
    site_b = make_site("client-b.example", title="Client B")
    live = make_account("acct_live_b", test_mode=False)
    with time_machine.travel(NOW - timedelta(days=10), tick=False):
        old = make_invoice(connected_site, account, email="old@acme.example", amount=5000)
    with time_machine.travel(NOW, tick=False):
        pending = make_invoice(connected_site, account, email="ann@acme.example")
        paid = make_invoice(
            site_b,
            live,
            email="bob@bravo.example",
            currency="EUR",
            amount=99000,
            billing_type="monthly",
            status="paid",
            paid_at=NOW,
            description="Retainer March",
        )
        expired = make_invoice(connected_site, account, email="cy@acme.example", status="expired")
        deleted = make_invoice(connected_site, account, email="dee@acme.example", status="deleted")
    return {
        "old": old,
        "pending": pending,
        "paid": paid,
        "expired": expired,
        "deleted": deleted,
        "site_b": site_b,
    }


def listed(client, query: str = "") -> list[str]:
    response = client.get(url("list") + query)
    assert response.status_code == 200
    return sorted(invoice.email for invoice in response.context["object_list"])


def test_listing_shows_columns_an_editor_reads(client, admin, listing_invoices):
    html = client.get(url("list")).content.decode()
    assert "INV-000001" in html
    assert "bob@bravo.example" in html
    assert "€990.00" in html and "$125.00" in html
    assert 'class="w-status wcb-status wcb-status--paid"' in html
    assert "wcb-status--test" in html
    assert "Client B" in html


def test_listing_says_when_a_pending_invoice_expires(client, admin, connected_site, account):
    make_invoice(connected_site, account, expires_at=timezone.now() + timedelta(hours=30))
    listing = client.get(url("list")).content.decode()
    assert "in 1\xa0day" in listing  # Wagtail's DateColumn said "Just now" for any future date


def test_listing_formats_amounts_in_the_editors_locale(client, admin, listing_invoices):
    profile = UserProfile.get_for_user(admin)
    profile.preferred_language = "de"
    profile.save()
    html = client.get(url("list")).content.decode()
    assert "990,00\xa0€" in html


def test_listing_hides_deleted_unless_the_status_filter_asks(client, admin, listing_invoices):
    assert "dee@acme.example" not in listed(client)
    assert listed(client, "?status=deleted") == ["dee@acme.example"]
    assert "dee@acme.example" in listed(client, "?status=deleted&status=pending")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?status=pending", ["ann@acme.example", "old@acme.example"]),
        ("?status=paid&status=expired", ["bob@bravo.example", "cy@acme.example"]),
        ("?mode=live", ["bob@bravo.example"]),
        ("?mode=test", ["ann@acme.example", "cy@acme.example", "old@acme.example"]),
        ("?currency=EUR", ["bob@bravo.example"]),
        ("?billing_type=monthly", ["bob@bravo.example"]),
        (
            "?created_at_from=2026-02-25",
            ["ann@acme.example", "bob@bravo.example", "cy@acme.example"],
        ),
        ("?created_at_to=2026-02-25", ["old@acme.example"]),
        ("?paid_at_from=2026-03-01&paid_at_to=2026-03-03", ["bob@bravo.example"]),
        ("?q=bravo", ["bob@bravo.example"]),
        ("?q=retainer", ["bob@bravo.example"]),
        ("?q=ANN@ACME", ["ann@acme.example"]),
    ],
)
def test_listing_filters_and_search(client, admin, listing_invoices, query, expected):
    assert listed(client, query) == expected


def test_listing_filters_by_site_and_searches_by_number(client, admin, listing_invoices):
    site_b = listing_invoices["site_b"]
    assert listed(client, f"?site={site_b.pk}") == ["bob@bravo.example"]
    number = listing_invoices["expired"].number
    assert "cy@acme.example" in listed(client, f"?q={number}")


def test_search_for_a_whole_email_finds_that_clients_invoices_in_any_case(
    client, admin, listing_invoices, connected_site, account
):
    make_invoice(connected_site, account, email="jo.ann@acme.example")
    assert listed(client, "?q=Ann@Acme.Example") == ["ann@acme.example"]
    # Part of an address is still a substring search, across every address.
    assert listed(client, "?q=ann@acme") == ["ann@acme.example", "jo.ann@acme.example"]


def test_search_for_a_whole_invoice_number_finds_it_on_every_site(client, admin, listing_invoices):
    expired = listing_invoices["expired"]
    found = listed(client, f"?q={expired.number.lower()}")
    assert "cy@acme.example" in found
    numbers = {
        invoice.number
        for invoice in client.get(url("list") + f"?q={expired.number}").context["object_list"]
    }
    assert numbers == {expired.number}


def test_status_filter_counts_without_distinct(client, admin, listing_invoices):
    with CaptureQueriesContext(connection) as queries:
        assert listed(client, "?status=pending&status=paid") == [
            "ann@acme.example",
            "bob@bravo.example",
            "old@acme.example",
        ]
    invoice_queries = [q["sql"] for q in queries if "wagtail_client_billing_invoice" in q["sql"]]
    assert invoice_queries
    assert not [sql for sql in invoice_queries if "DISTINCT" in sql.upper()], invoice_queries


@pytest.mark.parametrize(
    "ordering",
    [
        "created_at",
        "-created_at",
        "expires_at",
        "-expires_at",
        "paid_at",
        "-paid_at",
        "amount",
        "-amount",
    ],
)
def test_listing_orders_by_every_date_and_amount_column(client, admin, listing_invoices, ordering):
    response = client.get(url("list") + f"?ordering={ordering}")
    assert response.context["ordering"] == ordering
    rows = list(response.context["object_list"])
    field = ordering.lstrip("-")
    if field != "paid_at":
        values = [getattr(row, field) for row in rows]
        assert values == sorted(values, reverse=ordering.startswith("-"))


def test_export_csv_has_decimal_amounts_and_currency_codes(client, admin, listing_invoices):
    response = client.get(url("list") + "?export=csv&ordering=created_at")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["Client email"] for row in rows] == [
        "old@acme.example",
        "ann@acme.example",
        "bob@bravo.example",
        "cy@acme.example",
    ]
    bob = rows[2]
    assert bob["Amount"] == "990.00"
    assert bob["Currency"] == "EUR"
    assert bob["Status"] == "Paid"
    assert bob["Mode"] == "Live"
    assert bob["Site"] == "Client B"
    assert rows[0]["Amount"] == "50.00"


def test_export_follows_filters(client, admin, listing_invoices):
    response = client.get(url("list") + "?export=csv&status=deleted")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["Client email"] for row in rows] == ["dee@acme.example"]


def test_export_xlsx_opens_with_numbers_and_currency_codes(client, admin, listing_invoices):
    from openpyxl import load_workbook

    response = client.get(url("list") + "?export=xlsx&currency=EUR")
    assert response.status_code == 200
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = workbook.active
    header, *rows = list(sheet.iter_rows(values_only=True))
    record = dict(zip(header, rows[0], strict=True))
    assert len(rows) == 1
    assert record["Amount"] == 990 and isinstance(record["Amount"], (int, float))
    assert record["Currency"] == "EUR"
    assert record["Number"] == listing_invoices["paid"].number
    assert record["Paid"] == NOW.replace(tzinfo=None)


# --- inspect --------------------------------------------------------------------------------


def test_inspect_shows_link_ids_email_state_and_history(client, admin, connected_site, account):
    invoice = make_invoice(
        connected_site,
        account,
        checkout_session_id="cs_test_123",
        payment_intent_id="pi_test_456",
        email_status="failed",
        email_last_error="550 mailbox unavailable",
    )
    response = client.get(url("inspect", invoice.pk))
    html = response.content.decode()
    assert invoice.get_pay_url() in html
    assert "Copy payment link" in html
    assert "https://dashboard.stripe.com/acct_test_a/test/payments/pi_test_456" in html
    assert "550 mailbox unavailable" in html
    assert "Failed" in html
    assert url("history", invoice.pk) in html
    assert url("resend", invoice.pk) in html
    assert url("delete", invoice.pk) in html


def test_inspect_puts_the_next_action_in_the_header(client, admin, connected_site, account):
    pending = make_invoice(connected_site, account)
    expired = make_invoice(connected_site, account, status="expired")
    # The header also holds the "more" dropdown, which has no URL of its own.
    header = client.get(url("inspect", pending.pk)).context["header_buttons"]
    assert [(b.label, b.url) for b in header if b.url] == [
        ("Resend email", url("resend", pending.pk))
    ]
    header = client.get(url("inspect", expired.pk)).context["header_buttons"]
    assert [(b.label, b.url) for b in header if b.url] == [
        ("Send new invoice", url("copy", expired.pk))
    ]


def test_listing_offers_add_billing_request(client, admin, connected_site):
    assert "Add billing request" in client.get(url("list")).content.decode()


def test_inspect_flags_a_late_payment(client, admin, connected_site, account):
    invoice = make_invoice(connected_site, account, status="paid", late_payment=True, paid_at=NOW)
    html = client.get(url("inspect", invoice.pk)).content.decode()
    assert "Paid late" in html
    assert url("delete", invoice.pk) not in html  # a paid invoice offers no delete
    assert url("resend", invoice.pk) not in html


def test_history_shows_the_log_entries(client, admin, connected_site):
    client.post(url("add"), form_data(connected_site))
    invoice = Invoice.objects.get()
    html = client.get(url("history", invoice.pk)).content.decode()
    assert "Billing request created" in html


# --- delete ---------------------------------------------------------------------------------


def test_delete_is_a_soft_delete(client, admin, connected_site, account):
    invoice = make_invoice(connected_site, account, checkout_session_id="cs_test_1")
    confirm = client.get(url("delete", invoice.pk))
    assert "Yes, delete" in confirm.content.decode()

    response = client.post(url("delete", invoice.pk), follow=True)
    invoice.refresh_from_db()
    assert invoice.status == "deleted"
    assert invoice.deleted_by == admin and invoice.deleted_at is not None
    assert any("deleted" in m for m in messages_of(response))
    assert invoice.email not in [i.email for i in response.context.get("object_list", [])]


def test_paid_invoice_cannot_be_deleted(client, admin, connected_site, account):
    invoice = make_invoice(connected_site, account, status="paid", paid_at=NOW)
    confirm = client.get(url("delete", invoice.pk)).content.decode()
    assert "cannot be deleted" in confirm and "Yes, delete" not in confirm

    response = client.post(url("delete", invoice.pk), follow=True)
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert "A paid invoice cannot be deleted; refund it instead." in messages_of(response)


def test_bulk_delete_soft_deletes_the_deletable_ones_only(client, admin, listing_invoices):
    pending, old, paid = (
        listing_invoices["pending"],
        listing_invoices["old"],
        listing_invoices["paid"],
    )
    bulk = (
        reverse("wagtail_bulk_action", args=("wagtail_client_billing", "invoice", "delete"))
        + f"?id={pending.pk}&id={old.pk}&id={paid.pk}"
    )
    page = client.get(bulk).content.decode()
    assert "These cannot be deleted" in page and paid.number in page

    response = client.post(bulk, follow=True)
    assert "2 billing requests deleted." in messages_of(response)
    statuses = dict(Invoice.objects.values_list("pk", "status"))
    assert statuses[pending.pk] == statuses[old.pk] == "deleted"
    assert statuses[paid.pk] == "paid"
    assert Invoice.objects.count() == 5  # nothing removed from the database


def test_expired_invoice_can_be_deleted(client, admin, connected_site, account):
    invoice = make_invoice(connected_site, account, status="expired")
    client.post(url("delete", invoice.pk))
    invoice.refresh_from_db()
    assert invoice.status == "deleted"


# --- resend and send new --------------------------------------------------------------------


def test_resend_queues_the_email_again(client, admin, connected_site, account):
    invoice = make_invoice(connected_site, account, email_status="sent")
    assert "Yes, resend email" in client.get(url("resend", invoice.pk)).content.decode()
    response = client.post(url("resend", invoice.pk), follow=True)
    invoice.refresh_from_db()
    assert invoice.email_status == "queued"
    assert (
        "Billing request INV-000001 (client-a.example) will be sent again to client@example.com"
        in messages_of(response)
    )


def test_resend_refused_for_an_expired_invoice(client, admin, connected_site, account):
    invoice = make_invoice(connected_site, account, status="expired", email_status="sent")
    response = client.post(url("resend", invoice.pk), follow=True)
    invoice.refresh_from_db()
    assert invoice.email_status == "sent"
    assert any("only pending billing requests can be resent" in m for m in messages_of(response))


def test_send_new_copies_an_expired_invoice_into_a_new_one(client, admin, connected_site, account):
    source = make_invoice(
        connected_site,
        account,
        status="expired",
        currency="JPY",
        amount=5000,
        billing_type="yearly",
        description="Hosting 2026",
        note="Renewal",
    )
    response = client.get(url("copy", source.pk))
    form = response.context["form"]
    assert form.initial["amount"] == "5000"
    assert form.initial["currency"] == "JPY"
    assert "filled in from INV-000001" in response.content.decode()

    data = form_data(
        connected_site,
        currency="JPY",
        amount="5000",
        billing_type="yearly",
        description="Hosting 2026",
        note="Renewal",
    )
    response = client.post(url("copy", source.pk), data, follow=True)
    new = Invoice.objects.exclude(pk=source.pk).get()
    assert new.copied_from == source
    assert new.number == "INV-000002" and new.status == "pending"
    assert (new.amount, new.currency, new.billing_type) == (5000, "JPY", "yearly")
    assert (new.description, new.note, new.email) == ("Hosting 2026", "Renewal", source.email)
    source.refresh_from_db()
    assert source.status == "expired"
    assert (
        "Billing request INV-000002 (client-a.example) sent to client@example.com"
        in messages_of(response)
    )


def test_send_new_refused_for_a_pending_invoice(client, admin, connected_site, account):
    invoice = make_invoice(connected_site, account)
    response = client.get(url("copy", invoice.pk), follow=True)
    assert any("Only expired or deleted" in m for m in messages_of(response))


# --- the site's Invoices tab ----------------------------------------------------------------


def test_site_settings_tab_lists_that_sites_invoices_newest_first(
    client, admin, listing_invoices, connected_site
):
    settings_url = reverse(
        "wagtailsettings:edit",
        args=("wagtail_client_billing", "clientbillingsettings", connected_site.pk),
    )
    html = client.get(settings_url).content.decode()
    assert "ann@acme.example" in html and "old@acme.example" in html
    assert "bob@bravo.example" not in html  # another site's
    assert "dee@acme.example" not in html  # deleted
    assert html.index("cy@acme.example") < html.index("old@acme.example")
    assert f"{url('add')}?site={connected_site.pk}" in html


# --- permissions ----------------------------------------------------------------------------


def view_urls(invoice: Invoice, pending: Invoice) -> dict[str, str]:
    return {
        "list": url("list"),
        "add": url("add"),
        "inspect": url("inspect", invoice.pk),
        "edit": url("edit", invoice.pk),
        "delete": url("delete", pending.pk),
        "history": url("history", invoice.pk),
        "resend": url("resend", pending.pk),
        "copy": url("copy", invoice.pk),
    }


@pytest.fixture
def two_sites(connected_site, account):
    other = make_site("client-b.example")
    other_account = make_account("acct_test_b")
    connect(other, other_account)
    return {
        "own": make_invoice(connected_site, account, status="expired"),
        "own_pending": make_invoice(connected_site, account),
        "other": make_invoice(other, other_account, status="expired"),
        "other_pending": make_invoice(other, other_account),
    }


@pytest.mark.parametrize(
    "view", ["list", "add", "inspect", "edit", "delete", "history", "resend", "copy"]
)
def test_anonymous_users_are_sent_to_log_in(client, two_sites, view):
    response = client.get(view_urls(two_sites["own"], two_sites["own_pending"])[view])
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize(
    "view", ["list", "add", "inspect", "edit", "delete", "history", "resend", "copy"]
)
def test_users_without_invoice_permissions_reach_no_view(client, two_sites, view):
    client.force_login(make_user())
    response = client.get(view_urls(two_sites["own"], two_sites["own_pending"])[view])
    assert response.status_code in (302, 403)
    if response.status_code == 302:
        assert response["Location"] == reverse("wagtailadmin_home")


def test_users_without_invoice_permissions_see_no_menu(client, db):
    client.force_login(make_user())
    assert "Client billing" not in client.get(reverse("wagtailadmin_home")).content.decode()
    client.force_login(make_user("viewer", perms=("wagtail_client_billing.view_invoice",)))
    assert "Client billing" in client.get(reverse("wagtailadmin_home")).content.decode()


@pytest.mark.parametrize(
    ("view", "perm"),
    [
        ("inspect", "view_invoice"),
        ("history", "view_invoice"),
        ("edit", "change_invoice"),
        ("resend", "change_invoice"),
        ("delete", "delete_invoice"),
        ("copy", "add_invoice"),
    ],
)
def test_hook_limited_users_get_404_for_another_sites_invoice(
    client, two_sites, only_site_a, view, perm
):
    client.force_login(make_user(perms=(f"wagtail_client_billing.{perm}",)))
    own = view_urls(two_sites["own"], two_sites["own_pending"])[view]
    other = view_urls(two_sites["other"], two_sites["other_pending"])[view]
    assert client.get(own).status_code == 200
    assert client.get(other).status_code == 404
    if view in ("delete", "resend"):
        assert client.post(other).status_code == 404
        assert Invoice.objects.get(pk=two_sites["other_pending"].pk).status == "pending"


def test_hook_limited_users_list_only_their_sites(client, two_sites, only_site_a):
    client.force_login(make_user(perms=("wagtail_client_billing.view_invoice",)))
    numbers = {i.pk for i in client.get(url("list")).context["object_list"]}
    assert numbers == {two_sites["own"].pk, two_sites["own_pending"].pk}


@pytest.mark.parametrize(
    ("view", "perm", "missing"),
    [
        ("add", "view_invoice", "add"),
        ("edit", "view_invoice", "change"),
        ("delete", "change_invoice", "delete"),
        ("resend", "view_invoice", "change"),
        ("copy", "change_invoice", "add"),
    ],
)
def test_each_action_needs_its_own_permission(client, two_sites, view, perm, missing):
    client.force_login(make_user(perms=(f"wagtail_client_billing.{perm}",)))
    response = client.get(view_urls(two_sites["own"], two_sites["own_pending"])[view])
    assert response.status_code in (302, 403)
    response = client.post(view_urls(two_sites["own"], two_sites["own_pending"])[view])
    assert response.status_code in (302, 403)
    assert Invoice.objects.filter(status="deleted").count() == 0
    assert Invoice.objects.count() == 4


@pytest.mark.parametrize(
    "view", ["list", "add", "inspect", "edit", "delete", "history", "resend", "copy"]
)
def test_superusers_reach_every_view(client, admin, two_sites, view):
    response = client.get(view_urls(two_sites["other"], two_sites["other_pending"])[view])
    assert response.status_code == 200


def test_view_only_users_get_no_action_buttons(client, connected_site, account):
    invoice = make_invoice(connected_site, account)
    client.force_login(make_user(perms=("wagtail_client_billing.view_invoice",)))
    html = client.get(url("inspect", invoice.pk)).content.decode()
    assert url("resend", invoice.pk) not in html
    assert url("delete", invoice.pk) not in html
    assert url("edit", invoice.pk) not in html
    assert "Copy payment link" in html


def test_csrf_is_required_on_actions(admin, connected_site, account):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin)
    invoice = make_invoice(connected_site, account)
    assert strict.post(url("delete", invoice.pk)).status_code == 403
    assert strict.post(url("resend", invoice.pk)).status_code == 403
    invoice.refresh_from_db()
    assert invoice.status == "pending"


# --- query counts ---------------------------------------------------------------------------


def make_many(count: int, sites: list[Site], accounts) -> None:
    statuses = ["pending", "paid", "expired", "processing"]
    for i in range(count):
        make_invoice(
            sites[i % len(sites)],
            accounts[i % len(accounts)],
            email=f"c{i}@example.com",
            status=statuses[i % len(statuses)],
            created_by=None,
        )


def count_queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    "path_for",
    [
        lambda invoice: url("list"),
        lambda invoice: url("list") + "?status=paid&status=pending&q=example&ordering=-amount",
        lambda invoice: url("inspect", invoice.pk),
        lambda invoice: reverse(
            "wagtailsettings:edit",
            args=("wagtail_client_billing", "clientbillingsettings", invoice.site_id),
        ),
    ],
    ids=["listing", "filtered-listing", "inspect", "settings-tab"],
)
def test_query_count_does_not_grow_with_invoices(client, connected_site, account, path_for):
    user = make_user(
        perms=("wagtail_client_billing.view_invoice", "wagtail_client_billing.delete_invoice")
    )
    user.groups.first().permissions.add(
        Permission.objects.get(codename="change_clientbillingsettings")
    )
    client.force_login(user)
    site_b = make_site("client-b.example")
    accounts = [account, make_account("acct_test_b")]
    probe = make_invoice(connected_site, account)
    with wagtail_hooks.register_temporarily(hooks.SITES_FOR_USER, lambda user, sites: sites):
        make_many(5, [connected_site, site_b], accounts)
        count_queries(client, path_for(probe))  # warm caches (content types, permissions)
        few = count_queries(client, path_for(probe))
        make_many(45, [connected_site, site_b], accounts)
        many = count_queries(client, path_for(probe))
    assert few == many
