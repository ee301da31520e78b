"""What an editor does to billing requests: create and send, save a draft and send it
later, resend, send new, delete.

Views, bulk actions and site code call these functions, so the admin's buttons and
anything built on the app behave alike; the views only handle forms, messages and
redirects. Status changes go through :mod:`..lifecycle`; work for a worker (the email,
expiring a withdrawn Checkout Session) is queued by the task's dotted path through
:mod:`..taskqueue`, once the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from wagtail.log_actions import log

from .. import hooks, lifecycle, rollup, taskqueue
from ..models import ClientBillingSettings, EmailStatus, Invoice, InvoiceCounter, InvoiceStatus
from ..scope import can_use_client_billing
from . import clients, lines

if TYPE_CHECKING:
    from django.http import HttpRequest

#: Log action written when a billing request is created.
CREATED_ACTION = "wagtail_client_billing.created"


class NotAllowed(Exception):
    """The invoice's state does not allow what was asked; ``str()`` tells the editor why."""


# --- create and send ---------------------------------------------------------------------


def check_new(request: HttpRequest, invoice: Invoice) -> None:
    """Whether ``request``'s user may send the new, unsaved ``invoice``.

    Raises :class:`~django.core.exceptions.ValidationError` when the access scope
    (:func:`..scope.can_use_client_billing`) keeps the user off the invoice's site, or
    when a ``client_billing_before_create_invoice`` hook refuses it; such a hook may
    also adjust the invoice. Call it before :func:`create`, with a valid form.
    """
    if not can_use_client_billing(request, invoice.site):
        raise ValidationError(_("Client Billing is not available for this site to your account."))
    hooks.run(hooks.BEFORE_CREATE_INVOICE, request, invoice)


def create(invoice: Invoice, *, user: Any) -> Invoice:
    """Save the new ``invoice`` as pending and send it to the client.

    The invoice gets its client (the one chosen, else that of its address, added when
    new: :func:`.clients.link`), the site's next number (:class:`..models.InvoiceCounter`) and the
    site's payment link lifetime; its creation is logged and its email queued, all in
    one transaction (the email task is queued once it commits). Its lines are saved with
    it, and its amount is their total (:func:`.lines.prepare`).
    """
    lines.prepare(invoice)
    invoice.expires_at = timezone.now() + lifetime(invoice)
    invoice.created_by = user
    with transaction.atomic(savepoint=False):
        clients.link(invoice, user=user)
        invoice.save()
        log(
            instance=invoice,
            action=CREATED_ACTION,
            user=user,
            data={
                "amount": invoice.amount,
                "currency": invoice.currency,
                "email": invoice.email,
                "test_mode": invoice.test_mode,
                "copied_from": invoice.copied_from_id,
            },
        )
        queue_email(invoice)
    return invoice


def queue_email(invoice: Invoice) -> None:
    """Mark the invoice's email queued and send it from a worker after commit.

    Used on creation and by :func:`resend`: the attempt count starts again, so a resent
    email gets the full ``EMAIL_MAX_ATTEMPTS``. The worker runs
    ``wagtail_client_billing.tasks.send_invoice_email``, which sends nothing for an
    invoice that is no longer payable by then.
    """
    now = timezone.now()
    Invoice.objects.filter(pk=invoice.pk).update(
        email_status=EmailStatus.QUEUED, email_attempts=0, email_last_error="", email_queued_at=now
    )
    invoice.email_status = EmailStatus.QUEUED
    invoice.email_attempts = 0
    invoice.email_last_error = ""
    invoice.email_queued_at = now
    taskqueue.on_commit(
        f"{taskqueue.TASKS}.send_invoice_email", invoice.pk, 0, group="client_billing_email"
    )


# --- resend and send new -------------------------------------------------------------------


def resend(invoice: Invoice) -> None:
    """Send the same invoice email again; raises :class:`NotAllowed` unless it is payable."""
    if not invoice.is_payable:
        raise NotAllowed(
            _("%(number)s is %(status)s: only pending billing requests can be resent.")
            % {"number": invoice.label, "status": invoice.get_status_display().lower()}
        )
    queue_email(invoice)


def can_send_new(invoice: Invoice) -> bool:
    """Whether "Send new invoice" may make a new request from ``invoice``: a withdrawn one
    (the status table's ``withdrawn``); an expired link is never revived."""
    return invoice.effective_status_definition.withdrawn


def copy(source: Invoice) -> Invoice:
    """A new, unsaved request filled from an expired or deleted one, for :func:`create`.

    What is carried over is :meth:`..models.Invoice.copy_for_new_request`'s to decide.
    Raises :class:`NotAllowed` for any other invoice.
    """
    if not can_send_new(source):
        raise NotAllowed(
            _("Only expired or deleted billing requests can be sent again as new ones.")
        )
    new = source.copy_for_new_request()
    lines.copy_lines(source, new)
    return new


# --- delete --------------------------------------------------------------------------------


