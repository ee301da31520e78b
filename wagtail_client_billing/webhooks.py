"""Stripe webhooks: verify the signature, store the event once, apply it through the lifecycle.

One endpoint receives everything (the platform's account events and the Connect events
of every connected account, test and live). For each delivery:

1. :func:`verify` checks ``Stripe-Signature`` against the secrets of every configured
   endpoint (``STRIPE_WEBHOOK_ENDPOINTS``; several per endpoint while one is rolled),
   with the timestamp at most ``WEBHOOK_TOLERANCE`` from now either way. The event's
   ``livemode`` decides the mode, and the endpoint that signed it must be one Stripe
   sends such events to: a live Connect endpoint gets connected accounts' test events
   too, a test endpoint never gets live ones. Nothing is stored before this passes, so
   an unsigned request cannot fill the table.
2. :func:`store` inserts a :class:`~.models.WebhookEvent` keyed by Stripe's event id.
   The unique constraint, not a read-then-write, decides whether it is new, so two
   concurrent deliveries of one event cannot both insert it, and a test event delivered
   to both the live and the test Connect endpoint is applied once.
3. A new event is handed to the task queue (:func:`queue_event`) and the
   view answers 200 at once: Stripe wants a quick answer, and a burst of events (a
   sweep of renewals, a backlog after an outage) waits in the queue instead of tying
   up web workers. The request costs one verified ``INSERT`` and one enqueue.
4. :func:`process` (run by :func:`tasks.apply_webhook_event` in a ``qcluster`` worker)
   applies it in one transaction, holding the event's row lock so a concurrent run
   waits and then sees it done. Applying never calls Stripe: every event the app
   handles carries what it needs. An event the app does not handle, or one for an
   invoice or account that is not this app's (another account, the other mode), is
   stored as *ignored* with the reason. An exception marks it *failed* with the error,
   and the task retries it with backoff (``WEBHOOK_MAX_ATTEMPTS``); a redelivery of a
   failed event from Stripe queues it again, and an operator can *Reprocess* it from
   the admin's webhook event listing.

Events arrive in any order and more than once. Each handler is written so that any
order of a realistic sequence ends in the same state: paid is final in the lifecycle,
a late ``async_payment_failed`` cannot un-pay, a ``completed (unpaid)`` arriving after
its ``async_payment_failed`` does not put the invoice back into processing, renewals
are counted once per Stripe invoice, a subscription that ended stays ended, and an
account snapshot older than the one recorded is not applied.

The invoice an event is about is found by the Checkout Session's ``metadata.invoice_id``
or ``client_reference_id`` (the invoice's primary key, as the gateway sets them), then
by the session or subscription id recorded on the invoice.

:func:`apply_checkout_session` is the one place that turns a Checkout Session's state
into invoice status; the client's return from Checkout and reconciliation use it too.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from wagtail.log_actions import log
from wagtail.log_actions import registry as log_registry

from . import gateway, lifecycle, taskqueue
from .billing import accounts
from .conf import billing_settings
from .gateway import unix_time as _timestamp
from .models import (
    Invoice,
    InvoiceStatus,
    StripeAccount,
    WebhookEvent,
    WebhookOutcome,
)
from .signals import stripe_event_applied

logger = logging.getLogger(__name__)


#: Subscription statuses after which Stripe never bills the subscription again.
TERMINAL_SUBSCRIPTION_STATUSES = frozenset({"canceled", "incomplete_expired"})

#: ``payment_status`` values of a completed session that mean the money is there.
PAID_PAYMENT_STATUSES = frozenset({"paid", "no_payment_required"})

#: History entry of an invoice paid through a session for another amount or currency.
AMOUNT_MISMATCH_ACTION = "wagtail_client_billing.amount_mismatch"


class InvalidWebhook(Exception):
    """The request is not a genuine, fresh Stripe event for this platform (answer 400)."""


class Ignored(Exception):
    """The event is genuine but not for anything this app should change; ``str()`` says why."""


@dataclass(frozen=True)
class Receipt:
    """What happened to one delivery, or to one run of :func:`process`.

    Attributes:
        record: the stored event.
        duplicate: for a delivery, the event had been stored before; for a run of
            :func:`process`, it had been processed or ignored before. Nothing was done.
    """

    record: WebhookEvent
    duplicate: bool = False

    @property
    def failed(self) -> bool:
        return self.record.outcome == WebhookOutcome.FAILED


# --- 1. verify ------------------------------------------------------------------------------


def verify(payload: bytes, signature: str | None) -> tuple[dict[str, Any], bool]:
    """Return ``(event, test_mode)`` for a correctly signed, fresh Stripe event.

    The ``v1`` signature is checked against the secrets of every configured endpoint
    (:meth:`~.conf.BillingSettings.webhook_endpoints`), and its timestamp may be at most
    ``WEBHOOK_TOLERANCE`` seconds from now, either way. The event's ``livemode`` decides
    its mode, and one endpoint whose secret signed it must be one Stripe sends such an
    event to (:meth:`~.conf.WebhookEndpoint.may_sign`): a live event signed with a test
    endpoint's secret is refused, a test event of a connected account signed with a live
    Connect endpoint's secret is accepted, as Stripe sends it there.

    Raises:
        InvalidWebhook: no or a malformed signature, none that matches, a timestamp too
            old or too far ahead, a body that is not strict UTF-8 JSON of a Stripe event
            (or is nested deeper than any event), or an endpoint of the wrong mode.
    """
    if not signature:
        raise InvalidWebhook("No Stripe-Signature header.")
    # Stripe signs UTF-8 JSON. Decoding it here, strictly, and computing the HMAC here
    # keeps verification independent of the ``stripe`` release: 13.0 to 15.5 formatted a
    # bytes body as ``b'...'`` and so refused every genuine event.
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidWebhook("The body is not UTF-8 text.") from exc
    endpoints = [e for e in billing_settings.webhook_endpoints() if e.secrets]
    if not endpoints:
        raise InvalidWebhook("No webhook secret is configured.")
    timestamp, signatures = _parse_signature(signature)
    signed = f"{timestamp}.".encode() + payload
    matched = [e for e in endpoints if any(_signs(signed, s, signatures) for s in e.secrets)]
    if not matched:
        raise InvalidWebhook("No signature matched.")
    tolerance = billing_settings.WEBHOOK_TOLERANCE
    offset = time.time() - timestamp
    if offset > tolerance:
        raise InvalidWebhook("The signature's timestamp is too old.")
    if offset < -tolerance:
        raise InvalidWebhook("The signature's timestamp is in the future.")
    event = parse_event(text)
    livemode = event["livemode"]
    if not any(e.may_sign(livemode, event.get("account") or "") for e in matched):
        raise InvalidWebhook(
            "A live event signed by a test endpoint."
            if livemode
            else "A test event that Stripe does not send to the live endpoint that signed it."
        )
    return event, not livemode


def _parse_signature(header: str) -> tuple[int, list[str]]:
    """``t`` and the ``v1`` signatures of ``t=<unix time>,v1=<hex>,v1=<hex>,v0=...``."""
    timestamp: int | None = None
    signatures = []
    for item in header.split(","):
        key, _sep, value = item.strip().partition("=")
        if key == "t" and timestamp is None:
            if not (value.isascii() and value.isdigit() and len(value) <= 12):
                break
            timestamp = int(value)
        elif key == "v1" and value.isascii():
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidWebhook("The Stripe-Signature header has no timestamp or v1 signature.")
    return timestamp, signatures


def _signs(signed: bytes, secret: str, signatures: list[str]) -> bool:
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


def _refuse_constant(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON, Stripe never sends them, and no database
    would store them in a JSON column."""
    raise ValueError(f"{name} is not valid JSON")


