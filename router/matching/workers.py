"""Worker state and the availability indexes the engine selects from.

Constraint: a routing decision never scans every worker. For each channel the pool keeps,
for the workers who could take a new case on it right now, sorted lists keyed by exact
attribute values — (kind), (kind, language, proficiency), (kind, skill, level) and
(kind, language, proficiency, skill, level) — each once for any site and once per site the
worker serves. Every list is in rank order — fewest cases first, then longest idle, then
id — so the first worker of a list that passes the target's filters is the best of it.

Selection is "skill fit, then language proficiency, then rank". Fit takes few values (levels
are 1-5), so ``best_for`` lists the exact fit classes that have free workers (a class per
kind, proficiency and level of each required skill), walks them from the best fit down,
reads the shortest list of each class and stops at its first match. The work is bounded by
the classes and by the workers passed over in them (excluded, or at another level of a
second skill), never by the roster. A presence or load change re-files that one worker
(O(lists it is in × log n)).
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, insort
from dataclasses import dataclass, field

from protocol.models import Channel, Presence, Worker, WorkerKind
from router.config import ChannelConfig
from router.matching.targets import Resolved, fit, matches

_ALL_KINDS = tuple(k.value for k in WorkerKind)
# Iterating the Enum class itself is slow (a generator per pass); this is on every decision.
_CHANNELS = tuple(Channel)
_MAX_LEVEL = 5
# Above this many exact fit classes (three skills or more, with many free workers)
# best_for reads whole lists instead of walking classes; such targets are rare. Two skills
# give at most kinds(3) x proficiencies(5) x 5 x 5 = 375.
_MAX_CLASSES = 1024


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
    total: int = 0  # sum of load (kept by WorkerPool.add_load: read on every decision)
    idle_since: float = 0.0
    consecutive_timeouts: int = 0
    # Index bookkeeping: the keys of the lists this worker belongs to (without channel),
    # the entry it is filed under and the channels it is filed on.
    keys: tuple = ()
    entry: tuple | None = None
    filed: tuple[Channel, ...] = ()
    takes: tuple[Channel, ...] = ()  # the channels with capacity > 0: the only ones to check
    # channel -> the lists of its keys on that channel (the objects in WorkerPool._lists,
    # which never drops a list): filing the worker looks nothing up.
    lists: dict = field(default_factory=dict)

    @property
    def total_load(self) -> int:
        return self.total

    def rank(self) -> tuple:
        """Ascending is better: an idle worker before a busy one, then fewer cases, then the
        longest idle (a busy worker's idle_since is when they last had nothing), then id."""
        return (self.total, self.idle_since, self.id)


def _index_keys(w: WorkerState) -> tuple:
    """Every list the worker belongs to; the second item is a site (None: any site)."""
    k = w.kind
    keys: list[tuple] = []
    for site in (None, *sorted(w.sites)):
        keys.append(("k", site, k))
        keys += [("l", site, k, lang, q) for lang, q in w.languages.items()]
        keys += [("s", site, k, s, a) for s, a in w.skills.items()]
        keys += [("ls", site, k, lang, q, s, a) for lang, q in w.languages.items()
                 for s, a in w.skills.items()]
    return tuple(keys)


def _proficiency_plan(t: Resolved) -> tuple[tuple[tuple, ...], ...]:
    """The list keys of a target without skills: per proficiency from the best down to the
    target's minimum, one key per kind it allows."""
    kinds = sorted(t.kinds) if t.kinds is not None else _ALL_KINDS
    return tuple(tuple((t.channel, ("l", t.site, k, t.language, q)) for k in kinds)
                 for q in range(_MAX_LEVEL, t.min_proficiency - 1, -1))


class WorkerPool:
    def __init__(self, channels: dict[Channel, ChannelConfig]):
        self.channels = channels
        self.workers: dict[str, WorkerState] = {}
        self._avail: dict[Channel, set[str]] = {c: set() for c in _CHANNELS}
        # (channel, key) -> rank entries (see WorkerState.rank) of available workers. A
        # list, once made (when a worker with that key joins), stays, even empty: the keys
        # are bounded by the roster, deleting and re-adding keys of a dict this size makes
        # CPython rebuild it (ms), and each worker holds its lists (WorkerState.lists).
        self._lists: dict[tuple, list[tuple]] = {}
        # Targets without skills (the common step) -> their list keys, best proficiency
        # first; bounded like the targets themselves. The last one is also kept by identity
        # (the engine hands the same Resolved object to a run of cases: no hashing then).
        self._plans: dict[Resolved, tuple] = {}
        self._last_plan: tuple | None = None

    # --- membership ---------------------------------------------------------------------

    def upsert(self, worker: Worker, now: float) -> WorkerState:
        old = self.workers.get(worker.id)
        if old is not None:
            self._unindex(old)
        capacity = {c: worker.capacity.get(c, self.channels[c].default_capacity)
                    for c in _CHANNELS}
        load = old.load if old else {c: 0 for c in _CHANNELS}
        state = WorkerState(
            id=worker.id, kind=worker.kind.value, languages=dict(worker.languages),
            skills=dict(worker.skills), sites=frozenset(worker.sites), capacity=capacity,
            presence=old.presence if old else Presence.offline,
            load=load, total=sum(load.values()),
            idle_since=old.idle_since if old else now,
            consecutive_timeouts=old.consecutive_timeouts if old else 0,
        )
        state.keys = _index_keys(state)
        state.takes = tuple(c for c in _CHANNELS if capacity[c] > 0)
        lists = self._lists
        state.lists = {c: tuple([lists.setdefault((c, key), []) for key in state.keys])
                       for c in state.takes}
        self.workers[worker.id] = state
        self._index(state)
        return state

    def get(self, worker_id: str) -> WorkerState | None:
        return self.workers.get(worker_id)

    # --- state changes (each re-files the one worker) -----------------------------------

    def set_presence(self, w: WorkerState, presence: Presence, now: float) -> None:
        self._unindex(w)
        if presence is Presence.available and w.presence is not Presence.available:
            w.consecutive_timeouts = 0
            if w.total == 0:
                w.idle_since = now
        w.presence = presence
        self._index(w)

    def add_load(self, w: WorkerState, channel: Channel, delta: int, now: float, *,
                 worked: bool = True) -> None:
        """``worked=False`` gives back a reservation that never became work (an offer
        declined, missed or withdrawn): the worker keeps their place in the idle line."""
        self._unindex(w)
        load = w.load
        before = load.get(channel, 0)
        after = load[channel] = before + delta if before + delta > 0 else 0
        w.total += after - before
        if delta < 0 and worked and w.total == 0:
            w.idle_since = now
        self._index(w)

    # --- availability -------------------------------------------------------------------

    def can_take(self, w: WorkerState, channel: Channel) -> bool:
        """Available, below capacity on ``channel``, and every channel the worker is busy on
        allows ``channel`` alongside it (ChannelConfig.alongside of the busy channel)."""
        if w.presence is not Presence.available:
            return False
        load = w.load
        if load.get(channel, 0) >= w.capacity.get(channel, 0):
            return False
        if w.total:  # busy somewhere: every busy channel must allow this one alongside
            for busy, n in load.items():
                if n and busy is not channel and channel not in self.channels[busy].alongside:
                    return False
        return True

    def available_channels(self, w: WorkerState) -> list[Channel]:
        if w.presence is not Presence.available:
            return []
        if not w.total:
            return list(w.takes)  # idle: every channel with capacity
        return [c for c in w.takes if self.can_take(w, c)]

    def _index(self, w: WorkerState) -> None:
        if w.presence is not Presence.available:
            return
        # An idle worker can take every channel with capacity (no load, nothing alongside).
        # A busy one: first the cheap test that rules out a full channel, then can_take.
        takes = w.takes
        if not w.total:
            filed = takes
        elif len(takes) == 1:  # one channel (agents on voice, say): no list to build
            c = takes[0]
            filed = takes if w.load.get(c, 0) < w.capacity.get(c, 0) and self.can_take(w, c) \
                else ()
        else:
            load, capacity = w.load, w.capacity
            filed = tuple([c for c in takes if load.get(c, 0) < capacity.get(c, 0)
                           and self.can_take(w, c)])
        if not filed:
            return
        entry = w.entry = (w.total, w.idle_since, w.id)  # w.rank()
        w.filed = filed
        own = w.lists
        for c in filed:
            self._avail[c].add(w.id)
            for lst in own[c]:
                insort(lst, entry)

    def _unindex(self, w: WorkerState) -> None:
        if not w.filed:
            return
        entry, own = w.entry, w.lists
        for c in w.filed:
            self._avail[c].discard(w.id)
            for lst in own[c]:
                del lst[bisect_left(lst, entry)]
        w.filed = ()
        w.entry = None

    # --- selection ----------------------------------------------------------------------

    def best_for(self, t: Resolved, excluded: frozenset[str] | set[str]) -> WorkerState | None:
        """The best available worker for target ``t``: skill fit, language proficiency, then
        rank (idle before busy, fewer cases, longest idle)."""
        if t.worker_id is not None:
            w = self.workers.get(t.worker_id)
            ok = w is not None and w.id not in excluded and self.can_take(w, t.channel) \
                and matches(w, t)
            return w if ok else None
        if not t.skills and t.language is not None:
            last = self._last_plan
            if last is not None and last[0] is t:
                return self._first_by_proficiency(last[1], excluded)
            plan = self._plans.get(t)
            if plan is None:
                plan = self._plans[t] = _proficiency_plan(t)
            self._last_plan = (t, plan)
            return self._first_by_proficiency(plan, excluded)
        c, lists, site = t.channel, self._lists, t.site
        kinds = sorted(t.kinds) if t.kinds is not None else _ALL_KINDS
        lang, skills = t.language, t.skills
        if lang is None and not skills:
            sources = [lst for k in kinds if (lst := lists.get((c, ("k", site, k))))]
            return self._first([((0, 0), sources)], t, excluded)
        qs = range(_MAX_LEVEL, t.min_proficiency - 1, -1) if lang is not None else (0,)
        classes: list[tuple[tuple[int, int], list]] = []  # (fit, source list)
        for k in kinds:
            for q in qs:
                if not skills:
                    lst = lists.get((c, ("l", site, k, lang, q)))
                    if lst:
                        classes.append(((0, q), lst))
                    continue
                # Per skill, the exact levels that have a list; a class needs all of them.
                per_skill = []
                for s, lo in skills:
                    levels = []
                    for a in range(_MAX_LEVEL, max(1, lo) - 1, -1):
                        key = ("ls", site, k, lang, q, s, a) if lang is not None \
                            else ("s", site, k, s, a)
                        lst = lists.get((c, key))
                        if lst:
                            levels.append((a, lst))
                    if not levels:
                        break
                    per_skill.append(levels)
                else:
                    if len(per_skill) == 1:
                        classes += [((a, q), lst) for a, lst in per_skill[0]]
                        continue
                    n = 1
                    for levels in per_skill:
                        n *= len(levels)
                    if len(classes) + n > _MAX_CLASSES:
                        return self._scan(t, self._first_skill_lists(t, kinds, qs), excluded)
                    for combo in itertools.product(*per_skill):
                        shortest = min((lst for _, lst in combo), key=len)
                        classes.append(((sum(a for a, _ in combo), q), shortest))
        if not classes:
            return None
        classes.sort(key=lambda cl: cl[0], reverse=True)
        groups = [(f, [lst for _, lst in grp])
                  for f, grp in itertools.groupby(classes, key=lambda cl: cl[0])]
        return self._first(groups, t, excluded)

    def _first_by_proficiency(self, plan: tuple, excluded) -> WorkerState | None:
        """``best_for`` without skills (the common step): the fit classes are the
        proficiencies, best first; a list holds exactly one proficiency, so the first
        entry not excluded of a class's lists, lowest rank across kinds, is the answer.
        No ``matches`` test: a list's key is the kind, the site (or any) and the language at
        that proficiency, which is all such a target asks."""
        lists = self._lists
        for keys in plan:
            best_entry = None
            for key in keys:
                lst = lists.get(key)
                if not lst:
                    continue
                for entry in lst:
                    if best_entry is not None and entry >= best_entry:
                        break
                    if entry[2] in excluded:
                        continue
                    best_entry = entry
                    break
            if best_entry is not None:
                return self.workers[best_entry[2]]
        return None

    def _first(self, groups, t: Resolved, excluded) -> WorkerState | None:
        """Walk fit groups from the best; in a group, the lowest-ranked match of its lists.
        A list may hold workers of other classes (the list of one of several required
        skills): they are filtered by ``matches`` and the exact fit of the group."""
        workers = self.workers
        for group_fit, sources in groups:
            best, best_entry = None, None
            for lst in sources:
                for entry in lst:
                    if best_entry is not None and entry >= best_entry:
                        break
                    if entry[2] in excluded:
                        continue
                    w = workers[entry[2]]
                    if matches(w, t) and fit(w, t) == group_fit:
                        best, best_entry = w, entry
                        break
            if best is not None:
                return best
        return None

    def _first_skill_lists(self, t: Resolved, kinds, qs) -> list[list[tuple]]:
        """Lists whose union holds every candidate for ``t``: all levels of its first skill."""
        s, lo = t.skills[0]
        out = []
        for k in kinds:
            for q in qs:
                for a in range(_MAX_LEVEL, max(1, lo) - 1, -1):
                    key = ("ls", t.site, k, t.language, q, s, a) if t.language is not None \
                        else ("s", t.site, k, s, a)
                    lst = self._lists.get((t.channel, key))
                    if lst:
                        out.append(lst)
        return out

    def _scan(self, t: Resolved, sources: list[list[tuple]], excluded) -> WorkerState | None:
        """Every worker of the given lists (their union holds all candidates)."""
        best, best_key = None, None
        for lst in sources:
            for entry in lst:
                if entry[2] in excluded:
                    continue
                w = self.workers[entry[2]]
                if not matches(w, t):
                    continue
                f = fit(w, t)
                k = (-f[0], -f[1], entry)
                if best_key is None or k < best_key:
                    best, best_key = w, k
        return best

    def count_available(self, channel: Channel) -> int:
        return len(self._avail[channel])

    def staffed(self, t: Resolved) -> int:
        """Workers signed in (not offline) who match ``t``, busy or not. Used for wait
        estimates; scans the roster, so it is for stats, not for the decision path."""
        return sum(1 for w in self.workers.values()
                   if w.presence is not Presence.offline and matches(w, t))

