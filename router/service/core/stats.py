"""Live figures for supervisors and workforce planning: queues, waits, service level."""

from __future__ import annotations

from collections import Counter
from typing import Any

from protocol.models import Presence

WINDOW_S = 3600.0


def stats(core, engine, open_cases, presence_of, answered) -> dict[str, Any]:
    """``core.stats()`` calls it with the core's state (a read under the event loop: no
    await, so it sees one consistent moment)."""
    now = core.clock.now()
    queues: Counter[str] = Counter()
    oldest = 0.0
    for qc in engine.cases.values():
        wf = qc.req.workflow or "default"
        queues[f"{wf}/{qc.step_name}"] += 1
        oldest = max(oldest, now - qc.queued_at)
    recent = [w for at, w in answered if now - at <= WINDOW_S]
    sl_s = core.cfg.routing.service_level_s
    states = Counter(c.state.value for c in open_cases.values())
    presence = Counter(p.value for p in presence_of.values())
    busy = sum(1 for wid, p in presence_of.items()
               if p is Presence.available and (w := engine.pool.get(wid)) and w.total_load)
    return {
        "at": now,
        "waiting": len(engine.cases),
        "offers_pending": len(engine.offers),
        "queues": dict(sorted(queues.items())),
        "oldest_wait_s": round(oldest, 3),
        "answered_last_hour": len(recent),
        "asa_s": round(sum(recent) / len(recent), 3) if recent else None,
        "service_level": round(sum(1 for w in recent if w <= sl_s) / len(recent), 4)
        if recent else None,
        "service_level_s": sl_s,
        "open_cases_by_state": dict(states),
        "workers_by_presence": dict(presence),
        "workers_busy": busy,
        "alerts": len(core._alerts),
        # Per subscriber of the core's events: queued now, dropped and overflows in all
        # (each overflow made it resynchronise from a snapshot).
        "event_subscribers": core.subscribers(),
        # State rebuilt from the store after a failed write: 0 unless input slipped past
        # the checks before the group commit (docs/protocol.md §8).
        "state_rebuilds": core.rebuilds,
    }
