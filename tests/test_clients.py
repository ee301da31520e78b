"""The client directory: who sees which client, the request form's client, the client's
page and its totals, merge, Checkout's customer per account, copies of client emails,
the JSON export and the erasure (with its command).

An editor whom the ``client_billing_sites_for_user`` hook keeps to client-a is the
"limited" editor throughout; client-b's things must never reach them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from wagtail import hooks as wagtail_hooks

from tests.utils import (
    connect,
    make_account,
    make_emulated_account,
    make_invoice,
    make_site,
    make_user,
)
from wagtail_client_billing import documents, hooks
from wagtail_client_billing.billing import clients as domain
from wagtail_client_billing.billing import overview
from wagtail_client_billing.models import (
    Client,
    ClientBillingLogEntry,
    ClientStripeCustomer,
    Invoice,
    InvoiceLine,
    Payment,
    Refund,
    WebhookEvent,
)
from wagtail_client_billing.scope import clients_for_user

pytestmark = pytest.mark.django_db

APP = "wagtail_client_billing"
NS = "wagtail_client_billing_clients"
HIDDEN = "secret-b@client-b.example"


def url(name: str, *args) -> str:
    return reverse(f"{NS}:{name}", args=args)


def only_client_a(user, sites):
    return sites if user.is_superuser else sites.filter(hostname="client-a.example")


@pytest.fixture
def limit_to_a():
    with wagtail_hooks.register_temporarily(hooks.SITES_FOR_USER, only_client_a):
        yield


def editor_with_every_permission(name: str = "editor"):
    user = make_user(name)
    user.groups.get().permissions.add(*Permission.objects.filter(content_type__app_label=APP))
    return user


def logged_in(user) -> HttpClient:
    http = HttpClient()
    http.force_login(user)
    return http


@pytest.fixture
def world(db):
    """Two sites; one client billed on both, one on client-b only."""
    site_a, site_b = make_site("client-a.example"), make_site("client-b.example")
    account_a, account_b = make_account("acct_clients_a"), make_account("acct_clients_b")
    connect(site_a, account_a)
    connect(site_b, account_b)
    shared = Client.objects.create(email="shared@example.com", name="Shared Ltd")
    hidden = Client.objects.create(email=HIDDEN, name="Hidden B")
    on_a = make_invoice(site_a, account_a, email=shared.email, client=shared, amount=1000)
    on_b = make_invoice(site_b, account_b, email=shared.email, client=shared, amount=7777)
    make_invoice(site_b, account_b, email=HIDDEN, client=hidden)
    return {
        "site_a": site_a,
        "site_b": site_b,
        "account_a": account_a,
        "account_b": account_b,
        "shared": shared,
        "hidden": hidden,
        "on_a": on_a,
        "on_b": on_b,
    }


# --- the listing ------------------------------------------------------------------------------


def listing(http, query: str = "") -> dict[str, dict[str, str]]:
    """The Clients listing's rows: the client's name -> ``{column label: cell text}``, and
    ``{label + " datetime": the date cell's machine-readable time}`` for date columns."""
    response = http.get(url("list") + query)
    assert response.status_code == 200
    soup = BeautifulSoup(response.content, "html.parser")
    labels = [th.get_text(" ", strip=True) for th in soup.select("table.listing thead th")]
    rows = {}
    for tr in soup.select("table.listing tbody tr"):
        row: dict[str, str] = {}
        for label, td in zip(labels, tr.find_all("td", recursive=False), strict=True):
            row[label] = td.get_text(" ", strip=True)
            if (time := td.find("time")) is not None:
                row[f"{label} datetime"] = time.get("datetime", "")
        name = tr.select_one("td a").get_text(" ", strip=True)
        rows[name] = row
    return rows


def billed_at(row: dict[str, str]) -> datetime:
    return datetime.fromisoformat(row["Last billed datetime"])


def test_the_listing_shows_what_awaits_payment_and_the_last_request_on_the_editors_sites(
    world, limit_to_a
):
    shared, site_a, site_b = world["shared"], world["site_a"], world["site_b"]
    long_ago = timezone.now() - timedelta(days=40)
    Invoice.objects.filter(pk=world["on_a"].pk).update(created_at=long_ago)
    make_invoice(site_b, world["account_b"], email=shared.email, client=shared)  # pending
    make_invoice(site_a, world["account_a"], email=shared.email, client=shared, status="paid",
                 created_at=long_ago - timedelta(days=1))  # fmt: skip
    draft_only = Client.objects.create(email="draft@example.com", name="Draft Only")
    make_invoice(site_a, world["account_a"], email=draft_only.email, client=draft_only,
                 status="draft")  # fmt: skip

    everything = listing(logged_in(make_user("boss", superuser=True)))
    assert everything["Shared Ltd"]["Awaiting payment"] == "3"  # on_a, on_b, the new one
    assert billed_at(everything["Shared Ltd"]) > timezone.now() - timedelta(minutes=5)
    assert everything["Hidden B"]["Awaiting payment"] == "1"
    assert everything["Draft Only"]["Awaiting payment"] == ""  # a draft awaits nothing yet
    assert everything["Draft Only"]["Last billed"] == ""  # and was never sent

    # An editor kept to client-a counts only client-a's requests: one pending, and the
    # newest of them was made 40 days ago (client-b's, made today, are not theirs to see).
    limited = listing(logged_in(editor_with_every_permission()))
    assert set(limited) == {"Shared Ltd", "Draft Only"}
    assert limited["Shared Ltd"]["Awaiting payment"] == "1"
    assert abs(billed_at(limited["Shared Ltd"]) - long_ago) < timedelta(minutes=1)


def test_the_listing_filters_by_site_and_by_what_awaits_payment(world, limit_to_a):
    site_a = world["site_a"]
    settled = Client.objects.create(email="settled@example.com", name="Settled Co")
    make_invoice(site_a, world["account_a"], email=settled.email, client=settled, status="paid")
    boss = logged_in(make_user("boss", superuser=True))

    assert set(listing(boss, "?outstanding=yes")) == {"Shared Ltd", "Hidden B"}
    assert set(listing(boss, "?outstanding=no")) == {"Settled Co"}
    assert set(listing(boss, f"?site={site_a.pk}")) == {"Shared Ltd", "Settled Co"}
    assert set(listing(boss, f"?site={world['site_b'].pk}&outstanding=yes")) == {
        "Shared Ltd",
        "Hidden B",
    }

    # The limited editor is offered their own site only; client-b's is not a choice, so
    # asking for it is a field error and shows nobody billed only there.
    http = logged_in(editor_with_every_permission())
    page = http.get(url("list") + f"?site={world['site_b'].pk}").content.decode()
    assert "Select a valid choice" in page
    assert HIDDEN not in page and "Hidden B" not in page
    assert set(listing(http, f"?site={site_a.pk}&outstanding=yes")) == {"Shared Ltd"}


def test_the_listing_makes_as_many_queries_for_1000_invoices_as_for_10(world):
    http = logged_in(make_user("boss", superuser=True))
    client = Client.objects.create(email="many@example.com", name="Many")
    _bulk_invoices(world, client, 10)
    listing(http)  # warm caches (content types, site root paths)
    with CaptureQueriesContext(connection) as few:
        rows = listing(http)
    assert rows["Many"]["Awaiting payment"] == "5"
    _bulk_invoices(world, client, 1000, start=10)
    with CaptureQueriesContext(connection) as many:
        rows = listing(http)
    assert rows["Many"]["Awaiting payment"] == "505"
    assert len(many) == len(few)


# --- the access scope ------------------------------------------------------------------------


def test_an_editor_limited_to_one_site_sees_only_that_sites_invoices_on_the_clients_page(
    world, limit_to_a
):
    http = logged_in(editor_with_every_permission())
    page = http.get(url("inspect", world["shared"].pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert world["on_a"].label in html
    assert world["on_b"].label not in html
    assert "77.77" not in html  # client-b's invoice counts in no total either
    assert "10.00" in html


def test_a_client_with_no_invoice_on_the_editors_sites_is_invisible_everywhere(world, limit_to_a):
    http = logged_in(editor_with_every_permission())
    hidden = world["hidden"].pk
    for name in ("inspect", "edit", "history", "merge", "export", "erase", "delete"):
        assert http.get(url(name, hidden)).status_code == 404, name
    listing = http.get(url("list")).content.decode()
    assert HIDDEN not in listing and "Shared Ltd" in listing
    chooser = http.get(reverse("wagtailsnippetchoosers_wagtail_client_billing_client:choose"))
    assert HIDDEN not in chooser.content.decode()
    assert "Shared Ltd" in chooser.content.decode()


def test_a_new_client_is_visible_to_its_author_until_billed_elsewhere(world, limit_to_a):
    author, colleague = (
        editor_with_every_permission("author"),
        editor_with_every_permission("colleague"),
    )
    response = logged_in(author).post(
        url("add"), {"name": "Newco", "email": "hello@newco.example", "language": ""}
    )
    assert response.status_code == 302
    newco = Client.objects.get(email="hello@newco.example")
    assert newco.created_by == author
    assert list(clients_for_user(author).filter(pk=newco.pk)) == [newco]
    assert not clients_for_user(colleague).filter(pk=newco.pk).exists()
    make_invoice(world["site_b"], world["account_b"], email=newco.email, client=newco)
    assert not clients_for_user(author).filter(pk=newco.pk).exists()


def test_without_the_hook_every_editor_sees_every_client(world):
    editor = editor_with_every_permission()
    assert set(clients_for_user(editor)) == {world["shared"], world["hidden"]}


def test_client_log_entries_follow_the_scope(world, limit_to_a):
    from wagtail.log_actions import log

    log(instance=world["hidden"], action="wagtail.edit")
    log(instance=world["shared"], action="wagtail.edit")
    editor = editor_with_every_permission()
    seen = ClientBillingLogEntry.objects.viewable_by_user(editor).values_list(
        "object_id", flat=True
    )
    assert str(world["shared"].pk) in set(seen)
    assert str(world["hidden"].pk) not in set(seen)


# --- the billing request form --------------------------------------------------------------


def request_data(site, **overrides) -> dict[str, str]:
    data = {
        "site": str(site.pk),
        "email": "",
        "currency": "USD",
        "amount": "50.00",
        "billing_type": "one_time",
        "description": "Hosting",
        "success_url": "https://client.example/thanks",
        "cancel_url": "https://client.example/cancelled",
        "test_mode": "on",
    }
    data.update(overrides)
    return data


INVOICE_ADD = "wagtail_client_billing_invoices:add"


def test_a_new_email_creates_the_client_and_another_case_reuses_it(world):
    http = logged_in(make_user("boss", superuser=True))
    http.post(reverse(INVOICE_ADD), request_data(world["site_a"], email="Fresh@Client.example"))
    fresh = Client.objects.get(email="Fresh@Client.example")
    assert Invoice.objects.get(email="Fresh@Client.example").client == fresh
    http.post(reverse(INVOICE_ADD), request_data(world["site_a"], email="fresh@client.EXAMPLE"))
    assert Client.objects.filter(email__iexact="fresh@client.example").count() == 1
    assert Invoice.objects.filter(client=fresh).count() == 2


def test_choosing_a_client_sends_to_their_billing_email_and_prefills_from_their_page(world):
    http = logged_in(make_user("boss", superuser=True))
    shared = world["shared"]
    form = http.get(reverse(INVOICE_ADD) + f"?client={shared.pk}")
    assert form.context["form"].initial["client"] == shared.pk
    response = http.post(reverse(INVOICE_ADD), request_data(world["site_a"], client=str(shared.pk)))
    assert response.status_code == 302
    invoice = Invoice.objects.order_by("-pk").first()
    assert (invoice.client, invoice.email) == (shared, "shared@example.com")


@pytest.mark.parametrize(
    "client_value", ["HIDDEN", "999999", "abc", "-1", "1 OR 1=1", "{}", "\x00"]
)
def test_the_form_refuses_a_client_the_editor_may_not_see_or_nonsense(
    world, limit_to_a, client_value
):
    if client_value == "HIDDEN":
        client_value = str(world["hidden"].pk)
    editor = editor_with_every_permission()
    before = Invoice.objects.count()
    response = logged_in(editor).post(
        reverse(INVOICE_ADD), request_data(world["site_a"], client=client_value)
    )
    assert response.status_code == 200
    assert "client" in response.context["form"].errors
    assert Invoice.objects.count() == before
    assert HIDDEN not in response.content.decode()


def test_neither_a_client_nor_an_email_is_a_field_error(world):
    http = logged_in(make_user("boss", superuser=True))
    response = http.post(reverse(INVOICE_ADD), request_data(world["site_a"]))
    assert "email" in response.context["form"].errors


def test_the_prefill_ignores_a_client_the_editor_may_not_see(world, limit_to_a):
    http = logged_in(editor_with_every_permission())
    for value in (str(world["hidden"].pk), "x", "99999999999999999999"):
        form = http.get(reverse(INVOICE_ADD) + f"?client={value}")
        assert form.status_code == 200
        assert "client" not in form.context["form"].initial


def test_send_new_invoice_keeps_the_client(world):
    from wagtail_client_billing.billing import invoices

    source = make_invoice(
        world["site_a"],
        world["account_a"],
        email="x@shared.example",
        client=world["shared"],
        status="expired",
    )
    assert invoices.copy(source).client == world["shared"]


# --- the client's form -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "SHARED@example.com", "already exists"),
        ("email", "Bob <bob@example.com>", "valid email"),
        ("email", "a@example.com, b@example.com", "valid email"),
        ("email", "bob@example.com\r\nBcc: x@example.com", "valid email"),
        ("email", "", "required"),
        ("extra_emails", "ok@example.com\nnot-an-address", "not-an-address"),
        ("extra_emails", "Eve <eve@example.com>", "Eve"),
        ("language", "xx-evil", "valid choice"),
        ("name", "x" * 256, "at most 255"),
    ],
)
def test_the_client_form_refuses_bad_input_with_a_field_error(world, field, value, message):
    http = logged_in(make_user("boss", superuser=True))
    data = {"name": "Someone", "email": "someone@example.com", "language": ""}
    data[field] = value
    before = Client.objects.count()
    response = http.post(url("add"), data)
    assert response.status_code == 200
    errors = [str(e) for e in response.context["form"].errors.get(field, [])]
    assert any(message in e for e in errors), errors
    assert Client.objects.count() == before


def test_extra_emails_are_stored_one_a_line_and_copied_on_the_clients_emails(world):
    from wagtail_client_billing.emails import build_invoice_message, mailer_for_site

    http = logged_in(make_user("boss", superuser=True))
    shared = world["shared"]
    response = http.post(
        url("edit", shared.pk),
        {
            "name": "Shared Ltd",
            "email": "shared@example.com",
            "extra_emails": "books@shared.example; ceo@shared.example, books@SHARED.example",
            "language": "",
        },
    )
    assert response.status_code == 302
    shared.refresh_from_db()
    assert shared.extra_emails == "books@shared.example\nceo@shared.example"
    invoice = Invoice.objects.get(pk=world["on_a"].pk)
    message = build_invoice_message(invoice, mailer_for_site(invoice.site))
    assert message.to == ["shared@example.com"]
    assert message.cc == ["books@shared.example", "ceo@shared.example"]
    message.send()
    assert set(mail.outbox[-1].recipients()) == {
        "shared@example.com",
        "books@shared.example",
        "ceo@shared.example",
    }


def test_a_client_with_invoices_is_not_deleted(world):
    http = logged_in(make_user("boss", superuser=True))
    response = http.post(url("delete", world["shared"].pk))
    assert response.status_code == 302
    assert Client.objects.filter(pk=world["shared"].pk).exists()


def test_hostile_ids_in_client_urls_are_not_found(world):
    http = logged_in(make_user("boss", superuser=True))
    for name in ("inspect", "edit", "merge", "export", "erase", "history", "delete"):
        for pk in ("abc", "1%20OR%201", "99999999999999999999", "-1", "0"):
            path = url(name, 1).replace("/1/", f"/{pk}/")
            response = http.get(path)
            assert response.status_code == 404, (name, pk, response.status_code)


# --- the client's page: totals and a constant number of queries ------------------------------


def _bulk_invoices(world, client, n: int, start: int = 0) -> None:
    now = timezone.now()
    Invoice.objects.bulk_create(
        Invoice(
            site=world["site_a"],
            account=world["account_a"],
            email=client.email,
            client=client,
            currency="USD",
            amount=100 + i,
            success_url="https://a.example/ok",
            cancel_url="https://a.example/no",
            expires_at=now + timedelta(days=1),
            status="pending" if i % 2 else "paid",
            number=f"BULK-{i}",
        )
        for i in range(start, start + n)
    )


def _page_queries(http, client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = http.get(url("inspect", client.pk))
    assert response.status_code == 200
    return len(queries)


def test_the_clients_page_makes_as_many_queries_for_1000_invoices_as_for_10(world):
    http = logged_in(make_user("boss", superuser=True))
    small = Client.objects.create(email="small@example.com")
    large = Client.objects.create(email="large@example.com")
    _bulk_invoices(world, small, 10)
    _bulk_invoices(world, large, 1000)
    for client in (small, large):
        paid = Invoice.objects.filter(client=client, status="paid")
        Payment.objects.bulk_create(
            Payment(invoice=invoice, amount=invoice.amount, currency="USD", paid_at=timezone.now())
            for invoice in paid
        )
    _page_queries(http, small)  # warm caches (content types, site root paths)
    assert _page_queries(http, small) == _page_queries(http, large)


def test_totals_are_paid_outstanding_and_refunded_per_currency_live_apart_from_test(world):
    shared = world["shared"]
    Invoice.objects.filter(client=shared).delete()
    site, account = world["site_a"], world["account_a"]
    paid = make_invoice(site, account, client=shared, amount=5000, status="paid")
    Payment.objects.create(
        invoice=paid, amount=5000, currency="USD", paid_at=timezone.now(), amount_refunded=1500
    )
    Payment.objects.create(
        invoice=paid, amount=5000, currency="USD", paid_at=timezone.now(), kind="renewal"
    )
    make_invoice(site, account, client=shared, amount=2500)  # pending
    make_invoice(site, account, client=shared, amount=900, status="expired")  # not owed
    make_invoice(site, account, client=shared, amount=300, currency="EUR", status="processing")
    totals = {
        (t.currency, t.test_mode): t
        for t in overview.client_totals(Invoice.objects.filter(client=shared))
    }
    usd = totals[("USD", True)]
    assert (usd.paid, usd.outstanding, usd.refunded) == (10000, 2500, 1500)
    assert (totals[("EUR", True)].outstanding, totals[("EUR", True)].paid) == (300, 0)


def test_the_page_lists_subscriptions_with_their_state_and_offers_a_prefilled_request(world):
    http = logged_in(make_user("boss", superuser=True))
    make_invoice(
        world["site_a"],
        world["account_a"],
        client=world["shared"],
        billing_type="monthly",
        subscription_id="sub_123",
        subscription_status="past_due",
        status="paid",
    )
    html = http.get(url("inspect", world["shared"].pk)).content.decode()
    assert "Past due" in html
    assert reverse(INVOICE_ADD) + f"?client={world['shared'].pk}" in html


# --- merge ---------------------------------------------------------------------------------


def test_merging_moves_invoices_and_customers_and_logs_what_it_dropped(world):
    boss = make_user("boss", superuser=True)
    http = logged_in(boss)
    keep, other = (
        world["shared"],
        Client.objects.create(email="dup@shared.example", name="Dup", address="1 Road"),
    )
    moved = make_invoice(world["site_a"], world["account_a"], email=other.email, client=other)
    ClientStripeCustomer.objects.create(
        client=keep, account=world["account_a"], customer_id="cus_keep"
    )
    ClientStripeCustomer.objects.create(
        client=other, account=world["account_a"], customer_id="cus_drop"
    )
    ClientStripeCustomer.objects.create(
        client=other, account=world["account_b"], customer_id="cus_move"
    )

    confirm = http.post(url("merge", keep.pk), {"other": other.pk})
    assert confirm.status_code == 200 and "Yes, merge" in confirm.content.decode()
    assert Client.objects.filter(pk=other.pk).exists()  # not before confirming
    response = http.post(url("merge", keep.pk), {"other": other.pk, "confirm": "1"})
    assert response.status_code == 302

    assert not Client.objects.filter(pk=other.pk).exists()
    assert Invoice.objects.get(pk=moved.pk).client == keep
    assert dict(keep.stripe_customers.values_list("account__stripe_id", "customer_id")) == {
        "acct_clients_a": "cus_keep",
        "acct_clients_b": "cus_move",
    }
    keep.refresh_from_db()
    assert keep.address == "1 Road"  # a blank field takes the other's value
    entry = ClientBillingLogEntry.objects.get(action="wagtail_client_billing.client_merged")
    assert entry.object_id == str(keep.pk)
    assert entry.data["customers_dropped"] == [
        {"account": "acct_clients_a", "customer": "cus_drop"}
    ]
    assert entry.data["merged"]["email"] == "dup@shared.example"
    history = http.get(url("history", keep.pk)).content.decode()
    assert "Merged dup@shared.example into this client: 1 billing request moved" in history
    assert "cus_drop (acct_clients_a)" in history
    # The merged client's old address finds the client it went into.
    assert domain.client_for_email("DUP@shared.example") == keep


def test_merge_refuses_itself_nonsense_and_a_client_billed_where_the_editor_cannot_see(
    world, limit_to_a
):
    http = logged_in(editor_with_every_permission())
    shared = world["shared"]
    mine = Client.objects.create(email="mine@a.example")
    make_invoice(world["site_a"], world["account_a"], client=mine)
    for other in (shared.pk, world["hidden"].pk, "abc", "", "99999999"):
        response = http.post(url("merge", mine.pk), {"other": other, "confirm": "1"})
        assert response.status_code == 200, other
        assert "other" in response.context["form"].errors
    # ``shared`` also has client-b invoices: the limited editor may not merge it away.
    response = http.post(url("merge", world["shared"].pk), {"other": mine.pk, "confirm": "1"})
    assert response.status_code == 302  # keeping shared, merging mine into it: allowed
    assert Client.objects.filter(pk=shared.pk).exists()
    mine2 = Client.objects.create(email="mine2@a.example", created_by=None)
    make_invoice(world["site_a"], world["account_a"], client=mine2)
    response = http.post(url("merge", mine2.pk), {"other": shared.pk, "confirm": "1"})
    assert "sites you cannot see" in response.content.decode()
    assert Client.objects.filter(pk=shared.pk).exists()


def test_merge_export_and_erase_need_their_permissions(world):
    editor = make_user("viewer", perms=(f"{APP}.view_client", f"{APP}.change_client"))
    http = logged_in(editor)
    shared = world["shared"]
    assert http.get(url("inspect", shared.pk)).status_code == 200
    for name in ("merge", "export", "erase"):
        assert http.get(url(name, shared.pk)).status_code == 403, name
        assert (
            http.post(
                url(name, shared.pk), {"other": world["hidden"].pk, "confirm": "1"}
            ).status_code
            == 403
        )
    shared.refresh_from_db()
    assert shared.erased_at is None and Client.objects.count() == 2


# --- Stripe customers per connected account ----------------------------------------------------


def test_checkout_records_the_clients_customer_and_reuses_it_on_that_account(
    stripe_emulator, client
):
    stripe_emulator.webhooks_enabled = False
    account = make_emulated_account(stripe_emulator, "customers.example")
    site = make_site("customers.example")
    connect(site, account)
    buyer = Client.objects.create(email="buyer@example.com")

    def pay(invoice):
        client.get(urlsplit(invoice.get_pay_url()).path)
        invoice.refresh_from_db()
        stripe_emulator.pay(invoice.checkout_session_id)
        back = urlsplit(invoice.public_url("return")).path
        client.get(f"{back}?session_id={invoice.checkout_session_id}")
        invoice.refresh_from_db()
        return stripe_emulator.state.checkout_sessions[invoice.checkout_session_id]

    first = pay(make_invoice(site, account, email=buyer.email, client=buyer))
    assert first["customer_creation"] == "always" and first["customer"]
    recorded = ClientStripeCustomer.objects.get(client=buyer, account=account)
    assert recorded.customer_id == first["customer"]

    second = pay(make_invoice(site, account, email="Other@Example.com", client=buyer))
    assert second["customer"] == recorded.customer_id
    assert second["customer_email"] is None
    assert ClientStripeCustomer.objects.filter(client=buyer).count() == 1


def test_the_emulator_refuses_another_accounts_customer(stripe_emulator):
    import stripe

    from wagtail_client_billing import gateway

    one = make_emulated_account(stripe_emulator, "one.example")
    two = make_emulated_account(stripe_emulator, "two.example")
    customer = stripe_emulator.state._create_customer("c@example.com", False, one.stripe_id)
    stripe_client = gateway.get_client(True)
    params = {
        "mode": "payment",
        "customer": customer["id"],
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 1000,
                    "product_data": {"name": "x"},
                },
                "quantity": 1,
            }
        ],
        "success_url": "https://x.example/ok",
        "cancel_url": "https://x.example/no",
    }
    with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
        stripe_client.v1.checkout.sessions.create(params, {"stripe_account": two.stripe_id})
    session = stripe_client.v1.checkout.sessions.create(params, {"stripe_account": one.stripe_id})
    assert session.customer == customer["id"]
    with pytest.raises(stripe.InvalidRequestError, match="customer, customer_email"):
        stripe_client.v1.checkout.sessions.create(
            {**params, "customer_email": "c@example.com"}, {"stripe_account": one.stripe_id}
        )


