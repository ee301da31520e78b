"""The emulator's Checkout line items, as Stripe documents them: several lines, each
``unit_amount × quantity``, the session's ``amount_subtotal`` their sum, the list of a
session's line items, and Checkout's limits in payment and subscription mode."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.emulator_helpers import error_of, session_params


def _line(name: str, unit_amount: int, quantity: int, recurring: str | None = None) -> Any:
    price_data: dict[str, Any] = {
        "currency": "usd",
        "unit_amount": unit_amount,
        "product_data": {"name": name},
    }
    if recurring:
        price_data["recurring"] = {"interval": recurring}
    return {"price_data": price_data, "quantity": quantity}


def _create(client: stripe.StripeClient, account: str, lines: list[Any], **extra: Any) -> Any:
    params = session_params(**extra)
    params["line_items"] = lines
    return client.v1.checkout.sessions.create(params=params, options={"stripe_account": account})


THREE_LINES = [
    _line("Homepage redesign", 120000, 1),
    _line("Hosting", 1500, 12),
    _line("Logo", 33333, 3),
]


def test_a_session_adds_up_its_lines_and_lists_them_in_order(stripe_client, onboarded_account):
    session = _create(stripe_client, onboarded_account, THREE_LINES)

    assert session.amount_subtotal == session.amount_total == 120000 + 18000 + 99999
    items = stripe_client.v1.checkout.sessions.line_items.list(
        session.id, options={"stripe_account": onboarded_account}
    )
    assert [(i.description, i.quantity, i.price.unit_amount, i.amount_total) for i in items] == [
        ("Homepage redesign", 1, 120000, 120000),
        ("Hosting", 12, 1500, 18000),
        ("Logo", 3, 33333, 99999),
    ]
    assert items.url == f"/v1/checkout/sessions/{session.id}/line_items"


def test_the_list_of_line_items_pages_like_every_stripe_list(stripe_client, onboarded_account):
    session = _create(stripe_client, onboarded_account, THREE_LINES)
    options: Any = {"stripe_account": onboarded_account}

    first = stripe_client.v1.checkout.sessions.line_items.list(
        session.id, params={"limit": 2}, options=options
    )
    rest = stripe_client.v1.checkout.sessions.line_items.list(
        session.id, params={"limit": 2, "starting_after": first.data[-1].id}, options=options
    )

    assert (len(first.data), first.has_more) == (2, True)
    assert [i.description for i in rest.data] == ["Logo"]


def test_another_accounts_session_has_no_line_items_to_list(stripe_client, onboarded_account):
    session = _create(stripe_client, onboarded_account, THREE_LINES)

    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.checkout.sessions.line_items.list(session.id)

    assert error_of(caught.value)[1] == "resource_missing"


def test_a_subscription_bills_every_recurring_line_on_each_renewal(
    emu, stripe_client, onboarded_account
):
    lines = [_line("Maintenance", 5000, 1, "month"), _line("Hosting", 1500, 2, "month")]
    session = _create(stripe_client, onboarded_account, lines, recurring="month")
    assert session.amount_subtotal == 8000

    emu.pay(session.id)
    subscription = emu.state.subscriptions[emu.get_session(session.id)["subscription"]]
    assert [i["quantity"] for i in subscription["items"]["data"]] == [1, 2]
    renewal = emu.renew_subscription(subscription["id"])

    assert renewal["amount_paid"] == 8000
    assert [line["amount"] for line in renewal["lines"]["data"]] == [5000, 3000]


@pytest.mark.parametrize(
    ("lines", "recurring", "message"),
    [
        ([_line(f"Line {n}", 100, 1) for n in range(101)], None, "up to 100 line items"),
        (
            [_line(f"Line {n}", 100, 1, "month") for n in range(21)],
            "month",
            "up to 20 recurring",
        ),
        (
            [_line("Monthly", 1000, 1, "month"), _line("Yearly", 1000, 1, "year")],
            "month",
            "different billing intervals",
        ),
        ([_line("Free", 0, 1), _line("Paid", 100, 0)], None, "greater than or equal to 1"),
    ],
)
def test_checkout_refuses_what_stripe_refuses(
    stripe_client, onboarded_account, lines, recurring, message
):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _create(stripe_client, onboarded_account, lines, recurring=recurring)

    assert message in str(caught.value.user_message)
