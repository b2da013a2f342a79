"""`baton transcribe` and the recognizer's memory bounds."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess

import numpy as np
import pytest

from edge import transcribe
from edge.asr import ASRConfig, Final, StreamingRecognizer, VADConfig
from edge.audio import SAMPLE_RATE, frames_from_array
from tests.edge import speech

pytestmark = pytest.mark.slow


def run(*argv) -> int:
    p = argparse.ArgumentParser()
    transcribe.add_arguments(p)
    return transcribe.run_cli(p.parse_args([str(a) for a in argv]))


def test_transcribe_json(models_root, corpus, tmp_path, capsys):
    en = [u for u in corpus if u.language == "en"][:2]
    ja = next(u for u in corpus if u.language == "ja" and len(u.text) > 15)
    out = tmp_path / "mixed.ogg"  # any format ffmpeg reads
    gap = tmp_path / "gap.wav"
    speech.noise("silence", 1.0, gap)
    subprocess.run(["sox", str(en[0].path), str(gap), str(en[1].path), str(gap), str(ja.path),
                    str(out)], check=True)
    assert run(out, "--languages", "en,ja", "--models-dir", models_root, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"text", "language", "segments", "timings"}
    assert result["language"] == "en"
    langs = [s["language"] for s in result["segments"]]
    assert langs[:2] == ["en", "en"] and set(langs[2:]) == {"ja"}  # ja may split at 。
    assert "residence card" in result["text"].lower()
    for s in result["segments"]:
        assert s["end"] > s["start"] and s["text"]
    assert {"audio_s", "processing_ms", "rtf", "load_ms"} <= set(result["timings"])


def test_transcribe_clear_errors(models_root, tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    speech.noise("silence", 0, empty)
    assert run(empty, "--models-dir", models_root) == 2
    assert "contains no audio samples" in capsys.readouterr().err
    assert run(tmp_path / "nope.wav", "--models-dir", models_root) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "text.wav").write_text("this is not audio")
    assert run(tmp_path / "text.wav", "--models-dir", models_root) == 2
    assert "cannot open audio file" in capsys.readouterr().err
    assert run(empty, "--models-dir", tmp_path / "none") == 2
    assert "baton models install-defaults" in capsys.readouterr().err


def test_memory_stays_bounded_on_long_speech_and_silence(engine, corpus):
    """Continuous speech longer than max_utterance_s is cut; audio is kept only for the open
    utterance; a long stream of silence keeps nothing."""
    talk = np.concatenate([speech.read_wav(u.path) for u in corpus
                           if u.language == "en"][:5])          # ~15 s without pauses
    stream = np.concatenate([talk, np.zeros(120 * SAMPLE_RATE, np.float32), talk])
    cfg = ASRConfig(vad=VADConfig(max_utterance_s=6))
    peak = 0

    async def go():
        nonlocal peak
        finals = []
        async with StreamingRecognizer(engine, cfg, languages=["en"]) as rec:
            async def collect():
                async for ev in rec.events():
                    if isinstance(ev, Final):
                        finals.append(ev)

            task = asyncio.create_task(collect())
            quiet = range(len(talk) + 10 * SAMPLE_RATE, len(talk) + 120 * SAMPLE_RATE)
            kept_in_silence = 0
            for frame in frames_from_array(stream, frame_ms=100):
                await rec.feed(frame)
                peak = max(peak, rec._samples.size)
                if frame.start in quiet:
                    kept_in_silence = max(kept_in_silence, rec._samples.size)
            await rec.finish()
            await task
        return finals, kept_in_silence

    finals, kept_in_silence = asyncio.run(go())
    assert peak <= (6 + 1) * SAMPLE_RATE
    assert 0 < kept_in_silence <= SAMPLE_RATE
    assert any(f.forced for f in finals)
    assert all(f.end - f.start <= 6.1 for f in finals)
