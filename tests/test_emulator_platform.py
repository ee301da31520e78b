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
