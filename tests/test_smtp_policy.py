"""Custom SMTP follows the site developer's outbound policy, and tells an editor nothing
about what listens where: a settings form, the test email button and invoice emails
aimed at loopback, link-local, private or reserved addresses are refused, and an open,
a closed and a silent port read the same. Real SMTP servers (aiosmtpd on loopback)."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse

from tests.utils import SMTPServer, free_port, make_invoice, make_user, use_custom_smtp
from wagtail_client_billing import emails, tasks
from wagtail_client_billing.checks import check_settings
from wagtail_client_billing.models import ClientBillingSettings, EmailStatus, Invoice

pytestmark = pytest.mark.django_db


@pytest.fixture
def default_policy(settings):
    """The policy a site gets without configuring one (the suite allows loopback)."""
    settings.WAGTAIL_CLIENT_BILLING = {
        key: value
        for key, value in settings.WAGTAIL_CLIENT_BILLING.items()
        if key not in ("SMTP_ALLOWED_NETWORKS", "SMTP_ALLOWED_PORTS")
    }


@pytest.fixture
def admin(client, db):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return client


def post_test_email(client, site) -> str:
    response = client.post(
        reverse("wagtail_client_billing_email:send_test_email", args=[site.pk]), follow=True
    )
    (message,) = [str(m) for m in response.context["messages"]]
    return message


def settings_form_errors(client, site, **changes) -> dict:
    data = {
        "use_custom_smtp": "on",
        "smtp_host": "127.0.0.1",
        "smtp_port": "587",
        "smtp_username": "",
        "smtp_password": "",
        "smtp_security": "none",
        "smtp_timeout": "5",
        "from_email": "Acme <billing@acme.example>",
        "reply_to": "",
        "default_currency": "",
        "payment_link_lifetime_hours": "",
        **changes,
    }
    url = reverse(
        "wagtailsettings:edit", args=["wagtail_client_billing", "clientbillingsettings", site.pk]
    )
    response = client.post(url, data)
    if response.status_code == 302:
        return {}
    return dict(response.context["form"].errors)


# --- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "0.0.0.0",  # noqa: S104  (an address to refuse, not one to bind)
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    ],
)
def test_default_policy_refuses_local_private_and_reserved_addresses(address):
    assert not emails.address_allowed(ipaddress.ip_address(address), [])


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:93.184.215.14"]
)
def test_default_policy_allows_public_addresses(address):
    assert emails.address_allowed(ipaddress.ip_address(address), [])


def test_allowed_networks_let_a_private_relay_through_in_either_ip_version():
    allowed = emails.parse_allowed_networks(["10.0.5.0/24"])

    assert emails.address_allowed(ipaddress.ip_address("10.0.5.25"), allowed)
    assert emails.address_allowed(ipaddress.ip_address("::ffff:10.0.5.25"), allowed)
    assert not emails.address_allowed(ipaddress.ip_address("10.0.6.25"), allowed)
    assert not emails.address_allowed(ipaddress.ip_address("127.0.0.1"), allowed)


# --- what the editor can aim it at --------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "169.254.169.254", "10.0.0.1"])
def test_settings_form_refuses_a_host_on_a_local_or_private_network(
    default_policy, admin, site, host
):
    errors = settings_form_errors(admin, site, smtp_host=host, smtp_port="587")

    assert "local or private network" in " ".join(errors.get("smtp_host", [])), errors
    assert not ClientBillingSettings.for_site(site).use_custom_smtp


def test_settings_form_refuses_a_port_that_is_not_an_smtp_port(default_policy, admin, site):
    errors = settings_form_errors(admin, site, smtp_host="93.184.215.14", smtp_port="5432")

    assert "25, 465, 587, 2525" in " ".join(errors.get("smtp_port", [])), errors


def test_test_email_to_a_loopback_server_is_refused(default_policy, admin, site, smtp_server):
    use_custom_smtp(site, smtp_server, smtp_port=587)  # an allowed port, on loopback

    message = post_test_email(admin, site)

    assert message == (
        "The test email could not be sent. This website may not send email through "
        "127.0.0.1: it is on a local or private network. If it is your own mail relay, "
        "ask the website's developer to allow it."
    )


def test_test_email_to_a_port_that_is_not_allowed_is_refused(
    default_policy, admin, site, smtp_server
):
    use_custom_smtp(site, smtp_server)  # the sink's random port

    message = post_test_email(admin, site)

    assert f"may not connect to port {smtp_server.port}" in message
    assert smtp_server.messages == []


def test_invoice_emails_to_a_loopback_server_fail_with_the_policys_reason(
    default_policy, site, account, smtp_server, settings
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "SMTP_ALLOWED_PORTS": ["*"],
    }
    use_custom_smtp(site, smtp_server)
    invoice = make_invoice(site, account)
    tasks.queue_invoice_email(invoice)

    assert tasks.send_invoice_email(invoice.pk, 0) == "failed"

    invoice = Invoice.objects.get(pk=invoice.pk)
    assert invoice.email_status == EmailStatus.FAILED
    assert "local or private network" in invoice.email_last_error
    assert smtp_server.messages == []


def test_allowed_networks_let_the_site_developers_relay_through(site, account, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "SMTP_ALLOWED_NETWORKS": ["127.0.0.1/32"],
    }
    with SMTPServer() as server:
        use_custom_smtp(site, server)

        (result,) = emails.send_invoice_emails([make_invoice(site, account)])

    assert result.sent, result.error
    assert len(server.messages) == 1


# --- nothing to learn about ports ------------------------------------------------------------


class OtherService:
    """A TCP service that is not SMTP: it greets with its own banner and waits."""

    BANNER = b"+OK Dovecot internal-pop3.corp ready <1896.697170952@dbc.mtview.ca.us>\r\n"

    def __enter__(self) -> OtherService:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(self.BANNER)
                self.stop.wait(2)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_open_closed_and_silent_ports_read_the_same_to_the_editor(admin, site, caplog):
    """The editor cannot map ports: one sentence, no banner; the log has the detail."""
    messages = {}
    with socket.socket() as silent, OtherService() as other:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts, never says a word
        for name, port in (
            ("closed", free_port()),
            ("silent", silent.getsockname()[1]),
            ("other service", other.port),
        ):
            use_custom_smtp(site, smtp_port=port, smtp_timeout=1)
            messages[name] = post_test_email(admin, site).replace(str(port), "PORT")

    assert len(set(messages.values())) == 1, messages
    assert messages["closed"].startswith("The test email could not be sent. Cannot connect")
    for text in messages.values():
        assert "Dovecot" not in text and "+OK" not in text and "refused" not in text.lower()
    assert "Dovecot" in caplog.text  # the site developer can still see what happened


# --- one look-up, and the name for TLS ------------------------------------------------------


@pytest.fixture
def fake_dns(monkeypatch):
    """Answers of the test's choosing for some names: ``answers[name]`` lists the
    answers of successive look-ups (the last one repeats), each a list of addresses."""
    real = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        answer = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        return [info for address in answer for info in real(address, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, lookups


def test_the_connection_goes_to_the_address_that_was_checked(site, account, fake_dns):
    """A name that answers a checked address, then another one, is looked up once."""
    answers, lookups = fake_dns
    answers["mail.rebinding.example"] = [["127.0.0.1"], ["169.254.169.254"]]
    with SMTPServer() as server:
        use_custom_smtp(site, server, smtp_host="mail.rebinding.example", smtp_timeout=1)

        (result,) = emails.send_invoice_emails([make_invoice(site, account)])

    assert result.sent, result.error
    assert len(server.messages) == 1
    assert lookups == ["mail.rebinding.example"]


def test_a_name_with_any_forbidden_address_is_refused(default_policy, site, account, fake_dns):
    answers, _lookups = fake_dns
    answers["mail.mixed.example"] = [["93.184.215.14", "10.0.0.1"]]
    use_custom_smtp(site, smtp_host="mail.mixed.example", smtp_port=587)

    (result,) = emails.send_invoice_emails([make_invoice(site, account)])

    assert result.error.kind == "config"
    assert "local or private network" in result.error.message


def test_tls_verifies_the_certificate_against_the_host_name_not_the_address(
    site, account, trust_tls_cert, fake_dns
):
    """The certificate is valid for "localhost" and 127.0.0.1, not for another name."""
    answers, _lookups = fake_dns
    answers["mail.other-name.example"] = [["127.0.0.1"]]
    with SMTPServer(tls_cert=trust_tls_cert, security="starttls") as server:
        use_custom_smtp(site, server, smtp_host="localhost", smtp_security="starttls")
        (by_its_name,) = emails.send_invoice_emails([make_invoice(site, account)])
        use_custom_smtp(site, server, smtp_host="mail.other-name.example", smtp_security="starttls")
        (by_another_name,) = emails.send_invoice_emails([make_invoice(site, account)])

    assert by_its_name.sent, by_its_name.error
    assert by_another_name.error.kind == "tls"
    assert len(server.messages) == 1


# --- the site developer's settings ---------------------------------------------------------


def test_a_broken_policy_setting_stops_manage_py_check(settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "SMTP_ALLOWED_NETWORKS": "10.0.0.0/8",
        "SMTP_ALLOWED_PORTS": [587, "465"],
    }
    ids = sorted(m.id for m in check_settings())
    assert ids == ["wagtail_client_billing.E010", "wagtail_client_billing.E011"]
    with pytest.raises(SystemCheckError, match="SMTP_ALLOWED_NETWORKS"):
        call_command("check")

    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "SMTP_ALLOWED_NETWORKS": ["10.0.0.1/8"],  # host bits set: a typo, not a network
        "SMTP_ALLOWED_PORTS": [587],
    }
    assert [m.id for m in check_settings()] == ["wagtail_client_billing.E010"]


def test_allowing_every_address_is_a_warning(settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "SMTP_ALLOWED_NETWORKS": ["0.0.0.0/0"],
    }
    assert [m.id for m in check_settings()] == ["wagtail_client_billing.W003"]
