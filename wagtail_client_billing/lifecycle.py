"""The invoice state machine. Every status change goes through this module.

Each change is a compare-and-set: ``UPDATE ... WHERE pk = %s AND status = <old>``, so
a webhook, the expiry sweep, the client's return and an editor racing each other can
never lose an update or apply one twice. The rules::

    pending    -> processing, paid, expired, deleted
    processing -> paid, pending (payment failed), expired (failed after its expiry)
    expired    -> paid   (money received wins; flagged as a late payment), deleted
    deleted    -> paid   (money received wins; flagged as a late payment)
    paid       -> (nothing)

A change that happens writes one Wagtail log entry (the invoice's History) and, once
the transaction commits, sends :data:`~wagtail_client_billing.signals.invoice_status_changed`
and runs the ``client_billing_invoice_status_changed`` hook.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from wagtail.log_actions import log
from wagtail.models import ModelLogEntry

from . import hooks
from .conf import billing_settings
from .models import Invoice, InvoiceStatus
from .signals import invoice_status_changed

logger = logging.getLogger(__name__)

S = InvoiceStatus

#: For each status, the statuses it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.PROCESSING, S.PAID, S.EXPIRED, S.DELETED}),
    S.PROCESSING: frozenset({S.PAID, S.PENDING, S.EXPIRED}),
    S.EXPIRED: frozenset({S.PAID, S.DELETED}),
    S.DELETED: frozenset({S.PAID}),
    S.PAID: frozenset(),
}

#: Log action for each kind of change (registered in ``wagtail_hooks.py``).
LOG_ACTIONS: dict[str, str] = {
    S.PROCESSING: "wagtail_client_billing.processing",
    S.PAID: "wagtail_client_billing.paid",
    S.EXPIRED: "wagtail_client_billing.expired",
    S.DELETED: "wagtail_client_billing.deleted",
    S.PENDING: "wagtail_client_billing.payment_failed",
}


class Source(models.TextChoices):
    """What caused a change; stored on the invoice and passed to signal receivers."""

    EDITOR = "editor", gettext_lazy("an editor")
    WEBHOOK = "webhook", gettext_lazy("a Stripe webhook")
    RETURN = "return", gettext_lazy("the client's return from Checkout")
    SWEEP = "sweep", gettext_lazy("the expiry task")
    RECONCILE = "reconcile", gettext_lazy("reconciliation with Stripe")
    SYSTEM = "system", gettext_lazy("the system")


class TransitionNotAllowed(Exception):
    """An editor asked for a change the rules forbid; ``str()`` is a message for them."""


def allowed_sources(new: str) -> frozenset[str]:
    """The statuses from which ``new`` may be reached."""
    return frozenset(old for old, targets in TRANSITIONS.items() if new in targets)


def can_transition(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


def _change(
    invoice: Invoice,
    new: str,
    *,
    source: str,
    user: Any = None,
    fields: dict[str, Any] | None = None,
    per_old_fields: dict[str, dict[str, Any]] | None = None,
    data: dict[str, Any] | None = None,
    from_statuses: Iterable[str] | None = None,
) -> bool:
    """Move ``invoice`` to ``new`` if its current status allows it; True if it changed.

    A compare-and-set loop: guess the old status from the instance, ``UPDATE`` only
    from that status, and when another writer got there first read the status again
    and retry while the rules still allow the move. Exactly one of several racing
    callers succeeds for a given change.
    """
    new, source = str(new), str(source)  # plain str for every database driver
    allowed = {str(s) for s in (from_statuses or allowed_sources(new))} & allowed_sources(new)
    now = timezone.now()
    guess: str | None = invoice.status
    for _attempt in range(len(TRANSITIONS) + 1):
        if guess is None:
            guess = Invoice.objects.values_list("status", flat=True).get(pk=invoice.pk)
        if guess not in allowed:
            invoice.status = guess
            return False
        values: dict[str, Any] = {
            **(fields or {}),
            **((per_old_fields or {}).get(guess, {})),
            "status": new,
            "status_changed_at": now,
            "status_source": source,
        }
        with transaction.atomic():
            updated = Invoice.objects.filter(pk=invoice.pk, status=guess).update(**values)
            if updated:
                old = guess
                for name, value in values.items():
                    setattr(invoice, name, value)
                log(
                    instance=invoice,
                    action=LOG_ACTIONS[new],
                    user=user,
                    data={"old": old, "new": new, "source": source, **(data or {})},
                )
                _announce_on_commit([invoice], old, new, source)
                return True
        guess = None
    return False  # pragma: no cover - the status graph has no cycle this long


def _announce_on_commit(invoices: list[Invoice], old: str, new: str, source: str) -> None:
    """Send the signal and run the hook for each invoice once the transaction commits."""
    if not (invoice_status_changed.has_listeners() or hooks.get(hooks.INVOICE_STATUS_CHANGED)):
        return

    def announce() -> None:
        for invoice in invoices:
            invoice_status_changed.send(
                sender=Invoice, invoice=invoice, old=old, new=new, source=source
            )
            hooks.run(hooks.INVOICE_STATUS_CHANGED, invoice, old, new, source)

    transaction.on_commit(announce, robust=True)


# --- the changes -------------------------------------------------------------------------


def mark_paid(
    invoice: Invoice,
    *,
    source: str,
    user: Any = None,
    paid_at: datetime | None = None,
    payment_intent_id: str = "",
    subscription_id: str = "",
    customer_id: str = "",
) -> bool:
    """Money received: paid from any unpaid status. Money wins over expiry and deletion.

    On an expired or deleted invoice the payment is kept, the invoice marked paid and
    flagged ``late_payment`` so an editor sees that a withdrawn request was paid.
    """
    fields: dict[str, Any] = {"paid_at": paid_at or timezone.now(), "payment_failure": ""}
    for name, value in (
        ("payment_intent_id", payment_intent_id),
        ("subscription_id", subscription_id),
        ("customer_id", customer_id),
    ):
        if value:
            fields[name] = value
    late = {"late_payment": True}
    return _change(
        invoice,
        S.PAID,
        source=source,
        user=user,
        fields=fields,
        per_old_fields={S.EXPIRED: late, S.DELETED: late},
    )


def mark_processing(invoice: Invoice, *, source: str, payment_intent_id: str = "") -> bool:
    """The client submitted a payment that has not settled yet (a bank debit)."""
    fields = {"payment_intent_id": payment_intent_id} if payment_intent_id else {}
    return _change(invoice, S.PROCESSING, source=source, fields=fields)


def payment_failed(invoice: Invoice, *, source: str, reason: str) -> bool:
    """A submitted payment failed: back to pending, or expired if its time has run out."""
    new = S.EXPIRED if invoice.is_past_expiry else S.PENDING
    fields: dict[str, Any] = {"payment_failure": reason[:500]}
    if new == S.EXPIRED:
        fields["expired_at"] = timezone.now()
    return _change(
        invoice,
        new,
        source=source,
        fields=fields,
        data={"reason": reason[:500]},
        from_statuses=[S.PROCESSING],
    )


def expire(invoice: Invoice, *, source: str, user: Any = None) -> bool:
    """A pending invoice whose link ran out. Only pending invoices expire."""
    return _change(
        invoice,
        S.EXPIRED,
        source=source,
        user=user,
        fields={"expired_at": timezone.now()},
        from_statuses=[S.PENDING],
    )


def delete(invoice: Invoice, *, user: Any) -> bool:
    """An editor withdraws the request (a soft delete: the record stays).

    Raises :class:`TransitionNotAllowed` for a paid invoice or one whose payment is
    processing: money has moved, and deleting would hide it.
    """
    if invoice.status in (S.PAID, S.PROCESSING):
        raise TransitionNotAllowed(_message_for_refused_delete(invoice.status))
    changed = _change(
        invoice,
        S.DELETED,
        source=Source.EDITOR,
        user=user,
        fields={"deleted_at": timezone.now(), "deleted_by_id": getattr(user, "pk", None)},
        from_statuses=[S.PENDING, S.EXPIRED],
    )
    if not changed and invoice.status in (S.PAID, S.PROCESSING):
        raise TransitionNotAllowed(_message_for_refused_delete(invoice.status))
    return changed


def _message_for_refused_delete(status: str) -> str:
    if status == S.PAID:
        return _("A paid invoice cannot be deleted; refund it in Stripe instead.")
    return _("This invoice cannot be deleted while its payment is processing.")


# --- the sweep -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expired:
    """One invoice the sweep expired."""

    pk: int
    number: str
    checkout_session_id: str
    test_mode: bool
    account_id: int


def expire_due(now: datetime | None = None, batch_size: int | None = None) -> list[Expired]:
    """Expire every pending invoice whose ``expires_at`` has passed, in batches.

    Each batch is one ``UPDATE ... WHERE id IN (due pending ids) AND status = 'pending'
    RETURNING ...`` (PostgreSQL skips rows another transaction holds, such as one being
    paid right now; the next sweep takes them if they are still due), one bulk insert
    of log entries, and, when a receiver is connected, one query loading the batch for
    the signal. 100,000 due invoices take a few dozen queries, not 100,000.
    """
    now = now or timezone.now()
    batch_size = batch_size or billing_settings.EXPIRE_BATCH_SIZE
    expired: list[Expired] = []
    while True:
        with transaction.atomic():
            batch = _expire_batch(now, batch_size)
            if not batch:
                break
            _log_bulk(batch, now)
            if invoice_status_changed.has_listeners() or hooks.get(hooks.INVOICE_STATUS_CHANGED):
                invoices = list(Invoice.objects.filter(pk__in=[e.pk for e in batch]))
                _announce_on_commit(invoices, S.PENDING, S.EXPIRED, Source.SWEEP)
        expired.extend(batch)
        if len(batch) < batch_size:
            break
    if expired:
        logger.info("Expired %d invoices", len(expired))
    return expired


def _expire_batch(now: datetime, batch_size: int) -> list[Expired]:
    meta = Invoice._meta
    qn = connection.ops.quote_name
    table = qn(meta.db_table)

    def col(name: str) -> str:
        field = meta.get_field(name)
        assert isinstance(field, models.Field) and field.column
        return qn(field.column)

    lock = (
        " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    )
    # Only quoted identifiers from the model's _meta are interpolated; values are parameters.
    sql = (
        f"UPDATE {table} SET {col('status')} = %s, {col('expired_at')} = %s, "  # noqa: S608
        f"{col('status_changed_at')} = %s, {col('status_source')} = %s "
        f"WHERE {col('id')} IN (SELECT {col('id')} FROM {table} "
        f"WHERE {col('status')} = %s AND {col('expires_at')} <= %s "
        f"ORDER BY {col('expires_at')} LIMIT %s{lock}) AND {col('status')} = %s "
        f"RETURNING {col('id')}, {col('number')}, {col('checkout_session_id')}, "
        f"{col('test_mode')}, {col('account')}"
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    pending, expired = str(S.PENDING), str(S.EXPIRED)
    params = [expired, stamp, stamp, str(Source.SWEEP), pending, stamp, batch_size, pending]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [Expired(int(r[0]), r[1], r[2], bool(r[3]), int(r[4])) for r in rows]


def _log_bulk(batch: list[Expired], now: datetime) -> None:
    """One ``INSERT ... SELECT`` of log entries for a batch, built from the invoice rows.

    Building 100,000 ``ModelLogEntry`` objects in Python (and SQLite's 999-parameter
    limit, which cuts ``bulk_create`` into 90-row statements) costs more than the
    sweep's UPDATE itself; the database copies the rows in one statement instead.
    """
    meta, log_meta = Invoice._meta, ModelLogEntry._meta
    qn = connection.ops.quote_name
    content_type = ContentType.objects.get_for_model(Invoice)
    data = json.dumps({"old": str(S.PENDING), "new": str(S.EXPIRED), "source": str(Source.SWEEP)})
    ids = [e.pk for e in batch]
    ids_param: list[int] | str
    if connection.vendor == "postgresql":
        data_sql, ids_sql, ids_param, text = "%s::jsonb", "= ANY(%s)", ids, "text"
    else:
        data_sql, ids_sql, ids_param, text = (
            "%s",
            "IN (SELECT value FROM json_each(%s))",
            json.dumps(ids),
            "text",
        )

    def col(model_meta: Any, name: str) -> str:
        field = model_meta.get_field(name)
        assert isinstance(field, models.Field) and field.column
        return qn(field.column)

    columns = ", ".join(
        col(log_meta, name)
        for name in (
            "content_type",
            "object_id",
            "label",
            "action",
            "data",
            "timestamp",
            "content_changed",
            "deleted",
        )
    )
    sql = (
        f"INSERT INTO {qn(log_meta.db_table)} ({columns}) "  # noqa: S608 (identifiers from _meta)
        f"SELECT %s, CAST({col(meta, 'id')} AS {text}), {col(meta, 'number')}, %s, {data_sql}, "
        f"%s, %s, %s FROM {qn(meta.db_table)} WHERE {col(meta, 'id')} {ids_sql}"
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [content_type.pk, LOG_ACTIONS[S.EXPIRED], data, stamp, False, False, ids_param],
        )
