"""The gateway against the Stripe emulator, through the real ``stripe`` client."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.utils import timezone
from wagtail import hooks as wagtail_hooks

import wagtail_client_billing
from tests.utils import make_account, make_invoice, make_site
from wagtail_client_billing import gateway, stripe_api
from wagtail_client_billing.hooks import CHECKOUT_PARAMS
from wagtail_client_billing.models import BillingType, WebhookEvent

pytestmark = pytest.mark.django_db


def new_account(test_mode: bool = True, *, key: str = "acct-1"):
    return gateway.create_account(
        test_mode=test_mode,
        country="us",
        privacy_policy_url="https://agency.example/privacy",
        terms_of_service_url="https://agency.example/terms",
        site_url="https://client-a.example/",
        idempotency_key=f"wcb-test-{key}-{test_mode}",
        email="owner@client-a.example",
    )


@pytest.fixture
def emulated_invoice(stripe_emulator):
    """Build invoices on accounts that exist, onboarded, in the emulator (either mode)."""

    made = []

    def build(test_mode: bool = True, **kwargs):
        made.append(test_mode)
        state = new_account(test_mode, key=f"invoice-{len(made)}")
        stripe_emulator.complete_onboarding(state.id)
        account = make_account(state.id, test_mode=test_mode)
        return make_invoice(make_site(f"client-{state.id.lower()}.example"), account, **kwargs)

    return build


def checkout(invoice, **kwargs):
    kwargs.setdefault("success_url", "https://client.example/thanks")
    kwargs.setdefault("cancel_url", "https://client.example/cancelled")
    kwargs.setdefault("expires_at", invoice.expires_at)
    return gateway.create_checkout_session(invoice, **kwargs)


def api_calls(emulator, path_prefix="/v1/"):
    return [r for r in emulator.requests if r.path.startswith(path_prefix)]


def session_creates(emulator):
    return [r for r in emulator.requests if (r.method, r.path) == ("POST", "/v1/checkout/sessions")]


# --- accounts --------------------------------------------------------------------------


@pytest.mark.parametrize("test_mode", [True, False])
def test_create_account_makes_a_full_dashboard_account_the_owner_pays_fees_on(
    stripe_emulator, test_mode
):
    state = new_account(test_mode)

    assert state.id.startswith("acct_")
    assert state.country == "US"
    assert not state.charges_enabled
    assert "business_type" in state.requirements_due
    stored = stripe_emulator.get_account(state.id)
    assert stored["livemode"] is (not test_mode)
    assert stored["controller"]["stripe_dashboard"]["type"] == "full"
    assert stored["controller"]["fees"]["payer"] == "account"
    assert stored["controller"]["losses"]["payments"] == "stripe"
    assert stored["business_profile"]["url"] == "https://client-a.example/"
    assert stored["email"] == "owner@client-a.example"
    assert stored["metadata"]["platform"] == "wagtail_client_billing"
    assert stored["metadata"]["site"] == "https://client-a.example/"
    assert stored["metadata"]["terms_of_service_url"] == "https://agency.example/terms"
    (request,) = api_calls(stripe_emulator)
    assert request.idempotency_key == f"wcb-test-acct-1-{test_mode}"
    assert request.params["controller"]["requirement_collection"] == "stripe"


def test_create_account_retried_with_the_same_key_makes_one_account(stripe_emulator):
    first = new_account()
    second = new_account()

    assert first.id == second.id
    assert [r.replayed for r in api_calls(stripe_emulator)] == [False, True]


def test_account_link_sends_the_owner_to_onboarding_and_back(stripe_emulator):
    state = new_account()

    url = gateway.create_account_link(
        test_mode=True,
        account_id=state.id,
        refresh_url="https://platform.example/refresh",
        return_url="https://platform.example/return",
    )
    again = gateway.create_account_link(
        test_mode=True,
        account_id=state.id,
        refresh_url="https://platform.example/refresh",
        return_url="https://platform.example/return",
    )

    assert url.startswith(stripe_emulator.base_url + "/_hosted/onboarding/")
    assert again != url  # links are single use: each call gets a fresh one
    link_requests = api_calls(stripe_emulator, "/v1/account_links")
    assert [r.params["type"] for r in link_requests] == ["account_onboarding"] * 2
    assert link_requests[0].params["return_url"] == "https://platform.example/return"
    keys = [r.idempotency_key for r in link_requests]
    assert all(key and state.id in key for key in keys)
    assert keys[0] != keys[1]


def test_retrieve_account_reports_what_stripe_still_needs_then_charges_enabled(
    stripe_emulator,
):
    state = new_account()

    before = gateway.retrieve_account(test_mode=True, account_id=state.id)
    stripe_emulator.complete_onboarding(state.id)
    after = gateway.retrieve_account(test_mode=True, account_id=state.id)

    assert not before.charges_enabled
    assert "external_account" in before.requirements_due
    assert before.disabled_reason == "requirements.past_due"
    assert after.charges_enabled and after.payouts_enabled and after.details_submitted
    assert after.requirements_due == []
    assert after.disabled_reason == ""


def test_delete_account_removes_a_test_account(stripe_emulator):
    state = new_account()

    gateway.delete_account(test_mode=True, account_id=state.id)

    with pytest.raises(gateway.PermissionDenied):
        gateway.retrieve_account(test_mode=True, account_id=state.id)


def test_delete_account_refuses_a_live_account_without_asking_stripe(stripe_emulator):
    state = new_account(test_mode=False)
    calls_before = len(stripe_emulator.requests)

    with pytest.raises(gateway.InvalidRequest, match="Live Stripe accounts are never deleted"):
        gateway.delete_account(test_mode=False, account_id=state.id)

    assert len(stripe_emulator.requests) == calls_before
    assert stripe_emulator.get_account(state.id)["id"] == state.id


# --- checkout sessions -----------------------------------------------------------------


def test_one_time_checkout_is_a_direct_charge_on_the_connected_account(
    stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice(amount=12500, currency="EUR", description="Website build")

    session = checkout(invoice)

    assert session.id.startswith("cs_test_")
    assert session.url.startswith(stripe_emulator.base_url)
    assert (session.status, session.payment_status) == ("open", "unpaid")
    assert session.client_reference_id == str(invoice.pk)
    assert session.metadata == {
        "invoice_id": str(invoice.pk),
        "invoice_number": invoice.number,
        "site_id": str(invoice.site_id),
        "platform": "wagtail_client_billing",
    }
    (request,) = session_creates(stripe_emulator)
    assert request.stripe_account == invoice.account.stripe_id
    assert request.idempotency_key.startswith(f"wcb-invoice-{invoice.pk}-checkout-0-")
    params = request.params
    assert params["mode"] == "payment"
    assert params["customer_email"] == "client@example.com"
    price = params["line_items"]["0"]["price_data"]
    assert price["currency"] == "eur"
    assert price["unit_amount"] == "12500"
    assert price["product_data"]["name"] == "Website build"
    assert invoice.number in price["product_data"]["description"]
    assert params["payment_intent_data"]["metadata"]["invoice_id"] == str(invoice.pk)
    assert "application_fee_amount" not in params["payment_intent_data"]


def test_checkout_without_description_names_the_product_after_the_invoice_number(
    stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice(description="")

    checkout(invoice)

    (request,) = session_creates(stripe_emulator)
    assert request.params["line_items"]["0"]["price_data"]["product_data"]["name"] == (
        invoice.number
    )


@pytest.mark.parametrize(
    ("billing_type", "interval"),
    [(BillingType.WEEKLY, "week"), (BillingType.MONTHLY, "month"), (BillingType.YEARLY, "year")],
)
def test_recurring_invoice_checks_out_as_a_subscription(
    stripe_emulator, emulated_invoice, billing_type, interval
):
    invoice = emulated_invoice(billing_type=billing_type)

    session = checkout(invoice)
    stripe_emulator.pay(session.id)
    paid = gateway.retrieve_checkout_session(
        test_mode=True, account_id=invoice.account.stripe_id, session_id=session.id
    )

    (request,) = session_creates(stripe_emulator)
    assert request.params["mode"] == "subscription"
    price = request.params["line_items"]["0"]["price_data"]
    assert price["recurring"] == {"interval": interval}
    assert request.params["subscription_data"]["metadata"]["invoice_id"] == str(invoice.pk)
    assert "payment_intent_data" not in request.params
    assert paid.subscription.startswith("sub_")
    assert (paid.status, paid.payment_status) == ("complete", "paid")


def test_live_invoice_uses_the_live_key(stripe_emulator, emulated_invoice):
    invoice = emulated_invoice(test_mode=False)

    session = checkout(invoice)

    assert session.id.startswith("cs_live_")
    assert stripe_emulator.get_session(session.id)["livemode"] is True


def test_retried_checkout_returns_the_same_session(stripe_emulator, emulated_invoice):
    invoice = emulated_invoice()

    first = checkout(invoice)
    second = checkout(invoice)

    assert first.id == second.id
    assert len(stripe_emulator.state.checkout_sessions) == 1
    requests = session_creates(stripe_emulator)
    assert [r.replayed for r in requests] == [False, True]


def test_a_new_attempt_or_a_changed_request_gets_a_new_session_not_a_conflict(
    stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice()

    first = checkout(invoice)
    changed = checkout(invoice, success_url="https://client.example/thanks-again")
    invoice.checkout_attempt += 1
    next_attempt = checkout(invoice)

    assert len({first.id, changed.id, next_attempt.id}) == 3
    keys = [r.idempotency_key for r in session_creates(stripe_emulator)]
    assert keys[2].startswith(f"wcb-invoice-{invoice.pk}-checkout-1-")


def test_application_fee_is_taken_rounded_down_when_configured(
    stripe_emulator, emulated_invoice, settings
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "APPLICATION_FEE_PERCENT": 2.5,
    }
    one_time = emulated_invoice(amount=12345)
    recurring = emulated_invoice(amount=12345, billing_type=BillingType.MONTHLY)

    checkout(one_time)
    checkout(recurring)

    payment, subscription = session_creates(stripe_emulator)
    assert payment.params["payment_intent_data"]["application_fee_amount"] == "308"
    assert subscription.params["subscription_data"]["application_fee_percent"] == "2.5"


def test_a_fee_percent_stripe_would_refuse_is_never_sent(
    stripe_emulator, emulated_invoice, settings
):
    """2.555 passes no check Stripe makes: the subscription Checkout would fail for every
    client, so the gateway refuses it with the setting's name before any request."""
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "APPLICATION_FEE_PERCENT": 2.555,
    }
    recurring = emulated_invoice(amount=12345, billing_type=BillingType.MONTHLY)
    one_time = emulated_invoice(amount=12345)
    calls_before = len(stripe_emulator.requests)

    for invoice in (recurring, one_time):
        with pytest.raises(gateway.NotConfigured) as excinfo:
            checkout(invoice)
        assert "APPLICATION_FEE_PERCENT" in str(excinfo.value)

    assert len(stripe_emulator.requests) == calls_before
    assert stripe_emulator.state.checkout_sessions == {}