# --- personal data: export ---------------------------------------------------------------------


def _paid_with_everything(world):
    shared = world["shared"]
    invoice = make_invoice(
        world["site_a"],
        world["account_a"],
        client=shared,
        status="paid",
        note="Called Bob",
        payment_intent_id="pi_123",
        tax_name="VAT",
    )
    InvoiceLine.objects.create(invoice=invoice, description="Design", quantity=2, unit_amount=500)
    payment = Payment.objects.create(
        invoice=invoice,
        amount=1000,
        currency="USD",
        paid_at=timezone.now(),
        payment_intent_id="pi_123",
    )
    Refund.objects.create(
        payment=payment, invoice=invoice, amount=100, currency="USD", note="Bob asked nicely"
    )
    WebhookEvent.objects.create(
        event_id="evt_personal",
        type="checkout.session.completed",
        payload={
            "data": {
                "object": {
                    "id": "cs_1",
                    "customer_details": {"name": "Bob Shared", "email": "bob@shared.example"},
                    "amount_total": 1000,
                }
            }
        },
        invoice=invoice,
    )
    ClientStripeCustomer.objects.create(
        client=shared, account=world["account_a"], customer_id="cus_shared"
    )
    from wagtail.log_actions import log

    log(
        instance=invoice,
        action="wagtail_client_billing.created",
        data={"email": shared.email, "amount": 1000},
    )
    return invoice


