"""The client's receipts: one email from the site per payment (each renewal too) and per
refund, unless the site turned receipts off.

Wanting a receipt is a column (``receipt_queued_at`` on the payment or refund), set once by
a compare-and-set when the payment is recorded or the refund's money starts leaving, in
the same transaction; it joins this process's :data:`batcher` when that commits, which
queues one ``send_receipts`` task per batch (the events a worker applies together want
their receipts together: one task, not one each). A receipt whose task was lost
(or whose sending failed) is found again by :func:`due` from the database, so the sweep in
:mod:`..tasks` sends it later; one wanted for longer than :data:`GIVE_UP_AFTER` is dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from .. import taskqueue
from ..conf import billing_settings
from ..models import ClientBillingSettings, Invoice, Payment, Refund

#: A receipt not sent within this time is not sent any more (it would confuse).
GIVE_UP_AFTER = timedelta(days=2)

KINDS: dict[str, type[Payment] | type[Refund]] = {"payment": Payment, "refund": Refund}

#: Receipts wanted in this process, queued together as ``(kind, pk)`` pairs: one
#: ``send_receipts`` task per ``WEBHOOK_QUEUE_BATCH`` or ``WEBHOOK_QUEUE_DELAY``, the
#: limits of the webhook events whose payments most receipts come from. A worker that
#: applied a batch of events flushes it at the batch's end.
batcher = taskqueue.Batcher(
    f"{taskqueue.TASKS}.send_receipts",
    group="client_billing_email",
    limits=billing_settings.queue_batch_limits,
)


def site_sends_receipts(invoice: Invoice) -> bool:
    """Whether the invoice's site emails receipts (on unless it turned them off)."""
    value = (
        ClientBillingSettings.objects.filter(site_id=invoice.site_id)
        .values_list("send_receipts", flat=True)
        .first()
    )
    return value is None or bool(value)


def queue_receipt(kind: str, obj: Payment | Refund, invoice: Invoice) -> bool:
    """Want the receipt of a payment (``kind="payment"``) or refund once; True if this
    call did. The task runs once the caller's transaction commits."""
    if not site_sends_receipts(invoice) or not invoice.email:
        return False
    wanted = (
        KINDS[kind]
        ._default_manager.filter(pk=obj.pk, receipt_queued_at__isnull=True)
        .update(receipt_queued_at=timezone.now())
    )
    if wanted:
        item = (kind, obj.pk)
        transaction.on_commit(lambda: batcher.add(item))
    return bool(wanted)


def due(kind: str, lease: timedelta, now: datetime | None = None) -> QuerySet:
    """Receipts wanted, not sent, and neither queued nor claimed within ``lease``: their
    task was lost or failed."""
    now = now or timezone.now()
    return (
        KINDS[kind]
        ._default_manager.filter(
            receipt_sent_at__isnull=True,
            receipt_queued_at__lt=now - lease,
            receipt_queued_at__gte=now - GIVE_UP_AFTER,
        )
        .filter(Q(receipt_claimed_at__isnull=True) | Q(receipt_claimed_at__lt=now - lease))
    )
