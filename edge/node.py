"""``baton edge``: one process per kiosk or robot.

    audio source -> StreamingRecognizer -> (final) translate to pivot -> "turn" event
                                        -> assistant hook -> translate back -> "turn" event
                                        -> (partial) "caption" event

Events leave through an ``EventSink`` (the MQTT outbox implements it; ``LogSink`` and
``CollectingSink`` are here). Failures of one part are reported as ``edge_error`` events and
the node keeps running: without a model it still takes typed turns and translates; a bad
frame or an empty file costs that frame or that file, not the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from common.errors import BatonError
from common.tasks import Supervisor
from edge.asr import ASRConfig, Final, Partial, StreamingRecognizer, WhisperEngine
from edge.asr.errors import ASRError
from edge.audio import AudioError, AudioFormatError, AudioFrame
from edge.audio_sources import AudioSource, FileSource, MicSource, TrackSource
from edge.models import ModelError, argos_dir, models_dir
from edge.translate import ArgosTranslator, Phrasebook, TranslationError, TranslationService
from protocol.models import Ident, LangCode

log = logging.getLogger("baton.edge")

EDGE_ERRORS = (AudioError, ModelError, ASRError, TranslationError)


# --- configuration ----------------------------------------------------------------------


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudioConfig(_C):
    source: Literal["none", "file", "mic", "webrtc"] = "none"
    path: str | None = None          # source: file
    realtime: bool = True            # source: file, played at speaking speed
    device: str = "default"          # source: mic


class TranslationConfig(_C):
    enabled: bool = True
    phrasebook: str | None = None  # reviewed sentences, looked up before the model
    cache_size: int = Field(default=1024, ge=0)
    threads: int = Field(default=1, ge=1, le=16)


class EdgeConfig(_C):
    site: Ident
    device: Ident
    kind: Literal["kiosk", "robot"]
    languages: list[LangCode] = Field(min_length=1)   # the site's languages (LID is limited
    pivot: LangCode = "en"                            # to them); pivot: the router's language
    models_dir: str | None = None
    asr: ASRConfig = Field(default_factory=ASRConfig)
    translation: TranslationConfig = Field(default_factory=TranslationConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    screen: str | None = None  # the resident page's words (default config/edge/screen.yaml)
    redact_pii: bool = True


def load_edge_config(path: str | os.PathLike) -> EdgeConfig:
    """Raises common.config.ConfigError naming the file, the key and the reason."""
    from common.config import parse_file

    cfg: EdgeConfig = parse_file(Path(path), EdgeConfig)  # type: ignore[assignment]
    pb = cfg.translation.phrasebook
    if pb and not Path(pb).is_absolute():  # relative to the config file
        cfg.translation.phrasebook = str(Path(path).parent / pb)
    if cfg.screen and not Path(cfg.screen).is_absolute():
        cfg.screen = str(Path(path).parent / cfg.screen)
    return cfg


# --- events out -------------------------------------------------------------------------


class EventSink(Protocol):
    async def emit(self, type: str, payload: dict[str, Any]) -> None: ...


class LogSink:
    """Logs every event; transcripts only under the ``pii`` field (redactable)."""

    def __init__(self, redact_pii: bool = True, print_json: bool = False):
        self.redact, self.print_json = redact_pii, print_json

    async def emit(self, type: str, payload: dict[str, Any]) -> None:
        if self.print_json:
            print(json.dumps({"type": type, "payload": payload}, ensure_ascii=False), flush=True)
        public = {k: v for k, v in payload.items()
                  if k not in ("text", "translated", "stable", "unstable", "message")}
        pii = "[redacted]" if self.redact else {
            k: payload[k] for k in ("text", "translated", "stable", "unstable") if k in payload}
        log.info("edge event", extra={"event": type, "fields": public, "pii": pii})


class CollectingSink:
    """Keeps events in memory; ``wait_for`` lets a caller await one (tests, tools)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Condition()

    async def emit(self, type: str, payload: dict[str, Any]) -> None:
        async with self._changed:
            self.events.append((type, payload))
            self._changed.notify_all()

    def of(self, type: str) -> list[dict[str, Any]]:
        return [p for t, p in self.events if t == type]

    async def wait_for(self, pred: Callable[[str, dict], bool], timeout: float = 30) -> dict:
        async def wait() -> dict:
            async with self._changed:
                while True:
                    for t, p in self.events:
                        if pred(t, p):
                            return p
                    await self._changed.wait()
        return await asyncio.wait_for(wait(), timeout)


# --- the assistant hook -------------------------------------------------------------------


@dataclass(slots=True)
class ResidentTurn:
    """What the AI front receives: the resident's words and their pivot translation."""

    text: str
    language: str
    pivot_text: str
    pivot_language: str
    confidence: float | None
    timings: dict[str, float] = field(default_factory=dict)
    untranslated: str | None = None  # why there is no pivot translation, when there is none


# Returns the reply in the pivot language, or (text, language) when the reply is already in
# another language (e.g. the router answered in the resident's own), or None for no reply.
Assistant = Callable[[ResidentTurn], Awaitable[str | tuple[str, str] | None]]


