"""The edge station (edge/station.py) against a real router child process and Mosquitto: a
resident's typed turns go through the router's transition layer, the hand-off is shown on the
device in the resident's language, the worker's video session is answered, and captions
cross translated both ways (phrasebook: no real Argos models exist on these machines)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from edge.device import SafetyLimits, SimulatedRobot
from edge.node import EdgeConfig, TranslationConfig
from edge.station import Station, StationOptions
from edge.webrtc import MediaPeer, RecordingDisplay, open_local_media
from edge.webrtc.channels import Caption
from tests.telepresence.conftest import connected_case, recv_until, token, worker_socket
from tests.telepresence.test_media import WsSignaler
from tests.webrtc.conftest import loopback_ice  # noqa: F401 (fixture)

REPO_PHRASEBOOK = "config/edge/phrasebook.yaml"


async def until(fn, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (got := fn()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return got


def station_for(router, broker, tmp_path, robot) -> Station:
    cfg = EdgeConfig(site="city-office", device="robot-1", kind="robot",
                     languages=["ja", "en", "es", "pt", "zh"],
                     models_dir=str(tmp_path / "no-models"),
                     translation=TranslationConfig(phrasebook=REPO_PHRASEBOOK))
    opts = StationOptions(router_url=router.http.base_url.__str__().rstrip("/"),
                          token=token("robot-1"), mqtt_port=broker.port,
                          outbox_path=tmp_path / "outbox.db", video="test", display="record",
                          speech=False, state_interval_s=0.2, heartbeat_s=1.0, screen_port=0)
    return Station(cfg, opts, driver=robot)


@pytest.mark.slow
async def test_station_escalates_answers_the_session_and_translates_captions(
        router, broker, tmp_path, loopback_ice):  # noqa: F811
    robot = SimulatedRobot(limits=SafetyLimits(command_timeout_s=1.0))
    async with station_for(router, broker, tmp_path, robot) as station, \
            worker_socket(router, "aiko") as ws:
        assert station.node.status["translation"] == "phrasebook only"
        r = router.http.put("/v1/workers/aiko/presence", json={"presence": "available"},
                            headers={"Authorization": f"Bearer {token('aiko')}"})
        assert r.status_code == 200, r.text

        # The resident asks about renewing a residence card in Japanese: a residency matter
        # the router hands to a person; the device says so in Japanese.
        await station.say("在留カードの更新について相談したいです。", "ja")
        offer = await recv_until(ws, "offer", 10)
        case_id = offer["case"]["id"]
        assert station.case_id == case_id
        shown = robot.state().display
        assert shown is not None and shown.lang == "ja" and "担当者におつなぎします" in shown.text

        # The router has the resident's words and their pivot translation (aiko sees them
        # with the accept; before it, her offer shows the preview only).
        packet = router.http.get(f"/v1/cases/{case_id}",
                                 headers={"Authorization": f"Bearer {token('supervisor')}"}).json()
        said = [t for t in packet["packet"]["transcript"] if t["speaker"] == "resident"]
        assert said[-1]["text"] == "在留カードの更新について相談したいです。"
        assert said[-1]["translated"] == "I want to ask about renewing my residence card."

        await ws.send(json.dumps({"type": "accept", "offer_id": offer["offer"]["offer_id"]}))
        await recv_until(ws, "accepted")
        await until(lambda: station.case and station.case.state == "connected", 10,
                    "the case update at the device")

        # The worker starts video; the station answers.
        await ws.send(json.dumps({"type": "signal_start", "case_id": case_id}))
        await recv_until(ws, "signal_session")
        captions: list[Caption] = []
        worker = MediaPeer(WsSignaler(ws, case_id), role="offer",
                           media=open_local_media("test", "tone"), display=RecordingDisplay(),
                           on_caption=captions.append, name="worker")
        try:
            await worker.start()
            await worker.wait_connected(15)
            await worker.wait_channels_open(10)
            peer = await until(lambda: station.peer, 5, "the station's peer")
            await peer.wait_connected(5)
            await until(lambda: worker.stats().video_frames > 10
                        and peer.stats().video_frames > 10, 10, "video both ways")

            # The resident speaks: the worker gets the caption in the pivot language with the
            # original.
            await station.say("住民票の写しが必要です。", "ja")
            cap = await until(lambda: next((c for c in captions if c.speaker == "resident"),
                                           None), 5, "the resident's caption")
            assert cap.text == "I need a copy of my residence record." and cap.lang == "en"
            assert cap.original is not None and cap.original.text == "住民票の写しが必要です。"

            # A worker's caption sent straight on the data channel is not in the case
            # record: it never reaches the resident's screen.
            assert worker.send_caption(Caption(id="w1", speaker="worker",
                                               text="Your card is ready.", lang="en"))
            # The worker's message (recorded by the router, then chat.say): shown on the
            # device in Japanese, and what the resident reads comes back on the captions.
            r = router.http.post(f"/v1/cases/{case_id}/messages", json={
                "text": "Of course, one moment please.", "language": "en"},
                headers={"Authorization": f"Bearer {token('aiko')}"})
            assert r.status_code == 201, r.text
            back = await until(lambda: next((c for c in captions if c.speaker == "worker"),
                                            None), 5, "the worker's message translated")
            assert back.lang == "ja" and back.text == "かしこまりました。少々お待ちください。"
            assert back.original is not None and back.original.lang == "en"
            assert robot.state().display.text == "かしこまりました。少々お待ちください。"
            assert "カードの準備ができました。" not in [
                ln.text for ln in station.screen.model.lines]

            # A second session for the same case (the browser retrying after an ICE failure)
            # replaces the first at the device.
            # (The worker peer's signaling loop reads the socket meanwhile.)
            await ws.send(json.dumps({"type": "signal_start", "case_id": case_id}))
            await until(lambda: station.peer is not peer, 5, "a new peer for the new session")
            await until(lambda: peer.closed.is_set(), 5, "the old peer closed")
        finally:
            await worker.aclose()


class PeerFailingOnClose(MediaPeer):
    """The real peer, whose close then fails (a driver or aiortc bug at hang-up)."""

    async def aclose(self) -> None:
        await super().aclose()
        raise RuntimeError("injected: the peer failed to close")


async def _video_session(station, ws, case_id: str, before) -> MediaPeer:
    """The worker starts a video session; returns the worker's peer once media flows both
    ways with the station's (new) peer."""
    await ws.send(json.dumps({"type": "signal_start", "case_id": case_id}))
    await recv_until(ws, "signal_session")
    worker = MediaPeer(WsSignaler(ws, case_id), role="offer",
                       media=open_local_media("test", "tone"), display=RecordingDisplay(),
                       name="worker")
    await worker.start()
    await worker.wait_connected(15)
    peer = await until(lambda: station.peer if station.peer not in (None, before) else None,
                       10, "the station's peer for the new session")
    await peer.wait_connected(10)
    await until(lambda: worker.stats().video_frames > 5 and peer.stats().video_frames > 5,
                10, "video both ways")
    return worker


