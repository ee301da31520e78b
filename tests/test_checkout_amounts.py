"""What a paying Checkout Session charged, compared with the invoice before it is Paid.

A session's ``currency`` and ``amount_subtotal`` (its line items before discounts and
tax) should be the invoice's; when they are not (a ``client_billing_checkout_params``
hook changed the price), the invoice is still Paid, because money received wins, and an
editor sees it flagged. Stripe's ``total_details`` and ``amount_total`` are recorded.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import stripe
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from wagtail import hooks as wagtail_hooks

from tests.utils import make_emulated_invoice, make_invoice, make_user
from tests.webhook_helpers import async_result, completed, post_event, session_event, session_obj
from wagtail_client_billing import gateway
from wagtail_client_billing.billing import checkout
from wagtail_client_billing.hooks import CHECKOUT_PARAMS
from wagtail_client_billing.models import ClientBillingLogEntry, Invoice

pytestmark = pytest.mark.django_db

MISMATCH = "wagtail_client_billing.amount_mismatch"


@pytest.fixture
def invoice(connected_site, account):
    return make_invoice(
        connected_site, account, amount=12500, currency="USD", checkout_session_id="cs_test_a1pay"
    )


def refreshed(invoice) -> Invoice:
    invoice.refresh_from_db()
    return invoice


def history(invoice) -> list[ClientBillingLogEntry]:
    return list(
        ClientBillingLogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Invoice), object_id=str(invoice.pk)
        ).order_by("timestamp", "pk")
    )


def test_a_paid_session_records_its_tax_discount_shipping_and_total(client, invoice):
    event = completed(
        invoice,
        "cs_test_a1pay",
        amount_subtotal=12500,
        total_details={"amount_discount": 2500, "amount_tax": 2000, "amount_shipping": 500},
        amount_total=12500,
    )

    post_event(client, event)

    invoice = refreshed(invoice)
    assert invoice.status == "paid"
    assert not invoice.amount_mismatch
    assert (
        invoice.checkout_currency,
        invoice.checkout_amount_subtotal,
        invoice.checkout_amount_discount,
        invoice.checkout_amount_tax,
        invoice.checkout_amount_shipping,
        invoice.checkout_amount_total,
    ) == ("USD", 12500, 2500, 2000, 500, 12500)
    assert MISMATCH not in [entry.action for entry in history(invoice)]


@pytest.mark.parametrize(
    "fields",
    [
        {"amount_subtotal": 9900, "amount_total": 9900},
        {"currency": "eur"},
    ],
    ids=["another-subtotal", "another-currency"],
)
def test_a_session_for_another_amount_still_pays_and_is_flagged_for_the_editor(
    client, invoice, fields
):
    post_event(client, completed(invoice, "cs_test_a1pay", **fields))

    invoice = refreshed(invoice)
    assert invoice.status == "paid"  # money received wins
    assert invoice.amount_mismatch
    entries = [entry for entry in history(invoice) if entry.action == MISMATCH]
    assert len(entries) == 1
    message = entries[0].message
    assert "$125.00" in message and "Check the payment in Stripe" in message


def test_the_flag_shows_in_the_listing_on_the_inspect_page_and_in_the_history(client, invoice):
    post_event(client, completed(invoice, "cs_test_a1pay", amount_subtotal=9900, amount_total=9900))
    client.force_login(make_user("root", superuser=True))
    ns = "wagtail_client_billing_invoices"

    listing = client.get(reverse(f"{ns}:list")).content.decode()
    inspect = client.get(reverse(f"{ns}:inspect", args=[invoice.pk])).content.decode()
    history_page = client.get(reverse(f"{ns}:history", args=[invoice.pk])).content.decode()

    assert "Amount differs" in listing
    assert "Amount differs" in inspect
    assert "$99.00" in inspect and "Total paid" in inspect
    assert "Paid amount differs" in history_page
    assert "$99.00" in history_page and "$125.00" in history_page


def test_the_figures_are_recorded_once_by_the_first_paid_session(client, invoice):
    """A redelivery, a return and reconciliation all report the same session: one record,
    one History entry."""
    first = completed(invoice, "cs_test_a1pay", amount_subtotal=9900, amount_total=9900)
    post_event(client, first)
    again = completed(invoice, "cs_test_a1pay", amount_subtotal=9900, amount_total=9900)

    post_event(client, again)

    assert [entry.action for entry in history(invoice)].count(MISMATCH) == 1
    assert refreshed(invoice).checkout_amount_total == 9900


def test_a_settled_bank_debit_is_compared_too(client, invoice):
    processing = session_obj(
        invoice,
        "cs_test_a1pay",
        status="complete",
        payment_intent="pi_test_1",
        amount_subtotal=9900,
    )
    post_event(client, session_event("checkout.session.completed", invoice, processing))
    assert refreshed(invoice).status == "processing"
    settled = async_result(invoice, "cs_test_a1pay")
    settled["data"]["object"]["amount_subtotal"] = 9900

    post_event(client, settled)

    invoice = refreshed(invoice)
    assert (invoice.status, invoice.amount_mismatch, invoice.checkout_amount_subtotal) == (
        "paid",
        True,
        9900,
    )


def test_a_hook_that_changes_the_price_is_caught_on_the_clients_return(client, stripe_emulator):
    """Through the real ``stripe`` client: the session Stripe made and the client paid is
    read back on the return from Checkout, and its subtotal is not the invoice's."""
    stripe_emulator.webhooks_enabled = False
    invoice = make_emulated_invoice(stripe_emulator, "amounts.example", amount=12500)

    def discount_price(invoice, params):
        params["line_items"][0]["price_data"]["unit_amount"] = 10000

    with wagtail_hooks.register_temporarily(CHECKOUT_PARAMS, discount_price):
        client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    stripe_emulator.pay(invoice.checkout_session_id)
    back = urlsplit(checkout.site_url(invoice, "return")).path
    client.get(f"{back}?session_id={invoice.checkout_session_id}")

    invoice = refreshed(invoice)
    assert (invoice.status, invoice.status_source) == ("paid", "return")
    assert invoice.amount_mismatch
    assert (invoice.checkout_currency, invoice.checkout_amount_subtotal) == ("USD", 10000)
    assert invoice.checkout_amount_total == 10000


