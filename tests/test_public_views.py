"""What a client sees at the payment link, the Checkout return and cancel, and the JSON status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.utils import timezone
from wagtail.models import Locale, Page

from tests.utils import make_invoice
from wagtail_client_billing import lifecycle
from wagtail_client_billing.models import ClientBillingSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(connected_site, account):
    return make_invoice(connected_site, account, email="secret-client@example.com")


def path(invoice, name="pay"):
    if name == "pay":
        return urlsplit(invoice.get_pay_url()).path
    if name == "json":
        return f"/billing/invoices/{invoice.token}.json"
    return f"/billing/{name}/{invoice.token}/"


def assert_private(response, invoice):
    """Nothing a client's browser, a proxy or a search engine should keep or leak."""
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"
    content = response.content.decode()
    assert invoice.email not in content
    assert invoice.account.stripe_id not in content


def test_paid_invoice_says_already_paid_with_the_date(client, invoice):
    paid_at = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
    lifecycle.mark_paid(invoice, source=lifecycle.Source.WEBHOOK, paid_at=paid_at)

    response = client.get(path(invoice))

    assert response.status_code == 200
    content = response.content.decode()
    assert "already been paid" in content
    assert "March 14, 2025" in content
    assert "$125.00" in content
    assert_private(response, invoice)


def test_processing_invoice_says_the_payment_is_being_processed(client, invoice):
    lifecycle.mark_processing(invoice, source=lifecycle.Source.WEBHOOK)

    response = client.get(path(invoice))

    assert response.status_code == 200
    assert "being processed" in response.content.decode()
    assert_private(response, invoice)


def test_expired_invoice_says_ask_the_reply_to_for_a_new_one(client, invoice, connected_site):
    ClientBillingSettings.objects.filter(site=connected_site).update(
        reply_to="studio@agency.example", from_email="Acme Studio <billing@agency.example>"
    )
    lifecycle.expire(invoice, source=lifecycle.Source.SWEEP)

    response = client.get(path(invoice))

    assert response.status_code == 410
    content = response.content.decode()
    assert "This payment link has expired" in content
    assert "studio@agency.example" in content
    assert_private(response, invoice)


def test_expired_invoice_falls_back_to_the_from_address(client, invoice, connected_site):
    ClientBillingSettings.objects.filter(site=connected_site).update(
        from_email="Acme Studio <billing@agency.example>"
    )
    lifecycle.expire(invoice, source=lifecycle.Source.SWEEP)

    content = client.get(path(invoice)).content.decode()

    assert "Acme Studio" in content
    assert 'href="mailto:billing@agency.example"' in content


def test_pending_invoice_past_its_expiry_is_expired_before_the_sweep(client, invoice):
    with time_machine.travel(invoice.expires_at + timedelta(seconds=1)):
        response = client.get(path(invoice))

    assert response.status_code == 410
    assert "This payment link has expired" in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.checkout_attempt == 0  # Stripe was never asked


def test_deleted_invoice_says_it_was_withdrawn(client, invoice):
    lifecycle.delete(invoice, user=None)

    response = client.get(path(invoice))

    assert response.status_code == 410
    assert "This billing request was withdrawn" in response.content.decode()
    assert_private(response, invoice)


def test_unknown_token_is_404(client, db):
    assert client.get("/billing/pay/not-a-real-token/").status_code == 404
    assert client.get("/billing/pay/" + "x" * 200 + "/").status_code == 404
    assert client.get("/billing/invoices/not-a-real-token.json").status_code == 404
    assert client.get("/billing/return/not-a-real-token/").status_code == 404
    assert client.get("/billing/cancel/not-a-real-token/").status_code == 404


def test_deauthorized_account_shows_a_page_not_a_stripe_error(client, invoice, account):
    account.deauthorized_at = timezone.now()
    account.save()

    response = client.get(path(invoice))

    assert response.status_code == 503
    assert "cannot be paid online" in response.content.decode()
    assert "Retry-After" not in response


def test_pages_are_in_the_sites_language(client, invoice, connected_site):
    german = Locale.objects.create(language_code="de")
    Page.objects.filter(pk=connected_site.root_page_id).update(locale=german)
    lifecycle.delete(invoice, user=None)

    response = client.get(path(invoice), HTTP_ACCEPT_LANGUAGE="ja")

    assert response["Content-Language"] == "de"
    assert '<html lang="de">' in response.content.decode()


def test_cancel_goes_to_the_invoices_cancel_url(client, invoice):
    response = client.get(path(invoice, "cancel"))

    assert response.status_code == 303
    assert response["Location"] == "https://client.example/cancelled"


def test_return_without_a_session_goes_to_the_success_url(client, invoice):
    response = client.get(path(invoice, "return"))

    assert response.status_code == 303
    assert response["Location"] == "https://client.example/thanks"
    invoice.refresh_from_db()
    assert invoice.status == "pending"


def test_pay_link_only_answers_get(client, invoice):
    assert client.post(path(invoice)).status_code == 405


# --- JSON status ---------------------------------------------------------------------------


def test_json_status_for_headless_front_ends(client, invoice):
    response = client.get(path(invoice, "json"))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    data = response.json()
    assert data == {
        "number": invoice.number,
        "status": "pending",
        "amount": "125.00",
        "amount_minor": 12500,
        "total_minor": 12500,
        "tax_minor": 0,
        "currency": "USD",
        "description": "Website build",
        "billing_type": "one_time",
        "expires_at": invoice.expires_at.isoformat(),
        "due_date": None,
        "overdue": False,
        "paid_at": None,
        "payable": True,
        "pay_url": invoice.get_pay_url(),
        "subscription": None,
    }
    assert "secret-client@example.com" not in response.content.decode()
    assert invoice.account.stripe_id not in response.content.decode()


def test_json_status_is_the_effective_one_with_zero_and_three_decimal_amounts(
    client, connected_site, account
):
    yen = make_invoice(connected_site, account, currency="JPY", amount=5000)
    dinar = make_invoice(connected_site, account, currency="KWD", amount=12340)

    assert client.get(path(yen, "json")).json()["amount"] == "5000"
    assert client.get(path(dinar, "json")).json()["amount"] == "12.340"

    with time_machine.travel(yen.expires_at + timedelta(seconds=1)):
        data = client.get(path(yen, "json")).json()
    assert (data["status"], data["payable"]) == ("expired", False)


def test_json_status_of_a_paid_invoice_has_its_paid_time(client, invoice):
    paid_at = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
    lifecycle.mark_paid(invoice, source=lifecycle.Source.RETURN, paid_at=paid_at)

    data = client.get(path(invoice, "json")).json()

    assert (data["status"], data["paid_at"]) == ("paid", "2025-03-14T10:00:00+00:00")


def test_site_can_wrap_the_pages_in_its_own_layout(client, invoice, settings):
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "base.html": (
                                "<title>{% block title %}{% endblock %}</title>"
                                "<nav>Acme site nav</nav>{% block content %}{% endblock %}"
                            ),
                            "wagtail_client_billing/public/base.html": '{% extends "base.html" %}',
                        },
                    ),
                    "django.template.loaders.app_directories.Loader",
                ],
            },
        }
    ]
    lifecycle.delete(invoice, user=None)

    content = client.get(path(invoice)).content.decode()

    assert "Acme site nav" in content
    assert "This billing request was withdrawn" in content
