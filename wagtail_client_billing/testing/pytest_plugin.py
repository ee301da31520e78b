"""pytest fixtures for this app's tests and for site developers' own.

Enable them in your ``conftest.py``::

    pytest_plugins = ["wagtail_client_billing.testing.pytest_plugin"]

``stripe_emulator``
    A running :class:`~wagtail_client_billing.testing.stripe_emulator.StripeEmulator`,
    empty at the start of every test, with ``WAGTAIL_CLIENT_BILLING["STRIPE_API_BASE"]``
    pointing at it for the test's duration (through pytest-django's ``settings``
    fixture, so it is undone afterwards). Webhooks are not sent on their own: call
    ``stripe_emulator.deliver_pending()`` and each pending event is POSTed, signed with
    the first secret of the first test endpoint in ``STRIPE_WEBHOOK_ENDPOINTS`` (or
    ``STRIPE_TEST_WEBHOOK_SECRETS``), to the app's webhook view through
    Django's test client, and then applied as a ``qcluster`` worker would apply it, in
    the test's own thread and transaction. So it works in a plain ``db`` test with any
    broker, and the test decides exactly when Stripe "answers"::

        def test_paying_marks_the_invoice_paid(stripe_emulator, client):
            response = client.get(invoice.get_pay_url())  # creates a Checkout Session
            stripe_emulator.pay(invoice_session_id)       # the client pays
            stripe_emulator.deliver_pending()             # Stripe tells the app
            invoice.refresh_from_db()
            assert invoice.status == "paid"

    One emulator serves the whole test session (starting a server per test is slow);
    it is reset before each test, so nothing leaks between tests.

``live_stripe_emulator``
    For ``live_server`` tests (a browser, or a separate process): its own emulator that
    delivers webhooks by itself, over HTTP, to the live server's webhook URL, as Stripe
    would. Hosted checkout and onboarding pages are served at its ``base_url``. Use
    ``wait_for_deliveries()`` to wait for them. The webhook view queues each event, so
    run django-q2 synchronously in the test settings (``Q_CLUSTER["sync"] = True``) to
    have it applied within the request, or run a ``qcluster``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .stripe_emulator import StripeEmulator

WEBHOOK_URL_NAME = "wagtail_client_billing:stripe_webhook"


def _webhook_secret() -> str:
    from ..conf import billing_settings

    for endpoint in billing_settings.webhook_endpoints():
        if not endpoint.live and endpoint.secrets:
            return endpoint.secrets[0]
    pytest.fail(
        "The stripe_emulator fixture signs webhooks with the first secret of the first test "
        "endpoint in WAGTAIL_CLIENT_BILLING['STRIPE_WEBHOOK_ENDPOINTS'] (or of "
        "STRIPE_TEST_WEBHOOK_SECRETS); set one in the test settings."
    )


def _point_settings_at(settings: Any, emulator: StripeEmulator) -> None:
    """Copy the settings dict (never mutate the project's) with the emulator's address."""
    configured = dict(getattr(settings, "WAGTAIL_CLIENT_BILLING", None) or {})
    configured["STRIPE_API_BASE"] = emulator.base_url
    settings.WAGTAIL_CLIENT_BILLING = configured


def django_client_webhook() -> Callable[[bytes, dict[str, str]], int]:
    """A webhook target that POSTs into the app's webhook view with Django's test client.

    A fresh ``Client`` per delivery: no cookies or login of the test's own client leak
    into what Stripe sends.
    """

    def deliver(body: bytes, headers: dict[str, str]) -> int:
        from django.test import Client
        from django.urls import reverse

        from .. import tasks
        from ..models import WebhookDelivery

        response = Client().post(
            reverse(WEBHOOK_URL_NAME),
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
        )
        if response.status_code == 200:  # kept and queued: the worker's part, here
            waiting = list(WebhookDelivery.objects.order_by("pk").values_list("pk", flat=True))
            if waiting:
                tasks.admit_webhook_deliveries(waiting)
        return int(response.status_code)

    return deliver


@pytest.fixture(scope="session")
def _stripe_emulator_server() -> Iterator[StripeEmulator]:
    """The one emulator of the test session; tests use ``stripe_emulator``."""
    emulator = StripeEmulator(auto_deliver=False, timeout_fault_seconds=10.0)
    with emulator:
        yield emulator


@pytest.fixture
def stripe_emulator(_stripe_emulator_server: StripeEmulator, settings: Any) -> StripeEmulator:
    """An empty emulator the app talks to, delivering webhooks on ``deliver_pending()``."""
    emulator = _stripe_emulator_server
    emulator.reset()
    emulator.webhooks_enabled = True
    emulator.duplicate_deliveries = 1
    emulator.shuffle_deliveries = False
    emulator.require_charges_enabled = True
    emulator.timeout_fault_seconds = 10.0
    emulator.dispatcher.targets[:] = [(django_client_webhook(), _webhook_secret())]
    _point_settings_at(settings, emulator)
    return emulator


@pytest.fixture
def live_stripe_emulator(live_server: Any, settings: Any) -> Iterator[StripeEmulator]:
    """An emulator delivering webhooks over HTTP to ``live_server``, in the background."""
    from django.urls import reverse

    url = live_server.url + reverse(WEBHOOK_URL_NAME)
    emulator = StripeEmulator(
        webhooks=[(url, _webhook_secret())],
        auto_deliver=True,
        retry_delay=0.2,
    )
    with emulator:
        _point_settings_at(settings, emulator)
        yield emulator