#: Far deeper than any Stripe event (objects hold objects a few levels down), and far
#: from Python's recursion limit, which encoding the JSON column or reading it back hits.
MAX_PAYLOAD_DEPTH = 64

# What neither database can hold in a JSON column (PostgreSQL's jsonb refuses NUL, and a
# lone surrogate cannot be encoded as UTF-8 for either); JSON escapes are the only way in.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def parse_event(payload: str | bytes) -> dict[str, Any]:
    """The event dict, or :class:`InvalidWebhook` if ``payload`` is not a Stripe event.

    NUL and lone UTF-16 surrogates (``\\u0000``, ``\\ud800``) become U+FFFD: a signed event
    is kept whatever text a client typed into it, the same on every database.
    """
    try:
        event = json.loads(payload, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise InvalidWebhook("The body is nested too deeply.") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidWebhook("The body is not JSON.") from exc
    text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
    nestable = text.count("{") + text.count("[") > MAX_PAYLOAD_DEPTH  # cheap: no walk needed
    if nestable and _depth_exceeds(event, MAX_PAYLOAD_DEPTH):
        raise InvalidWebhook("The body is nested too deeply.")
    if _UNSTORABLE_ESCAPE.search(text):
        event = _storable(event)
    if not (
        isinstance(event, dict)
        and event.get("object") == "event"
        and isinstance(event.get("id"), str)
        and event["id"]
        and isinstance(event.get("type"), str)
        and event["type"]
        and isinstance(event.get("livemode"), bool)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
        and isinstance(event.get("account", ""), str | type(None))
    ):
        raise InvalidWebhook("The body is not a Stripe event.")
    return event


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether lists and dicts nest more than ``limit`` deep (level by level, no recursion)."""
    level = [value] if isinstance(value, dict | list) else []
    for _depth in range(limit):
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below.extend([child for child in children if type(child) in (dict, list)])
        if not below:
            return False
        level = below
    return True


def _storable(value: Any) -> Any:
    """``value`` with NUL and lone surrogates in its strings (and keys) made U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE_CHARACTER.sub("\ufffd", value)
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


# --- 2. store -------------------------------------------------------------------------------


def store(event: dict[str, Any]) -> tuple[WebhookEvent, bool]:
    """Insert the event, or find the one stored before; ``(record, created)``.

    The insert is tried first and the unique ``event_id`` decides whether it is new,
    which is safe under concurrent deliveries where "look, then insert" is not. In the
    webhook view (autocommit) the single ``INSERT`` is its own transaction; inside a
    caller's transaction it gets a savepoint, so a refused payload does not break that.
    """
    values = {f.attname: f.get_default() for f in _columns()} | {
        "event_id": event["id"][:255],
        "type": event["type"][:100],
        "account": (event.get("account") or "")[:64],
        "livemode": bool(event["livemode"]),
        "payload": event,
    }
    connection = transaction.get_connection()
    savepoint = transaction.atomic() if connection.in_atomic_block else None
    try:
        with savepoint or contextlib.nullcontext():
            if _can_insert_or_skip(connection):
                pk = _insert_or_skip(connection, values)
                if pk is not None:
                    return WebhookEvent(pk=pk, **values), True
            else:
                return WebhookEvent.objects.create(**values), True
    except (DataError, UnicodeError) as exc:  # parse_event already replaced NUL and surrogates
        raise InvalidWebhook("The event could not be stored.") from exc
    except IntegrityError as exc:
        existing = WebhookEvent.objects.filter(event_id=values["event_id"]).first()
        if existing is None:  # not a duplicate: the database refused the payload itself
            raise InvalidWebhook("The event could not be stored.") from exc
        return existing, False
    # A duplicate: what the delivery's answer needs, without parsing the stored payload.
    existing = (
        WebhookEvent.objects.only("event_id", "outcome").filter(event_id=values["event_id"]).first()
    )
    if existing is None:  # skipped as a duplicate, and the original is gone since
        raise InvalidWebhook("The event could not be stored.")
    return existing, False


def _columns() -> list[Any]:
    return [f for f in WebhookEvent._meta.concrete_fields if not f.primary_key]


def _can_insert_or_skip(connection: Any) -> bool:
    return connection.vendor in ("postgresql", "sqlite") and bool(
        connection.features.can_return_columns_from_insert  # SQLite 3.35+
    )


def _insert_or_skip(connection: Any, values: dict[str, Any]) -> int | None:
    """``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING id``: the new row's id,
    or None when the event is stored already.

    The hot half of every delivery: one statement, no exception for a duplicate, and
    half of what ``objects.create`` costs in Python. ``values`` holds every column
    (:func:`store` fills in the model defaults), so a field added to the model later
    needs nothing here.
    """
    meta = WebhookEvent._meta
    qn = connection.ops.quote_name
    fields = _columns()
    params = [f.get_db_prep_save(values[f.attname], connection) for f in fields]
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "  # noqa: S608 (identifiers from _meta)
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({qn(meta.get_field('event_id').column)}) DO NOTHING "
        f"RETURNING {qn(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else int(row[0])


# --- 3. process -----------------------------------------------------------------------------


def receive(payload: bytes, signature: str | None) -> Receipt:
    """Verify and store one delivery, and queue it to be applied (what the view does).

    A new event is queued; so is a redelivery of one that failed (Stripe delivering
    again is as good a moment to retry as any). A redelivery of an event that is
    queued, processed or ignored is acknowledged and changes nothing.
    """
    event, _test_mode = verify(payload, signature)
    record, created = store(event)
    if created or record.outcome == WebhookOutcome.FAILED:
        queue_event(record.pk)
    return Receipt(record, duplicate=not created)


def queue_event(event_pk: int) -> None:
    """Apply the stored event in a worker (:func:`.tasks.apply_webhook_event`) after commit."""
    taskqueue.on_commit(
        f"{taskqueue.TASKS}.apply_webhook_event", event_pk, group="client_billing_webhook"
    )


def process(event_pk: int, *, force: bool = False) -> Receipt:
    """Apply the stored event ``event_pk`` once; ``force`` re-applies an ignored or
    processed one too.

    A processed or ignored event is a duplicate and left alone; a received (never
    finished) or failed one is applied. The row lock makes concurrent runs wait for the
    first to finish (PostgreSQL; SQLite serialises writers anyway).
    """
    with transaction.atomic():
        locked = WebhookEvent.objects.select_for_update().get(pk=event_pk)
        done = (WebhookOutcome.PROCESSED, WebhookOutcome.IGNORED)
        if locked.outcome in done and not force:
            return Receipt(locked, duplicate=True)
        locked.attempts += 1
        locked.processed_at = timezone.now()
        try:
            with transaction.atomic():
                outcome, reason, invoice = _apply(locked)
                stripe_event_applied.send(
                    sender=WebhookEvent,
                    event=locked.payload,
                    record=locked,
                    outcome=outcome,
                    invoice=invoice,
                )
        except Exception as exc:
            logger.exception("Stripe event %s (%s) failed", locked.event_id, locked.type)
            locked.outcome = WebhookOutcome.FAILED
            locked.error = f"{type(exc).__name__}: {exc}"[:5000]
        else:
            locked.outcome = outcome
            locked.error = reason
            if invoice is not None:
                locked.invoice = invoice
        WebhookEvent.objects.filter(pk=locked.pk).update(
            outcome=locked.outcome,
            error=locked.error,
            invoice=locked.invoice,
            attempts=locked.attempts,
            processed_at=locked.processed_at,
        )
    return Receipt(locked)


def _apply(record: WebhookEvent) -> tuple[str, str, Invoice | None]:
    """Run the handler for the event's type; ``(outcome, reason, invoice)``."""
    event = record.payload
    handler = HANDLERS.get(event["type"])
    if handler is None:
        return WebhookOutcome.IGNORED, _("Not an event this app handles."), None
    holder: dict[str, Invoice | None] = {"invoice": None}
    try:
        handler(event, event["data"]["object"], holder)
    except Ignored as exc:
        return WebhookOutcome.IGNORED, str(exc), holder["invoice"]
    return WebhookOutcome.PROCESSED, "", holder["invoice"]


# --- finding and checking what an event is about ---------------------------------------------


# Every field of an event's object is read through these: a genuine event of an
# unexpected shape (a new API version) must be ignored, not crash into endless retries,
# and nothing may be marked paid on a field that could not be read.


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_pk(value: Any) -> int | None:
    """A primary key from an ``invoice_id``/``client_reference_id``: a positive 64-bit int."""
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 18:
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    return None


def _reference(obj: dict[str, Any]) -> int | None:
    """The invoice pk named by a session's or subscription's metadata or reference."""
    metadata = _mapping(obj.get("metadata"))
    return _as_pk(metadata.get("invoice_id")) or _as_pk(obj.get("client_reference_id"))


def _invoice(
    *, pk: int | None = None, session_id: str = "", subscription_id: str = ""
) -> Invoice | None:
    invoices = Invoice.objects.select_related("account")
    if pk is not None:
        found = invoices.filter(pk=pk).first()
        if found is not None:
            return found
    if session_id:
        found = invoices.filter(checkout_session_id=session_id).first()
        if found is not None:
            return found
    if subscription_id:
        return invoices.filter(subscription_id=subscription_id).first()
    return None


def _check_owner(invoice: Invoice, event: dict[str, Any]) -> None:
    """Refuse an event from another connected account or the other mode."""
    account = event.get("account") or ""
    if account != invoice.account.stripe_id:
        raise Ignored(
            _("The event is from account %(event)s, the invoice is on %(invoice)s.")
            % {"event": account or _("the platform"), "invoice": invoice.account.stripe_id}
        )
    if bool(event["livemode"]) == invoice.test_mode:
        raise Ignored(
            _("A live mode event for a test mode invoice.")
            if event["livemode"]
            else _("A test mode event for a live mode invoice.")
        )


def _found(
    event: dict[str, Any], holder: dict[str, Invoice | None], invoice: Invoice | None
) -> Invoice:
    if invoice is None:
        raise Ignored(_("No invoice of this app matches the event."))
    holder["invoice"] = invoice
    _check_owner(invoice, event)
    # Every handler reads the invoice, decides and writes: another event, the client's
    # return or an editor may be changing it at this moment, so decide on the row as it
    # is now and hold it until this event's transaction commits.
    return lifecycle.lock(invoice)


def _event_created(event: dict[str, Any]) -> int:
    created = event.get("created")
    return created if isinstance(created, int) and not isinstance(created, bool) else 0


def _id(value: Any) -> str:
    """An id from a field that may hold an id or an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


# --- Checkout Sessions: the one place session state becomes invoice status -------------------


def session_belongs_to(invoice: Invoice, session: gateway.CheckoutSession) -> bool:
    """Whether ``session`` was made for ``invoice`` (its metadata, reference or recorded id)."""
    named = _as_pk(session.metadata.get("invoice_id")) or _as_pk(session.client_reference_id)
    if named is not None:
        return named == invoice.pk
    return bool(session.id) and session.id == invoice.checkout_session_id


def apply_checkout_session(
    invoice: Invoice,
    session: gateway.CheckoutSession,
    source: str,
    *,
    at: datetime | None = None,
) -> str:
    """Bring ``invoice`` in line with the state of one of its Checkout Sessions.

    Used by the ``checkout.session.*`` webhooks, by the client's return from Checkout and
    by reconciliation, so the rules exist once:

    - complete and ``paid``/``no_payment_required``: paid (from any unpaid status: money
      received wins over expiry and deletion), with Stripe's figures recorded and the
      invoice flagged when the session's currency or subtotal is not the invoice's
      (:func:`record_checkout_amounts`);
    - complete and ``unpaid`` (a bank debit submitted): processing, unless this session's
      payment already failed or succeeded (an earlier event said so);
    - expired: the invoice forgets the session if it is the one it holds, so the next
      click on the link makes a new one; the invoice's own ``expires_at`` decides Expired;
    - open: nothing.

    Returns ``"paid"``, ``"processing"``, ``"session_expired"``, ``"open"``, or
    ``"not_this_invoice"`` (nothing done) when the session names another invoice.
    """
    if not session_belongs_to(invoice, session):
        return "not_this_invoice"
    _remember_ids(invoice, session)
    if session.status == "complete":
        if session.payment_status in PAID_PAYMENT_STATUSES:
            _session_paid(invoice, session, source, at)
            return "paid"
        close_session(invoice, session.id)
        if not _delayed_payment_resolved(invoice, session.id):
            lifecycle.mark_processing(
                invoice, source=source, payment_intent_id=session.payment_intent
            )
        return "processing"
    if session.status == "expired":
        forget_session(invoice, session.id)
        return "session_expired"
    return "open"


def _session_paid(
    invoice: Invoice, session: gateway.CheckoutSession, source: str, at: datetime | None
) -> None:
    """The money of ``session`` is there: paid, and what Stripe charged recorded."""
    close_session(invoice, session.id)
    lifecycle.mark_paid(
        invoice,
        source=source,
        paid_at=at,
        payment_intent_id=session.payment_intent,
        subscription_id=session.subscription,
        customer_id=session.customer,
    )
    record_checkout_amounts(invoice, session)


def record_checkout_amounts(invoice: Invoice, session: gateway.CheckoutSession) -> bool:
    """Record what the paying session charged, and flag it if it is not the invoice.

    The session's ``currency`` and ``amount_subtotal`` (the line items before discounts
    and tax) should be the invoice's; a hook that changed the price, or a session made
    for another amount, makes them differ. The invoice stays paid (money received wins)
    and gets ``amount_mismatch``, shown to editors, with an entry in its History.
    ``total_details`` and ``amount_total`` are recorded as Stripe gives them: tax,
    discounts and shipping change the total, not the subtotal.

    Recorded once, by the first paid session to report (a conditional ``UPDATE`` on a
    paid invoice with nothing recorded yet), whichever event or path comes first.
    Returns whether this call recorded them.
    """
    if not session.currency:
        return False  # amounts without their currency cannot be read
    mismatch = session.currency != invoice.currency.upper() or (
        session.amount_subtotal is not None and session.amount_subtotal != invoice.amount
    )
    values: dict[str, Any] = {
        "checkout_currency": session.currency,
        "checkout_amount_subtotal": session.amount_subtotal,
        "checkout_amount_discount": session.amount_discount,
        "checkout_amount_tax": session.amount_tax,
        "checkout_amount_shipping": session.amount_shipping,
        "checkout_amount_total": session.amount_total,
    }
    if mismatch:
        values["amount_mismatch"] = True
    recorded = Invoice.objects.filter(
        pk=invoice.pk, status=InvoiceStatus.PAID, checkout_currency=""
    ).update(**values)
    if not recorded:
        return False
    for name, value in values.items():
        setattr(invoice, name, value)
    if mismatch:
        logger.warning(
            "Invoice %s was paid through Checkout Session %s for %s %s, not its own %s %s",
            invoice.number,
            session.id,
            session.amount_subtotal,
            session.currency,
            invoice.amount,
            invoice.currency,
        )
        log(
            instance=invoice,
            action=AMOUNT_MISMATCH_ACTION,
            data={
                "session": session.id,
                "currency": session.currency,
                "amount_subtotal": session.amount_subtotal,
                "amount_total": session.amount_total,
                "invoice_currency": invoice.currency,
                "invoice_amount": invoice.amount,
            },
        )
    return True


def forget_session(invoice: Invoice, session_id: str) -> bool:
    """Clear the invoice's Checkout Session if it is ``session_id``; True if it was."""
    cleared = Invoice.objects.filter(pk=invoice.pk, checkout_session_id=session_id).update(
        checkout_session_id="", checkout_session_url="", checkout_session_expires_at=None
    )
    if cleared:
        invoice.checkout_session_id = invoice.checkout_session_url = ""
        invoice.checkout_session_expires_at = None
    return bool(cleared)


