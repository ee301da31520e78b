"""The client portal: its signed links, what a client sees in it, and Stripe's customer portal.

**Links** (:mod:`..portal_links`, below the emails, which carry one) are signed,
expire, are bound to one client and are revoked by :func:`revoke_links`. The link is
checked again on every request of the portal (the portal keeps it in a cookie scoped to
its own path), so expiry and revocation apply to a portal left open.

**Listing.** :func:`invoices_for` is the one query of what a client sees: their own
invoices (``Invoice.client``), on every site, never a draft or a deleted one. Every
portal page starts from it, so an id of another client's invoice finds nothing.

**Stripe's customer portal.** :func:`customer_portal_url` makes a billing portal session
on the subscription's connected account (``Stripe-Account``) for the subscription's
customer, with the configuration the app keeps per account
(:func:`portal_configuration`: made on first use, made again when Stripe no longer has
it). What the client does there comes back as ``customer.subscription.*`` events, which
the webhook handlers apply like any other (``billing.subscriptions.apply_state``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from wagtail.log_actions import log
from wagtail.models import Site

from .. import emails, gateway, taskqueue
from ..models import (
    Client,
    ClientBillingSettings,
    ClientPortalLinks,
    Invoice,
    InvoiceStatus,
    StripeAccount,
)

logger = logging.getLogger(__name__)

#: The log action of an editor's "Revoke portal links".
REVOKED_ACTION = "wagtail_client_billing.portal_links_revoked"

#: Statuses a client never sees in the portal: a draft was not sent, a deleted one withdrawn.
HIDDEN_STATUSES = (InvoiceStatus.DRAFT, InvoiceStatus.DELETED)


def revoke_links(client: Client, user: Any = None) -> ClientPortalLinks:
    """Make every portal link of ``client`` made until now stop working (logged)."""
    with transaction.atomic():
        links, _created = ClientPortalLinks.objects.get_or_create(client=client)
        ClientPortalLinks.objects.filter(pk=links.pk).update(
            version=F("version") + 1, revoked_at=timezone.now()
        )
    links.refresh_from_db()
    log(instance=client, action=REVOKED_ACTION, user=user)
    return links


# --- what a client sees --------------------------------------------------------------------


def invoices_for(client: Client) -> QuerySet[Invoice]:
    """Every invoice the client may see in the portal, newest first: theirs, on any site,
    sent (not a draft) and not deleted."""
    return (
        Invoice.objects.filter(client=client)
        .exclude(status__in=HIDDEN_STATUSES)
        .select_related("site", "account")
        .order_by("-created_at", "-pk")
    )


def invoice_for(client: Client, pk: Any) -> Invoice | None:
    """One of the client's invoices by its id, or None (another client's, or none)."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    return invoices_for(client).filter(pk=pk).first()


# --- "send me a new link" ------------------------------------------------------------------


def request_link(email: str, site: Site | None) -> None:
    """Queue the email of a new portal link to ``email``, known or not: the task finds
    the client (or nothing), so the request costs the same either way."""
    taskqueue.on_commit(
        f"{taskqueue.TASKS}.send_portal_link", email.strip()[:254], site.pk if site else None
    )


def client_for_email(email: str) -> Client | None:
    """The client whose billing address ``email`` is (any letter case), if one is."""
    return Client.objects.filter(email__iexact=email.strip(), erased_at__isnull=True).first()


def link_site(client: Client, site_id: int | None) -> Site | None:
    """The site whose address a new link is built on: the one it was asked on if the
    client has invoices there, else the site of their newest invoice."""
    invoices = invoices_for(client)
    if site_id is not None and invoices.filter(site_id=site_id).exists():
        return Site.objects.filter(pk=site_id).first()
    newest = invoices.first()
    return newest.site if newest is not None else None


