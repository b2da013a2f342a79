"""Transition-layer decisions per second: signals + escalation decision per resident turn.

    .venv/bin/python benchmarks/escalation.py [--rounds 60]

Workload: every turn of the conversation corpus (tests/data/conversations: 5 languages,
resident text + pivot translation), replayed conversation by conversation with the real
SignalExtractor (calibrated confidence, VADER sentiment, phrases per language, policy flag
rules, misunderstanding, time) and EscalationEngine with config/policy.yaml, and a fitted
isotonic calibrator. Translation is excluded (the corpus carries it) and so is the assistant:
its replies are computed once beforehand and its own cost (intent scoring + answer) is
timed apart as ``assistant_p99_us``. Each decision is timed alone with perf_counter_ns.

Sentence embeddings (router/embeddings.py, USE multilingual v3), measured apart:
- ``turn_p50_ms``/``turn_p99_ms``: a whole resident turn as the router runs it, embedding
  included (cache cleared before each turn): embed the pivot text and the resident's own
  words, intent scoring and answer, semantic detectors, signals, decision; every turn of the
  held-out corpus (tests/data/escalation) and the regression corpus, pinned to one core.
  Target: turn_p99_ms <= 40.
- ``model_load_s``: loading the model in a fresh process (target <= 3 s); ``added_rss_mb``:
  that process's resident memory after the model and the exemplar matrices, minus before
  (target <= 250 MB).
- ``router_startup_s_before``/``_after``: ``baton router`` until /healthz answers, with the
  TF-IDF scorer and no semantic detectors (before) and as configured (after).

Human-readable lines first; the last line is one JSON object with decisions_per_s, p50_us,
p99_us, max_us, decisions, cpu_p99_us (thread CPU time: what the decision costs when other
processes share the cores), assistant_p50_us, assistant_p99_us and the figures above.
Targets: p99_us <= 2000 (signals + decision, embeddings cached), turn_p99_ms <= 40.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.assistant import DialogContext  # noqa: E402
from router.calibration import Sample, fit  # noqa: E402
from router.config import load_config  # noqa: E402
from router.escalation import DecisionContext  # noqa: E402
from tests.transition.corpus import START, load_corpus, make_layer  # noqa: E402


def percentile(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return 0.0
    k = min(len(sorted_ns) - 1, max(0, round(q / 100 * (len(sorted_ns) - 1))))
    return sorted_ns[k] / 1000.0


def synthetic_calibrator(policy):
    """An isotonic calibrator per intent class (over-confident raw scores, known truth)."""
    rng = random.Random(7)
    samples = []
    for cls in policy.risk_classes:
        for _ in range(400):
            p = rng.uniform(0.05, 0.95)
            raw = p ** 0.4
            samples.append(Sample("builtin", cls, raw, rng.random() < p))
    return fit(samples, method="isotonic", min_samples=30)


async def prepare(cfg):
    """(layer, turns): each turn with its accepted text, precomputed reply and context."""
    layer, assistant = make_layer(cfg)
    layer.signals.calibrator = synthetic_calibrator(layer.cfg.policy)
    convs = []
    assistant_ns: list[int] = []
    for conv in load_corpus():
        ctx = DialogContext(case_id=conv.id, site=conv.site, resident=conv.resident)
        at = START
        items = []
        for t in conv.turns:
            at += t.after_s if t.after_s is not None else conv.gap_s
            turn = layer.accept(t.say, conv.language, pivot_text=t.pivot, at=at)
            t0 = time.perf_counter_ns()
            reply = await assistant.respond(turn, ctx)
            assistant_ns.append(time.perf_counter_ns() - t0)
            ctx.state = reply.state
            items.append((turn, reply, DecisionContext(site=conv.site, wait_s=conv.wait_s,
                                                       human=t.human)))
        convs.append(items)
    return layer, convs, assistant_ns


LOAD_PROBE = """
import json, os, time, psutil
proc = psutil.Process()
import numpy, router.embeddings as E
before = proc.memory_info().rss
t0, c0 = time.perf_counter(), time.process_time()
enc = E.Use3Encoder()
load_s, load_cpu_s = time.perf_counter() - t0, time.process_time() - c0
from router.config import load_config
from router.transition import TransitionLayer
from router.calibration import Calibrator
from router.assistant import BuiltinAssistant, InMemoryAccountService
cfg = load_config(os.environ["BATON_CONFIG"])
E._LOADED[""] = enc
layer = TransitionLayer.load(cfg, calibrator=Calibrator(), transition=cfg.transition)
BuiltinAssistant(cfg.transition.assistant, InMemoryAccountService.demo(now=time.time),
                 vectors=layer.vectors)
