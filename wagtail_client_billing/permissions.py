"""Who may use Client Billing, and who may connect Stripe accounts.

Two questions, kept apart because they have different owners:

* :func:`~.scope.can_use_client_billing` asks the *site developer*: the
  ``client_billing_sites_for_user`` and ``client_billing_can_use`` hooks (see
  :mod:`.hooks`) may keep a user to some sites, or switch the whole feature off for a
  site or a user -- for example to keep it to a paid plan. It lives in :mod:`.scope`
  and is importable from here too.
* :func:`user_can_connect` asks the *permissions* an administrator gave the user: the
  app's ``connect_stripe_account`` permission plus the right to change the site's
  Client Billing settings. Connecting an account changes where a site's money goes, so
  neither permission alone is enough.

Every admin view that touches connected accounts checks both (:func:`can_connect_for_site`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from wagtail.permission_policies import ModelPermissionPolicy

from .compat import site_setting_permission_policy
from .scope import can_use_client_billing, sites_in_scope

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest
    from wagtail.models import Site

#: The app's own permission, ``app_label.codename``.
CONNECT_PERMISSION = "wagtail_client_billing.connect_stripe_account"
#: Django's change permission on the site setting (global, or per site in Wagtail).
CHANGE_SETTINGS_PERMISSION = "wagtail_client_billing.change_clientbillingsettings"


def invoice_permission_policy() -> Any:
    """The permission policy for invoices (Wagtail >= 7.1 has a registry; 7.0 does not)."""
    from .models import Invoice

    try:
        from wagtail.permissions import policy_registry
    except ImportError:  # pragma: no cover - Wagtail 7.0
        from wagtail.permission_policies import ModelPermissionPolicy

        return ModelPermissionPolicy(Invoice)
    return policy_registry.get_by_type(Invoice)


#: Actions nobody may take on a stored webhook event.
READ_ONLY = frozenset({"add", "change", "delete"})


class WebhookEventPermissionPolicy(ModelPermissionPolicy):
    """Read-only for everyone; ``reprocess`` is granted by the model's change permission."""

    def user_has_permission(self, user: Any, action: str) -> bool:
        if action in READ_ONLY:
            return False
        if action == "reprocess":
            action = "change"
        return super().user_has_permission(user, action)

    def users_with_any_permission(self, actions):
        actions = ["change" if a == "reprocess" else a for a in actions if a not in READ_ONLY]
        return super().users_with_any_permission(actions)


@functools.cache
def webhook_event_permission_policy() -> WebhookEventPermissionPolicy:
    """The webhook event log's one policy, registered with Wagtail in ``AppConfig.ready()``
    and set on its viewset (Wagtail 7 reads it there)."""
    from .models import WebhookEvent

    return WebhookEventPermissionPolicy(WebhookEvent)


def _settings_policy():
    """Wagtail's policy for the setting: global grants, and per-site ones where Wagtail
    has them."""
    from .models import ClientBillingSettings

    return site_setting_permission_policy(ClientBillingSettings)


def user_can_change_settings(user, site: Site | None = None) -> bool:
    """Whether ``user`` may change Client Billing settings (of ``site``, or of any site)."""
    if not (user.is_authenticated and user.is_active):
        return False
    policy = _settings_policy()
    if site is None:
        return policy.user_has_permission(user, "change")
    return policy.user_has_permission_for_instance(user, "change", site)


def user_can_connect(user, site: Site | None = None) -> bool:
    """Whether ``user`` may connect, reuse, refresh and unlink Stripe accounts.

    Needs the app's ``connect_stripe_account`` permission and the change permission on
    the Client Billing settings -- of ``site`` when one is given, since Wagtail can grant
    that one site by site.
    """
    if not (user.is_authenticated and user.is_active):
        return False
    return user.has_perm(CONNECT_PERMISSION) and user_can_change_settings(user, site)


def can_connect_for_site(request: HttpRequest, site: Site) -> bool:
    """Both checks together: permission for ``site``, and the feature allowed there."""
    return user_can_connect(request.user, site) and can_use_client_billing(request, site)


def sites_user_can_connect_for(user) -> QuerySet[Site]:
    """The sites whose Client Billing settings ``user`` may change, within the sites they
    may bill for (for the reuse select).

    A global settings permission covers every site; the access scope still keeps an
    editor the ``client_billing_sites_for_user`` hook limits to their own sites.
    """
    from wagtail.models import Site

    if not user_can_connect(user):
        return Site.objects.none()
    return sites_in_scope(user, _settings_policy().sites_user_has_permission_for(user, "change"))
