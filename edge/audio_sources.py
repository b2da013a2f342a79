"""Where audio comes from: a file (PyAV), a WebRTC track (aiortc), the system microphone, or
a numpy array. Each source yields 16 kHz mono ``AudioFrame``s with stream positions.

Decoding runs in a worker thread; pacing (``realtime=True``) plays a file as a live stream,
which is how latency is measured. Sources are async iterables with ``aclose()``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.audio import (
    SAMPLE_RATE,
    AudioFrame,
    AudioSourceError,
    EmptyAudioError,
    Resampler,
)


class AudioSource(Protocol):
    name: str

    def frames(self) -> AsyncIterator[AudioFrame]: ...

    async def aclose(self) -> None: ...


class _Framer:
    """Cuts resampled blocks into frames of equal size, numbering samples from 0."""

    def __init__(self, frame_ms: int):
        self.size = SAMPLE_RATE * frame_ms // 1000
        self.pending = np.zeros(0, np.float32)
        self.position = 0

    def push(self, block: np.ndarray) -> list[AudioFrame]:
        buf = np.concatenate([self.pending, block]) if len(self.pending) else block
        n = len(buf) // self.size * self.size
        out = []
        for i in range(0, n, self.size):
            out.append(AudioFrame(np.ascontiguousarray(buf[i:i + self.size]), self.position))
            self.position += self.size
        self.pending = buf[n:]
        return out

    def flush(self) -> list[AudioFrame]:
        if not len(self.pending):
            return []
        frame = AudioFrame(self.pending, self.position)
        self.position += len(self.pending)
        self.pending = np.zeros(0, np.float32)
        return [frame]


class _Pacer:
    """Releases frames no faster than real time when enabled."""

    def __init__(self, realtime: bool):
        self.realtime = realtime
        self.t0: float | None = None

    async def wait(self, frame: AudioFrame) -> None:
        if not self.realtime:
            return
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        due = self.t0 + frame.start / SAMPLE_RATE
        if due > now:
            await asyncio.sleep(due - now)
        frame.arrived = time.monotonic()


def _decode_blocks(path: Path, block_s: float = 0.5) -> Iterator[np.ndarray]:
    """Decode any container/codec PyAV knows into 16 kHz mono float32 blocks."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise AudioSourceError(f"cannot open audio file {path}: {exc}. Use a WAV, FLAC, MP3, "
                               "OGG or other audio file ffmpeg can read") from None
    try:
        streams = container.streams.audio
        if not streams:
            raise AudioSourceError(f"{path} has no audio stream: give a file with sound in it")
        resampler = Resampler()
        chunk, have = [], 0
        try:
            for frame in container.decode(streams[0]):
                block = resampler.resample_av(frame)
                chunk.append(block)
                have += len(block)
                if have >= block_s * SAMPLE_RATE:
                    yield np.concatenate(chunk)
                    chunk, have = [], 0
        except av.error.FFmpegError as exc:
            raise AudioSourceError(f"cannot decode {path}: {exc}: the file is damaged or "
                                   "not audio") from None
        chunk.append(resampler.flush())
        tail = np.concatenate(chunk) if chunk else np.zeros(0, np.float32)
        if len(tail):
            yield tail
    finally:
        container.close()


class FileSource:
    """Frames from an audio file; ``realtime`` plays it at speaking speed."""

    def __init__(self, path: str | os.PathLike, *, realtime: bool = False, frame_ms: int = 20):
        self.path = Path(path)
        self.name = f"file:{self.path.name}"
        self.realtime = realtime
        self.frame_ms = frame_ms
        self._closed = False

    async def frames(self) -> AsyncIterator[AudioFrame]:
        if not self.path.is_file():
            raise AudioSourceError(f"audio file {self.path} does not exist: check the path")
        blocks = _decode_blocks(self.path)
        framer, pacer, total = _Framer(self.frame_ms), _Pacer(self.realtime), 0
        sentinel = object()
        while not self._closed:
            block = await asyncio.to_thread(next, blocks, sentinel)
            if block is sentinel:
                break
            total += len(block)
            for frame in framer.push(block):
                await pacer.wait(frame)
                yield frame
        if total == 0:
            raise EmptyAudioError(f"{self.path} contains no audio samples: check the "
                                  "recording (is the microphone muted?)")
        for frame in framer.flush():
            await pacer.wait(frame)
            yield frame

    async def aclose(self) -> None:
        self._closed = True


