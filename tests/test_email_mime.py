"""Every email the app sends goes through :class:`emails.ClientBillingEmail`, which writes
a message with less work (each multipart's boundary chosen up front, header folding
remembered): what a client's mail program reads back is the message Django would have
written. Parsed back from the bytes a real SMTP server (aiosmtpd) received."""

from __future__ import annotations

import base64
import re
from email import message_from_bytes, policy
from email.message import Message

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from tests.utils import make_invoice, use_custom_smtp
from wagtail_client_billing import emails
from wagtail_client_billing.models import Client, ClientBillingSettings

pytestmark = pytest.mark.django_db

CAFE = "Café Zoë Ångström"
#: What :func:`emails._new_boundary` draws; Python's own boundaries are digits only.
BOUNDARY = re.compile(r"^={15}(?=[2-7]*[A-Z])[A-Z2-7]{19}==$")


@pytest.fixture
def cafe(site):
    site.site_name = CAFE
    site.save()
    return site


def parsed(raw: bytes) -> Message:
    return message_from_bytes(raw, policy=policy.default)


def boundaries(message: Message) -> list[str]:
    return [part.get_boundary() for part in message.walk() if part.is_multipart()]


def test_invoice_request_reads_back_whole_with_non_ascii_subject_and_names(
    cafe, account, smtp_server
):
    use_custom_smtp(
        cafe, smtp_server, from_email=f"{CAFE} <billing@cafe.example>", reply_to="ap@cafe.example"
    )
    invoice = make_invoice(
        cafe, account, amount=1250, currency="EUR", description="Crème brûlée × 2"
    )

    (result,) = emails.send_invoice_emails([invoice])

    assert result.sent, result.error
    (envelope,) = smtp_server.envelopes
    raw = envelope.original_content
    received = parsed(raw)
    # Django (compat32) starts a long encoded subject on a folded line; Python's parser
    # keeps the fold's space, mail programs do not: as Django has always written it.
    assert str(received["Subject"]).strip() == f"Invoice {invoice.number} from {CAFE}: €12.50"
    assert received["From"].addresses[0].display_name == CAFE
    assert received["From"].addresses[0].addr_spec == "billing@cafe.example"
    assert str(received["Reply-To"]) == "ap@cafe.example"
    assert str(received["To"]) == invoice.email
    assert received["Message-ID"] and received["Date"]
    # multipart/mixed: the alternatives (text, HTML), then the invoice's PDF.
    assert received.get_content_type() == "multipart/mixed"
    body, pdf = received.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    text, html = body.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert "Crème brûlée × 2" in text.get_content()
    assert html.get_content_type() == "text/html"
    assert "Crème brûlée × 2" in html.get_content()
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename().endswith(".pdf")
    assert pdf.get_content().startswith(b"%PDF-")
    # Chosen up front: two different random tokens, in none of the parts.
    chosen = boundaries(received)
    assert len(chosen) == 2 and chosen[0] != chosen[1]
    assert all(BOUNDARY.match(b) for b in chosen), chosen
    assert received.defects == [] and all(p.defects == [] for p in received.walk())


