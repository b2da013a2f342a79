"""Waiting cases grouped by their resolved target ("buckets"), each ordered by priority then age.

Constraint: when a worker frees up, the engine must find the case it should take without
scanning the queue. Cases with equal resolved targets share a bucket, and buckets are indexed
by (channel, language) and by preferred worker, so a worker only looks at the heads of the
buckets it could serve. Heaps use lazy deletion: an entry is live while its token matches.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from router.config import StepConfig
from router.models import Channel, Requirement
from router.matching.targets import Resolved, matches


@dataclass(slots=True)
class QueuedCase:
    case_id: str
    req: Requirement
    steps: list[StepConfig]
    queued_at: float
    seq: int
    excluded: set[str] = field(default_factory=set)
    preferred: str | None = None
    steps_start: float = 0.0
    step_index: int = 0  # -1 while only the preferred worker is asked
    target: Resolved | None = None
    token: int = 0
    waiting: bool = False  # in a bucket (not holding an offer)
    wait_exceeded: bool = False

    @property
    def order(self) -> tuple[int, float, int]:
        return (-self.req.priority, self.queued_at, self.seq)

    @property
    def step_name(self) -> str:
        return "preferred_worker" if self.step_index < 0 else self.steps[self.step_index].name


# Tokens are unique across all cases, so a timer armed for an earlier routing of a case never
# matches a later one.
_tokens = itertools.count(1)


class Queues:
    def __init__(self) -> None:
        self._heaps: dict[Resolved, list[tuple]] = {}
        self._live: dict[Resolved, int] = defaultdict(int)
        self._by_lang: dict[tuple[Channel, str | None], set[Resolved]] = defaultdict(set)
        self._by_worker: dict[str, set[Resolved]] = defaultdict(set)

    def push(self, qc: QueuedCase) -> None:
        t = qc.target
        assert t is not None
        qc.token = next(_tokens)
        qc.waiting = True
        heap = self._heaps.get(t)
        if heap is None:
            heap = self._heaps[t] = []
            if t.worker_id is not None:
                self._by_worker[t.worker_id].add(t)
            else:
                self._by_lang[(t.channel, t.language)].add(t)
        heapq.heappush(heap, (*qc.order, qc.token, qc.case_id))
        self._live[t] += 1

    def discard(self, qc: QueuedCase) -> None:
        """Take a case out of its bucket (its heap entry goes stale)."""
        if qc.waiting and qc.target is not None:
            qc.waiting = False
            qc.token = next(_tokens)
            self._live[qc.target] -= 1
            if self._live[qc.target] <= 0:
                self._drop(qc.target)

    def _drop(self, t: Resolved) -> None:
        self._heaps.pop(t, None)
        self._live.pop(t, None)
        if t.worker_id is not None:
            self._by_worker[t.worker_id].discard(t)
        else:
            self._by_lang[(t.channel, t.language)].discard(t)

    def head_for(self, w, channel: Channel, cases: dict[str, QueuedCase]) -> QueuedCase | None:
        """The first waiting case (priority, age) on ``channel`` that worker ``w`` may take."""
        best: QueuedCase | None = None
        candidates = [*self._by_worker.get(w.id, ()), *self._by_lang.get((channel, None), ())]
        for lang in w.languages:
            candidates.extend(self._by_lang.get((channel, lang), ()))
        for t in candidates:
            if t.channel is not channel or not matches(w, t):
                continue
            qc = self._head(t, cases, w.id)
            if qc is not None and (best is None or qc.order < best.order):
                best = qc
        return best

    def _head(self, t: Resolved, cases: dict[str, QueuedCase], worker_id: str):
        heap = self._heaps.get(t)
        skipped: list[tuple] = []
        found = None
        while heap:
            entry = heap[0]
            qc = cases.get(entry[-1])
            if qc is None or qc.token != entry[-2] or not qc.waiting:
                heapq.heappop(heap)  # stale
                continue
            if worker_id in qc.excluded:
                skipped.append(heapq.heappop(heap))
                continue
            found = qc
            break
        for entry in skipped:
            heapq.heappush(heap, entry)
        return found

    def lengths(self) -> dict[Resolved, int]:
        return {t: n for t, n in self._live.items() if n > 0}
