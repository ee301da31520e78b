"""The invoice statuses as one table: what each one means and what may happen in it.

Each value of ``Invoice.status`` has one :class:`Status` row in :data:`STATUSES`: its
label, the statuses it may move to, the log action a move into it writes, whether the
client may pay it (Checkout) or else which page the client sees, whether an editor may
delete it (and the reason given when not), whether an editor may send a new invoice
from it, and the tone of its tag in the admin. Everything that asks "what may happen to
this invoice now" reads the table: :mod:`.lifecycle` (transitions, log actions, the
delete guard), the log actions ``wagtail_hooks`` registers, the pay view, the listing's
tags, status filter and action buttons. Adding a status is a member of
:class:`InvoiceStatus` and a row here (``docs/architecture.md`` has the checklist).
The moves the table allows today::

    pending    -> processing, paid, expired, deleted
    processing -> paid, pending (payment failed), expired (failed after its expiry)
    expired    -> paid   (money received wins; flagged as a late payment), deleted
    deleted    -> paid   (money received wins; flagged as a late payment)
    draft      -> pending (sent: numbered, emailed, its lifetime starts), deleted
    paid       -> partially_refunded, refunded
    partially_refunded -> refunded, paid (its refund failed)
    refunded   -> partially_refunded (a refund failed, or a renewal was paid), paid

Where things live, and why migrations stay still:

- :class:`InvoiceStatus` (the value and label, Django's choices type, for code that names
  a status: ``InvoiceStatus.PAID``) is declared here beside the table, below
  :mod:`.models`: the model imports it, this module imports nothing of the app, so there
  is no import cycle; ``models.InvoiceStatus`` stays importable.
- ``Invoice.status`` takes its ``choices`` from :func:`choices`, a plain list of
  ``(value, label)`` in the table's order. Migrations record that list, not this
  module's path, so moving code around never changes them; a new status adds one
  ``AlterField`` that changes no column (choices are not stored in the database). The
  column holds 32 characters, room for ``partially_refunded`` and its kind.

A value the table does not know (written by a newer release during a rolling deploy,
or by hand) gets :func:`get`'s fallback row: never payable, never deletable, no
transitions, and the client sees "cannot be paid online" instead of Checkout.

The status says where a billing request's money stands, one value at a time. States
that can hold *at the same time* are fields of their own beside it, not statuses: a
dispute on a paid invoice, a subscription's own state (``Invoice.subscription_status``),
a late payment or a paid amount that differs (``late_payment``, ``amount_mismatch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

#: A label: a plain string or a lazily translated one.
Label = str | Promise


class InvoiceStatus(models.TextChoices):
    """The values of ``Invoice.status`` and their labels; each has its row in :data:`STATUSES`."""

    PENDING = "pending", _("Pending")
    PROCESSING = "processing", _("Processing")
    PAID = "paid", _("Paid")
    EXPIRED = "expired", _("Expired")
    DELETED = "deleted", _("Deleted")
    DRAFT = "draft", _("Draft")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")


S = InvoiceStatus


class Tone(StrEnum):
    """The colour of a status tag: a colour family of Wagtail's design system.

    The tag is Wagtail's ``w-status`` with ``data-tone`` set to one of these;
    ``static/wagtail_client_billing/admin/invoices.css`` colours each tone from the
    family's tokens (``--w-color-<family>-50`` and darker), so a new status needs no CSS.
    """

    INFO = "info"
    WARNING = "warning"
    POSITIVE = "positive"
    CRITICAL = "critical"
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class ClientPage:
    """The page a client who opens the payment link sees instead of Checkout."""

    #: A template under ``templates/wagtail_client_billing/public/``.
    template: str
    #: The page's HTTP status: 200 for a result, 410 for a link that no longer works.
    http_status: int = 200


@dataclass(frozen=True)
class Status:
    """One status and its rules.

    Attributes:
        value: the stored value (an :class:`InvoiceStatus` member).
        targets: the statuses an invoice may move to from this one.
        log_action: the Wagtail log action a move *into* this status writes.
        log_label: that action's label in History and the reports' filters.
        log_message: its message in the invoice's History.
        tone: the colour of its tag in the admin.
        payable: the payment link opens Checkout (the only statuses without a page).
        page: what the client sees at the payment link when it is not payable.
        withdrawn: the client can no longer pay and no money moved: an open Checkout
            Session is expired on Stripe, and an editor may send a new invoice from it.
        refusal: why an editor may not delete it (for statuses that cannot be deleted).
    """

    value: str
    targets: frozenset[str]
    log_action: str
    log_label: Label
    log_message: Label
    tone: Tone
    payable: bool = False
    page: ClientPage | None = None
    withdrawn: bool = False
    refusal: Label = ""

    def __post_init__(self) -> None:
        if self.payable == (self.page is not None):
            raise ValueError(f"Status {self.value!r}: exactly one of payable and page.")
        if not self.deletable and not self.refusal:
            raise ValueError(f"Status {self.value!r}: say why it cannot be deleted.")

    @property
    def label(self) -> Label:
        """The label an editor reads: the :class:`InvoiceStatus` member's, or the raw value."""
        return InvoiceStatus(self.value).label if self.value in InvoiceStatus.values else self.value

    @property
    def deletable(self) -> bool:
        """Whether an editor may delete an invoice in this status: the one rule."""
        return S.DELETED in self.targets

    @property
    def final(self) -> bool:
        """Nothing more can happen to an invoice in this status."""
        return not self.targets


