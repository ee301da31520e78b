"""The events of a payment's dispute: ``charge.dispute.created``, ``.updated``,
``.closed``, ``.funds_withdrawn`` and ``.funds_reinstated``.

Each carries the whole ``dispute`` object as it was when the event was made, so every
one of them is applied the same way (:func:`.billing.disputes.apply`): the newest state
wins, whatever the order of delivery, and a closed dispute stays closed. The invoice is
found by a dispute already recorded, else by the payment intent the dispute names.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from ..billing import disputes
from ..stripe_api import unix_time
from .base import Applied, Ignored, event_created, locked_invoice


def on_dispute_event(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """Record the dispute's state on the invoice whose payment it disputes."""
    state = disputes.from_stripe(obj)
    if not state.dispute_id or not state.status:
        raise Ignored(_("The dispute has no id or status."))
    invoice = locked_invoice(event, disputes.find_invoice(state))
    try:
        outcome = disputes.apply(invoice, state, unix_time(event_created(event)))
    except ValueError:
        raise Ignored(_("The dispute is recorded on another invoice."), invoice) from None
    if outcome.what == "stale":
        raise Ignored(_("A newer state of the dispute was recorded already."), invoice)
    return Applied(invoice=invoice)
