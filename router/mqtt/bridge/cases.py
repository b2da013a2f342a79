"""Case updates to devices: each change of a device's case goes to its ``…/cases`` topic
(state, assigned worker and their display name, outcome), so the edge knows when a person is
connected, transferred or gone. The signaling relay hears every case change too (it ends a
session whose authorisation ended).

Contract: one update per distinct (state, assigned worker, outcome) of a case; retained by
the broker's session for ``case_update_ttl_s`` (MQTT 5 message expiry). Cases without a
device, or at a device not in sites.yaml, send nothing. When the broker is away the update is
skipped: the next change, or the edge's reconnect, brings the device up to date.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from common.mqtt.client import NotConnected
from protocol import topics
from protocol.messages import CaseUpdate, dumps
from protocol.models import TERMINAL_STATES, Role
from router.mqtt.bridge.context import BridgeContext
from router.service.hub import Connection

log = logging.getLogger("baton.bridge")
_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)


class CaseUpdates:
    def __init__(self, ctx: BridgeContext, case_changed: Callable[[dict[str, Any]], None]):
        self.ctx, self._case_changed = ctx, case_changed
        self._sent: dict[str, tuple] = {}
        self._watch: Connection | None = None

    def attach(self) -> None:
        self._watch = Connection("mqtt-bridge", Role.supervisor)
        self.ctx.core.hub.attach(self._watch)

    def detach(self) -> None:
        if self._watch is not None:
            self.ctx.core.hub.detach(self._watch)
            self._watch = None

    async def run(self) -> None:
        while True:
            msg = await self._watch.queue.get()
            try:
                self._handle(msg)
            except Exception:
                log.exception("sending a case update failed")

    def _handle(self, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "_close":  # fell behind: attach again
            self.detach()
            self.attach()
            return
        if kind == "case":
            self.changed(msg["case"])

    def changed(self, case: dict[str, Any]) -> None:
        ctx = self.ctx
        self._case_changed(case)
        device = case.get("device")
        site = ctx.site_of.get(device or "")
        if site is None:
            return
        key = (case["state"], case.get("assigned_worker"), case.get("outcome"))
        if self._sent.get(case["id"]) == key:
            return
        worker = next((w for w in ctx.core.cfg.workers.workers
                       if w.id == case.get("assigned_worker")), None)
        update = CaseUpdate(case_id=case["id"], state=case["state"],
                            revision=case["revision"], updated_at=case["updated_at"],
                            assigned_worker=case.get("assigned_worker"),
                            worker_name=worker.name if worker else None,
                            worker_kind=str(getattr(worker.kind, "value", worker.kind))
                            if worker else None,
                            outcome=case.get("outcome"))
        try:
            ctx.client.publish(topics.topic(site, device, "cases"), dumps(update), qos=1,
                               expiry_s=ctx.settings.case_update_ttl_s)
        except NotConnected:
            return
        ctx.stats["case_updates"] += 1
        if case["state"] in _TERMINAL:
            self._sent.pop(case["id"], None)
        else:
            self._sent[case["id"]] = key