@pytest.mark.slow
async def test_a_peer_failing_on_close_is_logged_and_the_next_session_is_answered(
        router, broker, tmp_path, loopback_ice, monkeypatch, caplog):  # noqa: F811
    caplog.set_level(logging.ERROR, logger="baton.edge.station")
    monkeypatch.setattr("edge.station.MediaPeer", PeerFailingOnClose)
    robot = SimulatedRobot(limits=SafetyLimits(command_timeout_s=1.0))
    station = station_for(router, broker, tmp_path, robot)
    async with station, worker_socket(router, "aiko") as ws:
        case_id = await connected_case(router, ws, "aiko")
        first = await _video_session(station, ws, case_id, before=None)
        old = station.peer
        await first.aclose()  # the worker hangs up (the page retries after an ICE failure)

        # The next session replaces the old peer, whose close raises: the station answers
        # the new session all the same.
        second = await _video_session(station, ws, case_id, before=old)
        try:
            assert old.closed.is_set() and isinstance(station.peer, PeerFailingOnClose)
            failed = [r for r in caplog.records if r.getMessage() == "task failed"]
            assert len(failed) == 1, [r.getMessage() for r in caplog.records]
            rec = failed[0]
            assert (rec.task, rec.device, rec.case_id) == ("end-video", "robot-1", case_id)
            assert "injected: the peer failed to close" in rec.error and rec.exc_info
            assert station.tasks.failures == 1
        finally:
            await second.aclose()
    # Closing the station closes the second failing peer: logged again, and the close
    # finished (every task awaited).
    assert station.tasks.failures == 2 and not station.tasks.tasks
