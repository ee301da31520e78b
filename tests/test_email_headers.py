"""What ends up in an email's headers and plain text: subjects and text bodies read as
typed (no HTML escaping), and every address is one address that the SMTP library reads
as typed, or a clear error on the invoice. Sent to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import pytest
from django.core import mail

from tests.utils import make_invoice, use_custom_smtp
from wagtail_client_billing import emails, tasks
from wagtail_client_billing.models import ClientBillingSettings, EmailStatus, Invoice

pytestmark = pytest.mark.django_db

BAKERY = "Smith & Sons' Bakery"


@pytest.fixture
def bakery(site):
    site.site_name = BAKERY
    site.save()
    return site


def received_text(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def received_html(message) -> str:
    return message.get_body(("html",)).get_content()


# --- no HTML escaping outside HTML ------------------------------------------------------------


def test_invoice_subject_and_text_body_read_as_typed(bakery, account, smtp_server):
    use_custom_smtp(bakery, smtp_server)
    invoice = make_invoice(
        bakery, account, amount=1000, currency="USD", description="Tea & <cakes> for 'Ann'"
    )

    (result,) = emails.send_invoice_emails([invoice])

    assert result.sent, result.error
    (received,) = smtp_server.messages
    assert received["Subject"] == f"Invoice {invoice.number} from Smith & Sons' Bakery: $10.00"
    expires = emails.format_expiry(invoice)
    assert received_text(received) == (
        "Hello,\n"
        "\n"
        "Smith & Sons' Bakery has sent you an invoice.\n"
        "\n"
        "*** Test mode — no real payment ***\n"  # a test-mode invoice says so
        "\n"
        f"Number: {invoice.number}\n"
        "Amount: $10.00 (one-time payment)\n"
        "For: Tea & <cakes> for 'Ann'\n"
        f"Pay by: {expires}\n"
        "\n"
        "Pay securely online:\n"
        f"{invoice.get_pay_url()}\n"
        "\n"
        f"After {expires} this link no longer works; ask Smith & Sons' Bakery for a new "
        "invoice if you need one.\n"
        "\n"
        "\n"
        "If you have a question about this invoice, reply to this email.\n"
        "\n"
        "Smith & Sons' Bakery\n"
        "\n"
    )


def test_html_body_still_escapes_what_it_shows(bakery, account, smtp_server):
    use_custom_smtp(bakery, smtp_server)
    invoice = make_invoice(bakery, account, description="<script>alert(1)</script>")

    assert emails.send_invoice_emails([invoice])[0].sent

    html = received_html(smtp_server.messages[0])
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Smith &amp; Sons&#x27; Bakery" in html


def test_reminder_subject_reads_as_typed(bakery, account, smtp_server):
    use_custom_smtp(bakery, smtp_server)
    invoice = make_invoice(bakery, account)

    assert emails.send_invoice_emails([invoice], emails.REMINDER)[0].sent

    (received,) = smtp_server.messages
    assert received["Subject"] == (
        f"Reminder: invoice {invoice.number} from Smith & Sons' Bakery can be paid until "
        # One plain line: the time's narrow no-break space (Babel's "5:05\u202fPM") too.
        f"{emails.one_line(emails.format_expiry(invoice))}"
    )
    assert "A reminder: invoice" in received_text(received)
    assert "&amp;" not in received_text(received) and "&#x27;" not in received_text(received)


def test_test_email_subject_and_body_read_as_typed(bakery, smtp_server):
    use_custom_smtp(bakery, smtp_server)

    assert emails.send_test_email(bakery, "editor@acme.example").error is None

    (received,) = smtp_server.messages
    assert received["Subject"] == "Test email from Smith & Sons' Bakery's Client Billing"
    assert received_text(received) == (
        "This is a test email from the Client Billing settings of Smith & Sons' Bakery.\n"
        "\n"
        f"It was sent through 127.0.0.1:{smtp_server.port}, from Acme Studio "
        "<billing@acme.example>: invoice emails for this site go out the same way.\n"
        "\n"
    )


def test_a_site_name_with_line_separators_gives_a_one_line_subject(site, account, smtp_server):
    site.site_name = "Smith\u2028&\x85Sons\x1b\u2029Bakery"
    site.save()
    use_custom_smtp(site, smtp_server)
    invoice = make_invoice(site, account, amount=1000, currency="USD")

    assert emails.send_invoice_emails([invoice])[0].sent

    (received,) = smtp_server.messages
    assert received["Subject"] == f"Invoice {invoice.number} from Smith & Sons Bakery: $10.00"


# --- one address, read as typed -------------------------------------------------------------


@pytest.mark.parametrize(
    "from_email",
    [
        "a@x.example, b@y.example",
        "Acme <billing@acme.example>, other@evil.example",
        "Acme\u2028Studio <billing@acme.example>",
        "Acme\x85Studio <billing@acme.example>",
        "billing@acme\u2028.example",
    ],
    ids=["two addresses", "name and a second address", "U+2028", "NEL", "U+2028 in domain"],
)
def test_a_stored_bad_from_fails_every_email_with_a_clear_error(
    site, account, smtp_server, from_email
):
    # Stored before the settings form checked it as the SMTP library reads it.
    use_custom_smtp(site, smtp_server, from_email=from_email)
    invoice = make_invoice(site, account)
    tasks.queue_invoice_email(invoice)

    assert tasks.send_invoice_email(invoice.pk, 0) == "failed"

    invoice = Invoice.objects.get(pk=invoice.pk)
    assert invoice.email_status == EmailStatus.FAILED
    assert invoice.email_last_error == (
        "The From address in this site's email settings is not one valid email address. "
        "Correct it on the Email tab."
    )
    assert smtp_server.messages == []


def test_a_stored_bad_reply_to_fails_with_a_clear_error_with_the_default_connection(site, account):
    config = ClientBillingSettings.for_site(site)
    config.reply_to = "hello@acme\u2028.example"
    config.save()
    invoice = make_invoice(site, account)
    tasks.queue_invoice_email(invoice)

    assert tasks.send_invoice_email(invoice.pk, 0) == "failed"

    invoice = Invoice.objects.get(pk=invoice.pk)
    assert invoice.email_last_error.startswith("The Reply-To address in this site's email")
    assert mail.outbox == []


def test_a_stored_bad_client_address_fails_its_own_invoice_only(site, account, smtp_server):
    use_custom_smtp(site, smtp_server)
    bad = make_invoice(site, account, email="client@exa\u2028mple.com")
    good = make_invoice(site, account, email="client@example.com")

    results = {r.invoice_id: r for r in emails.send_invoice_emails([bad, good])}

    assert results[good.pk].sent
    error = results[bad.pk].error
    assert (error.kind, error.transient) == ("recipient", False)
    assert error.message.startswith("The address client@exa mple.com is not one valid email")
    assert [m["To"] for m in smtp_server.messages] == ["client@example.com"]