def delete(invoice: Invoice, *, user: Any) -> bool:
    """Withdraw ``invoice`` (a soft delete) and expire its Checkout Session; True if it changed.

    The status change is :func:`..lifecycle.delete`'s, and so is the rule: its
    :class:`~..lifecycle.TransitionNotAllowed` (money has moved) reaches the caller with
    the message for the editor. The session is expired on Stripe by a worker after
    commit, whether or not ``invoice`` as loaded holds one: the client's pay click may
    be storing one right now, and the task reads the session when it runs.
    """
    changed = lifecycle.delete(invoice, user=user)
    if changed:
        taskqueue.on_commit(
            f"{taskqueue.TASKS}.expire_checkout_session", invoice.pk, group="client_billing_stripe"
        )
    return changed


def delete_many(invoices: Iterable[Invoice], *, user: Any) -> int:
    """:func:`delete` each of ``invoices``; returns how many were deleted.

    One that cannot be deleted any more (paid meanwhile: money received wins) is left
    as it is, and the others are still deleted.
    """
    deleted = 0
    for invoice in invoices:
        try:
            if delete(invoice, user=user):
                deleted += 1
        except lifecycle.TransitionNotAllowed:
            continue
    return deleted


# --- drafts, lifetimes and due dates ---------------------------------------------------------

#: Log action written when an editor saves a draft (the status table's row for draft).
DRAFT_SAVED_ACTION = "wagtail_client_billing.draft_saved"


def lifetime(invoice: Invoice) -> timedelta:
    """How long ``invoice``'s payment link works, counted from sending: the editor's
    choice for this request, else the site's payment link lifetime."""
    if invoice.payment_link_lifetime:
        return invoice.payment_link_lifetime
    return ClientBillingSettings.for_site(invoice.site).payment_link_lifetime


def due_date_problem(due: date | None, expires_at: datetime) -> str | None:
    """Why ``due`` cannot be the due date of a link that expires at ``expires_at``, or
    ``None``: it may not lie in the past nor after the day the link expires."""
    if due is None:
        return None
    if due < timezone.localdate():
        return _("The due date has passed. Choose today or a later day.")
    last = timezone.localdate(expires_at)
    if due > last:
        return _(
            "The due date must be on or before the day the payment link expires (%(day)s). "
            "Choose an earlier day or a longer lifetime."
        ) % {"day": date_format(last, "DATE_FORMAT")}
    return None


def save_draft(invoice: Invoice, *, user: Any) -> Invoice:
    """Save the new ``invoice`` as a draft: no number, no email, not payable.

    Its ``expires_at`` is provisional (now plus its lifetime); :func:`send` sets it
    again, since the lifetime counts from sending.
    """
    lines.prepare(invoice)
    invoice.status = InvoiceStatus.DRAFT
    invoice.sequence = None
    invoice.number = ""
    invoice.expires_at = timezone.now() + lifetime(invoice)
    invoice.created_by = user
    with transaction.atomic(savepoint=False):
        clients.link(invoice, user=user)
        invoice.save()
        log(
            instance=invoice,
            action=DRAFT_SAVED_ACTION,
            user=user,
            data={"amount": invoice.amount, "currency": invoice.currency, "email": invoice.email},
        )
    return invoice


def update_draft(invoice: Invoice, *, user: Any) -> Invoice:
    """Save an editor's changes to a draft; raises :class:`NotAllowed` once it was sent."""
    with transaction.atomic():
        saved = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if saved.status != InvoiceStatus.DRAFT:
            raise NotAllowed(_("This billing request was sent already: it is no longer a draft."))
        lines.follow_quick_path(invoice, saved)
        lines.prepare(invoice)
        if invoice.client_id == saved.client_id and invoice.email.lower() != saved.email.lower():
            invoice.client = None  # the address changed, the client was not: its client
        clients.link(invoice, user=user)
        invoice.expires_at = timezone.now() + lifetime(invoice)
        invoice.save()
        rollup.replaced(saved, invoice)
        log(instance=invoice, action="wagtail.edit", user=user)
    return invoice


def send(invoice: Invoice, *, user: Any) -> Invoice:
    """Send a draft to the client: its number, its expiry (the lifetime starts now), its
    email. Raises :class:`NotAllowed` when it is not a draft any more, its due date no
    longer fits, or its Stripe account cannot take payments.

    The number is taken from the site's :class:`..models.InvoiceCounter` in the same
    transaction as the change to pending, under the draft's row lock, and a refusal
    rolls both back: a number is never handed out to a draft that stays unsent.
    """
    with transaction.atomic():
        lifecycle.lock(invoice)
        if invoice.status != InvoiceStatus.DRAFT:
            raise NotAllowed(
                _("%(number)s was sent already: only a draft can be sent.")
                % {"number": invoice.number}
            )
        if not invoice.account.can_charge:
            raise NotAllowed(
                _(
                    "The Stripe account %(account)s cannot take payments yet. "
                    "See Settings → Client Billing → Stripe."
                )
                % {"account": invoice.account.stripe_id}
            )
        now = timezone.now()
        expires_at = now + lifetime(invoice)
        problem = due_date_problem(invoice.due_date, expires_at)
        if problem:
            raise NotAllowed(problem)
        sequence = InvoiceCounter.next_for_site(invoice.site_id)
        fields = {
            "sequence": sequence,
            "number": Invoice.format_number(sequence),
            "expires_at": expires_at,
        }
        if not lifecycle.send_draft(invoice, user=user, fields=fields):
            raise NotAllowed(_("This draft was deleted or sent meanwhile."))
        queue_email(invoice)
    return invoice
