"""The invoice emails, and the one place that opens SMTP connections.

Each site sends either through the project's own email backend (``EMAIL_BACKEND``,
``DEFAULT_FROM_EMAIL``) or through its own SMTP server, configured on the Email tab of
its Client Billing settings. :func:`mailer_for_site` builds that connection; invoices,
reminders and the "Send test email" button all go through it, so a successful test
means invoices will go out the same way.

:func:`send_invoice_emails` opens one connection per site for a whole batch, and
reports each invoice's outcome instead of raising, so one refused recipient does not
stop the rest. :func:`describe_error` turns what ``smtplib`` raised into a sentence an
editor can act on, and says whether trying again later may work.

A custom server is a destination an editor chooses, so every connection to one follows
the site developer's outbound policy (:func:`resolve_smtp_host`): the host is resolved
once, every address it resolves to is checked (no loopback, link-local, private or
reserved network unless ``SMTP_ALLOWED_NETWORKS`` allows it; only ``SMTP_ALLOWED_PORTS``),
and the socket is opened to a checked address, while TLS still verifies the certificate
against the host name. A remote service's reply is never shown to the editor: they read
one of a few fixed sentences, which do not tell an open, a closed and a silent port
apart, and the full detail goes to the log.

Every address that ends up in a header (From, Reply-To, the client's To) is checked by
:func:`check_address` the way Django and ``smtplib`` will read it, in the settings and
invoice forms and again before sending, so a bad one is a clear error, not a crash.

The SMTP password is decrypted only into the backend object; it is never part of a
message, a log line or an error text (:func:`describe_error` scrubs it, and its
encodings in an SMTP AUTH exchange, if a server ever echoes them).
"""

from __future__ import annotations

import base64
import functools
import io
import ipaddress
import logging
import os
import re
import secrets
import smtplib
import socket
import ssl
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import Message
from email.policy import Compat32, compat32
from email.utils import getaddresses, parseaddr
from typing import Any

import django
from cryptography.fernet import InvalidToken
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import MIMEMixin, sanitize_address
from django.core.validators import validate_email
from django.db.models import prefetch_related_objects
from django.template import Context
from django.template.loader import get_template, render_to_string
from django.utils import timezone, translation
from django.utils.encoding import punycode
from django.utils.timesince import timeuntil
from django.utils.translation import gettext as _
from wagtail.models import Site

from . import documents, hooks, portal_links
from .conf import billing_settings
from .languages import default_language, format_date, format_datetime, invoice_language
from .models import (
    Client,
    ClientBillingSettings,
    Invoice,
    SMTPSecurity,
    shown_lines,
    site_display_name,
)
from .money import format_money

logger = logging.getLogger(__name__)

#: Email kinds and their templates under ``wagtail_client_billing/emails/``.
INVOICE_REQUEST = "invoice_request"
REMINDER = "reminder"
#: The reminder on an invoice's due date.
DUE_REMINDER = "due_reminder"
TEST_EMAIL = "test_email"


class EmailConfigurationError(Exception):
    """The site's email settings cannot be used as they are; ``str()`` says why."""


class OutboundPolicyError(EmailConfigurationError):
    """The custom SMTP server is somewhere the site developer's policy does not allow.

    Attributes:
        setting: the setting at fault, ``"smtp_host"`` or ``"smtp_port"``.
    """

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


class InvalidAddress(ValueError):
    """An email address that Django or ``smtplib`` would not read as exactly one address."""


class RecipientInvalid(InvalidAddress):
    """The address an email was to go to is not one valid address; ``str()`` is it."""


# --- where a custom server may be: the outbound policy -------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052 and
#: RFC 8215): a gateway forwards them to that IPv4 address, which is what counts.
_NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def parse_allowed_networks(value: Any) -> list[IPNetwork]:
    """``SMTP_ALLOWED_NETWORKS`` as networks; ``ValueError`` names an entry that is not one."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError("SMTP_ALLOWED_NETWORKS must be a list of networks")
    networks = []
    for entry in value:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip()))
        except ValueError:
            raise ValueError(f"{entry!r} is not a network such as '10.0.0.0/8'") from None
    return networks


def parse_allowed_ports(value: Any) -> list[int] | None:
    """``SMTP_ALLOWED_PORTS`` as port numbers, None for ``["*"]`` (any port).

    Raises ``ValueError`` for anything else, naming what is wrong.
    """
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError("SMTP_ALLOWED_PORTS must be a list of port numbers, or ['*']")
    if "*" in value:
        return None
    for port in value:
        if type(port) is not int or not 0 < port < 65536:
            raise ValueError(f"{port!r} is not a port number from 1 to 65535")
    return list(value)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in prefix for prefix in _NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a unicast address on the public internet.

    Loopback, link-local, private (RFC 1918, unique local), shared (CGNAT),
    unspecified, multicast, reserved, documentation and site-local addresses are not;
    an IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, NAT64) is judged by
    the IPv4 address it reaches.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.is_site_local:
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def address_allowed(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    """Whether the policy lets a custom SMTP connection go to ``ip``."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)):
        candidates.append(embedded)
    if any(c.version == n.version and c in n for c in candidates for n in networks):
        return True
    return is_public_address(ip)


AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]


