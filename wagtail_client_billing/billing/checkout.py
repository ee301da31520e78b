"""Checkout: the pay link, the client's return, a Checkout Session's state, reconciliation.

The link in the client's email points at this app, never at Stripe, so a click can
always be answered with the truth: an open session is reused, a new one is made when
there is none (or it is about to run out), and a paid, expired or withdrawn invoice gets
a page instead (:mod:`.views.public`). Only :mod:`.gateway` talks to Stripe.

:func:`apply_checkout_session` is the one place that turns a Checkout Session's state
into invoice status: the ``checkout.session.*`` webhooks (:mod:`.webhooks.checkout`),
the client's return, reconciliation and the answer to expiring a withdrawn invoice's
session all go through it, so a session means the same thing whichever way the app
learns about it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from wagtail.log_actions import log

from .. import gateway, lifecycle, status
from ..conf import billing_settings
from ..models import Invoice, InvoiceStatus, PaymentKind
from ..stripe_api import positive_int
from . import clients, notices, payments, taxes

logger = logging.getLogger(__name__)

#: Statuses of an invoice that was withdrawn from the client: no session may stay payable.
WITHDRAWN = tuple(status.withdrawn_values())

#: ``payment_status`` values of a completed session that mean the money is there.
PAID_PAYMENT_STATUSES = frozenset({"paid", "no_payment_required"})

#: History entry of an invoice paid through a session for another amount or currency.
AMOUNT_MISMATCH_ACTION = "wagtail_client_billing.amount_mismatch"

#: How far back reconciliation looks at invoices that expired with a session attached:
#: a client who paid a minute before expiry, whose webhook never came, is still found.
RECONCILE_EXPIRED_WITHIN = timedelta(days=2)


def success_url(invoice: Invoice) -> str:
    """Checkout's ``success_url``: this app's return view, with Stripe's session id."""
    return invoice.public_url("return") + "?session_id={CHECKOUT_SESSION_ID}"


def cancel_url(invoice: Invoice) -> str:
    return invoice.public_url("cancel")


def reusable_session_url(invoice: Invoice, now: datetime | None = None) -> str:
    """The URL of the invoice's open session if it has more than the reuse margin left."""
    now = now or timezone.now()
    margin: timedelta = billing_settings.CHECKOUT_REUSE_MARGIN
    if (
        invoice.checkout_session_id
        and invoice.checkout_session_url
        and invoice.checkout_session_expires_at
        and invoice.checkout_session_expires_at > now + margin
    ):
        return invoice.checkout_session_url
    return ""


class NotPayable(Exception):
    """The invoice stopped being payable while its new Checkout Session was being made.

    The session is expired on Stripe before this is raised (or left recorded for
    :func:`.tasks.resume_session_expiry` when Stripe could not be reached), so no
    payable page is left behind; the pay view shows the invoice's page instead.
    """


def _attempt_started(invoice: Invoice) -> tuple[int, datetime]:
    """The recorded attempt and when the next one was first asked for.

    A new session's expiry is reckoned from that moment, not from now: Stripe's cap of 24
    hours is rounded to :data:`.gateway.CHECKOUT_EXPIRY_STEP`, and a click after one whose
    answer was lost may fall in the next step, which would change the parameters, so the
    idempotency key, and make a second payable session. The moment is kept while a
    session reckoned from it still lives Stripe's minimum from now; racing clicks agree
    on it (compare-and-set).
    """
    now = timezone.now()
    least = (now + gateway.CHECKOUT_MIN_LIFETIME + gateway.CHECKOUT_LIFETIME_MARGIN).timestamp()
    for _attempt in range(3):
        recorded, started = Invoice.objects.values_list(
            "checkout_attempt", "checkout_attempt_started_at"
        ).get(pk=invoice.pk)
        if (
            started is not None
            and gateway.clamp_checkout_expiry(invoice.expires_at, started) >= least
        ):
            return recorded, started
        if Invoice.objects.filter(
            pk=invoice.pk, checkout_attempt=recorded, checkout_attempt_started_at=started
        ).update(checkout_attempt_started_at=now):
            return recorded, now
    return recorded, now  # pragma: no cover - three clicks racing for one attempt


