"""Streaming voice activity detection and endpointing.

``SileroVAD`` runs faster-whisper's bundled Silero model (ONNX) window by window, carrying
its recurrent state, so probabilities equal those of a whole-file pass. ``Endpointer`` is a
pure state machine over those probabilities, in stream samples (never wall time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.asr.config import VADConfig
from edge.audio import SAMPLE_RATE

WINDOW = 512      # samples per Silero window at 16 kHz (32 ms)
CONTEXT = 64      # samples of the previous window the model sees


class SileroVAD:
    """Blocking: call ``process`` from a worker thread."""

    def __init__(self, session=None):
        if session is None:
            from faster_whisper.vad import get_vad_model

            session = get_vad_model().session  # cached; ONNX sessions are thread-safe
        self.session = session
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities for every full window completed by ``samples`` (may be empty)."""
        buf = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        n = len(buf) // WINDOW
        self._pending = buf[n * WINDOW:].copy()
        if n == 0:
            return np.zeros(0, np.float32)
        windows = buf[:n * WINDOW].reshape(n, WINDOW)
        out = np.empty(n, np.float32)
        for i in range(n):
            x = np.concatenate([self._context, windows[i]])[None, :]
            prob, self._h, self._c = self.session.run(
                None, {"input": x, "h": self._h, "c": self._c})
            out[i] = float(np.asarray(prob).reshape(-1)[0])
            self._context = windows[i, -CONTEXT:].copy()
        return out


@dataclass(slots=True, frozen=True)
class VadEvent:
    kind: str            # "start" | "pause" | "resume" | "end"
    sample: int          # start: utterance start; pause/end: utterance end (padded)
    forced: bool = False  # end: cut at max_utterance_s, speech goes on
    silence_at: int = 0   # pause/end: where the silence began
    speech_ratio: float = 1.0  # end: share of the utterance's windows that were speech


class Endpointer:
    """Speech start/end from window probabilities, in stream samples.

    Hysteresis: speech needs ``threshold``; it stops below ``negative``. ``pause`` is emitted
    once the silence has lasted the padding (the utterance's audio is then complete if the
    silence goes on): the recognizer decodes then, speculatively, and ``end`` confirms it.
    """

    def __init__(self, cfg: VADConfig, offset: int = 0):
        ms = SAMPLE_RATE // 1000
        self.cfg = cfg
        self.pad = cfg.speech_pad_ms * ms
        self.min_speech = cfg.min_speech_ms * ms
        self.min_silence = cfg.min_silence_ms * ms
        self.max_len = int(cfg.max_utterance_s * SAMPLE_RATE)
        self.position = offset       # samples consumed (stream index)
        self.in_speech = False
        self.candidate: int | None = None   # start of unconfirmed speech
        self.start = 0
        self.silence_at: int | None = None
        self.paused = False
        self.speech_windows = self.windows = 0

    def push(self, probs: np.ndarray) -> list[VadEvent]:
        events: list[VadEvent] = []
        cfg = self.cfg
        for p in probs:
            w0 = self.position
            self.position += WINDOW
            if not self.in_speech:
                if p >= cfg.threshold:
                    if self.candidate is None:
                        self.candidate = w0
                    if self.position - self.candidate >= self.min_speech:
                        self.in_speech = True
                        self.start = max(0, self.candidate - self.pad)
                        self.candidate = None
                        self.silence_at, self.paused = None, False
                        self.speech_windows = self.windows = 0
                        events.append(VadEvent("start", self.start))
                elif p < cfg.negative:
                    self.candidate = None
                continue
            self.windows += 1
            if p >= cfg.threshold:
                self.speech_windows += 1
            if p >= cfg.negative:
                if self.silence_at is not None and p >= cfg.threshold:
                    if self.paused:
                        events.append(VadEvent("resume", self.position))
                    self.silence_at, self.paused = None, False
            elif self.silence_at is None:
                self.silence_at = w0
            if self.silence_at is not None:
                quiet = self.position - self.silence_at
                end = self.silence_at + self.pad
                if not self.paused and quiet >= self.pad:
                    self.paused = True
                    events.append(VadEvent("pause", end, silence_at=self.silence_at))
                if quiet >= self.min_silence:
                    events.append(VadEvent("end", end, silence_at=self.silence_at,
                                           speech_ratio=self.speech_ratio))
                    self.in_speech, self.silence_at, self.paused = False, None, False
                    continue
            if self.position - self.start >= self.max_len:
                events.append(VadEvent("end", self.position, forced=True,
                                       silence_at=self.position,
                                       speech_ratio=self.speech_ratio))
                self.start = self.position
                self.silence_at, self.paused = None, False
                self.speech_windows = self.windows = 0
                events.append(VadEvent("start", self.start))
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: close an open utterance at what was heard."""
        if not self.in_speech:
            return []
        end = self.position if self.silence_at is None else min(self.position,
                                                                 self.silence_at + self.pad)
        self.in_speech = False
        return [VadEvent("end", end, silence_at=self.silence_at or self.position,
                         speech_ratio=self.speech_ratio)]

    @property
    def speech_ratio(self) -> float:
        return self.speech_windows / self.windows if self.windows else 1.0