def test_the_export_holds_everything_about_the_client_that_the_editor_may_see(world, limit_to_a):
    invoice = _paid_with_everything(world)
    documents.take_snapshot(invoice)  # the seller as copied when it was sent
    http = logged_in(editor_with_every_permission())
    response = http.get(url("export", world["shared"].pk))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert data["client"]["email"] == "shared@example.com"
    assert data["client"]["stripe_customers"] == [
        {
            "account": "acct_clients_a",
            "customer": "cus_shared",
            "created_at": data["client"]["stripe_customers"][0]["created_at"],
        }
    ]
    numbers = {i["id"] for i in data["invoices"]}
    assert invoice.pk in numbers and world["on_a"].pk in numbers
    assert world["on_b"].pk not in numbers  # client-b's invoice is not the editor's to see
    exported = next(i for i in data["invoices"] if i["id"] == invoice.pk)
    assert exported["lines"][0]["description"] == "Design"
    assert exported["payments"][0]["payment_intent_id"] == "pi_123"
    assert exported["refunds"][0]["note"] == "Bob asked nicely"
    assert (
        exported["webhook_events"][0]["payload"]["data"]["object"]["customer_details"]["name"]
        == "Bob Shared"
    )
    assert "token" not in exported
    assert "name" in exported["document"]["seller"]  # the issued document's seller
    assert any(e["action"] == "wagtail_client_billing.created" for e in data["log"]["invoices"])
    assert ClientBillingLogEntry.objects.filter(
        action="wagtail_client_billing.client_exported"
    ).exists()


