"""Where the worker's video and audio go on the device: its display (and speaker).

Every display records statistics, so the same numbers exist with or without a screen:
decoded frames, frame rate over the last two seconds, the last frame's size, audio received.
``make_display()`` opens a real window (Tk) only when there is an X display; otherwise the
recording display keeps the latest frame (one, never a backlog) for screenshots and tests.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from av import AudioFrame, VideoFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MediaStats:
    video_frames: int
    fps: float  # over the last ~2 s
    width: int | None
    height: int | None
    first_frame_at: float | None  # monotonic
    last_frame_at: float | None
    audio_frames: int
    audio_seconds: float


class Display(Protocol):
    def show_video(self, frame: VideoFrame) -> None: ...

    def play_audio(self, frame: AudioFrame) -> None: ...

    def show_caption(self, text: str, lang: str | None, speaker: str) -> None: ...

    def stats(self) -> MediaStats: ...

    def close(self) -> None: ...


class RecordingDisplay:
    """A display with no screen: counts, times and keeps the latest frame and captions."""

    def __init__(self, window_s: float = 2.0, clock=time.monotonic, keep_captions: int = 50):
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque(maxlen=1024)
        self._frames = 0
        self._first: float | None = None
        self._size: tuple[int, int] | None = None
        self._audio_frames = 0
        self._audio_seconds = 0.0
        self.last_frame: VideoFrame | None = None
        self.captions: deque[tuple[str, str | None, str]] = deque(maxlen=keep_captions)

    def show_video(self, frame: VideoFrame) -> None:
        now = self._clock()
        if self._first is None:
            self._first = now
        self._frames += 1
        self._times.append(now)
        self._size = (frame.width, frame.height)
        self.last_frame = frame

    def play_audio(self, frame: AudioFrame) -> None:
        self._audio_frames += 1
        if frame.sample_rate:
            self._audio_seconds += frame.samples / frame.sample_rate

    def show_caption(self, text: str, lang: str | None, speaker: str) -> None:
        self.captions.append((text, lang, speaker))

    def stats(self) -> MediaStats:
        now = self._clock()
        recent = [t for t in self._times if now - t <= self.window_s]
        fps = 0.0
        if len(recent) >= 2 and recent[-1] > recent[0]:
            fps = (len(recent) - 1) / (recent[-1] - recent[0])
        w, h = self._size or (None, None)
        return MediaStats(self._frames, fps, w, h, self._first,
                          self._times[-1] if self._times else None,
                          self._audio_frames, self._audio_seconds)

    def close(self) -> None:
        self.last_frame = None


def make_display(kind: str = "auto") -> Display:
    """``kind``: "auto" (a window if $DISPLAY is set and Tk works), "window" or "record"."""
    if kind == "record" or (kind == "auto" and not os.environ.get("DISPLAY")):
        return RecordingDisplay()
    try:
        from edge.webrtc.window import WindowDisplay

        return WindowDisplay()
    except Exception as e:
        if kind == "window":
            raise
        log.warning("edge display window unavailable, recording only", extra={"error": str(e)})
        return RecordingDisplay()