def resolve_smtp_host(host: str, port: int) -> list[AddrInfo]:
    """Resolve a custom SMTP server once and check it against the outbound policy.

    Returns ``socket.getaddrinfo``'s answers, the only addresses the connection may
    use. Raises :class:`OutboundPolicyError` when the port is not allowed or when *any*
    address the name resolves to is (a name that mixes public and private addresses is
    how DNS rebinding starts), and ``socket.gaierror`` when the name does not resolve.
    """
    ports = parse_allowed_ports(billing_settings.SMTP_ALLOWED_PORTS)
    if ports is not None and port not in ports:
        raise OutboundPolicyError(
            _(
                "This website may not connect to port %(port)s. Use one of the SMTP ports "
                "it allows: %(ports)s."
            )
            % {"port": port, "ports": ", ".join(str(p) for p in ports)},
            "smtp_port",
        )
    networks = parse_allowed_networks(billing_settings.SMTP_ALLOWED_NETWORKS)
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except UnicodeError as exc:  # not even a possible name (IDNA refuses it)
        raise socket.gaierror(socket.EAI_NONAME, str(exc)) from exc
    for *_rest, sockaddr in answers:
        ip = ipaddress.ip_address(sockaddr[0])
        if not address_allowed(ip, networks):
            logger.warning(
                "Custom SMTP host %r (port %s) resolves to %s, which the outbound policy "
                "does not allow (SMTP_ALLOWED_NETWORKS)",
                host,
                port,
                ip,
            )
            raise OutboundPolicyError(
                _(
                    "This website may not send email through %(host)s: it is on a local or "
                    "private network. If it is your own mail relay, ask the website's "
                    "developer to allow it."
                )
                % {"host": host},
                "smtp_host",
            )
    return list(dict.fromkeys(answers))


class ServerUnreachable(OSError):
    """No SMTP greeting came from the server: refused, silent, reset, TLS or not SMTP.

    One exception for all of them, so what the editor reads cannot tell an open port
    from a closed or a silent one; ``__cause__`` keeps what happened, for the log.
    """


