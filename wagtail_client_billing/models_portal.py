"""The client portal's revocation version of each client (see :mod:`.portal_links`).

A row of its own beside :class:`~.models_clients.Client`, made the first time an editor
revokes a client's links: a client without one is at version 1.

Imported by :mod:`.models` (Django finds the app's models there).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class ClientPortalLinks(models.Model):
    """The version a client's portal links must carry to open the portal.

    Attributes:
        version: the links carry it; "Revoke portal links" increments it, so every link
            made before stops working.
        revoked_at: when an editor last revoked them.
    """

    client = models.OneToOneField(
        "wagtail_client_billing.Client",
        verbose_name=_("client"),
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="portal_links",
    )
    version = models.PositiveIntegerField(_("links version"), default=1)
    revoked_at = models.DateTimeField(_("portal links revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("client portal links")
        verbose_name_plural = _("client portal links")

    def __str__(self) -> str:
        return f"{self.client_id} v{self.version}"
