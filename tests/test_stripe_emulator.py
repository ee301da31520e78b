"""The Stripe emulator, driven by the real ``stripe`` client (no mocks, no Django).

These tests pin the emulator to Stripe's observable behaviour -- the wire format, error
classes and messages, idempotency, scoping by ``Stripe-Account``, webhook signatures and
retries, hosted pages -- because the rest of the suite trusts it to stand in for Stripe.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from tests.emulator_helpers import (
    SECRET,
    Recorder,
    create_account,
    create_session,
    error_code,
    make_client,
    session_params,
)
from wagtail_client_billing.testing.emulator.params import decode_form, validate
from wagtail_client_billing.testing.stripe_emulator import StripeEmulator, StripeError
from wagtail_client_billing.testing.webhooks import build_event, sign_payload

NOW = 1_760_000_000  # a fixed clock for tests that reason about expiry


# -- helpers and fixtures ----------------------------------------------------------------


@pytest.fixture
def client(stripe_client: stripe.StripeClient) -> stripe.StripeClient:
    return stripe_client


@pytest.fixture
def account_id(onboarded_account: str) -> str:
    return onboarded_account


def fetch(url: str, form: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    """GET (or POST ``form``) without following redirects; return status, body, headers."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=5) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def post_json(url: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload or {}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- accounts and account links ----------------------------------------------------------


def test_new_account_cannot_take_payments_until_onboarded(client: stripe.StripeClient) -> None:
    account = create_account(client)

    assert account.id.startswith("acct_")
    assert account.object == "account"
    assert account.livemode is False
    assert account.charges_enabled is False and account.payouts_enabled is False
    assert account.details_submitted is False
    assert "external_account" in account.requirements.currently_due
    assert account.controller.fees.payer == "account"
    assert account.controller.losses.payments == "stripe"
    assert account.business_profile.url == "https://client-a.example"
    assert account.to_dict()["metadata"] == {"site_id": "1"}
    assert client.v1.accounts.retrieve(account.id).to_dict() == account.to_dict()


def test_account_update_merges_metadata_and_sends_account_updated(
    emu: StripeEmulator, client: stripe.StripeClient, recorder: Recorder
) -> None:
    account = create_account(client, metadata={"site_id": "1", "old": "x"})

    updated = client.v1.accounts.update(
        account.id, params={"metadata": {"old": "", "agency": "yes"}}
    )
    emu.deliver_pending()

    assert updated.to_dict()["metadata"] == {"site_id": "1", "agency": "yes"}
    assert recorder.types == ["account.updated"]
    assert recorder.events[0]["account"] == account.id


def test_deleting_a_test_account_removes_it(client: stripe.StripeClient) -> None:
    account = create_account(client)

    deleted = client.v1.accounts.delete(account.id)

    assert deleted.deleted is True and deleted.id == account.id
    with pytest.raises(stripe.PermissionError) as excinfo:
        client.v1.accounts.retrieve(account.id)
    assert error_code(excinfo.value) == "account_invalid"


def test_live_accounts_cannot_be_deleted(emu: StripeEmulator) -> None:
    live = make_client(emu, key="sk_live_emulator")
    account = create_account(live)

    assert account.livemode is True
    with pytest.raises(stripe.InvalidRequestError):
        live.v1.accounts.delete(account.id)
    assert live.v1.accounts.retrieve(account.id).id == account.id


def test_account_link_points_at_hosted_onboarding(
    emu: StripeEmulator, client: stripe.StripeClient
) -> None:
    account = create_account(client)

    link = client.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "https://platform.example/refresh",
            "return_url": "https://platform.example/return",
        }
    )

    assert link.object == "account_link"
    assert link.url.startswith(f"{emu.base_url}/_hosted/onboarding/")
    assert 240 <= link.expires_at - link.created <= 360


def test_missing_required_param_is_reported_by_name(client: stripe.StripeClient) -> None:
    account = create_account(client)

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.account_links.create(params={"account": account.id})  # type: ignore[typeddict-item]

    assert excinfo.value.user_message == "Missing required param: type."
    assert excinfo.value.param == "type"


# -- Checkout Sessions -------------------------------------------------------------------


