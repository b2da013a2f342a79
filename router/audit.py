"""The audit log: sensitive actions, who did them, from where, when.

Held: take, reassign (a supervisor's transfer to a named worker), transfer, hand-back,
close, a device's emergency stop latching or being reset (``estop`` / ``estop_reset``: the
edge records it as an ``action`` event on the case, see ``device_audit_entry``), and the
first use of a token from an address not seen for that subject since the router started.
Each entry goes to the ``baton.audit`` logger (no PII: ids of cases and staff, addresses of
staff), to a bounded in-memory list that admins read with
``GET /v1/audit``, and, when a data directory is set, appended to ``audit.jsonl`` (0600) so it
outlives the process. With several routers each keeps its own file: collect them with
the logs (docs/security.md).
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger("baton.audit")
ACTIONS = ("take", "reassign", "transfer", "handback", "close", "estop", "estop_reset",
           "token_new_address")
# A device's ``action`` events with these tools are audited (edge/station.py sends them).
ESTOP_TOOLS = ("estop", "estop_reset")


class EstopArgs(BaseModel):
    """``args`` of a device's ``estop`` / ``estop_reset`` action (docs/protocol.md §3)."""

    model_config = ConfigDict(extra="forbid")
    # Bounds as in the session start (protocol.signaling.SignalDown) the device got.
    by: str = Field("device", min_length=1, max_length=80, description="who asked: the "
                    "worker of the WebRTC session (named by the router), or 'device'")
    source: Literal["data_channel", "device"] = "device"
    reason: str | None = Field(default=None, max_length=200)
    session: str | None = Field(default=None, min_length=1, max_length=80)


def estop_refusal(event) -> str | None:
    """Why a device's e-stop action (a protocol.models case event) is malformed, or None;
    router.device_rules refuses it (dead letter with this reason)."""
    if event.type != "action" or event.payload.tool not in ESTOP_TOOLS:
        return None
    try:
        EstopArgs.model_validate(event.payload.args)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "args"
        return (f"{event.payload.tool} action: args.{where}: {err['msg']} (args are by, "
                "source, reason, session)")
    return None


def device_audit_entry(event) -> dict[str, Any] | None:
    """The audit entry (``AuditLog.record`` arguments) a device's case event makes, or
    None. Pure. The actor is who the device says asked: it knows the worker from the
    session start the router sent it."""
    if event.type != "action" or event.payload.tool not in ESTOP_TOOLS:
        return None
    try:
        args = EstopArgs.model_validate(event.payload.args)
    except ValidationError:
        return None  # refused before it was applied (router.device_rules)
    return {"action": event.payload.tool, "actor": args.by, "case_id": event.case_id,
            "device": event.origin, "source": args.source, "reason": args.reason,
            "session": args.session, "at": event.ts}


class AuditLog:
    def __init__(self, now: Callable[[], float], path: Path | None = None, keep: int = 10_000,
                 addresses_per_subject: int = 64):
        self._now, self.path = now, path
        self._entries: deque[dict[str, Any]] = deque(maxlen=keep)
        self._seen: dict[str, deque[str]] = {}
        self._per_subject = addresses_per_subject
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, action: str, actor: str, *, case_id: str | None = None,
               address: str | None = None, **detail: Any) -> dict[str, Any]:
        entry = {"ts": self._now(), "action": action, "actor": actor, "case_id": case_id,
                 "address": address, **({"detail": detail} if detail else {})}
        self._entries.append(entry)
        log.info("audit", extra={"audit": entry})
        if self.path is not None:
            # One short line, appended: cheaper than handing it to a thread.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(json.dumps(entry, separators=(",", ":")) + "\n")
        return entry

    def token_used(self, subject: str, address: str | None, via: str) -> None:
        """Record the first use of ``subject``'s token from ``address`` (bounded memory)."""
        if not address:
            return
        seen = self._seen.setdefault(subject, deque(maxlen=self._per_subject))
        if address in seen:
            return
        first = not seen
        seen.append(address)
        self.record("token_new_address", subject, address=address, via=via,
                    first_use=first)

    def recent(self, limit: int = 200, action: str | None = None) -> list[dict[str, Any]]:
        items = [e for e in self._entries if action is None or e["action"] == action]
        return items[-limit:][::-1]
