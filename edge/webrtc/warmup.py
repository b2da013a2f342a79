"""Warm the media stack before the first session: its first session otherwise pays the
codec libraries' start-up (the first VP8 keyframe encode costs ~150 ms against ~30 ms
after, measured on the project's 2-core machine) and the first DTLS certificate (~30 ms
against <1 ms), which made the first sessions the first-frame tail (docs/benchmarks.md).

``warm_media()`` is blocking: run it in a thread (``asyncio.to_thread``) at start-up. It
encodes and decodes one 640×480 frame with each video codec aiortc negotiates and makes one
certificate; nothing is kept except what the libraries keep themselves.
"""

from __future__ import annotations

import fractions
import logging
import time

log = logging.getLogger(__name__)


def warm_media(width: int = 640, height: int = 480) -> float:
    """Returns the seconds it took. Never raises: a warm-up that fails only leaves the
    first session slower (logged)."""
    started = time.perf_counter()
    try:
        from aiortc import RTCCertificate
        from aiortc.codecs import get_decoder, get_encoder
        from aiortc.rtcrtpparameters import RTCRtpCodecParameters
        from av import VideoFrame

        from edge.webrtc.media import _color_bars

        image = _color_bars(width, height)
        for mime in ("video/VP8", "video/H264"):
            codec = RTCRtpCodecParameters(mimeType=mime, clockRate=90_000, payloadType=96)
            frame = VideoFrame.from_ndarray(image, format="yuv420p")
            frame.pts, frame.time_base = 0, fractions.Fraction(1, 90_000)
            packets, _ = get_encoder(codec).encode(frame, force_keyframe=True)
            decoder = get_decoder(codec)
            if mime == "video/VP8" and packets:
                from aiortc.codecs.vpx import vp8_depayload
                from aiortc.jitterbuffer import JitterFrame

                decoder.decode(JitterFrame(data=b"".join(vp8_depayload(p) for p in packets),
                                           timestamp=0))
        RTCCertificate.generateCertificate()
    except Exception:  # noqa: BLE001 - the sessions still work, only colder
        log.warning("warming the media stack failed; the first session starts cold",
                    exc_info=True)
    return time.perf_counter() - started