def test_checkout_session_has_stripes_shape(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str
) -> None:
    session = create_session(client, account_id, amount=1234)

    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert session.status == "open" and session.payment_status == "unpaid"
    assert session.amount_total == 1234 and session.currency == "usd"
    assert session.customer_email == "client@example.com"
    assert session.client_reference_id == "invoice-5"
    assert session.to_dict()["metadata"] == {"invoice_id": "5"}
    assert session.mode == "payment"
    assert session.url == f"{emu.base_url}/_hosted/checkout/{session.id}"
    assert session.payment_intent is None
    assert session.expires_at - session.created == 24 * 3600


def test_retrieving_and_listing_sessions_is_scoped_to_the_account(
    client: stripe.StripeClient, account_id: str
) -> None:
    other = create_account(client).id
    first = create_session(client, account_id)
    second = create_session(client, account_id)

    retrieved = client.v1.checkout.sessions.retrieve(
        first.id, options={"stripe_account": account_id}
    )
    listed = client.v1.checkout.sessions.list(
        params={"limit": 1}, options={"stripe_account": account_id}
    )
    empty = client.v1.checkout.sessions.list(options={"stripe_account": other})

    assert retrieved.id == first.id
    assert [s.id for s in listed.data] == [second.id]
    assert listed.has_more is True
    assert empty.data == []
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.checkout.sessions.retrieve(first.id, options={"stripe_account": other})
    assert excinfo.value.http_status == 404
    assert excinfo.value.code == "resource_missing"
    assert excinfo.value.user_message == f"No such checkout.session: '{first.id}'"


def test_expiring_a_session_through_the_api_sends_expired(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str, recorder: Recorder
) -> None:
    session = create_session(client, account_id)

    expired = client.v1.checkout.sessions.expire(session.id, options={"stripe_account": account_id})
    emu.deliver_pending()

    assert expired.status == "expired" and expired.url is None
    assert recorder.types == ["checkout.session.expired"]
    assert recorder.events[0]["request"]["id"] is not None
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id, options={"stripe_account": account_id})


@pytest.mark.parametrize(
    ("mutate", "unknown"),
    [
        (lambda p: p.update(colour="red"), "colour"),
        (
            lambda p: p["line_items"][0]["price_data"].update(foo="1"),
            "line_items[0][price_data][foo]",
        ),
        (lambda p: p["line_items"][0].update(bar="1"), "line_items[0][bar]"),
    ],
)
def test_unknown_parameters_are_rejected_with_stripes_message(
    client: stripe.StripeClient,
    account_id: str,
    mutate: Callable[[dict[str, Any]], None],
    unknown: str,
) -> None:
    params = session_params()
    mutate(params)

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.checkout.sessions.create(params=params, options={"stripe_account": account_id})

    assert excinfo.value.user_message == f"Received unknown parameter: {unknown}"
    assert excinfo.value.param == unknown
    assert excinfo.value.http_status == 400


def test_enum_values_outside_the_sdk_literal_are_rejected(
    client: stripe.StripeClient, account_id: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.checkout.sessions.create(
            params=session_params(mode="paymnet"), options={"stripe_account": account_id}
        )

    assert excinfo.value.param == "mode"
    assert "payment, setup, or subscription" in str(excinfo.value.user_message)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(29 * 60, False), (30 * 60, True), (24 * 3600, True), (24 * 3600 + 1, False)],
)
def test_expires_at_must_be_between_30_minutes_and_24_hours(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str, offset: int, accepted: bool
) -> None:
    emu.clock = lambda: NOW
    params = session_params(expires_at=NOW + offset)

    if accepted:
        session = client.v1.checkout.sessions.create(
            params=params, options={"stripe_account": account_id}
        )
        assert session.expires_at == NOW + offset
    else:
        with pytest.raises(stripe.InvalidRequestError) as excinfo:
            client.v1.checkout.sessions.create(
                params=params, options={"stripe_account": account_id}
            )
        assert excinfo.value.param == "expires_at"
        assert "expires_at" in str(excinfo.value.user_message)