# --- the node ----------------------------------------------------------------------------


class EdgeNode:
    """Owns the recognizer, the translator and every task; ``async with`` or ``aclose()``."""

    def __init__(self, cfg: EdgeConfig, sink: EventSink, *, assistant: Assistant | None = None,
                 engine: WhisperEngine | None = None, models: str | os.PathLike | None = None,
                 speech: bool = True):
        # speech=False: typed turns and translation only (no Whisper loaded).
        self.cfg, self.sink, self.assistant, self.speech = cfg, sink, assistant, speech
        self.models = models_dir(models or cfg.models_dir)
        self.engine = engine
        self._own_engine = engine is None
        self.recognizer: StreamingRecognizer | None = None
        self.translation: TranslationService | None = None
        self.tasks = Supervisor(f"edge-node-{cfg.device}", logger=log,
                                context={"device": cfg.device})
        self._format_errors = 0
        self.status: dict[str, Any] = {"asr": "starting", "translation": "starting"}

    async def __aenter__(self) -> EdgeNode:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self.speech:
            await self._start_asr()
        else:
            self.status["asr"] = "off"
        await self._start_translation()
        await self._emit("status", {"site": self.cfg.site, "device": self.cfg.device,
                                    "kind": self.cfg.kind, "languages": self.cfg.languages,
                                    **self.status})
        a = self.cfg.audio
        if not self.speech:
            return  # no recognizer: nothing would listen to the audio
        if a.source == "file" and a.path:
            self.run_source(FileSource(a.path, realtime=a.realtime))
        elif a.source == "mic":
            self.run_source(MicSource(a.device))

    async def _start_asr(self) -> None:
        try:
            if self.engine is None:
                self.engine = WhisperEngine.from_models_dir(self.models, self.cfg.asr)
                await self.engine.aload()
            self.engine.check_languages(self.cfg.languages)
        except EDGE_ERRORS as exc:
            if self._own_engine and self.engine is not None:
                await asyncio.to_thread(self.engine.close)
            self.engine = None
            self.status["asr"] = "unavailable"
            await self._error("asr", exc)
            return
        self.recognizer = StreamingRecognizer(self.engine, self.cfg.asr,
                                              languages=self.cfg.languages)
        await self.recognizer.__aenter__()
        self.tasks.spawn(self._consume(self.recognizer), "asr-events")
        self.status["asr"] = "ready"

    async def reload_asr(self) -> bool:
        """Try again after a failed start (e.g. once `baton models install-defaults` ran)."""
        if self.recognizer is None:
            await self._start_asr()
        return self.recognizer is not None

    async def _start_translation(self) -> None:
        t = self.cfg.translation
        if not t.enabled:
            self.status["translation"] = "disabled"
            return
        try:
            translator = await asyncio.to_thread(ArgosTranslator, argos_dir(self.models),
                                                 pivot=self.cfg.pivot, threads=t.threads)
        except EDGE_ERRORS as exc:
            self.status["translation"] = "unavailable"
            await self._error("translation", exc)
            return
        phrasebook = None
        if t.phrasebook:
            try:
                phrasebook = await asyncio.to_thread(Phrasebook.load, t.phrasebook)
            except TranslationError as exc:
                await self._error("translation", exc)
        self.translation = TranslationService(translator, cache_size=t.cache_size,
                                              phrasebook=phrasebook)
        self.status["translation"] = "ready" if translator.pairs else \
            "phrasebook only" if phrasebook is not None else "no packages"

    async def aclose(self) -> None:
        await self.tasks.aclose()
        if self.recognizer is not None:
            await self.recognizer.aclose()
        if self.translation is not None:
            await self.translation.aclose()
        if self._own_engine and self.engine is not None:
            await asyncio.to_thread(self.engine.close)

    # --- audio in ----------------------------------------------------------------------

    def run_source(self, source: AudioSource) -> asyncio.Task:
        return self.tasks.spawn(self._pump(source), f"audio-{source.name}")

    def attach_track(self, track: Any) -> asyncio.Task:
        """Recognize an aiortc audio track (the telepresence peer calls this)."""
        return self.run_source(TrackSource(track))

    async def feed(self, frame: AudioFrame) -> bool:
        """One frame; a bad frame is reported and dropped. Returns whether it was used."""
        if self.recognizer is None:
            return False
        try:
            await self.recognizer.feed(frame)
            return True
        except AudioFormatError as exc:
            self._format_errors += 1
            if self._format_errors == 1 or self._format_errors % 500 == 0:
                await self._error("audio", exc, count=self._format_errors)
            return False

    async def _pump(self, source: AudioSource) -> None:
        try:
            if self.recognizer is None:
                await self._emit("edge_error", {
                    "component": "asr", "code": "asr_unavailable",
                    "message": f"audio from {source.name} ignored: speech recognition is not "
                               "running (see the earlier error)"})
                return
            async for frame in source.frames():
                await self.feed(frame)
        except AudioError as exc:
            await self._error("audio", exc, source=source.name)
        finally:
            await source.aclose()
            if self.recognizer is not None:
                await self.recognizer.flush()

    # --- turns -------------------------------------------------------------------------

    async def submit_text(self, text: str, language: str) -> None:
        """A typed turn (kiosk keyboard): handled like a spoken final."""
        await self._resident_turn(text, language, None, {})

    async def _consume(self, rec: StreamingRecognizer) -> None:
        async for ev in rec.events():
            if isinstance(ev, Final):
                await self._resident_turn(ev.text, ev.language, ev.confidence,
                                          dict(ev.timings))
            elif isinstance(ev, Partial):
                await self._emit("caption", {"utterance": ev.utterance, "language": ev.language,
                                             "stable": ev.stable, "unstable": ev.unstable,
                                             "start": ev.start, "end": ev.end})

    async def translate(self, text: str, src: str, dst: str) -> tuple[str | None, float]:
        """(translation, ms); None when the languages match or there is no translator (a
        failure is reported as an ``edge_error`` event, never raised)."""
        out, ms, _ = await self.translate_or_why(text, src, dst)
        return out, ms

    async def translate_or_why(self, text: str, src: str, dst: str
                               ) -> tuple[str | None, float, str | None]:
        """(translation, ms, why not): ``why not`` is set when the languages differ and no
        translation came back."""
        if src.split("-")[0] == dst.split("-")[0]:
            return None, 0.0, None
        if self.translation is None:
            return None, 0.0, f"no translation models on this device ({src}→{dst})"
        try:
            result = await self.translation.translate(text, src, dst)
        except TranslationError as exc:
            await self._error("translation", exc)
            return None, 0.0, f"no translation {src}→{dst}: {exc}"
        if not result.text.strip():
            return None, result.ms, f"the translation {src}→{dst} came back empty"
        return result.text, result.ms, None

    async def _resident_turn(self, text: str, language: str, confidence: float | None,
                             timings: dict[str, float]) -> None:
        pivot = self.cfg.pivot
        translated, ms, why_not = await self.translate_or_why(text, language, pivot)
        timings["translate_ms"] = round(ms, 2)
        await self._emit("turn", {
            "speaker": "resident", "language": language, "text": text,
            "translated": translated, "translated_language": pivot if translated else None,
            "untranslated": why_not, "confidence": confidence, "timings": timings})
        if self.assistant is None:
            return
        turn = ResidentTurn(text, language, translated if translated is not None else text,
                            pivot if translated is not None else language, confidence, timings,
                            untranslated=why_not)
        t0 = time.perf_counter()
        try:
            reply = await self.assistant(turn)
        except Exception as exc:
            await self._emit("edge_error", {"component": "assistant", "code": "assistant_failed",
                                            "message": f"assistant hook failed: {exc}"})
            return
        if not reply:
            return
        assistant_ms = (time.perf_counter() - t0) * 1000
        reply, reply_lang = reply if isinstance(reply, tuple) else (reply, turn.pivot_language)
        back, ms = await self.translate(reply, reply_lang, language)
        await self._emit("turn", {
            "speaker": "ai", "language": reply_lang, "text": reply,
            "translated": back, "translated_language": language if back else None,
            "confidence": None,
            "timings": {"assistant_ms": round(assistant_ms, 2), "translate_ms": round(ms, 2)}})

    # --- events ------------------------------------------------------------------------

    async def _emit(self, type: str, payload: dict[str, Any]) -> None:
        try:
            await self.sink.emit(type, payload)
        except Exception:  # noqa: BLE001 - a sink failure is logged; the node goes on
            log.exception("event sink failed", extra={"event": type})

    async def _error(self, component: str, exc: Exception, **extra: Any) -> None:
        code = exc.reason if isinstance(exc, BatonError) else "error"
        log.warning("edge error", extra={"component": component, "code": code,
                                         "error": str(exc)})
        await self._emit("edge_error", {"component": component, "code": code,
                                        "message": str(exc), **extra})


