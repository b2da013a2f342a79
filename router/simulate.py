"""Workforce simulator: the real matching engine on a virtual clock.

Cases arrive as a Poisson stream, agents handle them for exponential times, and (optionally)
residents give up after an exponential patience. Every routing decision is made by
``router.matching.engine.MatchingEngine``, the same engine the router runs; the simulator
only plays the world around it (arrivals, agents accepting offers at once, calls ending,
residents hanging up) and calls ``engine.tick`` whenever an engine deadline falls due.
Without patience this is M/M/c, so the results must agree with Erlang C (router.erlang):
that is how the engine is checked at scale and how staffing is sized.

Definitions (every case that arrives within the horizon is followed to its end: answered or
abandoned, even if that happens after the horizon):

- service_level = answered within ``sl_seconds`` / all cases. An abandoned case counts as not
  answered within the threshold, however early it left. Without patience nothing is abandoned
  and this is exactly the quantity Erlang C's SL(t) = P(wait <= t) predicts.
- asa_seconds = mean wait of answered cases (a case answered at once waited 0 s); without
  patience this is Erlang C's ASA.
- p_wait = cases that waited at all (answered after a wait, or abandoned) / all cases.
- abandon_rate = abandoned / all cases.
- occupancy = busy agent-time within the horizon / (agents × horizon).
- max_wait_s = the longest time any case spent waiting (until answered or abandoned).

For comparison: ``erlang_*`` are Erlang C (M/M/c, nobody hangs up; None when load >= agents),
``erlang_a_*`` are Erlang A (M/M/c+M, the same exponential patience; None without patience).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass

from protocol.models import Channel, OfferStatus, Presence, Requirement, Worker, WorkerKind
from router import erlang
from router.config import RoutingFile
from router.matching.engine import MatchingEngine, OfferMade

# Timeouts the simulation must never reach: agents answer offers at once and nothing may be
# closed for waiting too long. Far beyond any horizon, still finite for the engine's timers.
_NEVER = 1e15

_ARRIVAL, _ABANDON, _END = 0, 1, 2


@dataclass(frozen=True, slots=True)
class SimParams:
    agents: int
    arrivals_per_hour: float
    aht_seconds: float
    sl_seconds: float = 20.0
    hours: float = 8.0
    seed: int = 0
    patience_seconds: float | None = None  # mean patience; None: residents never hang up

    def __post_init__(self) -> None:
        if isinstance(self.agents, bool) or not isinstance(self.agents, int) or self.agents < 1:
            raise ValueError(f"agents must be a whole number >= 1, got {self.agents!r}")
        for name in ("arrivals_per_hour", "aht_seconds", "hours"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name.replace('_', ' ')} must be a finite number > 0, "
                                 f"got {value!r}")
        if not math.isfinite(self.sl_seconds) or self.sl_seconds < 0:
            raise ValueError(f"sl seconds must be a finite number >= 0, got {self.sl_seconds!r}")
        p = self.patience_seconds
        if p is not None and (not math.isfinite(p) or p <= 0):
            raise ValueError(f"patience seconds must be a finite number > 0, got {p!r}")
        if p is None and self.offered_load >= self.agents:
            raise ValueError(
                f"offered load {self.offered_load:g} erlangs ({self.arrivals_per_hour:g}/h × "
                f"{self.aht_seconds:g} s) needs more than {self.agents} agents: without "
                "abandonment the queue grows without bound; add agents or give a patience")

    @property
    def offered_load(self) -> float:
        return self.arrivals_per_hour * self.aht_seconds / 3600.0


@dataclass(frozen=True, slots=True)
class SimResult:
    agents: int
    offered_load: float
    cases: int
    answered: int
    abandoned: int
    service_level: float
    asa_seconds: float
    p_wait: float
    abandon_rate: float
    occupancy: float
    max_wait_s: float
    erlang_service_level: float | None  # None when Erlang C has no answer (load >= agents)
    erlang_asa_seconds: float | None
    erlang_p_wait: float | None
    erlang_occupancy: float | None
    erlang_a_p_wait: float | None  # None without patience
    erlang_a_abandon_rate: float | None
    erlang_a_occupancy: float | None
    simulated_hours: float
    seed: int
    wall_seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def routing_for_simulation() -> RoutingFile:
    """One workflow, one unbounded step that any agent speaking the case's language takes."""
    return RoutingFile.model_validate({
        "offer_timeout_s": _NEVER,
        "max_wait_s": _NEVER,
        # Agents take voice calls only (the simulated cases are calls): the engine files and
        # checks them on that one channel instead of all of them.
        "channels": {c.value: {"default_capacity": 1 if c is Channel.voice else 0,
                               "alongside": []} for c in Channel},
        "default_workflow": "sim",
        "workflows": {"sim": {"steps": [{"name": "any_agent", "target": {
            "kinds": ["agent"], "language": "case", "skills": None}}]}},
    })


