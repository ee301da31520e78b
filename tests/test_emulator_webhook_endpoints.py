"""Webhook endpoints as a Stripe resource, and delivery routed the way Stripe routes it.

Driven by the real ``stripe`` client over HTTP; deliveries are checked with the
``stripe`` package's own signature verification, with each endpoint's secret.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import stripe

from tests.emulator_helpers import (
    Recorder,
    create_account,
    create_session,
    error_of,
    make_client,
)
from wagtail_client_billing.testing.stripe_emulator import StripeEmulator

PLATFORM_URL = "https://platform.example/stripe/webhook/"


def verified(recorder: Recorder, secret: str) -> list[dict[str, Any]]:
    """The events ``recorder`` received, each checked against ``secret`` as Stripe's
    client checks it (a delivery signed with another secret raises)."""
    events = []
    for body, headers in recorder.calls:
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], secret)
        events.append(json.loads(body))
    return events


def test_created_endpoint_has_stripes_shape_and_shows_its_secret_once(
    stripe_client: stripe.StripeClient,
) -> None:
    created = stripe_client.v1.webhook_endpoints.create(
        params={
            "url": PLATFORM_URL,
            "enabled_events": ["checkout.session.completed"],
            "description": "Billing",
            "metadata": {"site": "1"},
        }
    )
    assert created.id.startswith("we_")
    assert created.object == "webhook_endpoint"
    assert created.secret.startswith("whsec_")
    assert (created.api_version, created.application, created.status) == (None, None, "enabled")
    assert created.livemode is False
    assert created.enabled_events == ["checkout.session.completed"]
    assert (created.description, created.metadata.to_dict()) == ("Billing", {"site": "1"})

    fetched = stripe_client.v1.webhook_endpoints.retrieve(created.id)
    listed = stripe_client.v1.webhook_endpoints.list()
    assert "secret" not in fetched
    assert [e.id for e in listed.data] == [created.id]
    assert "secret" not in listed.data[0]
    # Stripe's object has no field saying whether an endpoint is a Connect endpoint.
    assert "connect" not in fetched


def test_endpoint_is_updated_disabled_and_deleted(stripe_client: stripe.StripeClient) -> None:
    endpoint = stripe_client.v1.webhook_endpoints.create(
        params={"url": PLATFORM_URL, "enabled_events": ["*"], "api_version": "2025-03-31.basil"}
    )
    updated = stripe_client.v1.webhook_endpoints.update(
        endpoint.id,
        params={"enabled_events": ["account.updated"], "disabled": True, "description": ""},
    )
    assert (updated.status, updated.enabled_events) == ("disabled", ["account.updated"])
    assert (updated.api_version, updated.description) == ("2025-03-31.basil", None)

    deleted = stripe_client.v1.webhook_endpoints.delete(endpoint.id)
    assert (deleted.id, deleted.deleted) == (endpoint.id, True)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe_client.v1.webhook_endpoints.retrieve(endpoint.id)
    assert missing.value.http_status == 404
    assert error_of(missing.value) == ("invalid_request_error", "resource_missing", "id")


def test_endpoints_belong_to_the_keys_mode(emu: StripeEmulator) -> None:
    live = make_client(emu, "sk_live_emulator")
    test = make_client(emu)
    endpoint = live.v1.webhook_endpoints.create(
        params={"url": PLATFORM_URL, "enabled_events": ["*"]}
    )
    assert endpoint.livemode is True
    assert test.v1.webhook_endpoints.list().data == []
    with pytest.raises(stripe.InvalidRequestError):
        test.v1.webhook_endpoints.retrieve(endpoint.id)


def test_enabled_events_outside_stripes_list_are_refused(
    stripe_client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_client.v1.webhook_endpoints.create(
            params={"url": PLATFORM_URL, "enabled_events": ["checkout.session.paid"]}
        )
    assert error_of(refused.value) == ("invalid_request_error", None, "enabled_events[0]")


@pytest.fixture
def platform_and_connect(emu: StripeEmulator) -> dict[str, tuple[Recorder, str]]:
    """Four endpoints, as a platform registers them: account and Connect, live and test."""
    emu.dispatcher.targets.clear()
    endpoints = {}
    for name, connect, livemode in (
        ("platform_test", False, False),
        ("platform_live", False, True),
        ("connect_test", True, False),
        ("connect_live", True, True),
    ):
        recorder = Recorder()
        made = emu.add_webhook_endpoint(recorder, connect=connect, livemode=livemode)
        endpoints[name] = (recorder, made["secret"])
    return endpoints


def received(endpoints: dict[str, tuple[Recorder, str]]) -> dict[str, list[str]]:
    """Event types each endpoint received, after checking each signature."""
    return {
        name: [e["type"] for e in verified(recorder, secret)]
        for name, (recorder, secret) in endpoints.items()
    }


def test_platform_events_go_to_the_account_endpoint_of_their_mode(
    emu: StripeEmulator, platform_and_connect: dict[str, tuple[Recorder, str]]
) -> None:
    emu.trigger("balance.available", {"object": "balance"}, livemode=True)
    emu.deliver_pending()
    assert received(platform_and_connect) == {
        "platform_test": [],
        "platform_live": ["balance.available"],
        "connect_test": [],
        "connect_live": [],
    }


def test_events_of_a_test_mode_account_reach_only_the_test_connect_endpoint(
    emu: StripeEmulator,
    stripe_client: stripe.StripeClient,
    platform_and_connect: dict[str, tuple[Recorder, str]],
) -> None:
    account = create_account(stripe_client)
    emu.complete_onboarding(account.id)
    emu.deliver_pending()
    assert received(platform_and_connect) == {
        "platform_test": [],
        "platform_live": [],
        "connect_test": ["account.updated"],
        "connect_live": [],
    }
    event = platform_and_connect["connect_test"][0].events[0]
    assert (event["account"], event["livemode"]) == (account.id, False)


def test_live_connect_endpoint_gets_test_events_of_accounts_connected_in_live_mode(
    emu: StripeEmulator, platform_and_connect: dict[str, tuple[Recorder, str]]
) -> None:
    live = make_client(emu, "sk_live_emulator")
    account = create_account(live)
    emu.deliver_pending()
    # The account holder works in test mode in their own Dashboard.
    emu.trigger("customer.created", {"object": "customer"}, account=account.id, livemode=False)
    emu.complete_onboarding(account.id)
    emu.deliver_pending()
    assert received(platform_and_connect) == {
        "platform_test": [],
        "platform_live": [],
        "connect_test": [],
        "connect_live": ["customer.created", "account.updated"],
    }
    livemodes = [e["livemode"] for e in platform_and_connect["connect_live"][0].events]
    assert livemodes == [False, True]


def test_test_events_of_an_account_connected_in_both_modes_reach_both_connect_endpoints(
    emu: StripeEmulator, platform_and_connect: dict[str, tuple[Recorder, str]]
) -> None:
    account = create_account(make_client(emu, "sk_live_emulator"))
    emu.complete_onboarding(account.id)
    emu.connect_in_both_modes(account.id)
    emu.deliver_pending()
    for recorder, _secret in platform_and_connect.values():
        recorder.calls.clear()

    session = create_session(make_client(emu), account.id)  # a test key on the live account
    emu.pay(session.id)
    emu.deliver_pending()

    got = received(platform_and_connect)
    assert got["connect_test"] == got["connect_live"] == ["checkout.session.completed"]
    assert got["platform_test"] == got["platform_live"] == []
    test_copy = platform_and_connect["connect_test"][0].events[0]
    live_copy = platform_and_connect["connect_live"][0].events[0]
    assert test_copy["id"] == live_copy["id"]
    assert test_copy["livemode"] is live_copy["livemode"] is False


def test_enabled_events_filter_and_disabled_endpoints_receive_nothing(
    emu: StripeEmulator, stripe_client: stripe.StripeClient
) -> None:
    emu.dispatcher.targets.clear()
    wanted, disabled = Recorder(), Recorder()
    emu.add_webhook_endpoint(wanted, connect=True, enabled_events=["checkout.session.completed"])
    off = emu.add_webhook_endpoint(disabled, connect=True)
    stripe_client.v1.webhook_endpoints.update(off["id"], params={"disabled": True})
    account = create_account(stripe_client)
    emu.complete_onboarding(account.id)  # account.updated: not enabled on `wanted`
    session = create_session(stripe_client, account.id)
    emu.pay(session.id)
    emu.deliver_pending()
    assert wanted.types == ["checkout.session.completed"]
    assert disabled.calls == []


def test_each_delivery_carries_its_endpoints_api_version(
    emu: StripeEmulator, stripe_client: stripe.StripeClient, recorder: Recorder
) -> None:
    pinned, default = Recorder(), Recorder()
    emu.add_webhook_endpoint(pinned, connect=True, api_version="2025-03-31.basil")
    emu.add_webhook_endpoint(default, connect=True)
    account = create_account(stripe_client)
    emu.complete_onboarding(account.id)
    emu.deliver_pending()
    assert pinned.events[0]["api_version"] == "2025-03-31.basil"
    assert default.events[0]["api_version"] == emu.state.api_version
    # A plain target gets the event as made.
    assert recorder.events[0]["api_version"] == emu.state.api_version
    assert {d.api_version for d in emu.deliveries} == {"2025-03-31.basil", emu.state.api_version}


def test_pending_webhooks_counts_the_endpoints_an_event_goes_to(
    emu: StripeEmulator, stripe_client: stripe.StripeClient
) -> None:
    emu.add_webhook_endpoint(Recorder(), connect=True)
    emu.add_webhook_endpoint(Recorder(), connect=False)  # platform events only
    account = create_account(stripe_client)
    emu.complete_onboarding(account.id)
    # The Connect endpoint and the plain target.
    assert emu.events_of_type("account.updated")[-1]["pending_webhooks"] == 2


def test_endpoint_registered_through_the_api_is_a_delivery_route(
    emu: StripeEmulator, stripe_client: stripe.StripeClient
) -> None:
    made = stripe_client.v1.webhook_endpoints.create(
        params={"url": PLATFORM_URL, "enabled_events": ["*"], "connect": True}
    )
    assert emu.get_webhook_endpoint(made.id)["connect"] is True
    routes = emu.state.webhook_routes(
        {"type": "account.updated", "account": "acct_x", "livemode": False}
    )
    assert [(r.target, r.secret, r.endpoint) for r in routes] == [
        (PLATFORM_URL, made.secret, made.id)
    ]
