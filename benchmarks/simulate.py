"""The workforce simulator's cost per case against a plain SimPy M/M/c model run on the same
random stream, in the same process, alternated.

``baton simulate`` plays arrivals and calls around the real matching engine; the SimPy model
is the textbook M/M/c (one ``simpy.Resource`` of ``agents``, FIFO) that draws its random
numbers in the same order (next arrival, then the handle time of each answered case), so
both must give exactly the same figures (cases, answered, waits, service level, occupancy)
for the same seed: the benchmark checks that on every run (``identical``) and fails when
they differ. Each side runs ``--repeat`` times, alternated; cost per case = wall time /
cases; ``ratio_per_case`` = median Baton cost / median SimPy cost. Last line: one JSON
object.

    .venv/bin/python benchmarks/simulate.py [--hours 200] [--repeat 3]

Needs the benchmark extra (``pip install -e '.[bench]'``: simpy).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from router.simulate import SimParams, simulate  # noqa: E402

try:
    import simpy
except ImportError:  # pragma: no cover - explained to the user
    raise SystemExit("benchmarks/simulate.py needs SimPy: .venv/bin/pip install -e '.[bench]'")

COMPARED = ("cases", "answered", "abandoned", "service_level", "asa_seconds", "p_wait",
            "occupancy", "max_wait_s")


def simpy_mmc(p: SimParams) -> dict:
    """M/M/c in SimPy, drawing from ``random.Random(seed)`` in the simulator's order."""
    rng = random.Random(p.seed)
    env = simpy.Environment()
    agents = simpy.Resource(env, capacity=p.agents)
    horizon = p.hours * 3600.0
    lam, mu = p.arrivals_per_hour / 3600.0, 1.0 / p.aht_seconds
    s = {"cases": 0, "answered": 0, "within": 0, "waited": 0, "total_wait": 0.0,
         "max_wait": 0.0, "busy": 0.0}

    def call(arrived: float):
        with agents.request() as req:
            yield req
            now = env.now
            wait = now - arrived
            s["answered"] += 1
            s["total_wait"] += wait
            if wait > 0:
                s["waited"] += 1
                s["max_wait"] = max(s["max_wait"], wait)
            if wait <= p.sl_seconds:
                s["within"] += 1
            handle = rng.expovariate(mu)
            s["busy"] += max(0.0, min(now + handle, horizon) - now)
            yield env.timeout(handle)

    def arrivals():
        first = rng.expovariate(lam)
        if first >= horizon:
            return
        yield env.timeout(first)
        while True:
            s["cases"] += 1
            env.process(call(env.now))
            gap = rng.expovariate(lam)
            if env.now + gap >= horizon:
                return
            yield env.timeout(gap)

    env.process(arrivals())
    env.run()
    n = max(s["cases"], 1)
    return {"cases": s["cases"], "answered": s["answered"], "abandoned": 0,
            "service_level": s["within"] / n,
            "asa_seconds": s["total_wait"] / s["answered"] if s["answered"] else 0.0,
            "p_wait": s["waited"] / n, "occupancy": s["busy"] / (p.agents * horizon),
            "max_wait_s": s["max_wait"]}


def timed(fn, p: SimParams) -> tuple[float, dict]:
    gc.collect()
    cpu = time.process_time()
    out = fn(p)
    return time.process_time() - cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=13)
    ap.add_argument("--arrivals-per-hour", type=float, default=200.0)
    ap.add_argument("--aht-seconds", type=float, default=180.0)
    ap.add_argument("--hours", type=float, default=200.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side, alternated")
    args = ap.parse_args()
    p = SimParams(agents=args.agents, arrivals_per_hour=args.arrivals_per_hour,
                  aht_seconds=args.aht_seconds, hours=args.hours, seed=args.seed)
    baton_cost, peer_cost = [], []
    for _ in range(args.repeat):
        t, res = timed(lambda q: simulate(q).as_dict(), p)
        baton_cost.append(t / res["cases"] * 1e6)
        t, peer = timed(simpy_mmc, p)
        peer_cost.append(t / peer["cases"] * 1e6)
    diff = {k: (res[k], peer[k]) for k in COMPARED if res[k] != peer[k]}
    b, s = statistics.median(baton_cost), statistics.median(peer_cost)
    print(f"{res['cases']} cases per run; CPU per case: baton {b:.1f} µs "
          f"(min {min(baton_cost):.1f}, max {max(baton_cost):.1f}), SimPy {s:.1f} µs "
          f"(min {min(peer_cost):.1f}, max {max(peer_cost):.1f}); "
          f"{'identical results' if not diff else f'RESULTS DIFFER: {diff}'}")
    print(json.dumps({
        "cases": res["cases"], "hours": args.hours, "seed": args.seed, "repeat": args.repeat,
        "baton_us_per_case": round(b, 2), "baton_us_min": round(min(baton_cost), 2),
        "simpy_us_per_case": round(s, 2), "simpy_us_min": round(min(peer_cost), 2),
        "ratio_per_case": round(b / s, 2), "identical": not diff,
        "service_level": res["service_level"], "asa_seconds": res["asa_seconds"],
        "loadavg_1m": round(os.getloadavg()[0], 2)}))
    if diff:
        sys.exit(1)


if __name__ == "__main__":
    main()