# --- personal data: erasure ------------------------------------------------------------------


def _financial(invoice_pk):
    return (
        Invoice.objects.filter(pk=invoice_pk)
        .values(
            "number",
            "amount",
            "currency",
            "status",
            "paid_at",
            "created_at",
            "tax_name",
            "payment_intent_id",
            "site_id",
            "account_id",
            "description",
        )
        .get()
    )


def test_erasure_removes_personal_data_and_keeps_the_financial_records(world):
    invoice = _paid_with_everything(world)
    Invoice.objects.filter(client=world["shared"]).exclude(pk=invoice.pk).update(status="expired")
    shared = world["shared"]
    shared.address, shared.notes, shared.extra_emails, shared.tax_number = (
        "1 Road",
        "VIP",
        "cc@shared.example",
        "GB123",
    )
    shared.save()
    before = _financial(invoice.pk)
    payments = list(
        Payment.objects.filter(invoice=invoice).values(
            "amount", "currency", "payment_intent_id", "paid_at"
        )
    )
    http = logged_in(make_user("boss", superuser=True))

    page = http.get(url("erase", shared.pk))
    assert "Yes, erase personal data" in page.content.decode()
    assert http.post(url("erase", shared.pk)).status_code == 302

    shared.refresh_from_db()
    assert shared.erased_at is not None
    assert (shared.name, shared.address, shared.notes, shared.extra_emails, shared.tax_number) == (
        "[erased]",
        "",
        "",
        "",
        "",
    )
    assert shared.email.endswith("@erased.invalid")
    invoice.refresh_from_db()
    assert invoice.email == shared.email and invoice.note == ""
    assert _financial(invoice.pk) == before
    assert (
        list(
            Payment.objects.filter(invoice=invoice).values(
                "amount", "currency", "payment_intent_id", "paid_at"
            )
        )
        == payments
    )
    assert Refund.objects.get(invoice=invoice).note == ""
    payload = WebhookEvent.objects.get(event_id="evt_personal").payload
    assert payload["data"]["object"]["customer_details"] is None
    assert payload["data"]["object"]["amount_total"] == 1000
    created = ClientBillingLogEntry.objects.get(
        action="wagtail_client_billing.created", object_id=str(invoice.pk)
    )
    assert created.data["email"] is None and created.data["amount"] == 1000
    assert ClientBillingLogEntry.objects.filter(
        action="wagtail_client_billing.client_erased"
    ).exists()
    everything = json.dumps(
        domain.export(shared, user=make_user("auditor", superuser=True)), default=str
    )
    assert "Bob" not in everything and "shared@example.com" not in everything