@pytest.mark.parametrize(
    ("percent", "accepted"),
    [(2.555, False), (150, False), (-1, False), (99.99, True), (0.01, True)],
)
def test_a_hook_fee_percent_is_held_to_stripes_limits(
    stripe_emulator, emulated_invoice, percent, accepted
):
    invoice = emulated_invoice(amount=12345, billing_type=BillingType.MONTHLY)

    def set_fee(invoice, params):
        params["subscription_data"]["application_fee_percent"] = percent

    with wagtail_hooks.register_temporarily(CHECKOUT_PARAMS, set_fee):
        if accepted:
            checkout(invoice)
            (request,) = session_creates(stripe_emulator)
            assert request.params["subscription_data"]["application_fee_percent"] == str(percent)
            return
        with pytest.raises(gateway.InvalidRequest) as excinfo:
            checkout(invoice)

    assert excinfo.value.param == "subscription_data[application_fee_percent]"
    assert "two decimal places" in str(excinfo.value)
    assert session_creates(stripe_emulator) == []


def test_application_fee_for_zero_decimal_currency_is_whole_units():
    assert gateway.application_fee_amount(999, 10) == 99
    assert gateway.application_fee_amount(50, "0.5") == 0
    assert gateway.application_fee_amount(12345, 0) == 0