def test_payment_mode_rejects_recurring_prices_and_subscription_mode_needs_one(
    client: stripe.StripeClient, account_id: str
) -> None:
    recurring = session_params(recurring="month")
    recurring["mode"] = "payment"
    one_time = session_params()
    one_time["mode"] = "subscription"

    with pytest.raises(stripe.InvalidRequestError) as payment_error:
        client.v1.checkout.sessions.create(params=recurring, options={"stripe_account": account_id})
    with pytest.raises(stripe.InvalidRequestError) as subscription_error:
        client.v1.checkout.sessions.create(params=one_time, options={"stripe_account": account_id})

    assert "recurring price" in str(payment_error.value.user_message)
    assert "at least one recurring price" in str(subscription_error.value.user_message)


def test_amount_below_the_currency_minimum_is_rejected(
    client: stripe.StripeClient, account_id: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        create_session(client, account_id, amount=49)

    assert "at least 0.50 USD" in str(excinfo.value.user_message)
    assert create_session(client, account_id, amount=50).amount_total == 50


def test_empty_strings_are_refused_where_a_param_cannot_be_unset(
    client: stripe.StripeClient, account_id: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        create_session(client, account_id, client_reference_id="")

    assert excinfo.value.param == "client_reference_id"
    assert "empty string" in str(excinfo.value.user_message)


def test_sessions_need_an_onboarded_account(
    client: stripe.StripeClient, emu: StripeEmulator
) -> None:
    fresh = create_account(client)

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        create_session(client, fresh.id)

    assert "cannot currently make charges" in str(excinfo.value.user_message)
    assert emu.get_account(fresh.id)["charges_enabled"] is False


def test_deauthorized_account_refuses_calls_and_sends_event(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str, recorder: Recorder
) -> None:
    emu.deauthorize(account_id)
    emu.deliver_pending()

    assert recorder.types == ["account.application.deauthorized"]
    assert recorder.events[0]["account"] == account_id
    assert recorder.events[0]["data"]["object"]["object"] == "application"
    with pytest.raises(stripe.PermissionError) as excinfo:
        create_session(client, account_id)
    assert "does not have access to account" in str(excinfo.value.user_message)


def test_live_key_makes_live_objects_invisible_to_test_keys(
    emu: StripeEmulator, client: stripe.StripeClient
) -> None:
    live = make_client(emu, key="sk_live_emulator")
    account = create_account(live)
    emu.complete_onboarding(account.id)

    session = create_session(live, account.id)

    platform_session = live.v1.checkout.sessions.create(params=session_params())

    assert session.id.startswith("cs_live_") and session.livemode is True
    with pytest.raises(stripe.PermissionError):
        client.v1.checkout.sessions.retrieve(session.id, options={"stripe_account": account.id})
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.checkout.sessions.retrieve(platform_session.id)
    assert "a similar object exists in live mode" in str(excinfo.value.user_message)


# -- idempotency and authentication -----------------------------------------------------


def test_idempotent_replay_returns_the_same_session_and_creates_one(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str
) -> None:
    options = {"stripe_account": account_id, "idempotency_key": "invoice-5-attempt-1"}

    first = client.v1.checkout.sessions.create(params=session_params(), options=options)  # type: ignore[arg-type]
    again = client.v1.checkout.sessions.create(params=session_params(), options=options)  # type: ignore[arg-type]
    listed = client.v1.checkout.sessions.list(options={"stripe_account": account_id})

    assert again.to_dict() == first.to_dict()
    assert [s.id for s in listed.data] == [first.id]
    assert [r.replayed for r in emu.requests if r.method == "POST"][-2:] == [False, True]


def test_reusing_an_idempotency_key_with_other_params_is_an_error(
    client: stripe.StripeClient, account_id: str
) -> None:
    options = {"stripe_account": account_id, "idempotency_key": "invoice-5-attempt-1"}
    client.v1.checkout.sessions.create(params=session_params(amount=1000), options=options)  # type: ignore[arg-type]

    with pytest.raises(stripe.IdempotencyError) as excinfo:
        client.v1.checkout.sessions.create(params=session_params(amount=2000), options=options)  # type: ignore[arg-type]

    assert excinfo.value.http_status == 400
    assert "same parameters" in str(excinfo.value.user_message)


def test_requests_without_an_api_key_get_401(emu: StripeEmulator) -> None:
    request = urllib.request.Request(f"{emu.base_url}/v1/accounts", data=b"country=US")

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=5)

    assert excinfo.value.code == 401
    error = json.loads(excinfo.value.read())["error"]
    assert error["type"] == "invalid_request_error"
    assert "did not provide an API key" in error["message"]
    assert emu.state.accounts == {}


def test_keys_that_are_not_secret_keys_get_401(emu: StripeEmulator) -> None:
    with pytest.raises(stripe.AuthenticationError) as excinfo:
        create_account(make_client(emu, key="pk_test_publishable"))

    assert excinfo.value.http_status == 401
    assert "Invalid API Key" in str(excinfo.value.user_message)


def test_request_log_shows_headers_and_params(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str
) -> None:
    before = len(emu.requests)
    client.v1.checkout.sessions.create(
        params=session_params(),
        options={"stripe_account": account_id, "idempotency_key": "k-log"},
    )

    (record,) = emu.requests[before:]
    assert (record.method, record.path) == ("POST", "/v1/checkout/sessions")
    assert record.stripe_account == account_id
    assert record.idempotency_key == "k-log"
    assert record.params["metadata"] == {"invoice_id": "5"}
    assert record.params["line_items"]["0"]["price_data"]["currency"] == "usd"


# -- webhooks -----------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    statuses: list[int]
    received: list[tuple[bytes, str]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers["Stripe-Signature"]))
        status = self.statuses.pop(0) if self.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"statuses": [], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhook", handler
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_webhook_verifies_with_stripes_own_check(
    receiver: tuple[str, type[_Receiver]],
) -> None:
    url, handler = receiver
    handler.statuses = [500, 200]  # first attempt fails: the emulator must retry
    with StripeEmulator(webhooks=[(url, SECRET)], retry_delay=0.01) as emu:
        client = make_client(emu)
        account = create_account(client)
        emu.complete_onboarding(account.id)
        assert emu.wait_for_deliveries(timeout=5)

    assert len(handler.received) == 2
    body, signature = handler.received[-1]
    event = stripe.Webhook.construct_event(body.decode(), signature, SECRET)
    assert event.type == "account.updated"
    assert event.account == account.id
    assert event.data.object.charges_enabled is True
    assert [(d.status, d.attempt) for d in emu.deliveries] == [(500, 1), (200, 2)]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), signature, "whsec_wrong")


