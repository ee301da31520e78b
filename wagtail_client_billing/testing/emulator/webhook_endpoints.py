"""Webhook endpoints, and which of them each event is routed to.

API operations on ``/v1/webhook_endpoints`` and :meth:`WebhookEndpointsMixin.webhook_routes`,
the dispatcher's router: Stripe's rules for account and Connect endpoints, by mode.
"""

from __future__ import annotations

from typing import Any

from ...stripe_api import STRIPE_API_VERSION
from . import rules
from .accounts import connected_modes
from .delivery import Route
from .errors import StripeError
from .store import RequestContext, Store, is_url, merge_metadata, new_id, public


class WebhookEndpointsMixin(Store):
    """Webhook endpoints, mixed into :class:`~.core.EmulatorState`."""

    def _endpoint_for(self, endpoint_id: str, ctx: RequestContext) -> dict[str, Any]:
        """The endpoint if it belongs to this key's mode and ``Stripe-Account``, else 404."""
        endpoint = self.webhook_endpoints.get(endpoint_id)
        if (
            endpoint is None
            or endpoint["livemode"] != ctx.livemode
            or endpoint["_owner"] != ctx.account
        ):
            raise StripeError(
                f"No such webhook endpoint: '{endpoint_id}'",
                status=404,
                code="resource_missing",
                param="id",
            )
        return endpoint

    def create_webhook_endpoint(
        self,
        *,
        url: str,
        enabled_events: list[str],
        livemode: bool,
        connect: bool = False,
        api_version: str | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        owner: str | None = None,
        secret: str | None = None,
    ) -> dict[str, Any]:
        """Store a webhook endpoint; return it as the create call answers (with ``secret``).

        Stripe's object does not show whether an endpoint is a Connect endpoint (the
        ``connect`` parameter is write-only, and ``application`` stays ``null`` for
        endpoints the platform makes itself), so that lives in ``_connect``.
        """
        with self.lock:
            self._created_seq += 1
            endpoint_id = new_id("we_", 24)
            endpoint: dict[str, Any] = {
                "id": endpoint_id,
                "object": "webhook_endpoint",
                "api_version": api_version,
                "application": None,
                "created": self.now(),
                "description": description,
                "enabled_events": list(enabled_events),
                "livemode": livemode,
                "metadata": dict(metadata or {}),
                "status": "enabled",
                "url": url,
                "_connect": connect,
                "_owner": owner,
                "_secret": secret or "whsec_" + new_id("", 32),
                "_seq": self._created_seq,
            }
            self.webhook_endpoints[endpoint_id] = endpoint
            return {**public(endpoint), "secret": endpoint["_secret"]}

    def api_create_webhook_endpoint(
        self, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        # Stripe takes every released API version; an older SDK's list of them ends at
        # its own release, so the one the app is written for is taken whatever the SDK.
        version = params.get("api_version")
        if version == STRIPE_API_VERSION:
            params = {k: v for k, v in params.items() if k != "api_version"}
        p = {**self._validated("webhook_endpoint.create", params)}
        if version == STRIPE_API_VERSION:
            p["api_version"] = version
        if not is_url(p["url"]):
            raise StripeError("Invalid URL: must be a valid http(s) URL.", param="url")
        if not p["enabled_events"]:
            raise StripeError(
                "Missing required param: enabled_events.",
                code="parameter_missing",
                param="enabled_events",
            )
        ctx.executing = True
        return self.create_webhook_endpoint(
            url=p["url"],
            enabled_events=p["enabled_events"],
            livemode=ctx.livemode,
            connect=p.get("connect", False),
            api_version=p.get("api_version"),
            description=p.get("description") or None,
            metadata=merge_metadata({}, p.get("metadata")),
            owner=ctx.account,
        )

    def api_list_webhook_endpoints(
        self, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        p = self._validated("webhook_endpoint.list", params)
        endpoints = self._newest_first(self.webhook_endpoints, ctx, owner="_owner")
        return rules.paginate(
            endpoints, p, url="/v1/webhook_endpoints", object_name="webhook_endpoint", render=public
        )

    def api_retrieve_webhook_endpoint(
        self, endpoint_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("webhook_endpoint.retrieve", params)
        return public(self._endpoint_for(endpoint_id, ctx))

    def api_update_webhook_endpoint(
        self, endpoint_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        p = self._validated("webhook_endpoint.update", params)
        if "url" in p and not is_url(p["url"]):
            raise StripeError("Invalid URL: must be a valid http(s) URL.", param="url")
        if "enabled_events" in p and not p["enabled_events"]:
            raise StripeError(
                "Invalid array: enabled_events must not be empty.", param="enabled_events"
            )
        ctx.executing = True
        endpoint = self._endpoint_for(endpoint_id, ctx)
        if "metadata" in p:
            merged = merge_metadata(endpoint["metadata"], p["metadata"])
            rules.check_metadata_count(len(merged))
            endpoint["metadata"] = merged
        for name in ("url", "enabled_events"):
            if name in p:
                endpoint[name] = p[name]
        if "description" in p:
            endpoint["description"] = p["description"] or None
        if "disabled" in p:
            endpoint["status"] = "disabled" if p["disabled"] else "enabled"
        return public(endpoint)

    def api_delete_webhook_endpoint(
        self, endpoint_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("webhook_endpoint.delete", params)
        ctx.executing = True
        self._endpoint_for(endpoint_id, ctx)
        del self.webhook_endpoints[endpoint_id]
        self.endpoint_targets.pop(endpoint_id, None)
        return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}

    # -- routing events -----------------------------------------------------------

    def webhook_routes(self, event: dict[str, Any]) -> list[Route]:
        """The enabled webhook endpoints ``event`` goes to, oldest endpoint first.

        Stripe's rules: an account endpoint receives the events of its own account
        (the platform's, or the connected account it was made on with
        ``Stripe-Account``) in its own mode.  A Connect endpoint receives the events
        of connected accounts, by how the account is connected to the platform: live
        events go to live endpoints; test events go to test endpoints when the account
        is connected in test mode, and to live endpoints when it is connected in live
        mode -- so an account connected in both modes sends its test events to both
        (https://support.stripe.com/questions/connect-account-webhook-configurations).
        """
        with self.lock:
            account_id = event.get("account")
            livemode = bool(event.get("livemode"))
            routes = []
            for endpoint in sorted(self.webhook_endpoints.values(), key=lambda e: e["_seq"]):
                if endpoint["status"] != "enabled":
                    continue
                if not _listens_to(endpoint["enabled_events"], event["type"]):
                    continue
                if endpoint["_connect"]:
                    if account_id is None or endpoint["_owner"] is not None:
                        continue
                    if not self._connect_endpoint_receives(endpoint, account_id, livemode):
                        continue
                elif endpoint["_owner"] != account_id or endpoint["livemode"] != livemode:
                    continue
                routes.append(
                    Route(
                        target=self.endpoint_targets.get(endpoint["id"], endpoint["url"]),
                        secret=endpoint["_secret"],
                        api_version=endpoint["api_version"] or self.api_version,
                        endpoint=endpoint["id"],
                    )
                )
            return routes

    def _connect_endpoint_receives(
        self, endpoint: dict[str, Any], account_id: str, livemode: bool
    ) -> bool:
        if livemode:
            return bool(endpoint["livemode"])
        account = self.accounts.get(account_id)
        # An account the emulator no longer knows: as if connected in both modes.
        modes = set(connected_modes(account)) if account else {"live", "test"}
        return ("live" if endpoint["livemode"] else "test") in modes


def _listens_to(enabled_events: list[str], event_type: str) -> bool:
    """Whether an endpoint's ``enabled_events`` take ``event_type`` (``*`` takes all)."""
    return "*" in enabled_events or event_type in enabled_events
