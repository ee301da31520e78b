"""Hostile input to the admin forms and the payment link, and the secrets the app holds.

Forms: what tests/test_admin_invoices.py does not already refuse (negative, zero and
exponent amounts in other spellings, digits from other scripts, currencies outside the
list, URL tricks beyond ``javascript:``, CR/LF in email fields, oversized text) is
refused here with a message on the field. Tokens: a guessed, truncated or extended
token is a 404 that says nothing about whether a near miss was close.

Secrets: the SMTP password is a Fernet token in the database (read with a raw cursor),
and appears in no page, form, export, log line or error report, through a full send
and a failure; Stripe keys live only in settings (the whole database is searched for
``sk_test_`` after a full payment flow); and the SMTP key rotation command re-encrypts
with the new key, reads with the old one during the rotation, after which the old key
alone reads nothing.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.db.models.signals import pre_save
from django.test import Client
from django.urls import reverse

from tests.utils import SMTPServer, make_invoice, make_user, use_custom_smtp
from wagtail_client_billing import emails, gateway, tasks
from wagtail_client_billing.conf import derive_key
from wagtail_client_billing.models import ClientBillingSettings, Invoice

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

PASSWORD = "Pw-9f3c1e7a-never-show-me"
ADD = "wagtail_client_billing_invoices:add"


@pytest.fixture
def admin(client, db):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return client


def invoice_form(site, **changes) -> dict:
    data = {
        "site": str(site.pk),
        "email": "client@example.com",
        "currency": "USD",
        "amount": "125.50",
        "billing_type": "one_time",
        "description": "Website build",
        "success_url": "https://client.example/thanks",
        "cancel_url": "https://client.example/cancelled",
        "test_mode": "on",
    }
    data.update(changes)
    return data


# --- form abuse ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": "-5"}, "amount"),
        ({"amount": "-0.50"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": "000"}, "amount"),
        ({"amount": "nan"}, "amount"),
        ({"amount": "sNaN"}, "amount"),
        ({"amount": "-Infinity"}, "amount"),
        ({"amount": "1E2"}, "amount"),
        ({"amount": "1e-2"}, "amount"),
        ({"amount": "+5"}, "amount"),
        ({"amount": "5."}, "amount"),
        ({"amount": ".5"}, "amount"),
        ({"amount": "1_000"}, "amount"),
        ({"amount": "0x10"}, "amount"),
        ({"amount": "1" * 40}, "amount"),
        ({"amount": "\u0661\u0662\u0663"}, "amount"),  # Arabic-Indic digits
        ({"amount": "\uff11\uff12\uff13"}, "amount"),  # full-width digits
        ({"currency": "usd"}, "currency"),
        ({"currency": "BTC"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"currency": "USD\n"}, "currency"),
        ({"currency": "CAD"}, "currency"),  # a real currency, but not in CURRENCIES
        ({"success_url": "JAVASCRIPT:alert(1)"}, "success_url"),
        ({"success_url": "  javascript:alert(1)"}, "success_url"),
        ({"success_url": "java\tscript:alert(1)"}, "success_url"),
        ({"success_url": "data:text/html;base64,PHNjcmlwdD4="}, "success_url"),
        ({"success_url": "https:evil.example"}, "success_url"),
        ({"success_url": "http:/\\evil.example"}, "success_url"),
        ({"success_url": "\\\\evil.example/x"}, "success_url"),
        ({"success_url": "https://client.example/\r\nSet-Cookie: x=1"}, "success_url"),
        ({"cancel_url": "data:text/html,<script>alert(1)</script>"}, "cancel_url"),
        ({"cancel_url": "//evil.example/cancelled"}, "cancel_url"),
        ({"cancel_url": "vbscript:msgbox(1)"}, "cancel_url"),
        ({"cancel_url": "https://" + "a" * 2000 + ".example/"}, "cancel_url"),
        ({"email": "client@example.com\r\nBcc: victim@evil.example"}, "email"),
        ({"email": "client@example.com\nCc: x@evil.example"}, "email"),
        ({"email": "client@example.com, other@evil.example"}, "email"),
        ({"email": "Client <client@example.com>"}, "email"),
        ({"email": "client@exa\u2028mple.com"}, "email"),
        ({"email": "a" * 250 + "@example.com"}, "email"),
        ({"description": "x" * 5001}, "description"),
        ({"billing_type": "one_time\r\n"}, "billing_type"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_hostile_billing_requests_are_refused_with_a_field_message(
    admin, connected_site, changes, field
):
    response = admin.post(reverse(ADD), invoice_form(connected_site, **changes))

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, (changes, dict(errors))
    assert all(str(message).strip() for message in errors[field])
    assert not Invoice.objects.exists()


def test_the_edit_form_refuses_an_oversized_description(admin, connected_site, account):
    invoice = make_invoice(connected_site, account)
    response = admin.post(
        reverse("wagtail_client_billing_invoices:edit", args=[invoice.pk]),
        {"description": "x" * 501, "note": ""},
    )
    assert response.status_code == 200
    assert "description" in response.context["form"].errors
    invoice.refresh_from_db()
    assert invoice.description == "Website build"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reply_to", "hello@acme.example\r\nBcc: victim@evil.example"),
        ("from_email", "Acme <billing@acme.example>\r\nBcc: victim@evil.example"),
        ("from_email", "billing@acme.example\nSubject: hi"),
        ("from_email", "billing@acme.example, other@evil.example"),
        ("from_email", "Acme\u2028Bcc: victim@evil.example <billing@acme.example>"),
        ("reply_to", "hello@acme\u2028.example"),
    ],
)
def test_header_injection_in_the_email_settings_is_refused(admin, site, field, value):
    config = ClientBillingSettings.for_site(site)
    data = {
        "use_custom_smtp": "on",
        "smtp_host": "smtp.acme.example",
        "smtp_port": "587",
        "smtp_username": "acme",
        "smtp_password": "",
        "smtp_security": "starttls",
        "smtp_timeout": "10",
        "from_email": "Acme <billing@acme.example>",
        "reply_to": "hello@acme.example",
        "default_currency": "",
        "payment_link_lifetime_hours": "",
        field: value,
    }
    url = reverse(
        "wagtailsettings:edit", args=["wagtail_client_billing", "clientbillingsettings", site.pk]
    )
    response = admin.post(url, data)
    assert response.status_code == 200, response.status_code
    assert field in response.context["form"].errors
    config.refresh_from_db()
    assert "\n" not in getattr(config, field)


# --- tokens -------------------------------------------------------------------------------------


def test_guessed_truncated_and_extended_tokens_are_the_same_plain_404(
    client, connected_site, account
):
    invoice = make_invoice(connected_site, account)
    token = invoice.token
    assert len(token) >= 43  # 32 random bytes, url-safe base64: 256 bits
    near_misses = [
        token[:-1],
        token[:16],
        token + "A",
        token.upper() if token.upper() != token else token.lower(),
        secrets.token_urlsafe(32),
        "0",
        "x" * 65,
        str(invoice.pk),
        invoice.number,
    ]
    bodies = set()
    for guess in near_misses:
        for path in (f"/billing/pay/{guess}/", f"/billing/invoices/{guess}.json"):
            response = client.get(path)
            assert response.status_code == 404, (guess, path)
            assert invoice.email.encode() not in response.content
            bodies.add(response.content)
    assert len(bodies) <= 2  # one page per view: a near miss tells nothing
    assert client.get(f"/billing/pay/{token}/").status_code != 404


# --- the SMTP password --------------------------------------------------------------------------


def raw_password_column(site) -> str:
    table = ClientBillingSettings._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT smtp_password_encrypted FROM {connection.ops.quote_name(table)} "  # noqa: S608
            "WHERE site_id = %s",
            [site.pk],
        )
        return cursor.fetchone()[0]


def test_smtp_password_is_a_fernet_token_at_rest(site, settings):
    use_custom_smtp(site, password=PASSWORD)

    raw = raw_password_column(site)

    assert PASSWORD not in raw
    assert PASSWORD.encode().hex() not in raw
    key = derive_key(settings.SECRET_KEY)
    assert Fernet(key).decrypt(raw.encode()).decode() == PASSWORD
    with pytest.raises(InvalidToken):  # another install's key reads nothing
        Fernet(Fernet.generate_key()).decrypt(raw.encode())
    assert (
        raw_password_column(site)
        != use_custom_smtp(site, password=PASSWORD).smtp_password_encrypted
    )


def test_smtp_password_appears_in_no_page_form_export_log_or_captured_output(
    admin, site, account, caplog, capsys
):
    """A full send that works, then one the server refuses, with every logger at DEBUG."""
    caplog.set_level(logging.DEBUG)
    with SMTPServer(login=("acme", PASSWORD)) as server:
        use_custom_smtp(site, server, smtp_username="acme", password=PASSWORD)
        good = make_invoice(site, account, email="ok@client.example")
        tasks.queue_invoice_email(good)
        assert tasks.send_invoice_email(good.pk, 0) == "sent"
        assert len(server.messages) == 1
        server.login = ("acme", "rotated-on-the-server")
        bad = make_invoice(site, account, email="bad@client.example")
        tasks.queue_invoice_email(bad)
        assert tasks.send_invoice_email(bad.pk, 0) == "failed"
        test_email = admin.post(
            reverse("wagtail_client_billing_email:send_test_email", args=[site.pk]), follow=True
        )

    listing = reverse("wagtail_client_billing_invoices:list")
    settings_url = reverse(
        "wagtailsettings:edit", args=["wagtail_client_billing", "clientbillingsettings", site.pk]
    )
    pages = {
        "settings": admin.get(settings_url),
        "listing": admin.get(listing),
        "inspect good": admin.get(
            reverse("wagtail_client_billing_invoices:inspect", args=[good.pk])
        ),
        "inspect bad": admin.get(reverse("wagtail_client_billing_invoices:inspect", args=[bad.pk])),
        "history": admin.get(reverse("wagtail_client_billing_invoices:history", args=[bad.pk])),
        "csv": admin.get(listing + "?export=csv"),
        "xlsx": admin.get(listing + "?export=xlsx"),
        "test email": test_email,
    }
    form = pages["settings"].context["form"]
    captured = capsys.readouterr()
    texts = {
        name: b"".join(r.streaming_content) if r.streaming else r.content
        for name, r in pages.items()
    }
    texts["form initial"] = repr(form.initial).encode()
    texts["log"] = caplog.text.encode()
    texts["stdout+stderr"] = (captured.out + captured.err).encode()
    texts["mail"] = b"".join(m.message().as_bytes() for m in mail.outbox)
    texts["invoice rows"] = repr(list(Invoice.objects.values())).encode()
    for name, text in texts.items():
        assert PASSWORD.encode() not in text, f"the SMTP password is in the {name}"
    assert pages["csv"].status_code == pages["xlsx"].status_code == 200
    assert b"Authentication failed" in texts["inspect bad"]


def test_smtp_password_is_not_in_the_error_report_of_a_failing_settings_save(
    site, settings, mailoutbox
):
    """The settings view fails after the password was typed (a project's receiver
    raises): Django mails the error report to ADMINS, and it must not carry it."""
    ClientBillingSettings.for_site(site)  # the row exists: the failure is in saving it
    settings.ADMINS = [("Ops", "ops@platform.example")]
    settings.DEBUG = False
    user = make_user("admin", superuser=True)
    client = Client(raise_request_exception=False)
    client.force_login(user)

    def broken_receiver(sender, instance, **kwargs):
        raise RuntimeError("a project receiver failed")

    pre_save.connect(broken_receiver, sender=ClientBillingSettings)
    try:
        response = client.post(
            reverse(
                "wagtailsettings:edit",
                args=["wagtail_client_billing", "clientbillingsettings", site.pk],
            ),
            {
                "use_custom_smtp": "on",
                "smtp_host": "smtp.acme.example",
                "smtp_port": "587",
                "smtp_username": "acme",
                "smtp_password": PASSWORD,
                "smtp_security": "starttls",
                "smtp_timeout": "10",
                "from_email": "billing@acme.example",
                "reply_to": "",
                "default_currency": "",
                "payment_link_lifetime_hours": "",
            },
        )
    finally:
        pre_save.disconnect(broken_receiver, sender=ClientBillingSettings)

    assert response.status_code == 500
    (report,) = [m for m in mailoutbox if "ops@platform.example" in m.to]
    full = report.message().as_bytes()
    assert b"a project receiver failed" in full  # it is the report of this failure
    assert PASSWORD.encode() not in full


# --- Stripe keys ----------------------------------------------------------------------------------


def test_no_stripe_secret_key_is_ever_stored_after_a_full_flow(
    client, stripe_emulator, settings, connected_site
):
    """Connect, onboard, pay, webhook, return, reconcile: then search every text column
    of every table for the platform's secret keys."""
    from tests.utils import connect, make_account, make_site

    state = gateway.create_account(
        test_mode=True,
        country="US",
        privacy_policy_url="https://agency.example/privacy",
        terms_of_service_url="https://agency.example/terms",
        site_url="https://keys.example/",
        idempotency_key="wcb-test-keys",
    )
    stripe_emulator.complete_onboarding(state.id)
    site = make_site("keys.example")
    account = make_account(state.id)
    connect(site, account)
    invoice = make_invoice(site, account)
    response = client.get(urlsplit(invoice.get_pay_url()).path)
    assert response.status_code == 303
    invoice.refresh_from_db()
    stripe_emulator.pay(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()
    client.get(f"/billing/return/{invoice.token}/?session_id={invoice.checkout_session_id}")
    call_command("client_billing_reconcile", stdout=__import__("io").StringIO())
    invoice.refresh_from_db()
    assert invoice.status == "paid"

    keys = [
        settings.WAGTAIL_CLIENT_BILLING["STRIPE_TEST_SECRET_KEY"],
        settings.WAGTAIL_CLIENT_BILLING["STRIPE_LIVE_SECRET_KEY"],
        *(
            s
            for e in settings.WAGTAIL_CLIENT_BILLING["STRIPE_WEBHOOK_ENDPOINTS"]
            for s in e["secrets"]
        ),
    ]
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            columns = connection.introspection.get_table_description(cursor, table)
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")  # noqa: S608 - names from introspection
            for row in cursor.fetchall():
                text = repr(row)
                for needle in ("sk_test_", "sk_live_", "whsec_", *keys):
                    if needle in text:
                        found.append((table, [c.name for c in columns], needle))
    assert found == []


# --- SMTP key rotation ---------------------------------------------------------------------------


def test_key_rotation_old_key_works_during_rotation_and_alone_fails_after(site, account, settings):
    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    base = {**settings.WAGTAIL_CLIENT_BILLING}
    settings.WAGTAIL_CLIENT_BILLING = {**base, "SMTP_ENCRYPTION_KEY": old_key}
    with SMTPServer(login=("acme", PASSWORD)) as server:
        use_custom_smtp(site, server, smtp_username="acme", password=PASSWORD)
        before = raw_password_column(site)

        # Deploy the new key with the old one still accepted: mail keeps flowing.
        settings.WAGTAIL_CLIENT_BILLING = {
            **base,
            "SMTP_ENCRYPTION_KEY": new_key,
            "SMTP_PREVIOUS_ENCRYPTION_KEYS": [old_key],
        }
        assert emails.send_invoice_emails([make_invoice(site, account)])[0].sent

        call_command("client_billing_rotate_smtp_key", stdout=__import__("io").StringIO())
        after = raw_password_column(site)
        assert after != before
        assert Fernet(new_key).decrypt(after.encode()).decode() == PASSWORD
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(after.encode())

        # The old key dropped: still sends, the new key alone reads it.
        settings.WAGTAIL_CLIENT_BILLING = {**base, "SMTP_ENCRYPTION_KEY": new_key}
        assert emails.send_invoice_emails([make_invoice(site, account)])[0].sent

        # A server configured with only the old key (a half-done deploy) reads nothing
        # and says so instead of sending without a password.
        settings.WAGTAIL_CLIENT_BILLING = {**base, "SMTP_ENCRYPTION_KEY": old_key}
        (result,) = emails.send_invoice_emails([make_invoice(site, account)])
        assert not result.sent
        assert result.error.kind == "config"
        assert "cannot be decrypted" in result.error.message
    assert len(server.messages) == 2
