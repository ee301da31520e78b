"""The emulator's customer portal: configurations and sessions validated like Stripe's,
and the hosted portal where the customer updates the card and cancels, sending the
webhooks Stripe sends and returning to the session's return URL."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
import stripe

from tests.emulator_helpers import create_session, error_of

FEATURES: Any = {
    "payment_method_update": {"enabled": True},
    "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post_form(url: str, data: dict[str, str]) -> tuple[int, str]:
    """POST a form as a browser would; the status and the Location (redirects not followed)."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode())
    try:
        with opener.open(request) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location") or error.read().decode()


def get_page(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def subscribed(emu, stripe_client, onboarded_account, recorder) -> dict[str, Any]:
    """A monthly subscription paid through Checkout on the onboarded account."""
    session = create_session(
        stripe_client,
        onboarded_account,
        recurring="month",
        subscription_data={"metadata": {"invoice_id": "5"}},
    )
    paid = emu.pay(session.id)
    emu.deliver_pending()
    recorder.calls.clear()
    return {"account": onboarded_account, "customer": paid["customer"], "sub": paid["subscription"]}


def configuration(stripe_client, account: str, **params: Any) -> Any:
    return stripe_client.v1.billing_portal.configurations.create(
        params={"features": FEATURES, **params}, options={"stripe_account": account}
    )


def portal_session(stripe_client, account: str, **params: Any) -> Any:
    return stripe_client.v1.billing_portal.sessions.create(
        params=params, options={"stripe_account": account}
    )


def open_portal(stripe_client, subscribed: dict[str, Any], **configuration_params: Any) -> Any:
    """A portal session for the subscribed customer, returning to client.example/back/."""
    made = configuration(stripe_client, subscribed["account"], **configuration_params)
    return portal_session(
        stripe_client,
        subscribed["account"],
        customer=subscribed["customer"],
        configuration=made.id,
        return_url="https://client.example/back/",
    )


def test_a_configuration_has_stripes_shape_and_defaults(stripe_client, onboarded_account):
    made = configuration(
        stripe_client,
        onboarded_account,
        business_profile={"privacy_policy_url": "https://agency.example/privacy"},
        default_return_url="https://client.example/billing/portal/",
    )
    assert made.id.startswith("bpc_") and made.object == "billing_portal.configuration"
    assert made.active is True and made.is_default is False
    assert made.features.subscription_cancel.mode == "at_period_end"
    assert made.features.payment_method_update.enabled is True
    assert made.features.customer_update.enabled is False
    assert made.business_profile.privacy_policy_url == "https://agency.example/privacy"
    assert made.default_return_url == "https://client.example/billing/portal/"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "features"),
        ({"features": {"subscription_cancel": {"enabled": True, "mode": "later"}}}, None),
        (
            {
                "features": {
                    "subscription_cancel": {
                        "enabled": True,
                        "mode": "at_period_end",
                        "proration_behavior": "create_prorations",
                    }
                }
            },
            "features[subscription_cancel][proration_behavior]",
        ),
        ({"features": FEATURES, "default_return_url": "javascript:alert(1)"}, "default_return_url"),
        ({"features": FEATURES, "colour": "red"}, "colour"),
    ],
)
def test_a_configuration_stripe_would_refuse_is_refused(
    stripe_client, onboarded_account, params, param
):
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.billing_portal.configurations.create(
            params=params, options={"stripe_account": onboarded_account}
        )
    if param is not None:
        assert error_of(excinfo.value)[2] == param


def test_a_session_needs_a_customer_of_that_account_and_an_active_configuration(
    emu, stripe_client, subscribed
):
    account, customer = subscribed["account"], subscribed["customer"]
    made = configuration(stripe_client, account)
    with pytest.raises(stripe.InvalidRequestError) as no_customer:
        portal_session(
            stripe_client, account, configuration=made.id, return_url="https://x.example/"
        )
    assert error_of(no_customer.value)[2] == "customer"
    with pytest.raises(stripe.InvalidRequestError) as stranger:
        portal_session(
            stripe_client,
            account,
            customer="cus_nobody",
            configuration=made.id,
            return_url="https://x.example/",
        )
    assert error_of(stranger.value)[1:] == ("resource_missing", "customer")
    # The configuration is the account's own: another account's is "No such configuration".
    with pytest.raises(stripe.InvalidRequestError) as elsewhere:
        portal_session(
            stripe_client,
            account,
            customer=customer,
            configuration="bpc_other",
            return_url="https://x.example/",
        )
    assert error_of(elsewhere.value)[1:] == ("resource_missing", "configuration")
    # Without a return_url the configuration must have a default one.
    with pytest.raises(stripe.InvalidRequestError) as no_return:
        portal_session(stripe_client, account, customer=customer, configuration=made.id)
    assert error_of(no_return.value)[2] == "return_url"
    stripe_client.v1.billing_portal.configurations.update(
        made.id, params={"active": False}, options={"stripe_account": account}
    )
    with pytest.raises(stripe.InvalidRequestError) as inactive:
        portal_session(
            stripe_client,
            account,
            customer=customer,
            configuration=made.id,
            return_url="https://x.example/",
        )
    assert error_of(inactive.value)[2] == "configuration"


