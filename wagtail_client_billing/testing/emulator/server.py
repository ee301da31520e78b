"""The HTTP face of the emulator: Stripe's API, the hosted pages and the test controls.

Three prefixes, so nothing can be mistaken for Stripe:

* ``/v1/...`` — Stripe's API (Bearer auth, form-encoded, Stripe's JSON and errors);
* ``/_hosted/...`` — the onboarding and Checkout pages a browser visits;
* ``/_emulator/...`` — JSON test controls (pay, settle, faults, logs...).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import struct
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from . import keys, pages, platform
from .errors import EmulatorError, StripeError
from .params import decode_form
from .store import RequestContext, RequestRecord, mask_key, new_id

if TYPE_CHECKING:
    from ..stripe_emulator import StripeEmulator

_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading server that knows its emulator and never blocks shutdown."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: StripeEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, EmulatorHandler)


class EmulatorHandler(BaseHTTPRequestHandler):
    """One connection; keep-alive like Stripe's API, which the ``stripe`` client reuses."""

    protocol_version = "HTTP/1.1"
    server_version = "StripeEmulator/1.0"
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle's algorithm and
        # the client's delayed ACK hold up every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.emulator.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- plumbing ------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            # The client went away (a timeout fault outlived its patience): nothing to do.
            self.close_connection = True

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, indent=2).encode("utf-8")
        self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _send_page(self, page: pages.PageResponse) -> None:
        headers = {"Cache-Control": "no-store", **page.headers}
        self._send(page.status, page.html.encode("utf-8"), headers)

    def _reset_connection(self) -> None:
        """Drop the TCP connection without answering (an RST, like a dying proxy)."""
        self.close_connection = True
        try:
            self.wfile.close()
            self.rfile.close()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _dispatch(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        body = self._read_body()
        try:
            if path.startswith("/v1/"):
                self._api(path, url.query, body)
            elif path.startswith("/_emulator/"):
                self._control(path, body)
            elif path.startswith("/_hosted/"):
                self._hosted(path, body)
            elif path in ("", "/"):
                self._send_page(pages.index(self.server.emulator.state))
            else:
                self._send_json(
                    404, {"error": {"type": "invalid_request_error", "message": "Not found"}}
                )
        except Exception as exc:  # keep serving; show the bug to the test instead of hanging
            self._send_json(
                500,
                {"error": {"type": "api_error", "message": f"Emulator bug: {exc!r}"}},
            )
            raise

    # -- Stripe's API --------------------------------------------------------------

    def _api(self, path: str, query: str, body: bytes) -> None:
        emulator = self.server.emulator
        state = emulator.state
        method = self.command
        raw = query if method in ("GET", "DELETE") else body.decode("utf-8")
        params = decode_form(raw)
        account = self.headers.get("Stripe-Account")
        idempotency_key = self.headers.get("Idempotency-Key")
        fault = state.take_fault(path)

        def record(status: int | None, replayed: bool = False) -> None:
            with state.lock:
                state.requests.append(
                    RequestRecord(
                        method=method,
                        path=path,
                        params=params,
                        stripe_account=account,
                        idempotency_key=idempotency_key,
                        status=status,
                        fault=fault,
                        replayed=replayed,
                        at=state.now(),
                    )
                )

        request_id = new_id("req_", 14)
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": self.headers.get("Stripe-Version") or state.api_version,
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if fault == "reset":
            record(None)
            self._reset_connection()
            return
        if fault in ("500", "500-stored"):
            record(500)
            api_error = {"error": {"type": "api_error", "message": "An unknown error occurred"}}
            if fault == "500-stored" and method == "POST" and idempotency_key:
                # A 500 from inside the API, which Stripe stores under the idempotency key
                # and replays to every retry with that key ("500" is one from in front of
                # the API, which is not stored and a retry can get past).
                authorization = self.headers.get("Authorization") or ""
                livemode = keys.is_live(authorization.partition(" ")[2].strip())
                state.remember_answer(
                    method, path, params, livemode, account, idempotency_key, 500, api_error
                )
            self._send_json(500, api_error, headers)
            return
        if fault == "429":
            record(429)
            error = StripeError(
                "Request rate limit exceeded. You can learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                status=429,
                code="rate_limit",
            )
            self._send_json(429, error.to_json(), headers)
            return
        try:
            api_key = self._api_key()
            ctx = RequestContext(
                api_key=api_key,
                livemode=keys.is_live(api_key),
                account=account,
                idempotency_key=idempotency_key,
                request_id=request_id,
            )
            emulator.restricted_keys.check(
                api_key, method, path, account or platform.PLATFORM_ACCOUNT_ID
            )
            response, replayed = state.handle(method, path, params, ctx)
            status, payload = response.status, response.body
            headers.update(response.headers)
            if replayed:
                headers["Idempotent-Replayed"] = "true"
        except StripeError as error:
            status, payload, replayed = error.status, error.to_json(), False
            headers.update(error.headers)
        record(status, replayed)
        if fault == "timeout":
            # The request was carried out; only the answer is late, so the caller cannot
            # know whether it happened -- the case idempotency keys exist for.
            emulator.stopping.wait(emulator.timeout_fault_seconds)
        self._send_json(status, payload, headers)

    def _api_key(self) -> str:
        header = self.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(credentials).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise StripeError(_NO_KEY, status=401)
        if not keys.KEY_PATTERN.fullmatch(key):
            raise StripeError(
                f"Invalid API Key provided: {mask_key(key)}",
                status=401,
            )
        return key

    # -- hosted pages --------------------------------------------------------------

    def _hosted(self, path: str, body: bytes) -> None:
        state = self.server.emulator.state
        state.expire_due_sessions()
        action = None
        form: dict[str, str] = {}
        if self.command == "POST":
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            action = form.get("action", "")
        elif self.command != "GET":
            self._send_page(pages._message("Method not allowed", self.command, 405))
            return
        if match := re.fullmatch(r"/_hosted/onboarding/([A-Za-z0-9]+)", path):
            page = pages.onboarding(state, match.group(1), action)
        elif match := re.fullmatch(r"/_hosted/checkout/([A-Za-z0-9_]+)", path):
            page = pages.checkout(state, match.group(1), action)
        elif match := re.fullmatch(r"/_hosted/checkout/([A-Za-z0-9_]+)/processing", path):
            page = pages.processing(state, match.group(1), action)
        elif match := re.fullmatch(r"/_hosted/billing_portal/([A-Za-z0-9_]+)", path):
            page = pages.billing_portal(state, match.group(1), action, form)
        elif path in ("/_hosted/expired", "/_hosted/done"):
            page = pages._message("Onboarding", "You can close this page.")
        else:
            page = pages._message("Not found", "There is no hosted page here.", 404)
        self._send_page(page)

    # -- test controls -------------------------------------------------------------

    def _control(self, path: str, body: bytes) -> None:
        emulator = self.server.emulator
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "Body must be JSON."}})
            return
        try:
            result = emulator.control(self.command, path, data)
        except EmulatorError as error:
            self._send_json(error.status, {"error": {"message": error.message}})
            return
        except (TypeError, ValueError) as error:
            self._send_json(400, {"error": {"message": str(error)}})
            return
        self._send_json(200, result)


def serve_in_thread(server: EmulatorHTTPServer) -> threading.Thread:
    """Run ``server`` in a daemon thread; a short poll so ``shutdown()`` is quick."""
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="stripe-emulator-http",
        daemon=True,
    )
    thread.start()
    return thread
