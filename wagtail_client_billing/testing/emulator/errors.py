"""Errors raised inside the emulator.

``StripeError`` is rendered on the wire exactly like Stripe's error JSON, so the real
``stripe`` client raises the same exception class it would raise against Stripe.
``EmulatorError`` is for the test controls (``pay``, ``settle``...), which are not part
of Stripe's API: a test that drives an impossible transition should fail loudly.
"""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An API error with Stripe's HTTP status and ``{"error": {...}}`` body."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        """The body Stripe sends; absent fields are omitted, as Stripe does."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def resource_missing(object_name: str, object_id: str, param: str = "id") -> StripeError:
    """Stripe's 404 for an id that does not exist (or is not visible to this caller)."""
    return StripeError(
        f"No such {object_name}: '{object_id}'",
        status=404,
        code="resource_missing",
        param=param,
    )


class EmulatorError(Exception):
    """A test control was asked for something the emulated object cannot do.

    Attributes:
        status: the HTTP status the ``/_emulator/`` route answers with.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