def test_unreachable_webhook_is_retried_then_given_up() -> None:
    dead = f"http://127.0.0.1:{free_port()}/webhook"
    with StripeEmulator(
        webhooks=[(dead, SECRET)], auto_deliver=False, max_attempts=3, retry_delay=0.01
    ) as emu:
        account = create_account(make_client(emu))
        emu.complete_onboarding(account.id)

        made = emu.deliver_pending()

    assert [d.attempt for d in made] == [1, 2, 3]
    assert all(d.status is None and d.error for d in made)


def test_events_wait_for_deliver_pending_when_auto_delivery_is_off(
    emu: StripeEmulator, client: stripe.StripeClient, recorder: Recorder
) -> None:
    account = create_account(client)
    emu.complete_onboarding(account.id)

    assert recorder.calls == []
    made = emu.deliver_pending()

    assert [(d.event_type, d.status, d.attempt) for d in made] == [("account.updated", 200, 1)]
    body, headers = recorder.calls[0]
    assert headers["Content-Type"].startswith("application/json")
    event = stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], SECRET)
    assert event.id == emu.events[-1]["id"]
    assert emu.deliver_pending() == []


def test_callable_target_answering_error_is_retried(emu: StripeEmulator) -> None:
    statuses = iter([503, 400, 200])
    seen: list[str] = []

    def flaky(body: bytes, headers: dict[str, str]) -> int:
        seen.append(json.loads(body)["id"])
        return next(statuses)

    emu.dispatcher.targets[:] = [(flaky, SECRET)]
    account = create_account(make_client(emu))
    emu.complete_onboarding(account.id)

    made = emu.deliver_pending()

    assert [d.status for d in made] == [503, 400, 200]
    assert len(set(seen)) == 1  # retries resend the same event


def test_duplicate_deliveries_repeat_the_same_event_id(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str, recorder: Recorder
) -> None:
    emu.duplicate_deliveries = 3
    session = create_session(client, account_id)

    emu.pay(session.id)
    emu.deliver_pending()

    assert recorder.types == ["checkout.session.completed"] * 3
    assert len({event["id"] for event in recorder.events}) == 1


