"""django-q2 task functions and the schedules they run on.

The domain modules queue work through :mod:`.taskqueue` by a task's dotted path (they
are below this module, which calls them), so that every task is queued only after the
transaction commits. A failed attempt is tried again through :func:`_retry_later`, the
one backoff schedule of every task that retries.

The tasks, and what makes each safe to run twice:

- :func:`send_invoice_email` claims its attempt with a conditional ``UPDATE`` before
  sending, so a task delivered twice sends once; transient SMTP failures are retried
  with exponential backoff through one-off django-q2 schedules.
- :func:`expire_due_invoices` (every minute) expires due invoices set-based
  (:func:`lifecycle.expire_due`) and queues one Stripe call per open Checkout Session,
  spread out to stay under ``STRIPE_TASK_RATE_LIMIT``.
- :func:`send_expiry_reminders` (every 15 minutes) sends each site's reminders before
  the due date (or expiry) and on it; it claims ``reminder_claimed_at`` (or
  ``due_reminder_claimed_at``) before sending and records each one as it goes, so a
  reminder goes once; a claim left by a dead worker is taken over by a later run.
- :func:`reconcile_open_sessions` (every 15 minutes) asks Stripe about open Checkout
  Sessions, and about the refunds and disputes of recent payments, for what a lost
  webhook would otherwise leave unnoticed.
- :func:`resume_abandoned_emails` (every 5 minutes) queues again the emails whose
  worker died mid-send; with django-q2's Redis broker, which has no delivery receipts,
  nothing else would hand such a task out again.
- :func:`admit_webhook_deliveries` stores a batch of Stripe deliveries as events, once
  per event id, and applies the new ones (the webhook view only verifies, keeps and
  queues each delivery). :func:`apply_webhook_event` applies a stored event; the event's
  row lock makes a second run a no-op, and a failure is retried with exponential
  backoff. :func:`apply_webhook_events` applies a batch of them.
- :func:`resume_received_webhook_events` (every 5 minutes) queues again the deliveries
  and stored events whose task was lost (or whose web process died before queueing
  them).
- :func:`archive_stripe_tax_rates` archives a superseded or deleted tax rate's Stripe tax
  rates, retried with backoff while Stripe fails; :func:`resume_tax_rate_archives`
  (every 15 minutes) queues again the ones whose task was lost.

``manage.py client_billing_schedules`` installs the schedules (:func:`install_schedules`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.models import Schedule
from wagtail.log_actions import log

from . import emails, gateway, lifecycle
from .billing import (
    checkout,
    disputes,
    invoices,
    notices,
    portal,
    receipts,
    refunds,
    subscriptions,
    taxes,
)
from .conf import billing_settings
from .models import (
    ClientBillingSettings,
    EmailStatus,
    Invoice,
    InvoiceStatus,
    WebhookDelivery,
    WebhookEvent,
    WebhookOutcome,
)
from .taskqueue import TASKS, async_task
from .webhooks import intake

logger = logging.getLogger(__name__)


#: States in which an invoice's email is waiting for a worker.
_WAITING = (EmailStatus.QUEUED, EmailStatus.RETRYING)

# --- the invoice email ---------------------------------------------------------------------


#: Queueing an invoice's email is the domain's (:func:`.billing.invoices.queue_email`);
#: the name here is kept for the code that called it from this module.
queue_invoice_email = invoices.queue_email


def send_invoice_email(invoice_id: int, attempt: int | None = None) -> str:
    """Send an invoice's email once for ``attempt``, and record what happened.

    ``attempt`` is the number of attempts made before this one (``0`` for the first).
    The task first claims it: ``UPDATE ... SET email_attempts = attempt + 1,
    email_claimed_at = now WHERE email_attempts = attempt AND email_status IN (queued,
    retrying) AND status = pending``. A duplicate delivery of the same task while the
    first runs finds the count moved on and does nothing.

    A worker that dies mid-send leaves its claim behind with the email still queued;
    django-q2 hands the task out again, and a claim older than the task timeout (no
    live worker can still hold it: django-q2 kills tasks at that age) is taken over and
    the email sent. So an email is never lost; it is sent twice only if the worker died
    after the SMTP server accepted the message and before the outcome was written.
    Returns what it did, for django-q2's task result.
    """
    now = timezone.now()
    if attempt is None:
        attempt = (
            Invoice.objects.filter(pk=invoice_id).values_list("email_attempts", flat=True).first()
        )
        if attempt is None:
            return "gone"
    waiting = Invoice.objects.filter(
        pk=invoice_id, email_attempts=attempt, email_status__in=_WAITING
    )
    payable = Q(status=InvoiceStatus.PENDING, expires_at__gt=now)
    claimed = waiting.filter(payable).update(email_attempts=attempt + 1, email_claimed_at=now)
    if not claimed:
        # The same attempt, claimed by a worker that has since died?
        claimed = (
            Invoice.objects.filter(payable, pk=invoice_id, email_attempts=attempt + 1)
            .filter(email_status__in=_WAITING, email_claimed_at__lt=now - claim_lease())
            .update(email_claimed_at=now)
        )
        if claimed:
            logger.warning("Invoice %s: taking over an abandoned email attempt", invoice_id)
    if not claimed:
        # Paid, expired or deleted before its email went: nothing to send any more.
        if waiting.update(email_status=EmailStatus.NOT_SENT):
            return "not payable"
        return "already handled"

    invoice = Invoice.objects.select_related("site").get(pk=invoice_id)
    (result,) = emails.send_invoice_emails([invoice])
    return _record_email_result(invoice, attempt + 1, result)


def claim_lease() -> timedelta:
    """How old a claim must be before another run may take it over: django-q2's task
    timeout (a task is killed at that age, so no live worker holds an older claim)."""
    from django_q.conf import Conf

    timeout = Conf.TIMEOUT
    return timedelta(seconds=int(timeout) if timeout else 300)


def _record_email_result(invoice: Invoice, attempts: int, result: emails.SendResult) -> str:
    """Write the outcome, unless a Resend started over meanwhile (attempts moved)."""
    mine = Invoice.objects.filter(pk=invoice.pk, email_attempts=attempts)
    now = timezone.now()
    if result.sent:
        mine.update(email_status=EmailStatus.SENT, email_sent_at=now, email_last_error="")
        log(
            instance=invoice,
            action="wagtail_client_billing.email_sent",
            data={"to": invoice.email, "attempt": attempts},
        )
        return "sent"

    error = result.error
    assert error is not None
    if error.transient and _retry_later(
        "send_invoice_email",
        f"email_{invoice.pk}",
        (invoice.pk, attempts),
        attempt=attempts,
        backoff=billing_settings.EMAIL_RETRY_BACKOFF,
        max_attempts=billing_settings.EMAIL_MAX_ATTEMPTS,
        about=f"Invoice {invoice.number} email ({error.kind})",
        # Unless a Resend started over meanwhile: then its own task sends.
        guard=lambda retry_at: bool(
            mine.update(
                email_status=EmailStatus.RETRYING,
                email_last_error=error.message,
                email_queued_at=retry_at,
            )
        ),
    ):
        return "retrying"

    if mine.update(email_status=EmailStatus.FAILED, email_last_error=error.message):
        log(
            instance=invoice,
            action="wagtail_client_billing.email_failed",
            data={"to": invoice.email, "attempt": attempts, "error": error.message},
        )
    return "failed"


# --- retries --------------------------------------------------------------------------------


def retry_delay(backoff: timedelta, attempt: int) -> timedelta:
    """How long after failed attempt number ``attempt`` (1 for the first) the next one
    runs: ``backoff``, then twice that, four times, and so on."""
    return backoff * 2 ** max(attempt - 1, 0)


def _retry_later(
    task: str,
    key: str,
    args: tuple,
    *,
    attempt: int,
    backoff: timedelta,
    max_attempts: int,
    about: str,
    guard: Callable[[datetime], bool] | None = None,
) -> datetime | None:
    """Run the task ``task`` with ``args`` again after failed attempt number ``attempt``.

    The retry waits :func:`retry_delay` and is a one-off django-q2 schedule named
    ``client_billing_{key}_{attempt}`` (deleted after it runs; scheduling it twice
    changes nothing). Returns when it will run, or ``None`` once ``max_attempts``
    attempts have been made: the caller gives up. ``guard(retry_at)``, if given, runs
    first and records the retry on the caller's own row; when it returns False (the
    work moved on meanwhile) nothing is scheduled, and the time is still returned.
    """
    if attempt >= max_attempts:
        return None
    delay = retry_delay(backoff, attempt)
    retry_at = timezone.now() + delay
    if guard is not None and not guard(retry_at):
        return retry_at
    Schedule.objects.update_or_create(
        name=f"client_billing_{key}_{attempt}",
        defaults={
            "func": f"{TASKS}.{task}",
            "args": repr(args),
            "schedule_type": Schedule.ONCE,
            "repeats": -1,
            "next_run": retry_at,
        },
    )
    logger.info("%s: attempt %d failed; retrying in %s", about, attempt, delay)
    return retry_at


def _send_notice(
    task: str,
    send: Callable[[int, int], tuple[str, emails.DeliveryError | None]],
    pk: int,
    attempt: int,
    *,
    key: str,
    about: str,
) -> str:
    """The shape of every notice task: ``send(pk, attempt)`` claims the notice, sends it
    and records a failure on its row (the domain's); a transient failure is tried again
    by the task ``task`` with the email backoff, up to ``EMAIL_MAX_ATTEMPTS``. Returns
    what ``send`` did, or ``"retrying"``."""
    what, error = send(pk, attempt)
    if (
        error is not None
        and error.transient
        and _retry_later(
            task,
            key,
            (pk, attempt + 1),
            attempt=attempt + 1,
            backoff=billing_settings.EMAIL_RETRY_BACKOFF,
            max_attempts=billing_settings.EMAIL_MAX_ATTEMPTS,
            about=f"{about} ({error.kind})",
        )
    ):
        return "retrying"
    return what


def _queue_notices_again(task: str, due: Callable[[datetime, int], list[tuple[int, int]]]) -> int:
    """Queue the task ``task`` again for each notice ``due(older_than, max_attempts)``
    finds unsent, with attempts left, and older than the task timeout (its task may have
    been lost); the task's claim makes one queued twice send once. Returns how many."""
    found = due(timezone.now() - claim_lease(), billing_settings.EMAIL_MAX_ATTEMPTS)
    for pk, attempts in found:
        async_task(f"{TASKS}.{task}", pk, attempts)
    return len(found)


# --- webhook events -------------------------------------------------------------------------


def apply_webhook_event(event_pk: int) -> str:
    """Apply a stored Stripe event (:func:`.webhooks.intake.process`); retry it if it failed.

    Safe to run twice: the event's row lock and outcome make a second run a no-op. A
    failure is recorded on the event and retried after ``WEBHOOK_RETRY_BACKOFF``,
    doubling, until ``WEBHOOK_MAX_ATTEMPTS``. Returns the outcome for django-q2.
    """
    receipt = intake.process(event_pk)
    record = receipt.record
    if receipt.duplicate:
        return "already handled"
    if receipt.failed:
        if _retry_later(
            "apply_webhook_event",
            f"webhook_{event_pk}",
            (event_pk,),
            attempt=record.attempts,
            backoff=billing_settings.WEBHOOK_RETRY_BACKOFF,
            max_attempts=billing_settings.WEBHOOK_MAX_ATTEMPTS,
            about=f"Stripe event {record.event_id}",
        ):
            return "retrying"
        logger.error(
            "Stripe event %s failed %d times; giving up (Reprocess it from the admin)",
            record.event_id,
            record.attempts,
        )
    return str(record.outcome)


def apply_webhook_events(event_pks: list[int]) -> dict[str, int]:
    """Apply a batch of stored events, one after the other (:func:`apply_webhook_event`
    each, in its own transaction); returns how many ended in each outcome.

    Admitted deliveries (:func:`admit_webhook_deliveries`) and the resume sweep's
    events come in batches, so django-q2 hands over, runs and records one task per
    batch, not per event. One
    event that raises (a database error; a handler's failure is recorded on the event
    and retried by :func:`apply_webhook_event`) does not stop the others: it stays
    *received* for :func:`resume_received_webhook_events`, and the task is reported
    failed once the batch is done.
    """
    outcomes: dict[str, int] = defaultdict(int)
    errors: list[Exception] = []
    # The receipts these events want go as one task when the batch is done (not on the
    # timer while it runs, nor later: django-q2 may end this worker process next).
    with receipts.batcher.held():
        for pk in event_pks:
            try:
                outcomes[apply_webhook_event(pk)] += 1
            except WebhookEvent.DoesNotExist:
                outcomes["gone"] += 1
            except Exception as exc:
                logger.exception("Stripe event %s could not be applied; left for the sweep", pk)
                errors.append(exc)
    if errors:
        raise errors[0]
    return dict(outcomes)


def admit_webhook_deliveries(delivery_pks: list[int]) -> dict[str, int]:
    """Store a batch of kept deliveries as events (:func:`.webhooks.intake.admit`) and
    apply the new ones (:func:`apply_webhook_events`); returns how many ended in each
    outcome, and how many deliveries repeated an event stored before.

    The web processes queue their deliveries in batches
    (:data:`.webhooks.intake.deliveries`). Admitting is one transaction; a delivery it
    did not reach (its worker died) stays for :func:`resume_received_webhook_events`.
    """
    event_pks = intake.admit(delivery_pks)
    outcomes = apply_webhook_events(event_pks)
    if repeated := len(delivery_pks) - len(event_pks):
        outcomes["already stored"] = repeated
    return outcomes


def resume_received_webhook_events() -> int:
    """Queue again every delivery and stored event whose task was lost; returns how many.

    Found from the tables alone: a delivery kept longer than the task timeout, an event
    still *received* as long, and a *failed* one with attempts left whose retry is
    overdue by as much.
    The Redis broker forgets a task whose worker died (a retry too, once its one-off
    schedule handed it over), and a ``qcluster`` that was down when the ORM broker's
    retry came round leaves it too. :func:`apply_webhook_event` is idempotent, so an
    event queued twice is applied once.
    """
    now = timezone.now()
    lease = claim_lease()
    backoff = billing_settings.WEBHOOK_RETRY_BACKOFF
    waiting = list(
        WebhookEvent.objects.filter(
            outcome=WebhookOutcome.RECEIVED, received_at__lt=now - lease
        ).values_list("pk", flat=True)
    )
    failed = WebhookEvent.objects.filter(
        outcome=WebhookOutcome.FAILED,
        attempts__lt=billing_settings.WEBHOOK_MAX_ATTEMPTS,
        processed_at__lt=now - lease - backoff,
    ).values_list("pk", "attempts", "processed_at")
    waiting += [
        pk
        for pk, attempts, processed_at in failed
        if processed_at is not None and processed_at + retry_delay(backoff, attempts) < now - lease
    ]
    for pk in waiting:
        intake.queue_event(pk)
    kept = list(
        WebhookDelivery.objects.filter(received_at__lt=now - lease).values_list("pk", flat=True)
    )
    for pk in kept:
        intake.queue_delivery(pk)
    # Now, not on the batches' timer: django-q2 may end this worker process next.
    transaction.on_commit(intake.batcher.flush)
    transaction.on_commit(intake.deliveries.flush)
    if waiting or kept:
        logger.warning(
            "Queued %d waiting Stripe deliveries and %d stored events again",
            len(kept),
            len(waiting),
        )
    return len(waiting) + len(kept)


#: Rows per ``UPDATE`` when webhook payloads are purged.
PURGE_BATCH_SIZE = 1000


def purge_webhook_payloads(now: datetime | None = None) -> int:
    """Empty the payload of every finished webhook event older than the retention period.

    Stripe's events carry clients' names, emails and addresses; after
    ``WEBHOOK_PAYLOAD_RETENTION`` only the record of what happened is kept: the event's
    id, type, account, times, outcome, error and invoice. Events still waiting to be
    applied keep their payload. ``None`` keeps payloads for ever. Batched, so the first
    run over years of events does not hold one long transaction. Returns how many.
    """
    retention = billing_settings.WEBHOOK_PAYLOAD_RETENTION
    if not retention:
        return 0
    cutoff = (now or timezone.now()) - retention
    old = (
        WebhookEvent.objects.filter(received_at__lt=cutoff)
        .exclude(outcome=WebhookOutcome.RECEIVED)
        .exclude(payload={})
    )
    purged = 0
    while pks := list(old.values_list("pk", flat=True)[:PURGE_BATCH_SIZE]):
        purged += WebhookEvent.objects.filter(pk__in=pks).update(payload={})
    if purged:
        logger.info("Purged the payloads of %d webhook events", purged)
    return purged


# --- expiry ---------------------------------------------------------------------------------


def expire_due_invoices() -> int:
    """Expire every pending invoice past its ``expires_at``; returns how many.

    The status change is set-based (a few queries whatever the number); then one
    ``expire_checkout_session`` task per expired invoice that had an open Checkout
    Session, so nobody can pay an expired invoice on a page already open.
    """
    expired = lifecycle.expire_due()
    _queue_session_expiry([(e.pk, e.test_mode) for e in expired if e.checkout_session_id])
    return len(expired)


def _queue_session_expiry(invoices: list[tuple[int, bool]], key_attempt: int = 0) -> None:
    """One task per invoice, at most ``STRIPE_TASK_RATE_LIMIT[mode]`` per second.

    The first second's worth is queued now; the rest become one-off schedules a second
    apart, inserted in bulk, so a sweep that expired many sessions neither floods
    Stripe nor inserts their schedules one at a time. ``key_attempt`` is each task's first
    idempotency key (see :func:`expire_checkout_session`).
    """
    if not invoices:
        return
    rates = billing_settings.STRIPE_TASK_RATE_LIMIT
    now = timezone.now()
    by_mode: dict[str, list[int]] = defaultdict(list)
    for pk, test_mode in invoices:
        by_mode["test" if test_mode else "live"].append(pk)
    later: list[Schedule] = []
    for mode, pks in by_mode.items():
        rate = max(1, int(rates.get(mode, 20)))
        for index, pk in enumerate(pks):
            second = index // rate
            if second == 0:
                async_task(
                    f"{TASKS}.expire_checkout_session",
                    pk,
                    0,
                    key_attempt,
                    group="client_billing_stripe",
                )
            else:
                later.append(
                    Schedule(
                        name=f"client_billing_expire_session_{pk}_0",
                        func=f"{TASKS}.expire_checkout_session",
                        args=repr((pk, 0, key_attempt)),
                        schedule_type=Schedule.ONCE,
                        repeats=-1,
                        next_run=now + timedelta(seconds=second),
                    )
                )
    if later:
        Schedule.objects.bulk_create(later, batch_size=1000)


#: Tries of :func:`expire_checkout_session` while Stripe is unavailable.
EXPIRE_SESSION_MAX_ATTEMPTS = 5
#: The wait after its first failed try; it doubles with each one after.
EXPIRE_SESSION_RETRY_BACKOFF = timedelta(minutes=1)


def expire_checkout_session(invoice_id: int, attempt: int = 0, key_attempt: int = 0) -> str:
    """Expire a withdrawn invoice's Checkout Session on Stripe (:func:`.billing.checkout.expire_session`).

    The session is the one recorded on the invoice when the task runs. Skipped unless
    the invoice is expired or deleted (paid or processing: the session is complete). A
    retryable gateway error (network, rate limit, Stripe 5xx) schedules another try with
    backoff and is raised, so django-q2 records the failure; when those run out,
    :func:`resume_session_expiry` finds the session again. ``key_attempt`` picks the
    request's idempotency key; the retry after an answer Stripe replays for that key
    uses the next one.
    """
    invoice = Invoice.objects.select_related("account").filter(pk=invoice_id).first()
    if invoice is None or not invoice.checkout_session_id:
        return "no session"
    if invoice.status not in checkout.WITHDRAWN:
        return "payment made" if invoice.status != InvoiceStatus.PENDING else "payable"
    try:
        return checkout.expire_session(
            invoice, source=lifecycle.Source.SWEEP, key_attempt=key_attempt
        )
    except gateway.GatewayError as exc:
        _retry_later(
            "expire_checkout_session",
            f"expire_session_{invoice.pk}",
            (
                invoice.pk,
                attempt + 1,
                key_attempt + 1 if exc.idempotency_key_spent else key_attempt,
            ),
            attempt=attempt + 1,
            backoff=EXPIRE_SESSION_RETRY_BACKOFF,
            max_attempts=EXPIRE_SESSION_MAX_ATTEMPTS,
            about=f"Expiring the Checkout Session of invoice {invoice.number}",
        )
        raise


def resume_session_expiry() -> int:
    """Expire every withdrawn invoice's Checkout Session that may still be payable.

    Found from the invoice's own state, whatever the broker lost: an expired or deleted
    invoice that still holds an open session (a confirmed expiry forgets the session,
    a completed payment closes it) that has not run out by itself, withdrawn longer
    than the task timeout ago (so the task its withdrawal queued had its chance). That
    covers a task lost with its worker, retries that ran out, and a session the client's
    click stored just as the invoice was withdrawn while Stripe could not be reached.
    Queued as :func:`_queue_session_expiry` paces them; returns how many.
    """
    now = timezone.now()
    open_sessions = list(
        Invoice.objects.filter(
            Q(checkout_session_expires_at__isnull=True) | Q(checkout_session_expires_at__gt=now),
            status__in=checkout.WITHDRAWN,
            status_changed_at__lt=now - claim_lease(),
        )
        .exclude(checkout_session_url="")
        .values_list("pk", "test_mode")
    )
    # A key of its own for each run: the tasks before it may have spent every key up
    # to theirs on answers Stripe keeps replaying for 24 hours (a 5xx in an outage).
    _queue_session_expiry(open_sessions, key_attempt=int(now.timestamp()))
    if open_sessions:
        logger.warning(
            "Queued the expiry of %d Checkout Sessions of withdrawn invoices", len(open_sessions)
        )
    return len(open_sessions)


# --- tax rates --------------------------------------------------------------------------------

#: Tries of :func:`archive_stripe_tax_rates` while Stripe fails.
TAX_RATE_ARCHIVE_MAX_ATTEMPTS = 5
#: The wait after its first failed try; it doubles with each one after.
TAX_RATE_ARCHIVE_RETRY_BACKOFF = timedelta(minutes=1)


def archive_stripe_tax_rates(rate_pk: int, attempt: int = 0) -> str:
    """Archive an archived tax rate's Stripe tax rates (:func:`.billing.taxes.archive_on_stripe`).

    A gateway error (Stripe down, a 5xx, a rate limit) is recorded on the rate and the
    task tried again with backoff, up to ``TAX_RATE_ARCHIVE_MAX_ATTEMPTS`` tries, each with
    an idempotency key of its own; the error is raised, so django-q2 records the failure.
    :func:`resume_tax_rate_archives` finds a rate whose task was lost.
    """
    try:
        return taxes.archive_on_stripe(rate_pk, attempt)
    except gateway.GatewayError as exc:
        error = exc
        retry_at = _retry_later(
            "archive_stripe_tax_rates",
            f"archive_tax_rate_{rate_pk}",
            (rate_pk, attempt + 1),
            attempt=attempt + 1,
            backoff=TAX_RATE_ARCHIVE_RETRY_BACKOFF,
            max_attempts=TAX_RATE_ARCHIVE_MAX_ATTEMPTS,
            about=f"Archiving the Stripe tax rates of tax rate {rate_pk}",
            guard=lambda when: taxes.archive_retry_failed(rate_pk, attempt, error, when),
        )
        if retry_at is None:
            taxes.archive_retry_failed(rate_pk, attempt, error, None)
            logger.error(
                "Tax rate %s: its Stripe tax rates could not be archived after %d tries: %s",
                rate_pk,
                attempt + 1,
                exc,
            )
        raise


def resume_tax_rate_archives() -> int:
    """Queue again every tax rate archive whose task was lost; returns how many."""
    due = taxes.archives_due(timezone.now() - claim_lease())
    for pk, attempts in due:
        async_task(f"{TASKS}.archive_stripe_tax_rates", pk, attempts, group="client_billing_stripe")
    if due:
        logger.warning("Queued the Stripe archive of %d tax rates again", len(due))
    return len(due)


# --- reminders --------------------------------------------------------------------------------


#: Reminders claimed at a time: a site's claimed reminders share one SMTP connection.
REMINDER_CLAIM_SIZE = 50


def send_expiry_reminders() -> int:
    """The reminder emails of pending invoices; returns how many went.

    Two reminders, each at most once per invoice, each configured per site (Settings ->
    Client Billing -> Reminders; ``REMINDER_BEFORE`` is the default of the first):

    - *before*: ``reminder_before`` ahead of the due date (the start of its day) or,
      without one, of the link's expiry (``reminder_claimed_at`` / ``reminder_sent_at``);
    - *on the due date*: from the start of that day while the link still works
      (``due_reminder_claimed_at`` / ``due_reminder_sent_at``).

    Only invoices whose first email went out are reminded (never a draft). They are
    claimed :data:`REMINDER_CLAIM_SIZE` at a time by stamping their claim column with a
    value unique to the claim (a conditional ``UPDATE``), so two runs at once never
    remind the same client twice. Each outcome is written as soon as the server answers:
    a sent (or permanently refused) reminder sets its sent column, a transient failure
    releases the claim for the next run. A claim older than the task timeout belongs to
    a run whose worker died (at most its message in flight went and was not recorded),
    and the next run takes it over. A run stops claiming after half the task timeout and
    queues the next run at once, so a backlog goes out in a chain of runs, none killed
    by the timeout.
    """
    now = timezone.now()
    deadline = time.monotonic() + claim_lease().total_seconds() / 2
    kinds: list[tuple[Q, str, str, str]] = []
    if (before := _remind_before_candidates(now)) is not None:
        kinds.append((before, emails.REMINDER, "reminder", "wagtail_client_billing.reminder_sent"))
    kinds.append(
        (
            _due_date_candidates(now),
            emails.DUE_REMINDER,
            "due_reminder",
            "wagtail_client_billing.due_reminder_sent",
        )
    )
    sent = 0
    for condition, kind, column, action in kinds:
        done, finished = _send_reminders(condition, now, kind, column, action, deadline)
        sent += done
        if not finished:
            async_task(f"{TASKS}.send_expiry_reminders", group="client_billing_email")
            logger.info("Reminders left after %d sent: the next run is queued", sent)
            break
    return sent


def _remind_before_candidates(now: datetime) -> Q | None:
    """Which pending invoices are due a *before* reminder, by their site's setting."""
    default = billing_settings.REMINDER_BEFORE or None
    custom: dict[timedelta | None, list[int]] = defaultdict(list)
    for site_id, hours in ClientBillingSettings.objects.filter(
        reminder_before_hours__isnull=False
    ).values_list("site_id", "reminder_before_hours"):
        custom[timedelta(hours=hours) or None].append(site_id)
    everyone_else = [pk for pks in custom.values() for pk in pks]
    groups: list[tuple[Q, timedelta]] = [
        (Q(site_id__in=pks), value) for value, pks in custom.items() if value
    ]
    if default:
        groups.append((~Q(site_id__in=everyone_else), default))
    if not groups:
        return None
    today = timezone.localdate(now)
    condition = Q(pk__in=[])
    for sites, value in groups:
        due_soon = Q(due_date__gt=today, due_date__lte=timezone.localdate(now + value))
        expires_soon = Q(due_date__isnull=True, expires_at__lte=now + value)
        condition |= sites & (due_soon | expires_soon)
    return condition


def _due_date_candidates(now: datetime) -> Q:
    """Pending invoices whose due date has come, on sites that remind on it."""
    off = ClientBillingSettings.objects.filter(remind_on_due_date=False).values("site_id")
    return Q(due_date__lte=timezone.localdate(now)) & ~Q(site_id__in=off)


def _send_reminders(
    condition: Q, now: datetime, kind: str, column: str, action: str, deadline: float
) -> tuple[int, bool]:
    """Claim, send and record one kind of reminder, a claim at a time, until none is
    left or ``deadline`` (``time.monotonic()``) has passed after a claim; ``column`` is
    the columns' prefix. Returns how many went, and whether none is left (a reminder
    that failed for now waits for the next scheduled run, not for this one's chain)."""
    claimed_at, sent_at = f"{column}_claimed_at", f"{column}_sent_at"
    candidates = Invoice.objects.filter(
        condition,
        Q(**{f"{claimed_at}__isnull": True}) | Q(**{f"{claimed_at}__lt": now - claim_lease()}),
        status=InvoiceStatus.PENDING,
        email_status=EmailStatus.SENT,
        expires_at__gt=now,
        **{f"{sent_at}__isnull": True},
    )
    sent = 0
    by_pk: dict[int, Invoice] = {}  # the claim being sent
    stamp = now
    tried: set[int] = set()  # a transient failure is released, for the next run only

    def record(result: emails.SendResult) -> None:
        nonlocal sent
        row = Invoice.objects.filter(pk=result.invoice_id)
        if result.error and result.error.transient:
            row.filter(**{claimed_at: stamp}).update(**{claimed_at: None})  # if still ours
            return
        row.update(**{sent_at: timezone.now()})
        if result.sent:
            sent += 1
            invoice = by_pk[result.invoice_id]
            log(instance=invoice, action=action, data={"to": invoice.email})

    while True:  # a claim at least, so that every run of a chain makes progress
        left = candidates.exclude(pk__in=tried).order_by("site_id", "pk")
        pks = list(left.values_list("pk", flat=True)[:REMINDER_CLAIM_SIZE])
        if not pks:
            return sent, True
        tried.update(pks)
        stamp = _unique_stamp(timezone.now())
        # Another run may have claimed some of them since: the UPDATE checks again.
        candidates.filter(pk__in=pks).update(**{claimed_at: stamp})
        claimed = list(
            Invoice.objects.filter(pk__in=pks, **{claimed_at: stamp})
            .select_related("site")
            .order_by("site_id", "pk")
        )
        by_pk.clear()
        by_pk.update((invoice.pk, invoice) for invoice in claimed)
        emails.send_invoice_emails(claimed, kind, on_result=record)
        if time.monotonic() >= deadline:
            return sent, not candidates.exclude(pk__in=tried).exists()


def _unique_stamp(now: datetime) -> datetime:
    """``now`` made unique to this run (microseconds taken from a monotonic clock)."""
    return now.replace(microsecond=time.monotonic_ns() // 1000 % 1_000_000)


def resume_abandoned_emails() -> int:
    """Queue again every invoice email whose task was lost; returns how many.

    Found from the invoice's own state, whatever the broker kept: an email still
    waiting (queued or retrying) on a payable invoice whose last sign of life, its
    queue time (or retry time) and its claim, is older than the task timeout. That is
    a task a worker fetched and died before starting (the Redis broker forgets it), a
    retry whose task was lost the same way, or a worker that died mid-send (its claim
    is taken over). :func:`send_invoice_email` claims before it sends, so a task queued
    twice, say behind a long backlog, still sends once.
    """
    now = timezone.now()
    stale = now - claim_lease()
    lost = list(
        Invoice.objects.filter(
            Q(email_queued_at__isnull=True) | Q(email_queued_at__lt=stale),
            Q(email_claimed_at__isnull=True) | Q(email_claimed_at__lt=stale),
            status=InvoiceStatus.PENDING,
            expires_at__gt=now,
            email_status__in=_WAITING,
        ).values_list("pk", "email_attempts", "email_queued_at", "email_claimed_at")
    )
    for pk, attempts, queued_at, claimed_at in lost:
        # Claimed since it was queued: the attempt is spent, so take its claim over.
        claimed = claimed_at is not None and (queued_at is None or claimed_at >= queued_at)
        async_task(
            f"{TASKS}.send_invoice_email",
            pk,
            attempts - 1 if claimed and attempts else attempts,
            group="client_billing_email",
        )
    if lost:
        logger.warning("Queued %d lost invoice emails again", len(lost))
    return len(lost) + resume_receipts()


# --- receipts -------------------------------------------------------------------------------


def send_receipt(kind: str, pk: int) -> str:
    """Email the client the receipt of a payment or refund, once.

    Claimed first (``receipt_claimed_at``, taken over when older than the task timeout),
    so a duplicate delivery of the task sends nothing; a failed send leaves it wanted, and
    :func:`resume_receipts` queues it again later.
    """
    model = receipts.KINDS[kind]
    now = timezone.now()
    lease = claim_lease()
    claimed = (
        model._default_manager.filter(
            pk=pk, receipt_sent_at__isnull=True, receipt_queued_at__isnull=False
        )
        .filter(Q(receipt_claimed_at__isnull=True) | Q(receipt_claimed_at__lt=now - lease))
        .update(receipt_claimed_at=now)
    )
    if not claimed:
        return "already handled"
    obj = model._default_manager.select_related("invoice__site").get(pk=pk)
    invoice = obj.invoice
    if invoice is None:
        return "no invoice"
    result = emails.send_receipt(
        invoice,
        emails.RECEIPT if kind == "payment" else emails.REFUND_RECEIPT,
        amount=obj.amount,
        currency=obj.currency,
        at=getattr(obj, "paid_at", None) or obj.created_at,
        reference=invoice.number,
    )
    if result.sent:
        model._default_manager.filter(pk=pk).update(receipt_sent_at=timezone.now())
        return "sent"
    # Wanted again from now: the sweep retries once the lease has passed.
    model._default_manager.filter(pk=pk).update(
        receipt_claimed_at=None, receipt_queued_at=timezone.now()
    )
    return f"failed: {result.error}"


def send_receipts(items: list[tuple[str, int]]) -> dict[str, int]:
    """Send a batch of wanted receipts (``(kind, pk)`` pairs, :data:`.billing.receipts.batcher`),
    :func:`send_receipt` each; returns how many ended each way. One that raises does
    not stop the others: it stays wanted for :func:`resume_receipts`, and the task is
    reported failed once the batch is done."""
    outcomes: dict[str, int] = defaultdict(int)
    errors: list[Exception] = []
    for kind, pk in items:
        try:
            outcomes[send_receipt(kind, pk).partition(":")[0]] += 1
        except Exception as exc:
            logger.exception("The %s receipt %s could not be sent; left for the sweep", kind, pk)
            errors.append(exc)
    if errors:
        raise errors[0]
    return dict(outcomes)


def resume_receipts() -> int:
    """Queue again the receipts whose task was lost or whose sending failed."""
    lease = claim_lease()
    count = 0
    for kind in receipts.KINDS:
        for pk in receipts.due(kind, lease).values_list("pk", flat=True)[:500]:
            async_task(f"{TASKS}.send_receipt", kind, pk, group="client_billing_email")
            count += 1
    if count:
        logger.warning("Queued %d lost receipts again", count)
    return count


# --- reconciliation ---------------------------------------------------------------------------


def reconcile_open_sessions() -> str:
    """Find what lost webhooks would leave unnoticed, and apply it (every 15 minutes).

    Three readings of Stripe, the same ``manage.py client_billing_reconcile`` makes: the
    open Checkout Sessions (:func:`.billing.checkout.reconcile_open_sessions`), then the
    refunds of every payment made within ``RECONCILE_PAYMENTS_WINDOW_DAYS``
    (:func:`.billing.refunds.reconcile_refunds`) and the disputes of the accounts that
    took them (:func:`.billing.disputes.reconcile`); a window of 0 turns the last two off.
    Each part reports its Stripe errors and the next one still runs. Returns the run's
    summary for django-q2's task result.
    """
    sessions = checkout.reconcile_open_sessions()
    found_refunds = refunds.reconcile_refunds()
    found_disputes = disputes.reconcile()
    return f"sessions: {sessions}; refunds: {found_refunds}; disputes: {found_disputes}"


# --- schedules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleSpec:
    """A recurring task: its schedule name, function, and interval in minutes.

    ``setting`` names the setting that turns an optional schedule on.
    """

    name: str
    func: str
    minutes: int
    enabled: bool = True
    setting: str = ""


def schedule_specs() -> list[ScheduleSpec]:
    """The schedules this app runs on, given the current settings."""
    return [
        ScheduleSpec("client_billing_expire", f"{TASKS}.expire_due_invoices", 1),
        # Always on: each site configures its reminders in its settings.
        ScheduleSpec("client_billing_reminders", f"{TASKS}.send_expiry_reminders", 15),
        ScheduleSpec("client_billing_reconcile", f"{TASKS}.reconcile_open_sessions", 15),
        ScheduleSpec("client_billing_resume_emails", f"{TASKS}.resume_abandoned_emails", 5),
        ScheduleSpec(
            "client_billing_resume_webhooks", f"{TASKS}.resume_received_webhook_events", 5
        ),
        ScheduleSpec("client_billing_resume_session_expiry", f"{TASKS}.resume_session_expiry", 5),
        ScheduleSpec(
            "client_billing_resume_tax_rate_archives", f"{TASKS}.resume_tax_rate_archives", 15
        ),
        ScheduleSpec("client_billing_resume_dispute_notices", f"{TASKS}.resume_dispute_notices", 5),
        ScheduleSpec("client_billing_resume_paid_notices", f"{TASKS}.resume_paid_notices", 5),
        ScheduleSpec("client_billing_paid_digest", f"{TASKS}.send_paid_digests", 24 * 60),
        ScheduleSpec(
            "client_billing_resume_renewal_failure_notices",
            f"{TASKS}.resume_renewal_failure_notices",
            5,
        ),
        ScheduleSpec(
            "client_billing_purge_webhook_payloads",
            f"{TASKS}.purge_webhook_payloads",
            24 * 60,
            enabled=bool(billing_settings.WEBHOOK_PAYLOAD_RETENTION),
            setting="WEBHOOK_PAYLOAD_RETENTION",
        ),
    ]


#: Schedules of earlier releases whose work another schedule does now.
RETIRED_SCHEDULES = (
    # Disputes are reconciled every 15 minutes by ``client_billing_reconcile``.
    "client_billing_reconcile_disputes",
)


def install_schedules() -> dict[str, str]:
    """Create, update or remove the schedules so they match :func:`schedule_specs`.

    Idempotent: running it again changes nothing. A new schedule runs first right
    away; an existing one keeps its next run; a retired one is removed. Returns
    ``{name: what happened}``.
    """
    outcome: dict[str, str] = {}
    now = timezone.now()
    for name in RETIRED_SCHEDULES:
        if Schedule.objects.filter(name=name).delete()[0]:
            outcome[name] = "removed"
    for spec in schedule_specs():
        same_name = list(Schedule.objects.filter(name=spec.name).order_by("pk"))
        existing = same_name[0] if same_name else None
        for duplicate in same_name[1:]:  # made by hand in the Django admin, say
            duplicate.delete()
        if not spec.enabled:
            if existing:
                existing.delete()
                outcome[spec.name] = "removed"
            else:
                outcome[spec.name] = "off"
            continue
        wanted: dict[str, Any] = {
            "func": spec.func,
            "schedule_type": Schedule.MINUTES,
            "minutes": spec.minutes,
            "repeats": -1,
        }
        if existing is None:
            Schedule.objects.create(name=spec.name, next_run=now, **wanted)
            outcome[spec.name] = "created"
        elif any(getattr(existing, key) != value for key, value in wanted.items()):
            Schedule.objects.filter(pk=existing.pk).update(**wanted)
            outcome[spec.name] = "updated"
        else:
            outcome[spec.name] = "unchanged"
    return outcome


# --- disputes -----------------------------------------------------------------------------------


def send_dispute_notice(dispute_pk: int, attempt: int = 0) -> str:
    """Tell the billing contacts of a new dispute (:func:`.billing.disputes.send_notice`);
    retry a failed delivery with the email backoff, up to ``EMAIL_MAX_ATTEMPTS``."""
    return _send_notice(
        "send_dispute_notice",
        disputes.send_notice,
        dispute_pk,
        attempt,
        key=f"dispute_notice_{dispute_pk}",
        about=f"Dispute {dispute_pk} notice",
    )


def resume_dispute_notices() -> int:
    """Queue again every dispute notice whose task was lost; returns how many."""
    return _queue_notices_again("send_dispute_notice", disputes.notices_due)


# --- the client portal ----------------------------------------------------------------------


def send_portal_link(email: str, site_id: int | None = None) -> str:
    """The portal's "send me a new link": email a new link if ``email`` is a client's
    billing address, else nothing. The form answers the same before this runs, so
    neither its answer nor its timing tells whether the address is known."""
    client = portal.client_for_email(email)
    if client is None:
        return "unknown"
    return send_client_portal_link(client.pk, site_id)


def send_client_portal_link(client_pk: int, site_id: int | None, attempt: int = 0) -> str:
    """Email a client a new portal link; a transient failure is retried with the email
    backoff (by the client's id: no address is kept in a schedule). A lost task is not
    swept up: nothing records the request, and the client asks again."""
    what, error = portal.send_link(client_pk, site_id)
    if (
        error is not None
        and error.transient
        and _retry_later(
            "send_client_portal_link",
            f"portal_link_{client_pk}",
            (client_pk, site_id, attempt + 1),
            attempt=attempt + 1,
            backoff=billing_settings.EMAIL_RETRY_BACKOFF,
            max_attempts=billing_settings.EMAIL_MAX_ATTEMPTS,
            about=f"Client {client_pk} portal link ({error.kind})",
        )
    ):
        return "retrying"
    return what


# --- failed renewals ------------------------------------------------------------------------------


def send_renewal_failure_notices(failure_pk: int, attempt: int = 0) -> str:
    """Email the client and the billing contacts about a failed renewal
    (:func:`.billing.subscriptions.send_renewal_failure_notices`); retry a failed delivery."""
    return _send_notice(
        "send_renewal_failure_notices",
        subscriptions.send_renewal_failure_notices,
        failure_pk,
        attempt,
        key=f"renewal_failure_{failure_pk}",
        about=f"Failed renewal {failure_pk} notices",
    )


def resume_renewal_failure_notices() -> int:
    """Queue again the emails of every failed renewal whose task was lost."""
    return _queue_notices_again("send_renewal_failure_notices", subscriptions.notices_due)


# --- paid notices -----------------------------------------------------------------------------------


def send_paid_notice(notice_pk: int, attempt: int = 0) -> str:
    """Tell the billing contacts of one payment (:func:`.billing.notices.send_one`)."""
    return _send_notice(
        "send_paid_notice",
        notices.send_one,
        notice_pk,
        attempt,
        key=f"paid_notice_{notice_pk}",
        about=f"Paid notice {notice_pk}",
    )


def resume_paid_notices() -> int:
    """Queue again every paid notice whose task was lost; returns how many."""
    return _queue_notices_again("send_paid_notice", notices.each_due)


def send_paid_digests() -> str:
    """The daily digest of payments for the sites that asked for one (once a day)."""
    result = notices.send_digests()
    return f"{result['digests']} digests, {result['payments']} payments"


def reconcile_disputes() -> str:
    """Record the disputes whose webhooks were lost (:func:`.billing.disputes.reconcile`).

    Kept for the ``client_billing_reconcile_disputes`` schedule of earlier releases, until
    ``client_billing_schedules`` removes it: :func:`reconcile_open_sessions` does this now.
    """
    return str(disputes.reconcile())
