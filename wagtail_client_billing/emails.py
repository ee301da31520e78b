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

The SMTP password is decrypted only into the backend object; it is never part of a
message, a log line or an error text (:func:`describe_error` scrubs it if a server
ever echoes it).
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from wagtail.models import Site

from . import hooks
from .models import ClientBillingSettings, Invoice, SMTPSecurity
from .money import format_money

logger = logging.getLogger(__name__)

#: Email kinds and their templates under ``wagtail_client_billing/emails/``.
INVOICE_REQUEST = "invoice_request"
REMINDER = "reminder"
TEST_EMAIL = "test_email"


class EmailConfigurationError(Exception):
    """The site's email settings cannot be used as they are; ``str()`` says why."""


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
    connection = SMTPBackend(
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
        secrets=(password,) if password else (),
    )


# --- the messages --------------------------------------------------------------------------


def site_language(site: Site) -> str:
    """The language a site's clients read: its root page's locale, else LANGUAGE_CODE."""
    try:
        return site.root_page.locale.language_code or settings.LANGUAGE_CODE
    except Exception:  # no root page or locale (an unusual install): the project's language
        return settings.LANGUAGE_CODE


def recurring_note(invoice: Invoice) -> str:
    """ "One-time payment" or "then every month": how often the client will pay."""
    interval = invoice.recurring_interval
    if interval == "week":
        return _("then every week until cancelled")
    if interval == "month":
        return _("then every month until cancelled")
    if interval == "year":
        return _("then every year until cancelled")
    return _("one-time payment")


def format_expiry(invoice: Invoice) -> str:
    """The expiry date and time in the project's time zone, with the zone's name."""
    local = timezone.localtime(invoice.expires_at)
    return f"{date_format(local, 'DATETIME_FORMAT')} {local.tzname() or ''}".strip()


def email_context(invoice: Invoice, kind: str = INVOICE_REQUEST) -> dict:
    """What the email templates get. Call inside the site's language."""
    site = invoice.site
    return {
        "invoice": invoice,
        "kind": kind,
        "site": site,
        "site_name": site.site_name or site.hostname,
        "number": invoice.number,
        "amount": format_money(invoice.amount, invoice.currency),
        "description": invoice.description,
        "is_recurring": invoice.is_recurring,
        "recurring_note": recurring_note(invoice),
        "expires_at": invoice.expires_at,
        "expires": format_expiry(invoice),
        "pay_url": invoice.get_pay_url(),
        "language_code": translation.get_language() or settings.LANGUAGE_CODE,
    }


def _render_subject(template: str, context: dict) -> str:
    # A subject is one line: a template's newlines would make the header invalid.
    return " ".join(render_to_string(template, context).split())


def build_invoice_message(
    invoice: Invoice, mailer: SiteMailer, kind: str = INVOICE_REQUEST
) -> EmailMultiAlternatives:
    """The multipart (text + HTML) email for one invoice, ready for ``mailer``.

    Rendered in the site's language from templates a project can override
    (``wagtail_client_billing/emails/<kind>.{subject.txt,txt,html}``); the
    ``client_billing_email_message`` hook may adjust the message afterwards.
    """
    with translation.override(site_language(invoice.site)):
        context = email_context(invoice, kind)
        base = f"wagtail_client_billing/emails/{kind}"
        message = EmailMultiAlternatives(
            subject=_render_subject(f"{base}.subject.txt", context),
            body=render_to_string(f"{base}.txt", context),
            from_email=mailer.from_email,
            to=[invoice.email],
            reply_to=mailer.reply_to,
            connection=mailer.connection,
        )
        message.attach_alternative(render_to_string(f"{base}.html", context), "text/html")
    hooks.run(hooks.EMAIL_MESSAGE, invoice, message)
    return message


def build_test_message(site: Site, mailer: SiteMailer, to: str) -> EmailMultiAlternatives:
    """The plain-text message the "Send test email" button sends."""
    with translation.override(site_language(site)):
        context = {
            "site": site,
            "site_name": site.site_name or site.hostname,
            "connection": mailer.description,
            "from_email": mailer.from_email,
        }
        base = f"wagtail_client_billing/emails/{TEST_EMAIL}"
        return EmailMultiAlternatives(
            subject=_render_subject(f"{base}.subject.txt", context),
            body=render_to_string(f"{base}.txt", context),
            from_email=mailer.from_email,
            to=[to],
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
    invoices: Iterable[Invoice], kind: str = INVOICE_REQUEST
) -> list[SendResult]:
    """Send one email per invoice, one connection per site; a result for each invoice.

    Never raises for a delivery problem: a site whose server cannot be reached fails
    all of that site's invoices with the same error, a refused recipient fails only
    its own invoice, and the connection is reused for the rest.
    """
    by_site: dict[int, list[Invoice]] = {}
    for invoice in invoices:
        by_site.setdefault(invoice.site_id, []).append(invoice)
    results: list[SendResult] = []
    for group in by_site.values():
        results.extend(_send_for_site(group, kind))
    return results


