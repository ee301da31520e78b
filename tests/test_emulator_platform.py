"""The platform's own account (``GET /v1/account``) and its connected accounts
(``GET /v1/accounts``), driven by the real ``stripe`` client over HTTP."""

from __future__ import annotations

import pytest
import stripe

from tests.emulator_helpers import create_account, error_of, make_client
from wagtail_client_billing.testing.emulator.platform import PLATFORM_ACCOUNT_ID
from wagtail_client_billing.testing.stripe_emulator import StripeEmulator


def test_the_current_account_is_the_platform_in_both_modes(
    emu: StripeEmulator, stripe_client: stripe.StripeClient
) -> None:
    test = stripe_client.v1.accounts.retrieve_current()
    live = make_client(emu, key="sk_live_emulator").v1.accounts.retrieve_current()

    assert test.id == live.id == PLATFORM_ACCOUNT_ID
    assert test.object == "account"
    assert test.settings.dashboard.display_name == "Emulated Platform"
    assert test.charges_enabled is True


def test_the_current_account_with_stripe_account_is_that_account(
    stripe_client: stripe.StripeClient,
) -> None:
    account = create_account(stripe_client)

    current = stripe_client.v1.accounts.retrieve_current(options={"stripe_account": account.id})

    assert current.id == account.id


def test_connected_accounts_are_listed_newest_first_in_the_keys_mode(
    emu: StripeEmulator, stripe_client: stripe.StripeClient
) -> None:
    first = create_account(stripe_client)
    second = create_account(stripe_client)
    live_client = make_client(emu, key="sk_live_emulator")
    live = create_account(live_client)

    page = stripe_client.v1.accounts.list({"limit": 1})
    assert [a.id for a in page.data] == [second.id]
    assert page.has_more is True
    older = stripe_client.v1.accounts.list({"starting_after": second.id})
    assert [a.id for a in older.data] == [first.id]
    assert older.has_more is False
    assert [a.id for a in live_client.v1.accounts.list().data] == [live.id]


def test_an_account_that_disconnected_is_no_longer_listed(
    emu: StripeEmulator, stripe_client: stripe.StripeClient
) -> None:
    kept = create_account(stripe_client)
    gone = create_account(stripe_client)

    emu.deauthorize(gone.id)

    assert [a.id for a in stripe_client.v1.accounts.list().data] == [kept.id]


def test_listing_accounts_refuses_a_limit_stripe_refuses(
    stripe_client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.accounts.list({"limit": 101})

    assert error_of(raised.value) == ("invalid_request_error", None, "limit")


def test_a_restricted_key_works_in_its_mode(emu: StripeEmulator) -> None:
    client = make_client(emu, key="rk_live_emulator")

    account = create_account(client)

    assert account.livemode is True


def test_a_restricted_key_without_a_permission_gets_stripes_403(emu: StripeEmulator) -> None:
    key = "rk_test_" + "k" * 30
    client = make_client(emu, key=key)
    emu.deny_permission(key, "/v1/webhook_endpoints", "rak_webhook_read")

    with pytest.raises(stripe.PermissionError) as raised:
        client.v1.webhook_endpoints.list()

    assert raised.value.http_status == 403
    assert raised.value.user_message == (
        f"The provided key 'rk_test_{'*' * 26}kkkk' does not have the required permissions "
        f"for this endpoint on account '{PLATFORM_ACCOUNT_ID}'. Having the 'rak_webhook_read' "
        "permission would allow this request to continue."
    )
    # Only what was taken away: the key still reads everything else, and may still write.
    assert client.v1.accounts.retrieve_current().id == PLATFORM_ACCOUNT_ID
    client.v1.webhook_endpoints.create({"url": "https://a.example/", "enabled_events": ["*"]})


def test_only_restricted_keys_have_permissions(emu: StripeEmulator) -> None:
    with pytest.raises(ValueError):
        emu.deny_permission("sk_test_emulator", "/v1/accounts", "rak_account_read")


def test_reset_gives_restricted_keys_their_permissions_back(emu: StripeEmulator) -> None:
    key = "rk_test_emulator"
    emu.deny_permission(key, "/v1/accounts", "rak_account_read")

    emu.reset()

    assert make_client(emu, key=key).v1.accounts.list().data == []
