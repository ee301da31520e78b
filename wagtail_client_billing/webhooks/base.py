"""What every webhook handler shares: its result, and finding the invoice an event concerns.

A handler is called with the event and its ``data.object`` and returns :class:`Applied`:
what it did and the invoice the event concerns, which the stored event then links to.
An event that is genuine but not for anything this app should change raises
:class:`Ignored` with the reason (and the invoice, once found), from wherever the
handler finds that out.

Every field of an event's object is read through :mod:`.stripe_api`'s readers: a genuine
event of an unexpected shape (a new API version) must be ignored, not crash into endless
retries, and nothing may be marked paid on a field that could not be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from .. import lifecycle
from ..models import Invoice, WebhookOutcome


@dataclass(frozen=True)
class Applied:
    """What a handler did with its event.

    Attributes:
        outcome: :attr:`~.models.WebhookOutcome.PROCESSED`, or ``IGNORED``.
        reason: why an ignored event was ignored, for the event log.
        invoice: the invoice the event concerns, if any; the stored event links to it.
    """

    outcome: str = WebhookOutcome.PROCESSED
    reason: str = ""
    invoice: Invoice | None = None


class Ignored(Exception):
    """The event is genuine but not for anything this app should change; ``str()`` says why.

    Attributes:
        invoice: the invoice the event concerns, when it was found before the handler
            decided to ignore the event; the stored event links to it all the same.
    """

    def __init__(self, reason: str, invoice: Invoice | None = None) -> None:
        super().__init__(reason)
        self.invoice = invoice


def find_invoice(
    *, pk: int | None = None, session_id: str = "", subscription_id: str = ""
) -> Invoice | None:
    """The invoice by its pk, else by the Checkout Session or subscription recorded on it."""
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


def check_owner(invoice: Invoice, event: dict[str, Any]) -> None:
    """Refuse an event from another connected account or the other mode."""
    account = event.get("account") or ""
    if account != invoice.account.stripe_id:
        raise Ignored(
            _("The event is from account %(event)s, the invoice is on %(invoice)s.")
            % {"event": account or _("the platform"), "invoice": invoice.account.stripe_id},
            invoice,
        )
    if bool(event["livemode"]) == invoice.test_mode:
        raise Ignored(
            _("A live mode event for a test mode invoice.")
            if event["livemode"]
            else _("A test mode event for a live mode invoice."),
            invoice,
        )


def locked_invoice(event: dict[str, Any], invoice: Invoice | None) -> Invoice:
    """``invoice``, checked against the event's account and mode, and locked.

    Raises:
        Ignored: no invoice was found, or the event is not from its account and mode.
    """
    if invoice is None:
        raise Ignored(_("No invoice of this app matches the event."))
    check_owner(invoice, event)
    # Every handler reads the invoice, decides and writes: another event, the client's
    # return or an editor may be changing it at this moment, so decide on the row as it
    # is now and hold it until this event's transaction commits.
    return lifecycle.lock(invoice)


def event_created(event: dict[str, Any]) -> int:
    """The event's ``created`` Unix time; 0 when it has none."""
    created = event.get("created")
    return created if isinstance(created, int) and not isinstance(created, bool) else 0