def checkout_url(invoice: Invoice) -> str:
    """Where to send a client who clicked the link of a payable invoice.

    Reuses the open session (no Stripe request) while it has more than
    ``CHECKOUT_REUSE_MARGIN`` left; otherwise creates one on the connected account as
    attempt ``checkout_attempt + 1``, expiring with the invoice inside the lifetime
    Stripe allows (:func:`.gateway.clamp_checkout_expiry`). The attempt is part of the
    idempotency key and is stored only together with the session it produced, so a
    click after a request that timed out (but reached Stripe) asks again with the same
    key and gets the same session back instead of a second payable one; after an answer
    Stripe replays for that key (a 5xx, a refusal:
    :attr:`.gateway.GatewayError.idempotency_key_spent`), the attempt is spent and the
    next click uses a new key. Two clicks at once ask with the same key too; the first
    to record the session wins, and ``checkout_opened`` is logged.

    The session is recorded under the invoice's row lock, after reading its status
    afresh: an editor may have deleted the invoice (or the sweep expired it) while
    Stripe was making the session, and the delete's own expiry task may have run before
    the session existed. Then the session is recorded all the same (so the sweep of
    withdrawn invoices finds it if Stripe cannot be reached now) and expired here.

    Raises:
        gateway.GatewayError: Stripe could not make the session; nothing was recorded.
        NotPayable: the invoice was paid or withdrawn meanwhile; the session is expired.
    """
    url = reusable_session_url(invoice)
    if url:
        return url
    recorded_attempt, requested_at = _attempt_started(invoice)
    attempt = recorded_attempt + 1
    invoice.checkout_attempt = attempt  # the gateway derives the idempotency key from it
    prepared = dataclasses.replace(
        taxes.prepare_checkout(invoice),  # the tax rate and coupon it names
        customer_id=clients.customer_for(invoice) or None,  # and the client's customer
    )
    try:
        session = gateway.create_checkout_session(
            invoice,
            success_url=success_url(invoice),
            cancel_url=cancel_url(invoice),
            expires_at=invoice.expires_at,
            requested_at=requested_at,
            extras=prepared,
        )
    except gateway.GatewayError as exc:
        if exc.idempotency_key_spent:
            Invoice.objects.filter(pk=invoice.pk, checkout_attempt=recorded_attempt).update(
                checkout_attempt=attempt, checkout_attempt_started_at=None
            )
        raise
    with transaction.atomic():
        lifecycle.lock(invoice)
        payable = invoice.status_definition.payable
        # A paid or processing invoice keeps the session its payment went through.
        if invoice.checkout_attempt == recorded_attempt and (
            payable or invoice.status in WITHDRAWN
        ):
            Invoice.objects.filter(pk=invoice.pk).update(
                checkout_attempt=attempt,
                checkout_attempt_started_at=None,
                checkout_session_id=session.id,
                checkout_session_url=session.url,
                checkout_session_expires_at=session.expires_at,
            )
            invoice.checkout_attempt = attempt
            invoice.checkout_attempt_started_at = None
            invoice.checkout_session_id = session.id
            invoice.checkout_session_url = session.url
            invoice.checkout_session_expires_at = session.expires_at
            if payable:
                log(
                    instance=invoice,
                    action="wagtail_client_billing.checkout_opened",
                    data={
                        "session": session.id,
                        "attempt": attempt,
                        "expires_at": session.expires_at.isoformat(),
                    },
                )
    if not payable:
        try:
            expire_session(invoice, session.id, source=lifecycle.Source.SYSTEM)
        except gateway.GatewayError as exc:
            logger.warning(
                "Could not expire Checkout Session %s of withdrawn invoice %s: %s",
                session.id,
                invoice,
                exc,
            )
        raise NotPayable(invoice.status)
    return session.url


