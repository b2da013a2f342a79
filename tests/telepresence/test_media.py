"""End to end: an aiortc "browser" on the worker WebSocket and the edge's MediaPeer on
MqttSignaler, through a real router and Mosquitto, connect and exchange video both ways."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from edge.device import DeviceRunner, SafetyLimits, SimulatedRobot
from edge.webrtc import MediaPeer, RecordingDisplay, SignalingClosed, open_local_media
from tests.telepresence.conftest import (
    connected_case,
    device_link,
    recv_until,
    worker_socket,
)
from tests.webrtc.conftest import loopback_ice  # noqa: F401 (fixture)


class WsSignaler:
    """What a worker page does: signals as ``signal`` messages on its WebSocket."""

    def __init__(self, ws, case_id: str):
        self.ws, self.case_id = ws, case_id

    async def send(self, message: dict) -> None:
        try:
            await self.ws.send(json.dumps({"type": "signal", "case_id": self.case_id,
                                           "signal": message}))
        except ConnectionClosed:
            raise SignalingClosed("worker socket closed") from None

    async def receive(self) -> dict:
        while True:
            try:
                msg = json.loads(await self.ws.recv())
            except ConnectionClosed:
                raise SignalingClosed("worker socket closed") from None
            if msg["type"] == "signal" and msg["case_id"] == self.case_id:
                return msg["signal"]
            assert msg["type"] != "error", msg


@pytest.mark.slow
async def test_browser_and_edge_exchange_video_through_the_relay(router, broker, loopback_ice):
    async with device_link(broker.port, "robot-1") as link, \
            worker_socket(router, "aiko") as ws:
        case_id = await connected_case(router, ws, "aiko")
        await ws.send(json.dumps({"type": "signal_start", "case_id": case_id}))
        await recv_until(ws, "signal_session")
        signaler = await link.next_session(5)
        # The configured ICE servers are example.org placeholders (checked in
        # test_relay); over loopback the peers use host candidates only.
        robot = DeviceRunner(SimulatedRobot(limits=SafetyLimits(command_timeout_s=0.3)),
                             tick_s=0.01)
        edge = MediaPeer(signaler, role="answer", media=open_local_media("test", "tone"),
                         display=RecordingDisplay(), device=robot, name="edge")
        worker = MediaPeer(WsSignaler(ws, case_id), role="offer",
                           media=open_local_media("test", "tone"), display=RecordingDisplay(),
                           name="worker")
        async with robot:
            try:
                await edge.start()
                await worker.start()
                await worker.wait_connected(15)
                await edge.wait_connected(15)
                await worker.wait_channels_open(10)
                result = await worker.command({"type": "state"})
                assert result.ok
                await asyncio.sleep(2.0)
                for peer in (edge, worker):
                    s = peer.stats()
                    assert s.video_frames >= 15, (peer.name, s)
                    assert (s.width, s.height) == (640, 480)
            finally:
                await worker.aclose()
                await edge.aclose()