def close_session(invoice: Invoice, session_id: str) -> None:
    """A completed session cannot be paid again: stop sending the client to its page.

    Its id stays (the dashboard link, reconciliation of a processing payment); the pay
    link makes a new session if the invoice becomes payable again (a failed bank debit).
    """
    closed = Invoice.objects.filter(pk=invoice.pk, checkout_session_id=session_id).update(
        checkout_session_url="", checkout_session_expires_at=None
    )
    if closed:
        invoice.checkout_session_url = ""
        invoice.checkout_session_expires_at = None


def _remember_ids(invoice: Invoice, session: gateway.CheckoutSession) -> None:
    """Record the subscription and customer a session created, without touching status."""
    values = {
        name: value
        for name, value in (
            ("subscription_id", session.subscription),
            ("customer_id", session.customer),
        )
        if value and not getattr(invoice, name)
    }
    if values:
        Invoice.objects.filter(pk=invoice.pk).update(**values)
        for name, value in values.items():
            setattr(invoice, name, value)


def _delayed_payment_resolved(invoice: Invoice, session_id: str) -> bool:
    """Whether an ``async_payment_*`` event for this session was applied already.

    Stripe does not order deliveries: ``completed (unpaid)`` can arrive after the debit
    failed. Without this the invoice would sit in processing for a payment that is over.
    """
    return WebhookEvent.objects.filter(
        invoice=invoice,
        outcome=WebhookOutcome.PROCESSED,
        type__in=[
            "checkout.session.async_payment_failed",
            "checkout.session.async_payment_succeeded",
        ],
        payload__data__object__id=session_id,
    ).exists()


