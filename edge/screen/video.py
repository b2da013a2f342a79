"""The worker's video and audio from the edge's aiortc peer to the resident's page: a second,
loopback RTCPeerConnection fed by ``aiortc.contrib.media.MediaRelay`` subscriptions of the
tracks the peer receives (docs/decisions/0006-resident-page-video.md says why, with figures).

The edge makes the offer with every candidate gathered (aiortc does not trickle) and sends it
over the page's WebSocket; the page answers once its own gathering is complete. Closing the
connection ends the page's tracks: the page then removes the video element's source, so no
frozen frame stays on screen.
"""

from __future__ import annotations

import contextlib
import logging

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamTrack

log = logging.getLogger("baton.edge.screen")


class LoopbackVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder without its temporal denoiser and at a faster speed: the frames
    were already through a codec and the hop is loopback, so quality is not the limit —
    2.6 instead of 4.5 ms of CPU per 640×480 frame (docs/decisions/0006). aiortc has no
    per-connection encoder options: the options are adjusted on the codec context it
    creates, before that context is opened."""

    _LOOPBACK = {"noise-sensitivity": "0", "cpu-used": "-12"}

    @property
    def codec(self):  # type: ignore[override]
        ctx = self.__dict__.get("_ctx")
        if ctx is not None and not ctx.is_open:
            opts = dict(ctx.options)
            if opts and any(opts.get(k) != v for k, v in self._LOOPBACK.items()):
                ctx.options = {**opts, **self._LOOPBACK}
        return ctx

    @codec.setter
    def codec(self, value) -> None:
        self.__dict__["_ctx"] = value


def _use_loopback_encoder(sender: RTCRtpSender) -> None:
    # aiortc 1.16 creates the sender's encoder lazily unless one is there (private name).
    if hasattr(sender, "_RTCRtpSender__encoder"):
        sender._RTCRtpSender__encoder = LoopbackVp8Encoder()


class PageVideo:
    def __init__(self, tracks: list[MediaStreamTrack]):
        self.tracks = tracks  # relay subscriptions: stopping them leaves the source alone
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def offer(self) -> str:
        for track in self.tracks:
            tr = self.pc.addTransceiver(track, direction="sendonly")
            if track.kind == "video":  # VP8 only, with the loopback encoder
                caps = RTCRtpSender.getCapabilities("video")
                tr.setCodecPreferences([c for c in caps.codecs
                                        if c.mimeType.lower() in ("video/vp8", "video/rtx")])
                _use_loopback_encoder(tr.sender)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def aclose(self) -> None:
        for track in self.tracks:
            track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