def _connect_to(addresses: Sequence[AddrInfo], timeout: Any, source: Any) -> socket.socket:
    """A TCP connection to the first of ``addresses`` that answers; no name is resolved."""
    error: OSError = OSError("no address to connect to")
    for family, kind, proto, _canonical, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            if isinstance(timeout, int | float):  # not smtplib's "use the default" sentinel
                sock.settimeout(timeout)
            if source:
                sock.bind(source)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _CheckedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` connecting to addresses :func:`resolve_smtp_host` checked.

    ``self._host`` stays the host *name*, and smtplib gives it to TLS as
    ``server_hostname``: STARTTLS (and implicit TLS below) verify the certificate
    against the name the editor typed, not against the address.
    """

    def __init__(self, host: str, port: int, *, addresses: Sequence[AddrInfo], **kwargs: Any):
        self.addresses = addresses
        super().__init__(host, port, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: Any) -> socket.socket:
        return _connect_to(self.addresses, timeout, self.source_address)

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None):
        try:
            code, reply = super().connect(host, port, source_address)
        except Exception as exc:
            self.close()
            raise ServerUnreachable("no SMTP greeting") from exc
        if code != 220:  # smtplib would raise with the service's own greeting in it
            self.close()
            raise ServerUnreachable(f"no SMTP greeting; the service said {code} {reply!r}")
        return code, reply


class _CheckedSMTP_SSL(smtplib.SMTP_SSL, _CheckedSMTP):
    """Implicit TLS over :class:`_CheckedSMTP`'s connection (``SMTP_SSL`` wraps it)."""

    def __init__(self, host: str, port: int, *, addresses: Sequence[AddrInfo], **kwargs: Any):
        self.addresses = addresses
        smtplib.SMTP_SSL.__init__(self, host, port, **kwargs)


#: The verifying client contexts made so far, by the certificates OpenSSL was told to load.
_tls_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_tls_contexts_lock = threading.Lock()


def tls_client_context() -> ssl.SSLContext:
    """The verifying TLS client context every site's custom server is reached with.

    One per process, not one per backend as Django's SMTP backend makes (a backend is
    made for each batch, and for each email a task sends alone): making one loads the
    system's CA certificates, which takes more CPU than writing and sending a message
    (``docs/performance.md``). Threads that ask for it first at the same moment wait for
    the one being made rather than each making their own. A context is safe to share
    between threads and connections and is never changed after it is made. It is made
    again when ``SSL_CERT_FILE`` or ``SSL_CERT_DIR``, which OpenSSL reads when it loads
    them, name other certificates.
    """
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    if (context := _tls_contexts.get(key)) is not None:
        return context
    with _tls_contexts_lock:
        if (context := _tls_contexts.get(key)) is None:
            if len(_tls_contexts) >= 4:  # settings that changed and will not come back
                _tls_contexts.clear()
            context = _tls_contexts[key] = ssl.create_default_context()
    return context


class CheckedSMTPBackend(SMTPBackend):
    """Django's SMTP backend for a site's custom server, held to the outbound policy.

    Each :meth:`open` resolves and checks the host once and connects to those
    addresses; nothing looks the name up again between the check and the connection.
    STARTTLS and implicit TLS use :func:`tls_client_context`.
    """

    _addresses: Sequence[AddrInfo] = ()

    @property
    def ssl_context(self) -> ssl.SSLContext:
        return tls_client_context()

    def open(self) -> bool | None:
        if self.connection:
            return False
        self._addresses = resolve_smtp_host(self.host, self.port)
        return super().open()

    @property
    def connection_class(self):
        smtp = _CheckedSMTP_SSL if self.use_ssl else _CheckedSMTP
        return functools.partial(smtp, addresses=self._addresses)

    if django.VERSION < (6, 0):  # Django 6 writes and addresses messages its own way

        def _send(self, email_message: Any) -> bool:
            """Django 5.2's ``_send``, with what it repeats for every message of a batch
            done once: each envelope address is sanitised once per process
            (:func:`_envelope_address`) and the message is written by
            :func:`message_bytes`. The same envelope and the same bytes."""
            if not email_message.recipients():
                return False
            encoding = email_message.encoding or settings.DEFAULT_CHARSET
            from_email = _envelope_address(email_message.from_email, encoding)
            recipients = [_envelope_address(a, encoding) for a in email_message.recipients()]
            message = email_message.message()
            assert self.connection is not None  # send_messages opened it
            try:
                self.connection.sendmail(from_email, recipients, message_bytes(message))
            except smtplib.SMTPException:
                if not self.fail_silently:
                    raise
                return False
            return True


def _envelope_address(address: Any, encoding: str) -> str:
    """``sanitize_address(address, encoding)``, remembered for a plain string.

    Django parses every address with the email package's header parser for every
    message it sends (25 to 45 microseconds each); a site's batch sends from one
    address, and the result is a pure function of the two arguments. An address Django
    refuses raises ``ValueError`` every time (nothing is remembered for it).
    """
    if type(address) is str and type(encoding) is str:
        return _sanitized(address, encoding)
    return sanitize_address(address, encoding)


@functools.lru_cache(maxsize=1024)
def _sanitized(address: str, encoding: str) -> str:
    return sanitize_address(address, encoding)


#: Any line ending, as ``email.generator`` finds them (its ``NLCRE``).
_LINE_ENDING = re.compile(r"\r\n|\r|\n")


class _OneWriteBytesGenerator(BytesGenerator):
    """Python's ``BytesGenerator``, writing each part's text in one call.

    The original writes a text line by line, two calls a line (the line, then the line
    ending): about 300 calls for a billing request with its PDF. This changes every
    line ending to the generator's in one pass and writes the result once.
    """

    def _write_lines(self, lines: str) -> None:
        if lines:
            self.write(_LINE_ENDING.sub(self._NL, lines))  # type: ignore[attr-defined]


def message_bytes(message: Any) -> bytes:
    """What ``message.as_bytes(linesep="\r\n")`` returns, for the message an
    ``EmailMessage.message()`` built, through :class:`_OneWriteBytesGenerator`.

    Django's messages (``MIMEMixin``) and Python's own are written by ``BytesGenerator``
    without mangling ``From `` lines, as here; a message class that writes itself
    another way is asked for its own bytes.
    """
    as_bytes = getattr(type(message), "as_bytes", None)
    if as_bytes not in (MIMEMixin.as_bytes, Message.as_bytes):
        return message.as_bytes(linesep="\r\n")
    out = io.BytesIO()
    _OneWriteBytesGenerator(out, mangle_from_=False).flatten(message, linesep="\r\n")
    return out.getvalue()


# --- addresses in headers ---------------------------------------------------------------------

#: Control characters and line or paragraph separators (CR, LF, NEL, U+2028, U+2029 ...):
#: email's header code folds or splits lines at them.
_BREAKING = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _has_breaking_characters(value: str) -> bool:
    return any(unicodedata.category(char) in _BREAKING for char in value)


def check_address(value: str) -> tuple[str, str]:
    """Check that ``value`` is one address, read the same way by every part that sends it.

    ``billing@acme.example`` or ``Acme Studio <billing@acme.example>``. Returns
    ``(name, address)``; raises :class:`InvalidAddress` for several addresses
    (``a@x, b@y``, a group), control characters or line separators anywhere (U+2028
    in the name), an address Django's validator refuses, or one whose envelope form
    (what ``smtplib`` sends in MAIL FROM / RCPT TO) would not be the address typed.
    Needs no strict mode of ``email.utils``.
    """
    if _has_breaking_characters(value):
        raise InvalidAddress("control character or line separator")
    pairs = getaddresses([value])
    if len(pairs) != 1 or pairs[0] != parseaddr(value):
        raise InvalidAddress("not exactly one address")
    name, address = pairs[0]
    try:
        validate_email(address)
        header = sanitize_address(value, "utf-8")  # how Django writes it (ValueError if not)
    except (ValidationError, ValueError):
        raise InvalidAddress("not a valid address") from None
    local, _at, domain = address.rpartition("@")
    if parseaddr(header)[1] != f"{local}@{punycode(domain)}":
        raise InvalidAddress("the envelope would carry another address")
    return name, address


def one_line(text: str) -> str:
    """``text`` as one header line: control characters and line breaks become spaces."""
    cleaned = "".join(" " if unicodedata.category(c) in _BREAKING else c for c in text)
    return " ".join(cleaned.split())


# --- the connection ------------------------------------------------------------------------


@dataclass
class SiteMailer:
    """How one site sends: an unopened backend, the From address and Reply-To.

    Attributes:
        connection: a Django email backend; the caller opens and closes it.
        from_email: the site's From when it uses a custom server, else DEFAULT_FROM_EMAIL.
        reply_to: the site's Reply-To, if any (used with both kinds of connection).
        description: where mail goes, for editors ("smtp.example.com:587", "the
            project's default email settings"); never contains the password.
        custom: whether this is the site's own SMTP server.
    """

    connection: BaseEmailBackend
    from_email: str
    reply_to: list[str] = field(default_factory=list)
    description: str = ""
    custom: bool = False
    host: str = ""
    port: int | None = None
    #: Strings that must never appear in an error text (the password).
    secrets: tuple[str, ...] = ()


def mailer_for_site(site: Site, config: ClientBillingSettings | None = None) -> SiteMailer:
    """The connection a site's invoice emails go through (not yet opened).

    Raises :class:`EmailConfigurationError` when the custom server is switched on but
    cannot be used (no host, or a stored password no configured key can decrypt).
    """
    config = config or ClientBillingSettings.for_site(site)
    reply_to = [config.reply_to] if config.reply_to else []
    headers = [(_("Reply-To"), config.reply_to)]
    if config.use_custom_smtp:  # the site's From is used with its own server only
        headers.append((_("From"), config.from_email))
    for label, value in headers:
        if value:
            try:
                check_address(value)
            except InvalidAddress:
                raise EmailConfigurationError(
                    _(
                        "The %(field)s address in this site's email settings is not one valid "
                        "email address. Correct it on the Email tab."
                    )
                    % {"field": label}
                ) from None
    if not config.use_custom_smtp:
        return SiteMailer(
            connection=get_connection(fail_silently=False),
            from_email=settings.DEFAULT_FROM_EMAIL,
            reply_to=reply_to,
            description=_("the project's default email settings"),
            host=getattr(settings, "EMAIL_HOST", ""),
            port=getattr(settings, "EMAIL_PORT", None),
        )
    if not config.smtp_host:
        raise EmailConfigurationError(
            _("The custom SMTP server has no host. Enter one on the Email tab, or switch it off.")
        )
    try:
        password = config.get_smtp_password()
    except InvalidToken:
        raise EmailConfigurationError(
            _(
                "The stored SMTP password cannot be decrypted (the encryption key changed). "
                "Enter the password again on the Email tab."
            )
        ) from None
    connection = CheckedSMTPBackend(
        host=config.smtp_host,
        port=config.smtp_port,
        username=config.smtp_username,  # "" rather than None: never the project's login
        password=password,
        use_tls=config.smtp_security == SMTPSecurity.STARTTLS,
        use_ssl=config.smtp_security == SMTPSecurity.SSL,
        timeout=config.smtp_timeout,
        fail_silently=False,
    )
    return SiteMailer(
        connection=connection,
        from_email=config.from_email or settings.DEFAULT_FROM_EMAIL,
        reply_to=reply_to,
        description=f"{config.smtp_host}:{config.smtp_port}",
        custom=True,
        host=config.smtp_host,
        port=config.smtp_port,
        secrets=_auth_secrets(config.smtp_username, password) if password else (),
    )


def _auth_secrets(username: str, password: str) -> tuple[str, ...]:
    """The password, and the forms SMTP AUTH LOGIN and PLAIN send it in."""
    encoded = (password, f"\0{username}\0{password}")
    return (password, *(base64.b64encode(s.encode()).decode() for s in encoded))


# --- the messages --------------------------------------------------------------------------


class _RememberingCompat32(Compat32):
    """Python's ``compat32`` policy (the one Django 5.2's messages are built with) that
    remembers how it folded a header.

    Writing a message folds every header of every part through ``email.header``; most of
    them (From, Reply-To, MIME-Version, the parts' Content-Type and Content-Disposition)
    are the same in every message a process sends. Folding is a pure function of the
    header and these policy attributes, so a remembered result is the bytes it would
    have written.
    """

    def fold_binary(self, name: str, value: Any) -> bytes:
        if type(value) is not str:  # a Header object: not hashable, and rare
            return super().fold_binary(name, value)
        return _fold_binary(name, value, self.linesep, self.max_line_length, self.cte_type)


@functools.lru_cache(maxsize=512)
def _fold_binary(
    name: str, value: str, linesep: str, max_line_length: int | None, cte_type: str
) -> bytes:
    return Compat32(
        linesep=linesep, max_line_length=max_line_length, cte_type=cte_type
    ).fold_binary(name, value)


_REMEMBERING_COMPAT32 = _RememberingCompat32()


def _new_boundary(texts: Sequence[str]) -> str:
    """A multipart boundary that occurs in none of ``texts``.

    Python's generator draws one when it writes the message and then compiles a regular
    expression to check that no line of the parts is that boundary: per multipart, per
    message. This one is as long as Python's (so the Content-Type header folds the
    same), random (95 bits from ``os.urandom``, in base32) and drawn after the content
    exists, so the content cannot have been made to contain it; the check that it does
    not is a plain substring search. Its ``=`` run never occurs in base64 or
    quoted-printable text.
    """
    while True:
        token = base64.b32encode(secrets.token_bytes(12)).decode("ascii")[:19]
        boundary = f"==============={token}=="
        if not any(boundary in text for text in texts):
            return boundary


class ClientBillingEmail(EmailMultiAlternatives):
    """Every email the app sends (billing requests, receipts, notices, portal links, the
    test email): Django's ``EmailMultiAlternatives``, written out with less work.

    :meth:`message` gives each multipart its boundary up front (:func:`_new_boundary`)
    and, on a message built with Python's ``compat32`` policy, folds headers through
    :class:`_RememberingCompat32`. The bytes have the same structure, headers and parts;
    only the boundaries' random tokens differ from run to run, as they always did.
    """

    def message(self, **kwargs: Any) -> Any:
        msg = super().message(**kwargs)
        if msg.policy is compat32:  # Django 5.2; a message on another policy keeps it
            msg.policy = _REMEMBERING_COMPAT32
        multiparts: list[Any] = []
        texts: list[str] = []
        for part in msg.walk():
            texts.extend(value for _name, value in part.raw_items() if isinstance(value, str))
            if part.is_multipart():
                if part.get_content_maintype() == "multipart" and not part.get_boundary():
                    multiparts.append(part)
            else:
                # The text the generator writes (get_payload() would decode it again).
                payload = part._payload  # type: ignore[attr-defined]
                if isinstance(payload, str):
                    texts.append(payload)
        for part in multiparts:
            part.set_boundary(_new_boundary(texts))
        return msg


def recurring_note(invoice: Invoice) -> str:
    """ "One-time payment" or "then every month": how often the client will pay."""
    interval = invoice.recurring_interval
    if interval == "week":
        # Translators: client-facing.
        return _("then every week until cancelled")
    if interval == "month":
        # Translators: client-facing.
        return _("then every month until cancelled")
    if interval == "year":
        # Translators: client-facing.
        return _("then every year until cancelled")
    # Translators: client-facing.
    return _("one-time payment")


def format_expiry(invoice: Invoice) -> str:
    """The expiry date and time in the project's time zone, with the zone's name."""
    return format_datetime(invoice.expires_at)


def payable_amount(invoice: Invoice) -> str:
    """The total the client pays, formatted; under Stripe Tax, "… + tax"."""
    total = format_money(invoice.figures.gross, invoice.currency)
    if invoice.automatic_tax:
        # Translators: client-facing.
        return _("%(amount)s + tax") % {"amount": total}
    return total


def figure_rows(invoice: Invoice) -> list[tuple[str, str]]:
    """Subtotal, discount, net, tax and total rows; none when the amount says it all."""
    rows = invoice.figure_rows
    return rows if len(rows) > 1 else []


def email_context(invoice: Invoice, kind: str = INVOICE_REQUEST) -> dict:
    """What the email templates get. Call inside the site's language."""
    site = invoice.site
    return {
        "invoice": invoice,
        "kind": kind,
        "site": site,
        "site_name": site_display_name(site),
        "number": invoice.number,
        # What the client pays (``pricing``): after any discount, with any tax rate's tax.
        "amount": payable_amount(invoice),
        "figure_rows": figure_rows(invoice),
        "description": invoice.description,
        "lines": [
            {
                "description": line.description,
                "quantity": line.quantity,
                "unit_amount": format_money(line.unit_amount, invoice.currency),
                "total": format_money(line.line_total, invoice.currency),
            }
            for line in shown_lines(invoice)
        ],
        "is_recurring": invoice.is_recurring,
        "recurring_note": recurring_note(invoice),
        "expires_at": invoice.expires_at,
        "expires": format_expiry(invoice),
        "due_date": invoice.due_date,
        "due": format_date(invoice.due_date),
        "pay_url": invoice.get_pay_url(),
        # The client portal (all their invoices and receipts), when the invoice has a client.
        "portal_url": client_portal_url(invoice),
        "language_code": translation.get_language() or settings.LANGUAGE_CODE,
        # The seller's logo, accent colour and footer; the test-mode marking.
        **documents.branding(invoice),
    }


def client_portal_url(invoice: Invoice) -> str:
    """A fresh portal link for the invoice's client, on the invoice's site; ``""``
    without a client (or for an erased one)."""
    client = invoice.client
    if client is None or client.erased_at is not None:
        return ""
    return portal_links.portal_url(client, invoice.site)


def render_text(template_name: str, context: dict) -> str:
    """Render a plain-text template (a subject, a text body): nothing is HTML-escaped.

    A site named "Smith & Sons" must not read "Smith &amp; Sons" in a subject or a text
    body, whether or not a project's own template says ``{% autoescape off %}``.
    """
    template = get_template(template_name)
    engine_template = getattr(template, "template", None)  # the Django engine's Template
    if engine_template is None:  # another engine: it decides how it escapes
        return template.render(context)
    return engine_template.render(Context(context, autoescape=False))


def _render_subject(template_name: str, context: dict) -> str:
    # A subject is one header line: newlines, U+2028 or control characters, from the
    # template or from a site's name, would break or split it.
    return one_line(render_text(template_name, context))


def _recipient(address: str) -> str:
    try:
        check_address(address)
    except InvalidAddress:
        raise RecipientInvalid(address) from None
    return address


def client_cc(invoice: Invoice) -> list[str]:
    """The client's extra addresses, copied on every email to the client: those that are
    plain valid addresses, without the one the email goes to (a bad one is skipped, not
    a reason to fail the client's email)."""
    client = invoice.client if invoice.client_id is not None else None
    if client is None:
        return []
    to = (invoice.email or "").lower()
    copied = []
    for address in client.cc_emails:
        try:
            check_address(address)
        except InvalidAddress:
            continue
        if address.lower() != to:
            copied.append(address)
    return copied


def _to_client(invoice: Invoice, to: Sequence[str]) -> bool:
    return [a.lower() for a in to] == [(invoice.email or "").lower()]


def build_invoice_message(
    invoice: Invoice, mailer: SiteMailer, kind: str = INVOICE_REQUEST
) -> EmailMultiAlternatives:
    """The multipart (text + HTML) email for one invoice, ready for ``mailer``.

    Rendered in the invoice's language (:func:`.languages.invoice_language`) from
    templates a project can override (``wagtail_client_billing/emails/<kind>.{subject.txt,
    txt,html}``); the ``client_billing_email_message`` hook may adjust the message
    afterwards.
    """
    with translation.override(invoice_language(invoice)):
        context = email_context(invoice, kind)
        base = f"wagtail_client_billing/emails/{kind}"
        message = ClientBillingEmail(
            subject=_render_subject(f"{base}.subject.txt", context),
            body=render_text(f"{base}.txt", context),
            from_email=mailer.from_email,
            to=[_recipient(invoice.email)],
            cc=client_cc(invoice),
            reply_to=mailer.reply_to,
            connection=mailer.connection,
        )
        message.attach_alternative(render_to_string(f"{base}.html", context), "text/html")
        if kind == INVOICE_REQUEST:
            _attach_pdf(message, invoice, lambda: documents.invoice_pdf(invoice))
    hooks.run(hooks.EMAIL_MESSAGE, invoice, message)
    return message


def _attach_pdf(
    message: EmailMultiAlternatives, invoice: Invoice, make: Callable[[], bytes], kind: str = ""
) -> None:
    """Attach the PDF ``make`` returns, named with the invoice's number. A PDF that
    cannot be made (a font ``PDF_FONTS`` names is gone) is logged and the email goes
    without it: the client can still pay, and the download makes it again."""
    try:
        data = make()
    except Exception:
        logger.exception("Invoice %s: the PDF could not be made", invoice.pk)
        return
    filename = documents.pdf_filename(invoice, kind or "invoice")
    message.attach(filename, data, documents.PDF_MIMETYPE)


def build_test_message(site: Site, mailer: SiteMailer, to: str) -> EmailMultiAlternatives:
    """The plain-text message the "Send test email" button sends."""
    with translation.override(default_language(site)):
        context = {
            "site": site,
            "site_name": site_display_name(site),
            "connection": mailer.description,
            "from_email": mailer.from_email,
        }
        base = f"wagtail_client_billing/emails/{TEST_EMAIL}"
        return ClientBillingEmail(
            subject=_render_subject(f"{base}.subject.txt", context),
            body=render_text(f"{base}.txt", context),
            from_email=mailer.from_email,
            to=[_recipient(to)],
            reply_to=mailer.reply_to,
            connection=mailer.connection,
        )


# --- sending -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """What happened to one invoice's email; ``error`` is None when it was sent."""

    invoice_id: int
    error: DeliveryError | None = None

    @property
    def sent(self) -> bool:
        return self.error is None


def send_invoice_emails(
    invoices: Iterable[Invoice],
    kind: str = INVOICE_REQUEST,
    on_result: Callable[[SendResult], None] | None = None,
) -> list[SendResult]:
    """Send one email per invoice, one connection per site; a result for each invoice.

    Never raises for a delivery problem: a site whose server cannot be reached fails
    all of that site's invoices with the same error, a refused recipient fails only
    its own invoice, and the connection is reused for the rest. ``on_result`` is called
    with each result as soon as it is known, before the next message: a caller records
    each outcome there, so a worker that dies mid-batch loses at most the one in flight.
    """
    by_site: dict[int, list[Invoice]] = {}
    for invoice in invoices:
        by_site.setdefault(invoice.site_id, []).append(invoice)
    results: list[SendResult] = []
    for group in by_site.values():
        results.extend(_send_for_site(group, kind, on_result or _ignore))
    return results


def _ignore(result: SendResult) -> None:
    return None


def _send_for_site(
    invoices: list[Invoice], kind: str, on_result: Callable[[SendResult], None]
) -> list[SendResult]:
    # What every message reads of its invoice, read for the whole batch at once: the
    # lines (the figures, the PDF), the client and the site's root page and locale (the
    # language). Without it each message asked for its lines three times.
    prefetch_related_objects(invoices, "lines", "client", "site__root_page__locale")
    site = invoices[0].site
    results: list[SendResult] = []

    def done(result: SendResult) -> None:
        results.append(result)
        on_result(result)

    try:
        mailer = mailer_for_site(site)
    except Exception as exc:
        error = describe_error(exc)
        for invoice in invoices:
            done(SendResult(invoice.pk, error))
        return results
    try:
        try:
            mailer.connection.open()
        except Exception as exc:
            error = describe_error(exc, mailer)
            _log_failure(error, mailer, [i.pk for i in invoices])
            for invoice in invoices:
                done(SendResult(invoice.pk, error))
            return results
        for invoice in invoices:
            try:
                message = build_invoice_message(invoice, mailer, kind)
                mailer.connection.send_messages([message])
            except Exception as exc:
                error = describe_error(exc, mailer)
                _log_failure(error, mailer, [invoice.pk])
                done(SendResult(invoice.pk, error))
                if not error.keeps_connection:
                    _drop_connection(mailer.connection)
            else:
                done(SendResult(invoice.pk))
    finally:
        _close_quietly(mailer.connection)
    return results


@dataclass(frozen=True)
class TestEmailResult:
    """What the "Send test email" button reports: where it went, or why it did not."""

    connection: str
    error: DeliveryError | None = None


def send_test_email(site: Site, to: str) -> TestEmailResult:
    """Send the test message to ``to`` through the site's connection; never raises.

    The same :func:`mailer_for_site` as invoices, opened the same way, so a test that
    passes means invoices go out too.
    """
    try:
        mailer = mailer_for_site(site)
    except Exception as exc:
        return TestEmailResult("", describe_error(exc))
    try:
        message = build_test_message(site, mailer, to)
        mailer.connection.open()
        mailer.connection.send_messages([message])
    except Exception as exc:
        error = describe_error(exc, mailer)
        _log_failure(error, mailer, "test email")
        return TestEmailResult(mailer.description, error)
    finally:
        _close_quietly(mailer.connection)
    return TestEmailResult(mailer.description)


def _drop_connection(connection: BaseEmailBackend) -> None:
    """Forget a broken SMTP session; the backend opens a fresh one for the next message."""
    _close_quietly(connection)


def _close_quietly(connection: BaseEmailBackend) -> None:
    try:
        connection.close()
    except Exception:  # closing a dead connection may raise; there is nothing to keep
        logger.debug("Closing the SMTP connection failed", exc_info=True)


def _log_failure(error: DeliveryError, mailer: SiteMailer, what: str | list[int]) -> None:
    """Log a failure with its detail (the server's reply), which editors never see."""
    if not isinstance(what, str):
        what = "invoices " + ", ".join(str(pk) for pk in what)
    logger.warning(
        "Email failed via %s (%s, %s) [%s]: %s",
        mailer.description,
        error.kind,
        "transient" if error.transient else "permanent",
        what,
        error.detail or error.message,
    )


# --- errors, in words --------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryError:
    """Why an email did not go, for an editor, the retry logic and the log.

    Attributes:
        kind: ``auth``, ``connect``, ``tls``, ``timeout``, ``recipient``, ``sender``,
            ``rejected`` (the server refused the message), ``config`` or ``unexpected``.
        transient: trying again later may work (network trouble, SMTP 4xx).
        message: a fixed sentence for the editor, in the active language. It never
            quotes the remote server, so it cannot be used to probe what listens where.
        detail: what happened, with the server's reply, for the log only (secrets
            scrubbed); empty when the message says it all.
    """

    kind: str
    transient: bool
    message: str
    detail: str = field(default="", compare=False)

    @property
    def keeps_connection(self) -> bool:
        """The SMTP session is still usable after this (a per-message refusal)."""
        return self.kind in ("recipient", "sender", "rejected")


def _detail(exc: BaseException) -> str:
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 4:
        parts.append(f"{seen.__class__.__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(parts)


def describe_error(exc: BaseException, mailer: SiteMailer | None = None) -> DeliveryError:
    """Classify what sending raised, and say it in fixed words an editor understands."""
    host = (mailer.host if mailer else "") or "?"
    where = {"host": host, "port": (mailer.port if mailer else "") or "?"}
    kind, transient, message = _classify(exc, where)
    detail = _detail(exc)
    for secret in mailer.secrets if mailer else ():
        message = message.replace(secret, "********")
        detail = detail.replace(secret, "********")
    return DeliveryError(kind, transient, message, detail)


def _cannot_connect(where: dict) -> tuple[str, bool, str]:
    return (
        "connect",
        True,
        _(
            "Cannot connect to the SMTP server at %(host)s:%(port)s. Check the host, the port "
            "and the security setting (port 465 usually needs SSL/TLS, port 587 STARTTLS), "
            "that the server accepts connections from this website, and that its certificate "
            "is valid for this host."
        )
        % where,
    )


def _classify(exc: BaseException, where: dict) -> tuple[str, bool, str]:
    if isinstance(exc, EmailConfigurationError):
        return "config", False, str(exc)
    if isinstance(exc, InvalidToken):
        return (
            "config",
            False,
            _("The stored SMTP password cannot be decrypted. Enter it again on the Email tab."),
        )
    if isinstance(exc, RecipientInvalid):
        return (
            "recipient",
            False,
            _(
                "The address %(address)s is not one valid email address, so nothing was sent "
                "to it. Correct the address and send again."
            )
            % {"address": one_line(str(exc))},
        )
    if isinstance(exc, ServerUnreachable):
        # Before the server said hello as SMTP: refused, silent, reset, a TLS handshake,
        # another protocol. One sentence for all, so nobody maps ports with it.
        return _cannot_connect(where)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return (
            "auth",
            False,
            _("Authentication failed: the SMTP server did not accept the username and password."),
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        if "STARTTLS" in str(exc).upper():
            return (
                "tls",
                False,
                _(
                    "TLS failed: the SMTP server does not offer STARTTLS. Choose SSL/TLS "
                    "(usually port 465) or no security, as your provider says."
                ),
            )
        return (
            "auth",
            False,
            _(
                "Authentication failed: the SMTP server does not accept a login on this "
                "connection. Check the security setting, or leave the username empty."
            ),
        )
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return (
            "tls",
            False,
            _(
                "TLS failed: a secure connection to %(host)s:%(port)s could not be set up. "
                "Check the security setting (port 465 usually needs SSL/TLS, port 587 "
                "STARTTLS) and that the server's certificate is valid for this host."
            )
            % where,
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.items())
        permanent = all(code >= 500 for _addr, (code, _msg) in replies)
        address = replies[0][0] if replies else "?"
        return (
            "recipient",
            not permanent,
            _("The SMTP server refused the recipient %(address)s.") % {"address": address},
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return (
            "sender",
            exc.smtp_code < 500,
            _(
                "The SMTP server refused the From address %(address)s. Use an address the "
                "server allows you to send from."
            )
            % {"address": exc.sender},
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        if 400 <= exc.smtp_code < 500:
            return "rejected", True, _("The SMTP server asked to try again later.")
        return "rejected", False, _("The SMTP server refused the message.")
    timed_out = isinstance(exc, smtplib.SMTPServerDisconnected) and (
        isinstance(exc.__context__, TimeoutError) or "timed out" in str(exc)
    )  # smtplib reports a reply that never came as a disconnection
    if timed_out or isinstance(exc, TimeoutError | socket.timeout):
        return (
            "timeout",
            True,
            _("Timed out: the SMTP server at %(host)s:%(port)s stopped answering.") % where,
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):  # after it greeted as SMTP
        return (
            "connect",
            True,
            _(
                "Cannot connect: the SMTP server at %(host)s:%(port)s closed the connection. "
                "Check the port and the security setting."
            )
            % where,
        )
    if isinstance(exc, socket.gaierror):
        return (
            "connect",
            True,
            _("Cannot connect: the SMTP host %(host)s was not found. Check its spelling.") % where,
        )
    if isinstance(exc, OSError | smtplib.SMTPException):
        return _cannot_connect(where)
    if isinstance(exc, ValueError):
        # Django refuses a header it cannot write; the checks above should have caught it.
        return (
            "config",
            False,
            _(
                "The email could not be built: an address or a header in it is not valid. "
                "Check the From and Reply-To addresses on the Email tab."
            ),
        )
    logger.error("Unexpected error while sending email", exc_info=exc)
    return (
        "unexpected",
        False,
        _("The email could not be sent because of an unexpected error (%(error)s).")
        % {"error": exc.__class__.__name__},
    )


# --- notices to the agency's billing contacts -------------------------------------------------

#: The dispute notice's templates: ``wagtail_client_billing/emails/dispute_opened.*``.
DISPUTE_OPENED = "dispute_opened"


def billing_contacts(invoice: Invoice) -> list[str]:
    """Who at the agency hears about ``invoice``: its site's billing contacts, else its
    author (when the author has an address)."""
    contacts = ClientBillingSettings.for_site(invoice.site).billing_contact_list
    if contacts:
        return contacts
    author = invoice.created_by
    address = getattr(author, "email", "") if author is not None else ""
    return [address] if address else []


def notice_context(invoice: Invoice, **extra: Any) -> dict:
    """What a notice's templates get: the invoice and its admin page, plus ``extra``
    (a callable value is called here, in the message's language: pass amounts and dates
    to format as ``lambda: format_money(...)``)."""
    extra = {name: value() if callable(value) else value for name, value in extra.items()}
    site = invoice.site
    return {
        "invoice": invoice,
        "site": site,
        "site_name": site_display_name(site),
        "number": invoice.number,
        "client": invoice.email,
        "amount": format_money(invoice.amount, invoice.currency),
        "admin_url": invoice.admin_url(),
        **extra,
    }


def _send_one(
    invoice: Invoice,
    kind: str,
    to: Sequence[str],
    context: Callable[[], dict],
    *,
    for_client: bool,
    html: bool | None = None,
    attachment: Callable[[], bytes] | None = None,
) -> DeliveryError | None:
    """Send the message ``kind`` about ``invoice`` to ``to`` through the invoice's site's
    connection, from the overridable templates
    ``wagtail_client_billing/emails/<kind>.{subject.txt,txt[,html]}``; the error (logged),
    or None once sent. Never raises. A message ``for_client`` is in the invoice's
    language, has an HTML part too, and the ``client_billing_email_message`` hook sees it
    first; a notice to the agency is plain text, in the site's language. ``html=False``
    leaves out the HTML part of a message for the client. ``attachment`` makes a PDF to
    attach (in the same language)."""
    html = for_client if html is None else html
    try:
        mailer = mailer_for_site(invoice.site)
    except Exception as exc:
        return describe_error(exc)
    try:
        language = invoice_language(invoice) if for_client else default_language(invoice.site)
        with translation.override(language):
            values = context()
            base = f"wagtail_client_billing/emails/{kind}"
            message = ClientBillingEmail(
                subject=_render_subject(f"{base}.subject.txt", values),
                body=render_text(f"{base}.txt", values),
                from_email=mailer.from_email,
                to=[_recipient(address) for address in to],
                # Whatever goes to the client (a request, a receipt, a failed renewal's
                # notice) copies their extra addresses; a notice to the agency does not.
                cc=client_cc(invoice) if for_client or _to_client(invoice, to) else [],
                reply_to=mailer.reply_to,
                connection=mailer.connection,
            )
            if html:
                message.attach_alternative(render_to_string(f"{base}.html", values), "text/html")
            if attachment is not None:
                _attach_pdf(message, invoice, attachment, kind)
        if for_client:
            hooks.run(hooks.EMAIL_MESSAGE, invoice, message)
        mailer.connection.open()
        mailer.connection.send_messages([message])
    except Exception as exc:
        error = describe_error(exc, mailer)
        _log_failure(error, mailer, [invoice.pk])
        return error
    finally:
        _close_quietly(mailer.connection)
    return None


def send_notice(
    invoice: Invoice, kind: str, to: Sequence[str], *, for_client: bool = False, **extra: Any
) -> DeliveryError | None:
    """Send the plain-text notice ``kind`` about ``invoice`` to ``to`` through the
    invoice's site's connection, in the site's language (``for_client``: in the
    invoice's, as a message to the client); the error, or None once sent."""
    return _send_one(
        invoice,
        kind,
        to,
        lambda: notice_context(invoice, **extra),
        for_client=for_client,
        html=False,
    )


# --- receipts ----------------------------------------------------------------------------

RECEIPT = "receipt"
REFUND_RECEIPT = "refund_receipt"


def send_receipt(
    invoice: Invoice, kind: str, *, amount: int, currency: str, at: Any, reference: str = ""
) -> SendResult:
    """Send the client the receipt of a payment (``kind=RECEIPT``) or a refund
    (``REFUND_RECEIPT``) through the site's connection; never raises.

    Rendered in the invoice's language from overridable templates
    (``wagtail_client_billing/emails/<kind>.{subject.txt,txt,html}``).
    """

    def context() -> dict:
        return {
            **email_context(invoice, kind),
            "receipt_amount": format_money(amount, currency),
            "receipt_date": format_datetime(at),
            "reference": reference,
            "total_refunded": format_money(invoice.amount_refunded, invoice.currency),
        }

    def pdf() -> bytes:
        return documents.receipt_pdf(
            invoice, refund=kind == REFUND_RECEIPT, amount=amount, currency=currency, at=at
        )

    return SendResult(
        invoice.pk,
        _send_one(invoice, kind, [invoice.email], context, for_client=True, attachment=pdf),
    )


# --- the client portal's new link ------------------------------------------------------------

PORTAL_LINK = "portal_link"


def send_portal_link(client: Client, site: Site) -> DeliveryError | None:
    """Email ``client`` a new portal link, built on ``site``'s address and sent through
    its connection, in the client's language (else the site's), from the overridable
    templates ``wagtail_client_billing/emails/portal_link.{subject.txt,txt,html}``; the
    error (logged), or None once sent. Never raises."""
    try:
        mailer = mailer_for_site(site)
    except Exception as exc:
        return describe_error(exc)
    try:
        with translation.override(default_language(site, client.language)):
            values = {
                "site_name": site_display_name(site),
                "portal_url": portal_links.portal_url(client, site),
                "valid_for": timesince_text(billing_settings.PORTAL_LINK_MAX_AGE),
                "language_code": translation.get_language() or settings.LANGUAGE_CODE,
            }
            base = f"wagtail_client_billing/emails/{PORTAL_LINK}"
            message = ClientBillingEmail(
                subject=_render_subject(f"{base}.subject.txt", values),
                body=render_text(f"{base}.txt", values),
                from_email=mailer.from_email,
                to=[_recipient(client.email)],
                reply_to=mailer.reply_to,
                connection=mailer.connection,
            )
            message.attach_alternative(render_to_string(f"{base}.html", values), "text/html")
        mailer.connection.open()
        mailer.connection.send_messages([message])
    except Exception as exc:
        error = describe_error(exc, mailer)
        _log_failure(error, mailer, f"portal link of client {client.pk}")
        return error
    finally:
        _close_quietly(mailer.connection)
    return None


def timesince_text(delta: Any) -> str:
    """``2 weeks``, ``1 hour``: how long a link works, in words of the active language."""
    now = timezone.now()
    return timeuntil(now + delta, now)