def expire_session(
    invoice: Invoice, session_id: str = "", *, source: str, key_attempt: int = 0
) -> str:
    """Expire a Checkout Session of an invoice that is no longer payable, on Stripe.

    ``session_id`` defaults to the session recorded on ``invoice``; ``key_attempt`` picks
    the request's idempotency key (see :func:`.gateway.expire_checkout_session`). What
    the session became is applied (:func:`apply_session_state`): an expired one is
    forgotten, and one that was paid meanwhile marks the invoice paid, because money
    received wins. Returns
    what that returned, ``"no session"``, or ``"refused"`` when Stripe refuses for good
    (the session is gone from the connected account): the session is then closed, so the
    sweep of withdrawn invoices stops asking.

    Raises:
        gateway.GatewayError: a retryable error (network, rate limit, Stripe 5xx).
    """
    session_id = session_id or invoice.checkout_session_id
    if not session_id:
        return "no session"
    try:
        session = gateway.expire_checkout_session(
            test_mode=invoice.test_mode,
            account_id=invoice.account.stripe_id,
            session_id=session_id,
            attempt=key_attempt,
        )
    except gateway.GatewayError as exc:
        if exc.retryable:
            raise
        logger.warning(
            "Could not expire Checkout Session %s of invoice %s: %s",
            session_id,
            invoice.number,
            exc,
        )
        close_session(invoice, session_id)
        return "refused"
    return apply_session_state(invoice, session, source=source)


def apply_session_state(invoice: Invoice, session: gateway.CheckoutSession, *, source: str) -> str:
    """Bring the invoice in line with its Checkout Session, under the invoice's row lock.

    A session means the same thing whichever way the app learns about it (webhook,
    the client's return, reconciliation, or the answer to expiring it).
    """
    with transaction.atomic():
        lifecycle.lock(invoice)
        return apply_checkout_session(invoice, session, source)


def read_session(invoice: Invoice, session_id: str) -> gateway.CheckoutSession:
    """The Checkout Session ``session_id`` as Stripe has it, asked of the invoice's own
    connected account and mode (a session of another account is not found there)."""
    return gateway.retrieve_checkout_session(
        test_mode=invoice.test_mode, account_id=invoice.account.stripe_id, session_id=session_id
    )


def apply_return(invoice: Invoice, session_id: str) -> str:
    """The client came back from Checkout: read that session once and apply it.

    So the invoice is Paid when the client lands on the success page, before any webhook.
    A session of another invoice or account changes nothing. Returns what
    :func:`apply_checkout_session` returned, or ``""`` when nothing was asked
    of Stripe or Stripe could not answer (the webhook will catch up).
    """
    if not session_id.startswith("cs_") or invoice.status == InvoiceStatus.PAID:
        return ""
    try:
        session = read_session(invoice, session_id)
    except gateway.GatewayError as exc:
        logger.warning("Could not read Checkout Session on return for %s: %s", invoice, exc)
        return ""
    return apply_session_state(invoice, session, source=lifecycle.Source.RETURN)


# --- a Checkout Session's state: the one place it becomes invoice status ---------------------


def invoice_named_by(session: gateway.CheckoutSession) -> int | None:
    """The pk of the invoice a session names: ``metadata.invoice_id``, else its
    ``client_reference_id`` (the gateway sets both)."""
    return positive_int(session.metadata.get("invoice_id")) or positive_int(
        session.client_reference_id
    )


def session_belongs_to(invoice: Invoice, session: gateway.CheckoutSession) -> bool:
    """Whether ``session`` was made for ``invoice`` (its metadata, reference or recorded id)."""
    named = invoice_named_by(session)
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
    by reconciliation, so the rules exist once. The caller holds the invoice's row lock.

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
    remember_ids(invoice, session)
    if session.status == "complete":
        if session.payment_status in PAID_PAYMENT_STATUSES:
            session_paid(invoice, session, source, at)
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


def session_paid(
    invoice: Invoice, session: gateway.CheckoutSession, source: str, at: datetime | None
) -> None:
    """The money of ``session`` is there: paid, and what Stripe charged recorded."""
    close_session(invoice, session.id)
    if lifecycle.mark_paid(
        invoice,
        source=source,
        paid_at=at,
        payment_intent_id=session.payment_intent,
        subscription_id=session.subscription,
        customer_id=session.customer,
    ):
        notices.record_payment(
            invoice,
            key=f"invoice:{invoice.pk}",
            amount=session.amount_total if session.amount_total is not None else invoice.amount,
            currency=session.currency or invoice.currency,
            paid_at=at or timezone.now(),
        )
    record_checkout_amounts(invoice, session)
    payments.record_payment(
        invoice,
        kind=PaymentKind.SUBSCRIPTION_CREATE if session.subscription else PaymentKind.CHECKOUT,
        amount=session.amount_total,
        currency=session.currency,
        paid_at=at or invoice.paid_at,
        checkout_session_id=session.id,
        payment_intent_id=session.payment_intent,
        stripe_invoice_id=session.invoice,
    )


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


