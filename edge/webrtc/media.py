"""What the edge sends: the device's camera and microphone, or stand-ins.

``open_local_media`` picks, per kind: a named source (a media file through aiortc's
``MediaPlayer``, looped; or a capture device such as ``/dev/video0``), a real device when
``"auto"`` finds one, otherwise a generated track — a 640×480 test pattern at 30 fps and a
tone (or silence). Generated tracks pace themselves on the wall clock like a camera would.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
from aiortc.mediastreams import (
    AUDIO_PTIME,
    MediaStreamError,
    MediaStreamTrack,
    VideoStreamTrack,
)
from av import AudioFrame, VideoFrame

from common.errors import BatonError

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000


class MediaSourceError(BatonError):
    reason = "media_source"


def _color_bars(width: int, height: int) -> np.ndarray:
    """A yuv420p image (rows: Y then U then V planes) of eight vertical colour bars."""
    # BT.601 YUV of white, yellow, cyan, green, magenta, red, blue, black
    bars = [(235, 128, 128), (210, 16, 146), (170, 166, 16), (145, 54, 34),
            (106, 202, 222), (81, 90, 240), (41, 240, 110), (16, 128, 128)]
    img = np.empty((height * 3 // 2, width), np.uint8)
    y, u, v = img[:height], img[height:height * 5 // 4], img[height * 5 // 4:]
    u = u.reshape(height // 2, width // 2)
    v = v.reshape(height // 2, width // 2)
    for i, (yy, uu, vv) in enumerate(bars):
        a, b = i * width // 8, (i + 1) * width // 8
        y[:, a:b] = yy
        u[:, a // 2:b // 2] = uu
        v[:, a // 2:b // 2] = vv
    return img


class TestPatternTrack(VideoStreamTrack):
    """Colour bars with a moving square and a frame counter stripe, at ``fps``.

    The moving square gives the encoder honest work; the counter stripe (16 binary blocks
    across the top) lets a receiver read which frame it is looking at.
    """

    __test__ = False  # not a pytest class

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30):
        super().__init__()
        if width % 16 or height % 16:
            raise ValueError("width and height must be multiples of 16")
        self.width, self.height, self.fps = width, height, fps
        self._base = _color_bars(width, height)
        self._n = 0
        self._start: float | None = None
        self._clock_rate = 90_000

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            wait = self._start + self._n / self.fps - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        img = self._base.copy()
        w, h, n = self.width, self.height, self._n
        side = h // 6
        x = (n * 8) % (w - side)
        y0 = h // 2 - side // 2
        img[y0:y0 + side, x:x + side] = 235
        block = w // 16
        for bit in range(16):
            img[0:16, bit * block:(bit + 1) * block] = 235 if (n >> bit) & 1 else 16
        frame = VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = n * self._clock_rate // self.fps
        frame.time_base = fractions.Fraction(1, self._clock_rate)
        self._n += 1
        return frame


def read_frame_counter(frame: VideoFrame) -> int:
    """The counter drawn by ``TestPatternTrack`` (after a lossy codec: threshold at mid-grey)."""
    y = frame.to_ndarray(format="gray")
    block = y.shape[1] // 16
    n = 0
    for bit in range(16):
        if y[4:12, bit * block + 4:(bit + 1) * block - 4].mean() > 128:
            n |= 1 << bit
    return n


class ToneTrack(MediaStreamTrack):
    """48 kHz mono s16 in 20 ms frames: a sine at ``hz`` (0 for silence)."""

    kind = "audio"

    def __init__(self, hz: float = 440.0, level: float = 0.1):
        super().__init__()
        self.hz, self.level = hz, level
        self._samples = int(AUDIO_PTIME * AUDIO_RATE)
        self._pos = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            wait = self._start + self._pos / AUDIO_RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        n = self._samples
        if self.hz > 0:
            t = (np.arange(n) + self._pos) / AUDIO_RATE
            pcm = (np.sin(2 * math.pi * self.hz * t) * self.level * 32767).astype(np.int16)
        else:
            pcm = np.zeros(n, np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._pos
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._pos += n
        return frame


@dataclass
class LocalMedia:
    """The tracks to send, and what must be stopped with them."""

    video: MediaStreamTrack | None
    audio: MediaStreamTrack | None
    describe: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        for t in (self.video, self.audio):
            if t is not None:
                t.stop()


def _player(source: str, **kw):
    from aiortc.contrib.media import MediaPlayer

    try:
        return MediaPlayer(source, **kw)
    except Exception as e:  # PyAV raises many kinds (FileNotFoundError, av.error.*)
        raise MediaSourceError(f"cannot open media source {source!r}: {e}") from e


def open_local_media(video: str = "auto", audio: str = "tone", *, width: int = 640,
                     height: int = 480, fps: int = 30, camera: str = "/dev/video0") -> LocalMedia:
    """``video``: "auto" | "test" | "none" | a file or device path.
    ``audio``: "tone" | "silence" | "none" | a file path | "alsa:<device>" | "pulse:<device>".
    """
    describe: dict[str, str] = {}
    v: MediaStreamTrack | None = None
    a: MediaStreamTrack | None = None
    if video == "auto":
        video = camera if os.path.exists(camera) else "test"
    if video == "test":
        v = TestPatternTrack(width, height, fps)
    elif video.startswith("/dev/video"):
        p = _player(video, format="v4l2",
                    options={"video_size": f"{width}x{height}", "framerate": str(fps)})
        v = p.video
    elif video != "none":
        p = _player(video, loop=True)
        v = p.video
        if audio == "file":
            a = p.audio
    describe["video"] = video
    if audio in ("tone", "silence"):
        a = ToneTrack(hz=440.0 if audio == "tone" else 0.0)
    elif audio.startswith(("alsa:", "pulse:")):
        fmt, dev = audio.split(":", 1)
        a = _player(dev or "default", format=fmt).audio
    elif audio not in ("none", "file"):
        a = _player(audio, loop=True).audio
    describe["audio"] = audio
    if v is None and video not in ("none",):
        raise MediaSourceError(f"media source {video!r} has no video stream")
    log.info("edge media opened", extra=describe)
    return LocalMedia(v, a, describe)
