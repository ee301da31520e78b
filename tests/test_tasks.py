"""The django-q2 tasks, run synchronously (``Q_CLUSTER["sync"]``): sending with retries,
the expiry sweep, reminders, and the schedules that drive them."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule
from django_q.scheduler import scheduler
from wagtail import hooks as wagtail_hooks

from tests.utils import SMTPServer, make_account, make_invoice, use_custom_smtp
from wagtail_client_billing import gateway, hooks, lifecycle, tasks
from wagtail_client_billing.models import ClientBillingLogEntry, EmailStatus, Invoice, InvoiceStatus

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]


def log_actions(invoice) -> list[str]:
    return list(
        ClientBillingLogEntry.objects.filter(object_id=str(invoice.pk))
        .order_by("pk")
        .values_list("action", flat=True)
    )


def email_retries(invoice):
    return Schedule.objects.filter(name__startswith=f"client_billing_email_{invoice.pk}_")


# --- sending the invoice email -------------------------------------------------------------


def test_email_is_queued_on_commit_and_sent(site, account, django_capture_on_commit_callbacks):
    invoice = make_invoice(site, account)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.queue_invoice_email(invoice)
    invoice.refresh_from_db()
    assert invoice.email_status == EmailStatus.QUEUED
    assert mail.outbox == []  # nothing leaves before the transaction commits

    for callback in callbacks:
        callback()

    invoice.refresh_from_db()
    assert invoice.email_status == EmailStatus.SENT
    assert invoice.email_sent_at is not None
    assert invoice.email_attempts == 1
    assert invoice.email_last_error == ""
    assert [m.to for m in mail.outbox] == [["client@example.com"]]
    assert "wagtail_client_billing.email_sent" in log_actions(invoice)


def test_a_task_delivered_twice_sends_once(site, account):
    invoice = make_invoice(site, account)
    tasks.queue_invoice_email(invoice)

    assert tasks.send_invoice_email(invoice.pk, 0) == "sent"
    assert tasks.send_invoice_email(invoice.pk, 0) == "already handled"

    assert len(mail.outbox) == 1


def test_failing_server_then_recovery_retries_and_sends_once(
    site, account, time_machine, django_capture_on_commit_callbacks
):
    time_machine.move_to(timezone.now(), tick=False)
    with SMTPServer() as server:
        use_custom_smtp(site, server)
        server.data_replies = ["451 4.3.0 Mailbox busy, try again later"]
        invoice = make_invoice(site, account)

        with django_capture_on_commit_callbacks(execute=True):
            tasks.queue_invoice_email(invoice)

        invoice.refresh_from_db()
        assert invoice.email_status == EmailStatus.RETRYING
        assert invoice.email_attempts == 1
        assert "try again later" in invoice.email_last_error
        (retry,) = email_retries(invoice)
        assert retry.schedule_type == Schedule.ONCE
        assert retry.next_run == timezone.now() + timedelta(seconds=1)  # EMAIL_RETRY_BACKOFF
        assert server.messages == []

        scheduler()  # not due yet
        assert server.messages == []

        time_machine.shift(timedelta(seconds=2))
        scheduler()  # due: django-q2 runs the retry (synchronously in tests)

        invoice.refresh_from_db()
        assert invoice.email_status == EmailStatus.SENT
        assert invoice.email_attempts == 2
        assert invoice.email_last_error == ""
        assert len(server.messages) == 1
        assert not email_retries(invoice).exists()

        # The retry delivered again (a broker redelivery) does not send again.
        assert tasks.send_invoice_email(invoice.pk, 1) == "already handled"
        assert len(server.messages) == 1


def test_backoff_doubles_and_gives_up_after_the_last_attempt(site, account, settings, time_machine):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "EMAIL_MAX_ATTEMPTS": 3,
        "EMAIL_RETRY_BACKOFF": timedelta(minutes=1),
    }
    time_machine.move_to(timezone.now(), tick=False)
    use_custom_smtp(site)  # nothing listens there: connection refused
    invoice = make_invoice(site, account)
    tasks.queue_invoice_email(invoice)

    tasks.send_invoice_email(invoice.pk, 0)
    assert email_retries(invoice).get().next_run == timezone.now() + timedelta(minutes=1)

    time_machine.shift(timedelta(minutes=1, seconds=1))
    scheduler()
    invoice.refresh_from_db()
    assert invoice.email_status == EmailStatus.RETRYING
    assert email_retries(invoice).get().next_run == timezone.now() + timedelta(minutes=2)

    time_machine.shift(timedelta(minutes=2, seconds=1))
    scheduler()
    invoice.refresh_from_db()
    assert invoice.email_status == EmailStatus.FAILED
    assert invoice.email_attempts == 3
    assert "Cannot connect" in invoice.email_last_error
    assert not email_retries(invoice).exists()
    assert log_actions(invoice).count("wagtail_client_billing.email_failed") == 1


def test_recipient_rejected_is_a_permanent_failure_shown_on_the_invoice(site, account):
    with SMTPServer() as server:
        use_custom_smtp(site, server)
        server.refuse["client@example.com"] = "550 5.1.1 User unknown"
        invoice = make_invoice(site, account)
        tasks.queue_invoice_email(invoice)

        assert tasks.send_invoice_email(invoice.pk, 0) == "failed"

    invoice.refresh_from_db()
    assert invoice.email_status == EmailStatus.FAILED
    assert invoice.get_email_status_display() == "Failed"
    assert "refused the recipient client@example.com" in invoice.email_last_error
    assert "User unknown" not in invoice.email_last_error  # the server's words: log only
    assert not email_retries(invoice).exists()
    assert "wagtail_client_billing.email_failed" in log_actions(invoice)


def test_authentication_failure_is_permanent(site, account):
    with SMTPServer(login=("acme", "right")) as server:
        use_custom_smtp(site, server, smtp_username="acme", password="wrong-password")
        invoice = make_invoice(site, account)
        tasks.queue_invoice_email(invoice)

        tasks.send_invoice_email(invoice.pk, 0)

    invoice.refresh_from_db()
    assert invoice.email_status == EmailStatus.FAILED
    assert invoice.email_last_error.startswith("Authentication failed")
    assert "wrong-password" not in invoice.email_last_error
    assert not email_retries(invoice).exists()


def test_resend_after_a_failure_starts_the_attempts_again(site, account):
    use_custom_smtp(site)
    invoice = make_invoice(site, account)
    Invoice.objects.filter(pk=invoice.pk).update(
        email_status=EmailStatus.FAILED, email_attempts=5, email_last_error="Cannot connect"
    )
    site_settings = site.clientbillingsettings
    site_settings.use_custom_smtp = False
    site_settings.save()

    tasks.queue_invoice_email(invoice)
    tasks.send_invoice_email(invoice.pk, 0)

    invoice.refresh_from_db()
    assert invoice.email_status == EmailStatus.SENT
    assert invoice.email_attempts == 1
    assert len(mail.outbox) == 1


def test_no_email_for_an_invoice_that_is_no_longer_pending(site, account):
    invoice = make_invoice(site, account)
    tasks.queue_invoice_email(invoice)
    lifecycle.delete(invoice, user=None)

    assert tasks.send_invoice_email(invoice.pk, 0) == "not payable"

    invoice.refresh_from_db()
    assert mail.outbox == []
    assert invoice.email_status == EmailStatus.NOT_SENT


def test_send_task_without_an_attempt_number_uses_the_current_one(site, account):
    invoice = make_invoice(site, account)
    tasks.queue_invoice_email(invoice)

    assert tasks.send_invoice_email(invoice.pk) == "sent"
    assert tasks.send_invoice_email(invoice.pk) == "already handled"
    assert tasks.send_invoice_email(999_999) == "gone"
    assert len(mail.outbox) == 1


# --- the expiry sweep ------------------------------------------------------------------------


def make_due(site, account, count: int, start: int) -> None:
    """``count`` pending invoices whose link ran out an hour ago, in one insert."""
    past = timezone.now() - timedelta(hours=1)
    Invoice.objects.bulk_create(
        [
            Invoice(
                site=site,
                account=account,
                test_mode=True,
                sequence=n,
                number=Invoice.format_number(n),
                email=f"c{n}@example.com",
                currency="USD",
                amount=1000,
                success_url="https://client.example/thanks",
                cancel_url="https://client.example/cancelled",
                expires_at=past,
            )
            for n in range(start, start + count)
        ]
    )


def test_expiry_sweep_query_count_does_not_grow_with_due_invoices(
    site, account, django_assert_num_queries
):
    make_due(site, account, 10, start=1)
    with CaptureQueriesContext(connection) as ten:
        assert tasks.expire_due_invoices() == 10

    make_due(site, account, 100, start=11)
    with django_assert_num_queries(len(ten)):
        assert tasks.expire_due_invoices() == 100

    assert Invoice.objects.filter(status=InvoiceStatus.EXPIRED).count() == 110


def test_expiry_sweep_leaves_invoices_that_are_not_due(site, account):
    future = make_invoice(site, account)
    make_due(site, account, 2, start=100)

    call_command("client_billing_expire", stdout=(out := StringIO()))

    assert "Expired 2 invoices" in out.getvalue()
    future.refresh_from_db()
    assert future.status == InvoiceStatus.PENDING


def test_expiry_expires_the_open_checkout_session_on_stripe(stripe_emulator, site):
    state = gateway.create_account(
        test_mode=True,
        country="us",
        privacy_policy_url="https://agency.example/privacy",
        terms_of_service_url="https://agency.example/terms",
        site_url="https://client-a.example/",
        idempotency_key="wcb-test-expiry",
    )
    stripe_emulator.complete_onboarding(state.id)
    account = make_account(state.id)
    invoice = make_invoice(site, account)
    session = gateway.create_checkout_session(
        invoice,
        success_url="https://client.example/thanks",
        cancel_url="https://client.example/cancelled",
        expires_at=invoice.expires_at,
    )
    Invoice.objects.filter(pk=invoice.pk).update(
        checkout_session_id=session.id,
        checkout_session_url=session.url,
        expires_at=timezone.now() - timedelta(minutes=1),
    )

    assert tasks.expire_due_invoices() == 1

    assert stripe_emulator.get_session(session.id)["status"] == "expired"
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.EXPIRED
    assert invoice.checkout_session_url == ""  # the page can no longer be paid


def test_session_expiry_is_spread_to_stay_under_the_rate_limit(
    stripe_emulator, site, account, settings
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "STRIPE_TASK_RATE_LIMIT": {"test": 2, "live": 80},
    }
    make_due(site, account, 5, start=1)
    Invoice.objects.update(checkout_session_id="cs_test_unknown")
    now = timezone.now()

    tasks.expire_due_invoices()

    # Two went at once (the emulator refused the made-up sessions); three wait their turn.
    assert len([r for r in stripe_emulator.requests if r.path.endswith("/expire")]) == 2
    later = Schedule.objects.filter(name__startswith="client_billing_expire_session_")
    offsets = sorted(round((s.next_run - now).total_seconds()) for s in later)
    assert offsets == [1, 1, 2]


def test_expire_session_task_retries_when_stripe_is_unavailable(site, account):
    invoice = make_invoice(site, account)
    Invoice.objects.filter(pk=invoice.pk).update(checkout_session_id="cs_test_1")
    lifecycle.delete(invoice, user=None)

    # STRIPE_API_BASE points at a closed port in the test settings.
    with pytest.raises(gateway.StripeUnavailable):
        tasks.expire_checkout_session(invoice.pk)

    # No answer came, so Stripe may have expired it: the retry asks with the same key.
    retry = Schedule.objects.get(name=f"client_billing_expire_session_{invoice.pk}_1")
    assert retry.args == repr((invoice.pk, 1, 0))


def test_expire_session_task_skips_a_paid_invoice(site, account):
    invoice = make_invoice(site, account)
    Invoice.objects.filter(pk=invoice.pk).update(checkout_session_id="cs_test_1")
    lifecycle.mark_paid(invoice, source="webhook")

    assert tasks.expire_checkout_session(invoice.pk) == "payment made"


# --- reminders ---------------------------------------------------------------------------------


def test_reminders_are_sent_once_before_expiry(site, account, settings, time_machine):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "REMINDER_BEFORE": timedelta(hours=2),
    }
    time_machine.move_to(timezone.now(), tick=False)
    now = timezone.now()
    soon = make_invoice(
        site, account, email="soon@example.com", expires_at=now + timedelta(hours=1)
    )
    later = make_invoice(
        site, account, email="later@example.com", expires_at=now + timedelta(hours=5)
    )
    unsent = make_invoice(
        site, account, email="bounced@example.com", expires_at=now + timedelta(hours=1)
    )
    Invoice.objects.filter(pk__in=[soon.pk, later.pk]).update(email_status=EmailStatus.SENT)
    Invoice.objects.filter(pk=unsent.pk).update(email_status=EmailStatus.FAILED)

    assert tasks.send_expiry_reminders() == 1
    assert tasks.send_expiry_reminders() == 0  # the next run: nothing again

    assert [m.to for m in mail.outbox] == [["soon@example.com"]]
    assert mail.outbox[0].subject.startswith("Reminder: invoice")
    assert "still open" in mail.outbox[0].body
    assert soon.get_pay_url() in mail.outbox[0].body
    assert "wagtail_client_billing.reminder_sent" in log_actions(soon)

    time_machine.shift(timedelta(hours=3, minutes=30))
    assert tasks.send_expiry_reminders() == 1
    assert tasks.send_expiry_reminders() == 0
    assert [m.to for m in mail.outbox] == [["soon@example.com"], ["later@example.com"]]


def test_reminders_are_off_by_default(site, account):
    invoice = make_invoice(site, account, expires_at=timezone.now() + timedelta(minutes=5))
    Invoice.objects.filter(pk=invoice.pk).update(email_status=EmailStatus.SENT)

    assert tasks.send_expiry_reminders() == 0
    assert mail.outbox == []


def test_a_reminder_that_could_not_be_sent_for_now_is_tried_again(site, account, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "REMINDER_BEFORE": timedelta(hours=2),
    }
    use_custom_smtp(site)  # refused: transient
    invoice = make_invoice(site, account, expires_at=timezone.now() + timedelta(hours=1))
    Invoice.objects.filter(pk=invoice.pk).update(email_status=EmailStatus.SENT)

    assert tasks.send_expiry_reminders() == 0
    invoice.refresh_from_db()
    assert invoice.reminder_sent_at is None  # the next run tries again

    with SMTPServer() as server:
        use_custom_smtp(site, server)
        assert tasks.send_expiry_reminders() == 1
    assert len(server.messages) == 1


def test_a_reminder_claimed_by_a_run_whose_worker_died_is_sent_by_a_later_run(
    site, account, settings, time_machine
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "REMINDER_BEFORE": timedelta(hours=2),
    }
    time_machine.move_to(timezone.now(), tick=False)
    invoice = make_invoice(site, account, expires_at=timezone.now() + timedelta(hours=1))
    # A run claimed it and its worker was killed before the message went.
    Invoice.objects.filter(pk=invoice.pk).update(
        email_status=EmailStatus.SENT, reminder_claimed_at=timezone.now()
    )

    assert tasks.send_expiry_reminders() == 0  # the claim may be a live run's
    time_machine.shift(tasks.claim_lease() + timedelta(seconds=1))
    assert tasks.send_expiry_reminders() == 1
    assert tasks.send_expiry_reminders() == 0

    assert [m.to for m in mail.outbox] == [[invoice.email]]


class WorkerKilled(BaseException):
    """A worker stopping mid-task (SIGKILL, or django-q2's timeout): nothing after runs."""


def test_a_reminder_run_that_dies_midway_keeps_what_it_sent_and_a_later_run_sends_the_rest(
    site, account, settings, time_machine
):
    """Each reminder is marked sent as the server accepts it: a run that dies at its third
    message (a backlog longer than the task timeout kills every run that way) leaves the
    first two sent, and the run that takes over its claims sends only the third."""
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "REMINDER_BEFORE": timedelta(hours=2),
    }
    time_machine.move_to(timezone.now(), tick=False)
    expires_at = timezone.now() + timedelta(hours=1)
    invoices = [
        make_invoice(site, account, email=f"client{n}@example.com", expires_at=expires_at)
        for n in range(3)
    ]
    Invoice.objects.filter(pk__in=[i.pk for i in invoices]).update(email_status=EmailStatus.SENT)
    built: list[int] = []

    def dies_at_the_third_message(invoice, message):
        built.append(invoice.pk)
        if len(built) == 3:
            raise WorkerKilled

    with (
        wagtail_hooks.register_temporarily(hooks.EMAIL_MESSAGE, dies_at_the_third_message),
        pytest.raises(WorkerKilled),
    ):
        tasks.send_expiry_reminders()
    assert len(mail.outbox) == 2
    sent_before = [m.to[0] for m in mail.outbox]
    assert Invoice.objects.filter(reminder_sent_at__isnull=False).count() == 2
    assert log_actions(invoices[0]).count("wagtail_client_billing.reminder_sent") == 1

    time_machine.shift(tasks.claim_lease() + timedelta(seconds=1))
    assert tasks.send_expiry_reminders() == 1
    assert tasks.send_expiry_reminders() == 0

    (rest,) = {i.email for i in invoices} - set(sent_before)
    assert [m.to[0] for m in mail.outbox] == [*sent_before, rest]  # each client once