@pytest.mark.parametrize(
    ("lifetime", "low", "high"),
    [
        (timedelta(minutes=5), timedelta(minutes=30), timedelta(minutes=35)),
        (timedelta(hours=-2), timedelta(minutes=30), timedelta(minutes=35)),
        (timedelta(days=3), timedelta(hours=23, minutes=45), timedelta(hours=24)),
        (timedelta(hours=5), timedelta(hours=5) - timedelta(seconds=1), timedelta(hours=5)),
    ],
    ids=["too-soon", "already-past", "too-late", "inside-window"],
)
def test_checkout_expiry_is_clamped_into_stripes_window(
    stripe_emulator, emulated_invoice, lifetime, low, high
):
    invoice = emulated_invoice()
    now = timezone.now()

    session = checkout(invoice, expires_at=now + lifetime)

    assert now + low <= session.expires_at <= now + high


def test_checkout_expiry_cap_is_stable_across_a_quick_retry():
    now = timezone.now().replace(minute=7, second=0, microsecond=0)
    later = now + timedelta(seconds=40)
    far = now + timedelta(days=7)

    assert gateway.clamp_checkout_expiry(far, now) == gateway.clamp_checkout_expiry(far, later)


def test_hook_may_add_tax_rates_and_locale(stripe_emulator, emulated_invoice):
    invoice = emulated_invoice()
    # Stripe refuses a tax rate that does not exist on the account: make one there.
    rate_id = gateway.create_tax_rate(
        test_mode=invoice.test_mode,
        account_id=invoice.account.stripe_id,
        display_name="VAT",
        percentage=Decimal(20),
        inclusive=True,
    )

    def add_tax(invoice, params):
        params["line_items"][0]["tax_rates"] = [rate_id]
        params["locale"] = "de"
        return params

    with wagtail_hooks.register_temporarily(CHECKOUT_PARAMS, add_tax):
        session = checkout(invoice)

    assert stripe_emulator.get_session(session.id)["locale"] == "de"
    (request,) = session_creates(stripe_emulator)
    assert request.params["line_items"]["0"]["tax_rates"] == {"0": rate_id}
    assert stripe_emulator.get_session(session.id)["total_details"]["amount_tax"] > 0