def _t(*values: str) -> frozenset[str]:
    return frozenset(values)


#: The table, in the order editors see statuses (filters, the field's choices).
STATUSES: dict[str, Status] = {
    row.value: row
    for row in (
        Status(
            S.PENDING,
            targets=_t(S.PROCESSING, S.PAID, S.EXPIRED, S.DELETED),
            # Reached only by a submitted payment failing (a new invoice starts here).
            log_action="wagtail_client_billing.payment_failed",
            log_label=_("Payment failed"),
            log_message=_("Payment failed; pending again"),
            tone=Tone.INFO,
            payable=True,
        ),
        Status(
            S.PROCESSING,
            targets=_t(S.PAID, S.PENDING, S.EXPIRED),
            log_action="wagtail_client_billing.processing",
            log_label=_("Payment processing"),
            log_message=_("Payment submitted, not settled yet"),
            tone=Tone.WARNING,
            page=ClientPage("processing.html"),
            refusal=_("This invoice cannot be deleted while its payment is processing."),
        ),
        Status(
            S.PAID,
            targets=_t(S.PARTIALLY_REFUNDED, S.REFUNDED),
            log_action="wagtail_client_billing.paid",
            log_label=_("Paid"),
            log_message=_("Marked paid"),
            tone=Tone.POSITIVE,
            page=ClientPage("paid.html"),
            refusal=_("A paid invoice cannot be deleted; refund it instead."),
        ),
        Status(
            S.EXPIRED,
            # Money received wins: a late payment marks it paid (and flags it).
            targets=_t(S.PAID, S.DELETED),
            log_action="wagtail_client_billing.expired",
            log_label=_("Expired"),
            log_message=_("Payment link expired"),
            tone=Tone.NEUTRAL,
            page=ClientPage("expired.html", 410),
            withdrawn=True,
        ),
        Status(
            S.DELETED,
            targets=_t(S.PAID),
            log_action="wagtail_client_billing.deleted",
            log_label=_("Deleted"),
            log_message=_("Billing request deleted"),
            tone=Tone.CRITICAL,
            page=ClientPage("withdrawn.html", 410),
            withdrawn=True,
            refusal=_("This billing request is already deleted."),
        ),
        Status(
            S.DRAFT,
            # Saved unsent: no number, no email, not payable; an invoice starts here only
            # when the editor saves a draft (no move goes back into it).
            targets=_t(S.PENDING, S.DELETED),
            log_action="wagtail_client_billing.draft_saved",
            log_label=_("Draft saved"),
            log_message=_("Saved as a draft"),
            tone=Tone.NEUTRAL,
            page=ClientPage("draft.html"),
        ),
        Status(
            S.PARTIALLY_REFUNDED,
            targets=_t(S.REFUNDED, S.PAID),
            log_action="wagtail_client_billing.partially_refunded",
            log_label=_("Partially refunded"),
            log_message=_("Part of the payment refunded"),
            tone=Tone.WARNING,
            page=ClientPage("refunded.html"),
            refusal=_(
                "A refunded invoice cannot be deleted: its payment and refunds stay on record."
            ),
        ),
        Status(
            S.REFUNDED,
            targets=_t(S.PARTIALLY_REFUNDED, S.PAID),
            log_action="wagtail_client_billing.refunded_in_full",
            log_label=_("Refunded"),
            log_message=_("Payment refunded in full"),
            tone=Tone.NEUTRAL,
            page=ClientPage("refunded.html"),
            refusal=_(
                "A refunded invoice cannot be deleted: its payment and refunds stay on record."
            ),
        ),
    )
}

#: What a client sees for a status the table does not know.
UNKNOWN_PAGE = ClientPage("unavailable.html", 503)


def get(value: str) -> Status:
    """The row of ``value``; for a value the table does not know, a row that allows nothing."""
    row = STATUSES.get(value)
    if row is not None:
        return row
    return Status(
        str(value),
        targets=_t(),
        log_action="",
        log_label="",
        log_message="",
        tone=Tone.NEUTRAL,
        page=UNKNOWN_PAGE,
        refusal=_("This billing request cannot be deleted."),
    )


def choices() -> list[tuple[str, Label]]:
    """``(value, label)`` of every status, in the table's order: the field's and filter's choices."""
    return [(str(row.value), row.label) for row in STATUSES.values()]


def deletable_values() -> list[str]:
    """The statuses an editor may delete an invoice in, for a query."""
    return [str(row.value) for row in STATUSES.values() if row.deletable]


def withdrawn_values() -> list[str]:
    """The statuses of invoices withdrawn from the client, for a query."""
    return [str(row.value) for row in STATUSES.values() if row.withdrawn]
