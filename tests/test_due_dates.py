"""Payment link lifetimes per request, due dates and reminders (issue 19).

The lifetime (after which the invoice is Expired) is set per request up to the site's
longest; a due date inside it makes the invoice overdue (a tag, a filter) while it
stays payable until it expires. Reminders before the due date (or expiry) and on it
are each sent once, as each site's settings say.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from tests.test_admin_invoices import form_data, url
from tests.utils import make_emulated_invoice, make_invoice, make_user
from wagtail_client_billing import emails, lifecycle, tasks
from wagtail_client_billing.billing import invoices
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    ClientBillingSettings,
    EmailStatus,
    Invoice,
)

# A Monday morning in the tests' time zone (UTC in tests.settings).
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def admin(db, client):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return user


def errors(response) -> dict[str, list[str]]:
    form = response.context["form"]
    return {name: [str(e) for e in errs] for name, errs in form.errors.items()}


# --- lifetime and due date on the form ---------------------------------------------------------


def test_lifetime_in_days_sets_the_expiry_and_the_due_date_is_kept(
    client, admin, connected_site, django_capture_on_commit_callbacks
):
    with (
        time_machine.travel(NOW, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        client.post(
            url("add"),
            form_data(
                connected_site, lifetime_value="7", lifetime_unit="days", due_date="2026-03-06"
            ),
        )
    invoice = Invoice.objects.get()
    assert invoice.expires_at == NOW + timedelta(days=7)
    assert invoice.payment_link_lifetime == timedelta(days=7)
    assert invoice.due_date == date(2026, 3, 6)
    # The client is told both.
    body = mail.outbox[0].body
    html = mail.outbox[0].alternatives[0][0]
    assert "Due: March 6, 2026" in body and "March 6, 2026" in html
    assert "Pay by: March 9, 2026" in body


def test_lifetime_in_hours_and_the_default_stays_24_hours(client, admin, connected_site):
    with time_machine.travel(NOW, tick=False):
        client.post(
            url("add"), form_data(connected_site, lifetime_value="36", lifetime_unit="hours")
        )
        client.post(url("add"), form_data(connected_site))
    hours, default = Invoice.objects.order_by("pk")
    assert hours.expires_at == NOW + timedelta(hours=36)
    assert default.expires_at == NOW + timedelta(hours=24)
    assert default.payment_link_lifetime is None


def test_lifetime_beyond_the_site_maximum_is_a_form_error(client, admin, connected_site):
    ClientBillingSettings.objects.filter(site=connected_site).update(
        payment_link_max_lifetime_days=10
    )
    response = client.post(
        url("add"), form_data(connected_site, lifetime_value="11", lifetime_unit="days")
    )
    assert errors(response) == {"lifetime_value": ["The longest lifetime on this site is 10 days."]}
    assert not Invoice.objects.exists()


def test_due_date_after_the_link_expires_or_in_the_past_is_a_form_error(
    client, admin, connected_site
):
    with time_machine.travel(NOW, tick=False):
        late = client.post(url("add"), form_data(connected_site, due_date="2026-03-04"))
        past = client.post(url("add"), form_data(connected_site, due_date="2026-03-01"))
    assert "on or before the day the payment link expires" in errors(late)["due_date"][0]
    assert errors(past) == {"due_date": ["The due date has passed. Choose today or a later day."]}
    assert not Invoice.objects.exists()


def test_draft_lifetime_counts_from_sending(admin, connected_site, account):
    with time_machine.travel(NOW, tick=False):
        draft = make_invoice(
            connected_site, account, status="draft", payment_link_lifetime=timedelta(days=3)
        )
    sent_at = NOW + timedelta(days=5)
    with time_machine.travel(sent_at, tick=False):
        invoices.send(draft, user=admin)
    assert draft.expires_at == sent_at + timedelta(days=3)


# --- overdue ----------------------------------------------------------------------------------------


def test_overdue_is_a_tag_and_a_filter_while_the_invoice_stays_payable(
    client, admin, connected_site, account
):
    with time_machine.travel(NOW, tick=False):
        overdue = make_invoice(
            connected_site,
            account,
            email="late@client.example",
            due_date=date(2026, 3, 3),
            expires_at=NOW + timedelta(days=7),
        )
        make_invoice(
            connected_site,
            account,
            email="ontime@client.example",
            due_date=date(2026, 3, 5),
            expires_at=NOW + timedelta(days=7),
        )
    with time_machine.travel(NOW + timedelta(days=2), tick=False):
        overdue.refresh_from_db()
        assert overdue.is_overdue and overdue.is_payable and overdue.status == "pending"
        listing = client.get(url("list") + "?overdue=overdue").content.decode()
        assert "late@client.example" in listing and "ontime@client.example" not in listing
        assert "Overdue" in listing
        status = client.get(
            reverse("wagtail_client_billing:invoice_status", args=[overdue.token])
        ).json()
        assert status["overdue"] is True and status["payable"] is True
        assert status["due_date"] == "2026-03-03"
    # Once the link expires it is Expired, no longer overdue.
    with time_machine.travel(NOW + timedelta(days=8), tick=False):
        lifecycle.expire_due()
        overdue.refresh_from_db()
        assert overdue.status == "expired" and not overdue.is_overdue
        assert (
            "late@client.example"
            not in client.get(url("list") + "?overdue=overdue").content.decode()
        )


# --- a 7-day link across Checkout Sessions ----------------------------------------------------------


def test_a_seven_day_link_opens_a_new_checkout_session_per_click_and_is_paid_on_day_five(
    db, client, stripe_emulator
):
    # Stripe's Checkout Sessions live between 30 minutes and 24 hours (its docs on
    # expires_at); a longer link gets a new session on a click after the last one ran out.
    stripe_emulator.webhooks_enabled = False
    with time_machine.travel(NOW, tick=False):
        invoice = make_emulated_invoice(
            stripe_emulator, "week.example", expires_at=NOW + timedelta(days=7)
        )
        first = client.get(urlsplit(invoice.get_pay_url()).path)
    assert first.status_code == 303
    invoice.refresh_from_db()
    first_session = invoice.checkout_session_id
    assert invoice.checkout_session_expires_at <= NOW + timedelta(hours=24)

    day5 = NOW + timedelta(days=5)
    with time_machine.travel(day5, tick=False):
        again = client.get(urlsplit(invoice.get_pay_url()).path)
        invoice.refresh_from_db()
        assert again.status_code == 303 and invoice.status == "pending"
        assert invoice.checkout_session_id != first_session
        assert day5 < invoice.checkout_session_expires_at <= day5 + timedelta(hours=24)
        stripe_emulator.pay(invoice.checkout_session_id)
        back = client.get(
            urlsplit(invoice.public_url("return")).path
            + f"?session_id={invoice.checkout_session_id}"
        )
    assert back.status_code == 303
    invoice.refresh_from_db()
    assert invoice.status == "paid" and not invoice.late_payment


# --- reminders -----------------------------------------------------------------------------------


def sent_invoice(site, account, **kwargs) -> Invoice:
    invoice = make_invoice(site, account, **kwargs)
    Invoice.objects.filter(pk=invoice.pk).update(email_status=EmailStatus.SENT)
    invoice.refresh_from_db()
    return invoice


def test_site_reminders_before_the_due_date_and_on_it_each_go_once(
    connected_site, account, time_machine
):
    ClientBillingSettings.objects.filter(site=connected_site).update(reminder_before_hours=24)
    time_machine.move_to(NOW, tick=False)
    invoice = sent_invoice(
        connected_site, account, due_date=date(2026, 3, 5), expires_at=NOW + timedelta(days=7)
    )
    assert tasks.send_expiry_reminders() == 0  # three days ahead: nothing yet

    time_machine.move_to(datetime(2026, 3, 4, 0, 30, tzinfo=UTC))  # a day before
    assert tasks.send_expiry_reminders() == 1
    assert tasks.send_expiry_reminders() == 0
    assert "is due on March 5, 2026" in mail.outbox[0].body

    time_machine.move_to(datetime(2026, 3, 5, 0, 10, tzinfo=UTC))  # the due date
    assert tasks.send_expiry_reminders() == 1
    assert tasks.send_expiry_reminders() == 0
    assert mail.outbox[1].subject == f"Invoice {invoice.number} from client-a.example is due today"

    time_machine.move_to(datetime(2026, 3, 6, 12, 0, tzinfo=UTC))  # overdue: no more
    assert tasks.send_expiry_reminders() == 0
    assert len(mail.outbox) == 2
    actions = set(
        ClientBillingLogEntry.objects.filter(object_id=str(invoice.pk)).values_list(
            "action", flat=True
        )
    )
    assert {
        "wagtail_client_billing.reminder_sent",
        "wagtail_client_billing.due_reminder_sent",
    } <= actions


def test_site_setting_overrides_the_developer_default(
    site, account, settings, time_machine, connected_site
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "REMINDER_BEFORE": timedelta(hours=2),
    }
    time_machine.move_to(NOW, tick=False)
    sent_invoice(connected_site, account, expires_at=NOW + timedelta(hours=1))
    ClientBillingSettings.objects.filter(site=connected_site).update(reminder_before_hours=0)
    assert tasks.send_expiry_reminders() == 0  # 0: this site sends no such reminder

    ClientBillingSettings.objects.filter(site=connected_site).update(reminder_before_hours=None)
    assert tasks.send_expiry_reminders() == 1  # blank: the developer's default
    assert "still open" in mail.outbox[0].body


def test_due_date_reminder_can_be_turned_off_per_site(connected_site, account, time_machine):
    time_machine.move_to(NOW, tick=False)
    sent_invoice(
        connected_site, account, due_date=date(2026, 3, 2), expires_at=NOW + timedelta(days=2)
    )
    ClientBillingSettings.objects.filter(site=connected_site).update(remind_on_due_date=False)
    assert tasks.send_expiry_reminders() == 0
    ClientBillingSettings.objects.filter(site=connected_site).update(remind_on_due_date=True)
    assert tasks.send_expiry_reminders() == 1


def test_reminders_never_go_to_drafts_or_paid_invoices(connected_site, account, time_machine):
    ClientBillingSettings.objects.filter(site=connected_site).update(reminder_before_hours=48)
    time_machine.move_to(NOW, tick=False)
    sent_invoice(
        connected_site,
        account,
        status="draft",
        due_date=date(2026, 3, 2),
        expires_at=NOW + timedelta(hours=5),
    )
    sent_invoice(
        connected_site,
        account,
        status="paid",
        due_date=date(2026, 3, 2),
        expires_at=NOW + timedelta(hours=5),
    )
    assert tasks.send_expiry_reminders() == 0
    assert mail.outbox == []


def test_due_reminder_claimed_by_a_dead_run_is_sent_later(connected_site, account, time_machine):
    time_machine.move_to(NOW, tick=False)
    invoice = sent_invoice(
        connected_site, account, due_date=date(2026, 3, 2), expires_at=NOW + timedelta(days=2)
    )
    Invoice.objects.filter(pk=invoice.pk).update(due_reminder_claimed_at=timezone.now())
    assert tasks.send_expiry_reminders() == 0  # the claim may be a live run's
    time_machine.shift(tasks.claim_lease() + timedelta(seconds=1))
    assert tasks.send_expiry_reminders() == 1
    assert tasks.send_expiry_reminders() == 0


def test_email_context_names_the_due_date(connected_site, account):
    invoice = make_invoice(connected_site, account, due_date=date(2026, 3, 5))
    context = emails.email_context(invoice)
    assert context["due"] == "March 5, 2026"


def test_export_has_the_due_date_and_no_expiry_for_a_draft(client, admin, connected_site, account):
    import csv
    import io

    make_invoice(connected_site, account, email="due@client.example", due_date=date(2026, 3, 5))
    make_invoice(connected_site, account, email="draft@client.example", status="draft")
    response = client.get(url("list") + "?export=csv")
    rows = {
        row["Client email"]: row
        for row in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    }
    assert rows["due@client.example"]["Due"] == "2026-03-05"
    assert rows["draft@client.example"]["Expires"] == ""
    assert rows["draft@client.example"]["Status"] == "Draft"


def test_editor_sets_the_sites_reminders_and_longest_lifetime_in_its_settings(
    client, admin, connected_site
):
    from tests.test_emails import form_data as settings_form
    from tests.test_emails import settings_url

    config = ClientBillingSettings.for_site(connected_site)
    page = client.get(settings_url(connected_site)).content.decode()
    assert "Remind clients on the due date" in page and "Remind clients before (hours)" in page
    response = client.post(
        settings_url(connected_site),
        settings_form(
            config,
            reminder_before_hours="48",
            remind_on_due_date="",
            payment_link_max_lifetime_days="14",
        ),
    )
    assert response.status_code == 302
    config.refresh_from_db()
    assert config.reminder_before == timedelta(hours=48)
    assert config.remind_on_due_date is False
    assert config.payment_link_max_lifetime == timedelta(days=14)