@pytest.mark.parametrize(
    ("mutate", "param"),
    [
        (lambda p: p.update(sucess_url="https://x.example"), "sucess_url"),
        (
            lambda p: p["line_items"][0]["price_data"].update(unit_ammount=5),
            "line_items[0][price_data][unit_ammount]",
        ),
        (lambda p: p.update(expires_at="tomorrow"), "expires_at"),
        (lambda p: p["metadata"].update(order=42), "metadata[order]"),
        (lambda p: p.update(stripe_account="acct_someone_else"), "stripe_account"),
    ],
    ids=["misspelt", "nested-misspelt", "wrong-type", "metadata-not-string", "request-option"],
)
def test_hook_params_stripe_would_refuse_are_refused_before_any_request(
    stripe_emulator, emulated_invoice, mutate, param
):
    invoice = emulated_invoice()
    calls_before = len(stripe_emulator.requests)

    def bad_hook(invoice, params):
        mutate(params)
        return params

    with (
        wagtail_hooks.register_temporarily(CHECKOUT_PARAMS, bad_hook),
        pytest.raises(gateway.InvalidRequest) as excinfo,
    ):
        checkout(invoice)

    assert excinfo.value.param == param
    assert param in str(excinfo.value)
    assert len(stripe_emulator.requests) == calls_before
    assert stripe_emulator.state.checkout_sessions == {}


def fill_metadata(metadata, keys, *, key_length=8, value_length=10):
    """Add keys to ``metadata`` until it has ``keys``, each ``key_length`` long at most."""
    index = 0
    while len(metadata) < keys:
        metadata[f"k{index}".ljust(key_length, "x")] = "v" * value_length
        index += 1


