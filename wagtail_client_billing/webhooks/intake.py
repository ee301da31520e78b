"""Intake of Stripe webhooks: verify the signature, keep the delivery, store the event
once, apply it.

:func:`receive` (the view's one call) runs :func:`verify`, keeps the delivery as a
:class:`~.models.WebhookDelivery` and queues it (:func:`queue_delivery`); in a worker,
:func:`admit` stores deliveries as events (:func:`store`, once per event id) and
:func:`process` applies a stored event through :func:`dispatch`, which runs the event
type's handler from :mod:`.registry`. Why each step is as it is:
:mod:`wagtail_client_billing.webhooks`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import itertools
import json
import logging
import re
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DataError, IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import taskqueue
from ..conf import billing_settings
from ..models import WebhookDelivery, WebhookEvent, WebhookOutcome
from ..signals import stripe_event_applied
from .base import Applied, Ignored
from .registry import HANDLERS

logger = logging.getLogger(__name__)


class InvalidWebhook(Exception):
    """The request is not a genuine, fresh Stripe event for this platform (answer 400)."""


@dataclass(frozen=True)
class Delivery:
    """A verified delivery, kept (:func:`receive`): its row and the event's id."""

    pk: int
    event_id: str


@dataclass(frozen=True)
class Receipt:
    """What happened to one run of :func:`process`.

    Attributes:
        record: the stored event.
        duplicate: it had been processed or ignored before. Nothing was done.
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
    # The endpoints whose secret signed it, looked for lazily: the first is usually the
    # one that may sign, and the other endpoints' HMACs are then never computed.
    matched = (e for e in endpoints if any(_signs(signed, s, signatures) for s in e.secrets))
    first = next(matched, None)
    if first is None:
        raise InvalidWebhook("No signature matched.")
    tolerance = billing_settings.WEBHOOK_TOLERANCE
    offset = time.time() - timestamp
    if offset > tolerance:
        raise InvalidWebhook("The signature's timestamp is too old.")
    if offset < -tolerance:
        raise InvalidWebhook("The signature's timestamp is in the future.")
    event = parse_event(text)
    livemode, account = event["livemode"], event.get("account") or ""
    if not any(e.may_sign(livemode, account) for e in itertools.chain([first], matched)):
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
    expected = hmac.digest(secret.encode(), signed, hashlib.sha256).hex()
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


def _refuse_constant(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON, Stripe never sends them, and no database
    would store them in a JSON column."""
    raise ValueError(f"{name} is not valid JSON")


#: Made once: ``json.loads`` with an argument builds a new decoder for every call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


#: Far deeper than any Stripe event (objects hold objects a few levels down), and far
#: from Python's recursion limit, which encoding the JSON column or reading it back hits.
MAX_PAYLOAD_DEPTH = 64

# What neither database can hold in a JSON column (PostgreSQL's jsonb refuses NUL, and a
# lone surrogate cannot be encoded as UTF-8 for either); JSON escapes are the only way in.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def _has_unstorable_escape(text: str) -> bool:
    # The substring test first: most events have no escape at all, and it is far
    # cheaper than the expression over the whole body.
    return "\\u" in text and _UNSTORABLE_ESCAPE.search(text) is not None


def parse_event(payload: str | bytes) -> dict[str, Any]:
    """The event dict, or :class:`InvalidWebhook` if ``payload`` is not a Stripe event.

    NUL and lone UTF-16 surrogates (``\\u0000``, ``\\ud800``) become U+FFFD: a signed event
    is kept whatever text a client typed into it, the same on every database.
    """
    try:
        text = payload if isinstance(payload, str) else payload.decode("utf-8")
        event = _DECODER.decode(text)
    except RecursionError as exc:
        raise InvalidWebhook("The body is nested too deeply.") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidWebhook("The body is not JSON.") from exc
    nestable = text.count("{") + text.count("[") > MAX_PAYLOAD_DEPTH  # cheap: no walk needed
    if nestable and _depth_exceeds(event, MAX_PAYLOAD_DEPTH):
        raise InvalidWebhook("The body is nested too deeply.")
    if _has_unstorable_escape(text):
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