def test_a_server_that_asks_to_try_later_is_asked_once_a_run(site, account, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "REMINDER_BEFORE": timedelta(hours=2),
    }
    expires_at = timezone.now() + timedelta(hours=1)
    invoices = [make_invoice(site, account, expires_at=expires_at) for _ in range(2)]
    Invoice.objects.filter(pk__in=[i.pk for i in invoices]).update(email_status=EmailStatus.SENT)

    with SMTPServer() as server:
        use_custom_smtp(site, server)
        server.data_replies = ["451 4.3.0 Try again later"] * 10
        assert tasks.send_expiry_reminders() == 0
        assert len(server.data_replies) == 8  # one try for each reminder, then the run ends
        assert server.messages == []
        assert tasks.send_expiry_reminders() == 0  # the next run tries each once again
        assert len(server.data_replies) == 6


def test_a_reminder_that_failed_for_now_leaves_a_claim_another_run_took_over(
    site, account, settings
):
    """A run releases only its own claim: if another run took the reminder over meanwhile
    (this one outlived its lease), that run's claim stays, so no third run sends it."""
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "REMINDER_BEFORE": timedelta(hours=2),
    }
    invoice = make_invoice(site, account, expires_at=timezone.now() + timedelta(hours=1))
    Invoice.objects.filter(pk=invoice.pk).update(email_status=EmailStatus.SENT)
    other_runs_claim = timezone.now() + timedelta(seconds=1)

    def taken_over(invoice, message):
        Invoice.objects.filter(pk=invoice.pk).update(reminder_claimed_at=other_runs_claim)

    with (
        SMTPServer() as server,
        wagtail_hooks.register_temporarily(hooks.EMAIL_MESSAGE, taken_over),
    ):
        use_custom_smtp(site, server)
        server.data_replies = ["451 4.3.0 Try again later"]
        assert tasks.send_expiry_reminders() == 0

    invoice.refresh_from_db()
    assert invoice.reminder_claimed_at == other_runs_claim
    assert invoice.reminder_sent_at is None


