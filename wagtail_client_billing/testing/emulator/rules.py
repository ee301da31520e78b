"""Stripe's documented limits that the SDK's types cannot express.

The ``TypedDict`` walk in :mod:`.params` knows names, types and enum values; Stripe also
refuses values by their size or by how they combine, and a request that passed here but
failed there would void the test that made it.  Each function raises
:class:`~.errors.StripeError` with the type, code and parameter name Stripe answers with.

Sources: metadata -- https://docs.stripe.com/metadata (50 keys, 40-character keys
without square brackets, 500-character values); fees -- the ``stripe`` package's
docstrings of ``application_fee_percent`` and ``application_fee_amount`` and Stripe's
error code ``application_fees_not_allowed``; controller -- the docstring of
``controller.fees.payer``; countries -- ISO 3166-1 and https://stripe.com/global;
idempotency keys -- https://docs.stripe.com/api/idempotent_requests (up to 255
characters); pagination -- https://docs.stripe.com/api/pagination.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Sequence
from typing import Any

from .errors import StripeError, resource_missing

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500
IDEMPOTENCY_KEY_MAX_LENGTH = 255
LIST_LIMIT_DEFAULT = 10
LIST_LIMIT_MAX = 100

#: Officially assigned ISO 3166-1 alpha-2 codes: anything else is not a country.
ISO_COUNTRIES = frozenset((
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW",
    "AX", "AZ", "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN",
    "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG",
    "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ",
    "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI",
    "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL",
    "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR",
    "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA",
    "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME",
    "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU",
    "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP",
    "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR",
    "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC", "SD",
    "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV",
    "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE",
    "VG", "VI", "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
))  # fmt: skip

#: Countries where a platform can create an account under the full service agreement
#: (https://stripe.com/global); elsewhere only the ``recipient`` agreement is offered.
STRIPE_ACCOUNT_COUNTRIES = frozenset((
    "AE", "AT", "AU", "BE", "BG", "BR", "CA", "CH", "CY", "CZ", "DE", "DK", "EE", "ES",
    "FI", "FR", "GB", "GI", "GR", "HK", "HR", "HU", "IE", "IN", "IT", "JP", "LI", "LT",
    "LU", "LV", "MT", "MX", "MY", "NL", "NO", "NZ", "PL", "PT", "RO", "SE", "SG", "SI",
    "SK", "TH", "US",
))  # fmt: skip


def check_metadata(params: dict[str, Any], prefix: str = "") -> None:
    """Check every ``metadata`` hash in ``params``, however deeply nested.

    A metadata hash sent as ``""`` (Stripe's "remove all keys") has nothing to check.
    """
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else key
        if key == "metadata" and isinstance(value, dict):
            check_metadata_hash(value, name)
        elif isinstance(value, dict):
            check_metadata(value, name)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    check_metadata(item, f"{name}[{index}]")


def check_metadata_hash(metadata: dict[str, Any], param: str = "metadata") -> None:
    """One metadata hash as sent (before merging): key count, key and value sizes."""
    check_metadata_count(len(metadata), param)
    for key, value in metadata.items():
        if "[" in key or "]" in key or isinstance(value, dict):
            # ``metadata[a[b]]=x`` arrives nested, so a bracket in a key shows up either
            # in the key or as a hash where a string belongs.
            raise StripeError(
                f"Invalid key: {key} must not contain square brackets ('[' or ']'); "
                "metadata values must be strings",
                param=param,
            )
        if len(key) > METADATA_MAX_KEY_LENGTH:
            raise StripeError(
                f"Invalid key: {key} must be a string under {METADATA_MAX_KEY_LENGTH} characters",
                param=param,
            )
        if len(value) > METADATA_MAX_VALUE_LENGTH:
            raise StripeError(
                f"Invalid val: {value[:60]}... must be a string under "
                f"{METADATA_MAX_VALUE_LENGTH} characters",
                param=param,
            )


def check_metadata_count(count: int, param: str = "metadata") -> None:
    """At most 50 keys -- also after an update merged new keys into the old ones."""
    if count > METADATA_MAX_KEYS:
        raise StripeError(
            f"Metadata can have up to {METADATA_MAX_KEYS} keys, but you've set {count}.",
            param=param,
        )


def check_idempotency_key(key: str | None) -> None:
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise StripeError(
            f"Idempotency keys can be at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters long, "
            f"but the key you provided is {len(key)} characters long."
        )


def check_fee_percent(percent: decimal.Decimal, param: str) -> None:
    """``application_fee_percent``: 0 to 100, at most two decimal places."""
    if percent < 0:
        raise StripeError(
            f"This value must be greater than or equal to 0 (it currently is '{percent}').",
            param=param,
        )
    if percent > 100:
        raise StripeError(
            f"This value must be less than or equal to 100 (it currently is '{percent}').",
            param=param,
        )
    exponent = percent.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise StripeError(
            f"Invalid decimal: {percent}; must contain at maximum two decimal places.",
            param=param,
        )


def check_fee_allowed(on_connected_account: bool, param: str) -> None:
    """Fees go to the platform, so only a request on a connected account may take one."""
    if not on_connected_account:
        name = param.rsplit("[", 1)[-1].rstrip("]")
        raise StripeError(
            f"Can only apply an {name} when the request is made on behalf of another "
            "account (using an OAuth key, the Stripe-Account header, or the destination "
            "parameter).",
            code="application_fees_not_allowed",
            param=param,
        )


def check_country(country: str, service_agreement: str | None) -> None:
    if country not in ISO_COUNTRIES:
        raise StripeError(
            f"Country '{country}' is unknown. Try using a 2-character alphanumeric country "
            "code instead, such as 'US', 'EG', or 'GB'.",
            code="country_code_invalid",
            param="country",
        )
    if service_agreement != "recipient" and country not in STRIPE_ACCOUNT_COUNTRIES:
        raise StripeError(
            f"Connected accounts in {country} can only be created with the `recipient` "
            "service agreement (`tos_acceptance[service_agreement]=recipient`).",
            code="country_unsupported",
            param="country",
        )


def check_controller(controller: dict[str, Any]) -> None:
    """Combinations of ``controller`` properties Stripe refuses.

    The platform can only carry an account's negative balances if it also pays
    Stripe's fees on it (``losses.payments=application`` requires
    ``fees.payer=application``), and the platform can only collect an account's
    verification details when it also carries its losses and no Stripe-hosted
    Dashboard shows them (``requirement_collection=application`` requires
    ``losses.payments=application`` and ``stripe_dashboard.type=none``).
    """
    fees = controller.get("fees", {}).get("payer", "account")
    losses = controller.get("losses", {}).get("payments", "stripe")
    dashboard = controller.get("stripe_dashboard", {}).get("type", "full")
    collection = controller.get("requirement_collection", "stripe")
    if losses == "application" and fees != "application":
        raise StripeError(
            "Setting `controller[losses][payments]=application` requires "
            "`controller[fees][payer]=application`.",
            param="controller[fees][payer]",
        )
    if collection == "application" and (losses != "application" or dashboard != "none"):
        raise StripeError(
            "Setting `controller[requirement_collection]=application` requires "
            "`controller[losses][payments]=application` and "
            "`controller[stripe_dashboard][type]=none`.",
            param="controller[requirement_collection]",
        )


def paginate(
    objects: Sequence[dict[str, Any]],
    params: dict[str, Any],
    *,
    url: str,
    object_name: str,
    render: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """One page of ``objects`` (newest first) as Stripe's list object.

    ``starting_after`` pages towards older objects and ``ending_before`` towards newer
    ones; either way ``data`` stays newest first and ``has_more`` says whether more
    objects lie beyond the page in the direction of travel.
    """
    limit = params.get("limit", LIST_LIMIT_DEFAULT)
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise StripeError(
            f"This value must be less than or equal to {LIST_LIMIT_MAX} and greater than or "
            f"equal to 1 (it currently is '{limit}').",
            param="limit",
        )
    if "starting_after" in params and "ending_before" in params:
        raise StripeError(
            "You may only specify one of these parameters: ending_before, starting_after.",
            code="parameters_exclusive",
            param="ending_before",
        )
    ids = [o["id"] for o in objects]
    for cursor in ("starting_after", "ending_before"):
        if cursor in params and params[cursor] not in ids:
            raise resource_missing(object_name, params[cursor], param=cursor)
    if "ending_before" in params:
        newer = list(objects[: ids.index(params["ending_before"])])
        page, has_more = newer[-limit:], len(newer) > limit
    else:
        start = ids.index(params["starting_after"]) + 1 if "starting_after" in params else 0
        older = list(objects[start:])
        page, has_more = older[:limit], len(older) > limit
    return {
        "object": "list",
        "data": [render(o) for o in page],
        "has_more": has_more,
        "url": url,
    }


__all__ = [
    "ISO_COUNTRIES",
    "STRIPE_ACCOUNT_COUNTRIES",
    "check_controller",
    "check_country",
    "check_fee_allowed",
    "check_fee_percent",
    "check_idempotency_key",
    "check_metadata",
    "check_metadata_count",
    "check_metadata_hash",
    "paginate",
]
