"""Edge WebRTC cost and speed: the edge peer in this process, a simulated worker in another.

    .venv/bin/python benchmarks/telepresence_edge.py [--sessions 10] [--seconds 5] [--loopback]

The worker runs in a child process (this file with ``--worker``) so that the edge's CPU is
measured alone (psutil, this process's CPU time over the window / wall time). Signaling is
JSON lines over the child's stdin/stdout. ICE uses the machine's own address as in production;
``--loopback`` applies the test-only aioice patch instead.

Measured:
- connect_ms: edge ``start()`` → connection "connected" (ICE + DTLS), p50/p95 over sessions;
- first_frame_ms: edge ``start()`` → the worker decodes the edge's first video frame (the
  same monotonic clock in both processes), p50/p95;
- edge_fps: frame rate of the edge's 640×480 test pattern as decoded by the worker;
- edge_cpu_cores: the edge process's CPU over the window, both ways (edge sends 640×480
  video + audio and decodes the worker's 640×480 video + audio: a real session), and
  edge_cpu_cores_send_only (the worker sends nothing).

The yardstick, in the same run and alternated with the edge's sessions: a bare aiortc pair
(a plain ``RTCPeerConnection`` here sending the same 640×480 test pattern, a plain one in the
worker process receiving it; same signaling pipe, no data channels, no audio, no device):
``bare_first_frame_p50_ms``/``_p95_ms`` and ``ratio_p50``/``ratio_p95`` (edge / bare).

Human-readable lines first; the last line is one JSON object. Target: edge_fps >= 15 at
edge_cpu_cores <= 1; first frame p95 <= 2x the bare pair's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from edge.device import DeviceRunner, SafetyLimits, SimulatedRobot  # noqa: E402
from edge.webrtc import MediaPeer, RecordingDisplay, open_local_media  # noqa: E402
from edge.webrtc.signaling import SignalingClosed  # noqa: E402
from edge.webrtc.warmup import warm_media  # noqa: E402


def _loopback() -> None:
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


class QueueSignaler:
    """Signaling whose outgoing messages go through ``send_line`` and incoming arrive in a
    queue fed by the process's reader."""

    def __init__(self, send_line):
        self.inbox: asyncio.Queue = asyncio.Queue()
        self._send_line = send_line

    async def send(self, message: dict) -> None:
        await self._send_line({"signal": message})

    async def receive(self) -> dict:
        msg = await self.inbox.get()
        if msg is None:
            raise SignalingClosed("session ended")
        return msg


# -- the bare aiortc pair ---------------------------------------------------------------------

class BarePeer:
    """A plain RTCPeerConnection: offers the test pattern, or answers and notes the first
    decoded frame (``time.monotonic()``, the clock MediaStats uses)."""

    def __init__(self, send_line, offer: bool):
        from aiortc import RTCPeerConnection

        from edge.webrtc.media import TestPatternTrack

        self.pc, self._send_line = RTCPeerConnection(), send_line
        self.first_frame_at: float | None = None
        self._tasks: list[asyncio.Task] = []
        if offer:
            self.pc.addTrack(TestPatternTrack())
        else:
            self.pc.on("track", lambda track: self._tasks.append(
                asyncio.get_running_loop().create_task(self._drain(track))))

    async def _drain(self, track) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()

    async def offer(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self._send_line({"bare": {"sdp": self.pc.localDescription.sdp, "type": "offer"}})

    async def on_description(self, desc: dict) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(**desc))
        if desc["type"] == "offer":
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self._send_line({"bare": {"sdp": self.pc.localDescription.sdp,
                                            "type": "answer"}})

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


# -- worker (child process) -----------------------------------------------------------------

