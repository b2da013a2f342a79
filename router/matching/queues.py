"""Waiting cases grouped by their resolved target ("buckets"), each ordered by priority then age.

Constraint: when a worker frees up, the engine must find the case it should take without
scanning the queue. Cases with equal resolved targets share a bucket (a heap whose top is
always a live case). Buckets whose targets differ only in skills share a group, and a group
keeps its buckets sorted by their head case. A worker looks only at the groups whose
channel, language and proficiency, kinds, site (or preferred worker) it fits, reads each
group's buckets in head order, and stops as soon as no later bucket can beat the best case
found, so the cost is the buckets ahead of the answer that the worker lacks the skills for.

Heaps use lazy deletion: an entry is live while the case is waiting with the entry's token.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
from collections import defaultdict
from dataclasses import dataclass, field

from protocol.models import Channel, Requirement
from router.config import StepConfig
from router.matching.targets import Resolved


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
    bucket: _Bucket | None = field(default=None, repr=False, compare=False)

    @property
    def order(self) -> tuple[int, float, int]:
        return (-self.req.priority, self.queued_at, self.seq)

    @property
    def step_name(self) -> str:
        return "preferred_worker" if self.step_index < 0 else self.steps[self.step_index].name


# Tokens are unique across all cases, so a timer armed for an earlier routing of a case never
# matches a later one.
_tokens = itertools.count(1)


def _group_key(t: Resolved) -> tuple:
    return (t.channel, t.language, t.min_proficiency, t.kinds, t.site, t.worker_id)


class _Bucket:
    """The waiting cases of one resolved target. Heap entries are
    ``(-priority, queued_at, seq, token, case)``; ``head`` is the entry listed in the group
    (the live top of the heap)."""

    __slots__ = ("target", "heap", "live", "head", "group")

    def __init__(self, target: Resolved, group: list):
        self.target = target
        self.heap: list[tuple] = []
        self.live = 0
        self.head: tuple | None = None
        self.group = group


def _is_live(entry: tuple) -> bool:
    qc = entry[4]
    return qc.waiting and qc.token == entry[3]


class Queues:
    def __init__(self) -> None:
        self._buckets: dict[Resolved, _Bucket] = {}
        # group key -> [(-priority, queued_at, seq, token, bucket)] sorted: the head of each
        # non-empty bucket of the group.
        self._groups: dict[tuple, list[tuple]] = {}
        self._by_lang: dict[tuple[Channel, str | None], set[tuple]] = defaultdict(set)
        self._by_worker: dict[str, set[tuple]] = defaultdict(set)
        self.waiting = 0  # cases in all buckets: 0 lets a freed worker skip the lookup
        # (worker id, channel) -> (worker state, groups version, [group lists]): the groups a
        # worker fits on a channel, found again only when a group was added since (groups
        # are never removed) or the worker was replaced (upsert makes a new state).
        self._fits: dict[tuple, tuple] = {}
        self._groups_version = 0

    def push(self, qc: QueuedCase) -> None:
        t = qc.target
        assert t is not None
        if qc.waiting:
            self.discard(qc)
        bucket = self._buckets.get(t)
        if bucket is None:
            gk = _group_key(t)
            group = self._groups.get(gk)
            if group is None:
                group = self._groups[gk] = []
                self._groups_version += 1
                if t.worker_id is not None:
                    self._by_worker[t.worker_id].add(gk)
                else:
                    self._by_lang[(t.channel, t.language)].add(gk)
            bucket = self._buckets[t] = _Bucket(t, group)
        qc.token = next(_tokens)
        qc.waiting = True
        qc.bucket = bucket
        entry = (*qc.order, qc.token, qc)
        heapq.heappush(bucket.heap, entry)
        bucket.live += 1
        self.waiting += 1
        if bucket.head is None or entry[:4] < bucket.head[:4]:
            self._set_head(bucket, entry)

    def discard(self, qc: QueuedCase) -> None:
        """Take a case out of its bucket (its heap entry goes stale)."""
        if not qc.waiting:
            return
        bucket = qc.bucket
        was_head = bucket is not None and bucket.head is not None and bucket.head[4] is qc \
            and bucket.head[3] == qc.token
        qc.waiting = False
        qc.token = next(_tokens)
        qc.bucket = None
        if bucket is None:
            return
        bucket.live -= 1
        self.waiting -= 1
        if bucket.live <= 0:
            # An emptied bucket stays registered (out of its group's heads): the targets are
            # bounded by the configuration and the roster, and the next case of the same
            # target (the common case) would otherwise build it all again.
            bucket.live = 0
            bucket.heap.clear()
            self._set_head(bucket, None)
            return
        if was_head:
            heap = bucket.heap
            while heap and not _is_live(heap[0]):
                heapq.heappop(heap)
            self._set_head(bucket, heap[0])
        if len(bucket.heap) > 2 * bucket.live + 32:
            bucket.heap = [e for e in bucket.heap if _is_live(e)]
            heapq.heapify(bucket.heap)

    def _set_head(self, bucket: _Bucket, entry: tuple | None) -> None:
        group = bucket.group
        if bucket.head is not None:
            old = (*bucket.head[:4], bucket)
            del group[bisect_left(group, old)]
        bucket.head = entry
        if entry is not None:
            insort(group, (*entry[:4], bucket))

    def head_for(self, w, channel: Channel, cases: dict[str, QueuedCase] | None = None
                 ) -> QueuedCase | None:
        """The first waiting case (priority, age) on ``channel`` that worker ``w`` may take.
        ``w`` is a matching.workers.WorkerState; ``cases`` is not needed (kept for callers)."""
        best: QueuedCase | None = None
        best_order: tuple | None = None
        fits = self._fits.get((w.id, channel))
        if fits is None or fits[0] is not w or fits[1] != self._groups_version:
            fits = (w, self._groups_version,
                    [self._groups[gk] for gk in self._groups_for(w, channel)])
            self._fits[(w.id, channel)] = fits
        for group in fits[2]:
            for item in group:
                if best_order is not None and item[:3] >= best_order:
                    break
                bucket = item[4]
                if not _has_skills(w, bucket.target.skills):
                    continue
                qc = self._head(bucket, w.id)
                if qc is not None:
                    order = qc.order
                    if best_order is None or order < best_order:
                        best, best_order = qc, order
        return best

    def _groups_for(self, w, channel: Channel):
        """The groups on ``channel`` whose targets ``w`` fits in all but skills."""
        kind, langs, sites = w.kind, w.languages, w.sites
        indexes = [self._by_worker.get(w.id, ())]
        indexes += [self._by_lang.get((channel, lang), ()) for lang in (None, *langs)]
        for index in indexes:
            for gk in index:
                ch, language, min_prof, kinds, site, _ = gk
                if ch is not channel:
                    continue
                if language is not None and langs.get(language, 0) < min_prof:
                    continue
                if kinds is not None and kind not in kinds:
                    continue
                if site is not None and site not in sites:
                    continue
                yield gk

    def _head(self, bucket: _Bucket, worker_id: str) -> QueuedCase | None:
        """The first live case of ``bucket`` that ``worker_id`` is not excluded from."""
        head = bucket.head
        if head is None:
            return None
        if worker_id not in head[4].excluded:
            return head[4]
        heap = bucket.heap
        skipped: list[tuple] = []
        found = None
        while heap:
            entry = heapq.heappop(heap)
            if not _is_live(entry):
                continue
            skipped.append(entry)
            if worker_id not in entry[4].excluded:
                found = entry[4]
                break
        for entry in skipped:
            heapq.heappush(heap, entry)
        return found

    def lengths(self) -> dict[Resolved, int]:
        return {t: b.live for t, b in self._buckets.items() if b.live > 0}


def _has_skills(w, skills: tuple[tuple[str, int], ...]) -> bool:
    have = w.skills
    for skill, level in skills:
        if have.get(skill, 0) < level:
            return False
    return True