def test_erasure_waits_for_open_requests_and_the_command_needs_yes(world):
    shared = world["shared"]
    assert "pending" in domain.erasure_refusal(shared)
    with pytest.raises(CommandError, match="pending"):
        call_command("client_billing_erase_client", str(shared.pk), "--yes")
    Invoice.objects.filter(client=shared).update(status="expired")
    call_command("client_billing_erase_client", "SHARED@example.com")
    shared.refresh_from_db()
    assert shared.erased_at is None  # without --yes, nothing
    call_command("client_billing_erase_client", "shared@example.com", "--yes")
    shared.refresh_from_db()
    assert shared.erased_at is not None
    with pytest.raises(CommandError, match="No client"):
        call_command("client_billing_erase_client", "nobody@example.com", "--yes")


def test_a_limited_editor_cannot_erase_a_client_billed_on_sites_they_cannot_see(world, limit_to_a):
    Invoice.objects.update(status="expired")
    http = logged_in(editor_with_every_permission())
    response = http.post(url("erase", world["shared"].pk))
    assert response.status_code == 200
    assert "sites you cannot see" in response.content.decode()
    world["shared"].refresh_from_db()
    assert world["shared"].erased_at is None


def test_an_invoices_page_links_to_its_client(world):
    http = logged_in(make_user("boss", superuser=True))
    page = http.get(reverse("wagtail_client_billing_invoices:inspect", args=[world["on_a"].pk]))
    assert url("inspect", world["shared"].pk) in page.content.decode()