@pytest.mark.parametrize("where", ["metadata", "payment_intent_data", "product_data"])
@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ({"keys": 51}, "at most 50 keys"),
        ({"keys": 6, "key_length": 41}, "at most 40 characters"),
        ({"keys": 6, "value_length": 501}, "at most 500 characters"),
    ],
    ids=["51-keys", "41-char-key", "501-char-value"],
)
def test_hook_metadata_over_stripes_limits_is_refused_before_any_request(
    stripe_emulator, emulated_invoice, where, limits, problem
):
    invoice = emulated_invoice()

    def add_metadata(invoice, params):
        if where == "metadata":
            metadata = params["metadata"]
        elif where == "payment_intent_data":
            metadata = params["payment_intent_data"]["metadata"]
        else:
            metadata = params["line_items"][0]["price_data"]["product_data"]["metadata"] = {}
        fill_metadata(metadata, **limits)

    with (
        wagtail_hooks.register_temporarily(CHECKOUT_PARAMS, add_metadata),
        pytest.raises(gateway.InvalidRequest) as excinfo,
    ):
        checkout(invoice)

    assert problem in str(excinfo.value)
    assert "metadata" in excinfo.value.param and excinfo.value.param in str(excinfo.value)
    assert session_creates(stripe_emulator) == []


def test_hook_metadata_at_stripes_limits_is_sent(stripe_emulator, emulated_invoice):
    """50 keys, 40-character keys and 500-character values, with the app's own four."""
    invoice = emulated_invoice(billing_type=BillingType.MONTHLY)

    def fill(invoice, params):
        for metadata in (params["metadata"], params["subscription_data"]["metadata"]):
            fill_metadata(metadata, 50, key_length=40, value_length=500)

    with wagtail_hooks.register_temporarily(CHECKOUT_PARAMS, fill):
        session = checkout(invoice)

    (request,) = session_creates(stripe_emulator)
    for metadata in (request.params["metadata"], request.params["subscription_data"]["metadata"]):
        assert len(metadata) == 50
        assert metadata["platform"] == "wagtail_client_billing"
    assert session.metadata["invoice_id"] == str(invoice.pk)


def test_hook_metadata_key_with_square_brackets_is_refused(stripe_emulator, emulated_invoice):
    invoice = emulated_invoice()

    def bad_key(invoice, params):
        params["metadata"]["order[id]"] = "42"

    with (
        wagtail_hooks.register_temporarily(CHECKOUT_PARAMS, bad_key),
        pytest.raises(gateway.InvalidRequest, match="square brackets"),
    ):
        checkout(invoice)
    assert session_creates(stripe_emulator) == []


def test_the_apps_own_account_metadata_stays_within_stripes_limits(stripe_emulator):
    long_url = "https://agency.example/" + "p" * 600
    state = gateway.create_account(
        test_mode=True,
        country="US",
        privacy_policy_url=long_url,
        terms_of_service_url="https://agency.example/terms",
        site_url="https://client.example/" + "s" * 600,
        idempotency_key="wcb-test-long-urls",
    )

    metadata = stripe_emulator.state.accounts[state.id]["metadata"]
    assert len(metadata) <= gateway.METADATA_MAX_KEYS
    assert all(len(v) <= gateway.METADATA_MAX_VALUE_LENGTH for v in metadata.values())
    assert "privacy_policy_url" not in metadata  # kept only in this app's database


def test_retrieve_checkout_session_after_payment(stripe_emulator, emulated_invoice):
    invoice = emulated_invoice()
    session = checkout(invoice)

    stripe_emulator.pay(session.id)
    paid = gateway.retrieve_checkout_session(
        test_mode=True, account_id=invoice.account.stripe_id, session_id=session.id
    )

    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert paid.payment_intent.startswith("pi_")
    assert paid.metadata["invoice_id"] == str(invoice.pk)


