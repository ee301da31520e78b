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
from wagtail.log_actions import log
from wagtail.log_actions import registry as log_registry

from ..models import ClientBillingSettings, StripeAccount
from ..stripe_api import expandable_id, mapping, text, unix_time
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
    """Store the account's flags and what Stripe still needs, unless a newer state is known.

    The account is the one that sent the event; an event whose object describes another
    account is refused, so one connected account cannot change another's state.
    """
    described = expandable_id(obj.get("id"))
    if described and described != text(event.get("account")):
        raise Ignored(
            _("The event is from account %(event)s but describes account %(object)s.")
            % {"event": text(event.get("account")) or _("the platform"), "object": described}
        )
    account = _account(event)
    created = unix_time(event.get("created")) or timezone.now()
    if account.synced_at and account.synced_at > created:
        raise Ignored(_("An older state of the account than the one recorded."))
    requirements = mapping(obj.get("requirements"))
    due = requirements.get("currently_due")
    StripeAccount.objects.filter(pk=account.pk).update(
        charges_enabled=bool(obj.get("charges_enabled")),
        payouts_enabled=bool(obj.get("payouts_enabled")),
        details_submitted=bool(obj.get("details_submitted")),
        requirements_due=[d for d in due if isinstance(d, str)] if isinstance(due, list) else [],
        disabled_reason=text(requirements.get("disabled_reason"))[:255],
        synced_at=created,
    )
    return Applied()


def on_account_deauthorized(event: dict[str, Any], obj: dict[str, Any]) -> Applied:
    """The account disconnected the platform: unlink it from every site, keep the record."""
    account = _account(event)
    now = timezone.now()
    StripeAccount.objects.filter(pk=account.pk, deauthorized_at__isnull=True).update(
        deauthorized_at=unix_time(event.get("created")) or now
    )
    sites = [
        str(s.site)
        for s in ClientBillingSettings.objects.select_related("site").filter(live_account=account)
    ] + [
        str(s.site)
        for s in ClientBillingSettings.objects.select_related("site").filter(test_account=account)
    ]
    ClientBillingSettings.objects.filter(live_account=account).update(live_account=None)
    ClientBillingSettings.objects.filter(test_account=account).update(test_account=None)
    already = (
        log_registry.get_logs_for_instance(account)
        .filter(
            action="wagtail_client_billing.account_unlinked",
            data__event=event["id"],
        )
        .exists()
    )
    if not already:
        log(
            instance=account,
            action="wagtail_client_billing.account_unlinked",
            data={"reason": "deauthorized", "event": event["id"], "sites": sites},
        )
    return Applied()
