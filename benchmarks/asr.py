"""Streaming ASR latency and cost on real speech, played at speaking speed.

    .venv/bin/python benchmarks/asr.py [--models-dir models] [--model base] [--soak-minutes 0]

A stream of 10 utterances (English and Spanish from espeak-ng, Japanese from
pyopenjtalk-plus) with pauses of 1.2-2.0 s is fed in 20-ms frames in real time through the
edge's StreamingRecognizer (Whisper base int8, the site's five languages). Measured:

- eos_to_final: from the moment the frame holding the true end of speech (last sample of the
  TTS waveform above -40 dBFS) was fed to the moment the final transcript was emitted;
- first_partial: from the frame holding the start of speech to the first partial;
- rtf: model time (VAD + Whisper, in their threads) / audio duration;
- rss_mb: peak resident memory of the process.

The yardstick, in the same run with the same model object: faster-whisper's own
``transcribe(vad_filter=True)`` per utterance with its default VAD (``min_silence_duration_ms``
2000, beam 1, the languages detected): it can close an utterance only after that much
silence, so its end of speech → final = 2.0 s + the wall time of transcribing the utterance
with that silence appended (measured here, one utterance at a time). ``ratio_p50`` =
baseline p50 / ours (how far ahead we are); ``wer``/``baseline_wer``: word (en, es) and
character (ja) errors over all utterances, ours from the finals of the stream.

Human-readable lines first; the last line is one JSON object with rtf, eos_to_final_p50_ms,
eos_to_final_p95_ms, first_partial_p50_ms, rss_mb (and a few more figures).
Targets on 2 cores, base int8: eos_to_final p50 <= 700, p95 <= 1200, rtf <= 0.35,
rss_mb <= 600. ``--soak-minutes N`` then feeds N more minutes (fast) and reports RSS growth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.asr import ASRConfig, Final, Partial, StreamingRecognizer, WhisperEngine
from edge.audio import SAMPLE_RATE, frames_from_array
from edge.models import assemble_whisper, models_dir
from tests.edge import speech

PICK = [("en", 0), ("es", 0), ("ja", 1), ("en", 6), ("es", 6), ("ja", 5), ("en", 9),
        ("es", 9), ("ja", 9), ("en", 11)]
LANGUAGES = ["ja", "en", "es", "pt", "zh"]


def pct(xs, q):
    return float(np.percentile(xs, q)) if xs else float("nan")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_stream(cache: Path):
    # Synthesis runs in a child process: pyopenjtalk's dictionary would count in our RSS.
    import subprocess

    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                    f"sys.path.insert(0, {str(ROOT)!r}); from tests.edge import speech; "
                    f"speech.corpus(Path({str(cache / 'speech')!r}))"], check=True)
    utts = speech.corpus(cache / "speech")
    by = {(u.language, i): u for lang in ("en", "es", "ja")
          for i, u in enumerate([x for x in utts if x.language == lang])}
    rng = np.random.default_rng(7)
    parts, refs, pos = [np.zeros(SAMPLE_RATE, np.float32)], [], SAMPLE_RATE
    for key in PICK:
        x = speech.read_wav(by[key].path)
        a, b = speech.speech_bounds(x)
        refs.append({"utt": by[key], "start": pos + a, "end": pos + b})
        gap = np.zeros(int(rng.uniform(1.2, 2.0) * SAMPLE_RATE), np.float32)
        parts += [x, gap]
        pos += len(x) + len(gap)
    return np.concatenate(parts), refs


async def run(engine, cfg, audio, refs):
    arrivals: dict[int, float] = {}
    events: list[tuple[float, object]] = []
    async with StreamingRecognizer(engine, cfg, languages=LANGUAGES) as rec:
        async def collect():
            async for ev in rec.events():
                events.append((time.monotonic(), ev))

        task = asyncio.create_task(collect())
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        marks = sorted([r["start"] for r in refs] + [r["end"] for r in refs])
        for frame in frames_from_array(audio):
            delay = t0 + frame.start / SAMPLE_RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            frame.arrived = time.monotonic()
            await rec.feed(frame)
            for m in marks:
                if frame.start <= m < frame.end:
                    arrivals[m] = frame.arrived
        await rec.finish()
        await task
        stats = dict(rec.stats)
    return arrivals, events, stats


def evaluate(refs, arrivals, events):
    eos, first, rows = [], [], []
    for r in refs:
        s, e = r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE
        finals = [(t, ev) for t, ev in events if isinstance(ev, Final)
                  and ev.start < e and ev.end > s]
        partials = [(t, ev) for t, ev in events if isinstance(ev, Partial)
                    and ev.start < e and ev.end > s]
        row = {"language": r["utt"].language, "ref": r["utt"].text, "hyp": None}
        if finals:
            t_final, last = finals[-1]
            eos.append((t_final - arrivals[r["end"]]) * 1000)
            row.update(hyp=" ".join(f.text for _, f in finals), detected=last.language,
                       eos_to_final_ms=round(eos[-1], 1), speculative=last.speculative)
        if partials:
            first.append((partials[0][0] - arrivals[r["start"]]) * 1000)
            row["first_partial_ms"] = round(first[-1], 1)
        rows.append(row)
    return eos, first, rows


async def soak(engine, cfg, audio, minutes: float) -> dict:
    """Feed `minutes` of the same stream as fast as possible; RSS before/after."""
    before = rss_mb()
    fed = 0.0
    async with StreamingRecognizer(engine, cfg, languages=LANGUAGES) as rec:
        async def drain():
            async for _ in rec.events():
                pass

        task = asyncio.create_task(drain())
        while fed < minutes * 60:
            for frame in frames_from_array(audio, frame_ms=100):
                await rec.feed(frame)
            fed += len(audio) / SAMPLE_RATE
        await rec.finish()
        await task
    return {"soak_minutes": round(fed / 60, 1), "rss_mb_before_soak": round(before, 1),
            "rss_mb_after_soak": round(rss_mb(), 1)}


def error_rate(rows) -> float:
    """Edits / reference units over all utterances: words for en/es, characters for ja."""
    edits = units = 0
    for r in rows:
        count = speech.char_errors if r["language"] == "ja" else speech.word_errors
        e, n = count(r["ref"], r["hyp"] or "")
        edits, units = edits + e, units + n
    return edits / max(units, 1)


def baseline(engine, refs, audio) -> tuple[list[float], list[dict]]:
    """faster-whisper transcribe(vad_filter=True) per utterance, default VAD parameters."""
    silence_s = 2.0  # faster-whisper's default VadOptions.min_silence_duration_ms
    lat, rows = [], []
    for r in refs:
        start = max(0, r["start"] - SAMPLE_RATE // 4)
        clip = np.concatenate([audio[start:r["end"]],
                               np.zeros(int(silence_s * SAMPLE_RATE), np.float32)])
        t0 = time.perf_counter()
        segments, info = engine.model.transcribe(clip, vad_filter=True, beam_size=1)
        text = " ".join(s.text.strip() for s in segments)
        lat.append((silence_s + time.perf_counter() - t0) * 1000)
        rows.append({"language": r["utt"].language, "ref": r["utt"].text, "hyp": text,
                     "detected": info.language})
    return lat, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--model", default="base")
    ap.add_argument("--cache", default=str(ROOT / "benchmarks" / "out"))
    ap.add_argument("--soak-minutes", type=float, default=0)
    args = ap.parse_args()
    root = models_dir(args.models_dir)
    assemble_whisper(root, args.model, quiet=True)
    cfg = ASRConfig(model=args.model)
    audio, refs = build_stream(Path(args.cache))
    engine = WhisperEngine.from_models_dir(root, cfg)
    t0 = time.perf_counter()
    engine.load()
    load_ms = (time.perf_counter() - t0) * 1000
    print(f"model {args.model} {cfg.compute_type}, {cfg.cpu_threads} threads, loaded in "
          f"{load_ms:.0f} ms; {len(refs)} utterances, {len(audio) / SAMPLE_RATE:.1f} s of audio "
          f"played in real time; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} "
          "cores")
    arrivals, events, stats = asyncio.run(run(engine, cfg, audio, refs))
    eos, first, rows = evaluate(refs, arrivals, events)
    for row in rows:
        print(f"  {row['language']} eos->final {row.get('eos_to_final_ms', '-'):>7} ms, "
              f"first partial {row.get('first_partial_ms', '-'):>7} ms, "
              f"detected {row.get('detected')}: {row['hyp']}")
    rtf = (stats["decode_s"] + stats["vad_s"]) / stats["audio_s"]
    base_lat, base_rows = baseline(engine, refs, audio)
    print(f"faster-whisper transcribe(vad_filter=True) per utterance: eos->final p50 "
          f"{pct(base_lat, 50):.0f} ms, p95 {pct(base_lat, 95):.0f} ms")
    out = {
        "rtf": round(rtf, 4),
        "eos_to_final_p50_ms": round(pct(eos, 50), 1),
        "eos_to_final_p95_ms": round(pct(eos, 95), 1),
        "first_partial_p50_ms": round(pct(first, 50), 1),
        "rss_mb": round(rss_mb(), 1),
        "utterances": len(refs), "finals": stats["finals"], "partials": stats["partials"],
        "decodes": stats["decodes"], "fallbacks": stats["fallbacks"],
        "language_correct": sum(r.get("detected") == r["language"] for r in rows),
        "model": args.model, "compute_type": cfg.compute_type, "cpu_threads": cfg.cpu_threads,
        "min_silence_ms": cfg.vad.min_silence_ms, "load_ms": round(load_ms, 1),
        "cores": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2),
        "wer": round(error_rate(rows), 4),
        "baseline_eos_to_final_p50_ms": round(pct(base_lat, 50), 1),
        "baseline_eos_to_final_p95_ms": round(pct(base_lat, 95), 1),
        "baseline_wer": round(error_rate(base_rows), 4),
        "ratio_p50": round(pct(base_lat, 50) / pct(eos, 50), 2),
    }
    print(f"eos->final p50 {out['eos_to_final_p50_ms']} ms, p95 {out['eos_to_final_p95_ms']} "
          f"ms (targets 700/1200); first partial p50 {out['first_partial_p50_ms']} ms; rtf "
          f"{out['rtf']} (target 0.35); peak rss {out['rss_mb']} MB (target 600)")
    if args.soak_minutes > 0:
        out.update(asyncio.run(soak(engine, cfg, audio, args.soak_minutes)))
        print(f"soak: {out['soak_minutes']} min fed, rss {out['rss_mb_before_soak']} -> "
              f"{out['rss_mb_after_soak']} MB")
    engine.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
