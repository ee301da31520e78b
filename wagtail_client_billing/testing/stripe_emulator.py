"""An offline Stripe for tests and demos: a small HTTP server that speaks Stripe's API.

The real ``stripe`` client talks to it unchanged, so tests exercise the same code path as
production -- form encoding, ``Stripe-Account`` and ``Idempotency-Key`` headers, Stripe's
error JSON and exception classes, signed webhooks -- without network access or a Stripe
account.  It implements what ``wagtail_client_billing`` uses: connected accounts,
Account Links, Checkout Sessions (one-time and subscription), webhook endpoints, their
webhooks, and hosted onboarding and Checkout pages with buttons.  Parameters are
validated against the ``TypedDict`` definitions shipped in the installed ``stripe``
package, and Stripe's documented limits (metadata, application fees, account
controller and country, idempotency keys) are enforced, so a request Stripe would
reject is rejected here with Stripe's error type, code and parameter.

In your own tests
-----------------
::

    import stripe
    from wagtail_client_billing.testing.stripe_emulator import StripeEmulator

    def test_paying_marks_the_invoice_paid(client, settings):
        received = []

        def webhook(body: bytes, headers: dict) -> int:
            # post into Django's test client so the app's real webhook view runs
            response = client.post(
                "/billing/stripe/webhook/", data=body, content_type="application/json",
                HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
            )
            return response.status_code

        with StripeEmulator(webhooks=[(webhook, "whsec_test")], auto_deliver=False) as emu:
            settings.WAGTAIL_CLIENT_BILLING = {..., "STRIPE_API_BASE": emu.base_url}
            ...                                   # the app creates a Checkout Session
            emu.pay(session_id)                   # the customer pays
            emu.deliver_pending()                 # webhooks, in this thread

Point a ``stripe.StripeClient`` at it with
``StripeClient("sk_test_...", base_addresses={"api": emu.base_url, "connect":
emu.base_url, "files": emu.base_url})``.  Keys must look like ``sk_test_...`` (test
mode) or ``sk_live_...`` (live mode objects: ``cs_live_...``, ``livemode: true``), or be
restricted keys ``rk_test_...`` / ``rk_live_...``, which may do everything until a test
takes a permission away with :meth:`StripeEmulator.deny_permission`.

Webhook targets are URLs (POSTed from a background thread, retried with exponential
backoff on non-2xx or connection errors) or callables ``(body, headers) -> status``.
Plain targets (``webhooks=``, :meth:`StripeEmulator.add_webhook`) receive every event;
webhook endpoints (``POST /v1/webhook_endpoints`` or
:meth:`StripeEmulator.add_webhook_endpoint`) receive what Stripe would route to them --
account or Connect, by mode, filtered by ``enabled_events``, signed with their own
secret and stamped with their API version.  With ``auto_deliver=False`` nothing is sent
until the test calls :meth:`StripeEmulator.deliver_pending` -- needed inside Django's
``TestCase``, whose transaction is invisible to other threads.

As a process (for the example project, browser tests, or manual poking)::

    python -m wagtail_client_billing.testing.stripe_emulator --port 12111 \\
        --webhook-url http://127.0.0.1:8000/billing/stripe/webhook/ --webhook-secret whsec_dev

Controls are then JSON routes under ``/_emulator/`` (``POST
/_emulator/checkout/sessions/<id>/pay`` ...); see :meth:`StripeEmulator.control`.

Test controls (methods, and ``/_emulator/`` routes)
--------------------------------------------------
``complete_onboarding(account_id)``, ``deauthorize(account_id)``,
``connect_in_both_modes(account_id)``, ``trigger(type, object, account=, livemode=)``,
``pay(session_id)``,
``pay_delayed``, ``settle``, ``fail_payment``, ``expire_session``,
``renew_subscription(subscription_id)``, ``cancel_subscription``, ``reset()``,
``inject_fault(kind, count=1, path_prefix=None)`` with kinds ``"500"`` (not stored), ``"500-stored"`` (replayed for its idempotency key, as Stripe does), ``"429"``,
``"timeout"`` (the request is carried out, the answer comes after
``timeout_fault_seconds``) and ``"reset"`` (connection dropped, request not carried
out); ``advance_clock(seconds)`` or ``emu.clock = callable`` to move time.  Logs:
``emu.requests`` (every API call), ``emu.events``, ``emu.deliveries``.  Robustness
switches: ``duplicate_deliveries``, ``shuffle_deliveries`` (seeded), ``webhooks_enabled``.

Known differences from Stripe are listed, exactly, in ``docs/emulator.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .emulator.core import FAULT_KINDS, EmulatorState
from .emulator.delivery import Delivery, Target, WebhookDispatcher
from .emulator.errors import EmulatorError, StripeError
from .emulator.keys import RestrictedKeys
from .emulator.server import EmulatorHTTPServer, serve_in_thread
from .emulator.store import Fault, RequestRecord, public

__all__ = [
    "FAULT_KINDS",
    "Delivery",
    "EmulatorError",
    "RequestRecord",
    "StripeEmulator",
    "StripeError",
    "main",
]


class StripeEmulator:
    """A running emulated Stripe; use as a context manager or ``start()``/``stop()``.

    Args:
        host / port: where to listen; ``port=0`` picks a free port (see ``base_url``).
        webhooks: ``(target, secret)`` pairs; target is a URL or a callable.
        auto_deliver: deliver webhooks from a background thread as events happen;
            when false, events wait for :meth:`deliver_pending`.
        public_url: the address browsers use for hosted pages (behind a proxy or in a
            container); defaults to ``base_url``.
        max_attempts / retry_delay: webhook retries (delay doubles per retry).
        webhook_timeout: seconds to wait for an HTTP webhook receiver.
        timeout_fault_seconds: how long a ``"timeout"`` fault holds the answer; set it
            above your client's timeout.
        seed: for ``shuffle_deliveries``.
        verbose: log each HTTP request to stderr.

    Attributes:
        requests: every API request received (:class:`RequestRecord`), oldest first.
        events: every event generated (dicts shaped as Stripe events), delivered or not.
        deliveries: every webhook delivery attempt (:class:`Delivery`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        webhooks: Sequence[tuple[Target, str]] = (),
        auto_deliver: bool = True,
        public_url: str | None = None,
        max_attempts: int = 4,
        retry_delay: float = 0.5,
        webhook_timeout: float = 5.0,
        timeout_fault_seconds: float = 30.0,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.verbose = verbose
        self.timeout_fault_seconds = timeout_fault_seconds
        self._public_url = public_url
        self.dispatcher = WebhookDispatcher(
            list(webhooks),
            auto_deliver=auto_deliver,
            max_attempts=max_attempts,
            retry_delay=retry_delay,
            timeout=webhook_timeout,
            seed=seed,
            clock=lambda: self.state.now(),
        )
        self.state = EmulatorState(self.dispatcher, lambda: self.public_url)
        #: Permissions taken away from restricted keys (``rk_...``); see :meth:`deny_permission`.
        self.restricted_keys = RestrictedKeys()
        self.stopping = threading.Event()
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> StripeEmulator:
        """Bind and serve in a background thread; returns ``self``."""
        if self._server is None:
            self.stopping.clear()
            self._server = EmulatorHTTPServer((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = serve_in_thread(self._server)
            self.dispatcher.start()
        return self

    def stop(self) -> None:
        """Stop serving and delivering; pending deliveries are dropped."""
        self.stopping.set()
        self.dispatcher.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StripeEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the API (and, by default, the hosted pages)."""
        return f"http://{self.host}:{self.port}"

    @property
    def public_url(self) -> str:
        """The origin written into hosted-page URLs (``url`` of sessions and links)."""
        return (self._public_url or self.base_url).rstrip("/")

    # -- logs and switches ---------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        return self.state.requests

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.state.events

    @property
    def deliveries(self) -> list[Delivery]:
        return self.dispatcher.deliveries

    @property
    def clock(self) -> Callable[[], float]:
        """The emulator's time source (default ``time.time``), used for every timestamp."""
        return self.state.clock

    @clock.setter
    def clock(self, value: Callable[[], float]) -> None:
        self.state.clock = value

    def advance_clock(self, seconds: float) -> int:
        """Move the emulator's time forward (also possible over HTTP); return now."""
        with self.state.lock:
            self.state.clock_offset += seconds
        return self.state.now()

    @property
    def duplicate_deliveries(self) -> int:
        """Deliver every event this many times (Stripe delivers at least once)."""
        return self.dispatcher.duplicates

    @duplicate_deliveries.setter
    def duplicate_deliveries(self, value: int) -> None:
        self.dispatcher.duplicates = int(value)

    @property
    def shuffle_deliveries(self) -> bool:
        """Deliver each pending batch in a random (seeded) order; Stripe gives no order."""
        return self.dispatcher.shuffle

    @shuffle_deliveries.setter
    def shuffle_deliveries(self, value: bool) -> None:
        self.dispatcher.shuffle = bool(value)

    @property
    def webhooks_enabled(self) -> bool:
        """When false, events are recorded in ``events`` but never delivered."""
        return self.dispatcher.enabled

    @webhooks_enabled.setter
    def webhooks_enabled(self, value: bool) -> None:
        self.dispatcher.enabled = bool(value)

    @property
    def require_charges_enabled(self) -> bool:
        """Refuse Checkout Sessions on accounts that have not finished onboarding."""
        return self.state.require_charges_enabled

    @require_charges_enabled.setter
    def require_charges_enabled(self, value: bool) -> None:
        self.state.require_charges_enabled = bool(value)

    @property
    def retry_delay(self) -> float:
        return self.dispatcher.retry_delay

    @retry_delay.setter
    def retry_delay(self, value: float) -> None:
        self.dispatcher.retry_delay = float(value)

    def add_webhook(self, target: Target, secret: str) -> None:
        """Send every future event, as made, to another plain target too."""
        self.dispatcher.targets.append((target, secret))

    def add_webhook_endpoint(
        self,
        target: Target,
        *,
        connect: bool = False,
        livemode: bool = False,
        enabled_events: Sequence[str] = ("*",),
        api_version: str | None = None,
        secret: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Register a webhook endpoint, as ``POST /v1/webhook_endpoints`` would.

        Unlike a plain target it only receives what Stripe would send it: an account
        endpoint (``connect=False``) the platform's own events in its mode, a Connect
        endpoint the events of connected accounts (a live one also the test events of
        accounts connected in live mode), filtered by ``enabled_events``, each stamped
        with ``api_version`` (default: the emulator's).  ``target`` may be a callable,
        which the HTTP API cannot register.  Returns the endpoint with its ``secret``
        (a new ``whsec_...`` unless given).
        """
        url = target if isinstance(target, str) else f"callable:{target!r}"
        endpoint = self.state.create_webhook_endpoint(
            url=url,
            enabled_events=list(enabled_events),
            livemode=livemode,
            connect=connect,
            api_version=api_version,
            description=description,
            secret=secret,
        )
        if not isinstance(target, str):
            with self.state.lock:
                self.state.endpoint_targets[endpoint["id"]] = target
        return endpoint

    def deliver_pending(self) -> list[Delivery]:
        """Deliver queued events now, in the calling thread; return the attempts made."""
        self.state.expire_due_sessions()
        return self.dispatcher.deliver_pending()

    def wait_for_deliveries(self, timeout: float = 5.0) -> bool:
        """With ``auto_deliver``, wait until every queued event has been handled."""
        return self.dispatcher.wait_idle(timeout)

    def inject_fault(self, kind: str, count: int = 1, path_prefix: str | None = None) -> None:
        """Make the next ``count`` API requests (under ``path_prefix``) fail as ``kind``.

        ``"500"`` answers Stripe's ``api_error``; ``"500-stored"`` also keeps that answer
        under the request's idempotency key and replays it, as Stripe does for a failure
        inside the API; ``"429"`` its ``rate_limit`` error;
        ``"timeout"`` carries the request out, then holds the answer for
        ``timeout_fault_seconds``; ``"reset"`` drops the connection without carrying it
        out.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}; expected one of {FAULT_KINDS}.")
        if count < 1:
            raise ValueError("count must be at least 1.")
        with self.state.lock:
            self.state.faults.append(Fault(kind, count, path_prefix))

    def reset(self) -> None:
        """Forget all objects, events, logs, faults, pending deliveries and the
        permissions taken from restricted keys."""
        self.state.reset()
        self.dispatcher.clear()
        self.restricted_keys = RestrictedKeys()

    def deny_permission(
        self, key: str, path_prefix: str, permission: str, method: str = "GET"
    ) -> None:
        """Make the restricted key ``key`` (``rk_test_...`` / ``rk_live_...``) lack
        ``permission``: its ``method`` requests under ``path_prefix`` get Stripe's 403,
        which names ``permission`` (Stripe's own name, such as ``rak_webhook_read``, is
        the test's to give: the emulator has no table of them). A restricted key may do
        everything else."""
        self.restricted_keys.deny(key, path_prefix, permission, method)

    # -- looking at objects (for assertions) ----------------------------------------

    def get_account(self, account_id: str) -> dict[str, Any]:
        with self.state.lock:
            return public(self.state.account(account_id))

    def get_session(self, session_id: str) -> dict[str, Any]:
        with self.state.lock:
            return public(self.state.session(session_id))

    def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        with self.state.lock:
            return public(self.state.subscription(subscription_id))

    def get_webhook_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """The endpoint as the API shows it, plus ``connect`` (which the API hides)."""
        with self.state.lock:
            endpoint = self.state.webhook_endpoints.get(endpoint_id)
            if endpoint is None:
                raise EmulatorError(f"No such webhook endpoint: '{endpoint_id}'", status=404)
            return {**public(endpoint), "connect": endpoint["_connect"]}

    def events_of_type(self, type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type]

    # -- test controls -------------------------------------------------------------

    def complete_onboarding(self, account_id: str) -> dict[str, Any]:
        """Finish onboarding: charges/payouts enabled; sends ``account.updated``."""
        return self.state.complete_onboarding(account_id)

    def deauthorize(self, account_id: str) -> dict[str, Any]:
        """Disconnect the account; sends ``account.application.deauthorized``."""
        return self.state.deauthorize(account_id)

    def connect_in_both_modes(self, account_id: str) -> dict[str, Any]:
        """Connect a live account in test mode too: test keys may act on it, and its
        test events reach both the test and the live Connect endpoints."""
        return self.state.connect_in_both_modes(account_id)

    def trigger(
        self,
        type: str,
        obj: dict[str, Any],
        *,
        account: str | None = None,
        livemode: bool = False,
    ) -> dict[str, Any]:
        """Send an event no API call caused (``account`` set: on that connected account,
        as when its holder acts in their own Dashboard); returns the event."""
        return self.state.trigger(type, obj, account=account, livemode=livemode)

    def pay(self, session_id: str) -> dict[str, Any]:
        """Pay by card: complete/paid; sends ``checkout.session.completed``."""
        return self.state.complete_session(session_id, delayed=False)

    def pay_delayed(self, session_id: str) -> dict[str, Any]:
        """Pay by bank debit: complete but ``unpaid`` until :meth:`settle`/:meth:`fail_payment`."""
        return self.state.complete_session(session_id, delayed=True)

    def settle(self, session_id: str) -> dict[str, Any]:
        """The bank debit settled: ``checkout.session.async_payment_succeeded``."""
        return self.state.resolve_delayed(session_id, succeeded=True)

    def fail_payment(self, session_id: str) -> dict[str, Any]:
        """The bank debit failed: ``checkout.session.async_payment_failed``."""
        return self.state.resolve_delayed(session_id, succeeded=False)

    def expire_session(self, session_id: str) -> dict[str, Any]:
        """Expire an open session now: ``checkout.session.expired``."""
        return self.state.expire_session(session_id)

    def renew_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Bill the next period: ``invoice.paid`` and ``customer.subscription.updated``."""
        return self.state.renew_subscription(subscription_id)

    def cancel_subscription(self, subscription_id: str) -> dict[str, Any]:
        """End the subscription: ``customer.subscription.deleted``."""
        return self.state.cancel_subscription(subscription_id)

    def open_dispute(
        self, payment: str, *, reason: str = "fraudulent", inquiry: bool = False
    ) -> dict[str, Any]:
        """The cardholder disputed a payment (a payment intent or its charge):
        ``charge.dispute.created`` and, for a chargeback, ``.funds_withdrawn``."""
        return self.state.open_dispute(payment, reason=reason, inquiry=inquiry)

    def submit_dispute_evidence(self, dispute_id: str) -> dict[str, Any]:
        """Evidence submitted: ``charge.dispute.updated`` (under review)."""
        return self.state.submit_dispute_evidence(dispute_id)

    def win_dispute(self, dispute_id: str) -> dict[str, Any]:
        """The dispute is won: ``charge.dispute.closed`` and ``.funds_reinstated``."""
        return self.state.win_dispute(dispute_id)

    def lose_dispute(self, dispute_id: str) -> dict[str, Any]:
        """The dispute is lost: ``charge.dispute.closed``."""
        return self.state.lose_dispute(dispute_id)

    def schedule_cancellation(self, subscription_id: str) -> dict[str, Any]:
        """The customer cancels at the period's end: ``customer.subscription.updated``."""
        return self.state.schedule_cancellation(subscription_id)

    def undo_cancellation(self, subscription_id: str) -> dict[str, Any]:
        """The scheduled cancellation is withdrawn: ``customer.subscription.updated``."""
        return self.state.undo_cancellation(subscription_id)

    def fail_renewal(self, subscription_id: str) -> dict[str, Any]:
        """The renewal's charge fails: ``invoice.payment_failed``, subscription past due."""
        return self.state.fail_renewal(subscription_id)

    def pay_failed_renewal(self, subscription_id: str) -> dict[str, Any]:
        """The failed renewal is paid after all: ``invoice.paid``, subscription active."""
        return self.state.pay_failed_renewal(subscription_id)

    def end_period(self, subscription_id: str) -> dict[str, Any]:
        """The period ends: deleted if set to cancel then, else renewed."""
        return self.state.end_period(subscription_id)

    def fail_refund(self, refund_id: str) -> dict[str, Any]:
        """The refund failed after it was made: ``refund.updated`` and ``refund.failed``."""
        return self.state.fail_refund(refund_id)

    def charge(self, charge_id: str) -> dict[str, Any]:
        """A charge as Stripe holds it (with ``amount_refunded``)."""
        with self.state.lock:
            return public(self.state.charge(charge_id))

    # -- the same controls over HTTP --------------------------------------------------

    def activate_stripe_tax(self, account_id: str) -> dict[str, Any]:
        """The account holder set Stripe Tax up (its tax settings become ``active``)."""
        return self.state.activate_stripe_tax(account_id)

    def apply_promotion_code(self, session_id: str, code: str) -> dict[str, Any]:
        """The client typed a promotion ``code`` on the hosted Checkout page."""
        return self.state.apply_promotion_code(session_id, code)

    def get_tax_rate(self, tax_rate_id: str) -> dict[str, Any]:
        return self.state.tax_rates[tax_rate_id]

    def get_coupon(self, coupon_id: str) -> dict[str, Any]:
        return self.state.coupons[coupon_id]

    def control(self, method: str, path: str, data: dict[str, Any]) -> Any:
        """Run one ``/_emulator/...`` route (the HTTP form of the methods above).

        ``POST /_emulator/accounts/<id>/{complete_onboarding,deauthorize,
        connect_in_both_modes}``, ``POST /_emulator/events`` ``{"type", "object",
        "account", "livemode"}``,
        ``POST /_emulator/checkout/sessions/<id>/{pay,pay_delayed,settle,fail_payment,expire}``,
        ``POST /_emulator/subscriptions/<id>/{renew,cancel,schedule_cancellation,
        undo_cancellation,fail_renewal,pay_failed_renewal,end_period}``,
        ``POST /_emulator/{payment_intents,charges}/<id>/dispute`` ``{"reason", "inquiry"}``,
        ``POST /_emulator/disputes/<id>/{submit_evidence,win,lose}``,
        ``POST /_emulator/refunds/<id>/fail``, ``POST /_emulator/reset``,
        ``POST /_emulator/faults`` ``{"kind", "count", "path_prefix"}``,
        ``POST /_emulator/clock`` ``{"advance": seconds}``,
        ``POST /_emulator/settings`` ``{"webhooks_enabled", "duplicate_deliveries",
        "shuffle_deliveries", "require_charges_enabled", "timeout_fault_seconds"}``,
        ``POST /_emulator/deliver_pending``, and ``GET /_emulator/{requests,events,
        deliveries}``.
        """
        object_routes: dict[str, Callable[[str], Any]] = {
            "accounts/complete_onboarding": self.complete_onboarding,
            "accounts/deauthorize": self.deauthorize,
            "accounts/connect_in_both_modes": self.connect_in_both_modes,
            "accounts/activate_stripe_tax": self.activate_stripe_tax,
            "checkout/sessions/pay": self.pay,
            "checkout/sessions/pay_delayed": self.pay_delayed,
            "checkout/sessions/settle": self.settle,
            "checkout/sessions/fail_payment": self.fail_payment,
            "checkout/sessions/expire": self.expire_session,
            "subscriptions/renew": self.renew_subscription,
            "subscriptions/cancel": self.cancel_subscription,
            "subscriptions/schedule_cancellation": self.schedule_cancellation,
            "subscriptions/undo_cancellation": self.undo_cancellation,
            "subscriptions/fail_renewal": self.fail_renewal,
            "subscriptions/end_period": self.end_period,
            "subscriptions/pay_failed_renewal": self.pay_failed_renewal,
            "disputes/submit_evidence": self.submit_dispute_evidence,
            "disputes/win": self.win_dispute,
            "disputes/lose": self.lose_dispute,
            "refunds/fail": self.fail_refund,
        }
        opening = re.fullmatch(r"/_emulator/(?:payment_intents|charges)/([^/]+)/dispute/?", path)
        if method == "POST" and opening:
            return self.open_dispute(
                opening.group(1),
                reason=str(data.get("reason") or "fraudulent"),
                inquiry=bool(data.get("inquiry", False)),
            )
        match = re.fullmatch(r"/_emulator/(.+)/([^/]+)/([a-z_]+)/?", path)
        if method == "POST" and match:
            handler = object_routes.get(f"{match.group(1)}/{match.group(3)}")
            if handler is not None:
                return handler(match.group(2))
        route = (method, path.rstrip("/"))
        if route == ("POST", "/_emulator/events"):
            return self.trigger(
                str(data.get("type")),
                dict(data.get("object") or {}),
                account=data.get("account"),
                livemode=bool(data.get("livemode", False)),
            )
        if route == ("POST", "/_emulator/reset"):
            self.reset()
            return {"reset": True}
        if route == ("POST", "/_emulator/faults"):
            self.inject_fault(
                str(data.get("kind")), int(data.get("count", 1)), data.get("path_prefix")
            )
            return {"faults": [vars(f) for f in self.state.faults]}
        if route == ("POST", "/_emulator/clock"):
            return {"now": self.advance_clock(float(data.get("advance", 0)))}
        if route == ("POST", "/_emulator/settings"):
            for name in (
                "webhooks_enabled",
                "duplicate_deliveries",
                "shuffle_deliveries",
                "require_charges_enabled",
                "timeout_fault_seconds",
            ):
                if name in data:
                    setattr(self, name, data[name])
            return {
                "webhooks_enabled": self.webhooks_enabled,
                "duplicate_deliveries": self.duplicate_deliveries,
                "shuffle_deliveries": self.shuffle_deliveries,
                "require_charges_enabled": self.require_charges_enabled,
                "timeout_fault_seconds": self.timeout_fault_seconds,
            }
        if route == ("POST", "/_emulator/deliver_pending"):
            return {"deliveries": [d.to_json() for d in self.deliver_pending()]}
        if route == ("GET", "/_emulator/requests"):
            return {"requests": [r.to_json() for r in list(self.requests)]}
        if route == ("GET", "/_emulator/events"):
            return {"events": list(self.events)}
        if route == ("GET", "/_emulator/deliveries"):
            return {"deliveries": [d.to_json() for d in list(self.deliveries)]}
        raise EmulatorError(f"No emulator control at {method} {path}.", status=404)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m wagtail_client_billing.testing.stripe_emulator",
        description="Run an offline Stripe API emulator with hosted pages and webhooks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument(
        "--webhook-url",
        action="append",
        default=[],
        help="POST events here; repeat for several endpoints (paired with --webhook-secret).",
    )
    parser.add_argument(
        "--webhook-secret",
        action="append",
        default=[],
        help="Signing secret (whsec_...) for the --webhook-url at the same position.",
    )
    parser.add_argument(
        "--public-url", help="Origin browsers use for hosted pages (default: the bound address)."
    )
    parser.add_argument("--retry-delay", type=float, default=1.0, help="First webhook retry delay.")
    parser.add_argument("--max-attempts", type=int, default=5, help="Webhook tries per event.")
    parser.add_argument("--verbose", action="store_true", help="Log every HTTP request.")
    parser.add_argument(
        "--state-file",
        help="Keep accounts, sessions and subscriptions in this JSON file across restarts.",
    )
    args = parser.parse_args(argv)
    if len(args.webhook_url) != len(args.webhook_secret):
        parser.error("give one --webhook-secret for each --webhook-url, in the same order")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: serve until interrupted (SIGINT/SIGTERM)."""
    args = _parse_args(argv)
    emulator = StripeEmulator(
        args.host,
        args.port,
        webhooks=list(zip(args.webhook_url, args.webhook_secret, strict=True)),
        public_url=args.public_url,
        retry_delay=args.retry_delay,
        max_attempts=args.max_attempts,
        verbose=args.verbose,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    state_file = Path(args.state_file) if args.state_file else None
    if state_file and state_file.exists():
        emulator.state.restore(json.loads(state_file.read_text()))
    emulator.start()
    print(
        f"Stripe emulator listening on {emulator.base_url} "
        f"(hosted pages at {emulator.public_url}); Ctrl-C to stop.",
        flush=True,
    )
    saved_at = -1
    try:
        while not done.is_set():
            time.sleep(0.2)
            if state_file and len(emulator.state.requests) != saved_at:
                saved_at = len(emulator.state.requests)
                _save_state(emulator, state_file)
    except KeyboardInterrupt:
        pass
    finally:
        if state_file:
            _save_state(emulator, state_file)
        emulator.stop()
    return 0


def _save_state(emulator: StripeEmulator, path: Path) -> None:
    """Write atomically, so a stop mid-write never leaves a broken file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(emulator.state.snapshot()))
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