def store(
    event: dict[str, Any], text: str | None = None, *, received_at: datetime | None = None
) -> tuple[WebhookEvent, bool]:
    """Insert the event, or find the one stored before; ``(record, created)``.

    ``text`` is the body the event was parsed from (:func:`admit` passes it): stored
    as it came, it spares serialising the event again, unless it holds what the
    column cannot (``\\u0000``, a lone surrogate), which :func:`parse_event` replaced.
    ``received_at`` is when the delivery came (now, if not given).

    The insert is tried first and the unique ``event_id`` decides whether it is new,
    which is safe under concurrent admissions where "look, then insert" is not. In
    autocommit the single ``INSERT`` is its own transaction; inside a caller's
    transaction (:func:`admit`'s) it gets a savepoint, so a refused payload does not
    break that.
    """
    values = _defaults() | {
        "event_id": event["id"][:255],
        "type": event["type"][:100],
        "account": (event.get("account") or "")[:64],
        "livemode": bool(event["livemode"]),
        "payload": event,
    }
    if received_at is not None:
        values["received_at"] = received_at
    raw = text if text is not None and not _has_unstorable_escape(text) else None
    connection = transaction.get_connection()
    savepoint = transaction.atomic() if connection.in_atomic_block else None
    try:
        with savepoint or contextlib.nullcontext():
            if _can_insert_or_skip(connection):
                pk = _insert_or_skip(connection, values, raw)
                if pk is not None:
                    return _record(connection, pk, values), True
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


#: The columns :func:`store` fills from the event itself.
_EVENT_COLUMNS = frozenset({"event_id", "type", "account", "livemode", "payload"})


def _constant(field: Any) -> bool:
    """Whether the column's default is the same for every event: a constant default,
    or none (``None`` or ``""``, as ``Field.get_default`` gives it)."""
    return field.attname not in _EVENT_COLUMNS and not (
        field.has_default() and callable(field.default)
    )


def _defaults() -> dict[str, Any]:
    """The model default of every column not filled from the event (the constant ones
    looked up once)."""
    constants, varying = _default_columns()
    return constants | {f.attname: f.get_default() for f in varying}


@functools.cache
def _default_columns() -> tuple[dict[str, Any], tuple[Any, ...]]:
    """``(constants, varying)``: the constant defaults by column, and the fields whose
    default is computed for each event (the model does not change while a process runs)."""
    fields = [f for f in _columns() if f.attname not in _EVENT_COLUMNS]
    return (
        {f.attname: f.get_default() for f in fields if _constant(f)},
        tuple(f for f in fields if not _constant(f)),
    )


def _record(connection: Any, pk: int, values: dict[str, Any]) -> WebhookEvent:
    """The stored row as an instance, built the way a query's rows are (every field
    given in order: no defaults computed again)."""
    fields = WebhookEvent._meta.concrete_fields
    return WebhookEvent.from_db(
        connection.alias,
        [f.attname for f in fields],
        [pk if f.primary_key else values[f.attname] for f in fields],
    )


def _can_insert_or_skip(connection: Any) -> bool:
    return connection.vendor in ("postgresql", "sqlite") and bool(
        connection.features.can_return_columns_from_insert  # SQLite 3.35+
    )


#: Field classes whose database value of a ``str`` (``bool``) is that value itself,
#: on both databases: :func:`_insert_or_skip` passes such values through unprepared.
_AS_IS = {models.CharField: str, models.TextField: str, models.BooleanField: bool}


@dataclass(frozen=True)
class _InsertPlan:
    """``_insert_or_skip``'s statement for one database vendor, made once per process
    (the model does not change while it runs).

    Attributes:
        sql: the statement. On PostgreSQL the constant defaults are in it as literals.
        params: a parameter per placeholder, in order: the prepared constant default of
            a column whose default is a constant (SQLite), None for the others.
        varying: ``(position in params, field, as_is)`` of every column whose value
            differs per event; ``as_is`` is the type whose values need no preparing
            (:data:`_AS_IS`), or None.
    """

    sql: str
    params: tuple[Any, ...]
    varying: tuple[tuple[int, Any, type | None], ...]


