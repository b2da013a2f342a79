"""Failover of partition leaders, with real processes: kill → first new decision.

Starts ``--routers`` ``baton router`` processes in partitioned mode (BATON_HA_INSTANCE) on a
fresh PostgreSQL database with the demo configuration (2 partitions, config/partitions.yaml),
connects every worker on its WebSocket through any router (reconnecting with backoff to
another one), opens cases in both partitions through any router, and SIGKILLs the leader of a
partition ``--kills`` times (alternating partitions), restarting the killed router once the
partition is led again. Failover time of one kill = the wall time of the first event written
by the partition's new term (its first decision: an offer, a queue entry or an opened case)
minus the wall time of the kill. At the end every case is driven to a close and the event
log is checked (sandbox/ha_cluster.py: lost, duplicated, per-origin gaps, double assignments,
over capacity). Last line: one JSON object.

    .venv/bin/python benchmarks/failover.py [--routers 3] [--kills 5] [--rate 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from router.config import load_config  # noqa: E402
from router.ha.partitions import load_partitions  # noqa: E402
from sandbox.ha_cluster import (  # noqa: E402
    CaseDriver,
    Cluster,
    RotatingWorker,
    chat_capacity,
    check_invariants,
    create_database,
    drop_database,
    first_event_after,
)


def tokens_of(cfg) -> dict[str, str]:
    return {t.subject: t.token for t in cfg.tokens.tokens}


async def run(args) -> dict:
    cfg = load_config(REPO / "config")
    parts = load_partitions(cfg)
    tokens = tokens_of(cfg)
    supervisor = next(t.subject for t in cfg.tokens.tokens if t.role.value == "supervisor")
    db_name, url = await create_database("baton_failover")
    cluster = Cluster(REPO / "config", url, args.routers, lease_s=args.lease_s,
                      poll_s=args.poll_s, log_level=args.log_level)
    rng = random.Random(args.seed)
    stop = asyncio.Event()
    result: dict = {}
    try:
        cluster.start_all()
        pids = [p.id for p in parts.partitions]
        await cluster.wait_led(pids)
        workers = [RotatingWorker(cluster, p.id, w, tokens[w], rng, answer_s=(0.05, 0.3),
                                  handle_s=(0.3, 1.5), decline_rate=0.0)
                   for p in parts.partitions for w in p.workers if w in tokens]
        driver = CaseDriver(cluster, {p.id: p.sites[0] for p in parts.partitions},
                            tokens[supervisor], rate=args.rate)
        tasks = [asyncio.create_task(w.run(stop)) for w in workers]
        drive_stop = asyncio.Event()
        drive = asyncio.create_task(driver.run(drive_stop))
        await asyncio.sleep(args.warmup_s)
        failovers: list[float] = []
        for k in range(args.kills):
            pid = pids[k % len(pids)]
            leaders = await cluster.wait_led(pids)
            victim = leaders[pid]
            t_kill = cluster.kill(victim)
            led = await cluster.wait_led([pid], timeout=60, not_by=victim)
            t_led = time.time()
            first = None
            deadline = time.monotonic() + 60
            while first is None and time.monotonic() < deadline:
                first = await first_event_after(db_name, "router:", pid, t_kill, victim)
                if first is None:
                    await asyncio.sleep(0.05)
            if first is None:
                raise RuntimeError(f"no decision in {pid} within 60 s of killing {victim}")
            failovers.append(first - t_kill)
            print(f"kill {k + 1}: {victim} led {pid}; {led[pid]} leads it (seen) after "
                  f"{t_led - t_kill:.2f} s; first new decision after {first - t_kill:.2f} s",
                  file=sys.stderr)
            cluster.start(victim)
            await asyncio.sleep(args.between_s)
        drive_stop.set()
        await drive
        # Let the workers close what is open, then stop them.
        deadline = time.monotonic() + args.drain_s
        while time.monotonic() < deadline:
            inv = await check_invariants(db_name, driver.acked, chat_capacity(cfg))
            if inv.unresolved == 0:
                break
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        inv = await check_invariants(db_name, driver.acked, chat_capacity(cfg))
        failovers.sort()
        result = {
            "routers": args.routers, "partitions": len(pids), "kills": len(failovers),
            "failover_p50_s": round(statistics.median(failovers), 3),
            "failover_p95_s": round(failovers[min(len(failovers) - 1,
                                                  int(0.95 * len(failovers)))], 3),
            "failover_max_s": round(failovers[-1], 3),
            "cases": len(driver.acked), "events": inv.events, "lost": inv.lost,
            "duplicated": inv.duplicated, "seq_gaps": inv.seq_gaps,
            "double_assignments": inv.double_assignments, "over_capacity": inv.over_capacity,
            "unresolved": inv.unresolved, "driver_retries": driver.retries,
            "lease_s": args.lease_s, "poll_s": args.poll_s,
        }
    finally:
        stop.set()
        cluster.stop_all()
        if not args.keep_db:
            await drop_database(db_name)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routers", type=int, default=3)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--rate", type=float, default=2.0, help="cases/s per partition")
    ap.add_argument("--lease-s", type=float, default=2.0)
    ap.add_argument("--poll-s", type=float, default=0.25)
    ap.add_argument("--warmup-s", type=float, default=5.0)
    ap.add_argument("--between-s", type=float, default=4.0)
    ap.add_argument("--drain-s", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep-db", action="store_true")
    ap.add_argument("--log-level", default="warning", help="the routers' log level")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