def _send_for_site(invoices: list[Invoice], kind: str) -> list[SendResult]:
    site = invoices[0].site
    try:
        mailer = mailer_for_site(site)
    except Exception as exc:
        error = describe_error(exc)
        return [SendResult(invoice.pk, error) for invoice in invoices]
    results: list[SendResult] = []
    try:
        try:
            mailer.connection.open()
        except Exception as exc:
            error = describe_error(exc, mailer)
            _log_failure(error, mailer, [i.pk for i in invoices])
            return [SendResult(invoice.pk, error) for invoice in invoices]
        for invoice in invoices:
            try:
                message = build_invoice_message(invoice, mailer, kind)
                mailer.connection.send_messages([message])
            except Exception as exc:
                error = describe_error(exc, mailer)
                _log_failure(error, mailer, [invoice.pk])
                results.append(SendResult(invoice.pk, error))
                if not error.keeps_connection:
                    _drop_connection(mailer.connection)
            else:
                results.append(SendResult(invoice.pk))
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
        return TestEmailResult(mailer.description, describe_error(exc, mailer))
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


def _log_failure(error: DeliveryError, mailer: SiteMailer, invoice_ids: list[int]) -> None:
    logger.warning(
        "Invoice email failed via %s (%s, %s): %s [invoices %s]",
        mailer.description,
        error.kind,
        "transient" if error.transient else "permanent",
        error.message,
        ", ".join(str(pk) for pk in invoice_ids),
    )


# --- errors, in words --------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryError:
    """Why an email did not go, for an editor and for the retry logic.

    Attributes:
        kind: ``auth``, ``connect``, ``tls``, ``timeout``, ``recipient``, ``sender``,
            ``rejected`` (the server refused the message), ``config`` or ``unexpected``.
        transient: trying again later may work (network trouble, SMTP 4xx).
        message: a sentence for the editor, in the active language.
    """

    kind: str
    transient: bool
    message: str

    @property
    def keeps_connection(self) -> bool:
        """The SMTP session is still usable after this (a per-message refusal)."""
        return self.kind in ("recipient", "sender", "rejected")


def _reply(code: int | None, text: bytes | str | None) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(part for part in (str(code or ""), (text or "").strip()) if part)


def describe_error(exc: BaseException, mailer: SiteMailer | None = None) -> DeliveryError:
    """Classify what sending raised, and say it in words an editor understands."""
    host = (mailer.host if mailer else "") or "?"
    where = {"host": host, "port": (mailer.port if mailer else "") or "?"}
    kind, transient, message = _classify(exc, where)
    for secret in mailer.secrets if mailer else ():
        message = message.replace(secret, "********")
    return DeliveryError(kind, transient, message)


def _classify(exc: BaseException, where: dict) -> tuple[str, bool, str]:
    if isinstance(exc, EmailConfigurationError):
        return "config", False, str(exc)
    if isinstance(exc, InvalidToken):
        return (
            "config",
            False,
            _("The stored SMTP password cannot be decrypted. Enter it again on the Email tab."),
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return (
            "auth",
            False,
            _(
                "Authentication failed: the SMTP server did not accept the username and "
                "password (%(reply)s)."
            )
            % {"reply": _reply(exc.smtp_code, exc.smtp_error)},
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
                "TLS failed: a secure connection to %(host)s:%(port)s could not be set up "
                "(%(reason)s). Check the security setting (port 465 usually needs SSL/TLS, "
                "port 587 STARTTLS) and that the server's certificate is valid for this host."
            )
            % {**where, "reason": getattr(exc, "reason", None) or exc.__class__.__name__},
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.items())
        permanent = all(code >= 500 for _addr, (code, _msg) in replies)
        address, (code, text) = replies[0] if replies else ("?", (None, b""))
        return (
            "recipient",
            not permanent,
            _("The SMTP server refused the recipient %(address)s (%(reply)s).")
            % {"address": address, "reply": _reply(code, text)},
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return (
            "sender",
            exc.smtp_code < 500,
            _(
                "The SMTP server refused the From address %(address)s (%(reply)s). Use an "
                "address the server allows you to send from."
            )
            % {"address": exc.sender, "reply": _reply(exc.smtp_code, exc.smtp_error)},
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        transient = 400 <= exc.smtp_code < 500
        if transient:
            sentence = _("The SMTP server asked to try again later (%(reply)s).")
        else:
            sentence = _("The SMTP server refused the message (%(reply)s).")
        return "rejected", transient, sentence % {"reply": _reply(exc.smtp_code, exc.smtp_error)}
    timed_out = isinstance(exc, smtplib.SMTPServerDisconnected) and (
        isinstance(exc.__context__, TimeoutError) or "timed out" in str(exc)
    )  # smtplib reports a reply that never came as a disconnection
    if timed_out or isinstance(exc, TimeoutError | socket.timeout):
        return (
            "timeout",
            True,
            _("Timed out: the SMTP server at %(host)s:%(port)s did not answer in time.") % where,
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
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
        return (
            "connect",
            True,
            _(
                "Cannot connect to the SMTP server at %(host)s:%(port)s (%(reason)s). Check the "
                "host and port, and that the server accepts connections from this website."
            )
            % {**where, "reason": getattr(exc, "strerror", None) or exc.__class__.__name__},
        )
    logger.error("Unexpected error while sending email", exc_info=exc)
    return (
        "unexpected",
        False,
        _("The email could not be sent because of an unexpected error (%(error)s).")
        % {"error": exc.__class__.__name__},
    )
