"""The emulator refuses what Stripe refuses: documented limits, one past each edge.

Each test sends the request through the real ``stripe`` client over HTTP and asserts
what a caller branches on: the error's ``type``, ``code`` and ``param``.  The value at
the edge itself is accepted, so the limit is neither too loose nor too tight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe

from tests.emulator_helpers import (
    create_account,
    create_session,
    error_of,
    make_client,
    session_params,
)
from wagtail_client_billing.testing.stripe_emulator import StripeEmulator

INVALID = "invalid_request_error"


def refused(
    call: Callable[[], Any], status: int = 400
) -> tuple[str | None, str | None, str | None]:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        call()
    assert excinfo.value.http_status == status
    return error_of(excinfo.value)


# -- metadata ------------------------------------------------------------------------------

#: One past each documented limit (https://docs.stripe.com/metadata), and the edge.
METADATA_TOO_BIG = {
    "51 keys": {f"k{i}": "v" for i in range(51)},
    "41-character key": {"k" * 41: "v"},
    "501-character value": {"k": "v" * 501},
    "square bracket in key": {"a]b": "v"},
}
METADATA_AT_EDGE = {**{f"k{i}": "v" for i in range(48)}, "k" * 40: "v" * 500}


def _metadata_requests(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str
) -> dict[str, tuple[str, Callable[[dict[str, str]], Any]]]:
    """Every endpoint taking metadata: (the param Stripe names, a call sending it)."""

    def on_account(params: Any) -> Any:
        return client.v1.checkout.sessions.create(
            params=params, options={"stripe_account": account_id}
        )

    return {
        "account create": ("metadata", lambda m: create_account(client, metadata=m)),
        "account update": (
            "metadata",
            lambda m: client.v1.accounts.update(account_id, params={"metadata": m}),
        ),
        "session": ("metadata", lambda m: on_account(session_params(metadata=m))),
        "subscription_data": (
            "subscription_data[metadata]",
            lambda m: on_account(
                session_params(recurring="month", subscription_data={"metadata": m})
            ),
        ),
        "payment_intent_data": (
            "payment_intent_data[metadata]",
            lambda m: on_account(session_params(payment_intent_data={"metadata": m})),
        ),
        "product_data": (
            "line_items[0][price_data][product_data][metadata]",
            lambda m: on_account(
                {
                    **session_params(),
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": "usd",
                                "unit_amount": 1000,
                                "product_data": {"name": "Site", "metadata": m},
                            },
                        }
                    ],
                }
            ),
        ),
        "webhook endpoint": (
            "metadata",
            lambda m: client.v1.webhook_endpoints.create(
                params={"url": "https://a.example/hook", "enabled_events": ["*"], "metadata": m}
            ),
        ),
    }


@pytest.mark.parametrize("violation", list(METADATA_TOO_BIG))
def test_metadata_past_stripes_limits_is_refused_on_every_endpoint(
    emu: StripeEmulator,
    stripe_client: stripe.StripeClient,
    onboarded_account: str,
    violation: str,
) -> None:
    requests = _metadata_requests(emu, stripe_client, onboarded_account)
    for endpoint, (param, send) in requests.items():
        error = refused(lambda send=send: send(METADATA_TOO_BIG[violation]))
        assert error == (INVALID, None, param), endpoint


def test_metadata_at_stripes_limits_is_accepted_on_every_endpoint(
    emu: StripeEmulator, stripe_client: stripe.StripeClient, onboarded_account: str
) -> None:
    for endpoint, (_param, send) in _metadata_requests(
        emu, stripe_client, onboarded_account
    ).items():
        assert send(dict(METADATA_AT_EDGE)), endpoint


def test_metadata_update_counts_the_keys_already_on_the_object(
    stripe_client: stripe.StripeClient,
) -> None:
    account = create_account(stripe_client, metadata={f"old{i}": "v" for i in range(30)})
    new_keys = {f"new{i}": "v" for i in range(21)}
    error = refused(lambda: stripe_client.v1.accounts.update(account.id, {"metadata": new_keys}))
    assert error == (INVALID, None, "metadata")
    # Emptying keys makes room: 30 - 1 + 21 = 50.
    stripe_client.v1.accounts.update(account.id, {"metadata": {**new_keys, "old0": ""}})


# -- application fees ----------------------------------------------------------------------


@pytest.mark.parametrize("percent", [0, 2.55, 100])
def test_fee_percent_within_0_to_100_with_two_decimals_is_accepted(
    stripe_client: stripe.StripeClient, onboarded_account: str, percent: float
) -> None:
    data = {"application_fee_percent": percent}
    assert create_session(
        stripe_client, onboarded_account, recurring="month", subscription_data=data
    )


@pytest.mark.parametrize("percent", [2.555, 100.01, 150, -1])
def test_fee_percent_outside_0_to_100_or_with_three_decimals_is_refused(
    stripe_client: stripe.StripeClient, onboarded_account: str, percent: float
) -> None:
    data = {"application_fee_percent": percent}
    error = refused(
        lambda: create_session(
            stripe_client, onboarded_account, recurring="month", subscription_data=data
        )
    )
    assert error == (INVALID, None, "subscription_data[application_fee_percent]")


def test_fee_amount_over_the_amount_is_refused(
    stripe_client: stripe.StripeClient, onboarded_account: str
) -> None:
    create_session(
        stripe_client,
        onboarded_account,
        amount=1000,
        payment_intent_data={"application_fee_amount": 1000},
    )
    error = refused(
        lambda: create_session(
            stripe_client,
            onboarded_account,
            amount=1000,
            payment_intent_data={"application_fee_amount": 1001},
        )
    )
    assert error == (INVALID, None, "payment_intent_data[application_fee_amount]")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"payment_intent_data": {"application_fee_amount": 50}},
            "payment_intent_data[application_fee_amount]",
        ),
        (
            {"recurring": "month", "subscription_data": {"application_fee_percent": 5}},
            "subscription_data[application_fee_percent]",
        ),
    ],
)
def test_fees_are_refused_on_the_platforms_own_account(
    stripe_client: stripe.StripeClient, extra: dict[str, Any], param: str
) -> None:
    # No Stripe-Account header: the platform would pay a fee to itself.
    error = refused(lambda: stripe_client.v1.checkout.sessions.create(session_params(**extra)))
    assert error == (INVALID, "application_fees_not_allowed", param)


# -- accounts: controller and country ------------------------------------------------------


@pytest.mark.parametrize(
    ("controller", "param"),
    [
        (
            {"fees": {"payer": "account"}, "losses": {"payments": "application"}},
            "controller[fees][payer]",
        ),
        (
            {
                "fees": {"payer": "application"},
                "losses": {"payments": "application"},
                "requirement_collection": "application",
                "stripe_dashboard": {"type": "express"},
            },
            "controller[requirement_collection]",
        ),
        (
            {"requirement_collection": "application", "stripe_dashboard": {"type": "none"}},
            "controller[requirement_collection]",
        ),
    ],
)
def test_controller_combinations_stripe_refuses_are_refused(
    stripe_client: stripe.StripeClient, controller: dict[str, Any], param: str
) -> None:
    error = refused(lambda: create_account(stripe_client, controller=controller))
    assert error == (INVALID, None, param)


@pytest.mark.parametrize(
    "controller",
    [
        {  # what the app asks for: the account owner's own full Dashboard
            "fees": {"payer": "account"},
            "losses": {"payments": "stripe"},
            "requirement_collection": "stripe",
            "stripe_dashboard": {"type": "full"},
        },
        {  # Express
            "fees": {"payer": "application"},
            "losses": {"payments": "application"},
            "stripe_dashboard": {"type": "express"},
        },
        {  # Custom
            "fees": {"payer": "application"},
            "losses": {"payments": "application"},
            "requirement_collection": "application",
            "stripe_dashboard": {"type": "none"},
        },
    ],
)
def test_controller_combinations_stripe_documents_are_accepted(
    stripe_client: stripe.StripeClient, controller: dict[str, Any]
) -> None:
    assert create_account(stripe_client, controller=controller).controller.to_dict()


def test_unknown_country_codes_are_refused(stripe_client: stripe.StripeClient) -> None:
    for country in ("XX", "USA", "UK"):
        error = refused(lambda country=country: create_account(stripe_client, country=country))
        assert error == (INVALID, "country_code_invalid", "country"), country


def test_countries_stripe_does_not_serve_need_the_recipient_agreement(
    stripe_client: stripe.StripeClient,
) -> None:
    error = refused(lambda: create_account(stripe_client, country="AR"))
    assert error == (INVALID, "country_unsupported", "country")
    recipient = create_account(
        stripe_client, country="AR", tos_acceptance={"service_agreement": "recipient"}
    )
    assert recipient.country == "AR"
    assert create_account(stripe_client, country="de").country == "DE"


# -- request-level rules -------------------------------------------------------------------


def test_unknown_parameters_are_refused_with_parameter_unknown(
    stripe_client: stripe.StripeClient,
) -> None:
    error = refused(lambda: create_account(stripe_client, colour="blue"))
    assert error == (INVALID, "parameter_unknown", "colour")
    nested = refused(
        lambda: create_account(stripe_client, business_profile={"url": "https://a.example", "x": 1})
    )
    assert nested == (INVALID, "parameter_unknown", "business_profile[x]")


def test_idempotency_keys_longer_than_255_characters_are_refused(
    stripe_client: stripe.StripeClient,
) -> None:
    params: Any = {"country": "US"}
    error = refused(
        lambda: stripe_client.v1.accounts.create(params, {"idempotency_key": "k" * 256})
    )
    assert error[0] == INVALID
    assert stripe_client.v1.accounts.create(params, {"idempotency_key": "k" * 255}).id


def test_a_validation_error_is_not_kept_for_the_idempotency_key(
    stripe_client: stripe.StripeClient, onboarded_account: str
) -> None:
    key = {"stripe_account": onboarded_account, "idempotency_key": "invoice-5-attempt-1"}
    too_long = session_params(metadata={"note": "x" * 501})
    refused(lambda: stripe_client.v1.checkout.sessions.create(too_long, key))
    # Nothing ran, so the corrected request may use the same key.
    session = stripe_client.v1.checkout.sessions.create(session_params(), key)
    assert session.status == "open"


def test_an_error_from_a_request_that_started_is_replayed_for_its_key(
    emu: StripeEmulator, stripe_client: stripe.StripeClient
) -> None:
    account = create_account(stripe_client)
    options: Any = {"stripe_account": account.id, "idempotency_key": "invoice-5-attempt-1"}
    with pytest.raises(stripe.InvalidRequestError) as first:
        stripe_client.v1.checkout.sessions.create(session_params(), options)
    emu.complete_onboarding(account.id)
    with pytest.raises(stripe.InvalidRequestError) as again:
        stripe_client.v1.checkout.sessions.create(session_params(), options)
    assert again.value.user_message == first.value.user_message
    assert again.value.headers is not None
    assert again.value.headers.get("idempotent-replayed") == "true"
    # A new key carries the request out anew, on the now onboarded account.
    options["idempotency_key"] = "invoice-5-attempt-2"
    assert stripe_client.v1.checkout.sessions.create(session_params(), options).id


# -- list pagination -----------------------------------------------------------------------


def test_session_list_pages_backwards_with_ending_before(
    stripe_client: stripe.StripeClient, onboarded_account: str
) -> None:
    ids = [create_session(stripe_client, onboarded_account).id for _ in range(5)]
    newest_first = ids[::-1]
    options: Any = {"stripe_account": onboarded_account}
    sessions = stripe_client.v1.checkout.sessions

    first = sessions.list({"limit": 2}, options)
    assert ([s.id for s in first.data], first.has_more) == (newest_first[:2], True)
    older = sessions.list({"limit": 2, "starting_after": newest_first[1]}, options)
    assert [s.id for s in older.data] == newest_first[2:4]
    back = sessions.list({"limit": 2, "ending_before": newest_first[3]}, options)
    assert ([s.id for s in back.data], back.has_more) == (newest_first[1:3], True)
    top = sessions.list({"limit": 2, "ending_before": newest_first[1]}, options)
    assert ([s.id for s in top.data], top.has_more) == (newest_first[:1], False)
    # The client's own backwards iteration walks to the newest object.
    walked = sessions.list({"limit": 2, "ending_before": newest_first[4]}, options)
    assert [s.id for s in walked.auto_paging_iter()] == newest_first[3::-1]


def test_webhook_endpoint_list_pages_both_ways(emu: StripeEmulator) -> None:
    client = make_client(emu)
    ids = [
        client.v1.webhook_endpoints.create(
            {"url": f"https://a.example/{i}", "enabled_events": ["*"]}
        ).id
        for i in range(3)
    ]
    newest_first = ids[::-1]
    endpoints = client.v1.webhook_endpoints
    assert [e.id for e in endpoints.list({"limit": 1, "starting_after": ids[2]}).data] == [ids[1]]
    back = endpoints.list({"limit": 1, "ending_before": ids[0]})
    assert ([e.id for e in back.data], back.has_more) == ([ids[1]], True)
    assert [e.id for e in endpoints.list().auto_paging_iter()] == newest_first
    error = refused(lambda: endpoints.list({"ending_before": "we_unknown"}), status=404)
    assert error == (INVALID, "resource_missing", "ending_before")
