"""Webhook intake: which endpoint may sign which event, bodies that must never be a 500,
signature timestamps, and the payload shapes of the Stripe API versions the app reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType

from tests.emulator_helpers import create_account, make_client
from tests.utils import connect, make_account, make_invoice
from tests.webhook_helpers import (
    LIVE_SECRET,
    TEST_SECRET,
    completed,
    nothing_kept,
    post_event,
    pre_basil,
    session_event,
    stripe_invoice_obj,
)
from wagtail_client_billing import stripe_api
from wagtail_client_billing.models import ClientBillingLogEntry, Invoice, WebhookEvent
from wagtail_client_billing.testing.pytest_plugin import django_client_webhook

pytestmark = pytest.mark.django_db


def paid_log_entries(invoice) -> int:
    return ClientBillingLogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Invoice),
        object_id=str(invoice.pk),
        action="wagtail_client_billing.paid",
    ).count()


def status(invoice) -> str:
    invoice.refresh_from_db()
    return invoice.status


def endpoints(settings, *entries, **legacy):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "STRIPE_WEBHOOK_ENDPOINTS": list(entries),
        **legacy,
    }


# --- which endpoint may sign which event -----------------------------------------------------


def test_a_test_event_of_a_connected_account_at_the_live_connect_endpoint_is_applied(
    client, invoice
):
    # Stripe sends the test events of accounts connected in live mode to the live Connect
    # endpoint too, signed with that endpoint's secret.
    response = post_event(client, completed(invoice, "cs_test_a1current"), LIVE_SECRET)

    assert response.status_code == 200
    assert status(invoice) == "paid"
    assert WebhookEvent.objects.get().livemode is False


def test_a_test_event_delivered_to_both_endpoints_is_applied_once(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    body = json.dumps(event).encode()

    first = post_event(client, event, LIVE_SECRET, body=body)
    second = post_event(client, event, TEST_SECRET, body=body)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json() == {"id": event["id"], "received": True}
    assert WebhookEvent.objects.count() == 1
    assert status(invoice) == "paid"
    assert paid_log_entries(invoice) == 1


def test_a_live_event_signed_with_a_test_endpoint_secret_is_refused(client, connected_site):
    live_account = make_account("acct_live_a", test_mode=False)
    connect(connected_site, live_account)
    live = make_invoice(connected_site, live_account, test_mode=False, checkout_session_id="cs_l")
    event = completed(live, "cs_l")
    assert event["livemode"] is True

    assert post_event(client, event, TEST_SECRET).status_code == 400
    assert nothing_kept()
    assert status(live) == "pending"
    assert post_event(client, event, LIVE_SECRET).status_code == 200  # its own endpoint's


def test_a_test_event_without_an_account_signed_by_the_live_endpoint_is_refused(client, invoice):
    # Events on the platform's own account are never sent across modes.
    event = completed(invoice, "cs_test_a1current")
    del event["account"]

    assert post_event(client, event, LIVE_SECRET).status_code == 400
    assert nothing_kept()


def test_a_secret_two_endpoints_share_is_checked_against_each_endpoint_that_holds_it(
    client, connected_site, settings
):
    # The endpoints are searched lazily (the first that signed usually may): an event the
    # first signing endpoint may not take is still taken by a later one with the secret.
    shared = "whsec_shared_by_both"
    endpoints(
        settings,
        {"name": "test", "live": False, "connect": True, "secrets": [shared]},
        {"name": "live", "live": True, "connect": True, "secrets": ["whsec_other", shared]},
    )
    live_account = make_account("acct_live_shared", test_mode=False)
    connect(connected_site, live_account)
    live = make_invoice(connected_site, live_account, test_mode=False, checkout_session_id="cs_s")

    assert post_event(client, completed(live, "cs_s"), shared).status_code == 200
    assert status(live) == "paid"


def test_a_live_event_only_a_test_endpoint_signed_is_refused_whatever_the_order(
    client, connected_site, settings
):
    endpoints(
        settings,
        {"name": "live", "live": True, "connect": True, "secrets": [LIVE_SECRET]},
        {"name": "test", "live": False, "connect": True, "secrets": [TEST_SECRET]},
    )
    live_account = make_account("acct_live_order", test_mode=False)
    connect(connected_site, live_account)
    live = make_invoice(connected_site, live_account, test_mode=False, checkout_session_id="cs_o")

    assert post_event(client, completed(live, "cs_o"), TEST_SECRET).status_code == 400
    assert status(live) == "pending"


def test_the_shorthand_settings_are_a_test_and_a_live_connect_endpoint(client, invoice, settings):
    endpoints(
        settings,
        STRIPE_TEST_WEBHOOK_SECRETS=["whsec_short_test"],
        STRIPE_LIVE_WEBHOOK_SECRETS=["whsec_short_live"],
    )
    live_event = completed(invoice, "cs_test_a1current")
    live_event["livemode"] = True

    assert post_event(client, live_event, "whsec_short_test").status_code == 400
    assert (
        post_event(client, completed(invoice, "cs_test_a1current"), "whsec_short_live").status_code
        == 200
    )
    assert status(invoice) == "paid"


def test_endpoints_can_come_from_the_environment(client, invoice, settings, monkeypatch):
    endpoints(settings)
    settings.WAGTAIL_CLIENT_BILLING = {
        k: v for k, v in settings.WAGTAIL_CLIENT_BILLING.items() if k != "STRIPE_WEBHOOK_ENDPOINTS"
    }
    monkeypatch.setenv(
        "STRIPE_WEBHOOK_ENDPOINTS", '[{"live": false, "secrets": ["whsec_from_env"]}]'
    )
    from wagtail_client_billing.conf import billing_settings

    billing_settings.reload()
    try:
        assert (
            post_event(
                client, completed(invoice, "cs_test_a1current"), "whsec_from_env"
            ).status_code
            == 200
        )
    finally:
        billing_settings.reload()
    assert status(invoice) == "paid"


@pytest.mark.parametrize("broken", [None, "", "  whsec_padded", "not_a_whsec", 42])
def test_a_broken_secret_never_authenticates(client, invoice, settings, broken):
    endpoints(settings, {"live": False, "secrets": [broken]})
    for secret in ("", "None", "  whsec_padded", "not_a_whsec", "42"):
        assert (
            post_event(client, completed(invoice, "cs_test_a1current"), secret).status_code == 400
        )
    assert nothing_kept()


def test_a_test_payment_on_an_account_connected_in_both_modes_is_applied_once(
    stripe_emulator, client, site
):
    # The emulator routes as Stripe does: the test events of an account connected in
    # live mode and in test mode go to the live and to the test Connect endpoint.
    stripe_emulator.dispatcher.targets.clear()
    for live, secret in ((True, LIVE_SECRET), (False, TEST_SECRET)):
        stripe_emulator.add_webhook_endpoint(
            django_client_webhook(), connect=True, livemode=live, secret=secret
        )
    live_account = create_account(make_client(stripe_emulator, "sk_live_suite"))
    stripe_emulator.complete_onboarding(live_account.id)
    stripe_emulator.connect_in_both_modes(live_account.id)
    stripe_emulator.deliver_pending()
    account = make_account(live_account.id, test_mode=True)
    connect(site, account)
    invoice = make_invoice(site, account)

    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    stripe_emulator.pay(invoice.checkout_session_id)
    deliveries = [
        d for d in stripe_emulator.deliver_pending() if d.event_type == "checkout.session.completed"
    ]

    assert sorted(d.status for d in deliveries) == [200, 200]
    assert len({d.endpoint for d in deliveries}) == 2
    assert status(invoice) == "paid"
    assert paid_log_entries(invoice) == 1
    assert WebhookEvent.objects.filter(type="checkout.session.completed").count() == 1


# --- bodies that are signed but cannot be stored as they are -----------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [65, 900, 100_000])
def test_a_signed_body_nested_deeper_than_any_event_is_refused(client, invoice, depth):
    event = completed(invoice, "cs_test_a1current")
    body = json.dumps(event).replace('"metadata": {', f'"metadata": {{"deep": {nested(depth)}, ', 1)

    response = post_event(client, event, body=body.encode())

    assert response.status_code == 400
    assert response.json()["error"] == "The body is nested too deeply."
    assert nothing_kept()
    assert status(invoice) == "pending"


def test_a_signed_body_nested_as_deep_as_allowed_is_stored(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    # event > data > object > metadata > deep: the list nests to depth 64 of the whole body
    body = json.dumps(event).replace('"metadata": {', f'"metadata": {{"deep": {nested(60)}, ', 1)

    assert post_event(client, event, body=body.encode()).status_code == 200
    assert status(invoice) == "paid"


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("A\x00B", "A\ufffdB"),
        ("A\ud800B", "A\ufffdB"),
        ("A\udfffB\U0001f600", "A\ufffdB\U0001f600"),
    ],
    ids=["NUL", "lone high surrogate", "lone low surrogate and a pair"],
)
def test_nul_and_lone_surrogates_in_a_signed_event_are_stored_as_replacement_characters(
    client, invoice, name, stored
):
    # ``json.dumps`` writes them as the escapes \u0000 and \ud800, as a sender could.
    event = completed(invoice, "cs_test_a1current", customer_details={"name": name})
    event["data"]["object"]["metadata"][f"k{name}"] = name

    response = post_event(client, event)

    assert response.status_code == 200, response.content
    obj = WebhookEvent.objects.get().payload["data"]["object"]
    assert obj["customer_details"]["name"] == stored
    assert obj["metadata"][f"k{stored}"] == stored
    assert status(invoice) == "paid"


@pytest.mark.parametrize("character", ["\x00", "\ud800"], ids=["NUL", "lone surrogate"])
@pytest.mark.parametrize("field", ["id", "type", "account"])
def test_nul_or_a_lone_surrogate_in_a_stored_column_is_never_a_500(
    client, invoice, field, character
):
    event = completed(invoice, "cs_test_a1current")
    event[field] += character

    response = post_event(client, event)

    assert response.status_code == 200, response.content
    record = WebhookEvent.objects.get()
    assert getattr(record, "event_id" if field == "id" else field) == event[field][:-1] + "\ufffd"
    # Another id is still this invoice's payment; another type or account is not the app's.
    expected = ("processed", "paid") if field == "id" else ("ignored", "pending")
    assert (record.outcome, status(invoice)) == expected


# --- signature timestamps -----------------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "offset",
    [301, 3600, 10 * 365 * 24 * 3600],
    ids=["tolerance and a second", "an hour", "ten years"],
)
def test_a_signature_timestamp_in_the_future_is_refused(client, invoice, offset):
    with time_machine.travel(NOW, tick=False):
        ahead = int(NOW.timestamp()) + offset
        response = post_event(client, completed(invoice, "cs_test_a1current"), timestamp=ahead)

    assert response.status_code == 400
    assert response.json()["error"] == "The signature's timestamp is in the future."
    assert nothing_kept()


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_a_clock_skew_within_the_tolerance_is_accepted(client, invoice, offset):
    with time_machine.travel(NOW, tick=False):
        at = int(NOW.timestamp()) + offset
        response = post_event(client, completed(invoice, "cs_test_a1current"), timestamp=at)

    assert response.status_code == 200


def test_the_tolerance_setting_applies_both_ways(client, invoice, settings):
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, "WEBHOOK_TOLERANCE": 30}
    with time_machine.travel(NOW, tick=False):
        now = int(NOW.timestamp())
        event = completed(invoice, "cs_test_a1current")
        assert post_event(client, event, timestamp=now + 31).status_code == 400
        assert post_event(client, event, timestamp=now - 31).status_code == 400
        assert post_event(client, event, timestamp=now + 30).status_code == 200


# --- the payload shapes of the API versions the app reads ----------------------------------------


@pytest.mark.parametrize(
    ("api_version", "shape"),
    [
        (stripe_api.STRIPE_API_VERSION, lambda obj: obj),
        ("2025-03-31.basil", lambda obj: obj),
        ("2024-06-20", pre_basil),
    ],
    ids=["the app's version", "basil", "before basil"],
)
def test_a_renewal_is_counted_from_invoice_paid_of_each_known_shape(
    client, monthly, api_version, shape
):
    post_event(client, completed(monthly, "cs_test_a1sub", payment_intent=None))
    renewal = shape(stripe_invoice_obj(monthly, "sub_test_1", "subscription_cycle", "in_renew1"))
    event = session_event("invoice.paid", monthly, renewal, api_version=api_version)

    response = post_event(client, event)

    assert response.status_code == 200
    monthly.refresh_from_db()
    assert (monthly.status, monthly.renewals_paid) == ("paid", 1)
    assert WebhookEvent.objects.get(event_id=event["id"]).outcome == "processed"


def test_an_event_stored_by_the_one_statement_insert_reads_back_with_every_default(db):
    from wagtail_client_billing.testing.webhooks import build_event
    from wagtail_client_billing.webhooks import intake

    event = build_event("checkout.session.completed", {"object": "checkout.session", "id": "cs_1"})
    text = json.dumps(event)
    with time_machine.travel(datetime(2031, 3, 4, 17, 30, tzinfo=UTC), tick=False):
        record, created = intake.store(intake.parse_event(text), text)

    stored = WebhookEvent.objects.get(pk=record.pk)
    assert created and stored.event_id == event["id"] and stored.type == event["type"]
    assert stored.payload == event
    assert stored.received_at == datetime(2031, 3, 4, 17, 30, tzinfo=UTC)
    assert (stored.outcome, stored.attempts, stored.error, stored.traceback) == (
        WebhookEvent._meta.get_field("outcome").default,
        0,
        "",
        "",
    )
    assert stored.processed_at is None and stored.invoice_id is None
    # The instance the view answers from is the stored row.
    assert (record.event_id, record.outcome) == (stored.event_id, stored.outcome)