def test_a_failed_renewal_notice_to_the_client_copies_their_extra_addresses(world):
    from wagtail_client_billing import emails
    from wagtail_client_billing.billing.subscriptions import RENEWAL_FAILED_CLIENT

    shared = world["shared"]
    shared.extra_emails = "books@shared.example"
    shared.save()
    invoice = Invoice.objects.get(pk=world["on_a"].pk)
    extra = {
        "renewal_amount": "$10.00",
        "hosted_invoice_url": "https://invoice.stripe.example/i/1",
        "attempt": 1,
        "next_attempt": None,
    }
    assert emails.send_notice(invoice, RENEWAL_FAILED_CLIENT, [invoice.email], **extra) is None
    assert mail.outbox[-1].cc == ["books@shared.example"]
    assert (
        emails.send_notice(invoice, RENEWAL_FAILED_CLIENT, ["agency@example.com"], **extra) is None
    )
    assert mail.outbox[-1].cc == []  # a notice to the agency copies nobody


def test_the_client_chooser_refuses_nonsense_ids(world):
    http = logged_in(make_user("boss", superuser=True))
    name = "wagtailsnippetchoosers_wagtail_client_billing_client:chosen"
    for pk in ("abc", "0", "99999999999999999999"):
        path = reverse(name, args=[1]).replace("/1/", f"/{pk}/")
        assert http.get(path).status_code == 404, pk