def test_expire_checkout_session_closes_it_and_expiring_again_is_not_an_error(
    stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice()
    session = checkout(invoice)
    ids = {"test_mode": True, "account_id": invoice.account.stripe_id, "session_id": session.id}

    expired = gateway.expire_checkout_session(**ids)
    again = gateway.expire_checkout_session(**ids)

    assert expired.status == "expired"
    assert again.status == "expired"
    assert stripe_emulator.get_session(session.id)["status"] == "expired"


def test_expiring_a_paid_session_reports_it_paid(stripe_emulator, emulated_invoice):
    invoice = emulated_invoice()
    session = checkout(invoice)
    stripe_emulator.pay(session.id)

    result = gateway.expire_checkout_session(
        test_mode=True, account_id=invoice.account.stripe_id, session_id=session.id
    )

    assert (result.status, result.payment_status) == ("complete", "paid")


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        ("500", gateway.StripeUnavailable),
        ("429", gateway.RateLimited),
        ("reset", gateway.StripeUnavailable),
    ],
)
def test_stripe_failures_become_retryable_errors_an_editor_can_read(
    stripe_emulator, emulated_invoice, fault, error_class
):
    invoice = emulated_invoice()
    stripe_emulator.inject_fault(fault, path_prefix="/v1/checkout/sessions")

    with pytest.raises(error_class) as excinfo:
        checkout(invoice)

    assert excinfo.value.retryable
    assert "Try again" in str(excinfo.value) or "try again" in str(excinfo.value)
    # and the retry the editor makes works
    assert checkout(invoice).status == "open"


@pytest.mark.parametrize(
    ("fault", "spent"), [("500", True), ("500-stored", True), ("429", False), ("reset", False)]
)
def test_a_retry_needs_a_new_idempotency_key_only_after_an_answer_stripe_keeps(
    stripe_emulator, emulated_invoice, fault, spent
):
    invoice = emulated_invoice()
    stripe_emulator.inject_fault(fault, path_prefix="/v1/checkout/sessions")

    with pytest.raises(gateway.GatewayError) as excinfo:
        checkout(invoice)

    assert excinfo.value.idempotency_key_spent is spent


def test_timeout_is_retryable_and_the_retry_finds_the_session_made_meanwhile(
    stripe_emulator, emulated_invoice, settings
):
    invoice = emulated_invoice()
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, "STRIPE_TIMEOUT": 0.3}
    stripe_emulator.timeout_fault_seconds = 2
    stripe_emulator.inject_fault("timeout", path_prefix="/v1/checkout/sessions")

    with pytest.raises(gateway.StripeUnavailable) as excinfo:
        checkout(invoice)
    session = checkout(invoice)

    assert excinfo.value.retryable
    assert len(stripe_emulator.state.checkout_sessions) == 1  # made during the timeout
    assert stripe_emulator.get_session(session.id)["status"] == "open"


def test_unknown_or_disconnected_account_is_permission_denied(stripe_emulator, emulated_invoice):
    invoice = emulated_invoice()
    stripe_emulator.deauthorize(invoice.account.stripe_id)

    with pytest.raises(gateway.PermissionDenied) as on_checkout:
        checkout(invoice)
    with pytest.raises(gateway.PermissionDenied) as on_retrieve:
        gateway.retrieve_account(test_mode=True, account_id="acct_doesnotexist")

    assert invoice.account.stripe_id in str(on_checkout.value)
    assert not on_checkout.value.retryable
    assert on_retrieve.value.code == "account_invalid"


def test_account_of_the_other_mode_is_permission_denied(stripe_emulator):
    live = new_account(test_mode=False)

    with pytest.raises(gateway.PermissionDenied):
        gateway.retrieve_account(test_mode=True, account_id=live.id)


def test_invalid_request_keeps_the_parameter_stripe_objected_to(stripe_emulator, emulated_invoice):
    invoice = emulated_invoice()

    with pytest.raises(gateway.InvalidRequest) as missing:
        gateway.retrieve_checkout_session(
            test_mode=True, account_id=invoice.account.stripe_id, session_id="cs_test_nope"
        )
    with pytest.raises(gateway.InvalidRequest) as bad_url:
        gateway.create_account_link(
            test_mode=True,
            account_id=invoice.account.stripe_id,
            refresh_url="not a url",
            return_url="https://platform.example/return",
        )

    assert missing.value.param == "session"
    assert missing.value.code == "resource_missing"
    assert "cs_test_nope" in str(missing.value)
    assert bad_url.value.param == "refresh_url"
    assert not bad_url.value.retryable


def test_refused_key_tells_the_editor_to_ask_the_developer(stripe_emulator, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        # Not a key Stripe issued (restricted keys, rk_test_..., are accepted as on Stripe).
        "STRIPE_TEST_SECRET_KEY": "sk_test_not-a-key-stripe-issued",
    }

    with pytest.raises(gateway.NotConfigured, match="refused the platform's Stripe key"):
        new_account()


