"""Trends over the last hours for the floor monitor: waiting, service level, average speed of
answer, escalation rate/precision/recall, per time bucket. Pure: the caller reads the cases
and their events from the store; nothing here is sampled, so a chart drawn from it is the
store's history, and a restart loses nothing.

- waiting: cases waiting for a person at the bucket's end (from a ``queued`` or ``transfer``
  event to the accepted offer, hand-back or outcome).
- answered, ASA, service level: offers accepted in the bucket, the wait before each.
- escalation rate, precision, recall: router.kpis over the cases opened in the bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from router.kpis import compute_kpis

MAX_BUCKETS = 288


def _waits(events: Sequence) -> tuple[list[tuple[float, float | None]], list[tuple[float, float]]]:
    """(waiting intervals [start, end or None]), (answers (at, waited))."""
    intervals: list[tuple[float, float | None]] = []
    answers: list[tuple[float, float]] = []
    start: float | None = None
    for ev in events:
        t = ev.type
        if t in ("queued", "transfer") and start is None:
            start = ev.ts
        elif start is not None and (
                (t == "offer_result" and ev.payload.status == "accepted")
                or t in ("outcome", "handback")):
            if t == "offer_result":
                answers.append((ev.ts, max(0.0, ev.ts - start)))
            intervals.append((start, ev.ts))
            start = None
    if start is not None:
        intervals.append((start, None))
    return intervals, answers


def queue_of(case) -> str:
    req = case.requirement
    return (req.workflow if req is not None and req.workflow else "default")


def trends(items: Iterable[tuple[Any, Sequence]], *, now: float, hours: float,
           bucket_s: float, service_level_s: float, site: str | None = None,
           queue: str | None = None) -> dict[str, Any]:
    if bucket_s <= 0 or hours <= 0:
        raise ValueError("hours and bucket_s must be positive")
    n = int(hours * 3600 // bucket_s)
    if not 1 <= n <= MAX_BUCKETS:
        raise ValueError(f"{n} buckets: choose hours and bucket_s for 1 to {MAX_BUCKETS}")
    start = now - n * bucket_s
    all_items = list(items)
    sites = sorted({c.site for c, _ in all_items})
    queues = sorted({queue_of(c) for c, _ in all_items})
    chosen = [(c, ev) for c, ev in all_items if (site is None or c.site == site)
              and (queue is None or queue_of(c) == queue)]
    per_case = [(c, ev, *_waits(ev)) for c, ev in chosen]
    buckets = []
    for i in range(n):
        b0, b1 = start + i * bucket_s, start + (i + 1) * bucket_s
        waiting = sum(1 for _, _, iv, _ in per_case for s, e in iv
                      if s <= b1 and (e is None or e > b1))
        waits = [w for _, _, _, ans in per_case for at, w in ans if b0 <= at < b1]
        opened = [(c, ev) for c, ev, _, _ in per_case if b0 <= c.created_at < b1]
        k = compute_kpis(opened) if opened else None
        buckets.append({
            "start": b0, "end": b1, "waiting": waiting, "answered": len(waits),
            "asa_s": round(sum(waits) / len(waits), 3) if waits else None,
            "service_level": round(sum(1 for w in waits if w <= service_level_s) / len(waits), 4)
            if waits else None,
            "cases": len(opened),
            "escalation_rate": k.escalation_rate if k else None,
            "escalation_precision": k.escalation_precision if k else None,
            "escalation_recall": k.escalation_recall if k else None,
        })
    return {"now": now, "hours": hours, "bucket_s": bucket_s, "site": site, "queue": queue,
            "service_level_s": service_level_s, "sites": sites, "queues": queues,
            "buckets": buckets}
