"""Who may see and do what on which site: the one access scope every screen uses.

The scope is the set of sites a user may bill for: every site, narrowed by the
``client_billing_sites_for_user`` hook (see ``docs/hooks.md``), as
:func:`~.hooks.sites_for_user` folds it (importable from here). Each screen, chooser,
report and export that lists invoices, accounts, pages or log entries asks this module,
and each site-level action asks :func:`can_use_client_billing`, so there is one answer
to "may this user bill on this site", not one per screen.

Permissions (may this user add invoices, connect accounts) are a separate question,
answered by :mod:`.permissions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from wagtail.models import Page, Site

from . import hooks
from .hooks import narrows_sites, sees_every_site, sites_for_user
from .models import Client, Invoice, InvoiceRollup, Product, StripeAccount, WebhookEvent

if TYPE_CHECKING:
    from django.http import HttpRequest


def can_use_client_billing(request: HttpRequest, site: Site) -> bool:
    """Whether this request's user may bill on ``site``: the one site-level check.

    False when the ``client_billing_sites_for_user`` hook leaves ``site`` out of the
    user's sites, or as soon as one ``client_billing_can_use`` hook returns a falsy
    value; true when neither hook is registered. It says nothing about the user's
    permissions (:mod:`.permissions` does).
    """
    if not site_in_scope(request.user, site):
        return False
    return hooks.all_allow(hooks.CAN_USE, request, site)


def site_in_scope(user: Any, site: Site) -> bool:
    """Whether the ``client_billing_sites_for_user`` hook leaves ``site`` to ``user``
    (always true when no such hook is registered); for code that has a user but no
    request, such as a form."""
    return not narrows_sites() or sites_for_user(user).filter(pk=site.pk).exists()


def sites_in_scope(user: Any, sites: QuerySet[Site]) -> QuerySet[Site]:
    """``sites`` less those the ``client_billing_sites_for_user`` hook keeps from ``user``
    (all of them when no such hook is registered)."""
    if not narrows_sites():
        return sites
    return sites.filter(pk__in=sites_for_user(user).values("pk"))


def site_choices(user: Any) -> QuerySet[Site]:
    """The sites ``user`` may bill for, as a site field or filter offers them: by name."""
    return sites_for_user(user).order_by("site_name", "hostname")


def invoices_for_user(user: Any, queryset: QuerySet[Invoice] | None = None) -> QuerySet[Invoice]:
    """``queryset`` (default: every invoice) limited to the sites ``user`` may bill for."""
    queryset = Invoice.objects.all() if queryset is None else queryset
    if not narrows_sites():
        return queryset
    return queryset.filter(site__in=sites_for_user(user).values("pk"))


def webhook_events_for_user(
    user: Any, queryset: QuerySet[WebhookEvent] | None = None
) -> QuerySet[WebhookEvent]:
    """Webhook events ``user`` may see: those about invoices of sites they may bill for.

    An editor narrowed to some sites sees only their invoices' events, not
    account-level events, which may concern other clients' accounts.
    """
    queryset = WebhookEvent.objects.all() if queryset is None else queryset
    if sees_every_site(user):
        return queryset
    return queryset.filter(invoice__site__in=sites_for_user(user).values("pk"))


def attached_to(sites: QuerySet[Site]) -> Q:
    """A filter on :class:`~.models.StripeAccount`: attached (test or live) to one of ``sites``."""
    return Q(test_settings__site__in=sites) | Q(live_settings__site__in=sites)


def accounts_for_user(
    user: Any,
    queryset: QuerySet[StripeAccount] | None = None,
    *,
    sites: QuerySet[Site] | None = None,
) -> QuerySet[StripeAccount]:
    """Stripe accounts ``user`` may bill through: those attached to one of ``sites``
    (default: the sites they may bill for), and those they connected themselves that no
    other site uses (connected, then unlinked).

    A superuser gets ``queryset`` as it is. The result may hold an account twice (it can
    serve two sites): call ``distinct()`` before showing it.
    """
    queryset = StripeAccount.objects.all() if queryset is None else queryset
    if getattr(user, "is_superuser", False):
        return queryset
    sites = sites_for_user(user) if sites is None else sites
    others = Site.objects.exclude(pk__in=sites.values("pk"))
    used_elsewhere = StripeAccount.objects.filter(attached_to(others)).values("pk")
    return queryset.filter(attached_to(sites) | (Q(connected_by=user) & ~Q(pk__in=used_elsewhere)))


def pages_for_user(user: Any, *, site: Site | None = None) -> QuerySet[Page]:
    """The pages of the sites ``user`` may bill for (of ``site`` alone, when given), drafts
    included: each site's root page and everything under it, in tree order.

    Pages that belong to no site, or to another client's site, are never offered.
    """
    sites = sites_for_user(user)
    if site is not None:
        sites = sites.filter(pk=site.pk)
    roots = Page.objects.filter(pk__in=sites.values("root_page_id")).values_list("path", flat=True)
    under = Q()
    for path in roots:
        under |= Q(path__startswith=path)
    if not under:
        return Page.objects.none()
    return Page.objects.filter(under).order_by("path")


def split_sites(user: Any, sites: list[Site]) -> tuple[list[Site], int]:
    """``sites`` as ``user`` may name them: those they may bill for, and how many others.

    A screen that says which sites share an account names only the user's own and
    counts the rest, so an editor limited to one client learns no other client's name.
    """
    if not narrows_sites():
        return list(sites), 0
    own = set(
        sites_for_user(user).filter(pk__in=[s.pk for s in sites]).values_list("pk", flat=True)
    )
    shown = [site for site in sites if site.pk in own]
    return shown, len(sites) - len(shown)


def products_for_user(user: Any, queryset: QuerySet[Product] | None = None) -> QuerySet[Product]:
    """Catalogue products of the sites ``user`` may bill for: a site's catalogue is that
    site's, as its invoices are."""
    queryset = Product.objects.all() if queryset is None else queryset
    if not narrows_sites():
        return queryset
    return queryset.filter(site__in=sites_for_user(user).values("pk"))