class ArraySource:
    """Frames from samples in memory at any rate (tests, benchmarks, the transcribe tool)."""

    def __init__(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *,
                 realtime: bool = False, frame_ms: int = 20, name: str = "array"):
        self.samples, self.sample_rate = samples, sample_rate
        self.realtime, self.frame_ms, self.name = realtime, frame_ms, name
        self._closed = False

    async def frames(self) -> AsyncIterator[AudioFrame]:
        if len(self.samples) == 0:
            raise EmptyAudioError(f"{self.name}: no audio samples")
        mono = Resampler().resample_array(self.samples, self.sample_rate) \
            if self.sample_rate != SAMPLE_RATE else np.asarray(self.samples, np.float32)
        framer, pacer = _Framer(self.frame_ms), _Pacer(self.realtime)
        for frame in framer.push(mono) + framer.flush():
            if self._closed:
                return
            await pacer.wait(frame)
            yield frame

    async def aclose(self) -> None:
        self._closed = True


class TrackSource:
    """Frames from an aiortc audio track (``MediaStreamTrack`` of kind "audio").

    The track is drained continuously (an undrained aiortc track piles up frames).
    """

    def __init__(self, track: Any, *, frame_ms: int = 20, name: str = "webrtc"):
        if getattr(track, "kind", "audio") != "audio":
            raise AudioSourceError(f"track of kind {track.kind!r} given as audio: pass the "
                                   "peer connection's audio track")
        self.track, self.frame_ms, self.name = track, frame_ms, name
        self._closed = False

    async def frames(self) -> AsyncIterator[AudioFrame]:
        resampler, framer = Resampler(), _Framer(self.frame_ms)
        while not self._closed:
            try:
                frame = await self.track.recv()
            except Exception as exc:  # aiortc raises MediaStreamError when the track ends
                if type(exc).__name__ == "MediaStreamError":
                    break
                raise AudioSourceError(f"WebRTC audio track failed: {exc}") from exc
            for out in framer.push(resampler.resample_av(frame)):
                yield out

    async def aclose(self) -> None:
        self._closed = True
        stop = getattr(self.track, "stop", None)
        if stop is not None:
            stop()


class MicSource:
    """The system microphone through PyAV's capture devices (PulseAudio, else ALSA)."""

    def __init__(self, device: str = "default", backend: str | None = None, *,
                 frame_ms: int = 20):
        self.device, self.backend, self.frame_ms = device, backend, frame_ms
        self.name = f"mic:{device}"
        self._closed = False
        self._container = None

    def _open(self):
        import av

        errors = []
        for backend in ([self.backend] if self.backend else ["pulse", "alsa"]):
            try:
                return av.open(self.device, format=backend)
            except Exception as exc:  # noqa: BLE001 - report every backend's reason below
                errors.append(f"{backend}: {exc}")
        raise AudioSourceError(f"no microphone {self.device!r} ({'; '.join(errors)}): plug one "
                               "in, or set audio.source to file or webrtc in the edge config")

    async def frames(self) -> AsyncIterator[AudioFrame]:
        self._container = await asyncio.to_thread(self._open)
        stream = self._container.streams.audio[0]
        packets = self._container.decode(stream)
        resampler, framer = Resampler(), _Framer(self.frame_ms)
        sentinel = object()
        while not self._closed:
            frame = await asyncio.to_thread(next, packets, sentinel)
            if frame is sentinel:
                break
            for out in framer.push(resampler.resample_av(frame)):
                yield out

    async def aclose(self) -> None:
        self._closed = True
        if self._container is not None:
            await asyncio.to_thread(self._container.close)
