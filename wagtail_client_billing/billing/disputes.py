"""Disputes (chargebacks) of an invoice's payments: the state beside its status.

A client who disputes a payment with their card issuer opens a Stripe dispute on the
charge. :func:`apply` records it (an :class:`~.models.InvoiceDispute` row per dispute
id) from a ``charge.dispute.*`` event or from reconciliation, and derives the invoice's
``dispute_*`` fields from its rows: the open dispute if there is one, else the last one
lost (with the total amount lost), else nothing (a won dispute clears the state).

Whatever order Stripe's events arrive in, and however often, the row ends in the newest
state: a closed dispute (won, lost, warning closed, prevented) never opens again, and
otherwise the newer event (Stripe's ``created``, then the dispute's progress) wins. The
opening is logged and the billing contacts are told once, because the row is inserted
once; the closing is logged once, because ``closed_at`` is set once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.formats import date_format
from wagtail.log_actions import log

from .. import emails, gateway, hooks, lifecycle, taskqueue
from ..conf import billing_settings
from ..models import CLOSED_DISPUTE_STATUSES, DisputeStatus, Invoice, InvoiceDispute
from ..money import format_money
from ..signals import dispute_changed
from ..stripe_api import expandable_id, mapping, positive_int, text, unix_time
from . import payments
from .checkout import Pacer

logger = logging.getLogger(__name__)

#: Log actions (registered in ``wagtail_hooks.py``).
OPENED_ACTION = "wagtail_client_billing.dispute_opened"
CLOSED_ACTION = "wagtail_client_billing.dispute_closed"

#: How far a dispute has come, for two events of the same second.
_PROGRESS = {
    DisputeStatus.WARNING_NEEDS_RESPONSE: 0,
    DisputeStatus.WARNING_UNDER_REVIEW: 1,
    DisputeStatus.NEEDS_RESPONSE: 2,
    DisputeStatus.UNDER_REVIEW: 3,
}

_EPOCH = datetime.fromtimestamp(0, tz=UTC)


@dataclass(frozen=True)
class DisputeState:
    """What a Stripe ``dispute`` object says, read field by field (a shape the app does
    not know reads as blanks, never as a crash)."""

    dispute_id: str
    charge_id: str
    payment_intent_id: str
    status: str
    reason: str
    amount: int
    currency: str
    evidence_due_by: datetime | None
    created: datetime | None

    @property
    def closed(self) -> bool:
        return self.status in CLOSED_DISPUTE_STATUSES


def from_stripe(obj: dict[str, Any]) -> DisputeState:
    """A ``dispute`` object (an event's ``data.object`` or a retrieved one) as a state."""
    return DisputeState(
        dispute_id=expandable_id(obj.get("id"))[:255],
        charge_id=expandable_id(obj.get("charge"))[:255],
        payment_intent_id=expandable_id(obj.get("payment_intent"))[:255],
        status=text(obj.get("status"))[:32],
        reason=text(obj.get("reason"))[:64],
        amount=positive_int(obj.get("amount")) or 0,
        currency=text(obj.get("currency")).upper()[:3],
        evidence_due_by=unix_time(mapping(obj.get("evidence_details")).get("due_by")),
        created=unix_time(obj.get("created")),
    )


def find_invoice(state: DisputeState) -> Invoice | None:
    """The invoice whose payment ``state`` disputes: the one a row of this dispute names,
    else the one of the payment (:class:`~.models.Payment`) with its payment intent or
    charge, a renewal's included, else the invoice paid by its payment intent."""
    invoices = Invoice.objects.select_related("account")
    known = InvoiceDispute.objects.filter(stripe_dispute_id=state.dispute_id).first()
    if known is not None:
        return invoices.filter(pk=known.invoice_id).first()
    payment = payments.payment_for(
        payment_intent_id=state.payment_intent_id, charge_id=state.charge_id
    )
    if payment is not None:
        return invoices.filter(pk=payment.invoice_id).first()
    if state.payment_intent_id:  # paid before payments were recorded one by one
        return invoices.filter(payment_intent_id=state.payment_intent_id).first()
    return None


def _rank(closed: bool, at: datetime, status: str) -> tuple[bool, datetime, int]:
    return (closed, at, _PROGRESS.get(status, 4))  # type: ignore[call-overload]


@dataclass(frozen=True)
class Outcome:
    """What :func:`apply` did: ``opened`` (a new dispute), ``closed`` (it closed now),
    ``updated``, or ``stale`` (an older state than the one recorded)."""

    what: str
    dispute: InvoiceDispute


def apply(invoice: Invoice, state: DisputeState, state_at: datetime | None) -> Outcome:
    """Record ``state`` (as of ``state_at``, an event's ``created``) on ``invoice``.

    Call it with the invoice locked (:func:`.lifecycle.lock`) inside a transaction: the
    rows of its disputes are written under that lock.
    """
    at = state_at or _EPOCH
    fields = {
        "charge_id": state.charge_id,
        "payment_intent_id": state.payment_intent_id,
        "status": state.status,
        "reason": state.reason,
        "amount": state.amount,
        "currency": state.currency or invoice.currency,
        "evidence_due_by": state.evidence_due_by,
        "amount_lost": state.amount if state.status == DisputeStatus.LOST else 0,
        "state_at": at,
    }
    now = timezone.now()
    row = (
        InvoiceDispute.objects.select_for_update()
        .filter(stripe_dispute_id=state.dispute_id)
        .first()
    )
    opened = False
    if row is None:
        row = InvoiceDispute(
            invoice=invoice,
            stripe_dispute_id=state.dispute_id,
            opened_at=state.created or now,
            closed_at=now if state.closed else None,
            **fields,
        )
        try:
            with transaction.atomic():
                row.save(force_insert=True)
        except IntegrityError:  # recorded meanwhile by another transaction
            row = InvoiceDispute.objects.select_for_update().get(stripe_dispute_id=state.dispute_id)
        else:
            opened = True
    closed_now = False
    if not opened:
        if row.invoice_id != invoice.pk:
            raise ValueError("the dispute is recorded on another invoice")
        if _rank(state.closed, at, state.status) < _rank(row.is_closed, row.state_at, row.status):
            return Outcome("stale", row)
        closed_now = state.closed and row.closed_at is None
        for name, value in fields.items():
            setattr(row, name, value)
        if closed_now:
            row.closed_at = now
        row.save(update_fields=[*fields, "closed_at"])
    refresh_invoice_state(invoice)
    if opened:
        log(instance=invoice, action=OPENED_ACTION, data=_log_data(row))
        taskqueue.on_commit(f"{taskqueue.TASKS}.send_dispute_notice", row.pk)
    if (opened and state.closed) or closed_now:
        log(instance=invoice, action=CLOSED_ACTION, data=_log_data(row))
    what = "opened" if opened else ("closed" if closed_now else "updated")
    _announce_on_commit(invoice, row, what)
    return Outcome(what, row)


def _announce_on_commit(invoice: Invoice, row: InvoiceDispute, what: str) -> None:
    """The ``dispute_changed`` signal and hook, once the change commits."""

    def announce() -> None:
        try:
            dispute_changed.send(sender=Invoice, invoice=invoice, dispute=row, what=what)
            hooks.run(hooks.DISPUTE_CHANGED, invoice, row, what)
        except Exception:
            logger.exception("After dispute %s %s: a receiver failed", row.stripe_dispute_id, what)

    transaction.on_commit(announce, robust=True)


def _log_data(row: InvoiceDispute) -> dict[str, Any]:
    return {
        "dispute": row.stripe_dispute_id,
        "status": row.status,
        "reason": row.reason,
        "amount": row.amount,
        "currency": row.currency,
        "amount_lost": row.amount_lost,
        "evidence_due_by": row.evidence_due_by.isoformat() if row.evidence_due_by else None,
    }


def refresh_invoice_state(invoice: Invoice) -> None:
    """Derive the invoice's ``dispute_*`` fields from its dispute rows, and write them."""
    disputes = InvoiceDispute.objects.filter(invoice=invoice)
    shown = (
        disputes.exclude(status__in=CLOSED_DISPUTE_STATUSES).order_by("-opened_at", "-pk").first()
        or disputes.filter(status=DisputeStatus.LOST).order_by("-opened_at", "-pk").first()
    )
    lost = disputes.filter(status=DisputeStatus.LOST).aggregate(total=Sum("amount_lost"))["total"]
    values: dict[str, Any] = {
        "dispute_id": shown.stripe_dispute_id if shown else "",
        "dispute_status": shown.status if shown else "",
        "dispute_reason": shown.reason if shown else "",
        "dispute_amount": shown.amount if shown else None,
        "dispute_currency": shown.currency if shown else "",
        "dispute_evidence_due_by": shown.evidence_due_by if shown else None,
        "dispute_amount_lost": lost or 0,
    }
    Invoice.objects.filter(pk=invoice.pk).update(**values)
    for name, value in values.items():
        setattr(invoice, name, value)


# --- the notice to the billing contacts -------------------------------------------------------


def send_notice(dispute_pk: int, attempt: int) -> tuple[str, emails.DeliveryError | None]:
    """Tell the billing contacts of a dispute's invoice, once: claim it for ``attempt``
    (``notice_attempts`` moves from ``attempt`` to ``attempt + 1``), send, record.

    Returns ``(what happened, the delivery error if it failed)``.
    """
    claimed = InvoiceDispute.objects.filter(
        pk=dispute_pk, notice_sent_at__isnull=True, notice_attempts=attempt
    ).update(notice_attempts=attempt + 1)
    if not claimed:
        return "already handled", None
    row = InvoiceDispute.objects.select_related("invoice__site", "invoice__account").get(
        pk=dispute_pk
    )
    invoice = row.invoice
    to = emails.billing_contacts(invoice)
    if not to:
        InvoiceDispute.objects.filter(pk=row.pk).update(notice_sent_at=timezone.now())
        return "no billing contacts", None
    error = emails.send_notice(
        invoice,
        emails.DISPUTE_OPENED,
        to,
        dispute_amount=format_money(row.amount, row.currency or invoice.currency),
        dispute_reason=row.reason.replace("_", " "),
        dispute_status=_status_label(row.status),
        evidence_due_by=(
            date_format(timezone.localtime(row.evidence_due_by), "DATETIME_FORMAT")
            if row.evidence_due_by
            else ""
        ),
        dispute_url=_dashboard_url(invoice, row.stripe_dispute_id),
    )
    if error is None:
        InvoiceDispute.objects.filter(pk=row.pk).update(notice_sent_at=timezone.now())
        return "sent", None
    return "failed", error


def _status_label(status: str) -> str:
    try:
        return str(DisputeStatus(status).label)
    except ValueError:
        return status


def _dashboard_url(invoice: Invoice, dispute_id: str) -> str:
    prefix = "test/" if invoice.test_mode else ""
    return f"https://dashboard.stripe.com/{invoice.account.stripe_id}/{prefix}disputes/{dispute_id}"


def notices_due(older_than: datetime, max_attempts: int) -> list[tuple[int, int]]:
    """``(dispute pk, attempts)`` of the disputes whose notice has not gone, is not given
    up on, and whose task may have been lost (recorded before ``older_than``)."""
    return list(
        InvoiceDispute.objects.filter(
            Q(notice_sent_at__isnull=True),
            opened_at__lt=older_than,
            notice_attempts__lt=max_attempts,
        )
        .order_by("pk")
        .values_list("pk", "notice_attempts")[:500]
    )


# --- reconciliation: disputes whose webhooks were lost --------------------------------------------


@dataclass
class ReconcileReport:
    """What :func:`reconcile` did: accounts asked, disputes seen, recorded, errors."""

    accounts: int = 0
    seen: int = 0
    #: Disputes opened or closed here (their webhook was lost).
    changed: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.accounts} accounts, {self.seen} disputes seen, {self.changed} opened or "
            "closed here, "
            f"{len(self.errors)} errors"
        )