def rollups_for_user(user: Any, *, site: Site | None = None) -> QuerySet[InvoiceRollup]:
    """The invoice rollup's buckets (:mod:`.rollup`) that add up what ``user`` may see,
    as :func:`invoices_for_user` would list it: those of every site together when no
    hook narrows the sites, else those of each site they may bill for; of ``site``
    alone when given (nothing if it is not theirs)."""
    buckets = InvoiceRollup.objects.all()
    if site is not None:
        if not site_in_scope(user, site):
            return buckets.none()
        return buckets.filter(site_id=site.pk)
    if not narrows_sites():
        return buckets.filter(site_id=InvoiceRollup.ALL_SITES)
    return buckets.filter(site_id__in=sites_for_user(user).values("pk"))


def clients_for_user(user: Any, queryset: QuerySet[Client] | None = None) -> QuerySet[Client]:
    """The clients ``user`` may see: through the invoices they may see.

    The directory is the installation's, but an editor whom the
    ``client_billing_sites_for_user`` hook keeps to some sites sees only the clients
    with an invoice (of any status) on one of those sites; a client with none stays
    invisible, even if the editor types its address. A client with no invoice at all
    yet (just added) is visible to the editor who added it and to those who see every
    site (:func:`~.hooks.sees_every_site`). Without the hook everyone sees every client.
    """
    queryset = Client.objects.all() if queryset is None else queryset
    if not narrows_sites():
        return queryset
    billed_here = Exists(
        Invoice.objects.filter(client=OuterRef("pk"), site__in=sites_for_user(user).values("pk"))
    )
    unbilled = ~Exists(Invoice.objects.filter(client=OuterRef("pk")))
    if sees_every_site(user):
        return queryset.filter(billed_here | unbilled)
    if getattr(user, "pk", None) is None:
        return queryset.filter(billed_here)
    return queryset.filter(billed_here | (unbilled & Q(created_by=user)))