async def worker_main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def send_line(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    peer: MediaPeer | None = None
    sig: QueueSignaler | None = None
    bare: BarePeer | None = None
    await send_line({"ready": True})  # imports done: sessions time the peers, not start-up
    while line := await reader.readline():
        msg = json.loads(line)
        if "signal" in msg and sig is not None:
            sig.inbox.put_nowait(msg["signal"])
        elif "bare" in msg:
            bare = BarePeer(send_line, offer=False)
            await bare.on_description(msg["bare"])
        elif msg.get("cmd") == "bare_stats" and bare is not None:
            await send_line({"stats": {"first_frame_at": bare.first_frame_at}})
        elif msg.get("cmd") == "bare_close" and bare is not None:
            await bare.aclose()
            bare = None
            await send_line({"closed": True})
        elif msg.get("cmd") == "open":
            sig = QueueSignaler(send_line)
            media = open_local_media("test", "tone") if msg["send_video"] else None
            peer = MediaPeer(sig, role="answer", media=media, display=RecordingDisplay(),
                             name="worker")
            await peer.start()
        elif msg.get("cmd") == "stats" and peer is not None:
            s = peer.stats()
            await send_line({"stats": {"frames": s.video_frames, "fps": s.fps,
                                       "first_frame_at": s.first_frame_at,
                                       "width": s.width, "height": s.height}})
        elif msg.get("cmd") == "close" and peer is not None:
            sig.inbox.put_nowait(None)
            await peer.aclose()
            peer = sig = None
            await send_line({"closed": True})
        elif msg.get("cmd") == "quit":
            break
    if peer is not None:
        await peer.aclose()


# -- edge (this process) ----------------------------------------------------------------------

class WorkerProcess:
    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.sig: QueueSignaler | None = None
        self.bare: BarePeer | None = None
        self.replies: asyncio.Queue = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def send_line(self, obj: dict) -> None:
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.proc.stdin.drain()

    async def _read(self) -> None:
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            if "signal" in msg:
                if self.sig is not None:
                    self.sig.inbox.put_nowait(msg["signal"])
            elif "bare" in msg:
                if self.bare is not None:
                    await self.bare.on_description(msg["bare"])
            else:
                self.replies.put_nowait(msg)

    async def ask(self, cmd: dict) -> dict:
        await self.send_line(cmd)
        return await asyncio.wait_for(self.replies.get(), 10)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.send_line({"cmd": "quit"})
            await asyncio.wait_for(self.proc.wait(), 5)
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def session(worker: WorkerProcess, send_video: bool):
    worker.sig = QueueSignaler(worker.send_line)
    await worker.send_line({"cmd": "open", "send_video": send_video})
    robot = SimulatedRobot(limits=SafetyLimits(command_timeout_s=1.0))
    async with DeviceRunner(robot) as runner:
        edge = MediaPeer(worker.sig, role="offer", media=open_local_media("test", "tone"),
                         display=RecordingDisplay(), device=runner, name="edge")
        try:
            yield edge
        finally:
            await edge.aclose()
            worker.sig.inbox.put_nowait(None)
            await worker.ask({"cmd": "close"})
            worker.sig = None


async def first_frame(worker: WorkerProcess, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = (await worker.ask({"cmd": "stats"}))["stats"]
        if st["first_frame_at"] is not None:
            return st["first_frame_at"]
        await asyncio.sleep(0.01)
    raise TimeoutError("the worker decoded no frame")


async def bare_first_frame(worker: WorkerProcess, timeout: float = 10.0) -> float:
    """One session of the bare pair: start → first frame decoded by the worker, in ms."""
    worker.bare = BarePeer(worker.send_line, offer=True)
    started = time.monotonic()  # as the edge's: after the RTCPeerConnection exists
    try:
        await worker.bare.offer()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = (await worker.ask({"cmd": "bare_stats"}))["stats"]["first_frame_at"]
            if at is not None:
                return (at - started) * 1000
            await asyncio.sleep(0.01)
        raise TimeoutError("the bare pair decoded no frame")
    finally:
        await worker.bare.aclose()
        worker.bare = None
        await worker.ask({"cmd": "bare_close"})


async def measure_window(worker: WorkerProcess, edge: MediaPeer, seconds: float) -> dict:
    await asyncio.sleep(1.0)  # past the encoder's start-up
    me = psutil.Process()
    t0, c0 = time.monotonic(), sum(me.cpu_times()[:2])
    f0 = (await worker.ask({"cmd": "stats"}))["stats"]["frames"]
    await asyncio.sleep(seconds)
    st = (await worker.ask({"cmd": "stats"}))["stats"]
    t1, c1 = time.monotonic(), sum(me.cpu_times()[:2])
    return {"fps": (st["frames"] - f0) / (t1 - t0), "cores": (c1 - c0) / (t1 - t0),
            "size": f"{st['width']}x{st['height']}", "edge_recv": edge.stats()}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def main(args) -> dict:
    if args.loopback:
        _loopback()
    if not args.cold:
        # As ``baton edge`` does at start (edge/station.py): the first session starts warm.
        print(f"media stack warmed in {warm_media() * 1000:.0f} ms")
    cmd = [sys.executable, __file__, "--worker"] + (["--loopback"] if args.loopback else []) \
        + (["--cold"] if args.cold else [])
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    worker = WorkerProcess(proc)
    try:
        await asyncio.wait_for(worker.replies.get(), 60)  # {"ready": true}
        connect, first, bare = [], [], []
        for i in range(args.sessions):
            if i % 2:  # alternated, each side first every other round
                bare.append(await bare_first_frame(worker))
            async with session(worker, send_video=True) as edge:
                await edge.start()
                connect.append(await edge.wait_connected(10))
                first.append((await first_frame(worker) - edge.started_at) * 1000)
            if not i % 2:
                bare.append(await bare_first_frame(worker))
        print(f"connect_ms p50 {pct(connect, .5):.0f} p95 {pct(connect, .95):.0f}; "
              f"first_frame_ms p50 {pct(first, .5):.0f} p95 {pct(first, .95):.0f} "
              f"({args.sessions} sessions)")
        print("connect_ms per session: " + " ".join(f"{c:.0f}" for c in connect))
        print("first_frame_ms per session: " + " ".join(f"{c:.0f}" for c in first))
        print(f"bare aiortc pair first_frame_ms p50 {pct(bare, .5):.0f} "
              f"p95 {pct(bare, .95):.0f}: " + " ".join(f"{c:.0f}" for c in bare))
        async with session(worker, send_video=True) as edge:
            await edge.start()
            await edge.wait_connected(10)
            both = await measure_window(worker, edge, args.seconds)
        r = both["edge_recv"]
        print(f"both ways: edge video at worker {both['fps']:.1f} fps {both['size']}, "
              f"edge decodes {r.fps:.1f} fps {r.width}x{r.height}, "
              f"edge CPU {both['cores']:.3f} cores")
        async with session(worker, send_video=False) as edge:
            await edge.start()
            await edge.wait_connected(10)
            send = await measure_window(worker, edge, args.seconds)
        print(f"send only: {send['fps']:.1f} fps {send['size']}, "
              f"edge CPU {send['cores']:.3f} cores")
    finally:
        await worker.aclose()
    return {
        "edge_fps": round(both["fps"], 1),
        "edge_cpu_cores": round(both["cores"], 3),
        "edge_cpu_cores_send_only": round(send["cores"], 3),
        "edge_fps_send_only": round(send["fps"], 1),
        "connect_ms": round(statistics.median(connect), 1),
        "connect_p95_ms": round(pct(connect, .95), 1),
        "first_frame_p50_ms": round(pct(first, .5), 1),
        "first_frame_p95_ms": round(pct(first, .95), 1),
        "bare_first_frame_p50_ms": round(pct(bare, .5), 1),
        "bare_first_frame_p95_ms": round(pct(bare, .95), 1),
        "ratio_p50": round(pct(first, .5) / pct(bare, .5), 2),
        "ratio_p95": round(pct(first, .95) / pct(bare, .95), 2),
        "loadavg_1m": round(__import__("os").getloadavg()[0], 2),
        "resolution": "640x480",
        "sessions": args.sessions, "warmed": not args.cold,
        "cpus": psutil.cpu_count(),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--loopback", action="store_true",
                    help="ICE on 127.0.0.1 only (aioice patch, as in the tests)")
    ap.add_argument("--cold", action="store_true",
                    help="skip the edge's media warm-up (to see the cold-start tail)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        if a.loopback:
            _loopback()
        if not a.cold:  # the receiving side warm too: the bare pair goes first each round
            warm_media()
        asyncio.run(worker_main())
    else:
        print(json.dumps(asyncio.run(main(a))))
