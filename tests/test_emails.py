"""The invoice email, the site's connection (default or custom SMTP), the settings form,
and the "Send test email" button, against real SMTP servers (aiosmtpd on loopback)."""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from wagtail import hooks as wagtail_hooks
from wagtail.models import Locale, Page

from tests.utils import (
    SMTPServer,
    TLSCert,
    connect,
    make_account,
    make_invoice,
    make_site,
    make_user,
    use_custom_smtp,
)
from wagtail_client_billing import emails
from wagtail_client_billing.conf import derive_key
from wagtail_client_billing.models import ClientBillingSettings, Invoice, InvoiceLine

pytestmark = [
    pytest.mark.django_db,
    # aiosmtpd warns when AUTH is offered without TLS: exactly what some tests set up.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

PASSWORD = "Sup3r-s3cret-SMTP-pw"


def html_of(message) -> str:
    (html, mimetype) = message.alternatives[0]
    assert mimetype == "text/html"
    return html


def send_one(invoice):
    (result,) = emails.send_invoice_emails([invoice])
    return result


# --- what the client reads -----------------------------------------------------------------------


def test_one_time_invoice_email_has_everything_the_client_needs(site, account):
    site.site_name = "Acme Studio"
    site.save()
    expires = datetime(2031, 3, 4, 17, 30, tzinfo=UTC)
    invoice = make_invoice(site, account, amount=12500, currency="USD", expires_at=expires)

    result = send_one(invoice)

    assert result.sent
    (message,) = mail.outbox
    assert message.to == ["client@example.com"]
    assert message.from_email == "Platform <billing@platform.example>"  # DEFAULT_FROM_EMAIL
    assert message.subject == f"Invoice {invoice.number} from Acme Studio: $125.00"
    pay_url = f"http://client-a.example/billing/pay/{invoice.token}/"
    text, html = message.body, html_of(message)
    for body in (text, html):
        assert "Acme Studio" in body
        assert invoice.number in body
        assert "$125.00" in body
        assert "Website build" in body
        assert "one-time payment" in body
        assert "March 4, 2031" in body
        assert "5:30" in body
        assert pay_url in body
    assert f'<a href="{pay_url}"' in html
    assert "every month" not in text


def test_recurring_invoice_email_says_how_often_the_client_pays(site, account):
    invoice = make_invoice(site, account, billing_type="monthly", amount=4900, currency="EUR")

    send_one(invoice)

    (message,) = mail.outbox
    assert "€49.00" in message.body
    assert "then every month" in message.body
    assert "then every month" in html_of(message)
    assert "one-time" not in message.body


def test_yen_amount_has_no_decimals(site, account):
    invoice = make_invoice(site, account, amount=5000, currency="JPY", billing_type="yearly")

    send_one(invoice)

    (message,) = mail.outbox
    assert "¥5,000" in message.subject
    assert "¥5,000" in message.body and "¥5,000" in html_of(message)
    assert "5,000.00" not in message.body and "50.00" not in message.body
    assert "then every year" in message.body


def test_email_is_written_in_the_sites_language(db, account):
    german = Locale.objects.get_or_create(language_code="de")[0]
    site = make_site("kunde.example", title="Kunde")
    root = Page.objects.get(pk=site.root_page_id)
    Page.objects.filter(pk=root.pk).update(locale=german)
    invoice = make_invoice(site, account, amount=12500, currency="EUR")

    send_one(Invoice.objects.get(pk=invoice.pk))

    (message,) = mail.outbox
    assert "125,00\xa0€" in message.body
    assert 'lang="de"' in html_of(message)


def test_email_of_a_site_in_a_language_the_project_lacks_is_in_the_projects_language(db, account):
    french = Locale.objects.get_or_create(language_code="fr")[0]  # not in LANGUAGES
    site = make_site("client.example.fr", title="Client")
    Page.objects.filter(pk=site.root_page_id).update(locale=french)
    invoice = make_invoice(site, account, amount=12500, currency="EUR")

    send_one(Invoice.objects.get(pk=invoice.pk))

    (message,) = mail.outbox
    assert "€125.00" in message.body
    assert 'lang="en-us"' in html_of(message)


@override_settings(ALLOWED_HOSTS=["*"])
def test_payment_link_comes_from_the_site_not_the_request(client, account):
    site = make_site("pay.client.example", port=8443)
    invoice = make_invoice(site, account)

    send_one(invoice)

    (message,) = mail.outbox
    assert f"http://pay.client.example:8443/billing/pay/{invoice.token}/" in message.body
    assert "testserver" not in message.body


def test_reply_to_comes_from_the_site_settings_with_the_default_connection(site, account):
    config = ClientBillingSettings.for_site(site)
    config.reply_to = "hello@acme.example"
    config.from_email = "Acme <billing@acme.example>"
    config.save()

    send_one(make_invoice(site, account))

    (message,) = mail.outbox
    assert message.reply_to == ["hello@acme.example"]
    # The project's own backend sends as the project: its From is DEFAULT_FROM_EMAIL.
    assert message.from_email == "Platform <billing@platform.example>"


def test_email_message_hook_can_change_the_message(site, account):
    def add_bcc(invoice, message):
        message.bcc = ["accounts@agency.example"]

    with wagtail_hooks.register_temporarily("client_billing_email_message", add_bcc):
        send_one(make_invoice(site, account))

    assert mail.outbox[0].bcc == ["accounts@agency.example"]


class _A11yParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.html_lang = None
        self.title = ""
        self.links: list[tuple[str, str]] = []
        self.images_without_alt = 0
        self.styles: list[str] = []
        self.external = []
        self._in_title = False
        self._link = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.html_lang = attrs.get("lang")
        if tag == "title":
            self._in_title = True
        if tag == "a":
            self._link = [attrs.get("href", ""), ""]
        if tag == "img" and not attrs.get("alt"):
            self.images_without_alt += 1
        if tag in ("link", "script", "img") and (attrs.get("href") or attrs.get("src")):
            self.external.append(tag)
        if attrs.get("style"):
            self.styles.append(attrs["style"])

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag == "a" and self._link:
            self.links.append((self._link[0], " ".join(self._link[1].split())))
            self._link = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._link is not None:
            self._link[1] += data


def _luminance(hex_colour: str) -> float:
    hex_colour = hex_colour.lstrip("#")
    if len(hex_colour) == 3:
        hex_colour = "".join(c * 2 for c in hex_colour)
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted([_luminance(foreground), _luminance(background)], reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_html_email_passes_a_basic_accessibility_check(site, account):
    invoice = make_invoice(site, account)
    send_one(invoice)
    html = html_of(mail.outbox[0])

    page = _A11yParser()
    page.feed(html)

    assert page.html_lang == "en"
    assert invoice.number in page.title
    assert page.images_without_alt == 0
    assert page.external == []  # no remote images, stylesheets or scripts
    assert "<style" not in html  # inline styles only: many clients drop <style>
    assert 'role="presentation"' in html  # layout tables are not data tables
    pay_links = [text for href, text in page.links if href == invoice.get_pay_url()]
    assert "Pay $125.00 securely" in pay_links  # says what it does, not "click here"
    assert all(text and text.lower() not in ("click here", "here", "link") for text in pay_links)
    # Every element that sets both colours is readable (WCAG AA, 4.5:1).
    for style in page.styles:
        fg = re.search(r"(?:^|;)\s*color:\s*(#[0-9a-fA-F]{3,6})", style)
        bg = re.search(r"background-color:\s*(#[0-9a-fA-F]{3,6})", style)
        if fg and bg:
            assert contrast(fg.group(1), bg.group(1)) >= 4.5, style


# --- custom SMTP ---------------------------------------------------------------------------------


def test_custom_smtp_with_starttls_and_authentication(site, account, trust_tls_cert):
    with SMTPServer(
        tls_cert=trust_tls_cert, security="starttls", login=("acme", PASSWORD)
    ) as server:
        use_custom_smtp(
            site, server, smtp_security="starttls", smtp_username="acme", password=PASSWORD
        )
        invoice = make_invoice(site, account)

        result = send_one(invoice)

    assert result.sent, result.error
    assert mail.outbox == []  # not the project's backend
    (message,) = server.messages
    assert server.authenticated == ["acme"]
    assert server.tls_sessions == 1
    assert message["To"] == "client@example.com"
    assert message["From"] == "Acme Studio <billing@acme.example>"
    assert message["Reply-To"] == "hello@acme.example"
    assert invoice.get_pay_url() in message.get_body(("plain",)).get_content()
    assert invoice.get_pay_url() in message.get_body(("html",)).get_content()


def test_custom_smtp_with_implicit_tls(site, account, trust_tls_cert):
    with SMTPServer(tls_cert=trust_tls_cert, security="ssl", login=("acme", PASSWORD)) as server:
        use_custom_smtp(site, server, smtp_security="ssl", smtp_username="acme", password=PASSWORD)

        result = send_one(make_invoice(site, account))

    assert result.sent, result.error
    assert len(server.messages) == 1
    assert server.tls_sessions == 1


def test_sites_share_one_tls_context_and_a_newly_trusted_certificate_is_honoured(
    db, account, trust_tls_cert, tmp_path, monkeypatch
):
    # Making a verifying context loads the system's CA certificates, 10-20 ms of CPU,
    # more than writing and sending a message: every site's batch reuses the first one.
    site_a, site_b = make_site("a.example"), make_site("b.example")
    with (
        SMTPServer(tls_cert=trust_tls_cert, security="starttls") as server_a,
        SMTPServer(tls_cert=trust_tls_cert, security="starttls") as server_b,
    ):
        use_custom_smtp(site_a, server_a, smtp_security="starttls")
        use_custom_smtp(site_b, server_b, smtp_security="starttls")
        results = emails.send_invoice_emails(
            [make_invoice(site_a, account), make_invoice(site_b, account)]
        )
        context_a, context_b = (
            emails.mailer_for_site(s).connection.ssl_context for s in (site_a, site_b)
        )

    assert all(r.sent for r in results), [r.error for r in results]
    assert server_a.tls_sessions == server_b.tls_sessions == 1
    assert context_a is context_b
    # A process told to trust other certificates (SSL_CERT_FILE) gets a context that does.
    other = TLSCert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(other.cert_path))
    with SMTPServer(tls_cert=other, security="starttls") as server_c:
        use_custom_smtp(site_a, server_c, smtp_security="starttls")
        result = send_one(make_invoice(site_a, account))
    assert result.sent, result.error
    assert server_c.tls_sessions == 1


def test_senders_starting_at_once_share_one_new_tls_context(tmp_path, monkeypatch):
    # Threads that send their first email at the same moment (a threaded worker, a
    # batch per site) wait for one context rather than each loading the CA
    # certificates for a context of its own.
    monkeypatch.setenv("SSL_CERT_FILE", str(TLSCert(tmp_path).cert_path))
    start = threading.Barrier(12)

    def first_context(_n: int):
        start.wait(10)
        return emails.tls_client_context()

    with ThreadPoolExecutor(max_workers=12) as pool:
        contexts = list(pool.map(first_context, range(12)))

    assert len({id(context) for context in contexts}) == 1


def test_one_connection_per_site_for_a_batch(db, account):
    site_a, site_b = make_site("a.example"), make_site("b.example")
    with SMTPServer() as server_a, SMTPServer() as server_b:
        use_custom_smtp(site_a, server_a)
        use_custom_smtp(site_b, server_b)
        invoices = [make_invoice(site_a, account, email=f"a{i}@example.com") for i in range(3)]
        invoices += [make_invoice(site_b, account, email=f"b{i}@example.com") for i in range(2)]

        results = emails.send_invoice_emails(invoices)

    assert all(r.sent for r in results)
    assert len(server_a.messages) == 3 and server_a.connections == 1
    assert len(server_b.messages) == 2 and server_b.connections == 1


def test_a_batch_reads_its_lines_and_its_sites_language_once_not_per_email(db, account):
    site = make_site("batch.example")
    with SMTPServer() as server:
        use_custom_smtp(site, server)
        made = [make_invoice(site, account, email=f"c{i}@example.com") for i in range(4)]
        invoices = list(Invoice.objects.filter(pk__in=[i.pk for i in made]).select_related("site"))

        with CaptureQueriesContext(connection) as queries:
            results = emails.send_invoice_emails(invoices)

    assert all(r.sent for r in results) and len(server.messages) == 4
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    line_table = InvoiceLine._meta.db_table
    assert len([sql for sql in reads if f'FROM "{line_table}"' in sql]) == 1
    assert len([sql for sql in reads if 'FROM "wagtailcore_page"' in sql]) == 1
    assert len([sql for sql in reads if 'FROM "wagtailcore_locale"' in sql]) == 1


def test_a_refused_recipient_does_not_stop_the_rest_of_the_batch(site, account):
    with SMTPServer() as server:
        use_custom_smtp(site, server)
        invoices = [make_invoice(site, account, email=f"c{i}@example.com") for i in range(3)]
        server.refuse["c1@example.com"] = "550 5.1.1 No such user"
        results = {r.invoice_id: r for r in emails.send_invoice_emails(invoices)}

    assert [results[i.pk].sent for i in invoices] == [True, False, True]
    error = results[invoices[1].pk].error
    assert error.kind == "recipient" and not error.transient
    assert error.message == "The SMTP server refused the recipient c1@example.com."
    assert "550" in error.detail and "No such user" in error.detail  # for the log only
    assert server.connections == 1


def test_untrusted_certificate_is_reported_as_tls_failure(site, account, tls_cert):
    with SMTPServer(tls_cert=tls_cert, security="starttls") as server:
        use_custom_smtp(site, server, smtp_security="starttls")

        result = send_one(make_invoice(site, account))

    assert result.error.kind == "tls"
    assert result.error.message.startswith("TLS failed")
    assert not result.error.transient


def test_password_that_cannot_be_decrypted_asks_the_editor_to_enter_it_again(site, account):
    config = use_custom_smtp(site)
    from cryptography.fernet import Fernet

    config.smtp_password_encrypted = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    config.save()

    result = send_one(make_invoice(site, account))

    assert result.error.kind == "config"
    assert "Enter the password again" in result.error.message


# --- the settings form ------------------------------------------------------------------------


def settings_url(site) -> str:
    return reverse(
        "wagtailsettings:edit", args=["wagtail_client_billing", "clientbillingsettings", site.pk]
    )


def form_data(config: ClientBillingSettings, **changes) -> dict:
    data = {
        "use_custom_smtp": "on" if config.use_custom_smtp else "",
        "smtp_host": config.smtp_host,
        "smtp_port": str(config.smtp_port),
        "smtp_username": config.smtp_username,
        "smtp_password": "",
        "smtp_security": config.smtp_security,
        "smtp_timeout": str(config.smtp_timeout),
        "from_email": config.from_email,
        "reply_to": config.reply_to,
        "default_currency": config.default_currency,
        "payment_link_lifetime_hours": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not False}


@pytest.fixture
def admin_client(client, db):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    client.user = user
    return client


def test_password_is_write_only_in_the_settings_form(admin_client, site):
    config = ClientBillingSettings.for_site(site)
    url = settings_url(site)

    response = admin_client.post(
        url,
        form_data(
            config,
            use_custom_smtp="on",
            smtp_host="smtp.acme.example",
            smtp_username="acme",
            smtp_password=PASSWORD,
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    config.refresh_from_db()
    assert config.get_smtp_password() == PASSWORD
    assert PASSWORD not in config.smtp_password_encrypted

    page = admin_client.get(url)
    assert page.status_code == 200
    assert PASSWORD not in page.content.decode()
    assert "A password is stored" in page.content.decode()
    form = page.context["form"]
    assert "smtp_password" not in form.initial
    assert PASSWORD not in str(form.initial)

    # Blank keeps it.
    admin_client.post(url, form_data(config, smtp_username="acme2"))
    config.refresh_from_db()
    assert config.smtp_username == "acme2"
    assert config.get_smtp_password() == PASSWORD

    # "Clear" removes it.
    admin_client.post(url, form_data(config, clear_smtp_password="on"))
    config.refresh_from_db()
    assert not config.has_smtp_password


def test_settings_form_refuses_custom_smtp_without_host_and_a_bad_from(admin_client, site):
    config = ClientBillingSettings.for_site(site)

    response = admin_client.post(
        settings_url(site),
        form_data(
            config, use_custom_smtp="on", smtp_host="", smtp_port="", from_email="not an address"
        ),
    )

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "smtp_host" in errors
    assert "smtp_port" in errors
    assert "from_email" in errors


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("billing@acme.example", True),
        ("Acme Studio <billing@acme.example>", True),
        ('"Acme, Inc." <billing@acme.example>', True),
        ("Acme Studio", False),
        ("billing@", False),
        ("a@b.example\nBcc: x@y.example", False),
        ("a@x.example, b@y.example", False),
        ("Acme <billing@acme.example>, other@evil.example", False),
        ("Acme <billing@acme.example> <other@evil.example>", False),
        ("billing@acme.example,", False),
        ("Group: billing@acme.example;", False),
        ("Acme\u2028Studio <billing@acme.example>", False),
        ("Acme\u2029Studio <billing@acme.example>", False),
        ("Acme\x85Studio <billing@acme.example>", False),
        ("billing@acme\u2028.example", False),
    ],
)
def test_from_address_validation(value, ok):
    from django.core.exceptions import ValidationError

    from wagtail_client_billing.forms.settings import validate_from_address

    if ok:
        validate_from_address(value)
    else:
        with pytest.raises(ValidationError):
            validate_from_address(value)


# --- "Send test email" ------------------------------------------------------------------------


def button_url(site) -> str:
    return reverse("wagtail_client_billing_email:send_test_email", args=[site.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def post_test_email(client, site) -> list[str]:
    response = client.post(button_url(site), follow=True)
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def test_test_email_goes_to_the_editor_through_the_sites_server(admin_client, site):
    with SMTPServer() as server:
        use_custom_smtp(site, server)

        (message,) = post_test_email(admin_client, site)

    assert message.startswith("Test email sent to admin@example.com")
    assert f"127.0.0.1:{server.port}" in message
    (received,) = server.messages
    assert received["To"] == "admin@example.com"
    assert received["From"] == "Acme Studio <billing@acme.example>"


def test_test_email_with_the_default_connection(admin_client, site):
    (message,) = post_test_email(admin_client, site)

    assert "default email settings" in message
    assert mail.outbox[0].to == ["admin@example.com"]


def test_test_email_reports_authentication_failure(admin_client, site, caplog):
    caplog.set_level(logging.DEBUG)
    with SMTPServer(login=("acme", "the-right-one")) as server:
        use_custom_smtp(site, server, smtp_username="acme", password=PASSWORD)

        (message,) = post_test_email(admin_client, site)

    assert "Authentication failed" in message
    assert "username and password" in message
    assert PASSWORD not in message
    assert PASSWORD not in caplog.text


def test_test_email_reports_a_server_it_cannot_connect_to(admin_client, site):
    config = use_custom_smtp(site)  # nothing listens on that port

    (message,) = post_test_email(admin_client, site)

    assert "Cannot connect" in message
    assert f"127.0.0.1:{config.smtp_port}" in message


def test_test_email_reports_tls_failure(admin_client, site):
    with SMTPServer() as server:  # no STARTTLS on offer
        use_custom_smtp(site, server, smtp_security="starttls")

        (message,) = post_test_email(admin_client, site)

    assert "TLS failed" in message
    assert "STARTTLS" in message


def test_test_email_reports_a_refused_recipient(admin_client, site):
    with SMTPServer() as server:
        use_custom_smtp(site, server)
        server.rcpt_replies = ["550 5.7.1 <relay.corp> Relaying denied for 10.0.0.7"]

        (message,) = post_test_email(admin_client, site)

    # The server's own words are for the log, never for the editor.
    assert message == (
        "The test email could not be sent. The SMTP server refused the recipient admin@example.com."
    )


def test_test_email_needs_the_editors_own_address(client, site):
    user = make_user("noaddress", superuser=True)
    user.email = ""
    user.save()
    client.force_login(user)

    (message,) = post_test_email(client, site)

    assert "no email address" in message
    assert mail.outbox == []


def test_test_email_needs_permission_to_change_the_settings(client, site):
    client.force_login(make_user("viewer"))  # admin access, no Client Billing permissions

    response = client.post(button_url(site))

    assert response.status_code in (302, 403)
    assert mail.outbox == []


def test_test_email_is_post_only(admin_client, site):
    assert admin_client.get(button_url(site)).status_code == 405
    assert mail.outbox == []


def test_test_email_button_is_on_the_email_tab(admin_client, site):
    page = admin_client.get(settings_url(site)).content.decode()

    assert "Send test email" in page
    assert f'formaction="{button_url(site)}"' in page
    assert "admin@example.com" in page


def test_password_never_appears_in_pages_logs_or_errors(admin_client, site, account, caplog):
    caplog.set_level(logging.DEBUG)
    with SMTPServer(login=("acme", "other")) as server:
        use_custom_smtp(site, server, smtp_username="acme", password=PASSWORD)
        invoice = make_invoice(site, account)
        result = send_one(invoice)
        test_page = admin_client.post(button_url(site), follow=True).content.decode()
    settings_page = admin_client.get(settings_url(site)).content.decode()

    assert result.error.kind == "auth"
    for text in (result.error.message, test_page, settings_page, caplog.text):
        assert PASSWORD not in text


# --- key rotation -------------------------------------------------------------------------------


def test_rotate_smtp_key_re_encrypts_with_the_new_key(site, settings):
    old_key = derive_key(settings.SECRET_KEY)
    config = use_custom_smtp(site, password=PASSWORD)
    assert config.smtp_password_encrypted  # encrypted with the old (derived) key
    from cryptography.fernet import Fernet

    new_key = Fernet.generate_key().decode()
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "SMTP_ENCRYPTION_KEY": new_key,
        "SMTP_PREVIOUS_ENCRYPTION_KEYS": [old_key],
    }

    call_command("client_billing_rotate_smtp_key")

    config.refresh_from_db()
    assert Fernet(new_key).decrypt(config.smtp_password_encrypted.encode()).decode() == PASSWORD
    # Without the old key the password still reads: it no longer needs it.
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "SMTP_PREVIOUS_ENCRYPTION_KEYS": [],
    }
    assert config.get_smtp_password() == PASSWORD


def test_rotate_smtp_key_names_sites_it_cannot_decrypt(site):
    from cryptography.fernet import Fernet
    from django.core.management.base import CommandError

    config = use_custom_smtp(site)
    config.smtp_password_encrypted = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    config.save()

    with pytest.raises(CommandError, match="client-a.example"):
        call_command("client_billing_rotate_smtp_key")


def test_invoice_of_a_site_without_settings_uses_the_default_connection(db):
    account = make_account("acct_plain")
    site = make_site("plain.example")
    connect(site, account)
    ClientBillingSettings.objects.filter(site=site).delete()

    assert send_one(make_invoice(site, account)).sent
    assert len(mail.outbox) == 1
