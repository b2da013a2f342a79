"""``baton transcribe FILE``: a file through the same streaming pipeline as the edge.

Operators use it to check a microphone recording or a model. With ``--json`` it prints one
JSON object: ``text``, ``language``, ``segments`` (start, end, text, language, confidence)
and ``timings``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from edge.asr import ASRConfig, Final, StreamingRecognizer, WhisperEngine
from edge.asr.errors import ASRError
from edge.audio import AudioError
from edge.audio_sources import AudioSource, FileSource
from edge.models import ModelError, models_dir


async def transcribe_source(engine: WhisperEngine, cfg: ASRConfig, source: AudioSource, *,
                            languages: list[str] | None = None,
                            language: str | None = None) -> dict[str, Any]:
    """Run one source through a fresh recognizer; returns the result object."""
    finals: list[Final] = []
    t0 = time.perf_counter()
    async with StreamingRecognizer(engine, cfg, languages=languages, language=language) as rec:
        async def collect() -> None:
            async for ev in rec.events():
                if isinstance(ev, Final):
                    finals.append(ev)

        collector = asyncio.create_task(collect(), name="transcribe-collect")
        try:
            async for frame in source.frames():
                await rec.feed(frame)
            await rec.finish()
            await collector
        finally:
            collector.cancel()
            await source.aclose()
        stats = dict(rec.stats)
    wall = time.perf_counter() - t0
    by_lang: Counter[str] = Counter()
    for f in finals:
        by_lang[f.language] += f.end - f.start
    lang = by_lang.most_common(1)[0][0] if by_lang else (language or None)
    sep = "" if lang in ("ja", "zh") else " "
    audio_s = stats["audio_s"]
    return {
        "text": sep.join(f.text for f in finals),
        "language": lang,
        "segments": [{"start": f.start, "end": f.end, "text": f.text, "language": f.language,
                      "confidence": f.confidence} for f in finals],
        "timings": {
            "audio_s": round(audio_s, 3),
            "processing_ms": round(wall * 1000, 1),
            "decode_ms": round(stats["decode_s"] * 1000, 1),
            "vad_ms": round(stats["vad_s"] * 1000, 1),
            "rtf": round((stats["decode_s"] + stats["vad_s"]) / audio_s, 4) if audio_s else None,
            "decodes": stats["decodes"],
            "rejected": stats["rejected"],
        },
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="an audio file (any format ffmpeg reads)")
    p.add_argument("--language", default=None, help="the language spoken (skips detection)")
    p.add_argument("--languages", default=None, help="comma-separated languages detection "
                   "may choose from, e.g. ja,en,es (default: any)")
    p.add_argument("--model", default="base", help="Whisper model: base or tiny.en")
    p.add_argument("--models-dir", default=None, help="default: $BATON_MODELS_DIR or ./models")
    p.add_argument("--realtime", action="store_true", help="feed at speaking speed")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run_cli(args) -> int:
    cfg = ASRConfig(model=args.model)
    languages = [x.strip() for x in args.languages.split(",") if x.strip()] \
        if args.languages else None

    async def main() -> dict[str, Any]:
        engine = WhisperEngine.from_models_dir(models_dir(args.models_dir), cfg)
        try:
            t0 = time.perf_counter()
            await engine.aload()
            load_ms = (time.perf_counter() - t0) * 1000
            engine.check_languages(languages or ([args.language] if args.language else []))
            source = FileSource(Path(args.file), realtime=args.realtime, frame_ms=100)
            result = await transcribe_source(engine, cfg, source, languages=languages,
                                             language=args.language)
            result["timings"]["load_ms"] = round(load_ms, 1)
            return result
        finally:
            await asyncio.to_thread(engine.close)

    try:
        result = asyncio.run(main())
    except (AudioError, ModelError, ASRError) as exc:
        print(f"baton transcribe: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for s in result["segments"]:
            print(f"[{s['start']:7.2f} – {s['end']:7.2f}] ({s['language']}, "
                  f"{s['confidence']:.2f}) {s['text']}")
        t = result["timings"]
        print(f"language {result['language']}; {t['audio_s']} s of audio in "
              f"{t['processing_ms'] / 1000:.2f} s (rtf {t['rtf']}, model load "
              f"{t['load_ms'] / 1000:.2f} s)")
    return 0
