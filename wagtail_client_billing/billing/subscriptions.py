"""A recurring invoice's subscription: its state, failed renewals and cancellation.

:func:`apply_state` is the one writer of the subscription fields of an invoice, for the
``customer.subscription.*`` events and for the editor's cancellations alike (the
gateway returns the subscription as Stripe has it then): an ended subscription stays
ended, and otherwise the newest state (Stripe's ``created`` of the event, or now for an
editor's change) wins. A cancellation (now, at the period's end) and its undoing are
logged when the recorded state changes, whoever made it (an editor here, someone in the
Stripe Dashboard, the client in Stripe's portal), so each shows once.

:func:`record_renewal_failure` records an ``invoice.payment_failed`` of a renewal once
per Stripe invoice and attempt, sets the subscription past due, and queues the emails:
the client gets Stripe's hosted invoice page to pay and update the card, the billing
contacts a notice.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext as _
from wagtail.log_actions import log

from .. import emails, gateway, hooks, lifecycle, taskqueue
from ..models import Invoice, RenewalFailure, SubscriptionState
from ..money import format_money
from ..signals import subscription_changed
from ..stripe_api import expandable_id, mapping, positive_int, text, unix_time

logger = logging.getLogger(__name__)

#: Subscription statuses after which Stripe never bills the subscription again.
TERMINAL = frozenset({"canceled", "incomplete_expired"})
EPOCH = datetime.fromtimestamp(0, tz=UTC)

CANCELLED_ACTION = "wagtail_client_billing.subscription_cancelled"
CANCEL_SCHEDULED_ACTION = "wagtail_client_billing.cancellation_scheduled"
CANCEL_UNDONE_ACTION = "wagtail_client_billing.cancellation_undone"
RENEWAL_FAILED_ACTION = "wagtail_client_billing.renewal_failed"

#: The emails of a failed renewal (templates under ``emails/``).
RENEWAL_FAILED_CLIENT = "renewal_failed_client"
RENEWAL_FAILED_CONTACTS = "renewal_failed_contacts"


class Stale(Exception):
    """A newer state of the subscription was recorded already, or it has ended."""


def period_end(obj: dict[str, Any]) -> datetime | None:
    """The current period's end: on the subscription's item since 2025-03-31.basil, on
    the subscription itself before."""
    items = mapping(obj.get("items")).get("data")
    if isinstance(items, list) and items:
        end = unix_time(mapping(items[0]).get("current_period_end"))
        if end is not None:
            return end
    return unix_time(obj.get("current_period_end"))


def apply_state(
    invoice: Invoice,
    obj: dict[str, Any],
    state_at: datetime | None,
    *,
    deleted: bool = False,
    user: Any = None,
) -> None:
    """Record a subscription object's state on its (locked) invoice.

    Raises:
        Stale: the subscription has ended already (and this is not its end), or a newer
            state was recorded.
    """
    subscription_id = expandable_id(obj.get("id"))
    status = text(obj.get("status"))
    if deleted:
        status = status if status in TERMINAL else "canceled"
    elif invoice.subscription_status in TERMINAL:
        raise Stale(_("The subscription has ended; a later change cannot revive it."))
    at = state_at or EPOCH
    ended = status in TERMINAL
    cancel_at_end = bool(obj.get("cancel_at_period_end")) and not ended
    canceled_at = unix_time(obj.get("canceled_at")) if ended else None
    if ended and canceled_at is None:
        canceled_at = unix_time(obj.get("ended_at")) or state_at or timezone.now()
    before = (invoice.subscription_status, invoice.subscription_cancel_at_period_end)
    recorded = Invoice.objects.filter(pk=invoice.pk)
    if not deleted:
        recorded = recorded.filter(
            Q(subscription_state_at__isnull=True) | Q(subscription_state_at__lte=at)
        )
    values: dict[str, Any] = {
        "subscription_status": status[:32],
        "subscription_id": invoice.subscription_id or subscription_id,
        "customer_id": invoice.customer_id or expandable_id(obj.get("customer")),
        "subscription_state_at": Greatest(Coalesce("subscription_state_at", Value(at)), Value(at)),
        "subscription_cancel_at_period_end": cancel_at_end,
    }
    end = period_end(obj)
    if end is not None:
        values["subscription_current_period_end"] = end
    if ended:
        values["subscription_canceled_at"] = Coalesce(
            "subscription_canceled_at", Value(canceled_at)
        )
    if not recorded.update(**values):
        raise Stale(_("A newer state of the subscription was recorded already."))
    invoice.refresh_from_db(
        fields=[
            "subscription_status",
            "subscription_id",
            "customer_id",
            "subscription_state_at",
            "subscription_cancel_at_period_end",
            "subscription_current_period_end",
            "subscription_canceled_at",
        ]
    )
    _log_change(invoice, before, user)


def _log_change(invoice: Invoice, before: tuple[str, bool], user: Any) -> None:
    old_status, old_cancel_at_end = before
    data = {"subscription": invoice.subscription_id}
    if invoice.subscription_status in TERMINAL and old_status not in TERMINAL:
        log(instance=invoice, action=CANCELLED_ACTION, user=user, data=data)
        announce_on_commit(invoice, "cancelled")
    elif invoice.subscription_cancel_at_period_end and not old_cancel_at_end:
        end = invoice.subscription_current_period_end
        log(
            instance=invoice,
            action=CANCEL_SCHEDULED_ACTION,
            user=user,
            data={**data, "period_end": end.isoformat() if end else None},
        )
        announce_on_commit(invoice, "cancellation_scheduled")
    elif (
        old_cancel_at_end
        and not invoice.subscription_cancel_at_period_end
        and invoice.subscription_status not in TERMINAL
    ):
        log(instance=invoice, action=CANCEL_UNDONE_ACTION, user=user, data=data)
        announce_on_commit(invoice, "cancellation_undone")
    elif invoice.subscription_status != old_status:
        announce_on_commit(invoice, "updated")


def announce_on_commit(invoice: Invoice, what: str) -> None:
    """The ``subscription_changed`` signal and hook, once the change commits."""

    def announce() -> None:
        try:
            subscription_changed.send(sender=Invoice, invoice=invoice, what=what)
            hooks.run(hooks.SUBSCRIPTION_CHANGED, invoice, what)
        except Exception:
            logger.exception("After subscription of %s %s: a receiver failed", invoice.number, what)

    transaction.on_commit(announce, robust=True)


# --- an editor's cancellation ------------------------------------------------------------------


class CannotCancel(Exception):
    """The invoice has no subscription an editor can change this way; ``str()`` says why."""


def _editable(invoice: Invoice) -> None:
    if not invoice.subscription_id:
        raise CannotCancel(_("This invoice has no subscription."))
    if invoice.subscription_status in TERMINAL:
        raise CannotCancel(_("The subscription has ended already."))


def cancel(invoice: Invoice, *, at_period_end: bool, user: Any = None) -> Invoice:
    """Cancel the invoice's subscription now, or at the end of the current period.

    The Stripe call carries an idempotency key made of the subscription and what is
    asked, so a double click or a retry after a timeout asks Stripe once; Stripe's
    answer is recorded at once (the webhook that follows changes nothing).

    Raises:
        CannotCancel: no subscription, or it has ended.
        gateway.GatewayError: Stripe refused or could not be reached; nothing changed.
    """
    with transaction.atomic():
        invoice = lifecycle.lock(invoice)
        _editable(invoice)
        if at_period_end and invoice.subscription_cancel_at_period_end:
            return invoice  # asked already
    if at_period_end:
        obj = gateway.set_cancel_at_period_end(
            test_mode=invoice.test_mode,
            account_id=invoice.account.stripe_id,
            subscription_id=invoice.subscription_id,
            cancel=True,
            version=_version(invoice),
        )
    else:
        obj = gateway.cancel_subscription(
            test_mode=invoice.test_mode,
            account_id=invoice.account.stripe_id,
            subscription_id=invoice.subscription_id,
            version=_version(invoice),
        )
    return _record_answer(invoice, obj, deleted=not at_period_end, user=user)


def undo_cancellation(invoice: Invoice, *, user: Any = None) -> Invoice:
    """Undo a cancellation scheduled for the period's end: the subscription renews again.

    Raises:
        CannotCancel: nothing is scheduled, or the subscription has ended.
        gateway.GatewayError: Stripe refused or could not be reached; nothing changed.
    """
    with transaction.atomic():
        invoice = lifecycle.lock(invoice)
        _editable(invoice)
        if not invoice.subscription_cancel_at_period_end:
            raise CannotCancel(_("No cancellation is scheduled."))
    obj = gateway.set_cancel_at_period_end(
        test_mode=invoice.test_mode,
        account_id=invoice.account.stripe_id,
        subscription_id=invoice.subscription_id,
        cancel=False,
        version=_version(invoice),
    )
    return _record_answer(invoice, obj, deleted=False, user=user)


def _version(invoice: Invoice) -> str:
    """The recorded state an editor acts on, for the idempotency key."""
    at = invoice.subscription_state_at
    return str(int(at.timestamp() * 1_000_000)) if at else "0"


def _record_answer(invoice: Invoice, obj: dict[str, Any], *, deleted: bool, user: Any) -> Invoice:
    with transaction.atomic():
        invoice = lifecycle.lock(invoice)
        # Stale: an event recorded the same change, or a newer one, meanwhile.
        with contextlib.suppress(Stale):
            apply_state(
                invoice, obj, timezone.now().replace(microsecond=0), deleted=deleted, user=user
            )
    return invoice


# --- a failed renewal ----------------------------------------------------------------------------


def record_renewal_failure(
    invoice: Invoice, obj: dict[str, Any], state_at: datetime | None
) -> RenewalFailure | None:
    """Record one failed attempt of a renewal (a Stripe invoice with ``billing_reason``
    other than ``subscription_create``) on its locked invoice; ``None`` if recorded before.

    Sets the subscription past due unless a newer state (a later payment, an end) was
    recorded, logs the attempt and queues the emails.
    """
    stripe_invoice = expandable_id(obj.get("id"))[:255]
    attempt = positive_int(obj.get("attempt_count")) or 1
    failed_at = state_at or timezone.now()
    failure = RenewalFailure(
        invoice=invoice,
        stripe_invoice_id=stripe_invoice,
        attempt_count=attempt,
        amount=positive_int(obj.get("amount_due")) or 0,
        currency=text(obj.get("currency")).upper()[:3] or invoice.currency,
        hosted_invoice_url=text(obj.get("hosted_invoice_url"))[:2000],
        failed_at=failed_at,
        next_attempt_at=unix_time(obj.get("next_payment_attempt")),
    )
    try:
        with transaction.atomic():
            failure.save(force_insert=True)
    except IntegrityError:
        return None
    at = state_at or EPOCH
    Invoice.objects.filter(
        Q(subscription_state_at__isnull=True) | Q(subscription_state_at__lte=at),
        pk=invoice.pk,
    ).exclude(subscription_status__in=TERMINAL).update(
        subscription_status=SubscriptionState.PAST_DUE,
        subscription_state_at=Greatest(Coalesce("subscription_state_at", Value(at)), Value(at)),
    )
    Invoice.objects.filter(pk=invoice.pk).update(
        renewal_failures=F("renewal_failures") + 1,
        last_renewal_failed_at=Greatest(
            Coalesce("last_renewal_failed_at", Value(failed_at)), Value(failed_at)
        ),
    )
    invoice.refresh_from_db(
        fields=["subscription_status", "renewal_failures", "last_renewal_failed_at"]
    )
    log(
        instance=invoice,
        action=RENEWAL_FAILED_ACTION,
        data={
            "stripe_invoice": stripe_invoice,
            "attempt": attempt,
            "amount": failure.amount,
            "currency": failure.currency,
            "next_attempt": failure.next_attempt_at.isoformat()
            if failure.next_attempt_at
            else None,
        },
    )
    taskqueue.on_commit(f"{taskqueue.TASKS}.send_renewal_failure_notices", failure.pk)
    announce_on_commit(invoice, "renewal_failed")
    return failure


def send_renewal_failure_notices(
    failure_pk: int, attempt: int
) -> tuple[str, emails.DeliveryError | None]:
    """Email the client (Stripe's hosted invoice page) and the billing contacts about a
    failed renewal, each once; claimed for ``attempt`` like a dispute's notice."""
    claimed = RenewalFailure.objects.filter(
        Q(client_notified_at__isnull=True) | Q(contacts_notified_at__isnull=True),
        pk=failure_pk,
        notice_attempts=attempt,
    ).update(notice_attempts=attempt + 1)
    if not claimed:
        return "already handled", None
    failure = RenewalFailure.objects.select_related("invoice__site", "invoice__account").get(
        pk=failure_pk
    )
    invoice = failure.invoice
    currency = failure.currency or invoice.currency
    extra: dict[str, Any] = {
        # Formatted in each message's language (the client's, the agency's).
        "renewal_amount": lambda: format_money(failure.amount, currency),
        "hosted_invoice_url": failure.hosted_invoice_url,
        "attempt": failure.attempt_count,
        "next_attempt": (
            timezone.localtime(failure.next_attempt_at).date() if failure.next_attempt_at else None
        ),
    }
    if failure.client_notified_at is None:
        if failure.hosted_invoice_url:
            error = emails.send_notice(
                invoice, RENEWAL_FAILED_CLIENT, [invoice.email], for_client=True, **extra
            )
            if error is not None:
                return "failed", error
        RenewalFailure.objects.filter(pk=failure.pk).update(client_notified_at=timezone.now())
    if failure.contacts_notified_at is None:
        to = emails.billing_contacts(invoice)
        if to:
            error = emails.send_notice(invoice, RENEWAL_FAILED_CONTACTS, to, **extra)
            if error is not None:
                return "failed", error
        RenewalFailure.objects.filter(pk=failure.pk).update(contacts_notified_at=timezone.now())
    return "sent", None


def notices_due(older_than: datetime, max_attempts: int) -> list[tuple[int, int]]:
    """``(failure pk, attempts)`` of failed renewals whose emails have not all gone."""
    return list(
        RenewalFailure.objects.filter(
            Q(client_notified_at__isnull=True) | Q(contacts_notified_at__isnull=True),
            failed_at__lt=older_than,
            notice_attempts__lt=max_attempts,
        )
        .order_by("pk")
        .values_list("pk", "notice_attempts")[:500]
    )
