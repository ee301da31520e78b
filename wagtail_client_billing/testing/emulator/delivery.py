"""Signed webhook delivery with Stripe's retry behaviour, and switches to break it.

Stripe delivers each event to each endpoint at least once, possibly more than once, in
no guaranteed order, and retries with exponential backoff while the endpoint answers
non-2xx or cannot be reached.  The app must cope with all of that, so the dispatcher
can reproduce each case on purpose: ``duplicates`` (every event N times), ``shuffle``
(a pending batch in random, seeded order) and ``enabled = False`` (events recorded,
nothing sent).

Two kinds of receiver exist.  ``targets`` are plain ``(target, secret)`` pairs that get
every event as it was made (the quick setup tests use).  Webhook endpoints -- Stripe's
``webhook_endpoint`` objects, made through the API or
:meth:`StripeEmulator.add_webhook_endpoint` -- are chosen per event by the ``router``
the emulator's state installs, which applies Stripe's rules (platform or Connect
endpoint, mode, ``enabled_events``) and says which API version to stamp on the event.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..webhooks import sign_payload

#: A webhook target: an ``http(s)://`` URL, or ``callable(body, headers) -> status``.
Target = str | Callable[[bytes, dict[str, str]], int]


@dataclass(frozen=True)
class Route:
    """Where one event goes: a receiver, its signing secret, and how to stamp the event.

    Attributes:
        target: the URL or callable.
        secret: the signing secret (``whsec_...``).
        api_version: the version written into the delivered event's ``api_version``;
            ``None`` leaves the event as it was made.
        endpoint: the ``we_...`` id, for endpoints; ``None`` for plain targets.
    """

    target: Target
    secret: str
    api_version: str | None = None
    endpoint: str | None = None


#: Chooses the webhook endpoints an event goes to (installed by the emulator's state).
Router = Callable[[dict[str, Any]], list[Route]]


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver one event to one target.

    Attributes:
        event_id: the ``evt_...`` id (identical across duplicates and retries, as with
            Stripe, so a receiver can de-duplicate by it).
        event_type: e.g. ``"checkout.session.completed"``.
        target: the URL, or the callable's ``repr``.
        status: the HTTP status the receiver answered, ``None`` if unreachable.
        attempt: 1 for the first try, 2 for the first retry...
        error: why the attempt failed to get a status, if it did.
        endpoint: the ``we_...`` id of the webhook endpoint, ``None`` for a plain target.
        api_version: the ``api_version`` the delivered event carried.
    """

    event_id: str
    event_type: str
    target: str
    status: int | None
    attempt: int
    error: str | None = None
    at: float = field(default_factory=time.time)
    endpoint: str | None = None
    api_version: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the receiver acknowledged the event (any 2xx)."""
        return self.status is not None and 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "target": self.target,
            "status": self.status,
            "attempt": self.attempt,
            "error": self.error,
            "at": self.at,
            "endpoint": self.endpoint,
            "api_version": self.api_version,
        }


class WebhookDispatcher:
    """Queue events and deliver them, in a background thread or when asked.

    Attributes:
        targets: ``(target, secret)`` pairs; every event goes to every target.
        router: picks the webhook endpoints of each event (none by default).
        max_attempts: tries per event and target before giving up (Stripe keeps trying
            for days; tests want a handful).
        retry_delay: seconds before the first retry, doubled for each further retry.
        timeout: seconds to wait for an HTTP receiver.
        duplicates: deliver each event this many times (at-least-once delivery).
        shuffle: deliver each pending batch in a random order drawn from ``seed``.
        enabled: when false, events are dropped from the queue without delivery.
    """

    def __init__(
        self,
        targets: list[tuple[Target, str]] | None = None,
        *,
        auto_deliver: bool = True,
        max_attempts: int = 4,
        retry_delay: float = 0.5,
        timeout: float = 5.0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.targets: list[tuple[Target, str]] = list(targets or [])
        self.router: Router = lambda event: []
        self.auto_deliver = auto_deliver
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.duplicates = 1
        self.shuffle = False
        self.enabled = True
        self.random = random.Random(seed)
        self.clock = clock
        self.deliveries: list[Delivery] = []
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._busy = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (only used when ``auto_deliver`` is on)."""
        if self.auto_deliver and self._thread is None:
            self._stopped = False
            self._thread = threading.Thread(
                target=self._run, name="stripe-emulator-webhooks", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def clear(self) -> None:
        """Forget pending events and the delivery log."""
        with self._lock:
            self._pending.clear()
            self.deliveries.clear()

    # -- queue ---------------------------------------------------------------------

    def routes(self, event: dict[str, Any]) -> list[Route]:
        """Every receiver of ``event``: the plain targets, then the matching endpoints.

        Call it without holding the dispatcher's lock: the router takes the state's.
        """
        plain = [Route(target, secret) for target, secret in list(self.targets)]
        return plain + self.router(event)

    def enqueue(self, event: dict[str, Any]) -> None:
        if not self.enabled or not self.routes(event):
            return
        with self._wake:
            self._pending.append(event)
            self._wake.notify_all()

    @property
    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._pending)

    def _take_batch(self) -> list[dict[str, Any]]:
        batch = self._pending[:]
        self._pending.clear()
        if self.shuffle:
            self.random.shuffle(batch)
        return batch

    def deliver_pending(self) -> list[Delivery]:
        """Deliver everything queued so far, in the caller's thread; return the attempts.

        Tests inside a database transaction (Django's ``TestCase``) must deliver from
        their own thread: a receiver called from another thread would not see the
        test's uncommitted rows.
        """
        with self._lock:
            batch = self._take_batch()
            self._busy += 1
        try:
            return self._deliver_batch(batch)
        finally:
            with self._wake:
                self._busy -= 1
                self._wake.notify_all()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is pending or being delivered; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                batch = self._take_batch()
                self._busy += 1
            try:
                self._deliver_batch(batch)
            finally:
                with self._wake:
                    self._busy -= 1
                    self._wake.notify_all()

    # -- delivery ------------------------------------------------------------------

    def _deliver_batch(self, batch: list[dict[str, Any]]) -> list[Delivery]:
        made: list[Delivery] = []
        for event in batch:
            for _copy in range(max(1, self.duplicates)):
                for route in self.routes(event):
                    made.extend(self._deliver_one(event, route))
        return made

    def _deliver_one(self, event: dict[str, Any], route: Route) -> list[Delivery]:
        """Send one event to one receiver, retrying with exponential backoff."""
        if route.api_version is not None:
            event = {**event, "api_version": route.api_version}
        target, secret = route.target, route.secret
        body = json.dumps(event, indent=2).encode("utf-8")
        made: list[Delivery] = []
        for attempt in range(1, self.max_attempts + 1):
            # Each attempt is signed afresh, as Stripe does, so the timestamp is current.
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": sign_payload(body, secret, int(self.clock())),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            }
            status, error = self._send(target, body, headers)
            delivery = Delivery(
                event_id=event["id"],
                event_type=event["type"],
                target=target if isinstance(target, str) else repr(target),
                status=status,
                attempt=attempt,
                error=error,
                endpoint=route.endpoint,
                api_version=event.get("api_version"),
            )
            with self._lock:
                self.deliveries.append(delivery)
            made.append(delivery)
            if delivery.ok or self._stopped:
                break
            if attempt < self.max_attempts:
                time.sleep(self.retry_delay * (2 ** (attempt - 1)))
        return made

    def _send(
        self, target: Target, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        if callable(target):
            try:
                return int(target(body, dict(headers))), None
            except Exception as exc:  # a crashing receiver is a failed delivery
                return None, f"{type(exc).__name__}: {exc}"
        request = urllib.request.Request(target, data=body, headers=headers, method="POST")  # noqa: S310 - URL given by the test/operator
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