def reconcile(now: datetime | None = None) -> ReconcileReport:
    """Ask Stripe for the disputes of every connected account with a payment within
    ``RECONCILE_PAYMENTS_WINDOW_DAYS`` (none when it is 0) and record those a lost webhook
    did not.

    A dispute found this way is applied as of its own ``created``: any event Stripe
    delivers for it is newer and wins, and a closed state still closes an open one.
    One Stripe request per page of an account's disputes, at ``STRIPE_TASK_RATE_LIMIT``.
    """
    since = payments.reconcile_window_start(now)
    report = ReconcileReport()
    if since is None:
        return report
    rates = billing_settings.STRIPE_TASK_RATE_LIMIT
    pacers = {mode: Pacer(rates.get(mode, 20)) for mode in ("test", "live")}
    accounts = (
        Invoice.objects.filter(paid_at__gte=since)
        .values_list("account__stripe_id", "test_mode")
        .distinct()
        .order_by("account__stripe_id", "test_mode")
    )
    for account_id, test_mode in accounts:
        report.accounts += 1
        after = ""
        while True:
            pacers["test" if test_mode else "live"].wait()
            try:
                page = gateway.list_disputes(
                    test_mode=test_mode,
                    account_id=account_id,
                    created_gte=int(since.timestamp()),
                    starting_after=after,
                    limit=100,
                )
            except gateway.GatewayError as exc:
                report.errors.append(f"{account_id}: {exc}")
                break
            for obj in page:
                report.seen += 1
                if _reconcile_one(obj, account_id, test_mode):
                    report.changed += 1
            if len(page) < 100:
                break
            after = expandable_id(page[-1].get("id"))
    if report.accounts:
        logger.info("Reconciled disputes: %s", report)
    return report


def _reconcile_one(obj: dict[str, Any], account_id: str, test_mode: bool) -> bool:
    state = from_stripe(obj)
    if not state.dispute_id or not state.status:
        return False
    invoice = find_invoice(state)
    if invoice is None or invoice.account.stripe_id != account_id or invoice.test_mode != test_mode:
        return False
    with transaction.atomic():
        invoice = lifecycle.lock(invoice)
        try:
            outcome = apply(invoice, state, state.created)
        except ValueError:
            return False
    return outcome.what in ("opened", "closed")
