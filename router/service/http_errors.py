"""Domain reason codes → HTTP status: the one table, used by the REST error handler and the
worker socket's ``error`` messages. The core raises errors with a reason and no status."""

from __future__ import annotations

from router.service.core import CoreError

STATUS_BY_REASON: dict[str, int] = {
    "not_found": 404,
    "forbidden": 403,
    "not_in_roster": 403,
    "invalid": 422,
    "language": 422,
    "turn_rejected": 422,
    "unavailable": 503,
    # 409: the case's (or offer's) state does not allow it now
    "conflict": 409,
    "closed": 409,
    "seq_gap": 409,
    "target_unavailable": 409,
    "not_connected": 409,
    "already_yours": 409,
    "excluded": 409,
    "taker_unavailable": 409,
    "taker_at_capacity": 409,
    "no_consult": 409,
}

# Reasons that only restate the status: not repeated as ``reason`` in the error body.
GENERIC = frozenset({"not_found", "forbidden", "invalid", "unavailable", "conflict"})

CODE_BY_STATUS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                  422: "invalid_request", 503: "unavailable"}


def status_of(exc: CoreError) -> int:
    return STATUS_BY_REASON.get(exc.reason, 409)


def error_code(status: int) -> str:
    return CODE_BY_STATUS.get(status, "error")


def error_body(exc: CoreError) -> dict[str, str]:
    body = {"error": error_code(status_of(exc)), "message": str(exc)}
    if exc.reason not in GENERIC:
        body["reason"] = exc.reason
    return body