_INSERT_PLANS: dict[str, _InsertPlan] = {}


def _insert_plan(connection: Any) -> _InsertPlan:
    plan = _INSERT_PLANS.get(connection.vendor)
    if plan is None:
        meta = WebhookEvent._meta
        qn = connection.ops.quote_name
        fields = _columns()
        postgresql = connection.vendor == "postgresql"
        values: list[str] = []
        params: list[Any] = []
        varying: list[tuple[int, Any, type | None]] = []
        for f in fields:
            if not _constant(f):
                varying.append((len(params), f, _AS_IS.get(type(f))))
                params.append(None)
                # The JSON text goes in as text; PostgreSQL casts it (and checks it) to jsonb.
                values.append("%s::jsonb" if postgresql and f.attname == "payload" else "%s")
                continue
            prepared = f.get_db_prep_save(f.get_default(), connection)
            if postgresql:
                # Django's psycopg cursors bind on the client: every parameter is quoted
                # into the statement on every execute (a fifth of the view's Python time
                # with all 12 columns). A constant is quoted once, here, by psycopg.
                values.append(connection.ops.compose_sql("%s", [prepared]).replace("%", "%%"))
            else:
                params.append(prepared)
                values.append("%s")
        sql = (
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "  # noqa: S608 (identifiers from _meta, literals quoted by psycopg)
            f"VALUES ({', '.join(values)}) "
            f"ON CONFLICT ({qn(meta.get_field('event_id').column)}) DO NOTHING"
        )
        if postgresql:
            sql += f" RETURNING {qn(meta.pk.column)}"
        plan = _INSERT_PLANS[connection.vendor] = _InsertPlan(sql, tuple(params), tuple(varying))
    return plan


def _insert_or_skip(connection: Any, values: dict[str, Any], raw: str | None = None) -> int | None:
    """``INSERT ... ON CONFLICT (event_id) DO NOTHING`` (``RETURNING id`` on PostgreSQL):
    the new row's id, or None when the event is stored already.

    The hot half of every delivery: one statement, no exception for a duplicate, and
    less Python than ``objects.create``: the constant defaults are prepared once
    (:class:`_InsertPlan`). ``values`` holds every column (:func:`store` fills in the
    model defaults), so a field added to the model later needs nothing here. ``raw``,
    when given, is the payload's JSON text, stored as is.
    """
    plan = _insert_plan(connection)
    params = list(plan.params)
    for i, field, as_is in plan.varying:
        value = values[field.attname]
        if raw is not None and field.attname == "payload":
            params[i] = raw
        elif as_is is not None and type(value) is as_is:
            params[i] = value
        else:
            params[i] = field.get_db_prep_save(value, connection)
    with connection.cursor() as cursor:
        cursor.execute(plan.sql, params)
        if connection.vendor == "postgresql":
            row = cursor.fetchone()
            return None if row is None else int(row[0])
        # SQLite: no RETURNING. Its statement would hold the one write lock until the
        # row is fetched, a separate call between which the thread can lose the GIL
        # (to gunicorn's main thread, say) while every other writer waits; without it
        # the INSERT commits within ``execute``.
        return int(cursor.lastrowid) if cursor.rowcount == 1 else None


# --- 3. keep and admit ---------------------------------------------------------------------


def receive(payload: bytes, signature: str | None) -> Delivery:
    """Verify one delivery, keep it, and queue it to be stored and applied (what the
    view does).

    One ``INSERT`` into the delivery table, which has no index but its primary key:
    whether the event is new is decided by :func:`admit` in a worker, so a redelivery
    is kept and acknowledged like any delivery, and stored and applied once.
    """
    event, _test_mode = verify(payload, signature)
    pk = _keep(payload.decode("utf-8"))
    queue_delivery(pk)
    return Delivery(pk, event["id"])


_KEEP_SQL: dict[str, str] = {}