def test_every_email_to_a_client_or_the_agency_is_a_client_billing_email(cafe, account, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ClientBillingSettings.objects.filter(site=cafe).update(billing_contacts="owner@cafe.example")
    client = Client.objects.create(email="zoe@client.example", name="Zoë")
    invoice = make_invoice(cafe, account, email="zoe@client.example", client=client)

    assert emails.send_invoice_emails([invoice])[0].sent
    at = timezone.now()
    assert emails.send_receipt(invoice, emails.RECEIPT, amount=1000, currency="USD", at=at).sent
    refund = emails.send_receipt(invoice, emails.REFUND_RECEIPT, amount=500, currency="USD", at=at)
    assert refund.sent
    assert (
        emails.send_notice(
            invoice, "paid_notice", ["owner@cafe.example"], paid_amount="$10.00", paid_at=at
        )
        is None
    )
    assert emails.send_portal_link(client, cafe) is None
    assert emails.send_test_email(cafe, "editor@cafe.example").error is None

    assert len(mail.outbox) == 6
    assert all(type(m) is emails.ClientBillingEmail for m in mail.outbox), [
        type(m) for m in mail.outbox
    ]
    # Each multipart in them has its boundary before anything writes the message.
    for sent in mail.outbox:
        message = sent.message()
        for part in message.walk():
            if part.is_multipart():
                assert BOUNDARY.match(part.get_boundary() or ""), sent.subject


def _normalized(raw: bytes, message: Message) -> bytes:
    for n, boundary in enumerate(boundaries(message)):
        raw = raw.replace(boundary.encode(), f"BOUNDARY-{n}".encode())
    return raw


def test_the_bytes_are_those_django_writes_but_for_the_boundaries(cafe, account):
    """The same message through Django's own ``message()`` (the generator draws the
    boundaries and folds every header afresh) and through ours: byte for byte the same
    once the boundaries are named alike. Long and non-ASCII headers fold the same, the
    first time and when remembered."""
    client = Client.objects.create(email="zoe@client.example", name="Zoë")
    client.extra_emails = "\n".join(f"copy{n}@a-rather-long-domain-name.example" for n in range(6))
    client.save()
    invoice = make_invoice(
        cafe, account, email="zoe@client.example", client=client, description="Ünïcödé " * 30
    )
    mailer = emails.mailer_for_site(cafe)
    for _ in range(2):  # the second time, the folding is remembered
        message = emails.build_invoice_message(invoice, mailer)
        message.extra_headers.update(
            {"Date": "Mon, 30 Nov 2026 20:00:00 -0000", "Message-ID": "<fixed@cafe.example>"}
        )
        ours = message.message()
        theirs = EmailMultiAlternatives.message(message)
        ours_raw, theirs_raw = ours.as_bytes(linesep="\r\n"), theirs.as_bytes(linesep="\r\n")
        assert b"=?utf-8?" in ours_raw.split(b"\r\n\r\n", 1)[0]  # an encoded header
        assert _normalized(ours_raw, ours) == _normalized(theirs_raw, theirs)


def test_a_boundary_found_in_the_content_is_drawn_again(cafe, account, monkeypatch):
    invoice = make_invoice(cafe, account)
    message = emails.build_invoice_message(invoice, emails.mailer_for_site(cafe))
    taken, second, third = (bytes([n]) * 12 for n in (1, 2, 3))
    drawn = [base64.b32encode(t).decode()[:19] for t in (taken, second, third)]
    message.body += f"\n--==============={drawn[0]}==\n"
    tokens = iter([taken, second, third])
    monkeypatch.setattr(emails.secrets, "token_bytes", lambda n: next(tokens))

    written = message.message()

    assert boundaries(written) == [f"==============={drawn[1]}==", f"==============={drawn[2]}=="]
    received = parsed(written.as_bytes(linesep="\r\n"))
    text = received.get_body(("plain",)).get_content()
    assert f"--==============={drawn[0]}==" in text
    assert [p.get_content_type() for p in received.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]


def test_a_boundary_a_hook_chose_is_kept(cafe, account):
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    invoice = make_invoice(cafe, account)
    message = emails.build_invoice_message(invoice, emails.mailer_for_site(cafe))
    extra = MIMEMultipart("related", boundary="hook-chose-this")
    extra.attach(MIMEText("extra part"))
    message.attach(extra)

    received = parsed(message.message().as_bytes(linesep="\r\n"))

    assert "hook-chose-this" in boundaries(received)
    assert "extra part" in [
        p.get_content() for p in received.walk() if p.get_content_type() == "text/plain"
    ]


# --- what the site's own server is sent (CheckedSMTPBackend) -----------------------------------


def _fixed(message: EmailMultiAlternatives) -> EmailMultiAlternatives:
    message.extra_headers.update(
        {"Date": "Mon, 30 Nov 2026 20:00:00 -0000", "Message-ID": "<fixed@cafe.example>"}
    )
    return message


def test_written_bytes_are_those_as_bytes_writes(cafe, account):
    """:func:`emails.message_bytes` writes each part's text in one call: the bytes are
    those of ``as_bytes``, for every kind of line ending and text the app sends."""
    invoice = make_invoice(
        cafe, account, email="zoe@client.example", description="Ünïcödé " * 30 + "\nFrom here"
    )
    mailer = emails.mailer_for_site(cafe)
    request = _fixed(emails.build_invoice_message(invoice, mailer))
    request.body = "CRLF\r\nCR only\rLF\n\nno line ending at the end"
    test_email = _fixed(emails.build_test_message(cafe, mailer, "editor@cafe.example"))
    empty = _fixed(emails.ClientBillingEmail("Empty", "", "a@cafe.example", ["b@cafe.example"]))

    for sent in (request, test_email, empty):
        message = sent.message()
        assert emails.message_bytes(message) == message.as_bytes(linesep="\r\n"), sent.subject
    # The text is all there: one line per line ending, each ending CRLF.
    written = emails.message_bytes(request.message())
    assert b"CRLF\r\nCR only\r\nLF\r\n\r\nno line ending at the end" in written
    assert b"\r\nFrom here" in written  # not mangled into ">From"


def test_the_site_server_gets_the_envelope_and_bytes_djangos_backend_sends(
    cafe, account, smtp_server
):
    """The site's backend sends what Django's own SMTP backend sends for the same
    message: the same MAIL FROM and RCPT TO (a non-ASCII name, an internationalised
    domain), the same bytes; the second message of a batch too, whose addresses the
    backend had seen."""
    from django.core.mail.backends.smtp import EmailBackend

    use_custom_smtp(cafe, smtp_server, from_email=f"{CAFE} <billing@cafe.example>")
    client = Client.objects.create(email="zoe@client.example", name="Zoë")
    client.extra_emails = "compta@bücher.example"
    client.save()
    invoice = make_invoice(cafe, account, email="zoe@client.example", client=client)
    mailer = emails.mailer_for_site(cafe)
    message = _fixed(emails.build_invoice_message(invoice, mailer))
    django_backend = EmailBackend(host="127.0.0.1", port=smtp_server.port, timeout=5)

    assert mailer.connection.send_messages([message, message]) == 2
    assert django_backend.send_messages([message]) == 1

    ours, again, theirs = smtp_server.envelopes
    assert ours.mail_from == again.mail_from == theirs.mail_from
    assert ours.rcpt_tos == again.rcpt_tos == theirs.rcpt_tos
    assert "compta@xn--bcher-kva.example" in ours.rcpt_tos
    contents = [e.original_content for e in (ours, again, theirs)]
    normalized = [_normalized(raw, parsed(raw)) for raw in contents]
    assert normalized[0] == normalized[1] == normalized[2]


def test_an_address_django_refuses_is_refused_every_time(cafe, account, smtp_server):
    use_custom_smtp(cafe, smtp_server)
    mailer = emails.mailer_for_site(cafe)
    message = emails.ClientBillingEmail(
        "Hello", "Text", mailer.from_email, ["a@b@c.example"], connection=mailer.connection
    )

    for _ in range(2):  # nothing is remembered of a refused address
        with pytest.raises(ValueError, match="Invalid address"):
            mailer.connection.send_messages([message])
    assert smtp_server.envelopes == []
