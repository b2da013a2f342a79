"""The edge node: speech -> turn events with translation and the assistant's reply, and the
node keeps running through a missing model, a corrupt model, a wrong sample rate and empty
audio."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.audio import SAMPLE_RATE, AudioFrame, frames_from_array
from edge.audio_sources import ArraySource, FileSource
from edge.models import argos_dir, whisper_dir
from edge.node import CollectingSink, EdgeConfig, EdgeNode, ResidentTurn, load_edge_config
from edge.translate.packages import install_package
from protocol.models import TurnPayload
from tests.edge import speech

pytestmark = pytest.mark.slow


def config(**kw) -> EdgeConfig:
    return EdgeConfig(site="city-office", device="robot-1", kind="robot",
                      languages=["ja", "en", "es", "pt", "zh"], pivot="en", **kw)


@pytest.fixture(scope="module")
def node_models(models_root, argos_packages, tmp_path_factory):
    """Whisper base (linked from the session's models dir) plus the tiny Argos packages."""
    root = tmp_path_factory.mktemp("node-models")
    (root / "whisper").mkdir()
    (root / "whisper" / "base").symlink_to(whisper_dir(models_root, "base"))
    for f in argos_packages.glob("*.argosmodel"):
        install_package(f, argos_dir(root))
    return root


def turn_fields(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k in TurnPayload.model_fields}


def test_repository_edge_config_is_valid():
    cfg = load_edge_config(Path(__file__).resolve().parents[2] / "config/edge/robot-1.yaml")
    assert cfg.device == "robot-1" and "ja" in cfg.languages


def test_spoken_turn_is_translated_and_answered(engine, node_models, corpus):
    es = next(u for u in corpus if u.language == "es" and "renovar" in u.text)
    audio = np.concatenate([speech.read_wav(es.path), np.zeros(SAMPLE_RATE, np.float32)])
    seen: list[ResidentTurn] = []

    async def assistant(turn: ResidentTurn) -> str:
        seen.append(turn)
        return "Please show me your card."

    async def go():
        sink = CollectingSink()
        async with EdgeNode(config(), sink, engine=engine, models=node_models,
                            assistant=assistant) as node:
            await node.run_source(ArraySource(audio))
            await sink.wait_for(lambda t, p: t == "turn" and p["speaker"] == "ai", 30)
        return sink

    sink = asyncio.run(go())
    resident, ai = sink.of("turn")
    TurnPayload.model_validate(turn_fields(resident))
    TurnPayload.model_validate(turn_fields(ai))
    assert resident["speaker"] == "resident" and resident["language"] == "es"
    assert "renovar" in resident["text"].lower()
    # The tiny test package answers "hello" per sentence; Whisper may or may not punctuate
    # the utterance into two sentences.
    assert re.fullmatch(r"(hello)+", resident["translated"])
    assert resident["translated_language"] == "en"
    assert 0 < resident["confidence"] <= 1
    assert {"audio_ms", "decode_ms", "eos_to_final_ms", "translate_ms"} <= \
        set(resident["timings"])
    assert re.fullmatch(r"(hello)+", seen[0].pivot_text) and seen[0].pivot_language == "en"
    assert ai == {"speaker": "ai", "language": "en", "text": "Please show me your card.",
                  "translated": "hola", "translated_language": "es", "confidence": None,
                  "timings": ai["timings"]}
    assert sink.of("status")[0]["asr"] == "ready"
    json.dumps(sink.events)  # every payload is JSON


def test_missing_models_directory_reports_and_keeps_running(tmp_path):
    async def go():
        sink = CollectingSink()
        async with EdgeNode(config(), sink, models=tmp_path / "absent") as node:
            await node.submit_text("I need help.", "en")  # typed turns still work
            await node.run_source(ArraySource(np.zeros(SAMPLE_RATE, np.float32)))
            assert await node.reload_asr() is False
        return sink

    sink = asyncio.run(go())
    errors = sink.of("edge_error")
    assert errors[0]["code"] == "model_missing"
    assert "baton models install-defaults" in errors[0]["message"]
    assert sink.of("status")[0]["asr"] == "unavailable"
    assert sink.of("turn")[0]["text"] == "I need help."
    assert any(e["code"] == "asr_unavailable" for e in errors)


def test_corrupt_model_reports_and_keeps_running(models_root, tmp_path):
    bad = whisper_dir(tmp_path, "base")
    bad.mkdir(parents=True)
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(whisper_dir(models_root, "base") / f, bad / f)
    (bad / "model.bin").write_bytes(b"\0" * 1024)

    async def go():
        sink = CollectingSink()
        async with EdgeNode(config(), sink, models=tmp_path) as node:
            await node.submit_text("Hello.", "en")
        return sink

    sink = asyncio.run(go())
    assert sink.of("edge_error")[0]["code"] == "model_corrupt"
    assert "--force" in sink.of("edge_error")[0]["message"]
    assert sink.of("turn")[0]["text"] == "Hello."


def test_wrong_sample_rate_and_empty_audio_are_reported_and_speech_still_works(
        engine, node_models, corpus, tmp_path):
    en = next(u for u in corpus if u.language == "en")
    empty = tmp_path / "empty.wav"
    speech.noise("silence", 0, empty)

    async def go():
        sink = CollectingSink()
        async with EdgeNode(config(), sink, engine=engine, models=node_models) as node:
            # an 8 kHz frame where 16 kHz is expected
            used = await node.feed(AudioFrame(np.zeros(160, np.float32), 0, sample_rate=8000))
            assert used is False
            # an empty file
            await node.run_source(FileSource(empty))
            # then real speech is still recognized
            x = np.concatenate([speech.read_wav(en.path), np.zeros(SAMPLE_RATE, np.float32)])
            for frame in frames_from_array(x):
                assert await node.feed(frame)
            await node.recognizer.flush()
            await sink.wait_for(lambda t, p: t == "turn", 30)
        return sink

    sink = asyncio.run(go())
    codes = [e["code"] for e in sink.of("edge_error")]
    assert codes[:2] == ["audio_format", "audio_empty"]
    assert "16000 Hz" in sink.of("edge_error")[0]["message"]
    assert "no audio samples" in sink.of("edge_error")[1]["message"]
    turn = sink.of("turn")[0]
    assert turn["language"] == "en" and "residence card" in turn["text"].lower()
    assert turn["translated"] is None  # already in the pivot language


def test_missing_translation_pair_is_reported_and_the_turn_still_goes_out(
        engine, node_models):
    async def go():
        sink = CollectingSink()
        async with EdgeNode(config(), sink, engine=engine, models=node_models) as node:
            await node.submit_text("在留カードを更新したいです。", "ja")
        return sink

    sink = asyncio.run(go())
    assert sink.of("turn")[0]["translated"] is None
    err = sink.of("edge_error")[0]
    assert err["code"] == "translation_pair_missing" and "translate-ja_en" in err["message"]


def test_baton_edge_command_runs_a_file_and_prints_events(models_root, corpus, tmp_path,
                                                          capsys):
    import argparse

    from edge import node as edge_node

    en = next(u for u in corpus if u.language == "en")
    cfg = tmp_path / "edge.yaml"
    cfg.write_text("site: city-office\ndevice: kiosk-1\nkind: kiosk\nlanguages: [en, es]\n"
                   "translation: {enabled: false}\nasr: {model: base}\n")
    p = argparse.ArgumentParser()
    edge_node.add_arguments(p)
    args = p.parse_args(["--config", str(cfg), "--models-dir", str(models_root),
                         "--audio-file", str(en.path), "--seconds", "7", "--print-events"])
    assert edge_node.run_cli(args) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    kinds = [x["type"] for x in lines]
    assert kinds[0] == "status" and "turn" in kinds
    turn = next(x["payload"] for x in lines if x["type"] == "turn")
    assert "residence card" in turn["text"].lower()


def test_bad_edge_config_is_a_clear_error(tmp_path, capsys):
    import argparse

    from edge import node as edge_node

    cfg = tmp_path / "edge.yaml"
    cfg.write_text("site: city-office\ndevice: kiosk-1\nkind: tank\nlanguages: [en]\n")
    p = argparse.ArgumentParser()
    edge_node.add_arguments(p)
    assert edge_node.run_cli(p.parse_args(["--config", str(cfg)])) == 2
    out = capsys.readouterr().out
    assert "edge.yaml" in out and "kind" in out