def _keep_sql(connection: Any) -> str:
    """The delivery's ``INSERT`` (``RETURNING id`` on PostgreSQL), made once per vendor."""
    sql = _KEEP_SQL.get(connection.vendor)
    if sql is None:
        meta, qn = WebhookDelivery._meta, connection.ops.quote_name
        fields = (WebhookDelivery.body.field, WebhookDelivery.received_at.field)
        columns = ", ".join(qn(field.column) for field in fields)
        sql = f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES (%s, %s)"  # noqa: S608 (identifiers from _meta)
        if connection.vendor == "postgresql":
            sql += f" RETURNING {qn(meta.pk.column)}"
        _KEEP_SQL[connection.vendor] = sql
    return sql


def _keep(body: str) -> int:
    """Insert the delivery's row; its id. Its own transaction in the view (autocommit)."""
    connection = transaction.get_connection()
    if connection.vendor not in ("postgresql", "sqlite"):
        return WebhookDelivery.objects.create(body=body).pk
    received_at = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_keep_sql(connection), [body, received_at])
        if connection.vendor == "postgresql":
            return int(cursor.fetchone()[0])
        return int(cursor.lastrowid)


#: Deliveries kept in this process, waiting to be queued together
#: (``WEBHOOK_QUEUE_BATCH``, ``WEBHOOK_QUEUE_DELAY``): one task per batch, not one per
#: delivery.
deliveries = taskqueue.Batcher(
    f"{taskqueue.TASKS}.admit_webhook_deliveries",
    group="client_billing_webhook",
    limits=billing_settings.queue_batch_limits,
)

#: Stored events to apply again (the resume sweep's), queued together the same way.
batcher = taskqueue.Batcher(
    f"{taskqueue.TASKS}.apply_webhook_events",
    group="client_billing_webhook",
    limits=billing_settings.queue_batch_limits,
)


def queue_delivery(delivery_pk: int) -> None:
    """Store and apply the kept delivery in a worker (:func:`.tasks.admit_webhook_deliveries`)
    after commit.

    It joins this process's :data:`deliveries`: it is queued with the others kept
    within ``WEBHOOK_QUEUE_DELAY`` (at most ``WEBHOOK_QUEUE_BATCH`` a task). The row, not
    the queue, is what keeps it: a delivery whose process died before its batch was
    queued stays in the table, and :func:`.tasks.resume_received_webhook_events`
    queues it again.
    """
    transaction.on_commit(lambda: deliveries.add(delivery_pk))


def queue_event(event_pk: int) -> None:
    """Apply the stored event in a worker (:func:`.tasks.apply_webhook_events`) after
    commit, batched like the deliveries (:data:`batcher`)."""
    transaction.on_commit(lambda: batcher.add(event_pk))


def admit(delivery_pks: list[int]) -> list[int]:
    """Store the deliveries ``delivery_pks`` as events and delete them; the pks of the
    events to apply now, in the order they came.

    An event is to apply when it is new, or stored before and failed (Stripe delivering
    it again is as good a moment to retry as any); a redelivery of an event that is
    received, processed or ignored changes nothing. One transaction: the deliveries go
    when their events are stored, never before. On PostgreSQL a delivery another worker
    is admitting is skipped (that worker has it); a delivery admitted already is gone,
    so admitting one twice stores nothing twice.
    """
    due: list[int] = []
    with transaction.atomic():
        rows = list(
            WebhookDelivery.objects.filter(pk__in=delivery_pks)
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", "body", "received_at")
        )
        stored: dict[int, tuple[WebhookEvent, bool]] = {}
        # In event-id order, not in the order they came: two admissions holding the same
        # events insert them in the same order, so the second waits for the first. In
        # opposite orders each waited for the other, and PostgreSQL aborted one of them
        # ("deadlock detected"), whose events then waited for the resume sweep.
        for pk, body, received_at, event in sorted(_parsed(rows), key=lambda r: r[3]["id"]):
            try:
                stored[pk] = store(event, body, received_at=received_at)
            except InvalidWebhook as exc:  # verified when kept: only a database refusal
                _dropped(pk, exc)
        for pk, _body, _received_at in rows:  # the order they came
            if pk not in stored:
                continue
            record, created = stored[pk]
            failed = record.outcome == WebhookOutcome.FAILED
            if created or (failed and record.pk not in due):
                due.append(record.pk)
        # Gone once stored: a delivery is the queue's item, the event is the record.
        admitted = [row[0] for row in rows]
        WebhookDelivery.objects.filter(pk__in=admitted).delete()
    return due


