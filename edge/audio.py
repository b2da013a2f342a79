"""Audio frames on the hot path, their format checks, and resampling to 16 kHz mono.

Everything downstream of an audio source (VAD, Whisper) sees ``AudioFrame``: float32 mono
samples at 16 kHz in [-1, 1], stamped with their position in the stream (in samples), so that
segmentation depends on stream time only and a file fed faster than real time segments
exactly like the same audio heard live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from common.errors import BatonError

SAMPLE_RATE = 16_000


class AudioError(BatonError):
    """Audio that cannot be used. ``reason`` is stable and goes into error events."""

    reason = "audio_error"


class AudioFormatError(AudioError):
    reason = "audio_format"


class EmptyAudioError(AudioError):
    reason = "audio_empty"


class AudioSourceError(AudioError):
    reason = "audio_source"


@dataclass(slots=True)
class AudioFrame:
    """A run of 16 kHz mono float32 samples.

    ``start`` is the index of the first sample in the stream; ``arrived`` is the monotonic
    clock when the frame reached the edge (for latency measurements).
    """

    samples: np.ndarray
    start: int
    sample_rate: int = SAMPLE_RATE
    arrived: float = field(default_factory=time.monotonic)

    @property
    def end(self) -> int:
        return self.start + len(self.samples)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def check_frame(frame: AudioFrame) -> None:
    """Raise AudioFormatError unless the frame is what the recognizer expects."""
    if frame.sample_rate != SAMPLE_RATE:
        raise AudioFormatError(
            f"audio frame at {frame.sample_rate} Hz, the recognizer needs {SAMPLE_RATE} Hz: "
            "resample it first (edge.audio.Resampler; the audio sources of edge.audio_sources "
            "do it for you)")
    s = frame.samples
    if not isinstance(s, np.ndarray) or s.ndim != 1 or s.dtype != np.float32:
        shape = getattr(s, "shape", None)
        dtype = getattr(s, "dtype", type(s).__name__)
        raise AudioFormatError(
            f"audio frame samples must be a 1-D float32 numpy array (mono), got {dtype} "
            f"with shape {shape}: convert with edge.audio.to_mono_float32")


def to_mono_float32(samples: np.ndarray) -> np.ndarray:
    """int16/int32/float arrays, (n,) or (n, channels) or planar (channels, n) -> mono float32.

    A 2-D array is taken as (n, channels) when its second axis is the short one.
    """
    a = np.asarray(samples)
    if a.ndim == 2:
        a = a.mean(axis=1 if a.shape[1] <= a.shape[0] else 0)
    elif a.ndim != 1:
        raise AudioFormatError(f"cannot read audio with shape {a.shape}: expected (n,) or "
                               "(n, channels)")
    if a.dtype == np.int16:
        return (a.astype(np.float32) / 32768.0)
    if a.dtype == np.int32:
        return (a.astype(np.float32) / 2147483648.0)
    if a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    raise AudioFormatError(f"unsupported sample type {a.dtype}: use int16, int32 or float")


class Resampler:
    """Any rate/layout/format (PyAV frames or numpy) -> 16 kHz mono float32, stateful.

    One instance per stream: the resampler keeps filter state between calls, so frames must
    be given in order. Built on PyAV's libswresample (the same library aiortc uses).
    """

    def __init__(self) -> None:
        import av

        self._av = av
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def resample_av(self, frame) -> np.ndarray:
        """Resample one ``av.AudioFrame`` (pass None to flush at end of stream)."""
        out = self._resampler.resample(frame)
        if not out:
            return np.zeros(0, np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.float32)

    def resample_array(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Resample a numpy block (mono or (n, channels)) given at ``rate`` Hz."""
        if rate <= 0 or rate > 384_000:
            raise AudioFormatError(f"sample rate {rate} Hz is not a usable audio rate")
        mono = to_mono_float32(samples)
        if rate == SAMPLE_RATE:
            return mono
        if len(mono) == 0:
            return mono
        frame = self._av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt",
                                                 layout="mono")
        frame.sample_rate = rate
        return self.resample_av(frame)

    def flush(self) -> np.ndarray:
        return self.resample_av(None)


def frames_from_array(samples: np.ndarray, start: int = 0,
                      frame_ms: int = 20) -> list[AudioFrame]:
    """Split 16 kHz mono float32 samples into frames of ``frame_ms`` (tests, benchmarks)."""
    n = SAMPLE_RATE * frame_ms // 1000
    return [AudioFrame(samples[i:i + n], start + i) for i in range(0, len(samples), n)]