# --- the command ----------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", dest="edge_config", required=True,
                   help="the device's edge config, e.g. config/edge/robot-1.yaml")
    p.add_argument("--models-dir", default=None, help="models directory (overrides the "
                   "config and $BATON_MODELS_DIR)")
    p.add_argument("--audio-file", default=None, help="use this file as the audio source")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--print-events", action="store_true", help="print events as JSON lines")
    from edge.station import add_station_arguments

    add_station_arguments(p)


def run_cli(args) -> int:
    from common.config import ConfigError

    try:
        cfg = load_edge_config(args.edge_config)
    except ConfigError as exc:
        print(f"baton edge: invalid configuration: {exc}", flush=True)
        return 2
    if args.audio_file:
        cfg.audio = AudioConfig(source="file", path=args.audio_file, realtime=True)
    if args.router:
        from edge.station import run_station

        return run_station(cfg, args)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        sink = LogSink(cfg.redact_pii, print_json=args.print_events)
        async with EdgeNode(cfg, sink, models=args.models_dir) as node:
            log.info("edge running", extra={"site": cfg.site, "device": cfg.device,
                                            **node.status})
            try:
                await asyncio.wait_for(stop.wait(), args.seconds)
            except TimeoutError:
                pass

    asyncio.run(main())
    return 0
