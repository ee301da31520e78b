"""Connected accounts: attach one to a site, unlink it, and record what Stripe says of it.

The connect screens (``views/admin_connect.py``) and the ``account.*`` webhook handlers
call these functions; they call :mod:`..gateway` for Stripe and write
:class:`~..models.StripeAccount` and the account links of a site's
:class:`~..models.ClientBillingSettings`. The rules they keep:

* **One writer of an account's state.** :func:`record_state` is the only code that
  writes the flags, the requirements and ``synced_at``, from a
  :class:`~..gateway.AccountState` that :func:`..gateway.account_from_stripe` made of
  Stripe's account object, whether it came from an API answer (connect, Refresh status,
  the return from onboarding) or from an ``account.updated`` event. So both paths store
  the same thing for the same object: what is currently due and what is past due, apart.
  An event's snapshot older than the one recorded is not applied; a read from Stripe
  is the newest there is.
* **A site's account links are written here only.** :func:`attach` and :func:`unlink`
  lock the site's settings row, so two editors cannot both take a slot; Stripe's
  deauthorization clears every link to the account with compare-and-set ``UPDATE``\\ s.
  The settings form never writes the links (it saves only the fields it shows).
* **A deauthorization is recorded once, as data.** :func:`record_deauthorization` sets
  ``StripeAccount.deauthorized_event_id`` with a compare-and-set and writes its log
  entry only when that changed the row (or the event unlinked a site), so a
  redelivered or reprocessed event is not logged twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from wagtail.log_actions import log
from wagtail.models import Site

from .. import gateway
from ..models import ClientBillingSettings, InvoiceStatus, StripeAccount

#: Log actions (registered with their labels in ``wagtail_hooks.py``).
CONNECTED_ACTION = "wagtail_client_billing.account_connected"
UNLINKED_ACTION = "wagtail_client_billing.account_unlinked"

#: Invoices that can still take money through the account.
OPEN_STATUSES = (InvoiceStatus.PENDING, InvoiceStatus.PROCESSING)


@dataclass(frozen=True)
class Connected:
    """What :func:`create_and_attach` did.

    Attributes:
        account: the account Stripe made (or replayed for the idempotency key), stored.
        attached: whether it is now the site's account for its mode; ``False`` when
            another account took the slot first.
    """

    account: StripeAccount
    attached: bool


# --- an account's state ------------------------------------------------------------------


def record_state(
    account: StripeAccount, state: gateway.AccountState, *, as_of: datetime | None = None
) -> bool:
    """Store what Stripe says of ``account``; whether it was applied.

    ``as_of`` is when Stripe took the snapshot (an event's ``created``): it is not
    applied when the recorded state is newer. ``None`` means it was read from Stripe
    just now, which is always the newest; ``synced_at`` then never moves backwards, so
    an event created before the read and delivered after it is refused as older.
    The row is locked while it is compared and written; ``account`` is updated in place.
    """
    with transaction.atomic():
        locked = StripeAccount.objects.select_for_update().only("synced_at").get(pk=account.pk)
        if as_of is not None and locked.synced_at is not None and locked.synced_at > as_of:
            return False
        now = timezone.now()
        values: dict[str, Any] = {
            "charges_enabled": state.charges_enabled,
            "payouts_enabled": state.payouts_enabled,
            "details_submitted": state.details_submitted,
            "requirements_due": list(state.requirements_due),
            "requirements_past_due": list(state.requirements_past_due),
            "disabled_reason": state.disabled_reason[:255],
            "synced_at": as_of if as_of is not None else max(now, locked.synced_at or now),
        }
        if state.country:
            values["country"] = state.country[:2]
        StripeAccount.objects.filter(pk=account.pk).update(**values)
    for name, value in values.items():
        setattr(account, name, value)
    return True


def refresh(account: StripeAccount) -> StripeAccount:
    """Read the account from Stripe now and record it.

    Raises :class:`~..gateway.PermissionDenied` when Stripe refuses the platform's key
    for it (the mode picked the right key, so the account holder disconnected the
    platform, or the account is gone): the account is marked so first. Any other
    :class:`~..gateway.GatewayError` changes nothing.
    """
    try:
        state = gateway.retrieve_account(test_mode=account.test_mode, account_id=account.stripe_id)
    except gateway.PermissionDenied:
        mark_disconnected(account)
        raise
    record_state(account, state)
    return account


def mark_disconnected(account: StripeAccount, at: datetime | None = None) -> None:
    """Mark the account as no longer acting for the platform (once; the first time stays)."""
    at = at or timezone.now()
    if StripeAccount.objects.filter(pk=account.pk, deauthorized_at__isnull=True).update(
        deauthorized_at=at
    ):
        account.deauthorized_at = at


# --- attach ------------------------------------------------------------------------------


def create_and_attach(
    site: Site,
    *,
    test_mode: bool,
    country: str,
    privacy_policy_url: str,
    terms_of_service_url: str,
    idempotency_key: str,
    user: Any,
) -> Connected:
    """Create a connected account on Stripe, store it and attach it to ``site``.

    Raises :class:`~..gateway.GatewayError` when Stripe refused or could not be
    reached; nothing is stored then. The caller sends the editor to onboarding
    (:func:`onboarding_link`).
    """
    state = gateway.create_account(
        test_mode=test_mode,
        country=country,
        privacy_policy_url=privacy_policy_url,
        terms_of_service_url=terms_of_service_url,
        site_url=site.root_url,
        idempotency_key=idempotency_key,
    )
    with transaction.atomic():
        account, _created = StripeAccount.objects.get_or_create(
            stripe_id=state.id,
            defaults={
                "test_mode": test_mode,
                "country": state.country or country,
                "privacy_policy_url": privacy_policy_url,
                "terms_of_service_url": terms_of_service_url,
                "connected_by": user,
            },
        )
        record_state(account, state)
        attached = attach(site, account, user=user)
    return Connected(account=account, attached=attached)


def attach(site: Site, account: StripeAccount, *, user: Any, reused: bool = False) -> bool:
    """Put ``account`` in the site's slot for its mode, unless another one took it.

    The settings row is locked so two editors connecting at once cannot both win.
    Attaching the same account twice (a double submit) is a no-op that succeeds.
    """
    field = _slot(account)
    pk = ClientBillingSettings.for_site(site).pk
    with transaction.atomic():
        settings = ClientBillingSettings.objects.select_for_update().get(pk=pk)
        current_id = getattr(settings, f"{field}_id")
        if current_id == account.pk:
            return True
        if current_id is not None:
            return False
        setattr(settings, field, account)
        settings.save(update_fields=[field])
        extra = {"reused": True} if reused else {}
        log(
            instance=settings,
            action=CONNECTED_ACTION,
            user=user,
            data=_log_data(site, account, **extra),
        )
    return True


def onboarding_link(account: StripeAccount, *, refresh_url: str, return_url: str) -> str:
    """A fresh Stripe Account Link for the account's onboarding (single use, short-lived).

    Raises :class:`~..gateway.GatewayError`; the account stays as it is.
    """
    return gateway.create_account_link(
        test_mode=account.test_mode,
        account_id=account.stripe_id,
        refresh_url=refresh_url,
        return_url=return_url,
    )


# --- unlink ------------------------------------------------------------------------------


def unlink(site: Site, account: StripeAccount, *, user: Any) -> bool:
    """An editor detaches ``account`` from ``site``; whether it was still attached.

    The :class:`StripeAccount` record stays: invoices made with it keep pointing at it,
    so the site's pending invoices of that mode can still be paid until they expire.
    """
    field = _slot(account)
    pk = ClientBillingSettings.for_site(site).pk
    with transaction.atomic():
        settings = ClientBillingSettings.objects.select_for_update().get(pk=pk)
        if getattr(settings, f"{field}_id") != account.pk:
            return False
        setattr(settings, field, None)
        settings.save(update_fields=[field])
        log(instance=settings, action=UNLINKED_ACTION, user=user, data=_log_data(site, account))
    return True


def record_deauthorization(account: StripeAccount, *, event_id: str, at: datetime) -> bool:
    """Stripe says the account disconnected the platform: unlink it from every site.

    Call it with the account locked (the webhook handler holds its row). The record is
    kept. ``deauthorized_at`` keeps the first time it was known; the event's id is set
    once, by a compare-and-set, and the log entry is written only when that changed
    the row or the event unlinked a site: applying the same event again does nothing.
    Returns whether it wrote a log entry.
    """
    mark_disconnected(account, at)
    linked = list(
        ClientBillingSettings.objects.select_for_update(of=("self",))
        .select_related("site")
        .filter(Q(live_account=account) | Q(test_account=account))
        .order_by("pk")
    )
    pks = [settings.pk for settings in linked]
    unlinked = ClientBillingSettings.objects.filter(pk__in=pks, live_account=account).update(
        live_account=None
    )
    unlinked += ClientBillingSettings.objects.filter(pk__in=pks, test_account=account).update(
        test_account=None
    )
    first = StripeAccount.objects.filter(pk=account.pk, deauthorized_event_id="").update(
        deauthorized_event_id=event_id[:255]
    )
    if first:
        account.deauthorized_event_id = event_id[:255]
    if not (first or unlinked):
        return False
    log(
        instance=account,
        action=UNLINKED_ACTION,
        data={
            "reason": "deauthorized",
            "event": event_id,
            "sites": [str(settings.site) for settings in linked],
        },
    )
    return True


def other_sites(site: Site, account: StripeAccount) -> list[Site]:
    """The other sites that bill through ``account``."""
    related = account.test_settings if account.test_mode else account.live_settings
    return [s.site for s in related.exclude(site=site).select_related("site")]


def open_invoices(site: Site, account: StripeAccount) -> int:
    """How many of the site's invoices on ``account`` can still be paid."""
    return account.invoices.filter(site=site, status__in=OPEN_STATUSES).count()


def may_delete_on_stripe(site: Site, account: StripeAccount) -> bool:
    """Whether unlinking may also delete the account on Stripe.

    Only a test account that is still connected, that no other site uses and that no
    open invoice needs; a live one never -- its money and history belong to the
    account holder.
    """
    if not account.test_mode or account.deauthorized_at is not None:
        return False
    if other_sites(site, account):
        return False
    return not account.invoices.filter(status__in=OPEN_STATUSES).exists()


def delete_test_account(account: StripeAccount) -> None:
    """Delete the test account on Stripe; keep the record, marked gone, for its invoices.

    Raises :class:`~..gateway.GatewayError` (and refuses a live account) with nothing
    changed.
    """
    gateway.delete_account(test_mode=account.test_mode, account_id=account.stripe_id)
    values = {"deauthorized_at": timezone.now(), "charges_enabled": False, "payouts_enabled": False}
    StripeAccount.objects.filter(pk=account.pk).update(**values)
    for name, value in values.items():
        setattr(account, name, value)


# --- helpers -----------------------------------------------------------------------------


def _slot(account: StripeAccount) -> str:
    return "test_account" if account.test_mode else "live_account"


def _log_data(site: Site, account: StripeAccount, **extra: Any) -> dict[str, Any]:
    return {
        "site_id": site.pk,
        "site": str(site),
        "stripe_id": account.stripe_id,
        "mode": account.mode,
        **extra,
    }


def attached_at(settings: ClientBillingSettings, account: StripeAccount) -> tuple[datetime, Any]:
    """When ``account`` was last attached to the settings' site, and by whom.

    Read from the site's log (the entry :func:`attach` writes), since one account may
    serve several sites and its ``connected_at`` is when it was first connected at all;
    an account attached without a log entry (before the log existed, or by site code)
    falls back to that.
    """
    from wagtail.log_actions import registry

    entry = (
        registry.get_logs_for_instance(settings)
        .filter(action=CONNECTED_ACTION, data__stripe_id=account.stripe_id)
        .select_related("user")
        .order_by("-timestamp", "-pk")
        .first()
    )
    if entry is None:
        return account.connected_at, account.connected_by
    return entry.timestamp, entry.user