def test_a_reminder_backlog_goes_out_in_a_chain_of_runs_each_within_its_time(
    site, account, settings, monkeypatch
):
    """A run stops claiming once half the task timeout has passed and queues the next
    run (here each run has time for one claim of one reminder)."""
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "REMINDER_BEFORE": timedelta(hours=2),
    }
    expires_at = timezone.now() + timedelta(hours=1)
    invoices = [
        make_invoice(site, account, email=f"client{n}@example.com", expires_at=expires_at)
        for n in range(3)
    ]
    Invoice.objects.filter(pk__in=[i.pk for i in invoices]).update(email_status=EmailStatus.SENT)
    monkeypatch.setattr(tasks, "REMINDER_CLAIM_SIZE", 1)
    monkeypatch.setattr(tasks, "claim_lease", lambda: timedelta(0))

    assert tasks.send_expiry_reminders() == 1  # its own; the chain (run at once here) the rest

    assert sorted(m.to[0] for m in mail.outbox) == sorted(i.email for i in invoices)
    assert not Invoice.objects.filter(reminder_sent_at__isnull=True).exists()


def test_an_email_whose_worker_died_is_resumed_and_sent_once(site, account):
    """The Redis broker forgets a task whose worker died; the 5-minute sweep resumes it."""
    invoice = make_invoice(site, account)
    long_ago = timezone.now() - tasks.claim_lease() - timedelta(seconds=1)
    Invoice.objects.filter(pk=invoice.pk).update(
        email_status="queued", email_attempts=1, email_claimed_at=long_ago
    )
    fresh = make_invoice(site, account, email="busy@example.com")
    Invoice.objects.filter(pk=fresh.pk).update(
        email_status="queued", email_attempts=1, email_claimed_at=timezone.now()
    )

    assert tasks.resume_abandoned_emails() == 1  # a live worker's claim is left alone
    assert [m.to for m in mail.outbox] == [["client@example.com"]]
    invoice.refresh_from_db()
    assert invoice.email_status == "sent"
    assert tasks.resume_abandoned_emails() == 0


