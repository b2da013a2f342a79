"""The yardstick of benchmarks/api.py: the least a FastAPI app must do for the same load.

Same wire shape as Baton's (POST /v1/cases → an ``offer`` frame on a free worker's
WebSocket; ``accept`` → ``accepted``; POST /v1/cases/{id}/close frees the worker), with
nothing behind it: workers in a dict, first free one gets the offer, no store, no rules.
Run by benchmarks/api.py under the same uvicorn settings as ``baton router``:

    python benchmarks/api_peer.py PORT
"""

from __future__ import annotations

import json
import sys
from collections import deque

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

WS_MAX_SIZE = 64 * 1024  # as router/cli.py
CAPACITY = 4  # as the roster benchmarks/api.py generates (chat 4)

app = FastAPI()
free: deque[str] = deque()  # one entry per free slot, worker id
sockets: dict[str, WebSocket] = {}
assigned: dict[str, str] = {}  # case → worker
waiting: deque[str] = deque()


def _frame(msg: dict) -> str:
    return json.dumps(msg, separators=(",", ":"))


async def _offer(case_id: str) -> None:
    while free:
        wid = free.popleft()
        if wid in sockets:
            assigned[case_id] = wid
            await sockets[wid].send_text(_frame({
                "type": "offer", "offer": {"offer_id": case_id}, "case": {"id": case_id}}))
            return
    waiting.append(case_id)


@app.post("/v1/cases", status_code=201)
async def create(request: Request):
    body = await request.json()
    await _offer(body["case_id"])
    return {"id": body["case_id"], "state": "queued"}


@app.post("/v1/cases/{case_id}/close")
async def close(case_id: str):
    wid = assigned.pop(case_id, None)
    if wid is not None:
        free.append(wid)
        if waiting:
            await _offer(waiting.popleft())
    return JSONResponse({"id": case_id, "state": "resolved"})


@app.post("/v1/cases/{case_id}/wrapup/done")
async def wrapup_done(case_id: str):
    # The same request the load generator sends Baton; this peer holds no wrap-up.
    return JSONResponse({"id": case_id, "wrapup": "done"})


@app.websocket("/v1/ws")
async def ws(socket: WebSocket):
    await socket.accept()
    wid = None
    try:
        while True:
            msg = json.loads(await socket.receive_text())
            if msg["type"] == "auth":
                wid = msg["token"].removeprefix("bench-").removesuffix("-token-000")
                sockets[wid] = socket
                free.extend([wid] * CAPACITY)
                await socket.send_text(_frame({"type": "hello"}))
            elif msg["type"] == "accept":
                await socket.send_text(_frame({"type": "accepted",
                                               "case": {"id": msg["offer_id"]}}))
    except WebSocketDisconnect:
        sockets.pop(wid, None)


@app.get("/healthz")
async def healthz():
    return {"ok": True}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                log_config=None, ws_max_size=WS_MAX_SIZE)
