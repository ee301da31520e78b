"""Hostile requests to the two doors anyone on the internet can knock on: the Stripe
webhook endpoint and the client's payment link (with its return, cancel and JSON views).

Every request goes through Django's test client into the real views. A hostile request
gets a 4xx and changes nothing: no invoice moves, and nothing is stored unless the
request was genuinely signed by Stripe. Hypothesis then throws arbitrary bodies,
headers, signatures and tokens at both doors and no answer may be a 500.
"""

from __future__ import annotations

import json
import string
from datetime import timedelta

import pytest
import time_machine
from django.test import Client, TestCase
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.utils import make_invoice
from tests.webhook_helpers import (
    LIVE_SECRET,
    TEST_SECRET,
    completed,
    nothing_kept,
    post_event,
    session_event,
    session_obj,
    webhook_url,
)
from wagtail_client_billing.conf import billing_settings
from wagtail_client_billing.models import Invoice, WebhookDelivery, WebhookEvent
from wagtail_client_billing.testing.webhooks import build_event, sign_payload

pytestmark = pytest.mark.django_db

MB = 1024 * 1024

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def invoice(connected_site, account):
    return make_invoice(connected_site, account, checkout_session_id="cs_test_a1fuzz")


def unchanged(invoice: Invoice) -> bool:
    fresh = Invoice.objects.get(pk=invoice.pk)
    return (fresh.status, fresh.paid_at, fresh.payment_intent_id, fresh.late_payment) == (
        "pending",
        None,
        "",
        False,
    )


def post_signed(client, body: bytes, secret: str = TEST_SECRET, timestamp: int | None = None):
    return post_event(client, {}, secret, timestamp=timestamp, body=body)


# --- size ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [MB, MB + 1, 5 * MB])
def test_bodies_of_a_megabyte_and_more_are_refused_with_413_even_when_signed(client, invoice, size):
    """With the default limit: a genuine signature does not get a huge body parsed."""
    assert billing_settings.WEBHOOK_MAX_BODY_BYTES < MB
    event = completed(invoice, "cs_test_a1fuzz")
    event["data"]["object"]["metadata"]["padding"] = ""
    filler = size - len(json.dumps(event).encode())
    event["data"]["object"]["metadata"]["padding"] = "x" * filler
    body = json.dumps(event).encode()
    assert len(body) == size

    response = post_signed(client, body)

    assert response.status_code == 413
    assert nothing_kept()
    assert unchanged(invoice)


def test_a_body_just_under_the_limit_is_still_read(client, invoice):
    """The limit is where it says: a signed body just under it is applied (not a 413)."""
    event = completed(invoice, "cs_test_a1fuzz")
    event["data"]["object"]["metadata"]["padding"] = ""
    limit = billing_settings.WEBHOOK_MAX_BODY_BYTES
    event["data"]["object"]["metadata"]["padding"] = "x" * (limit - len(json.dumps(event)) - 1)

    assert post_signed(client, json.dumps(event).encode()).status_code == 200
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"


# --- signed, but not a Stripe event -------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"id": "evt_1", "object": "event",',
        b"[]",
        b"null",
        b"42",
        b'"evt_1"',
        b"\x00\x01\x02",
        b"",
        b'{"id": "evt_\xff", "object": "event"}',
        '{"id": "evt_1", "object": "event", "type": "x"}\u2028'.encode(),
    ],
    ids=lambda b: repr(b[:20]),
)
def test_signed_bodies_that_are_not_json_events_are_refused(client, invoice, body):
    assert post_signed(client, body).status_code == 400
    assert nothing_kept()
    assert unchanged(invoice)


def _event_with(invoice, **changes):
    event = completed(invoice, "cs_test_a1fuzz")
    for key, value in changes.items():
        if value is _MISSING:
            del event[key]
        else:
            event[key] = value
    return event


_MISSING = object()


@pytest.mark.parametrize(
    "changes",
    [
        {"id": _MISSING},
        {"id": 12345},
        {"id": ""},
        {"id": ["evt_1"]},
        {"object": "checkout.session"},
        {"object": _MISSING},
        {"type": _MISSING},
        {"type": ["checkout.session.completed"]},
        {"type": ""},
        {"livemode": _MISSING},
        {"livemode": "false"},
        {"livemode": 0},
        {"data": _MISSING},
        {"data": []},
        {"data": {"object": "cs_test_a1fuzz"}},
        {"data": {"object": None}},
        {"data": {}},
        {"account": 123},
        {"account": ["acct_test_a"]},
    ],
    ids=lambda c: ",".join(f"{k}={'missing' if v is _MISSING else v!r}" for k, v in c.items()),
)
def test_signed_events_with_wrong_types_or_missing_fields_are_refused(client, invoice, changes):
    response = post_event(client, _event_with(invoice, **changes))
    assert response.status_code == 400
    assert nothing_kept()
    assert unchanged(invoice)