def test_the_parser_reads_the_same_figures_from_an_api_answer_and_an_event():
    obj = {
        "id": "cs_test_a1x",
        "object": "checkout.session",
        "currency": "usd",
        "amount_subtotal": 12500,
        "amount_total": 11000,
        "total_details": {"amount_discount": 1500, "amount_tax": 0, "amount_shipping": None},
        "expires_at": 1_900_000_000,
    }
    from_api = gateway.session_from_stripe(stripe.StripeObject.construct_from(obj, "sk_test_x"))
    from_event = gateway.session_from_stripe(obj)

    assert from_api == from_event
    assert (from_event.currency, from_event.amount_discount, from_event.amount_shipping) == (
        "USD",
        1500,
        None,
    )


def test_a_localised_session_is_compared_in_the_currency_it_was_created_in():
    """Adaptive Pricing before API version 2025-03-31 put the client's currency in
    ``currency`` and the created one in ``currency_conversion``."""
    session = gateway.session_from_stripe(
        {
            "id": "cs_test_a1x",
            "currency": "eur",
            "amount_subtotal": 11600,
            "amount_total": 11600,
            "currency_conversion": {
                "source_currency": "usd",
                "amount_subtotal": 12500,
                "amount_total": 12500,
                "fx_rate": "0.928",
            },
            "total_details": {"amount_discount": 0, "amount_tax": 0, "amount_shipping": 0},
        }
    )

    assert (session.currency, session.amount_subtotal, session.amount_total) == (
        "USD",
        12500,
        12500,
    )
    assert session.amount_tax is None
