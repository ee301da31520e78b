"""The names of this app's own Wagtail hooks, and the one helper that runs them.

Register a function for one of these names in your project's ``wagtail_hooks.py``::

    from wagtail import hooks

    @hooks.register("client_billing_checkout_params")
    def add_tax_rate(invoice, params):
        params["line_items"][0]["tax_rates"] = ["txr_123"]
        return params

``docs/hooks.md`` documents each hook's arguments and return value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wagtail import hooks
from wagtail.models import Site

if TYPE_CHECKING:
    from django.db.models import QuerySet

#: ``(request, site) -> bool``: may this user use Client Billing on this site?
CAN_USE = "client_billing_can_use"
#: ``(user, sites_queryset) -> queryset``: the sites a user may bill for.
SITES_FOR_USER = "client_billing_sites_for_user"
#: ``(request, invoice) -> None``: adjust an invoice before it is saved, or raise ValidationError.
BEFORE_CREATE_INVOICE = "client_billing_before_create_invoice"
#: ``(invoice, params) -> params``: adjust Checkout Session parameters before they are sent.
CHECKOUT_PARAMS = "client_billing_checkout_params"
#: ``(invoice, message) -> None``: adjust the invoice email before it goes.
EMAIL_MESSAGE = "client_billing_email_message"
#: ``(invoice, old, new, source) -> None``: after any status change, on commit.
INVOICE_STATUS_CHANGED = "client_billing_invoice_status_changed"

#: ``(invoice, dispute, what) -> None``: a dispute was opened, updated or closed, on commit.
DISPUTE_CHANGED = "client_billing_dispute_changed"
#: ``(invoice, what) -> None``: a subscription was cancelled, its cancellation scheduled or
#: undone, a renewal failed, or its state changed, on commit.
SUBSCRIPTION_CHANGED = "client_billing_subscription_changed"

ALL_HOOKS = (
    CAN_USE,
    SITES_FOR_USER,
    BEFORE_CREATE_INVOICE,
    CHECKOUT_PARAMS,
    EMAIL_MESSAGE,
    INVOICE_STATUS_CHANGED,
    DISPUTE_CHANGED,
    SUBSCRIPTION_CHANGED,
)


def get(name: str) -> list[Callable[..., Any]]:
    """The functions registered for one of this app's hooks, in registration order."""
    if name not in ALL_HOOKS:
        raise ValueError(f"{name!r} is not a wagtail_client_billing hook")
    return list(hooks.get_hooks(name))


def run(name: str, *args: Any) -> None:
    """Call every function registered for ``name`` with ``args``, ignoring return values."""
    for fn in get(name):
        fn(*args)


def fold(name: str, value: Any, *args: Any) -> Any:
    """Thread ``value`` through every function registered for ``name``.

    Each function gets ``(*args, value)`` and returns the new value; one that returns
    ``None`` leaves the value as it was (so it may adjust it in place).
    """
    for fn in get(name):
        result = fn(*args, value)
        if result is not None:
            value = result
    return value


def all_allow(name: str, *args: Any) -> bool:
    """True unless a function registered for ``name`` returns a falsy value."""
    return all(fn(*args) for fn in get(name))


def narrows_sites() -> bool:
    """Whether a ``client_billing_sites_for_user`` hook is registered at all.

    Without one nothing is filtered, so the common case adds no subquery to the
    listings, however large.
    """
    return bool(get(SITES_FOR_USER))


def sees_every_site(user: Any) -> bool:
    """Whether ``user`` may see what belongs to no single site (account-level records).

    True without a ``client_billing_sites_for_user`` hook, and for superusers: a record
    that may concern several clients' sites is shown only to someone who may see them all.
    """
    return not narrows_sites() or bool(getattr(user, "is_superuser", False))


def sites_for_user(user: Any) -> QuerySet[Site]:
    """The sites ``user`` may bill for: every site, unless a hook narrows them.

    The ``client_billing_sites_for_user`` hook gets ``(user, sites)`` and returns a
    queryset (see ``docs/hooks.md``). :mod:`.scope` builds every screen's scope on this;
    it lives here, beside the hooks, so that the models' log entry manager can use it too.
    """
    sites: QuerySet[Site] = fold(SITES_FOR_USER, Site.objects.all(), user)
    return sites