def send_link(client_id: int, site_id: int | None) -> tuple[str, emails.DeliveryError | None]:
    """Email the client a new portal link (``what`` happened, and the error if it failed).
    A client without a visible invoice gets nothing: the portal would be empty."""
    client = Client.objects.filter(pk=client_id, erased_at__isnull=True).first()
    if client is None:
        return "no client", None
    site = link_site(client, site_id)
    if site is None:
        return "no invoices", None
    error = emails.send_portal_link(client, site)
    return ("sent" if error is None else error.kind), error


# --- Stripe's customer portal --------------------------------------------------------------


class PortalUnavailable(Exception):
    """Stripe's customer portal cannot be opened for this invoice; ``str()`` is a
    sentence for the client; ``retryable`` says whether a later try may work."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def portal_configuration_params(account: StripeAccount) -> dict[str, Any]:
    """The configuration's parameters for ``account``; its default return URL is the
    portal on the first site the account bills for (each session names its own)."""
    site = (
        Site.objects.filter(pk__in=_account_site_ids(account)).order_by("pk").first()
        or Site.objects.filter(is_default_site=True).first()
    )
    root = site.root_url.rstrip("/") if site is not None else ""
    return gateway.portal_configuration_params(
        privacy_policy_url=account.privacy_policy_url,
        terms_of_service_url=account.terms_of_service_url,
        default_return_url=root + reverse("wagtail_client_billing:portal"),
    )


def _account_site_ids(account: StripeAccount) -> list[int]:
    rows = ClientBillingSettings.objects.filter(live_account=account) | (
        ClientBillingSettings.objects.filter(test_account=account)
    )
    return list(rows.values_list("site_id", flat=True))


def portal_configuration(account: StripeAccount, *, replace: str = "") -> str:
    """The id of ``account``'s customer portal configuration, made on first use.

    ``replace`` is an id Stripe said it no longer has: a new configuration is made
    (another idempotency key) and stored in its place, by compare-and-set, so two
    clients racing store one of the two and neither overwrites a newer one.
    """
    current = account.portal_configuration_id
    if current and current != replace:
        return current
    made = gateway.create_portal_configuration(
        test_mode=account.test_mode,
        account_id=account.stripe_id,
        params=portal_configuration_params(account),
        replaces=replace,
    )
    StripeAccount.objects.filter(pk=account.pk, portal_configuration_id=current).update(
        portal_configuration_id=made
    )
    account.refresh_from_db(fields=["portal_configuration_id"])
    return account.portal_configuration_id or made


def customer_portal_url(invoice: Invoice, return_url: str) -> str:
    """A Stripe customer portal session's URL for ``invoice``'s subscription, on its
    connected account, for its customer; the client comes back to ``return_url``.

    Raises:
        PortalUnavailable: not a subscription with a customer, the account disconnected,
            or Stripe refused or could not be reached.
    """
    if not (invoice.is_recurring and invoice.subscription_id and invoice.customer_id):
        # Translators: client-facing.
        raise PortalUnavailable(_("This invoice has no subscription to manage."))
    account = invoice.account
    if account.deauthorized_at is not None:
        raise PortalUnavailable(
            # Translators: client-facing.
            _("Card and cancellation changes are not available online; please contact us.")
        )
    try:
        configuration = portal_configuration(account)
        try:
            return _session(invoice, configuration, return_url)
        except gateway.InvalidRequest as exc:
            if exc.param != "configuration":
                raise
            # Deactivated or gone on Stripe: make a new one and try once more.
            configuration = portal_configuration(account, replace=configuration)
            return _session(invoice, configuration, return_url)
    except gateway.GatewayError as exc:
        logger.warning("Could not open Stripe's customer portal for %s: %s", invoice, exc)
        raise PortalUnavailable(
            # Translators: client-facing.
            _("Stripe's customer portal could not be opened just now. Please try again later."),
            retryable=exc.retryable,
        ) from exc


def _session(invoice: Invoice, configuration: str, return_url: str) -> str:
    return gateway.create_portal_session(
        test_mode=invoice.test_mode,
        account_id=invoice.account.stripe_id,
        customer_id=invoice.customer_id,
        configuration_id=configuration,
        return_url=return_url,
    )