def test_shuffled_deliveries_are_a_seeded_permutation() -> None:
    def delivered_order(seed: int) -> tuple[list[str], list[str]]:
        target = Recorder()
        with StripeEmulator(webhooks=[(target, SECRET)], auto_deliver=False, seed=seed) as emu:
            emu.shuffle_deliveries = True
            client = make_client(emu)
            account = create_account(client)
            emu.complete_onboarding(account.id)
            for _ in range(6):
                emu.expire_session(create_session(client, account.id).id)
            emu.deliver_pending()
            emitted = [e["id"] for e in emu.events]
        return emitted, [e["id"] for e in target.events]

    emitted, delivered = delivered_order(seed=7)
    emitted_again, same_seed = delivered_order(seed=7)

    assert sorted(delivered) == sorted(emitted)
    assert delivered != emitted
    assert same_seed != emitted and len(same_seed) == len(delivered)
    assert [emitted.index(i) for i in delivered] == [emitted_again.index(i) for i in same_seed]


def test_disabled_webhooks_record_events_but_deliver_nothing(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str, recorder: Recorder
) -> None:
    emu.webhooks_enabled = False
    session = create_session(client, account_id)

    emu.pay(session.id)

    assert emu.deliver_pending() == []
    assert recorder.calls == []
    assert emu.events_of_type("checkout.session.completed")[0]["data"]["object"]["id"] == (
        session.id
    )


# -- hosted pages ---------------------------------------------------------------------------


def test_hosted_onboarding_completes_and_returns(
    emu: StripeEmulator, client: stripe.StripeClient, recorder: Recorder
) -> None:
    account = create_account(client)
    link = client.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "https://platform.example/refresh",
            "return_url": "https://platform.example/return",
        }
    )

    status, page, _ = fetch(link.url)
    assert status == 200
    assert ">Complete onboarding</button>" in page
    assert account.id in page

    status, _, headers = fetch(link.url, {"action": "complete"})
    emu.deliver_pending()

    assert status == 303
    assert headers["Location"] == "https://platform.example/return"
    refreshed = client.v1.accounts.retrieve(account.id)
    assert refreshed.charges_enabled and refreshed.payouts_enabled and refreshed.details_submitted
    assert refreshed.to_dict()["requirements"]["currently_due"] == []
    assert recorder.types == ["account.updated"]
    # Account Links work once: a second visit goes to refresh_url.
    assert fetch(link.url)[2]["Location"] == "https://platform.example/refresh"


def test_expired_onboarding_link_goes_to_refresh_url(
    emu: StripeEmulator, client: stripe.StripeClient
) -> None:
    account = create_account(client)
    link = client.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "https://platform.example/refresh",
            "return_url": "https://platform.example/return",
        }
    )

    emu.advance_clock(301)
    status, _, headers = fetch(link.url, {"action": "complete"})

    assert status == 303 and headers["Location"] == "https://platform.example/refresh"
    assert emu.get_account(account.id)["charges_enabled"] is False


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [(1234, "usd", "12.34 USD"), (500, "jpy", "500 JPY"), (1234, "kwd", "1.234 KWD")],
)
def test_checkout_page_shows_amount_in_the_currencys_decimals(
    client: stripe.StripeClient, account_id: str, amount: int, currency: str, shown: str
) -> None:
    session = create_session(client, account_id, amount=amount, currency=currency)

    status, page, _ = fetch(session.url)

    assert status == 200
    assert shown in page
    assert "Website maintenance" in page and "Invoice INV-0005" in page
    assert 'value="client@example.com"' in page
    assert '<label for="email">Email</label>' in page
    for button in ("Pay", "Pay by bank debit (delayed)", "Decline card", "Cancel"):
        assert f">{button}</button>" in page


def test_paying_on_the_checkout_page_redirects_to_success_url(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str, recorder: Recorder
) -> None:
    session = create_session(client, account_id)

    status, _, headers = fetch(session.url, {"action": "pay"})
    emu.deliver_pending()

    assert status == 303
    assert headers["Location"] == f"https://client-a.example/paid/?session={session.id}"
    paid = client.v1.checkout.sessions.retrieve(session.id, options={"stripe_account": account_id})
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert str(paid.payment_intent).startswith("pi_")
    assert recorder.types == ["checkout.session.completed"]
    assert recorder.events[0]["account"] == account_id
    assert recorder.events[0]["data"]["object"]["metadata"] == {"invoice_id": "5"}
    assert "already paid" in fetch(session.url)[1]