def test_emails_whose_task_was_lost_before_any_claim_are_found_and_sent_once(
    site, account, time_machine, django_capture_on_commit_callbacks
):
    """The Redis broker forgets tasks a worker fetched and had not started when it died:
    the sweep finds them from the invoice alone (waiting, never claimed since queued,
    for longer than a task may take), and leaves the ones that may still run."""
    time_machine.move_to(timezone.now(), tick=False)
    lease = tasks.claim_lease()
    with django_capture_on_commit_callbacks(execute=False):  # the broker lost them all
        lost = make_invoice(site, account, email="lost@example.com")
        tasks.queue_invoice_email(lost)
        resent = make_invoice(site, account, email="resent@example.com")
        tasks.queue_invoice_email(resent)
        retrying = make_invoice(site, account, email="retrying@example.com")
        tasks.queue_invoice_email(retrying)
    Invoice.objects.filter(pk=retrying.pk).update(
        email_status=EmailStatus.RETRYING,
        email_attempts=1,
        email_claimed_at=timezone.now(),
        email_queued_at=timezone.now() + lease,  # its retry is due in one lease
    )
    assert tasks.resume_abandoned_emails() == 0  # each task may still be on its way

    time_machine.shift(lease + timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=False):
        tasks.queue_invoice_email(resent)  # an editor's Resend: a task on its way again
    assert tasks.resume_abandoned_emails() == 1

    assert [m.to for m in mail.outbox] == [["lost@example.com"]]
    lost.refresh_from_db()
    assert (lost.email_status, lost.email_attempts) == (EmailStatus.SENT, 1)

    time_machine.shift(lease + timedelta(seconds=1))  # the retry's task is lost too
    assert tasks.resume_abandoned_emails() == 2
    assert sorted(m.to[0] for m in mail.outbox) == [
        "lost@example.com",
        "resent@example.com",
        "retrying@example.com",
    ]
    retrying.refresh_from_db()
    assert (retrying.email_status, retrying.email_attempts) == (EmailStatus.SENT, 2)
    assert tasks.resume_abandoned_emails() == 0


