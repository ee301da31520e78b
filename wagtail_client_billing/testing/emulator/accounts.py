"""Connected accounts, Account Links and the platform's own account.

API operations (``/v1/accounts``, ``/v1/account``, ``/v1/account_links``) and the test
controls that act for the account holder (finish onboarding, disconnect the platform,
connect in both modes, follow an onboarding link).
"""

from __future__ import annotations

import copy
from typing import Any

from . import platform, rules
from .errors import EmulatorError, StripeError
from .store import RequestContext, Store, is_url, mask_key, merge_metadata, new_id, public

#: What a new connected account still has to provide before it can take payments.
INITIAL_REQUIREMENTS = [
    "business_profile.mcc",
    "business_type",
    "external_account",
    "representative.first_name",
    "representative.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]

#: Default currency of an account, by country (Stripe derives it the same way).
COUNTRY_CURRENCY = {
    "US": "usd", "GB": "gbp", "JP": "jpy", "CA": "cad", "AU": "aud", "NZ": "nzd",
    "CH": "chf", "SE": "sek", "NO": "nok", "DK": "dkk", "PL": "pln", "CZ": "czk",
    "HU": "huf", "RO": "ron", "BG": "bgn", "SG": "sgd", "HK": "hkd", "MX": "mxn",
    "BR": "brl", "IN": "inr", "MY": "myr", "TH": "thb", "AE": "aed",
}  # fmt: skip


class AccountsMixin(Store):
    """Accounts and Account Links, mixed into :class:`~.core.EmulatorState`."""

    # -- the API -------------------------------------------------------------------

    def _account_for(self, account_id: str, ctx: RequestContext) -> dict[str, Any]:
        """The connected account ``account_id`` if this key may act on it.

        Stripe answers 403 for an account that does not exist, belongs to the other
        mode, or has disconnected the platform, with one message for all three (so a
        caller cannot probe which).
        """
        account = self.accounts.get(account_id)
        mode = "live" if ctx.livemode else "test"
        if account is None or mode not in connected_modes(account) or account["_deauthorized"]:
            raise StripeError(
                f"The provided key '{mask_key(ctx.api_key)}' does not have access to account "
                f"'{account_id}' (or that account does not exist). Application access may "
                "have been revoked.",
                status=403,
                code="account_invalid",
            )
        return account

    def api_create_account(self, *, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        p = self._validated("account.create", params)
        country = p.get("country", "US").upper()
        controller = p.get("controller", {})
        rules.check_country(country, p.get("tos_acceptance", {}).get("service_agreement"))
        rules.check_controller(controller)
        ctx.executing = True
        account_type = p.get("type") or ("none" if controller else "standard")
        account_id = new_id("acct_", 16)
        business_profile = {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "name": None,
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
            **p.get("business_profile", {}),
        }
        due = [r for r in INITIAL_REQUIREMENTS if not self._provided(p, r)]
        if not business_profile.get("url"):
            due.insert(1, "business_profile.url")
        account = {
            "id": account_id,
            "object": "account",
            "business_profile": business_profile,
            "business_type": p.get("business_type"),
            "capabilities": {name: "inactive" for name in p.get("capabilities", {}) if name},
            "charges_enabled": False,
            "controller": {
                "fees": {"payer": controller.get("fees", {}).get("payer", "account")},
                "is_controller": True,
                "losses": {"payments": controller.get("losses", {}).get("payments", "stripe")},
                "requirement_collection": controller.get("requirement_collection", "stripe"),
                "stripe_dashboard": {
                    "type": controller.get("stripe_dashboard", {}).get("type", "full")
                },
                "type": "application",
            },
            "country": country,
            "created": self._created(),
            "default_currency": p.get("default_currency") or COUNTRY_CURRENCY.get(country, "usd"),
            "details_submitted": False,
            "email": p.get("email"),
            "external_accounts": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/accounts/{account_id}/external_accounts",
            },
            "future_requirements": _requirements([]),
            "livemode": ctx.livemode,
            "metadata": merge_metadata({}, p.get("metadata")),
            "payouts_enabled": False,
            "requirements": _requirements(due, disabled_reason="requirements.past_due"),
            "settings": {
                "dashboard": {"display_name": business_profile.get("name"), "timezone": "Etc/UTC"},
                "payments": {"statement_descriptor": None},
            },
            "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
            "type": account_type,
            "_connected_modes": ["live" if ctx.livemode else "test"],
            "_deauthorized": False,
        }
        self.accounts[account_id] = account
        return public(account)

    @staticmethod
    def _provided(p: dict[str, Any], requirement: str) -> bool:
        node: Any = p
        for part in requirement.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def api_retrieve_account(
        self, account_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("account.retrieve", params)
        return public(self._account_for(account_id, ctx))

    def api_retrieve_current_account(
        self, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        """The key's own account; with ``Stripe-Account``, that connected account."""
        self._validated("account.retrieve_current", params)
        if ctx.account is not None:
            return public(self._account_for(ctx.account, ctx))
        return platform.platform_account(self.platform_name)

    def api_list_accounts(self, *, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """The accounts connected to the platform in the key's mode, newest first; one that
        disconnected the platform is no longer listed."""
        p = self._validated("account.list", params)
        mode = "live" if ctx.livemode else "test"
        accounts = [
            a
            for a in reversed(list(self.accounts.values()))
            if mode in connected_modes(a) and not a["_deauthorized"]
        ]
        if ctx.account is not None:  # a connected account has no connected accounts
            accounts = []
        return rules.paginate(accounts, p, url="/v1/accounts", object_name="account", render=public)

    def api_update_account(
        self, account_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        p = self._validated("account.update", params)
        ctx.executing = True
        account = self._account_for(account_id, ctx)
        previous: dict[str, Any] = {}
        if "metadata" in p:
            merged = merge_metadata(account["metadata"], p["metadata"])
            rules.check_metadata_count(len(merged))
        for key, value in p.items():
            if key == "metadata":
                previous["metadata"] = dict(account["metadata"])
                account["metadata"] = merged
            elif key == "business_profile" and isinstance(value, dict):
                previous["business_profile"] = dict(account["business_profile"])
                account["business_profile"].update(value)
                if value.get("url"):
                    _clear_requirement(account, "business_profile.url")
            elif key in ("email", "business_type", "default_currency"):
                previous[key] = account.get(key)
                account[key] = value
        if previous:
            self.emit(
                "account.updated",
                account,
                account=account_id,
                livemode=account["livemode"],
                ctx=ctx,
                previous_attributes=previous,
            )
        return public(account)

    def api_delete_account(
        self, account_id: str, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        self._validated("account.delete", params)
        ctx.executing = True
        account = self._account_for(account_id, ctx)
        if account["livemode"]:
            raise StripeError(
                "Live-mode accounts cannot be deleted through the emulator; Stripe only "
                "deletes live accounts whose balances are all zero.",
                param="account",
            )
        del self.accounts[account_id]
        return {"id": account_id, "object": "account", "deleted": True}

    def api_create_account_link(
        self, *, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        p = self._validated("account_link.create", params)
        if p["type"] == "account_onboarding" and "return_url" not in p:
            raise StripeError(
                "Missing required param: return_url.", code="parameter_missing", param="return_url"
            )
        for name in ("refresh_url", "return_url"):
            if name in p and not is_url(p[name]):
                raise StripeError("Not a valid URL", code="url_invalid", param=name)
        ctx.executing = True
        account = self._account_for(p["account"], ctx)
        token = new_id("", 32)
        created = self.now()
        link = {
            "object": "account_link",
            "created": created,
            "expires_at": created + 300,
            "url": f"{self.public_url}/_hosted/onboarding/{token}",
            "_account": account["id"],
            "_type": p["type"],
            "_refresh_url": p.get("refresh_url"),
            "_return_url": p.get("return_url"),
            "_used": False,
        }
        self.account_links[token] = link
        return public(link)

    # -- test controls -------------------------------------------------------------

    def account(self, account_id: str) -> dict[str, Any]:
        account = self.accounts.get(account_id)
        if account is None:
            raise EmulatorError(f"No such account: '{account_id}'", status=404)
        return account

    def complete_onboarding(self, account_id: str) -> dict[str, Any]:
        """The account holder finished onboarding: charges and payouts are enabled."""
        with self.lock:
            account = self.account(account_id)
            previous = {
                "charges_enabled": account["charges_enabled"],
                "payouts_enabled": account["payouts_enabled"],
                "details_submitted": account["details_submitted"],
                "requirements": copy.deepcopy(account["requirements"]),
            }
            now = self.now()
            account.update(charges_enabled=True, payouts_enabled=True, details_submitted=True)
            account["requirements"] = _requirements([])
            account["capabilities"] = {"card_payments": "active", "transfers": "active"}
            account["tos_acceptance"] = {"date": now, "ip": "127.0.0.1", "user_agent": None}
            if account["business_type"] is None:
                account["business_type"] = "individual"
            self.emit(
                "account.updated",
                account,
                account=account_id,
                livemode=account["livemode"],
                previous_attributes=previous,
            )
            return public(account)

    def deauthorize(self, account_id: str) -> dict[str, Any]:
        """The account disconnected the platform: ``account.application.deauthorized``.

        Afterwards every call made on the account's behalf fails with 403, as on Stripe.
        """
        with self.lock:
            account = self.account(account_id)
            account["_deauthorized"] = True
            application = {
                "id": "ca_" + "emulator" + "0" * 24,
                "object": "application",
                "name": self.platform_name,
            }
            return self.emit(
                "account.application.deauthorized",
                application,
                account=account_id,
                livemode=account["livemode"],
            )

    def connect_in_both_modes(self, account_id: str) -> dict[str, Any]:
        """Connect the account to the platform in live and test mode (as OAuth can).

        Test keys may then act on a live account with ``Stripe-Account``; the test
        objects and events that makes reach the test and the live Connect endpoints.
        """
        with self.lock:
            account = self.account(account_id)
            account["_connected_modes"] = ["live", "test"]
            return public(account)

    def use_link(self, token: str, *, complete: bool) -> str:
        """Follow an onboarding link; return where the browser goes next.

        Account Links are single use and short-lived: an expired or already used link
        sends the browser to ``refresh_url`` so the platform can mint a fresh one.
        """
        with self.lock:
            link = self.account_links.get(token)
            if link is None:
                raise EmulatorError("This onboarding link does not exist.", status=404)
            if link["_used"] or self.now() >= link["expires_at"]:
                return link["_refresh_url"] or self.public_url + "/_hosted/expired"
            link["_used"] = True
            if complete:
                self.complete_onboarding(link["_account"])
            return link["_return_url"] or self.public_url + "/_hosted/done"

    def link_is_live(self, token: str) -> bool:
        with self.lock:
            link = self.account_links.get(token)
            if link is None:
                raise EmulatorError("This onboarding link does not exist.", status=404)
            return not link["_used"] and self.now() < link["expires_at"]


def _requirements(due: list[str], disabled_reason: str | None = None) -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": disabled_reason if due else None,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


def _clear_requirement(account: dict[str, Any], requirement: str) -> None:
    for key in ("currently_due", "eventually_due", "past_due"):
        due = account["requirements"][key]
        if requirement in due:
            due.remove(requirement)


def connected_modes(account: dict[str, Any]) -> list[str]:
    """The modes in which ``account`` is connected to the platform (state files from
    before this was recorded hold accounts connected in their own mode only)."""
    return account.get("_connected_modes") or ["live" if account["livemode"] else "test"]
