"""Per-sentence latency of the edge's translation wrapper (Argos, offline splitter).

    .venv/bin/python benchmarks/translate.py [--models-dir models] [--rounds 20]

Always measured on tiny deterministic packages built on the spot (en->es, es->en, en->ja:
the whole real path, sentencepiece + CTranslate2 + splitter, with a 1-layer model), direct and
through the English pivot; then on every real package installed in the models directory
(``baton models install FILE.argosmodel``). Calls go through TranslationService with the
cache off (every call is a miss), one sentence each; a cached lookup is timed apart.

Human-readable lines first; the last line is one JSON object with p50_ms and p95_ms (tiny
packages, direct), pivot_p50_ms, cached_p50_us and a ``real`` map {pair: {p50_ms, p95_ms}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.models import argos_dir, models_dir
from edge.translate import ArgosTranslator, TranslationService
from edge.translate.packages import install_package
from edge.translate.tiny import build_package
from tests.edge.speech import EN, ES

SAMPLES = {"en": EN, "es": ES, "ja": ["在留カードを更新したいです。", "市民税はどこで払えますか。"]}


async def measure(translator, pairs, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    async with TranslationService(translator, cache_size=0) as svc:
        for src, dst in pairs:
            times = out.setdefault(f"{src}-{dst}", [])
            for _ in range(rounds):
                for text in SAMPLES.get(src, EN):
                    t0 = time.perf_counter()
                    await svc.translate(text, src, dst)
                    times.append((time.perf_counter() - t0) * 1000)
    return out


async def cached(translator) -> list[float]:
    async with TranslationService(translator) as svc:
        await svc.translate(EN[0], "en", "es")
        times = []
        for _ in range(1000):
            t0 = time.perf_counter()
            await svc.translate(EN[0], "en", "es")
            times.append((time.perf_counter() - t0) * 1e6)
    return times


def p(xs, q):
    return round(float(np.percentile(xs, q)), 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for src, dst, word in [("en", "es", "hola"), ("es", "en", "hello"),
                               ("en", "ja", "こんにちは")]:
            install_package(build_package(root / f"{src}{dst}.argosmodel", src, dst, word),
                            root / "argos")
        tiny = ArgosTranslator(root / "argos", pivot="en")
        direct = asyncio.run(measure(tiny, [("en", "es"), ("es", "en")], args.rounds))
        pivot = asyncio.run(measure(tiny, [("es", "ja")], args.rounds))
        hit = asyncio.run(cached(tiny))
    all_direct = [x for v in direct.values() for x in v]
    print(f"tiny packages: {len(all_direct)} direct sentences p50 {p(all_direct, 50)} ms, "
          f"p95 {p(all_direct, 95)} ms; pivot es->en->ja p50 {p(pivot['es-ja'], 50)} ms; "
          f"cache hit p50 {p(hit, 50)} us")
    real = {}
    installed = argos_dir(models_dir(args.models_dir))
    if installed.is_dir() and any(installed.iterdir()):
        tr = ArgosTranslator(installed)
        res = asyncio.run(measure(tr, sorted(tr.pairs), max(1, args.rounds // 4)))
        for pair, times in res.items():
            real[pair] = {"p50_ms": p(times, 50), "p95_ms": p(times, 95), "n": len(times)}
            print(f"real package {pair}: p50 {real[pair]['p50_ms']} ms, "
                  f"p95 {real[pair]['p95_ms']} ms over {len(times)} sentences")
    else:
        print(f"no real Argos packages in {installed} (install .argosmodel files with "
              "`baton models install`)")
    print(json.dumps({"p50_ms": p(all_direct, 50), "p95_ms": p(all_direct, 95),
                      "pivot_p50_ms": p(pivot["es-ja"], 50),
                      "pivot_p95_ms": p(pivot["es-ja"], 95),
                      "cached_p50_us": p(hit, 50), "sentences": len(all_direct),
                      "real": real}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
