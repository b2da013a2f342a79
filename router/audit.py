"""The audit log: sensitive actions, who did them, from where, when.

Held: take, reassign (a supervisor's transfer to a named worker), transfer, hand-back,
close, and the first use of a token from an address not seen for that subject since the
router started. Each entry goes to the ``baton.audit`` logger (no PII: ids of cases and
staff, addresses of staff), to a bounded in-memory list that admins read with
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
from typing import Any, Callable

log = logging.getLogger("baton.audit")
ACTIONS = ("take", "reassign", "transfer", "handback", "close", "estop", "token_new_address")


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
