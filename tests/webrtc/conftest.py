"""Two aiortc peers in one process over loopback: an edge (with a simulated robot) and a
simulated worker.

aioice leaves 127.0.0.1 out of its host candidates; ``loopback_ice`` patches that for the
test only (never in product code), so no other interface is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from edge.device import DeviceDriver, DeviceRunner, SafetyLimits, SimulatedRobot
from edge.webrtc import MediaPeer, MemorySignaler, RecordingDisplay, open_local_media


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses",
                        lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@dataclass
class Session:
    edge: MediaPeer
    worker: MediaPeer
    driver: DeviceDriver
    runner: DeviceRunner
    edge_signaler: MemorySignaler
    worker_signaler: MemorySignaler
    connect_ms: float = 0.0


@contextlib.asynccontextmanager
async def open_session(driver: DeviceDriver | None = None, *, worker_sends: bool = True,
                       edge_role: str = "answer", worker_signaler=None,
                       edge_media=None) -> AsyncIterator[Session]:
    driver = driver or SimulatedRobot(limits=SafetyLimits(command_timeout_s=0.3))
    es, ws = MemorySignaler.pair()
    runner = DeviceRunner(driver, tick_s=0.01)
    edge = MediaPeer(es, role=edge_role, media=edge_media or open_local_media("test", "tone"),
                     display=RecordingDisplay(), device=runner, name="edge",
                     state_interval_s=0.1)
    worker_media = open_local_media("test", "tone") if worker_sends else None
    worker = MediaPeer(worker_signaler(ws) if worker_signaler else ws,
                       role="offer" if edge_role == "answer" else "answer",
                       media=worker_media, display=RecordingDisplay(), name="worker")
    s = Session(edge, worker, driver, runner, es, ws)
    async with runner:
        try:
            await edge.start()
            await worker.start()
            s.connect_ms = await worker.wait_connected(10)
            await edge.wait_connected(10)
            await worker.wait_channels_open(10)
            await edge.wait_channels_open(10)
            yield s
        finally:
            await worker.aclose()
            await edge.aclose()


@pytest.fixture
async def session(loopback_ice) -> AsyncIterator[Session]:
    async with open_session() as s:
        yield s
