"""Helpers that build the things tests need, as plain functions (no fixture jungle)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from wagtail import models as wagtail_models
from wagtail.models import Page, Site

from wagtail_client_billing.models import ClientBillingSettings, Invoice, StripeAccount


def make_site(hostname: str = "client.example", port: int = 80, title: str | None = None) -> Site:
    # transaction=True tests flush the tree that Wagtail's migration made; grow it back.
    root = Page.get_first_root_node() or Page.add_root(instance=Page(title="Root", slug="root"))
    page = root.add_child(instance=Page(title=title or hostname, slug=hostname.replace(".", "-")))
    return Site.objects.create(
        hostname=hostname, port=port, root_page=page, site_name=title or hostname
    )


def make_account(
    stripe_id: str = "acct_test_1",
    *,
    test_mode: bool = True,
    charges_enabled: bool = True,
    **kwargs: Any,
) -> StripeAccount:
    defaults: dict[str, Any] = {
        "country": "US",
        "privacy_policy_url": "https://agency.example/privacy",
        "terms_of_service_url": "https://agency.example/terms",
        "charges_enabled": charges_enabled,
        "payouts_enabled": charges_enabled,
        "details_submitted": charges_enabled,
    }
    defaults.update(kwargs)
    return StripeAccount.objects.create(stripe_id=stripe_id, test_mode=test_mode, **defaults)


def connect(site: Site, account: StripeAccount) -> ClientBillingSettings:
    settings, _ = ClientBillingSettings.objects.get_or_create(site=site)
    if account.test_mode:
        settings.test_account = account
    else:
        settings.live_account = account
    settings.save()
    return settings


def make_emulated_account(emulator: Any, hostname: str) -> StripeAccount:
    """A test account that exists, onboarded, in the Stripe emulator (made through the
    gateway, as the connect form makes it), for the site ``hostname``."""
    from wagtail_client_billing import gateway

    state = gateway.create_account(
        test_mode=True,
        country="US",
        privacy_policy_url="https://agency.example/privacy",
        terms_of_service_url="https://agency.example/terms",
        site_url=f"https://{hostname}/",
        idempotency_key=f"wcb-test-{hostname}",
    )
    emulator.complete_onboarding(state.id)
    return make_account(state.id)


def make_emulated_invoice(emulator: Any, hostname: str, **kwargs: Any) -> Invoice:
    """An invoice on the site ``hostname``, connected to an emulated, onboarded account."""
    account = make_emulated_account(emulator, hostname)
    site = make_site(hostname)
    connect(site, account)
    return make_invoice(site, account, **kwargs)


def make_invoice(
    site: Site | None = None, account: StripeAccount | None = None, **kwargs: Any
) -> Invoice:
    site = site or make_site()
    account = account or make_account()
    defaults: dict[str, Any] = {
        "email": "client@example.com",
        "currency": "USD",
        "amount": 12500,
        "description": "Website build",
        "success_url": "https://client.example/thanks",
        "cancel_url": "https://client.example/cancelled",
        "test_mode": account.test_mode,
        "expires_at": timezone.now() + timedelta(hours=24),
    }
    defaults.update(kwargs)
    return Invoice.objects.create(site=site, account=account, **defaults)


def make_user(username: str = "editor", *, superuser: bool = False, perms: tuple[str, ...] = ()):
    """A user who can reach the Wagtail admin, with the given ``app_label.codename`` perms."""
    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", "password")
    user = User.objects.create_user(username, f"{username}@example.com", "password")
    group, _ = Group.objects.get_or_create(name=f"{username}-group")
    admin_access = Permission.objects.get(
        content_type__app_label="wagtailadmin", codename="access_admin"
    )
    group.permissions.add(admin_access)
    for perm in perms:
        app_label, codename = perm.split(".")
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    user.groups.add(group)
    return user


#: Wagtail 7.1 added site-by-site grants of site settings (``GroupSitePermission``).
HAS_SITE_PERMISSIONS = hasattr(wagtail_models, "GroupSitePermission")
needs_site_permissions = pytest.mark.skipif(
    not HAS_SITE_PERMISSIONS, reason="this Wagtail grants site settings globally only"
)


def grant_for_sites(group: Group, permission: Permission, *sites: Site) -> None:
    """Grant ``permission`` on a site setting for ``sites`` only, where Wagtail can (7.1+);
    Wagtail 7.0 grants it for every site."""
    if not HAS_SITE_PERMISSIONS:
        group.permissions.add(permission)
        return
    for site in sites:
        wagtail_models.GroupSitePermission.objects.create(
            group=group, site=site, permission=permission
        )


# --- Email (issue 7): a real SMTP server on loopback, and a certificate for its TLS ----------


class SMTPServer:
    """An aiosmtpd server on 127.0.0.1 that records what it receives.

    ``tls_cert`` (a :class:`TLSCert`) with ``security="starttls"`` offers and requires
    STARTTLS; with ``security="ssl"`` it speaks implicit TLS. ``login=(user, password)``
    requires AUTH. ``data_replies`` / ``rcpt_replies`` queue SMTP answers (``"451 4.3.0
    Try again later"``) for the next DATA / RCPT commands, so a test can make the
    server fail and then recover; ``refuse`` maps an address to the answer to its RCPT.
    ``delay`` seconds pass before each message is accepted (a slow server); a message
    whose client hung up meanwhile is not accepted. ``peers`` holds one entry per connection that sent
    mail, so tests can count connections.
    """

    def __init__(
        self,
        *,
        tls_cert: TLSCert | None = None,
        security: str = "none",
        login: tuple[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[Any] = []
        self.envelopes: list[Any] = []
        self.peers: list[Any] = []
        self.authenticated: list[str] = []
        self.tls_sessions = 0
        self.data_replies: list[str] = []
        self.rcpt_replies: list[str] = []
        self.refuse: dict[str, str] = {}
        self.delay = 0.0
        self.port = port or free_port()
        self.login = login
        server = self

        class Handler:
            async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
                if address in server.refuse:
                    return server.refuse[address]
                if server.rcpt_replies:
                    return server.rcpt_replies.pop(0)
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, smtp, session, envelope):
                if server.data_replies:
                    return server.data_replies.pop(0)
                if server.delay:
                    await asyncio.sleep(server.delay)
                    if smtp.transport is None or smtp.transport.is_closing():
                        return "451 4.3.0 Connection gone"
                import email
                import email.policy

                if session.peer not in server.peers:
                    server.peers.append(session.peer)
                if smtp.transport.get_extra_info("ssl_object") is not None:
                    server.tls_sessions += 1
                server.envelopes.append(envelope)
                server.messages.append(
                    email.message_from_bytes(envelope.original_content, policy=email.policy.default)
                )
                return "250 Message accepted"

        def authenticator(smtp, session, envelope, mechanism, auth_data):
            ok = (
                server.login is not None
                and auth_data.login.decode() == server.login[0]
                and auth_data.password.decode() == server.login[1]
            )
            if ok:
                server.authenticated.append(auth_data.login.decode())
            return AuthResult(success=ok, handled=False)

        kwargs: dict[str, Any] = {}
        if login:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
        if security == "starttls":
            assert tls_cert is not None
            kwargs.update(tls_context=tls_cert.server_context(), require_starttls=True)
        elif security == "ssl":
            assert tls_cert is not None
            kwargs.update(ssl_context=tls_cert.server_context())
        if login and security == "starttls":
            kwargs["auth_require_tls"] = True
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()

    @property
    def connections(self) -> int:
        """Connections over which mail was delivered."""
        return len(self.peers)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TLSCert:
    """A self-signed certificate for 127.0.0.1 and localhost, written to ``directory``.

    Clients trust it when ``SSL_CERT_FILE`` points at :attr:`cert_path` (OpenSSL reads
    it whenever a default context is made); without that, TLS fails as it would with a
    real server's untrusted certificate.
    """

    def __init__(self, directory: Any) -> None:
        import datetime as dt
        import ipaddress
        from pathlib import Path

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        directory = Path(directory)
        self.cert_path = directory / "smtp-cert.pem"
        self.key_path = directory / "smtp-key.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def server_context(self):
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context


def use_custom_smtp(
    site: Site,
    server: SMTPServer | None = None,
    *,
    password: str = "",
    **fields: Any,
) -> ClientBillingSettings:
    """Switch ``site`` to a custom SMTP server (``server``'s port on 127.0.0.1)."""
    config, _ = ClientBillingSettings.objects.get_or_create(site=site)
    config.use_custom_smtp = True
    config.smtp_host = "127.0.0.1"
    config.smtp_port = server.port if server else free_port()
    config.smtp_security = "none"
    config.smtp_timeout = 5
    config.from_email = "Acme Studio <billing@acme.example>"
    config.reply_to = "hello@acme.example"
    for name, value in fields.items():
        setattr(config, name, value)
    config.set_smtp_password(password)
    config.save()
    return config


# --- end Email ----------------------------------------------------------------------------------


def selected_by_marker(config: pytest.Config, marker: str) -> bool:
    """Whether ``-m`` names ``marker`` (and not ``not marker``): the slow tests that run
    only when asked for (``readme``, ``bench``) skip themselves otherwise."""
    expression = config.option.markexpr or ""
    return bool(re.search(rf"\b{marker}\b", expression)) and f"not {marker}" not in expression