@pytest.mark.parametrize(
    "fields",
    [
        {"metadata": ["invoice_id", "1"]},
        {"metadata": "invoice_id=1"},
        {"metadata": {"invoice_id": {"$gt": 0}}},
        {"metadata": {"invoice_id": "1" * 400}},
        {"metadata": {"invoice_id": "-1"}},
        {"client_reference_id": {"id": 1}},
        {"client_reference_id": 10**30},
        {"expires_at": "tomorrow"},
        {"expires_at": 10**20},
        {"payment_status": ["paid"]},
        {"status": None},
        {"status": {"complete": True}},
        {"id": {"id": "cs_test_a1fuzz"}},
        {"payment_intent": 7},
        {"customer": ["cus_1"]},
        {"subscription": {"id": 5}},
    ],
    ids=lambda f: ",".join(f"{k}={str(v)[:20]}" for k, v in f.items()),
)
def test_a_genuine_event_with_garbage_inside_is_never_a_500_and_pays_nothing(
    client, connected_site, account, fields
):
    """Only Stripe can sign, but an object of an unexpected shape (a new API version, a
    bug) must not crash the endpoint into an endless retry loop, nor mark anything paid
    on the strength of a field it could not read."""
    other = make_invoice(connected_site, account, checkout_session_id="cs_test_a1other")
    obj = session_obj(other, "cs_test_a1other", status="open", payment_status="unpaid", url=None)
    obj.update(fields)
    event = session_event("checkout.session.completed", other, obj)

    response = post_event(client, event)

    assert response.status_code in (200, 400), response.content
    assert unchanged(other)


def test_huge_metadata_within_the_limit_is_stored_and_ignored_for_an_unknown_invoice(
    client, invoice
):
    event = completed(invoice, "cs_test_unknown")
    event["data"]["object"]["metadata"] = {f"k{i}": "v" * 400 for i in range(800)}
    event["data"]["object"]["client_reference_id"] = None
    assert len(json.dumps(event)) < billing_settings.WEBHOOK_MAX_BODY_BYTES

    response = post_event(client, event)

    assert response.status_code == 200
    assert WebhookEvent.objects.get().outcome == "ignored"
    assert unchanged(invoice)


def test_unknown_event_types_from_any_account_change_nothing(client, invoice):
    for type_ in ("charge.refunded", "payout.paid", "x" * 100, "checkout.session.completed.v2"):
        event = build_event(type_, {"id": "ch_1", "object": "charge"}, account="acct_test_a")
        assert post_event(client, event).status_code == 200
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {"ignored"}
    assert unchanged(invoice)


# --- replays and the other mode's secret -------------------------------------------------------------


def test_a_captured_delivery_replayed_after_the_tolerance_is_refused(client, invoice):
    """Someone who recorded a genuine delivery cannot replay it once the window closed."""
    event = completed(invoice, "cs_test_a1fuzz", paid=False, payment_intent="pi_replay")
    body = json.dumps(event).encode()
    signature = sign_payload(body, TEST_SECRET)

    def deliver():
        return client.post(
            webhook_url(),
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )

    assert deliver().status_code == 200  # the genuine delivery
    Invoice.objects.filter(pk=invoice.pk).update(status="pending")  # as if it had failed since
    WebhookDelivery.objects.all().delete()  # and the attacker hopes the records are gone too
    WebhookEvent.objects.all().delete()

    tolerance = billing_settings.WEBHOOK_TOLERANCE
    with time_machine.travel(timezone.now() + timedelta(seconds=tolerance + 5)):
        response = deliver()

    assert response.status_code == 400
    assert nothing_kept()
    assert Invoice.objects.get(pk=invoice.pk).status == "pending"


def test_a_replay_within_the_tolerance_is_a_duplicate_and_applies_nothing_twice(client, invoice):
    event = completed(invoice, "cs_test_a1fuzz")
    body = json.dumps(event).encode()
    signature = sign_payload(body, TEST_SECRET)
    for _ in range(3):
        with TestCase.captureOnCommitCallbacks(execute=True):  # the queued task runs too
            response = client.post(
                webhook_url(),
                data=body,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=signature,
            )
        assert response.status_code == 200
    assert response.json() == {"id": event["id"], "received": True}
    assert WebhookEvent.objects.count() == 1
    assert not WebhookDelivery.objects.exists()  # each replay admitted, none kept
    from wagtail_client_billing.models import ClientBillingLogEntry

    assert (
        ClientBillingLogEntry.objects.filter(
            object_id=str(invoice.pk), action="wagtail_client_billing.paid"
        ).count()
        == 1
    )


def test_a_test_event_signed_by_a_live_platform_endpoint_is_refused(client, invoice, settings):
    """Stripe sends a live endpoint test events only when it is a Connect endpoint."""
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "STRIPE_WEBHOOK_ENDPOINTS": [{"live": True, "connect": False, "secrets": [LIVE_SECRET]}],
    }
    response = post_event(client, completed(invoice, "cs_test_a1fuzz"), LIVE_SECRET)
    assert response.status_code == 400
    assert nothing_kept()
    assert unchanged(invoice)