def test_declined_card_keeps_the_session_open(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str
) -> None:
    session = create_session(client, account_id)

    status, page, _ = fetch(session.url, {"action": "decline"})

    assert status == 200
    assert "Your card was declined." in page
    assert emu.get_session(session.id)["status"] == "open"
    assert emu.events == emu.events_of_type("account.updated")


def test_cancel_returns_to_cancel_url(client: stripe.StripeClient, account_id: str) -> None:
    session = create_session(client, account_id)

    status, _, headers = fetch(session.url, {"action": "cancel"})

    assert (status, headers["Location"]) == (303, "https://client-a.example/cancelled/")


@pytest.mark.parametrize(
    ("action", "payment_status", "event"),
    [
        ("settle", "paid", "checkout.session.async_payment_succeeded"),
        ("fail", "unpaid", "checkout.session.async_payment_failed"),
    ],
)
def test_delayed_bank_debit_settles_or_fails_from_the_processing_page(
    emu: StripeEmulator,
    client: stripe.StripeClient,
    account_id: str,
    recorder: Recorder,
    action: str,
    payment_status: str,
    event: str,
) -> None:
    session = create_session(client, account_id)

    status, _, headers = fetch(session.url, {"action": "pay_delayed"})
    assert status == 303
    processing_url = headers["Location"]
    assert processing_url == f"{session.url}/processing"
    assert emu.get_session(session.id)["payment_status"] == "unpaid"
    page = fetch(processing_url)[1]
    assert ">Settle payment</button>" in page and ">Fail payment</button>" in page

    status, _, headers = fetch(processing_url, {"action": action})
    emu.deliver_pending()

    assert status == 303
    assert headers["Location"] == f"https://client-a.example/paid/?session={session.id}"
    assert emu.get_session(session.id)["payment_status"] == payment_status
    assert recorder.types == ["checkout.session.completed", event]
    assert recorder.events[0]["data"]["object"]["payment_status"] == "unpaid"


def test_sessions_past_expires_at_expire_lazily(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str, recorder: Recorder
) -> None:
    emu.clock = lambda: NOW
    session = create_session(client, account_id, expires_at=NOW + 3600)

    emu.clock = lambda: NOW + 3600
    page = fetch(session.url)[1]
    emu.deliver_pending()

    assert "This Checkout Session has expired." in page
    assert recorder.types == ["checkout.session.expired"]
    retrieved = client.v1.checkout.sessions.retrieve(
        session.id, options={"stripe_account": account_id}
    )
    assert retrieved.status == "expired"
    assert fetch(session.url, {"action": "pay"})[0] == 200  # nothing to pay any more
    assert emu.get_session(session.id)["payment_status"] == "unpaid"


# -- subscriptions ----------------------------------------------------------------------------


