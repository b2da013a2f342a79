"""The worker's video and audio from the edge's aiortc peer to the resident's page: a second,
loopback RTCPeerConnection fed by ``aiortc.contrib.media.MediaRelay`` subscriptions of the
tracks the peer receives (docs/decisions/0005-resident-page-video.md says why, with figures).

The edge makes the offer with every candidate gathered (aiortc does not trickle) and sends it
over the page's WebSocket; the page answers once its own gathering is complete. Closing the
connection ends the page's tracks: the page then removes the video element's source, so no
frozen frame stays on screen.
"""

from __future__ import annotations

import contextlib
import logging

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

log = logging.getLogger("baton.edge.screen")


class PageVideo:
    def __init__(self, tracks: list[MediaStreamTrack]):
        self.tracks = tracks  # relay subscriptions: stopping them leaves the source alone
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def offer(self) -> str:
        for track in self.tracks:
            self.pc.addTransceiver(track, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def aclose(self) -> None:
        for track in self.tracks:
            track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
