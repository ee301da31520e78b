"""The client portal's links: signed, expiring, bound to one client, revocable.

A link carries ``{"c": <client pk>, "v": <the client's links version>}`` signed
with Django's :mod:`~django.core.signing` (``SECRET_KEY`` and its fallbacks, salt
:data:`SALT`, with the time it was made). It opens the portal of that one client while
it is younger than ``PORTAL_LINK_MAX_AGE`` and the client's version is still the one it
carries (:class:`~.models_portal.ClientPortalLinks`); an editor's "Revoke portal links" (``billing.portal.revoke_links``) bumps the
version. The emails (every client email carries a link) and the portal's views read
links from here.
"""

from __future__ import annotations

from django.core import signing
from django.urls import reverse
from wagtail.models import Site

from .conf import billing_settings
from .models import Client, ClientPortalLinks

#: The salt of the portal links' signatures: a signature made for anything else (another
#: use of ``signing`` in the project) never opens the portal.
SALT = "wagtail_client_billing.portal"


class LinkInvalid(Exception):
    """Not a portal link (a changed character, another salt, garbage)."""


class LinkExpired(Exception):
    """A genuine portal link that no longer opens the portal: too old, revoked, or its
    client is gone or erased."""


# --- links ---------------------------------------------------------------------------------


def make_token(client: Client) -> str:
    """A signed portal link token for ``client`` (URL-safe, no padding)."""
    return signing.dumps({"c": client.pk, "v": links_version(client.pk)}, salt=SALT)


def links_version(client_id: int) -> int:
    """The version a client's links carry now (1 until an editor first revokes them)."""
    found = ClientPortalLinks.objects.filter(client_id=client_id).values_list("version", flat=True)
    return found.first() or 1


def read_token(token: str) -> Client:
    """The client a portal link token opens.

    Raises:
        LinkInvalid: the token was not signed by this app for the portal.
        LinkExpired: it is older than ``PORTAL_LINK_MAX_AGE``, was revoked, or its client
            was deleted or erased.
    """
    if not token or len(token) > 512:
        raise LinkInvalid
    max_age = billing_settings.PORTAL_LINK_MAX_AGE
    try:
        payload = signing.loads(token, salt=SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise LinkExpired from None
    except signing.BadSignature:
        raise LinkInvalid from None
    if not isinstance(payload, dict):
        raise LinkInvalid
    client_id, version = payload.get("c"), payload.get("v")
    if not isinstance(client_id, int) or not isinstance(version, int):
        raise LinkInvalid
    client = Client.objects.filter(pk=client_id, erased_at__isnull=True).first()
    if client is None or links_version(client.pk) != version:
        raise LinkExpired
    return client


def portal_path(token: str) -> str:
    """The path that opens the portal with ``token``."""
    return reverse("wagtail_client_billing:portal_open", kwargs={"token": token})


def portal_url(client: Client, site: Site) -> str:
    """An absolute portal link for ``client``, built from ``site``'s root URL (never a
    request's Host header: the link goes into an email)."""
    return site.root_url.rstrip("/") + portal_path(make_token(client))
