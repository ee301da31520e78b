"""The client's language: which one an invoice speaks, and everything the client reads in it
(the emails, the client's pages, Stripe Checkout), amounts and dates formatted for it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import stripe
import time_machine
from django.core import mail
from django.test import TestCase
from wagtail.models import Locale, Page, Site

from tests.emulator_helpers import error_of, make_client, session_params
from tests.utils import make_emulated_invoice, make_invoice, make_site, make_user
from wagtail_client_billing import emails, languages, lifecycle, tasks
from wagtail_client_billing.models import Client, ClientBillingSettings, Invoice, RenewalFailure
from wagtail_client_billing.stripe_api import checkout_locale

pytestmark = pytest.mark.django_db

#: The project offers the five shipped languages besides English (and Japanese, which the
#: app ships no catalogue for, and Hebrew, which Stripe Checkout does not have).
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("nl", "Nederlands"),
    ("pt-br", "Português (Brasil)"),
    ("ja", "日本語"),
    ("he", "עברית"),
]

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EXPIRES = datetime(2026, 12, 3, 14, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _languages(settings):
    settings.LANGUAGES = LANGUAGES


def german_site(hostname="kunde.example"):
    """A site whose root page is in German (Wagtail's i18n)."""
    german = Locale.objects.get_or_create(language_code="de")[0]
    site = make_site(hostname, title="Kunde")
    Page.objects.filter(pk=site.root_page_id).update(locale=german)
    return Site.objects.get(pk=site.pk)


def html_of(message) -> str:
    (html, mimetype) = message.alternatives[0]
    assert mimetype == "text/html"
    return html


# --- which language -----------------------------------------------------------------------


def test_the_language_chosen_on_the_request_wins(account):
    invoice = make_invoice(german_site(), account, language="fr")
    assert languages.invoice_language(invoice) == "fr"


def test_without_a_choice_the_client_language_then_the_site_then_the_project(site, account):
    assert languages.default_language(german_site("a.example"), "nl") == "nl"
    assert languages.default_language(german_site("b.example"), None) == "de"
    assert languages.default_language(german_site("c.example"), "xx") == "de"
    assert languages.default_language(site, None) == "en"  # the root page's locale, en
    invoice = make_invoice(german_site("d.example"), account)
    assert languages.invoice_language(invoice) == "de"


def test_a_request_left_automatic_follows_its_clients_language(account):
    client = Client.objects.create(name="Nora", email="nora@example.nl", language="nl")
    invoice = make_invoice(german_site(), account, email=client.email)
    invoice.client = client
    invoice.save(update_fields=["client"])
    assert languages.invoice_language(invoice) == "nl"
    client.language = ""
    client.save()
    invoice.refresh_from_db()
    assert languages.invoice_language(invoice) == "de"  # then the site's


def test_a_language_the_project_no_longer_offers_falls_back_to_the_default(account, settings):
    invoice = make_invoice(german_site(), account, language="it")
    assert languages.invoice_language(invoice) == "de"
    settings.LANGUAGES = [("en", "English")]
    assert languages.invoice_language(invoice) == "en-us"  # LANGUAGE_CODE, not the site's


def test_codes_are_matched_as_the_project_spells_them():
    assert languages.available_language("pt_BR") == "pt-br"
    assert languages.available_language("PT-BR") == "pt-br"
    assert languages.available_language("de-AT") == "de"
    assert languages.available_language("zz") is None
    assert languages.available_language("") is None


@pytest.mark.parametrize(
    ("django", "stripe_locale"),
    [
        ("de", "de"),
        ("de-at", "de"),
        ("pt-br", "pt-BR"),
        ("pt_BR", "pt-BR"),
        ("pt", "pt"),
        ("fr-ca", "fr-CA"),
        ("en-gb", "en-GB"),
        ("en-us", "en"),
        ("es-mx", "es-419"),
        ("zh-hans", "zh"),
        ("zh-hant", "zh-TW"),
        ("nb", "nb"),
        ("he", "auto"),
        ("", "auto"),
        (None, "auto"),
    ],
)
def test_django_codes_map_to_the_locales_checkout_accepts(django, stripe_locale):
    assert checkout_locale(django) == stripe_locale


# --- a EUR invoice in German ----------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_a_german_eur_invoice_email_is_german_with_german_amounts_and_dates(account):
    site = make_site("agentur.example", title="Agentur")  # an English site
    site.site_name = "Agentur Muster"
    site.save()
    invoice = make_invoice(
        site,
        account,
        language="de",
        currency="EUR",
        amount=123456,
        expires_at=EXPIRES,
        due_date=date(2026, 12, 2),
    )

    (result,) = emails.send_invoice_emails([Invoice.objects.get(pk=invoice.pk)])

    assert result.sent
    (message,) = mail.outbox
    # A subject is one plain line: its no-break spaces are spaces.
    assert message.subject == f"Rechnung {invoice.number} von Agentur Muster: 1.234,56 €"
    for body in (message.body, html_of(message)):
        assert "Agentur Muster hat Ihnen eine Rechnung gesendet." in body
        assert "1.234,56\xa0€" in body
        assert "3. Dezember 2026, 14:30 UTC" in body  # the link's expiry
        assert "2. Dezember 2026" in body  # the due date
        assert "einmalige Zahlung" in body
        assert "€1,234.56" not in body and "December" not in body
    assert 'lang="de"' in html_of(message)
    assert "1.234,56\xa0€ sicher bezahlen" in html_of(message)


def test_the_client_page_is_in_the_invoices_language_whatever_the_browser_asks(client, account):
    invoice = make_invoice(make_site("agentur.example"), account, language="de", currency="EUR")
    lifecycle.mark_paid(
        invoice, source=lifecycle.Source.WEBHOOK, paid_at=datetime(2026, 3, 14, 10, tzinfo=UTC)
    )

    response = client.get(urlsplit(invoice.get_pay_url()).path, HTTP_ACCEPT_LANGUAGE="en-US,en")

    content = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Language"] == "de"
    assert '<html lang="de">' in content
    assert "Diese Rechnung wurde bereits bezahlt" in content
    assert "Sie wurde am 14. März 2026 bezahlt. Vielen Dank!" in content
    assert "125,00\xa0€" in content
    assert "already been paid" not in content


def test_an_expired_page_in_brazilian_portuguese(client, account):
    invoice = make_invoice(make_site("cliente.example"), account, language="pt-br")
    lifecycle.expire(invoice, source=lifecycle.Source.SWEEP)

    response = client.get(urlsplit(invoice.get_pay_url()).path, HTTP_ACCEPT_LANGUAGE="de")

    assert response.status_code == 410
    assert response["Content-Language"] == "pt-br"
    assert "Este link de pagamento expirou" in response.content.decode()


def test_german_checkout_session_has_germans_locale_and_lines(client, stripe_emulator, settings):
    invoice = make_emulated_invoice(
        stripe_emulator, "kunde.example", language="de", currency="EUR", amount=123456
    )

    response = client.get(urlsplit(invoice.get_pay_url()).path)

    assert response.status_code == 303
    invoice.refresh_from_db()
    stripe_client = make_client(stripe_emulator, key="sk_test_suite")
    session = stripe_client.v1.checkout.sessions.retrieve(
        invoice.checkout_session_id, options={"stripe_account": invoice.account.stripe_id}
    )
    assert session.locale == "de"
    items = stripe_client.v1.checkout.sessions.line_items.list(
        invoice.checkout_session_id, options={"stripe_account": invoice.account.stripe_id}
    )
    (item,) = items.data
    assert item.amount_total == 123456 and item.currency == "eur"


def test_checkout_of_a_brazilian_invoice_is_pt_br_and_an_unknown_language_is_auto(
    client, stripe_emulator
):
    brazil = make_emulated_invoice(stripe_emulator, "cliente.example", language="pt-br")
    hebrew = make_emulated_invoice(stripe_emulator, "lakoach.example", language="he")

    for invoice, expected in ((brazil, "pt-BR"), (hebrew, "auto")):
        assert client.get(urlsplit(invoice.get_pay_url()).path).status_code == 303
        invoice.refresh_from_db()
        session = make_client(stripe_emulator, key="sk_test_suite").v1.checkout.sessions.retrieve(
            invoice.checkout_session_id, options={"stripe_account": invoice.account.stripe_id}
        )
        assert session.locale == expected


@time_machine.travel(NOW, tick=False)
def test_a_language_without_a_catalogue_falls_back_to_english_words_in_its_formats(account):
    """Hebrew: the project offers it, the app has no catalogue for it and Checkout no
    locale. The email still goes, in the English text with Hebrew numbers and dates."""
    invoice = make_invoice(
        make_site("lakoach.example"), account, language="he", currency="EUR", amount=123456,
        expires_at=EXPIRES,
    )  # fmt: skip

    (result,) = emails.send_invoice_emails([Invoice.objects.get(pk=invoice.pk)])

    assert result.sent
    (message,) = mail.outbox
    assert "has sent you an invoice" in message.body
    assert "דצמבר" in message.body  # December, as Babel writes it in Hebrew
    assert 'lang="he"' in html_of(message)


@pytest.mark.parametrize(
    "locale", ["pt_BR", "german", "de-DE", "xx"], ids=["underscore", "word", "region", "unknown"]
)
def test_the_emulator_refuses_a_locale_stripe_does_not_have(stripe_emulator, locale):
    """Like Stripe: ``locale`` is one of its listed values (an invalid_request_error)."""
    from tests.utils import make_emulated_account

    account = make_emulated_account(stripe_emulator, "emulated.example")
    client = make_client(stripe_emulator, key="sk_test_suite")

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.checkout.sessions.create(
            params=session_params(locale=locale), options={"stripe_account": account.stripe_id}
        )

    assert error_of(caught.value) == ("invalid_request_error", None, "locale")
    ok = client.v1.checkout.sessions.create(
        params=session_params(locale="pt-BR"), options={"stripe_account": account.stripe_id}
    )
    assert ok.locale == "pt-BR"


# --- the other messages to the client ----------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_a_receipt_is_in_the_invoices_language(account):
    invoice = make_invoice(make_site("agentur.example"), account, language="fr", currency="EUR")

    result = emails.send_receipt(
        invoice, emails.RECEIPT, amount=123456, currency="EUR", at=EXPIRES, reference="pi_1"
    )

    assert result.sent
    (message,) = mail.outbox
    assert message.subject.startswith("Reçu : 1 234,56 € payés à")
    assert "3 décembre 2026" in message.body


def test_a_failed_renewal_tells_the_client_in_their_language_and_the_agency_in_its_own(
    account,
):
    site = make_site("agency.example")
    ClientBillingSettings.objects.update_or_create(
        site=site, defaults={"billing_contacts": "boss@agency.example"}
    )
    invoice = make_invoice(
        site, account, language="nl", currency="EUR", amount=4900, billing_type="monthly"
    )
    failure = RenewalFailure.objects.create(
        invoice=invoice,
        stripe_invoice_id="in_failed",
        attempt_count=1,
        amount=4900,
        currency="EUR",
        hosted_invoice_url="https://invoice.stripe.example/i/in_failed",
        failed_at=NOW,
        next_attempt_at=NOW + timedelta(days=3),
    )

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.send_renewal_failure_notices(failure.pk, 0) == "sent"

    to_client = next(m for m in mail.outbox if m.to == [invoice.email])
    to_agency = next(m for m in mail.outbox if m.to == ["boss@agency.example"])
    assert to_client.subject == "Uw betaling aan agency.example is niet gelukt"
    assert "€\xa049,00" in to_client.body and "4 december 2026" in to_client.body
    assert "€49.00" in to_agency.body and "December 4, 2026" in to_agency.body


# --- the form -------------------------------------------------------------------------------


def test_the_request_form_offers_the_projects_languages_and_keeps_the_choice(
    client, connected_site
):
    from tests.test_admin_invoices import form_data, url

    client.force_login(make_user("boss", superuser=True))

    page = client.get(url("add")).content.decode()
    assert 'name="language"' in page
    assert '<option value="pt-br">Português (Brasil)</option>' in page

    response = client.post(url("add"), form_data(connected_site, language="klingon"))
    assert response.status_code == 200
    assert "language" in response.context["form"].errors
    assert not Invoice.objects.exists()

    response = client.post(url("add"), form_data(connected_site, language="pt-br"))
    assert response.status_code == 302
    invoice = Invoice.objects.get()
    assert invoice.language == "pt-br"
    emails.send_invoice_emails([invoice])
    (message,) = mail.outbox
    assert message.subject == f"Fatura {invoice.number} de client-a.example: US$ 125,50"


def test_a_request_left_automatic_follows_the_site(client, connected_site):
    from tests.test_admin_invoices import form_data, url

    client.force_login(make_user("boss", superuser=True))
    german = Locale.objects.get_or_create(language_code="de")[0]
    Page.objects.filter(pk=connected_site.root_page_id).update(locale=german)

    assert client.post(url("add"), form_data(connected_site, language="")).status_code == 302

    invoice = Invoice.objects.get()
    assert invoice.language == ""
    assert languages.invoice_language(invoice) == "de"
    assert invoice.copy_for_new_request().language == ""


def test_the_inspect_view_says_which_language_the_client_reads(client, connected_site, account):
    from tests.test_admin_invoices import url

    client.force_login(make_user("boss", superuser=True))
    chosen = make_invoice(connected_site, account, language="nl")
    automatic = make_invoice(connected_site, account)

    assert "<dd>Nederlands</dd>" in client.get(url("inspect", chosen.pk)).content.decode()
    page = client.get(url("inspect", automatic.pk)).content.decode()
    assert "<dd>English (automatic)</dd>" in page
