"""Subscribers of the core that fall behind resynchronise and converge (issue 13, events).

The router runs with ``routing.event_queue: 1``: every subscriber of the core's events (the
sockets' hub, the MQTT bridge's case feed, the signaling relay) overflows on almost every
burst, so events are dropped for it and it must rebuild from the core's snapshot. The
devices (real edges over a real Mosquitto) and the pages' sockets (a floor supervisor and a
worker on /v1/ws) must still end in the router's state."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
import yaml
from websockets.asyncio.client import connect

from tests.mqtt.helpers import ADMIN, LAB, await_until, edge, fleet_config, lab_devices

TERMINAL = {"resolved", "abandoned"}
DEVICES = lab_devices(8)


@pytest.fixture
def cfg_dir(tmp_path):
    cfg = fleet_config(tmp_path)
    routing = yaml.safe_load((cfg / "routing.yaml").read_text())
    routing["event_queue"] = 1
    routing["offer_timeout_s"] = 600  # nothing changes by itself while the test looks
    (cfg / "routing.yaml").write_text(yaml.safe_dump(routing))
    return cfg


class PageSocket:
    """What the floor and desk pages keep from /v1/ws: hello replaces the snapshot, case
    messages update it, offers come and go."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token
        self.cases: dict[str, dict] = {}
        self.offers: set[str] = set()
        self.hellos = 0
        self.ws = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self):
        self.ws = await connect(self.url)
        await self.ws.send(json.dumps({"type": "auth", "token": self.token}))
        self._task = asyncio.create_task(self._read())
        await await_until(lambda: self.hellos, 10, "the hello")
        return self

    async def __aexit__(self, *exc):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.ws.close()

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if msg["type"] == "hello":
                self.hellos += 1
                self.cases = {c["id"]: c for c in msg["cases"]}
                self.offers = {o["offer_id"] for o in msg["offers"]}
            elif msg["type"] == "case":
                self.cases[msg["case"]["id"]] = msg["case"]
            elif msg["type"] == "offer":
                self.offers.add(msg["offer"]["offer_id"])
            elif msg["type"] in ("offer_closed", "accepted"):
                self.offers.discard(msg["offer_id"])


def _floor_matches(floor: PageSocket, truth: dict[str, dict]) -> bool:
    for case_id, case in truth.items():
        seen = floor.cases.get(case_id)
        if case["state"] in TERMINAL:
            if seen is not None and seen["state"] not in TERMINAL:
                return False  # still shown open
        elif seen is None or (seen["state"], seen["revision"]) != (case["state"],
                                                                   case["revision"]):
            return False
    return True


async def test_overflowing_subscribers_resync_and_devices_and_sockets_converge(
        tmp_path, router, broker):
    base = str(router.http.base_url)
    ws_url = base.replace("http://", "ws://") + "/v1/ws"
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30))
        floor = await stack.enter_async_context(
            PageSocket(ws_url, "demo-supervisor-token-0001"))
        worker = await stack.enter_async_context(PageSocket(ws_url, "demo-haruto-token-0001"))
        await worker.ws.send(json.dumps({"type": "presence", "presence": "available"}))
        edges = {d: await stack.enter_async_context(edge(tmp_path, d, broker.port))
                 for d in DEVICES}
        cases = {d: f"case-{d}" for d in DEVICES}

        # Bursts: every device opens a case at once, all are escalated at once (offers to
        # haruto, the rest wait), then half are closed at once.
        await asyncio.gather(*(edges[d].emit(cases[d], "opened", {
            "site": LAB, "device": d, "language": "en"}) for d in DEVICES))
        await await_until(lambda: all(cases[d] in edges[d].cases for d in DEVICES), 20,
                          "every device hears of its case")
        answers = await asyncio.gather(*(http.post(f"/v1/cases/{cases[d]}/escalate", json={})
                                         for d in DEVICES))
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        answers = await asyncio.gather(*(http.post(f"/v1/cases/{cases[d]}/close",
                                                   json={"status": "resolved"})
                                         for d in DEVICES[::2]))
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]

        # haruto accepts one offer on her socket and writes to the resident: a durable
        # command (the store's, not the event feed's) for the device.
        await await_until(lambda: worker.offers, 20, "an offer on haruto's desk")
        offer_id = sorted(worker.offers)[0]
        await worker.ws.send(json.dumps({"type": "accept", "offer_id": offer_id}))

        async def truth() -> dict[str, dict]:
            r = await http.get("/v1/cases", params={"limit": 500})
            return {c["id"]: c for c in r.json()["cases"]}

        async def connected() -> str | None:
            return next((i for i, c in (await truth()).items() if c["state"] == "connected"),
                        None)

        for _ in range(200):
            taken = await connected()
            if taken:
                break
            await asyncio.sleep(0.05)
        assert taken, "haruto's accept connected a case"
        device = next(d for d in DEVICES if cases[d] == taken)
        got = []

        async def on_command(cmd):
            got.append(cmd)
            return "done"

        edges[device].on_command = on_command
        r = await http.post(f"/v1/cases/{taken}/messages", json={"text": "hello, I am Haruto"},
                            headers={"Authorization": "Bearer demo-haruto-token-0001"})
        assert r.status_code == 201 and r.json()["delivered_to"] == device, r.text

        want = await truth()
        assert {want[cases[d]]["state"] for d in DEVICES[::2]} == {"resolved"}
        assert want[taken]["assigned_worker"] == "haruto"

        def haruto_offers(truth: dict[str, dict]) -> set[str]:
            return {c["pending_offer"]["offer_id"] for c in truth.values()
                    if c.get("pending_offer") and c["pending_offer"]["worker_id"] == "haruto"}

        async def converge(check, what: str) -> None:
            for _ in range(400):  # the router's state, read again each time
                if check(await truth()):
                    return
                await asyncio.sleep(0.05)
            now = {k: (c["state"], c["revision"], c["pending_offer"]) for k, c in
                   (await truth()).items()}
            raise AssertionError(f"{what} did not converge: router {now}; floor "
                                 f"{ {k: c['state'] for k, c in floor.cases.items()} }; desk "
                                 f"offers {worker.offers}")

        # Devices: every case update that matters reached its device (the newest state).
        await converge(lambda t: all(edges[d].cases[cases[d]].state == t[cases[d]]["state"]
                                     for d in DEVICES), "every device's case state")
        assert edges[device].cases[taken].assigned_worker == "haruto"
        await await_until(lambda: got, 20, "the chat command on the device")
        assert got[0].type == "chat.say" and got[0].args["text"] == "hello, I am Haruto"
        # The pages' sockets: the floor shows every open case as it is, and no closed one
        # as open; the worker's desk holds exactly their pending offers.
        await converge(lambda t: _floor_matches(floor, t), "the floor's cases")
        await converge(lambda t: worker.offers == haruto_offers(t), "the desk's offers")
        assert worker.cases[taken]["state"] == "connected"

        # ...and they had to: the subscribers overflowed and resynchronised.
        stats = (await http.get("/v1/stats")).json()["event_subscribers"]
        for name in ("ws-hub", "mqtt-cases", "signal-relay"):
            assert stats[name]["overflows"] > 0, stats
        assert floor.hellos > 1 and worker.hellos > 1  # fresh snapshots after overflows
