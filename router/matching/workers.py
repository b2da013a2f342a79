"""Worker state and the availability indexes the engine selects from.

Constraint: a routing decision never scans every worker. The pool keeps, per channel, the
set of workers that could take a new case on that channel right now, split by language and
by site, and updates those sets on every presence or load change (O(languages + sites)).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from router.config import ChannelConfig
from router.models import Channel, Presence, Worker
from router.matching.targets import Resolved, fit, matches


@dataclass(slots=True)
class WorkerState:
    id: str
    kind: str
    languages: dict[str, int]
    skills: dict[str, int]
    sites: frozenset[str]
    capacity: dict[Channel, int]
    presence: Presence = Presence.offline
    load: dict[Channel, int] = field(default_factory=dict)
    idle_since: float = 0.0
    consecutive_timeouts: int = 0

    @property
    def total_load(self) -> int:
        return sum(self.load.values())


class WorkerPool:
    def __init__(self, channels: dict[Channel, ChannelConfig]):
        self.channels = channels
        self.workers: dict[str, WorkerState] = {}
        # (channel, language) -> available worker ids; (channel, site) -> likewise.
        self._by_lang: dict[tuple[Channel, str], set[str]] = defaultdict(set)
        self._by_site: dict[tuple[Channel, str], set[str]] = defaultdict(set)
        self._avail: dict[Channel, set[str]] = {c: set() for c in Channel}

    # --- membership ---------------------------------------------------------------------

    def upsert(self, worker: Worker, now: float) -> WorkerState:
        old = self.workers.get(worker.id)
        if old is not None:
            self._unindex(old)
        capacity = {c: worker.capacity.get(c, self.channels[c].default_capacity) for c in Channel}
        state = WorkerState(
            id=worker.id, kind=worker.kind.value, languages=dict(worker.languages),
            skills=dict(worker.skills), sites=frozenset(worker.sites), capacity=capacity,
            presence=old.presence if old else Presence.offline,
            load=old.load if old else {c: 0 for c in Channel},
            idle_since=old.idle_since if old else now,
            consecutive_timeouts=old.consecutive_timeouts if old else 0,
        )
        self.workers[worker.id] = state
        self._index(state)
        return state

    def get(self, worker_id: str) -> WorkerState | None:
        return self.workers.get(worker_id)

    # --- state changes (each re-indexes the one worker) ---------------------------------

    def set_presence(self, w: WorkerState, presence: Presence, now: float) -> None:
        self._unindex(w)
        if presence is Presence.available and w.presence is not Presence.available:
            w.consecutive_timeouts = 0
            if w.total_load == 0:
                w.idle_since = now
        w.presence = presence
        self._index(w)

    def add_load(self, w: WorkerState, channel: Channel, delta: int, now: float) -> None:
        self._unindex(w)
        w.load[channel] = max(0, w.load.get(channel, 0) + delta)
        if delta < 0 and w.total_load == 0:
            w.idle_since = now
        self._index(w)

    # --- availability -------------------------------------------------------------------

    def can_take(self, w: WorkerState, channel: Channel) -> bool:
        if w.presence is not Presence.available:
            return False
        if w.load.get(channel, 0) >= w.capacity.get(channel, 0):
            return False
        for busy, n in w.load.items():
            if n and busy is not channel:
                if channel not in self.channels[busy].alongside or \
                        busy not in self.channels[channel].alongside:
                    return False
        return True

    def available_channels(self, w: WorkerState) -> list[Channel]:
        return [c for c in Channel if self.can_take(w, c)]

    def _index(self, w: WorkerState) -> None:
        for c in Channel:
            if self.can_take(w, c):
                self._avail[c].add(w.id)
                for lang in w.languages:
                    self._by_lang[(c, lang)].add(w.id)
                for site in w.sites:
                    self._by_site[(c, site)].add(w.id)

    def _unindex(self, w: WorkerState) -> None:
        for c in Channel:
            if w.id in self._avail[c]:
                self._avail[c].discard(w.id)
                for lang in w.languages:
                    self._by_lang[(c, lang)].discard(w.id)
                for site in w.sites:
                    self._by_site[(c, site)].discard(w.id)

    def best_for(self, t: Resolved, excluded: frozenset[str] | set[str]) -> WorkerState | None:
        """The best available worker for target ``t``: fit, then longest idle, then load."""
        if t.worker_id is not None:
            w = self.workers.get(t.worker_id)
            ok = w is not None and w.id not in excluded and self.can_take(w, t.channel) \
                and matches(w, t)
            return w if ok else None
        pools = [self._avail[t.channel]]
        if t.language is not None:
            pools.append(self._by_lang.get((t.channel, t.language), set()))
        if t.site is not None:
            pools.append(self._by_site.get((t.channel, t.site), set()))
        smallest = min(pools, key=len)
        best, best_key = None, None
        for wid in smallest:
            if wid in excluded:
                continue
            w = self.workers[wid]
            if not matches(w, t):
                continue
            key = (fit(w, t), -w.idle_since, -w.total_load)
            if best_key is None or key > best_key:
                best, best_key = w, key
        return best

    def count_available(self, channel: Channel) -> int:
        return len(self._avail[channel])

    def staffed(self, t: Resolved) -> int:
        """Workers signed in (not offline) who match ``t``, busy or not. Used for wait
        estimates; scans the roster, so it is for stats, not for the decision path."""
        return sum(1 for w in self.workers.values()
                   if w.presence is not Presence.offline and matches(w, t))