def _session_invoice(event, obj, holder) -> tuple[Invoice, gateway.CheckoutSession]:
    session = gateway.session_from_stripe(obj)
    invoice = _found(event, holder, _invoice(pk=_reference(obj), session_id=session.id))
    if not session_belongs_to(invoice, session):
        raise Ignored(_("The Checkout Session names another invoice."))
    return invoice, session


def on_session_completed(event, obj, holder) -> None:
    invoice, session = _session_invoice(event, obj, holder)
    apply_checkout_session(
        invoice, session, lifecycle.Source.WEBHOOK, at=_timestamp(event.get("created"))
    )


def on_async_payment_succeeded(event, obj, holder) -> None:
    """The bank debit settled. Stripe's session then says ``payment_status: paid``; an
    event whose session does not is malformed, and money is never assumed from it."""
    invoice, session = _session_invoice(event, obj, holder)
    if session.payment_status not in ("paid", "no_payment_required"):
        raise Ignored(
            _("The settled payment's Checkout Session is not paid (payment_status %(status)s).")
            % {"status": session.payment_status or "-"}
        )
    _remember_ids(invoice, session)
    _session_paid(invoice, session, lifecycle.Source.WEBHOOK, _timestamp(event.get("created")))


def on_async_payment_failed(event, obj, holder) -> None:
    """The bank debit failed: back to pending (or expired), with the failure recorded.

    Paid stays paid (the lifecycle has no way back from paid). When the failure
    overtakes its own ``completed (unpaid)`` the invoice is still pending: it goes through
    processing first, so the history and the end state are the same as in order.
    """
    invoice, session = _session_invoice(event, obj, holder)
    if (
        invoice.status == InvoiceStatus.PROCESSING
        and invoice.payment_intent_id
        and session.payment_intent
        and invoice.payment_intent_id != session.payment_intent
    ):
        raise Ignored(_("Another payment of this invoice is processing."))
    close_session(invoice, session.id)
    if invoice.status == InvoiceStatus.PENDING:
        lifecycle.mark_processing(
            invoice, source=lifecycle.Source.WEBHOOK, payment_intent_id=session.payment_intent
        )
    lifecycle.payment_failed(
        invoice,
        source=lifecycle.Source.WEBHOOK,
        reason=_("The client's bank payment failed."),
    )


