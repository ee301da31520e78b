"""What differs between the Wagtail releases this app supports (7.0 LTS to 8).

Everything else imports these names and reads as if one Wagtail existed. Drop a shim
here when the floor in ``pyproject.toml`` passes the release that needed it.
"""

from __future__ import annotations

from django.conf import settings

#: The page model that foreign keys to "a page" point at. Wagtail 8 made it swappable
#: (``WAGTAIL_PAGE_MODEL``); Wagtail 7 has no such setting and always uses its own.
PAGE_MODEL: str = getattr(settings, "WAGTAIL_PAGE_MODEL", "wagtailcore.Page")


def pk_path_converter(viewset) -> str:
    """The path converter for the primary key in a ``ModelViewSet``'s URLs.

    Wagtail 7.1 picks it by the key's type (``ModelViewSet.pk_path_converter``); 7.0
    routes every model's key as ``str``, so that is what its URLs must say too.
    """
    return getattr(viewset, "pk_path_converter", "str")


def site_setting_permission_policy(model):
    """The permission policy Wagtail applies to a site setting ``model``.

    From Wagtail 7.1 on, a setting is granted globally or site by site
    (``GroupSitePermission``) and the setting's own policy answers for both; 7.0 knows
    only the global Django permission, which :class:`_GlobalSettingPolicy` asks.
    """
    if hasattr(model, "get_permission_policy"):
        return model.get_permission_policy()
    return _GlobalSettingPolicy(model)


class _GlobalSettingPolicy:
    """Wagtail 7.0: the questions a site setting's policy answers, from the global grant."""

    def __init__(self, model) -> None:
        self._label = f"{model._meta.app_label}.%s_{model._meta.model_name}"

    def user_has_permission(self, user, action: str) -> bool:
        return user.has_perm(self._label % action)

    def user_has_permission_for_instance(self, user, action: str, instance) -> bool:
        return self.user_has_permission(user, action)

    def sites_user_has_permission_for(self, user, action: str):
        from wagtail.models import Site

        if self.user_has_permission(user, action):
            return Site.objects.all()
        return Site.objects.none()