def test_a_signature_header_naming_many_schemes_and_secrets_is_only_as_good_as_its_v1(
    client, invoice
):
    body = json.dumps(completed(invoice, "cs_test_a1fuzz")).encode()
    header = "t=1,v0=" + "0" * 64 + ",v1=" + "f" * 64 + ",v1=,t=" + "9" * 40
    response = client.post(
        webhook_url(), data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 400
    assert unchanged(invoice)


# --- fuzzing: the webhook view -----------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

signatures = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.builds(
        lambda t, v: f"t={t},v1={v}",
        st.integers(min_value=-(2**40), max_value=2**40),
        st.text(alphabet=string.hexdigits, max_size=70),
    ),
)


@FUZZ
@given(
    body=st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()),
    signature=signatures,
    content_type=st.sampled_from(
        ["application/json", "text/plain", "multipart/form-data; boundary=x", ""]
    ),
)
def test_fuzz_unsigned_webhook_requests_never_500_and_store_nothing(
    invoice, body, signature, content_type
):
    client = Client()
    extra = {} if signature is None else {"HTTP_STRIPE_SIGNATURE": signature}
    response = client.post(webhook_url(), data=body, content_type=content_type, **extra)
    assert response.status_code in (400, 413), response.content[:300]
    assert nothing_kept()
    assert unchanged(invoice)


event_types = st.sampled_from(
    [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "invoice.paid",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "account.updated",
        "account.application.deauthorized",
        "charge.refunded",
    ]
)


@FUZZ
@given(
    type_=event_types,
    obj=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "object",
                "status",
                "payment_status",
                "metadata",
                "client_reference_id",
                "payment_intent",
                "subscription",
                "customer",
                "expires_at",
                "requirements",
                "charges_enabled",
                "billing_reason",
                "parent",
                "subscription_details",
                "status_transitions",
                "amount_paid",
            ]
        ),
        json_values,
        max_size=10,
    ),
    event_account=st.one_of(st.none(), st.just("acct_test_a"), st.text(max_size=20)),
    created=st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**40)),
)
def test_fuzz_signed_events_of_any_shape_never_500_and_pay_nothing(
    connected_site, account, type_, obj, event_account, created
):
    """Genuinely signed events whose objects hold anything at all: no 500, and no
    invoice is paid on a field that is not what Stripe sends for a payment."""
    target = make_invoice(connected_site, account, checkout_session_id="cs_test_a1target")
    obj = {**obj}
    if isinstance(obj.get("metadata"), dict) and obj["metadata"]:
        obj["metadata"] = {**obj["metadata"], "invoice_id": str(target.pk)}
    if obj.get("payment_status") == "paid" or obj.get("status") == "complete":
        obj["payment_status"] = "unpaid"  # a real payment is not what this fuzz is about
        obj["status"] = "open"
    event = build_event(type_, obj)
    if event_account is not None:
        event["account"] = event_account
    if created is not None:
        event["created"] = created

    response = post_event(Client(), event)

    assert response.status_code in (200, 400), (response.status_code, response.content[:500])
    assert Invoice.objects.get(pk=target.pk).status == "pending"


# --- fuzzing: the client's pages ------------------------------------------------------------------

tokens = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=100),
    st.text(min_size=1, max_size=80).filter(lambda t: "/" not in t and "\x00" not in t),
)


@FUZZ
@given(
    view=st.sampled_from(["pay", "return", "cancel", "invoices"]),
    token=tokens,
    query=st.dictionaries(
        st.sampled_from(["session_id", "next", "token", "id", "q"]),
        st.text(max_size=60).filter(lambda t: "\x00" not in t),
        max_size=3,
    ),
    host=st.sampled_from(["testserver", "evil.example", "client-a.example:8080", "[::1]"]),
    method=st.sampled_from(["get", "post", "head", "put"]),
)
def test_fuzz_public_pages_never_500_and_leak_nothing(invoice, view, token, query, host, method):
    from urllib.parse import quote

    path = (
        f"/billing/invoices/{quote(token, safe='')}.json"
        if view == "invoices"
        else f"/billing/{view}/{quote(token, safe='')}/"
    )
    response = getattr(Client(), method)(path, query if method == "get" else None, HTTP_HOST=host)
    assert response.status_code in (200, 303, 404, 405, 410, 503), response.status_code
    assert response.status_code != 303 or token == invoice.token
    body = response.content
    assert invoice.email.encode() not in body
    assert invoice.token.encode() not in body or token == invoice.token
    assert unchanged(invoice)


@FUZZ
@given(
    session_id=st.text(max_size=300).filter(lambda t: "\x00" not in t).map(lambda t: "cs_" + t),
    host=st.sampled_from(["testserver", "evil.example"]),
)
def test_fuzz_the_return_view_with_any_session_id_pays_nothing(invoice, session_id, host):
    """A forged ``session_id`` on a genuine return URL: Stripe (here: unreachable, or an
    unknown id) is the only judge, and the client still goes to the success URL."""
    response = Client().get(
        f"/billing/return/{invoice.token}/", {"session_id": session_id}, HTTP_HOST=host
    )
    assert response.status_code == 303
    assert response["Location"] == invoice.success_url
    assert unchanged(invoice)