def test_subscription_checkout_renewal_and_cancellation(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str, recorder: Recorder
) -> None:
    session = client.v1.checkout.sessions.create(
        params=session_params(
            recurring="month", subscription_data={"metadata": {"invoice_id": "5"}}
        ),
        options={"stripe_account": account_id},
    )

    paid = emu.pay(session.id)
    subscription_id = paid["subscription"]
    renewal = emu.renew_subscription(subscription_id)
    cancelled = emu.cancel_subscription(subscription_id)
    emu.deliver_pending()

    assert subscription_id.startswith("sub_") and paid["customer"].startswith("cus_")
    assert paid["payment_intent"] is None
    assert recorder.types == [
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice_payment.paid",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
    assert renewal["id"].startswith("in_")
    assert renewal["billing_reason"] == "subscription_cycle"
    assert renewal["parent"]["subscription_details"] == {
        "metadata": {"invoice_id": "5"},
        "subscription": subscription_id,
    }
    first_period, second_period = (
        e["data"]["object"]["period_start"] for e in recorder.events if e["type"] == "invoice.paid"
    )
    assert second_period > first_period
    assert cancelled["status"] == "canceled"
    assert all(e["account"] == account_id for e in recorder.events)


# -- fault injection ------------------------------------------------------------------------


def test_500_fault_raises_api_error_and_creates_nothing(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str
) -> None:
    emu.inject_fault("500")

    with pytest.raises(stripe.APIError) as excinfo:
        create_session(client, account_id)

    assert excinfo.value.http_status == 500
    assert emu.state.checkout_sessions == {}
    assert create_session(client, account_id).status == "open"  # one-shot fault


def test_500_fault_is_survived_by_the_clients_retry(emu: StripeEmulator, account_id: str) -> None:
    emu.inject_fault("500", path_prefix="/v1/checkout/sessions")

    session = create_session(make_client(emu, retries=1), account_id)

    posts = [r for r in emu.requests if r.path == "/v1/checkout/sessions"]
    assert [r.status for r in posts] == [500, 200]
    assert posts[0].idempotency_key == posts[1].idempotency_key
    assert list(emu.state.checkout_sessions) == [session.id]


def test_429_fault_raises_rate_limit_error(
    emu: StripeEmulator, client: stripe.StripeClient
) -> None:
    emu.inject_fault("429", count=2)

    for _ in range(2):
        with pytest.raises(stripe.RateLimitError) as excinfo:
            create_account(client)
        assert error_code(excinfo.value) == "rate_limit"

    assert create_account(client).id.startswith("acct_")


def test_timeout_fault_performs_the_request_then_answers_too_late(
    emu: StripeEmulator, account_id: str
) -> None:
    slow_client = make_client(emu, http_client=stripe.RequestsClient(timeout=0.3))
    retrying = make_client(emu, retries=1, http_client=stripe.RequestsClient(timeout=0.3))
    emu.inject_fault("timeout")

    with pytest.raises(stripe.APIConnectionError):
        create_session(slow_client, account_id)
    assert len(emu.state.checkout_sessions) == 1  # it reached Stripe

    emu.inject_fault("timeout")
    session = create_session(retrying, account_id)  # the retry replays the stored result

    assert len(emu.state.checkout_sessions) == 2
    assert emu.requests[-1].replayed is True
    assert emu.requests[-1].params == emu.requests[-2].params
    assert session.id in emu.state.checkout_sessions


def test_reset_fault_drops_the_connection_before_the_request_runs(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str
) -> None:
    emu.inject_fault("reset", path_prefix="/v1/checkout/")

    with pytest.raises(stripe.APIConnectionError):
        create_session(client, account_id)

    assert emu.state.checkout_sessions == {}
    assert emu.requests[-1].fault == "reset" and emu.requests[-1].status is None
    assert client.v1.accounts.retrieve(account_id).id == account_id


def test_unknown_fault_kind_is_refused(emu: StripeEmulator) -> None:
    with pytest.raises(ValueError, match="Unknown fault kind"):
        emu.inject_fault("503")


def test_no_request_log_until_stripe_is_called(
    emu: StripeEmulator, client: stripe.StripeClient
) -> None:
    assert emu.requests == []
    create_account(client)
    assert [(r.method, r.path) for r in emu.requests] == [("POST", "/v1/accounts")]


# -- controls over HTTP, reset, the command line ---------------------------------------------


def test_http_controls_drive_the_same_transitions(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str
) -> None:
    session = create_session(client, account_id)

    status, body = post_json(f"{emu.base_url}/_emulator/checkout/sessions/{session.id}/pay")
    missing_status, missing = post_json(f"{emu.base_url}/_emulator/checkout/sessions/cs_nope/pay")
    fault_status, _ = post_json(f"{emu.base_url}/_emulator/faults", {"kind": "429"})

    assert status == 200 and body["payment_status"] == "paid"
    assert missing_status == 404 and "cs_nope" in missing["error"]["message"]
    assert fault_status == 200
    with pytest.raises(stripe.RateLimitError):
        create_account(client)
    with urllib.request.urlopen(f"{emu.base_url}/_emulator/events", timeout=5) as response:
        types = [e["type"] for e in json.loads(response.read())["events"]]
    assert types[-1] == "checkout.session.completed"


def test_reset_forgets_everything(
    emu: StripeEmulator, client: stripe.StripeClient, account_id: str
) -> None:
    create_session(client, account_id)

    emu.reset()

    assert emu.requests == [] and emu.events == [] and emu.deliveries == []
    with pytest.raises(stripe.PermissionError):
        client.v1.accounts.retrieve(account_id)


def test_command_line_serves_until_terminated() -> None:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [
            sys.executable,
            "-m",
            "wagtail_client_billing.testing.stripe_emulator",
            "--port",
            str(port),
            "--webhook-url",
            "http://127.0.0.1:9/hook",
            "--webhook-secret",
            SECRET,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_emulator/requests", timeout=1) as response:
                    assert json.loads(response.read()) == {"requests": []}
                break
            except OSError:
                assert time.monotonic() < deadline, process.stderr.read() if process.stderr else ""
                time.sleep(0.05)
        account = create_account(
            stripe.StripeClient("sk_test_cli", base_addresses={"api": base}, max_network_retries=0)
        )
        assert account.id.startswith("acct_")
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


# -- the building blocks ------------------------------------------------------------------


def test_sign_payload_matches_stripes_verification() -> None:
    body = json.dumps(build_event("checkout.session.completed", {"id": "cs_test_1"})).encode()

    header = sign_payload(body, SECRET, timestamp=int(time.time()))

    assert stripe.WebhookSignature.verify_header(body.decode(), header, SECRET)
    stale = sign_payload(body, SECRET, timestamp=int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode(), stale, SECRET, tolerance=300)


def test_build_event_has_stripes_event_shape() -> None:
    event = build_event("account.updated", {"id": "acct_1"}, account="acct_1", livemode=True)
    platform = build_event("account.updated", {"id": "acct_1"})

    assert event["id"].startswith("evt_") and event["object"] == "event"
    assert event["account"] == "acct_1" and event["livemode"] is True
    assert event["data"]["object"] == {"id": "acct_1"}
    assert event["api_version"] == stripe.api_version
    assert "account" not in platform
    assert platform["id"] != event["id"]
    assert stripe.Event.construct_from(event, "sk_test_x").type == "account.updated"


def test_decode_form_rebuilds_nesting_and_validate_types_values() -> None:
    from stripe.params.checkout import SessionCreateParams

    decoded = decode_form(
        "mode=payment&expires_at=1800000000&line_items[0][quantity]=2"
        "&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=5"
        "&line_items[0][price_data][product_data][name]=x&metadata[0]=zero"
        "&phone_number_collection[enabled]=true"
    )

    typed = validate(decoded, SessionCreateParams)

    assert typed["line_items"][0]["quantity"] == 2
    assert typed["expires_at"] == 1_800_000_000
    assert typed["metadata"] == {"0": "zero"}  # metadata keys that look like indexes stay
    assert typed["phone_number_collection"] == {"enabled": True}
    with pytest.raises(StripeError, match="Invalid integer: soon"):
        validate(decode_form("expires_at=soon"), SessionCreateParams)
    with pytest.raises(StripeError, match="Invalid boolean: yes"):
        validate(decode_form("phone_number_collection[enabled]=yes"), SessionCreateParams)


def test_a_restarted_emulator_knows_the_objects_of_its_state_snapshot(
    emu: StripeEmulator, client: stripe.StripeClient
) -> None:
    account = create_account(client)
    snapshot = json.loads(json.dumps(emu.state.snapshot()))
    with StripeEmulator() as restarted:
        restarted.state.restore(snapshot)
        assert make_client(restarted).v1.accounts.retrieve(account.id).id == account.id
    with StripeEmulator() as fresh, pytest.raises(stripe.PermissionError):
        make_client(fresh).v1.accounts.retrieve(account.id)


def test_a_completed_subscription_session_event_names_its_subscription(
    emu: StripeEmulator, client: stripe.StripeClient, recorder: Recorder
) -> None:
    account = create_account(client)
    emu.complete_onboarding(account.id)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 4900,
                        "recurring": {"interval": "month"},
                        "product_data": {"name": "Care plan"},
                    },
                }
            ],
            "success_url": "https://client.example/ok",
            "cancel_url": "https://client.example/no",
        },
        options={"stripe_account": account.id},
    )
    emu.pay(session.id)
    (completed,) = emu.events_of_type("checkout.session.completed")
    subscription = completed["data"]["object"]["subscription"]
    assert subscription and subscription.startswith("sub_")
    assert emu.get_subscription(subscription)["status"] == "active"
