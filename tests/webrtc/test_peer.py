"""The edge WebRTC peer against a simulated worker, both in this process over loopback."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import psutil
import pytest

from edge.device import KioskDriver, SafetyLimits, SimulatedRobot
from edge.webrtc import (
    Caption,
    CaptionText,
    MemorySignaler,
    PeerError,
    RecordingDisplay,
    open_local_media,
    read_frame_counter,
)
from edge.webrtc.media import MediaSourceError, _color_bars
from tests.webrtc.conftest import open_session


def _queues(peer) -> list[int]:
    # aiortc's remote tracks hold decoded frames in ``_queue`` until someone calls recv()
    return [t._queue.qsize() for t in peer.received_tracks]


def _cpu_seconds(exclude_threads: tuple[str, ...] = ()) -> float:
    """Process CPU time minus the named threads' (psutil thread ids are native ids)."""
    p = psutil.Process()
    t = p.cpu_times()
    total = t.user + t.system
    names = {th.native_id: th.name for th in threading.enumerate()}
    for th in p.threads():
        if names.get(th.id, "").startswith(exclude_threads):
            total -= th.user_time + th.system_time
    return total


@pytest.mark.slow
async def test_video_and_audio_flow_both_ways_at_640x480_and_are_drained(session):
    edge, worker = session.edge, session.worker
    await asyncio.sleep(1.0)
    first = {p.name: p.stats() for p in (edge, worker)}
    await asyncio.sleep(1.5)
    for peer in (edge, worker):
        s = peer.stats()
        print(f"{peer.name}: {s.video_frames} frames, {s.fps:.1f} fps, {s.width}x{s.height}, "
              f"{s.audio_seconds:.2f} s audio, queues {_queues(peer)}")
        assert (s.width, s.height) == (640, 480)
        assert s.fps >= 15
        assert s.video_frames >= first[peer.name].video_frames + 20  # still rising
        assert s.audio_seconds >= 2.0
        assert len(peer.received_tracks) == 2
        assert max(_queues(peer)) <= 3  # drained: nothing piles up
    frame = edge.display.last_frame
    assert frame is not None and read_frame_counter(frame) > 30
    print(f"connect {session.connect_ms:.0f} ms")


@pytest.mark.slow
async def test_edge_cpu_for_sending_640x480(loopback_ice):
    """One way (edge → worker). Edge CPU = process CPU minus the receiver's decoder threads;
    the worker's packet handling stays in, so this is an upper bound."""
    async with open_session(worker_sends=False) as s:
        await asyncio.sleep(0.5)
        c0, w0, f0 = _cpu_seconds(("video-decoder", "audio-decoder")), time.monotonic(), \
            s.worker.stats().video_frames
        await asyncio.sleep(3.0)
        c1, w1, f1 = _cpu_seconds(("video-decoder", "audio-decoder")), time.monotonic(), \
            s.worker.stats().video_frames
        cores = (c1 - c0) / (w1 - w0)
        fps = (f1 - f0) / (w1 - w0)
        print(f"edge sending 640x480: {fps:.1f} fps delivered, {cores:.3f} cores")
        assert fps >= 15
        assert cores < 1.0
        assert s.edge.received_tracks == []  # the worker sent nothing


async def test_captions_flow_both_ways(session):
    got_edge: list[Caption] = []
    got_worker: list[Caption] = []
    session.edge.on_caption = got_edge.append
    session.worker.on_caption = got_worker.append
    assert session.edge.send_caption(Caption(
        id="r1", speaker="resident", text="I need to renew my permit", lang="en",
        original=CaptionText(text="Necesito renovar mi permiso", lang="es")))
    assert session.worker.send_caption(Caption(
        id="w1", speaker="worker", text="Claro, le ayudo", lang="es",
        original=CaptionText(text="Sure, I can help", lang="en"), final=False))
    for _ in range(100):
        if got_edge and got_worker:
            break
        await asyncio.sleep(0.01)
    assert got_worker[0].original.text == "Necesito renovar mi permiso"
    assert got_edge[0].text == "Claro, le ayudo" and got_edge[0].final is False
    # the device display shows what the worker says
    assert session.edge.display.captions[-1] == ("Claro, le ayudo", "es", "worker")


async def test_device_command_reaches_the_robot_and_stops_by_itself(session):
    robot = session.driver
    res = await session.worker.command({"type": "move", "linear": 5.0, "angular": 0.0})
    assert res.ok and res.detail["clamped"] and res.detail["linear"] == 0.5
    assert robot.state().linear == 0.5
    await asyncio.sleep(0.5)  # timeout is 0.3 s, no renewal
    s = robot.state()
    assert s.linear == 0.0 and s.stops == 1
    assert s.pose.x == pytest.approx(0.15, abs=1e-6)  # 0.3 s at 0.5 m/s exactly
    # the worker sees the state the edge pushes
    await asyncio.sleep(0.15)
    assert session.worker.device_state["linear"] == 0.0
    # e-stop over the channel latches
    assert (await session.worker.command({"type": "estop", "reason": "worker"})).ok
    res = await session.worker.command({"type": "move", "linear": 0.1})
    assert not res.ok and res.error == "emergency_stop"


