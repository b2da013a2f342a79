"""The core's domain errors. Each carries a ``reason`` code that callers act on; none knows
about HTTP (router/service/http_errors.py maps reasons to status codes, at the web edge)."""

from __future__ import annotations

from common.errors import BatonError


class CoreError(BatonError):
    """A request the core cannot carry out now (the case's state does not allow it)."""

    reason = "conflict"

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message, reason=reason)


class NotFound(CoreError):
    reason = "not_found"


class Forbidden(CoreError):
    """The caller's relation to the case or worker does not allow it."""

    reason = "forbidden"


class Invalid(CoreError):
    """The request names something that does not exist in config or breaks a wire rule."""

    reason = "invalid"


class Unavailable(CoreError):
    """The case store cannot be reached or refused the change: try again shortly."""

    reason = "unavailable"
