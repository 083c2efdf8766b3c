"""The update service's failures, each carrying the HTTP status and the short machine code a client sees.

The service layer raises these without knowing about HTTP; the app turns any of them into a 4xx with the
body ``{"error": code, "detail": message}`` and the command line prints the message as its one line.
Every one is a :class:`~mcuota.errors.McuotaError`, so the same exception reads the same everywhere.
"""

from __future__ import annotations

from typing import Any

from mcuota.errors import McuotaError


class ServiceError(McuotaError):
    """Base of every deliberate refusal of the update service."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.extra = extra or {}


class BadRequest(ServiceError):
    status = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    """No credential, or one the server does not know."""

    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    """A known credential asking for something it may not do."""

    status = 403
    code = "forbidden"


class NotFound(ServiceError, LookupError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class TooLarge(ServiceError):
    status = 413
    code = "too_large"


class RangeNotSatisfiable(ServiceError):
    status = 416
    code = "range_not_satisfiable"


class Rejected(ServiceError):
    """Well-formed request, unacceptable content: a malformed, tampered or untrusted image."""

    status = 422
    code = "rejected"


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"