def on_session_expired(event, obj, holder) -> None:
    invoice, session = _session_invoice(event, obj, holder)
    forget_session(invoice, session.id)


# --- subscriptions (recurring invoices) --------------------------------------------------------


def _subscription_of_invoice(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A Stripe invoice's subscription id and metadata, in old and new API shapes."""
    details = _mapping(_mapping(obj.get("parent")).get("subscription_details"))
    old = _mapping(obj.get("subscription_details"))
    subscription = _id(details.get("subscription")) or _id(obj.get("subscription"))
    metadata = (
        _mapping(details.get("metadata"))
        or _mapping(old.get("metadata"))
        or _mapping(obj.get("metadata"))
    )
    return subscription, metadata


def on_invoice_paid(event, obj, holder) -> None:
    """A subscription's invoice was paid: the first payment, or a renewal.

    The first one (``billing_reason=subscription_create``) is the payment Checkout
    already reports; it marks the invoice paid and is not counted as a renewal. Every
    later one bumps ``renewals_paid`` once per Stripe invoice, whatever the order and
    however often it is delivered.
    """
    subscription_id, metadata = _subscription_of_invoice(obj)
    if not subscription_id:
        raise Ignored(_("Not a subscription payment."))
    invoice = _found(
        event,
        holder,
        _invoice(pk=_as_pk(metadata.get("invoice_id")), subscription_id=subscription_id),
    )
    paid_at = (
        _timestamp(_mapping(obj.get("status_transitions")).get("paid_at"))
        or _timestamp(event.get("created"))
        or timezone.now()
    )
    customer = _id(obj.get("customer"))
    lifecycle.mark_paid(
        invoice,
        source=lifecycle.Source.WEBHOOK,
        paid_at=paid_at,
        subscription_id=subscription_id,
        customer_id=customer,
    )
    if obj.get("billing_reason") == "subscription_create":
        return
    locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
    stripe_invoice = _id(obj.get("id"))
    if (
        log_registry.get_logs_for_instance(invoice)
        .filter(
            action="wagtail_client_billing.renewal_paid",
            data__stripe_invoice=stripe_invoice,
        )
        .exists()
    ):
        return
    last = locked.last_renewal_paid_at
    Invoice.objects.filter(pk=invoice.pk).update(
        renewals_paid=F("renewals_paid") + 1,
        last_renewal_paid_at=max(last, paid_at) if last else paid_at,
    )
    locked.refresh_from_db(fields=["renewals_paid", "last_renewal_paid_at"])
    log(
        instance=locked,
        action="wagtail_client_billing.renewal_paid",
        data={
            "stripe_invoice": stripe_invoice,
            "amount": _as_pk(obj.get("amount_paid")) or 0,
            "currency": _text(obj.get("currency")).upper(),
            "billing_reason": _text(obj.get("billing_reason")),
            "paid_at": paid_at.isoformat(),
        },
    )


def on_subscription_changed(event, obj, holder) -> None:
    """Record the subscription's status on its invoice.

    An ended subscription stays ended whatever arrives after, and otherwise the newest
    event (by Stripe's ``created``) wins, so a late ``updated`` cannot overwrite a newer
    state.
    """
    subscription_id = _id(obj.get("id"))
    invoice = _found(
        event,
        holder,
        _invoice(pk=_reference(obj), subscription_id=subscription_id),
    )
    if invoice.subscription_id and invoice.subscription_id != subscription_id:
        raise Ignored(_("The invoice belongs to another subscription."))
    status = _text(obj.get("status"))
    if event["type"] == "customer.subscription.deleted":
        status = status if status in TERMINAL_SUBSCRIPTION_STATUSES else "canceled"
    elif invoice.subscription_status in TERMINAL_SUBSCRIPTION_STATUSES:
        raise Ignored(_("The subscription has ended; a later change cannot revive it."))
    elif WebhookEvent.objects.filter(
        invoice=invoice,
        outcome=WebhookOutcome.PROCESSED,
        type__startswith="customer.subscription.",
        payload__data__object__id=subscription_id,
        payload__created__gt=_event_created(event),
    ).exists():
        raise Ignored(_("A newer state of the subscription was recorded already."))
    Invoice.objects.filter(pk=invoice.pk).update(
        subscription_status=status[:32],
        subscription_id=invoice.subscription_id or subscription_id,
        customer_id=invoice.customer_id or _id(obj.get("customer")),
    )


# --- connected accounts ------------------------------------------------------------------------


def _account(event: dict[str, Any]) -> StripeAccount:
    """The connected account the event came from, locked until the event's transaction ends.

    The event's top-level ``account`` says which connected account sent it (Stripe sets
    it on every Connect event); an event without one is about the platform's own account.
    """
    stripe_id = _text(event.get("account"))
    if not stripe_id:
        raise Ignored(_("Not an event of a connected account."))
    account = StripeAccount.objects.select_for_update().filter(stripe_id=stripe_id).first()
    if account is None:
        raise Ignored(_("No Stripe account %(id)s is connected here.") % {"id": stripe_id})
    if bool(event["livemode"]) == account.test_mode:
        raise Ignored(_("The event's mode is not the account's mode."))
    return account


def on_account_updated(event, obj, holder) -> None:
    """Record the account's state (:func:`.billing.accounts.record_state`), unless a newer
    one is known.

    The account is the one that sent the event; an event whose object describes another
    account is refused, so one connected account cannot change another's state.
    """
    state = gateway.account_from_stripe(obj)
    if state.id and state.id != _text(event.get("account")):
        raise Ignored(
            _("The event is from account %(event)s but describes account %(object)s.")
            % {"event": _text(event.get("account")) or _("the platform"), "object": state.id}
        )
    account = _account(event)
    created = _timestamp(event.get("created")) or timezone.now()
    if not accounts.record_state(account, state, as_of=created):
        raise Ignored(_("An older state of the account than the one recorded."))


def on_account_deauthorized(event, obj, holder) -> None:
    """The account disconnected the platform: unlink it from every site, keep the record
    (:func:`.billing.accounts.record_deauthorization`)."""
    account = _account(event)
    accounts.record_deauthorization(
        account,
        event_id=event["id"],
        at=_timestamp(event.get("created")) or timezone.now(),
    )


#: Event type -> handler ``(event, data.object, holder)``; ``holder["invoice"]`` is set
#: to the invoice the event is about so the stored event links to it.
HANDLERS = {
    "checkout.session.completed": on_session_completed,
    "checkout.session.async_payment_succeeded": on_async_payment_succeeded,
    "checkout.session.async_payment_failed": on_async_payment_failed,
    "checkout.session.expired": on_session_expired,
    "invoice.paid": on_invoice_paid,
    "customer.subscription.created": on_subscription_changed,
    "customer.subscription.updated": on_subscription_changed,
    "customer.subscription.deleted": on_subscription_changed,
    "account.updated": on_account_updated,
    "account.application.deauthorized": on_account_deauthorized,
}

#: The event types to select for the webhook endpoint in the Stripe dashboard.
HANDLED_EVENT_TYPES = tuple(HANDLERS)