def simulate(params: SimParams) -> SimResult:
    started = time.perf_counter()
    rng = random.Random(params.seed)
    horizon = params.hours * 3600.0
    arrival_rate = params.arrivals_per_hour / 3600.0
    service_rate = 1.0 / params.aht_seconds
    abandon_rate = 1.0 / params.patience_seconds if params.patience_seconds else None

    # Offer ids o1, o2, ...: a C-level callable (no Python frame per offer).
    engine = MatchingEngine(routing_for_simulation(),
                            new_id=map("o{}".format, itertools.count(1)).__next__)
    for i in range(params.agents):
        worker = Worker(id=f"a{i + 1}", kind=WorkerKind.agent, languages={"en": 3},
                        capacity={Channel.voice: 1})
        engine.upsert_worker(worker, 0.0)
        engine.set_presence(worker.id, Presence.available, 0.0)
    # The engine never mutates a requirement, so every case shares one.
    req = Requirement(language="en", channel=Channel.voice)

    events: list[tuple[float, int, int, str]] = []  # (time, seq, kind, case id)
    seq = itertools.count()
    arrived_at: dict[str, float] = {}  # cases waiting for an answer
    cases = answered = abandoned = within = waited = on_call = 0
    total_wait = max_wait = busy = 0.0
    # Bound once: the loop below runs a few times per case and every lookup counts against
    # the engine's share of the cost per case (benchmarks/simulate.py).
    push, pop, draw, next_seq = heapq.heappush, heapq.heappop, rng.expovariate, seq.__next__
    offer_result, next_deadline = engine.offer_result, engine.next_deadline
    accepted, sl_seconds, agents = OfferStatus.accepted, params.sl_seconds, params.agents

    def on_effects(effects: list, now: float) -> None:
        """Answer the engine's effects: every offer is accepted at once (which may make more
        effects) and the call's handle time drawn."""
        nonlocal answered, within, waited, total_wait, max_wait, busy, on_call
        pending = effects  # a fresh list from the engine: ours to consume
        while pending:
            effect = pending.pop()
            if type(effect) is not OfferMade:
                continue  # the timeouts are out of reach; nothing else needs an answer
            offer = effect.offer
            case_id = offer.case_id
            pending += offer_result(offer.offer_id, accepted, now)
            wait = now - arrived_at.pop(case_id)
            answered += 1
            on_call += 1
            total_wait += wait
            if wait > 0:
                waited += 1
                if wait > max_wait:
                    max_wait = wait
            if wait <= sl_seconds:
                within += 1
            ends = now + draw(service_rate)
            if now < horizon:  # busy time within the horizon only
                busy += (ends if ends < horizon else horizon) - now
            push(events, (ends, next_seq(), _END, case_id))

    first = draw(arrival_rate)
    if first < horizon:
        push(events, (first, next_seq(), _ARRIVAL, ""))
    while events:
        now, _, kind, case_id = events[0]
        deadline = next_deadline()
        if deadline is not None and deadline <= now:
            on_effects(engine.tick(deadline), deadline)
            continue
        pop(events)
        if kind == _ARRIVAL:
            cases += 1
            case_id = f"c{cases}"
            arrived_at[case_id] = now
            nxt = now + draw(arrival_rate)
            if nxt < horizon:
                push(events, (nxt, next_seq(), _ARRIVAL, ""))
            if abandon_rate is not None:
                push(events, (now + draw(abandon_rate), next_seq(), _ABANDON, case_id))
            effects = engine.enqueue(case_id, req, queued_at=now, now=now)
            if effects:
                on_effects(effects, now)
        elif kind == _END:
            on_call -= 1
            effects = engine.release(case_id, now)
            if effects:  # most calls end with nobody waiting: nothing to answer
                on_effects(effects, now)
        elif case_id in arrived_at:  # abandon: only a case still waiting can hang up
            wait = now - arrived_at.pop(case_id)
            abandoned += 1
            waited += 1
            max_wait = max(max_wait, wait)
            on_effects(engine.remove_case(case_id, now), now)
        # The engine must be work-conserving: once an event is handled (offers accepted at
        # once), a case may only be waiting while every agent is busy.
        if arrived_at and on_call < agents:
            raise RuntimeError(f"the engine left {len(arrived_at)} cases waiting while "
                               f"{agents - on_call} agents were free (t={now:.3f} s)")
        if not arrived_at and (not events or events[0][0] >= horizon):
            break  # no more arrivals and every case has been answered or abandoned
    if arrived_at:
        raise RuntimeError(f"{len(arrived_at)} cases were never answered: the engine lost them")

    try:
        ec = erlang.erlang_c(params.agents, params.arrivals_per_hour, params.aht_seconds,
                             params.sl_seconds)
    except ValueError:
        ec = None  # load >= agents: only meaningful with abandonment, which Erlang C ignores
    ea = None
    if params.patience_seconds is not None:
        try:
            ea = erlang.erlang_a(params.agents, params.arrivals_per_hour, params.aht_seconds,
                                 params.patience_seconds)
        except ValueError:
            pass  # patience so long under overload that the exact chain is too large
    n = max(cases, 1)
    return SimResult(
        agents=params.agents, offered_load=params.offered_load, cases=cases,
        answered=answered, abandoned=abandoned,
        service_level=within / n,
        asa_seconds=total_wait / answered if answered else 0.0,
        p_wait=waited / n, abandon_rate=abandoned / n,
        occupancy=busy / (params.agents * horizon), max_wait_s=max_wait,
        erlang_service_level=ec.service_level if ec else None,
        erlang_asa_seconds=ec.asa_seconds if ec else None,
        erlang_p_wait=ec.p_wait if ec else None,
        erlang_occupancy=ec.occupancy if ec else None,
        erlang_a_p_wait=ea.p_wait if ea else None,
        erlang_a_abandon_rate=ea.abandon_rate if ea else None,
        erlang_a_occupancy=ea.occupancy if ea else None,
        simulated_hours=params.hours, seed=params.seed,
        wall_seconds=time.perf_counter() - started,
    )