# --- schedules -----------------------------------------------------------------------------------


def installed() -> dict[str, tuple[str, int]]:
    return {s.name: (s.func, s.minutes) for s in Schedule.objects.all()}


def test_schedules_command_is_idempotent(settings):
    call_command("client_billing_schedules", stdout=StringIO())
    first = {s.name: s.pk for s in Schedule.objects.all()}
    call_command("client_billing_schedules", stdout=(out := StringIO()))

    assert {s.name: s.pk for s in Schedule.objects.all()} == first
    assert installed() == {
        "client_billing_expire": ("wagtail_client_billing.tasks.expire_due_invoices", 1),
        "client_billing_reminders": ("wagtail_client_billing.tasks.send_expiry_reminders", 15),
        "client_billing_reconcile": ("wagtail_client_billing.tasks.reconcile_open_sessions", 15),
        "client_billing_resume_emails": (
            "wagtail_client_billing.tasks.resume_abandoned_emails",
            5,
        ),
        "client_billing_resume_webhooks": (
            "wagtail_client_billing.tasks.resume_received_webhook_events",
            5,
        ),
        "client_billing_resume_session_expiry": (
            "wagtail_client_billing.tasks.resume_session_expiry",
            5,
        ),
        "client_billing_resume_tax_rate_archives": (
            "wagtail_client_billing.tasks.resume_tax_rate_archives",
            15,
        ),
        "client_billing_purge_webhook_payloads": (
            "wagtail_client_billing.tasks.purge_webhook_payloads",
            24 * 60,
        ),
        "client_billing_resume_dispute_notices": (
            "wagtail_client_billing.tasks.resume_dispute_notices",
            5,
        ),
        "client_billing_resume_paid_notices": (
            "wagtail_client_billing.tasks.resume_paid_notices",
            5,
        ),
        "client_billing_paid_digest": ("wagtail_client_billing.tasks.send_paid_digests", 24 * 60),
        "client_billing_resume_renewal_failure_notices": (
            "wagtail_client_billing.tasks.resume_renewal_failure_notices",
            5,
        ),
    }
    assert "client_billing_expire: unchanged" in out.getvalue()


