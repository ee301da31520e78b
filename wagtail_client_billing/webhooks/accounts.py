"""The events of a connected account: ``account.updated`` and
``account.application.deauthorized``.

An account event is about the connected account that sent it, the event's top-level
``account`` (Stripe sets it on every Connect event), never the object's id, so one
connected account cannot change another's state. The account's row is locked until the
event's transaction ends.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from .. import gateway
from ..billing import accounts
from ..models import StripeAccount
from ..stripe_api import text, unix_time
from .base import Applied, Ignored


def _account(event: dict[str, Any]) -> StripeAccount:
    """The connected account the event came from, locked until the event's transaction ends.

    The event's top-level ``account`` says which connected account sent it (Stripe sets
    it on every Connect event); an event without one is about the platform's own account.
    """
    stripe_id = text(event.get("account"))
    if not stripe_id:
        raise Ignored(_("Not an event of a connected account."))
    account = StripeAccount.objects.select_for_update().filter(stripe_id=stripe_id).first()
    if account is None:
        raise Ignored(_("No Stripe account %(id)s is connected here.") % {"id": stripe_id})
    if bool(event["livemode"]) == account.test_mode:
        raise Ignored(_("The event's mode is not the account's mode."))
    return account


def on_account_updated(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """Record the account's state (:func:`..billing.accounts.record_state`), unless a newer
    one is known.

    The account is the one that sent the event; an event whose object describes another
    account is refused, so one connected account cannot change another's state.
    """
    state = gateway.account_from_stripe(obj)
    if state.id and state.id != text(event.get("account")):
        raise Ignored(
            _("The event is from account %(event)s but describes account %(object)s.")
            % {"event": text(event.get("account")) or _("the platform"), "object": state.id}
        )
    account = _account(event)
    created = unix_time(event.get("created")) or timezone.now()
    if not accounts.record_state(account, state, as_of=created):
        raise Ignored(_("An older state of the account than the one recorded."))
    return Applied()


def on_account_deauthorized(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """The account disconnected the platform: unlink it from every site, keep the record
    (:func:`..billing.accounts.record_deauthorization`)."""
    account = _account(event)
    accounts.record_deauthorization(
        account,
        event_id=event["id"],
        at=unix_time(event.get("created")) or timezone.now(),
    )
    return Applied()