def _parsed(rows: list[tuple[int, str, datetime]]) -> list[tuple[int, str, datetime, dict]]:
    """The kept deliveries ``(pk, body, received_at)`` with their parsed events."""
    parsed = []
    for pk, body, received_at in rows:
        try:
            parsed.append((pk, body, received_at, parse_event(body)))
        except InvalidWebhook as exc:
            _dropped(pk, exc)
    return parsed


def _dropped(pk: int, exc: InvalidWebhook) -> None:
    logger.error("Stripe delivery %s could not be stored, dropped: %s", pk, exc)


# --- 4. process -----------------------------------------------------------------------------


def process(event_pk: int, *, force: bool = False) -> Receipt:
    """Apply the stored event ``event_pk`` once; ``force`` re-applies an ignored or
    processed one too.

    A processed or ignored event is a duplicate and left alone; a received (never
    finished) or failed one is applied. The row lock makes concurrent runs wait for the
    first to finish (PostgreSQL; SQLite serialises writers anyway). A failure keeps its
    error and traceback on the event (:func:`failure`) for the event log; a later run
    that succeeds clears them.
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
                applied = dispatch(locked.payload)
                stripe_event_applied.send(
                    sender=WebhookEvent,
                    event=locked.payload,
                    record=locked,
                    outcome=applied.outcome,
                    invoice=applied.invoice,
                )
        except Exception as exc:
            logger.exception("Stripe event %s (%s) failed", locked.event_id, locked.type)
            locked.outcome = WebhookOutcome.FAILED
            locked.error, locked.traceback = failure(exc)
        else:
            locked.outcome = applied.outcome
            locked.error = applied.reason
            locked.traceback = ""
            if applied.invoice is not None:
                locked.invoice = applied.invoice
        recorded = ("outcome", "error", "traceback", "invoice", "attempts", "processed_at")
        WebhookEvent.objects.filter(pk=locked.pk).update(
            **{name: getattr(locked, name) for name in recorded}
        )
    return Receipt(locked)


def dispatch(event: dict[str, Any]) -> Applied:
    """Run the handler of the event's type (:data:`.registry.HANDLERS`): what it did.

    An event of a type no handler takes, and one its handler ignores
    (:class:`~.base.Ignored`), is ignored with the reason, and linked to the invoice it
    concerns when the handler found one.
    """
    handler = HANDLERS.get(event["type"])
    if handler is None:
        return Applied(WebhookOutcome.IGNORED, _("Not an event this app handles."))
    try:
        return handler(event, event["data"]["object"])
    except Ignored as exc:
        return Applied(WebhookOutcome.IGNORED, str(exc), exc.invoice)


#: The most of a failed event's error and traceback kept: the error's start, the
#: traceback's end (the innermost frames and the exception, where the fault is).
MAX_ERROR_CHARS = 5000
MAX_TRACEBACK_CHARS = 20000
#: What replaces a secret of the settings that an exception's message quoted.
REDACTED = "[hidden secret]"


def failure(exc: BaseException) -> tuple[str, str]:
    """``(error, traceback)`` of an exception that made an event fail, for the event log.

    The traceback is Python's own: the frames of the code it passed through (the app's,
    and a site's ``stripe_event_applied`` receiver) with their source lines, and the
    exceptions it was raised from, never local variables. Whatever the settings hold as
    a secret (:meth:`~.conf.BillingSettings.secret_values`) and an exception's message
    quoted is replaced in both, before they are cut to size.
    """
    error = f"{type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(exc))
    for secret in billing_settings.secret_values():
        error = error.replace(secret, REDACTED)
        trace = trace.replace(secret, REDACTED)
    if len(trace) > MAX_TRACEBACK_CHARS:
        trace = "...\n" + trace[-MAX_TRACEBACK_CHARS:]
    return error[:MAX_ERROR_CHARS], trace
