"""A simulated worker at a desk: an honest client of the worker WebSocket and REST API.

It signs in with the worker's own token, goes available, answers offers after a human-like
pause (sometimes declining), handles the case for a while and closes it. Used by the demo
and by tests and benchmarks that need people on the other side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random

import httpx
import websockets

log = logging.getLogger("baton.desk.sim")


class SimulatedWorker:
    def __init__(self, base_url: str, worker_id: str, token: str, rng: random.Random, *,
                 answer_s: tuple[float, float] = (1.0, 4.0), handle_s: tuple[float, float] =
                 (15.0, 45.0), decline_rate: float = 0.1):
        self.base_url = base_url.rstrip("/")
        self.worker_id, self.token, self.rng = worker_id, token, rng
        self.answer_s, self.handle_s, self.decline_rate = answer_s, handle_s, decline_rate
        self.handled = 0

    async def run(self, stop: asyncio.Event) -> None:
        ws_url = self.base_url.replace("http", "ws", 1) + "/v1/ws"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10) as http:
            while not stop.is_set():
                try:
                    async with websockets.connect(ws_url, additional_headers=headers) as ws:
                        await self._session(ws, http, stop)
                except (OSError, websockets.WebSocketException) as exc:
                    if stop.is_set():
                        return
                    log.info("worker socket dropped, reconnecting: %s", exc)
                    await asyncio.sleep(1.0)

    async def _session(self, ws, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        await ws.send(json.dumps({"type": "presence", "presence": "available"}))
        tasks: set[asyncio.Task] = {asyncio.create_task(self._watch_stop(ws, stop))}
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "offer":
                    task = asyncio.create_task(self._answer(ws, http, msg["offer"]))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch_stop(self, ws, stop: asyncio.Event) -> None:
        await stop.wait()
        await ws.close()

    async def _answer(self, ws, http: httpx.AsyncClient, offer: dict) -> None:
        await asyncio.sleep(self.rng.uniform(*self.answer_s))
        if self.rng.random() < self.decline_rate:
            await ws.send(json.dumps({"type": "reject", "offer_id": offer["offer_id"],
                                      "reason": "busy with paperwork"}))
            return
        resp = await http.post(f"/v1/offers/{offer['offer_id']}/accept")
        if resp.status_code != 200:
            return  # expired or withdrawn meanwhile
        await asyncio.sleep(self.rng.uniform(*self.handle_s))
        await http.post(f"/v1/cases/{offer['case_id']}/close",
                        json={"status": "resolved", "code": "answered",
                              "ai_verdict": self.rng.choice(["right", "wrong"])})
        self.handled += 1
