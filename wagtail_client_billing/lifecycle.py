"""The invoice state machine. Every status change goes through this module.

Each change is a compare-and-set: ``UPDATE ... WHERE pk = %s AND status = <old>``, so
a webhook, the expiry sweep, the client's return and an editor racing each other can
never lose an update or apply one twice. Which moves are allowed, the log action each
writes and which statuses may be deleted come from the table in :mod:`.status`.

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
from django.utils.translation import gettext_lazy
from wagtail.log_actions import log

from . import hooks, page_actions, rollup, status
from .conf import billing_settings
from .models import ClientBillingLogEntry, Invoice
from .signals import invoice_status_changed
from .status import InvoiceStatus

logger = logging.getLogger(__name__)

S = InvoiceStatus

#: For each status, the statuses it may move to (the status table's ``targets``).
TRANSITIONS: dict[str, frozenset[str]] = {
    value: row.targets for value, row in status.STATUSES.items()
}

#: The log action a change into each status writes (the table's ``log_action``).
LOG_ACTIONS: dict[str, str] = {value: row.log_action for value, row in status.STATUSES.items()}


#: The statuses money has not reached yet: what :func:`mark_paid` moves from.
UNPAID = (S.PENDING, S.PROCESSING, S.EXPIRED, S.DELETED)

#: The statuses of an invoice whose money came in: paid, and its refunds.
MONEY_RECEIVED = (S.PAID, S.PARTIALLY_REFUNDED, S.REFUNDED)


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


def lock(invoice: Invoice) -> Invoice:
    """Lock ``invoice``'s row until the transaction ends, and read it afresh.

    For code that reads the invoice, decides, and writes something the status does not
    guard (a session, a subscription's state, a renewal): a concurrent writer waits, and
    the decision is made on the row as it is now, not as it was loaded. Call it inside
    ``transaction.atomic()``; SQLite, which has one writer at a time, needs no lock.
    """
    invoice.refresh_from_db(from_queryset=Invoice.objects.select_for_update())
    return invoice


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
    action: str | None = None,
) -> bool:
    """Move ``invoice`` to ``new`` if its current status allows it; True if it changed.

    A compare-and-set loop: guess the old status from the instance, ``UPDATE`` only
    from that status, and when another writer got there first read the status again
    and retry while the rules still allow the move. Exactly one of several racing
    callers succeeds for a given change. ``action`` replaces the new status's log action
    for a move that means something else (a draft sent is not a payment that failed).
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
        # The update and its log entry commit together. Inside a caller's transaction
        # (a webhook, a view) no savepoint of its own: an error here rolls back to the
        # caller's, which every caller that goes on after an error has.
        with transaction.atomic(savepoint=False):
            updated = Invoice.objects.filter(pk=invoice.pk, status=guess).update(**values)
            if updated:
                old = guess
                old_paid_at = invoice.paid_at
                for name, value in values.items():
                    setattr(invoice, name, value)
                log(
                    instance=invoice,
                    action=action or LOG_ACTIONS[new],
                    user=user,
                    data={"old": old, "new": new, "source": source, **(data or {})},
                )
                rollup.moved(invoice, old, old_paid_at)
                _announce_on_commit([invoice], old, new, source)
                return True
        guess = None
    return False  # pragma: no cover - the status graph has no cycle this long


def _others_listen() -> bool:
    """Whether site code wants every change: a signal receiver or a registered hook."""
    return invoice_status_changed.has_listeners(Invoice) or bool(
        hooks.get(hooks.INVOICE_STATUS_CHANGED)
    )


def _announce_on_commit(
    invoices: list[Invoice], old: str, new: str, source: str, *, others: bool | None = None
) -> None:
    """Once the transaction commits, for each invoice: run the app's page action (if it
    names a page), send the signal and run the hook.

    ``others`` is :func:`_others_listen` when the caller already asked. Each invoice is
    announced on its own: a receiver or hook that raises for one is logged and the
    others are still announced (the status change has committed either way).
    """
    if others is None:
        others = _others_listen()
    if not others:
        invoices = [invoice for invoice in invoices if page_actions.has_page_action(invoice, new)]
    if not invoices:
        return

    def announce() -> None:
        for invoice in invoices:
            try:
                page_actions.run_page_actions(invoice, new)
                if others:
                    invoice_status_changed.send(
                        sender=Invoice, invoice=invoice, old=old, new=new, source=source
                    )
                    hooks.run(hooks.INVOICE_STATUS_CHANGED, invoice, old, new, source)
            except Exception:
                logger.exception(
                    "After invoice %s changed from %s to %s: a receiver failed",
                    invoice.number,
                    old,
                    new,
                )

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
        # Paid once: a refunded invoice is not "paid" again by a redelivered payment.
        from_statuses=UNPAID,
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

    Only from a status the table marks deletable (:attr:`.Invoice.can_be_deleted`).
    Raises :class:`TransitionNotAllowed`, with the table's reason, for any other status
    (paid or processing: money has moved, and deleting would hide it) but deleted, which
    is left as it is (False).
    """
    _refuse_delete_unless_deletable(invoice)
    changed = _change(
        invoice,
        S.DELETED,
        source=Source.EDITOR,
        user=user,
        fields={"deleted_at": timezone.now(), "deleted_by_id": getattr(user, "pk", None)},
        from_statuses=status.deletable_values(),
    )
    if not changed:
        _refuse_delete_unless_deletable(invoice)  # it moved on meanwhile (paid, say)
    return changed


#: The log action of a draft sent to the client (a move into pending from draft).
SENT_ACTION = "wagtail_client_billing.sent"


def send_draft(invoice: Invoice, *, user: Any, fields: dict[str, Any]) -> bool:
    """A draft sent to the client: pending, with ``fields`` (its number and expiry).

    Only from draft; False when it is not a draft any more (sent or deleted meanwhile).
    """
    return _change(
        invoice,
        S.PENDING,
        source=Source.EDITOR,
        user=user,
        fields=fields,
        data={"number": fields.get("number", "")},
        from_statuses=[S.DRAFT],
        action=SENT_ACTION,
    )


def _refuse_delete_unless_deletable(invoice: Invoice) -> None:
    if not invoice.can_be_deleted and invoice.status != S.DELETED:
        raise TransitionNotAllowed(invoice.deletion_refusal)


# --- the sweep -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expired:
    """One invoice the sweep expired."""

    pk: int
    number: str
    checkout_session_id: str
    test_mode: bool
    account_id: int
    unpublish_page_when_expired_id: int | None = None


#: The columns of an expired invoice that :func:`_expire_batch` returns, as :class:`Expired`.
_RETURNED = (
    "id",
    "number",
    "checkout_session_id",
    "test_mode",
    "account",
    "unpublish_page_when_expired",
)


def expire_due(now: datetime | None = None, batch_size: int | None = None) -> list[Expired]:
    """Expire every pending invoice whose ``expires_at`` has passed, in batches.

    Each batch is one transaction: one ``UPDATE ... WHERE id IN (due pending ids) AND
    status = 'pending' RETURNING ...`` (PostgreSQL skips rows another transaction holds,
    such as one being paid right now; the next sweep takes them if they are still due),
    one ``INSERT ... SELECT`` of their log entries, and, only when someone needs the
    invoices after commit, one query loading them (see :func:`_announce_batch`). The
    queries grow with the number of batches, not of invoices (``docs/performance.md``).
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
            rollup.expired_set([e.pk for e in batch])
            _announce_batch(batch)
        expired.extend(batch)
        if len(batch) < batch_size:
            break
    if expired:
        logger.info("Expired %d invoices", len(expired))
    return expired


def _announce_batch(batch: list[Expired]) -> None:
    """Load the invoices the after-commit announcement needs, in one query, if any.

    A signal receiver or hook gets every expired invoice, in full. With neither, only
    the app's own page action is left, and it needs only the invoices that name a page
    to unpublish: usually none, so the sweep loads nothing. Loaded inside the batch's
    transaction, so each instance is the invoice as this change left it.
    """
    others = _others_listen()
    pks = [e.pk for e in batch if others or e.unpublish_page_when_expired_id is not None]
    if pks:
        invoices = list(Invoice.objects.filter(pk__in=pks).order_by("pk"))
        _announce_on_commit(invoices, S.PENDING, S.EXPIRED, Source.SWEEP, others=others)


def _col(model_meta: Any, name: str) -> str:
    field = model_meta.get_field(name)
    assert isinstance(field, models.Field) and field.column
    return connection.ops.quote_name(field.column)


def _expire_batch(now: datetime, batch_size: int) -> list[Expired]:
    """Expire up to ``batch_size`` due invoices in one ``UPDATE``; returns them.

    The due ids come from the partial index on ``(status, expires_at)`` of pending
    invoices, in expiry order. On PostgreSQL they are collected with ``FOR UPDATE SKIP
    LOCKED`` into an array (``id = ANY(ARRAY(...))``), so the UPDATE finds its rows by
    primary key; ``id IN (subquery)`` is planned as a hash join over every pending
    invoice, read again for every batch. SQLite's planner reads that index whatever its
    statistics say since the index leads with ``status`` (migration 0035;
    ``tests/test_query_plans_sqlite.py``). ``'pending'`` is written into the SQL, not
    passed as a parameter: SQLite can use a partial index only when the query's own
    text implies the index's condition.
    """
    meta = Invoice._meta
    table = connection.ops.quote_name(meta.db_table)

    def col(name: str) -> str:
        return _col(meta, name)

    pending, expired = str(S.PENDING), str(S.EXPIRED)
    assert pending.isalpha()  # a literal in the SQL below
    # Only quoted identifiers from _meta and our own status literal are interpolated;
    # values are parameters.
    due = (
        f"SELECT {col('id')} FROM {table} "  # noqa: S608
        f"WHERE {col('status')} = '{pending}' AND {col('expires_at')} <= %s "
        f"ORDER BY {col('expires_at')} LIMIT %s"
    )
    if connection.vendor == "postgresql":
        where = f"{col('id')} = ANY(ARRAY({due} FOR UPDATE SKIP LOCKED))"
    else:
        where = f"{col('id')} IN ({due})"  # SQLite: one writer at a time, nothing to skip
    sql = (
        f"UPDATE {table} SET {col('status')} = %s, {col('expired_at')} = %s, "  # noqa: S608
        f"{col('status_changed_at')} = %s, {col('status_source')} = %s "
        f"WHERE {where} AND {col('status')} = %s "
        f"RETURNING {', '.join(col(name) for name in _RETURNED)}"
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = [expired, stamp, stamp, str(Source.SWEEP), stamp, batch_size, pending]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [Expired(int(r[0]), r[1], r[2], bool(r[3]), int(r[4]), r[5]) for r in rows]


#: The columns of Wagtail's log model that :func:`_log_bulk` writes, and those it
#: leaves NULL (no request's log context, no user, no revision in a sweep). Together
#: they are every column but the primary key: a test compares them with the model, so
#: a column a new Wagtail adds to ``BaseLogEntry`` fails it until it is written here.
LOG_BULK_COLUMNS = (
    "content_type",
    "object_id",
    "label",
    "action",
    "data",
    "timestamp",
    "content_changed",
    "deleted",
)
LOG_BULK_LEFT_NULL = ("uuid", "user", "revision")


def _log_bulk(batch: list[Expired], now: datetime) -> None:
    """One ``INSERT ... SELECT`` of the batch's log entries.

    The one place that writes Wagtail's log table around its API (everything else
    calls ``log()`` or the log model's ``bulk_create``). Building a
    ``ClientBillingLogEntry`` object per invoice in Python (and SQLite's 999-parameter
    limit, which cuts ``bulk_create`` into 90-row statements) costs more than the
    sweep's UPDATE itself; the database makes the rows in one statement instead, from
    the ids and numbers the UPDATE returned: two arrays ``unnest``-ed on PostgreSQL, the
    invoice rows of a JSON list of ids on SQLite. Its columns are
    :data:`LOG_BULK_COLUMNS`, in that order.
    """
    meta, log_meta = Invoice._meta, ClientBillingLogEntry._meta
    qn = connection.ops.quote_name
    id_, number = _col(meta, "id"), _col(meta, "number")
    rows: str
    rows_params: list[Any]
    if connection.vendor == "postgresql":
        data_sql = "%s::jsonb"
        rows = f"unnest(%s::bigint[], %s::text[]) AS expired ({id_}, {number})"
        rows_params = [[e.pk for e in batch], [e.number for e in batch]]
    else:
        data_sql = "%s"
        rows = f"{qn(meta.db_table)} WHERE {id_} IN (SELECT value FROM json_each(%s))"  # noqa: S608
        rows_params = [json.dumps([e.pk for e in batch])]
    columns = ", ".join(_col(log_meta, name) for name in LOG_BULK_COLUMNS)
    # Only quoted identifiers from _meta are interpolated; values are parameters.
    sql = (
        f"INSERT INTO {qn(log_meta.db_table)} ({columns}) "  # noqa: S608
        f"SELECT %s, CAST({id_} AS text), {number}, %s, {data_sql}, %s, %s, %s FROM {rows}"
    )
    data = json.dumps({"old": str(S.PENDING), "new": str(S.EXPIRED), "source": str(Source.SWEEP)})
    content_type = ContentType.objects.get_for_model(Invoice)
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = [content_type.pk, LOG_ACTIONS[S.EXPIRED], data, stamp, False, False, *rows_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def set_refund_state(
    invoice: Invoice, new: str, *, source: str, user: Any = None, data: dict[str, Any] | None = None
) -> bool:
    """Paid, partially refunded or refunded, as the invoice's payments and refunds add up
    (:func:`..billing.refunds.refund_state`): only between those three."""
    if new not in MONEY_RECEIVED or invoice.status == new:
        return False
    return _change(invoice, new, source=source, user=user, data=data, from_statuses=MONEY_RECEIVED)