def remember_ids(invoice: Invoice, session: gateway.CheckoutSession) -> None:
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
    clients.remember_customer(invoice, session.customer or "")


def _delayed_payment_resolved(invoice: Invoice, session_id: str) -> bool:
    """Whether an ``async_payment_*`` event settled this session's payment already.

    Stripe does not order deliveries: ``completed (unpaid)`` can arrive after the debit
    failed. Without this the invoice would sit in processing for a payment that is over.
    """
    return (
        bool(session_id)
        and Invoice.objects.filter(
            pk=invoice.pk, delayed_payment_resolved_session=session_id
        ).exists()
    )


def delayed_payment_resolved(invoice: Invoice, session_id: str) -> None:
    """Record that an ``async_payment_*`` event settled ``session_id``'s payment."""
    Invoice.objects.filter(pk=invoice.pk).update(delayed_payment_resolved_session=session_id[:255])
    invoice.delayed_payment_resolved_session = session_id[:255]


# --- reconciliation ---------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    """What one reconciliation run did, per outcome of :func:`apply_checkout_session`."""

    checked: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def __str__(self) -> str:
        parts = [f"{self.checked} checked"]
        parts += [f"{n} {name}" for name, n in sorted(self.outcomes.items())]
        if self.errors:
            parts.append(f"{len(self.errors)} errors")
        return ", ".join(parts)


def invoices_to_reconcile(now: datetime | None = None):
    """Unpaid invoices holding a Checkout Session whose outcome Stripe may know better.

    Pending and processing ones, and ones that expired recently (paid just before
    expiry, webhook lost).
    """
    now = now or timezone.now()
    return (
        Invoice.objects.select_related("account", "site")
        .exclude(checkout_session_id="")
        .filter(
            Q(status__in=[InvoiceStatus.PENDING, InvoiceStatus.PROCESSING])
            | Q(status=InvoiceStatus.EXPIRED, expired_at__gte=now - RECONCILE_EXPIRED_WITHIN)
        )
        .order_by("pk")
    )


class Pacer:
    """At most ``rate`` calls in any second: sleeps only when a burst would exceed it.

    Reconciliation makes one Stripe request per invoice from a worker; Stripe allows
    about 25 requests a second in test mode and 100 in live, shared with everything else
    the platform does, so the task keeps to ``STRIPE_TASK_RATE_LIMIT``.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = max(float(rate), 0.1)
        self.clock = clock
        self.sleep = sleep
        self.window: deque[float] = deque()

    def wait(self) -> None:
        now = self.clock()
        while self.window and now - self.window[0] >= 1.0:
            self.window.popleft()
        if len(self.window) >= self.rate:
            pause = 1.0 - (now - self.window[0])
            if pause > 0:
                self.sleep(pause)
            self.window.popleft()
            now = self.clock()
        self.window.append(now)


def reconcile_open_sessions(limit: int | None = None) -> ReconcileReport:
    """Read each candidate invoice's session from Stripe and apply its state.

    For webhooks that never arrived (endpoint down, misconfigured secret). One Stripe
    request per invoice; a failure is reported and the run goes on. The scheduled task
    (``tasks.reconcile_open_sessions``) and ``manage.py client_billing_reconcile`` call
    this.
    """
    report = ReconcileReport()
    rates = billing_settings.STRIPE_TASK_RATE_LIMIT
    pacers = {mode: Pacer(rates.get(mode, 20)) for mode in ("test", "live")}
    candidates = invoices_to_reconcile()
    if limit:
        candidates = candidates[:limit]
    for invoice in candidates.iterator(chunk_size=500):
        report.checked += 1
        pacers["test" if invoice.test_mode else "live"].wait()
        try:
            session = read_session(invoice, invoice.checkout_session_id)
        except gateway.GatewayError as exc:
            report.errors.append(f"{invoice.number}: {exc}")
            report.count("error")
            continue
        report.count(apply_session_state(invoice, session, source=lifecycle.Source.RECONCILE))
    if report.checked:
        logger.info("Reconciled Checkout Sessions: %s", report)
    return report