def test_reminder_schedule_is_installed_whatever_the_developer_setting(settings):
    # Each site configures its own reminders in its settings (issue 19), so the
    # schedule runs even when REMINDER_BEFORE, their default, is None.
    for before in (timedelta(hours=6), None):
        settings.WAGTAIL_CLIENT_BILLING = {
            **settings.WAGTAIL_CLIENT_BILLING,
            "REMINDER_BEFORE": before,
        }
        call_command("client_billing_schedules", stdout=StringIO())
        assert installed()["client_billing_reminders"] == (
            "wagtail_client_billing.tasks.send_expiry_reminders",
            15,
        )


def test_schedules_command_repairs_a_changed_schedule():
    call_command("client_billing_schedules", stdout=StringIO())
    Schedule.objects.filter(name="client_billing_expire").update(minutes=60)

    call_command("client_billing_schedules", stdout=(out := StringIO()))

    assert installed()["client_billing_expire"][1] == 1
    assert "client_billing_expire: updated" in out.getvalue()


def test_schedules_command_removes_the_retired_hourly_dispute_reconciliation():
    """Disputes are reconciled every 15 minutes with the rest now: the hourly schedule an
    earlier release installed is removed, and its task still runs meanwhile."""
    Schedule.objects.create(
        name="client_billing_reconcile_disputes",
        func="wagtail_client_billing.tasks.reconcile_disputes",
        schedule_type=Schedule.MINUTES,
        minutes=60,
    )
    assert "0 accounts" in tasks.reconcile_disputes()

    call_command("client_billing_schedules", stdout=(out := StringIO()))

    assert "client_billing_reconcile_disputes" not in installed()
    assert "client_billing_reconcile_disputes: removed" in out.getvalue()


def test_reconcile_task_runs_the_reconciliation(site):
    assert "0 checked" in tasks.reconcile_open_sessions()


def test_new_schedules_run_first_right_away():
    call_command("client_billing_schedules", stdout=StringIO())

    assert all(s.next_run <= timezone.now() for s in Schedule.objects.all())
