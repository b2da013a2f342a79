"""Streaming recognition: frames in; partial hypotheses and final transcripts out.

    frames -> Silero VAD (its own thread) -> Endpointer -> utterance audio
           -> WhisperEngine (its own thread): partials while speaking, a final at the end

Latency: when the speaker has been quiet for the padding (``pause``), the utterance is
decoded right away, speculatively; if the silence lasts until ``end`` that result is the
final, so the final arrives about ``min_silence_ms`` after the end of speech instead of
``min_silence_ms`` + decode time. Speech that resumes simply makes the result unused.

Memory is bounded for any length of stream: audio is kept only for the open utterance
(at most ``max_utterance_s``, then it is cut) plus a short pre-roll; events go through a
bounded queue (partials are dropped when the consumer lags, finals wait).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from common.tasks import Supervisor
from edge.asr.config import ASRConfig
from edge.asr.engine import Hypothesis, WhisperEngine
from edge.asr.guard import Evidence, reject_reason
from edge.asr.stable import StablePrefix
from edge.asr.vad import Endpointer, SileroVAD, VadEvent
from edge.audio import SAMPLE_RATE, AudioFrame, check_frame

log = logging.getLogger("baton.edge.asr")


@dataclass(slots=True)
class Partial:
    utterance: int
    stable: str
    unstable: str
    language: str
    start: float          # stream seconds
    end: float

    @property
    def text(self) -> str:
        sep = "" if not self.stable or not self.unstable or self.language in ("ja", "zh") \
            else " "
        return f"{self.stable}{sep}{self.unstable}"


@dataclass(slots=True)
class Final:
    utterance: int
    text: str
    language: str
    language_prob: float
    confidence: float
    start: float
    end: float
    timings: dict[str, float] = field(default_factory=dict)
    forced: bool = False      # cut at max_utterance_s
    speculative: bool = False  # the decode started before the endpoint was confirmed


@dataclass(slots=True)
class Rejected:
    utterance: int
    reason: str
    text: str
    start: float
    end: float


ASREvent = Partial | Final | Rejected


class _Samples:
    """Samples indexed by absolute stream position; old ones are dropped explicitly."""

    def __init__(self) -> None:
        self.chunks: deque[np.ndarray] = deque()
        self.base = 0      # stream index of chunks[0][0]
        self.end = 0

    def append(self, a: np.ndarray) -> None:
        if len(a):
            self.chunks.append(a)
            self.end += len(a)

    def drop_before(self, index: int) -> None:
        while self.chunks and self.base + len(self.chunks[0]) <= index:
            self.base += len(self.chunks.popleft())

    def slice(self, a: int, b: int) -> np.ndarray:
        a, b = max(a, self.base), min(b, self.end)
        if b <= a:
            return np.zeros(0, np.float32)
        out, pos = [], self.base
        for c in self.chunks:
            lo, hi = max(a, pos), min(b, pos + len(c))
            if lo < hi:
                out.append(c[lo - pos:hi - pos])
            pos += len(c)
            if pos >= b:
                break
        return np.concatenate(out)

    @property
    def size(self) -> int:
        return self.end - self.base


@dataclass(slots=True)
class _Utterance:
    id: int
    start: int
    stable: StablePrefix = field(default_factory=StablePrefix)
    next_partial: int = 0
    spec: dict[int, asyncio.Future] = field(default_factory=dict)
    partial: asyncio.Future | None = None


@dataclass(slots=True)
class _FinalJob:
    utt: _Utterance
    event: VadEvent
    future: asyncio.Future
    speculative: bool
    eos_arrived: float
    decided_at: float


class StreamingRecognizer:
    """One audio stream. ``async with`` it (or ``aclose()``); ``feed`` frames in order."""

    def __init__(self, engine: WhisperEngine, cfg: ASRConfig, *,
                 languages: Sequence[str] | None = None, language: str | None = None,
                 queue_size: int = 256):
        self.engine, self.cfg = engine, cfg
        self.languages = list(languages) if languages else None
        self.language = language
        self._vad = SileroVAD()
        self._vad_executor = ThreadPoolExecutor(1, thread_name_prefix="vad")
        self._endpointer = Endpointer(cfg.vad)
        self._samples = _Samples()
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=512)
        self._preroll = (cfg.vad.speech_pad_ms + cfg.vad.min_speech_ms + 200) * SAMPLE_RATE \
            // 1000
        self._pos = 0
        self._utt: _Utterance | None = None
        self._next_id = 0
        self._inflight: set[asyncio.Future] = set()
        self._jobs: asyncio.Queue[_FinalJob | None] = asyncio.Queue()
        self._events: asyncio.Queue[ASREvent | None] = asyncio.Queue(maxsize=queue_size)
        self._finalizer: asyncio.Task | None = None
        self.tasks = Supervisor("asr", logger=log)  # the finalizer: a failure is logged
        self._closed = False
        self._finished = False
        self.sticky: str | None = None
        self.stats = {"audio_s": 0.0, "vad_s": 0.0, "decode_s": 0.0, "decodes": 0,
                      "partials": 0, "finals": 0, "rejected": 0, "dropped_partials": 0,
                      "fallbacks": 0}

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> StreamingRecognizer:
        self._start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def _start(self) -> None:
        if self._finalizer is None:
            self._finalizer = self.tasks.spawn(self._finalize_loop(), "finalizer")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fut in list(self._inflight):
            fut.cancel()
        await self.tasks.aclose()
        await asyncio.to_thread(self._vad_executor.shutdown, True, cancel_futures=True)
        self._put_nowait(None)

    # --- input ---------------------------------------------------------------------------

    async def feed(self, frame: AudioFrame) -> None:
        """Add one frame. Raises AudioFormatError for frames that are not 16 kHz mono
        float32 (the stream is unaffected: later good frames are used as usual)."""
        if self._closed or self._finished:
            raise RuntimeError("recognizer is closed")
        check_frame(frame)
        if len(frame.samples) == 0:
            return
        self._start()
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        probs = await loop.run_in_executor(self._vad_executor, self._vad.process,
                                           frame.samples)
        self.stats["vad_s"] += time.perf_counter() - t0
        self._samples.append(frame.samples)
        self._pos += len(frame.samples)
        self._arrivals.append((self._pos, frame.arrived))
        self.stats["audio_s"] = self._pos / SAMPLE_RATE
        for ev in self._endpointer.push(probs):
            self._on_vad(ev)
        self._maybe_partial()
        keep = self._utt.start if self._utt else self._pos - self._preroll
        self._samples.drop_before(min(keep, self._pos - self._preroll))

    async def flush(self) -> None:
        """A source ended: finalize the open utterance, wait until its final is out, and
        start afresh for the next source (the recognizer stays open)."""
        if self._closed or self._finished:
            return
        self._start()
        for ev in self._endpointer.flush():
            self._on_vad(ev)
        await self._jobs.join()
        await asyncio.get_running_loop().run_in_executor(self._vad_executor, self._vad.reset)
        self._endpointer = Endpointer(self.cfg.vad, offset=self._pos)

    async def finish(self) -> None:
        """End of stream: finalize what is open and wait for every final to be emitted."""
        if self._finished or self._closed:
            return
        self._start()
        for ev in self._endpointer.flush():
            self._on_vad(ev)
        self._finished = True
        await self._jobs.put(None)
        if self._finalizer is not None:
            await self._finalizer
        self._put_nowait(None)

    async def events(self) -> AsyncIterator[ASREvent]:
        while True:
            ev = await self._events.get()
            if ev is None:
                return
            yield ev

    # --- endpointing ---------------------------------------------------------------------

    def _arrival(self, sample: int) -> float:
        for end, t in self._arrivals:
            if end > sample:
                return t
        return time.monotonic()

    def _on_vad(self, ev: VadEvent) -> None:
        if ev.kind == "start":
            self._next_id += 1
            first = self.cfg.first_partial_ms * SAMPLE_RATE // 1000
            self._utt = _Utterance(self._next_id, ev.sample, next_partial=self._pos + first)
            return
        utt = self._utt
        if utt is None:
            return
        if ev.kind == "pause":
            if utt.partial is not None and not utt.partial.done():
                utt.partial.cancel()  # not started yet: make room for the speculative final
            utt.spec[ev.sample] = self._decode(utt.start, ev.sample, final=True)
        elif ev.kind == "end":
            fut = utt.spec.pop(ev.sample, None)
            speculative = fut is not None
            if fut is None:
                fut = self._decode(utt.start, ev.sample, final=True)
            for other in utt.spec.values():
                other.cancel()
            utt.spec.clear()
            eos = ev.sample if ev.forced else ev.silence_at
            self._jobs.put_nowait(_FinalJob(utt, ev, fut, speculative, self._arrival(eos),
                                            time.monotonic()))
            self._utt = None

    # --- decoding ------------------------------------------------------------------------

    def _decode(self, a: int, b: int, *, final: bool) -> asyncio.Future:
        audio = self._samples.slice(a, b)
        fut = self.engine.submit(self.engine.decode, audio, languages=self.languages,
                                 language=self.language, final=final, sticky=self.sticky)
        self._inflight.add(fut)
        fut.add_done_callback(self._settled)
        return fut

    def _settled(self, fut: asyncio.Future) -> None:
        self._inflight.discard(fut)
        if not fut.cancelled() and fut.exception() is None:
            self.stats["decodes"] += 1
            self.stats["decode_s"] += fut.result().decode_ms / 1000
            self.stats["fallbacks"] += fut.result().fallback

    def _maybe_partial(self) -> None:
        utt = self._utt
        if (utt is None or self._endpointer.silence_at is not None
                or self._pos < utt.next_partial or not self._jobs.empty()
                or (utt.partial is not None and not utt.partial.done())):
            return
        utt.next_partial = self._pos + self.cfg.partial_interval_ms * SAMPLE_RATE // 1000
        fut = self._decode(utt.start, self._pos, final=False)
        utt.partial = fut
        end = self._pos
        fut.add_done_callback(lambda f, u=utt, e=end: self._on_partial(u, e, f))

    def _on_partial(self, utt: _Utterance, end: int, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None or self._utt is not utt:
            return
        hyp: Hypothesis = fut.result()
        if not hyp.text or hyp.no_speech_prob > self.cfg.guard.no_speech_threshold:
            return
        stable, unstable = utt.stable.update(hyp.text, hyp.language)
        self.stats["partials"] += 1
        self._put_nowait(Partial(utt.id, stable, unstable, hyp.language,
                                 utt.start / SAMPLE_RATE, end / SAMPLE_RATE))

    def _put_nowait(self, ev: ASREvent | None) -> None:
        try:
            self._events.put_nowait(ev)
        except asyncio.QueueFull:
            if ev is None:  # make room for the end marker
                self._events.get_nowait()
                self._events.put_nowait(None)
            else:
                self.stats["dropped_partials"] += 1

    async def _finalize_loop(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                if job is None:
                    return
                try:
                    hyp: Hypothesis = await job.future
                except asyncio.CancelledError:
                    if self._closed:
                        raise
                    continue
                except Exception as exc:  # noqa: BLE001 - a bad utterance must not stop the stream
                    log.warning("utterance decode failed", extra={"error": str(exc)})
                    continue
                await self._emit_final(job, hyp)
            finally:
                self._jobs.task_done()

    async def _emit_final(self, job: _FinalJob, hyp: Hypothesis) -> None:
        utt, ev = job.utt, job.event
        start, end = utt.start / SAMPLE_RATE, ev.sample / SAMPLE_RATE
        reason = reject_reason(Evidence(hyp.text, hyp.avg_logprob, hyp.no_speech_prob,
                                        hyp.compression_ratio, ev.speech_ratio),
                               self.cfg.guard)
        if reason is not None:
            self.stats["rejected"] += 1
            log.info("utterance rejected", extra={"reason": reason, "utterance": utt.id,
                                                  "pii": {"text": hyp.text}})
            await self._events.put(Rejected(utt.id, reason, hyp.text, start, end))
            return
        if hyp.duration >= self.cfg.min_lid_s and hyp.language_prob >= 0.5:
            self.sticky = hyp.language
        now = time.monotonic()
        timings = {
            "audio_ms": round((ev.sample - utt.start) / SAMPLE_RATE * 1000, 1),
            "decode_ms": round(hyp.decode_ms, 1),
            "endpoint_ms": float(self.cfg.vad.min_silence_ms),
            "eos_to_final_ms": round((now - job.eos_arrived) * 1000, 1),
            "wait_after_endpoint_ms": round((now - job.decided_at) * 1000, 1),
        }
        self.stats["finals"] += 1
        await self._events.put(Final(utt.id, hyp.text, hyp.language, hyp.language_prob,
                                     hyp.confidence, round(start, 3), round(end, 3), timings,
                                     forced=ev.forced, speculative=job.speculative))