async def test_renewals_keep_the_robot_moving(session):
    robot = session.driver
    assert (await session.worker.command({"type": "move", "linear": 0.2})).ok
    for _ in range(4):
        await asyncio.sleep(0.15)
        assert (await session.worker.command({"type": "renew"})).ok
    assert robot.state().linear == 0.2
    await asyncio.sleep(0.45)
    assert robot.state().linear == 0.0


async def test_bad_device_messages_get_an_error_and_change_nothing(session):
    errors = []
    ch = session.worker.device_channel

    @ch.on("message")
    def collect(raw):  # a second listener, beside the peer's own
        msg = json.loads(raw)
        if msg["type"] == "error":
            errors.append(msg)

    # a failing callback must not take the session down (aiortc would drop DTLS)
    session.worker.on_device_state = lambda state: 1 / 0
    for raw in ("not json", json.dumps({"type": "command", "id": "x"}), "x" * 20_000,
                json.dumps({"type": "nope"})):
        ch.send(raw)
    res = await session.worker.command({"type": "warp", "speed": 9})
    assert not res.ok and res.error == "invalid_command"
    await asyncio.sleep(0.1)
    assert len(errors) == 4 and all(e["error"] == "invalid_message" for e in errors)
    assert session.driver.state().linear == 0.0
    assert (await session.worker.command({"type": "turn", "angular": 0.5})).ok


async def test_closing_the_session_stops_the_robot_at_once(loopback_ice):
    robot = SimulatedRobot(limits=SafetyLimits(command_timeout_s=10.0))
    async with open_session(robot) as s:
        assert (await s.worker.command({"type": "move", "linear": 0.3})).ok
        await s.worker.aclose()
        for _ in range(100):
            if robot.state().linear == 0.0:
                break
            await asyncio.sleep(0.01)
        assert robot.state().linear == 0.0  # long before the 10 s watchdog


async def test_kiosk_refuses_motion_over_the_channel(loopback_ice):
    async with open_session(KioskDriver(), edge_role="offer") as s:  # the edge may offer too
        res = await s.worker.command({"type": "move", "linear": 0.3})
        assert not res.ok and res.error == "motion_not_supported"
        assert (await s.worker.command({"type": "display", "text": "Welcome"})).ok
        assert s.driver.state().display.text == "Welcome"


async def test_worker_without_device_rejects_commands(session):
    cid = "e-1"
    fut = asyncio.get_running_loop().create_future()
    session.edge._pending[cid] = fut
    session.edge.device_channel.send(json.dumps(
        {"type": "command", "id": cid, "command": {"type": "stop"}}))
    with pytest.raises(PeerError, match="no_device"):
        await asyncio.wait_for(fut, 2)


class TrickleSignaler:
    """Sends the offer without candidates, then each candidate on its own, as a browser
    trickling ICE would; junk goes first to show it is ignored."""

    def __init__(self, inner: MemorySignaler):
        self.inner = inner

    async def send(self, message: dict) -> None:
        if message.get("type") != "offer":
            return await self.inner.send(message)
        await self.inner.send({"type": "hello"})
        await self.inner.send({"type": "offer", "sdp": 42})
        lines = message["sdp"].splitlines()
        cands, mid, index, out = [], None, -1, []
        for line in lines:
            if line.startswith("m="):
                index += 1
            if line.startswith("a=mid:"):
                mid = line[6:]
            if line.startswith("a=candidate:"):
                cands.append((line[2:], mid, index))
            elif line != "a=end-of-candidates":
                out.append(line)
        await self.inner.send({"type": "offer", "sdp": "\r\n".join(out) + "\r\n"})
        for cand, m, i in cands:
            await self.inner.send({"type": "candidate", "candidate": cand, "sdpMid": m,
                                   "sdpMLineIndex": i})
        await self.inner.send({"type": "candidate", "candidate": None})

    async def receive(self) -> dict:
        return await self.inner.receive()


async def test_trickled_candidates_and_junk_signaling(loopback_ice):
    async with open_session(worker_signaler=TrickleSignaler) as s:
        assert (await s.worker.command({"type": "stop"})).ok
        assert s.connect_ms < 5000


async def test_media_file_source(loopback_ice, tmp_path):
    import av

    path = tmp_path / "clip.mp4"
    base = _color_bars(320, 240)
    with av.open(str(path), "w") as out:
        st = out.add_stream("mpeg4", rate=30)
        st.width, st.height, st.pix_fmt = 320, 240, "yuv420p"
        for i in range(30):
            img = base.copy()
            img[100:140, i * 8:i * 8 + 40] = 235
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="yuv420p")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    with pytest.raises(MediaSourceError, match="cannot open"):
        open_local_media(str(tmp_path / "missing.mp4"), "none")
    media = open_local_media(str(path), "silence")
    async with open_session(edge_media=media) as s:
        await asyncio.sleep(1.0)
        st = s.worker.stats()
        assert st.video_frames >= 10 and (st.width, st.height) == (320, 240)


def test_recording_display_fps_uses_the_last_two_seconds():
    now = [0.0]
    d = RecordingDisplay(clock=lambda: now[0])

    class F:
        width, height = 640, 480

    for i in range(61):
        now[0] = i / 30
        d.show_video(F())
    assert d.stats().fps == pytest.approx(30)
    now[0] += 10
    assert d.stats().fps == 0.0 and d.stats().video_frames == 61