def test_a_session_on_the_platform_does_not_see_a_connected_accounts_customer(
    stripe_client, subscribed
):
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.billing_portal.sessions.create(
            params={"customer": subscribed["customer"], "return_url": "https://x.example/"}
        )
    assert error_of(excinfo.value)[1:] == ("resource_missing", "customer")


def test_cancelling_at_period_end_in_the_hosted_portal_sends_subscription_updated(
    emu, stripe_client, subscribed, recorder
):
    account = subscribed["account"]
    made = configuration(stripe_client, account)
    session = portal_session(
        stripe_client,
        account,
        customer=subscribed["customer"],
        configuration=made.id,
        return_url="https://client.example/billing/portal/",
    )
    assert session.url.startswith(emu.public_url) and session.object == "billing_portal.session"
    status, page = get_page(session.url)
    assert status == 200 and "Cancel plan" in page and "Update card" in page
    status, location = post_form(
        session.url, {"action": "cancel", "subscription": subscribed["sub"]}
    )
    assert (status, location) == (303, "https://client.example/billing/portal/")
    emu.deliver_pending()
    assert recorder.types == ["customer.subscription.updated"]
    event = recorder.events[0]
    assert event["account"] == account
    assert event["data"]["object"]["cancel_at_period_end"] is True
    assert event["data"]["object"]["status"] == "active"
    assert event["data"]["object"]["cancellation_details"]["reason"] == "cancellation_requested"
    assert event["data"]["previous_attributes"]["cancel_at_period_end"] is False


def test_cancelling_immediately_sends_subscription_deleted(
    emu, stripe_client, subscribed, recorder
):
    account = subscribed["account"]
    made = configuration(
        stripe_client,
        account,
        features={"subscription_cancel": {"enabled": True, "mode": "immediately"}},
        default_return_url="https://client.example/back/",
    )
    session = portal_session(
        stripe_client, account, customer=subscribed["customer"], configuration=made.id
    )
    assert "Cancel now" in get_page(session.url)[1]
    status, location = post_form(
        session.url, {"action": "cancel", "subscription": subscribed["sub"]}
    )
    assert (status, location) == (303, "https://client.example/back/")
    emu.deliver_pending()
    assert recorder.types == ["customer.subscription.deleted"]
    assert emu.get_subscription(subscribed["sub"])["status"] == "canceled"


def test_updating_the_card_sends_payment_method_attached_and_customer_updated(
    emu, stripe_client, subscribed, recorder
):
    session = open_portal(stripe_client, subscribed)
    assert post_form(session.url, {"action": "update_card", "card": "4000 0566 5566 5556"}) == (
        303,
        "https://client.example/back/",
    )
    emu.deliver_pending()
    assert recorder.types == ["payment_method.attached", "customer.updated"]
    method, customer = (event["data"]["object"] for event in recorder.events)
    assert method["card"]["last4"] == "5556" and method["customer"] == subscribed["customer"]
    assert customer["invoice_settings"]["default_payment_method"] == method["id"]
    assert "•••• 5556" in get_page(session.url)[1]


def test_the_hosted_portal_cancels_only_the_sessions_customers_subscriptions(
    emu, stripe_client, subscribed, onboarded_account
):
    other = create_session(stripe_client, onboarded_account, recurring="month")
    other_sub = emu.pay(other.id)["subscription"]
    session = open_portal(stripe_client, subscribed)
    status, _body = post_form(session.url, {"action": "cancel", "subscription": other_sub})
    assert status == 404
    assert emu.get_subscription(other_sub)["cancel_at_period_end"] is False


def test_a_portal_session_expires(emu, stripe_client, subscribed):
    session = open_portal(stripe_client, subscribed)
    emu.advance_clock(3601)
    assert get_page(session.url)[0] == 410
    status, _body = post_form(session.url, {"action": "cancel", "subscription": subscribed["sub"]})
    assert status == 410
    assert emu.get_subscription(subscribed["sub"])["cancel_at_period_end"] is False