@pytest.mark.parametrize("test_mode", [True, False])
def test_no_key_for_the_mode_is_not_configured(stripe_emulator, settings, test_mode, monkeypatch):
    setting = "STRIPE_TEST_SECRET_KEY" if test_mode else "STRIPE_LIVE_SECRET_KEY"
    monkeypatch.delenv(setting, raising=False)
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, setting: None}

    with pytest.raises(gateway.NotConfigured) as excinfo:
        new_account(test_mode)

    assert setting in str(excinfo.value)
    assert api_calls(stripe_emulator) == []


def test_failures_are_logged_with_the_request_id_and_never_the_key(
    stripe_emulator, emulated_invoice, caplog
):
    invoice = emulated_invoice()
    stripe_emulator.inject_fault("429")

    with (
        caplog.at_level(logging.INFO, logger="wagtail_client_billing.gateway"),
        pytest.raises(gateway.RateLimited) as excinfo,
    ):
        checkout(invoice)

    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    message = record.getMessage()
    assert "create_checkout_session" in message
    assert invoice.account.stripe_id in message
    assert excinfo.value.request_id and excinfo.value.request_id in message
    assert "rate_limit" in message
    assert "sk_test_suite" not in caplog.text


# --- the client --------------------------------------------------------------------------


def test_client_is_cached_per_mode_and_identifies_the_app(stripe_emulator):
    test_client = gateway.get_client(True)

    assert gateway.get_client(True) is test_client
    assert gateway.get_client(False) is not test_client
    assert stripe.app_info is not None
    assert stripe.app_info["name"] == "wagtail-client-billing"
    assert stripe.app_info["version"] == wagtail_client_billing.__version__


def test_client_follows_changed_settings(stripe_emulator, settings):
    new_account()  # builds the client against the emulator
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "STRIPE_API_BASE": "http://127.0.0.1:9",
    }

    with pytest.raises(gateway.StripeUnavailable):
        new_account(key="elsewhere")


# --- the pytest fixture ------------------------------------------------------------------


def test_fixture_delivers_signed_webhooks_into_the_app_inside_the_test(
    stripe_emulator, emulated_invoice
):
    invoice = emulated_invoice()
    session = checkout(invoice)
    stripe_emulator.pay(session.id)

    deliveries = stripe_emulator.deliver_pending()

    assert deliveries and all(d.ok for d in deliveries)
    stored = set(WebhookEvent.objects.values_list("type", flat=True))
    assert {"account.updated", "checkout.session.completed"} <= stored


def test_fixture_starts_every_test_with_an_empty_emulator(stripe_emulator, settings):
    assert stripe_emulator.requests == []
    assert stripe_emulator.state.accounts == {}
    assert settings.WAGTAIL_CLIENT_BILLING["STRIPE_API_BASE"] == stripe_emulator.base_url


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_live_fixture_delivers_webhooks_over_http_to_the_live_server(live_stripe_emulator):
    state = new_account()

    live_stripe_emulator.complete_onboarding(state.id)

    assert live_stripe_emulator.wait_for_deliveries(timeout=10)
    assert [d.ok for d in live_stripe_emulator.deliveries] == [True]
    assert live_stripe_emulator.deliveries[0].target.startswith("http://")
    assert WebhookEvent.objects.filter(type="account.updated", account=state.id).exists()


def test_requests_are_pinned_to_the_api_version_the_app_is_written_for(
    stripe_emulator, monkeypatch
):
    # Whatever version the installed package would send by default (StripeClient reads
    # the package's own constant, not ``stripe.api_version``).
    from stripe._api_version import _ApiVersion

    monkeypatch.setattr(_ApiVersion, "CURRENT", "2025-03-31.basil")
    monkeypatch.setattr(stripe, "api_version", "2025-03-31.basil")
    gateway.reset_clients()

    sessions = gateway.get_client(test_mode=True).v1.checkout.sessions.list()

    assert sessions.last_response.headers["Stripe-Version"] == stripe_api.STRIPE_API_VERSION
    gateway.reset_clients()
