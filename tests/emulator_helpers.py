"""Helpers and fixtures for the Stripe emulator's own tests (``tests/test_*emulator*.py``).

Registered as a pytest plugin in ``tests/conftest.py``.  The fixtures give a fresh
emulator per test with a :class:`Recorder` as its plain webhook target, a real
``stripe`` client pointed at it, and an onboarded connected account.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from wagtail_client_billing.testing.stripe_emulator import StripeEmulator

SECRET = "whsec_emulator_tests"


class Recorder:
    """A webhook target (callable) that keeps what it received and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: list[tuple[bytes, dict[str, str]]] = []

    def __call__(self, body: bytes, headers: dict[str, str]) -> int:
        self.calls.append((body, headers))
        return self.status

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, _ in self.calls]

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


def make_client(
    emulator: StripeEmulator, key: str = "sk_test_emulator", retries: int = 0, **kwargs: Any
) -> stripe.StripeClient:
    base = emulator.base_url
    return stripe.StripeClient(
        key,
        base_addresses={"api": base, "connect": base, "files": base},
        max_network_retries=retries,
        **kwargs,
    )


def create_account(client: stripe.StripeClient, **overrides: Any) -> Any:
    params: Any = {
        "controller": {
            "fees": {"payer": "account"},
            "losses": {"payments": "stripe"},
            "stripe_dashboard": {"type": "full"},
        },
        "business_profile": {"url": "https://client-a.example"},
        "country": "US",
        "metadata": {"site_id": "1"},
        **overrides,
    }
    return client.v1.accounts.create(params=params)


def session_params(
    amount: int = 1234, currency: str = "usd", recurring: str | None = None, **extra: Any
) -> Any:
    """Parameters the app sends for an invoice (``Any``: tests break them on purpose)."""
    price_data: dict[str, Any] = {
        "currency": currency,
        "unit_amount": amount,
        "product_data": {"name": "Website maintenance", "description": "Invoice INV-0005"},
    }
    if recurring:
        price_data["recurring"] = {"interval": recurring}
    return {
        "mode": "subscription" if recurring else "payment",
        "line_items": [{"quantity": 1, "price_data": price_data}],
        "success_url": "https://client-a.example/paid/?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://client-a.example/cancelled/",
        "customer_email": "client@example.com",
        "client_reference_id": "invoice-5",
        "metadata": {"invoice_id": "5"},
        **extra,
    }


def create_session(client: stripe.StripeClient, account_id: str, **kwargs: Any) -> Any:
    return client.v1.checkout.sessions.create(
        params=session_params(**kwargs), options={"stripe_account": account_id}
    )


def error_code(error: stripe.StripeError) -> str | None:
    """The ``code`` of Stripe's error JSON (the client leaves ``.code`` unset for some)."""
    return error.error.code if error.error is not None else None


def error_of(error: stripe.StripeError) -> tuple[str | None, str | None, str | None]:
    """``(type, code, param)`` of Stripe's error JSON, what a caller branches on."""
    body = error.error
    assert body is not None, error
    return body.type, body.code, body.param


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def emu(recorder: Recorder) -> Iterator[StripeEmulator]:
    with StripeEmulator(
        webhooks=[(recorder, SECRET)],
        auto_deliver=False,
        retry_delay=0.01,
        timeout_fault_seconds=1.0,
    ) as emulator:
        yield emulator


@pytest.fixture
def stripe_client(emu: StripeEmulator) -> stripe.StripeClient:
    """A test-mode ``stripe`` client talking to ``emu`` over HTTP."""
    return make_client(emu)


@pytest.fixture
def onboarded_account(
    emu: StripeEmulator, stripe_client: stripe.StripeClient, recorder: Recorder
) -> str:
    """A connected account that finished onboarding (its webhook already delivered)."""
    account = create_account(stripe_client)
    emu.complete_onboarding(account.id)
    emu.deliver_pending()
    recorder.calls.clear()
    return account.id
