"""The signaling relay against a real Mosquitto and a real router: only the worker a
connected case is assigned to reaches its device, and only that worker hears the device."""

from __future__ import annotations

import asyncio
import json
import time

from protocol import topics
from tests.telepresence.conftest import (
    ICE,
    connected_case,
    device_link,
    no_message,
    raw_publisher,
    recv_until,
    spy,
    token,
    worker_socket,
)

OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n"}


async def test_assigned_worker_reaches_the_device_and_hears_its_answer(router, broker):
    async with device_link(broker.port, "robot-1") as link, \
            worker_socket(router, "aiko") as ws:
        case_id = await connected_case(router, ws, "aiko")
        await ws.send(json.dumps({"type": "signal_start", "case_id": case_id}))
        started = await recv_until(ws, "signal_session")
        assert started["ice_servers"] == ICE and started["device"] == "robot-1"
        signaler = await link.next_session(5)
        assert (signaler.case_id, signaler.session, signaler.worker) == \
            (case_id, started["session"], "aiko")
        assert signaler.ice_servers == ICE

        await ws.send(json.dumps({"type": "signal", "case_id": case_id,
                                  "signal": {**OFFER, "extra": "dropped"}}))
        await ws.send(json.dumps({"type": "signal", "case_id": case_id, "signal": {
            "type": "candidate", "candidate": "candidate:1 1 udp 2122260223 10.0.0.2 5000 "
            "typ host", "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}}))
        await ws.send(json.dumps({"type": "signal", "case_id": case_id,
                                  "signal": {"type": "candidate", "candidate": None}}))
        got = [await asyncio.wait_for(signaler.receive(), 5) for _ in range(3)]
        assert got[0] == OFFER  # unknown fields are not forwarded
        assert got[1]["usernameFragment"] == "abcd" and got[1]["sdpMLineIndex"] == 0
        assert got[2] == {"type": "candidate", "candidate": None, "sdpMid": None,
                          "sdpMLineIndex": None}

        await signaler.send({"type": "answer", "sdp": "v=0\r\nanswer\r\n"})
        back = await recv_until(ws, "signal")
        assert back == {"type": "signal", "case_id": case_id, "session": started["session"],
                        "signal": {"type": "answer", "sdp": "v=0\r\nanswer\r\n"}}

        # Closing the case ends the session: the device gets a bye.
        r = router.http.post(f"/v1/cases/{case_id}/close", json={"status": "resolved"},
                             headers={"Authorization": f"Bearer {token('aiko')}"})
        assert r.status_code == 200, r.text
        bye = await asyncio.wait_for(signaler.receive(), 5)
        assert bye["type"] == "bye" and "resolved" in bye["reason"]
        await ws.send(json.dumps({"type": "signal", "case_id": case_id, "signal": OFFER}))
        err = await recv_until(ws, "error")
        assert "not assigned to you" in err["message"]


async def test_others_are_refused_and_nothing_is_published(router, broker):
    async with worker_socket(router, "aiko") as aiko, \
            worker_socket(router, "mateo") as mateo, \
            worker_socket(router, "supervisor") as boss:
        case_id = await connected_case(router, aiko, "aiko")
        async with spy(broker.port) as published:
            attempts = [
                (mateo, {"type": "signal_start", "case_id": case_id}, "not assigned to you"),
                (mateo, {"type": "signal", "case_id": case_id, "signal": OFFER},
                 "not assigned to you"),
                (boss, {"type": "signal", "case_id": case_id, "signal": OFFER},
                 "take the case first"),
                (aiko, {"type": "signal", "case_id": "robot-1-nope", "signal": OFFER},
                 "not assigned to you"),
                (aiko, {"type": "signal", "case_id": case_id,
                        "signal": {"type": "offer"}}, "invalid signal"),
                (aiko, {"type": "signal", "case_id": case_id,
                        "signal": {"type": "renegotiate"}}, "invalid signal"),
            ]
            for ws, msg, words in attempts:
                await ws.send(json.dumps(msg))
                err = await recv_until(ws, "error")
                assert words in err["message"], err
                assert err["request"] == msg["type"] and err["case_id"] == msg["case_id"]
            await asyncio.sleep(1.0)
            assert published == []
            # The control: the assigned worker's start does get published.
            await aiko.send(json.dumps({"type": "signal_start", "case_id": case_id}))
            await recv_until(aiko, "signal_session")
            t0 = time.monotonic()
            while not published and time.monotonic() - t0 < 5:
                await asyncio.sleep(0.05)
            assert [m.topic for m in published] == [
                topics.topic("city-office", "robot-1", "signal/down")]


async def test_bad_device_signals_are_dead_lettered_and_not_delivered(router, broker):
    async with worker_socket(router, "aiko") as ws, device_link(broker.port, "robot-1") as link:
        case_id = await connected_case(router, ws, "aiko")
        await ws.send(json.dumps({"type": "signal_start", "case_id": case_id}))
        session = (await recv_until(ws, "signal_session"))["session"]
        await link.next_session(5)

        def up(origin="robot-1", case=case_id, sess=session, **sig):
            return json.dumps({"v": 1, "case_id": case, "session": sess, "origin": origin,
                               "signal": sig or {"type": "answer", "sdp": "v=0"}}).encode()

        r1 = topics.topic("city-office", "robot-1", "signal/up")
        r2 = topics.topic("city-office", "robot-2", "signal/up")
        bad = [  # (class, account, topic, payload)
            ("not_allowed", "robot-1", r1, up(case="robot-1-notconnected")),
            ("not_allowed", "robot-1", r1, up(sess="s-stale")),
            ("not_allowed", "robot-2", r2, up(origin="robot-2")),  # not robot-2's case
            ("origin_mismatch", "robot-1", r1, up(origin="robot-2")),
            ("malformed_json", "robot-1", r1, b'{"v": 1, "case_'),
            ("schema", "robot-1", r1, up(type="offer")),  # no sdp
            ("oversized", "robot-1", r1, up(type="answer", sdp="v=0" + "a" * 70_000)),
        ]
        for account in ("robot-1", "robot-2"):
            async with raw_publisher(broker.port, account, token(account)) as pub:
                for _, acc, topic, payload in bad:
                    if acc == account:
                        assert await pub.publish_wait(topic, payload) == 0
        await no_message(ws, "signal", 1.0)
        want: dict[str, int] = {}
        for cls, *_ in bad:
            want[cls] = want.get(cls, 0) + 1
        t0 = time.monotonic()
        while (dead := router.http.get("/v1/sync").json()["dead_letters"]) != want:
            assert time.monotonic() - t0 < 5, dead
            await asyncio.sleep(0.1)
        rows = router.http.get("/v1/sync/dead-letters?limit=50").json()["dead_letters"]
        assert all("signal/up" in r["source"] for r in rows) and len(rows) == len(bad)
        # The bridge still relays good ones.
        signaler = link.signaler(case_id)
        await signaler.send({"type": "answer", "sdp": "v=0\r\nok\r\n"})
        assert (await recv_until(ws, "signal"))["signal"]["sdp"] == "v=0\r\nok\r\n"
