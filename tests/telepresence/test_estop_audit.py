"""The robot's emergency stop is in the audit log (issue 12): the worker's e-stop crosses the
WebRTC data channel straight to the device, so the edge station records every latch and
reset on the case (an ``action`` event through its outbox and MQTT) and the router writes
``estop`` / ``estop_reset`` audit entries: who asked (the session's worker, or "device"),
the device, the case, when. Real router child process, Mosquitto, the station, and a
worker MediaPeer on loopback WebRTC; read back with GET /v1/audit."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from edge.device import SafetyLimits, SimulatedRobot
from edge.webrtc import MediaPeer, RecordingDisplay, open_local_media
from tests.telepresence.conftest import connected_case, recv_until, token, worker_socket
from tests.telepresence.test_media import WsSignaler
from tests.telepresence.test_station import station_for, until
from tests.webrtc.conftest import loopback_ice  # noqa: F401 (fixture)


def audit(router, who: str, action: str | None = None) -> httpx.Response:
    return router.http.get("/v1/audit", params={"action": action} if action else {},
                           headers={"Authorization": f"Bearer {token(who)}"})


def estops(router) -> list[dict]:
    r = audit(router, "admin")
    assert r.status_code == 200, r.text
    return [e for e in r.json()["entries"][::-1] if e["action"] in ("estop", "estop_reset")]


@pytest.mark.slow
async def test_estop_and_reset_from_the_data_channel_and_the_device_are_audited(
        router, broker, tmp_path, loopback_ice):  # noqa: F811
    robot = SimulatedRobot(limits=SafetyLimits(command_timeout_s=1.0))
    started = time.time()
    async with station_for(router, broker, tmp_path, robot) as station, \
            worker_socket(router, "aiko") as ws:
        case_id = await connected_case(router, ws, "aiko", device="robot-1")
        await until(lambda: station.case_id == case_id, 10, "the case at the station")
        await ws.send(json.dumps({"type": "signal_start", "case_id": case_id}))
        session = (await recv_until(ws, "signal_session"))["session"]
        worker = MediaPeer(WsSignaler(ws, case_id), role="offer",
                           media=open_local_media("none", "none"), display=RecordingDisplay(),
                           name="worker")
        try:
            await worker.start()
            await worker.wait_connected(15)
            await worker.wait_channels_open(10)

            # The worker presses e-stop on the data channel: the robot latches at once...
            res = await worker.command({"type": "estop", "reason": "worker"})
            assert res.ok and res.state["estop"]
            # ...a second press while latched changes nothing (and is not a second entry)...
            assert (await worker.command({"type": "estop", "reason": "again"})).ok
            # ...and the router's audit log says who, where, which case, when.
            got = await until(lambda: estops(router), 15, "the e-stop in the audit log")
            e = got[0]
            assert (e["action"], e["actor"], e["case_id"]) == ("estop", "aiko", case_id), e
            assert e["detail"]["device"] == "robot-1"
            assert e["detail"]["source"] == "data_channel"
            assert e["detail"]["session"] == session
            assert e["detail"]["reason"] == "worker"
            assert started - 1 <= e["detail"]["at"] <= e["ts"] <= time.time() + 1

            # The reset, from the same worker.
            res = await worker.command({"type": "estop_reset"})
            assert res.ok and not res.state["estop"]
            await until(lambda: len(estops(router)) >= 2, 15, "the reset in the audit log")

            # The device latches by itself (a bumper): the actor is "device".
            robot.emergency_stop("bumper")
            await until(lambda: len(estops(router)) >= 3, 15, "the device's own e-stop")
        finally:
            await worker.aclose()

        got = estops(router)
        assert [(e["action"], e["actor"], e["detail"]["source"]) for e in got] == [
            ("estop", "aiko", "data_channel"), ("estop_reset", "aiko", "data_channel"),
            ("estop", "device", "device")], got
        assert got[1]["detail"]["reason"] == "again"  # the latch it cleared
        assert got[2]["detail"]["reason"] == "bumper" and got[2]["case_id"] == case_id
        assert all(e["detail"]["device"] == "robot-1" for e in got)

        # The case record holds them too, as the device's action events.
        r = router.http.get(f"/v1/cases/{case_id}/events",
                            headers={"Authorization": f"Bearer {token('supervisor')}"})
        assert r.status_code == 200, r.text
        tools = [ev["payload"]["tool"] for ev in r.json()["events"]
                 if ev["type"] == "action" and ev["origin"] == "robot-1"]
        assert tools == ["estop", "estop_reset", "estop"]

        # Only admins read the audit log.
        for who in ("aiko", "supervisor", "robot-1"):
            assert audit(router, who).status_code == 403, who
        r = audit(router, "admin", "estop_reset")
        assert r.status_code == 200 and [e["actor"] for e in r.json()["entries"]] == ["aiko"]