after = proc.memory_info().rss
print(json.dumps({"model_load_s": load_s, "model_load_cpu_s": load_cpu_s,
                  "added_rss_mb": (after - before) / 2**20}))
"""


def model_load() -> dict:
    """Model load time and added memory, in a fresh process (exemplar caches warm)."""
    import os
    import subprocess

    env = {**os.environ, "BATON_CONFIG": str(ROOT / "config"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", LOAD_PROBE], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"model load probe failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def full_turns(cfg) -> tuple[list[int], list[int]]:
    """Whole resident turns with the embedding cache cleared before each: (wall ns, this
    thread's CPU ns: the cost without the other processes that share the cores)."""
    from router.escalation_eval import load_corpus as load_any
    from tests.transition.corpus import HELDOUT_DIR

    layer, assistant = make_layer(cfg)
    out: list[int] = []
    cpu: list[int] = []
    convs = load_any(HELDOUT_DIR) + load_corpus()
    for rnd in range(2):  # the first pass warms code paths; the second is timed
        for conv in convs:
            ctx = DialogContext(case_id=conv.id, site=conv.site, resident=conv.resident)
            state = layer.new_state(START)
            at = START
            for t in conv.turns:
                at += t.after_s if t.after_s is not None else conv.gap_s
                layer.vectors._d.clear()
                c0 = time.thread_time_ns()
                t0 = time.perf_counter_ns()
                turn = layer.accept(t.say, conv.language, pivot_text=t.pivot, at=at)
                layer.vectors.warm(layer.turn_texts(turn))
                reply = await assistant.respond(turn, ctx)
                result = layer.assess(turn, reply, state, DecisionContext(
                    site=conv.site, wait_s=conv.wait_s, human=t.human))
                if rnd:
                    out.append(time.perf_counter_ns() - t0)
                    cpu.append(time.thread_time_ns() - c0)
                ctx.state, state = reply.state, result.state
    return out, cpu


def router_startup(semantic: bool) -> float:
    """Seconds until a fresh ``baton router`` answers /healthz."""
    import shutil
    import tempfile

    import yaml

    from sandbox.procs import RouterProcess

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config"
        shutil.copytree(ROOT / "config", cfg)
        if not semantic:
            pol = yaml.safe_load((cfg / "policy.yaml").read_text())
            pol["semantic"]["enabled"] = False
            (cfg / "policy.yaml").write_text(yaml.safe_dump(pol, allow_unicode=True))
            a = yaml.safe_load((cfg / "assistant.yaml").read_text())
            a["scoring"]["method"] = "tfidf"
            (cfg / "assistant.yaml").write_text(yaml.safe_dump(a, allow_unicode=True))
        proc = RouterProcess(cfg, f"sqlite+aiosqlite:///{tmp}/r.db")
        t0 = time.perf_counter()
        client = proc.start(timeout=120)
        took = time.perf_counter() - t0
        client.close()
        proc.stop()
        return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=60, help="passes over the corpus")
    ap.add_argument("--no-startup", action="store_true", help="skip the router start-ups")
    args = ap.parse_args()
    wall0 = time.perf_counter()
    cfg = load_config(ROOT / "config")
    layer, convs, assistant_ns = asyncio.run(prepare(cfg))
    signals, engine = layer.signals, layer.engine
    # Warm-up pass (regex caches, first-call costs), not timed.
    for items in convs:
        state = layer.new_state(START)
        for turn, reply, ctx in items:
            s, state = signals.assess(turn, reply, state)
            engine.decide(s, ctx)
    gc.collect()
    gc.freeze()
    times: list[int] = []
    cpu: list[int] = []
    perf, thread = time.perf_counter_ns, time.thread_time_ns
    for _ in range(args.rounds):
        for items in convs:
            state = layer.new_state(START)
            for turn, reply, ctx in items:
                c0 = thread()
                t0 = perf()
                s, state = signals.assess(turn, reply, state)
                engine.decide(s, ctx)
                times.append(perf() - t0)
                cpu.append(thread() - c0)
    times.sort()
    cpu.sort()
    assistant_ns.sort()
    total_s = sum(times) / 1e9
    result = {
        "decisions_per_s": round(len(times) / total_s) if total_s else 0,
        "p50_us": round(percentile(times, 50), 1),
        "p99_us": round(percentile(times, 99), 1),
        "max_us": round(times[-1] / 1000, 1) if times else 0.0,
        "decisions": len(times),
        "turns_in_corpus": sum(len(c) for c in convs),
        "cpu_p99_us": round(percentile(cpu, 99), 1),
        "assistant_p50_us": round(percentile(assistant_ns, 50), 1),
        "assistant_p99_us": round(percentile(assistant_ns, 99), 1),
        "wall_s": round(time.perf_counter() - wall0, 1),
    }
    import os

    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    except (AttributeError, OSError):
        pass
    turns_ns, turns_cpu = (sorted(x) for x in asyncio.run(full_turns(cfg)))
    result["turns_timed"] = len(turns_ns)
    result["turn_p50_ms"] = round(percentile(turns_ns, 50) / 1000, 2)
    result["turn_p99_ms"] = round(percentile(turns_ns, 99) / 1000, 2)
    result["turn_cpu_p50_ms"] = round(percentile(turns_cpu, 50) / 1000, 2)
    result["turn_cpu_p99_ms"] = round(percentile(turns_cpu, 99) / 1000, 2)
    result.update({k: round(v, 2) for k, v in model_load().items()})
    if not args.no_startup:
        # The better of two start-ups each: other processes on the machine add noise.
        result["router_startup_s_before"] = round(min(router_startup(False)
                                                      for _ in range(2)), 2)
        result["router_startup_s_after"] = round(min(router_startup(True) for _ in range(2)), 2)
    ok = result["p99_us"] <= 2000
    print(f"corpus: {len(convs)} conversations, {result['turns_in_corpus']} turns, "
          f"{args.rounds} rounds")
    print(f"signals + decision: {result['decisions']} decisions  {result['decisions_per_s']}/s  "
          f"p50 {result['p50_us']} us  p99 {result['p99_us']} us  max {result['max_us']} us  "
          f"-> target {'met' if ok else 'MISSED'} (p99 <= 2000 us)")
    print(f"by CPU time of this thread (not wall; shows contention from other processes): "
          f"p99 {result['cpu_p99_us']} us")
    print(f"assistant (intent scoring + answer, not in the figure above): "
          f"p50 {result['assistant_p50_us']} us  p99 {result['assistant_p99_us']} us")
    print(f"whole turn with embeddings (one core, cache cleared): {result['turns_timed']} "
          f"turns  p50 {result['turn_p50_ms']} ms  p99 {result['turn_p99_ms']} ms -> target "
          f"{'met' if result['turn_p99_ms'] <= 40 else 'MISSED'} (p99 <= 40 ms); by this thread's "
          f"CPU time p50 {result['turn_cpu_p50_ms']} ms  p99 {result['turn_cpu_p99_ms']} ms")
    print(f"model load {result['model_load_s']} s, CPU {result['model_load_cpu_s']} s "
          f"(<= 3 s), added RSS "
          f"{result['added_rss_mb']} MB (<= 250 MB)")
    if "router_startup_s_after" in result:
        print(f"baton router start-up: {result['router_startup_s_before']} s before (TF-IDF, no "
              f"semantic detectors), {result['router_startup_s_after']} s after")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