# --- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=int, required=True, help="agents signed in")
    parser.add_argument("--arrivals-per-hour", type=float, required=True,
                        help="mean arrival rate (Poisson)")
    parser.add_argument("--aht-seconds", type=float, required=True,
                        help="mean handle time (exponential)")
    parser.add_argument("--sl-seconds", type=float, default=20.0,
                        help="service-level threshold (default 20)")
    parser.add_argument("--hours", type=float, default=8.0,
                        help="simulated hours of arrivals (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--patience-seconds", type=float, default=None,
                        help="mean patience (exponential); waiting cases abandon after it")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run_cli(args: argparse.Namespace) -> int:
    try:
        params = SimParams(agents=args.agents, arrivals_per_hour=args.arrivals_per_hour,
                           aht_seconds=args.aht_seconds, sl_seconds=args.sl_seconds,
                           hours=args.hours, seed=args.seed,
                           patience_seconds=args.patience_seconds)
    except ValueError as exc:
        print(f"baton simulate: error: {exc}", file=sys.stderr)
        return 2
    result = simulate(params)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        width = max(len(k) for k in result.as_dict())
        for key, value in result.as_dict().items():
            shown = "-" if value is None else f"{value:.4f}" if isinstance(value, float) \
                else value
            print(f"{key:<{width}}  {shown}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baton simulate", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
