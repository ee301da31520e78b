"""What differs between the Wagtail releases this app supports (7.0 LTS to 8).

The rest of the package imports these names and reads as if one Wagtail existed. When
the floor in ``pyproject.toml`` passes the release that made a shim necessary, drop it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet
    from wagtail.admin.viewsets.model import ModelViewSet
    from wagtail.models import Site

#: The model that foreign keys to "a page" point at. Wagtail 8 made it swappable
#: (``WAGTAIL_PAGE_MODEL``); Wagtail 7 has no such setting and always uses its own.
PAGE_MODEL: str = getattr(settings, "WAGTAIL_PAGE_MODEL", "wagtailcore.Page")


def pk_path_converter(viewset: ModelViewSet) -> str:
    """The path converter for the primary key in a ``ModelViewSet``'s URLs.

    Wagtail 7.3 picks it by the key's type (``ModelViewSet.pk_path_converter``); earlier
    releases route every model's key as ``str``, so that is what their URLs must say.
    """
    return getattr(viewset, "pk_path_converter", "str")


def site_setting_permission_policy(model: type[Model]) -> Any:
    """The permission policy Wagtail applies to the site setting ``model``.

    From Wagtail 7.1 on, a site setting is granted globally or site by site
    (``GroupSitePermission``) and the setting's own policy answers for both; 7.0 knows
    only the global Django permission, which :class:`_GlobalSettingPolicy` asks.
    """
    if hasattr(model, "get_permission_policy"):
        return model.get_permission_policy()
    return _GlobalSettingPolicy(model)


class _GlobalSettingPolicy:
    """Wagtail 7.0: the questions a site setting's policy answers, from the global grant."""

    def __init__(self, model: type[Model]) -> None:
        self._perm = f"{model._meta.app_label}.%s_{model._meta.model_name}"

    def user_has_permission(self, user: Any, action: str) -> bool:
        return bool(user.has_perm(self._perm % action))

    def user_has_permission_for_instance(self, user: Any, action: str, instance: Any) -> bool:
        return self.user_has_permission(user, action)

    def sites_user_has_permission_for(self, user: Any, action: str) -> QuerySet[Site]:
        from wagtail.models import Site

        if self.user_has_permission(user, action):
            return Site.objects.all()
        return Site.objects.none()


def register_permission_policy(model: type[Model], policy: Any) -> None:
    """Make ``policy`` the one Wagtail's admin uses for ``model``.

    Wagtail 8 looks policies up in a registry (``wagtail.permissions``); Wagtail 7 reads
    the viewset's ``permission_policy`` attribute, which the viewsets set as well.
    """
    try:
        from wagtail.permissions import register_permission_policy as register
    except ImportError:  # Wagtail 7
        return
    register(model, policy, exact_class=True)
