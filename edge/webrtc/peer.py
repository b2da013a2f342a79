"""A WebRTC peer on aiortc: local media out, remote media into a display, two data channels.

``MediaPeer`` is both ends of a telepresence session: the edge (with a ``DeviceRunner``,
which executes the commands arriving on the device channel) and, in tests and the demo, a
simulated worker (without one, which sends commands and awaits their results).

The peer owns its tasks — the signaling loop, one drain per received track, the device-state
pusher — and ``aclose()`` cancels and awaits them all. Received tracks are always drained
into the display: an undrained aiortc track queues decoded frames without bound.

Safety: when the device channel closes or the connection fails, the device stops at once;
the driver's own watchdog stops it anyway within its command timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from pydantic import ValidationError

from common.errors import BatonError
from common.tasks import Supervisor
from edge.device.runner import DeviceRunner
from edge.webrtc.channels import (
    CAPTIONS,
    DEVICE,
    MAX_MESSAGE_BYTES,
    Caption,
    Command,
    CommandResultMsg,
    DeviceStateMsg,
    ErrorMsg,
    device_adapter,
)
from edge.webrtc.display import Display, MediaStats, RecordingDisplay
from edge.webrtc.media import LocalMedia
from edge.webrtc.signaling import (
    Answer,
    Bye,
    Candidate,
    Offer,
    Signaler,
    SignalingClosed,
    parse_signal,
)

log = logging.getLogger(__name__)


class PeerError(BatonError):
    reason = "webrtc"


class PeerClosedError(PeerError):
    reason = "webrtc_closed"


def ice_servers_from_config(servers: list[dict[str, Any]]) -> list[RTCIceServer]:
    """``[{"urls": "stun:…" | [...], "username": …, "credential": …}]`` as in the browser."""
    return [RTCIceServer(urls=s["urls"], username=s.get("username"),
                         credential=s.get("credential")) for s in servers]


class MediaPeer:
    def __init__(self, signaler: Signaler, *, role: Literal["offer", "answer"] = "answer",
                 media: LocalMedia | None = None, display: Display | None = None,
                 device: DeviceRunner | None = None,
                 on_caption: Callable[[Caption], None] | None = None,
                 on_device_state: Callable[[dict[str, Any]], None] | None = None,
                 on_track: Callable[[MediaStreamTrack], None] | None = None,
                 ice_servers: list[dict[str, Any]] | None = None, name: str = "edge",
                 state_interval_s: float = 0.5, remote: str = "worker"):
        # ``remote``: who is at the other end (the session's worker id): the device's
        # runner reports an e-stop they send as theirs (DeviceRunner.on_estop).
        self.signaler = signaler
        self.remote = remote
        self.role = role
        self.media = media or LocalMedia(None, None)
        self.display: Display = display or RecordingDisplay()
        self.device = device
        self.on_caption = on_caption
        self.on_device_state = on_device_state
        self.on_track = on_track
        self.name = name
        self.state_interval_s = state_interval_s
        self.pc = RTCPeerConnection(RTCConfiguration(
            iceServers=ice_servers_from_config(ice_servers or [])))
        self.captions = self.pc.createDataChannel(CAPTIONS[0], negotiated=True, id=CAPTIONS[1])
        self.device_channel = self.pc.createDataChannel(DEVICE[0], negotiated=True,
                                                        id=DEVICE[1])
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()
        self.started_at: float | None = None
        self.connected_at: float | None = None
        self.device_state: dict[str, Any] | None = None
        self.received_tracks: list[MediaStreamTrack] = []
        # Received tracks go through a relay, so the display and others (the resident's
        # page, edge.screen.video) each get every frame without competing for recv().
        self.relay = MediaRelay()
        self.tasks = Supervisor(self.name, logger=log, context={"peer": self.name})
        self._pending: dict[str, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._wire()

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> MediaPeer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        self.started_at = time.monotonic()
        self.tasks.spawn(self._signal_loop(), "signal")
        if self.device is not None:
            self.tasks.spawn(self._push_state(), "device-state")
        if self.role == "offer":
            self._add_local_tracks()
            for kind, track in (("video", self.media.video), ("audio", self.media.audio)):
                if track is None:
                    self.pc.addTransceiver(kind, direction="recvonly")
            await self.pc.setLocalDescription(await self.pc.createOffer())
            await self.signaler.send({"type": "offer", "sdp": self.pc.localDescription.sdp})

    async def wait_connected(self, timeout: float = 10.0) -> float:
        """Milliseconds from ``start()`` to ICE+DTLS connected."""
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            raise PeerError(f"{self.name}: not connected after {timeout} s "
                            f"(state {self.pc.connectionState})") from None
        return (self.connected_at - self.started_at) * 1000

    async def wait_channels_open(self, timeout: float = 10.0) -> None:
        async def both() -> None:
            while not (self.captions.readyState == "open"
                       and self.device_channel.readyState == "open"):
                await asyncio.sleep(0.01)
        await asyncio.wait_for(both(), timeout)

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stop_device("peer closed")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.signaler.send({"type": "bye", "reason": "closed"}), 1)
        # Close before cancelling: a close already started by a remote "bye" in the signaling
        # task must finish (aiortc's second close() waits for the first one).
        await self.pc.close()  # ends received tracks: drains see MediaStreamError
        await self.tasks.aclose()  # a task's failure was logged when it ended
        self.media.stop()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(PeerClosedError("peer closed before the result came"))
        self._pending.clear()
        self.display.close()
        self.closed.set()

    def stats(self) -> MediaStats:
        return self.display.stats()

    def subscribe(self, kind: str) -> MediaStreamTrack | None:
        """Another consumer of the remote ``kind`` track (newest frame only, no backlog);
        stop it when done. None before that track arrived."""
        track = next((t for t in self.received_tracks if t.kind == kind), None)
        return None if track is None else self.relay.subscribe(track, buffered=False)

    # -- captions and commands ---------------------------------------------------------------

    def send_caption(self, caption: Caption) -> bool:
        return self._send(self.captions, caption.model_dump(exclude_none=True))

    async def command(self, command: dict[str, Any], timeout: float = 5.0) -> CommandResultMsg:
        """Worker side: send one device command and wait for the edge's result."""
        cid = f"{self.name}-{next(self._ids)}"
        fut = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        try:
            if not self._send(self.device_channel, Command(id=cid, command=command).model_dump()):
                raise PeerError("device channel is not open")
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(cid, None)

    # -- internals -----------------------------------------------------------------------------

    def _add_local_tracks(self) -> None:
        for track in (self.media.video, self.media.audio):
            if track is not None:
                self.pc.addTrack(track)

    def _wire(self) -> None:
        pc = self.pc

        @pc.on("connectionstatechange")
        def _state() -> None:
            st = pc.connectionState
            log.info("webrtc connection state", extra={"peer": self.name, "state": st})
            if st == "connected" and not self.connected.is_set():
                self.connected_at = time.monotonic()
                self.connected.set()
            elif st in ("failed", "closed"):
                self._stop_device(f"connection {st}")

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if self._closing:
                return
            self.received_tracks.append(track)
            self.tasks.spawn(self._drain(self.relay.subscribe(track)), f"drain-{track.kind}")
            if self.on_track is not None:
                self.on_track(track)

        # An exception escaping a data-channel handler tears down aiortc's whole DTLS
        # transport (media too), so handlers are guarded.
        self.captions.on("message", self._guard(self._on_caption_message))
        self.device_channel.on("message", self._guard(self._on_device_message))
        self.device_channel.on("close", lambda: self._stop_device("device channel closed"))

    def _guard(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        def guarded(raw: Any) -> None:
            try:
                handler(raw)
            except Exception:
                log.exception("data channel message handler failed", extra={"peer": self.name})
        return guarded

    def _send(self, channel: RTCDataChannel, obj: dict[str, Any]) -> bool:
        if channel.readyState != "open":
            return False
        channel.send(json.dumps(obj, separators=(",", ":")))
        return True

    def _stop_device(self, why: str) -> None:
        if self.device is not None:
            try:
                self.device.driver.stop()
            except Exception:
                log.exception("device stop failed", extra={"why": why})

    async def _drain(self, track: MediaStreamTrack) -> None:
        sink = self.display.show_video if track.kind == "video" else self.display.play_audio
        failures = 0
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            try:
                sink(frame)
            except Exception:  # keep draining whatever the display does
                failures += 1
                if failures == 1:
                    log.exception("display failed on a frame", extra={"kind": track.kind})

    async def _signal_loop(self) -> None:
        while True:
            try:
                raw = await self.signaler.receive()
            except SignalingClosed:
                return
            try:
                msg = parse_signal(raw)
            except ValidationError as e:
                log.warning("signaling message rejected",
                            extra={"peer": self.name, "error": str(e.errors()[:1])})
                continue
            try:
                await self._on_signal(msg)
            except Exception as e:  # a bad SDP must not end the loop
                log.warning("signaling message failed",
                            extra={"peer": self.name, "type": msg.type, "error": repr(e)})

    async def _on_signal(self, msg) -> None:
        pc = self.pc
        match msg:
            case Offer():
                await pc.setRemoteDescription(RTCSessionDescription(msg.sdp, "offer"))
                self._add_local_tracks()
                await pc.setLocalDescription(await pc.createAnswer())
                await self.signaler.send({"type": "answer", "sdp": pc.localDescription.sdp})
            case Answer():
                await pc.setRemoteDescription(RTCSessionDescription(msg.sdp, "answer"))
            case Candidate():
                if not msg.candidate:  # end of candidates
                    return
                sdp = msg.candidate.removeprefix("candidate:")
                cand = candidate_from_sdp(sdp)
                cand.sdpMid, cand.sdpMLineIndex = msg.sdpMid, msg.sdpMLineIndex
                await pc.addIceCandidate(cand)
            case Bye():
                log.info("webrtc bye", extra={"peer": self.name, "reason": msg.reason})
                self._stop_device("bye")
                await asyncio.shield(pc.close())

    def _decode(self, raw: Any) -> Any:
        if isinstance(raw, bytes) or len(raw) > MAX_MESSAGE_BYTES:
            raise ValueError("expected a JSON text message of at most "
                             f"{MAX_MESSAGE_BYTES} bytes")
        return json.loads(raw)

    def _on_caption_message(self, raw: Any) -> None:
        try:
            cap = Caption.model_validate(self._decode(raw))
        except (ValueError, ValidationError) as e:
            log.warning("caption rejected", extra={"peer": self.name, "error": str(e)[:200]})
            return
        self.display.show_caption(cap.text, cap.lang, cap.speaker)
        if self.on_caption is not None:
            self.on_caption(cap)

    def _on_device_message(self, raw: Any) -> None:
        try:
            msg = device_adapter.validate_python(self._decode(raw))
        except (ValueError, ValidationError) as e:
            self._send(self.device_channel, ErrorMsg(
                error="invalid_message", message=str(e)[:300]).model_dump(exclude_none=True))
            return
        match msg:
            case Command() if self.device is not None:
                res = self.device.execute(msg.command, by=self.remote, source="data_channel")
                self._send(self.device_channel,
                           CommandResultMsg(id=msg.id, **res.model_dump()).model_dump())
            case Command():
                self._send(self.device_channel, ErrorMsg(
                    id=msg.id, error="no_device", message="this peer drives no device"
                ).model_dump(exclude_none=True))
            case CommandResultMsg():
                fut = self._pending.get(msg.id)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            case DeviceStateMsg():
                self.device_state = msg.state
                if self.on_device_state is not None:
                    self.on_device_state(msg.state)
            case ErrorMsg():
                log.warning("device channel error from peer",
                            extra={"peer": self.name, "error": msg.error, "detail": msg.message})
                fut = self._pending.get(msg.id or "")
                if fut is not None and not fut.done():
                    fut.set_exception(PeerError(f"{msg.error}: {msg.message}"))

    async def _push_state(self) -> None:
        while True:
            await asyncio.sleep(self.state_interval_s)
            if self.device is not None:
                st = self.display.stats()
                state = self.device.driver.state().as_dict()
                # What the device receives from the worker, so their page can show it.
                state["media"] = {"rx_fps": round(st.fps, 1), "rx_frames": st.video_frames,
                                  "rx_size": [st.width, st.height] if st.width else None}
                self._send(self.device_channel, DeviceStateMsg(state=state).model_dump())
