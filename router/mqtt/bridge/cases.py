"""Case updates to devices: each change of a device's case goes to its ``…/cases`` topic
(state, assigned worker and their display name, outcome), so the edge knows when a person is
connected, transferred or gone.

Contract: fed by the bridge's own subscription to the core's domain events
(``core.subscribe``). One update per distinct (state, assigned worker, outcome) of a case;
kept by the broker's session for ``case_update_ttl_s`` (MQTT 5 message expiry). Cases
without a device, or at a device not in sites.yaml, send nothing. When the broker is away the
update is skipped: the next change brings the device up to date. On ``Resync`` (this feed fell
behind the core and events were dropped) every open case, every recently closed one whose
last revision was not sent, and every case still believed open is sent again where it differs
from what was sent: never a silent loss.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from common.mqtt.client import NotConnected
from protocol import topics
from protocol.messages import CaseUpdate, dumps
from protocol.models import TERMINAL_STATES
from router.mqtt.bridge.context import BridgeContext
from router.service.core import Resync, Subscription
from router.service.core.events import CaseChanged

log = logging.getLogger("baton.bridge")
_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)
REVISIONS_KEPT = 20_000  # cases whose last sent revision is remembered (for a resync)


class CaseUpdates:
    def __init__(self, ctx: BridgeContext):
        self.ctx = ctx
        self._sent: dict[str, tuple] = {}
        self._revision_sent: OrderedDict[str, int] = OrderedDict()

    async def run(self, feed: Subscription) -> None:
        async for event in feed:
            try:
                if isinstance(event, Resync):
                    await self.resync()
                elif isinstance(event, CaseChanged):
                    self.changed(event.case)
            except Exception:
                log.exception("sending a case update failed")

    async def resync(self) -> None:
        core = self.ctx.core
        self.ctx.stats["case_resyncs"] += 1
        open_now = {c.id: c for c in core.open_cases()}
        for case in open_now.values():
            self.changed(case)
        # Devices' cases that closed while updates were dropped: their last state.
        for case in core.recently_closed():
            if self._revision_sent.get(case.id, -1) < case.revision:
                self.changed(case)
        for case_id in [k for k in self._sent if k not in open_now]:
            case = await core.case(case_id)  # closed long ago: from the store
            if case is not None:
                self.changed(case)

    def changed(self, case) -> None:
        ctx = self.ctx
        device = case.device
        site = ctx.site_of.get(device or "")
        if site is None:
            return
        key = (case.state.value, case.assigned_worker, case.outcome)
        if self._sent.get(case.id) == key:
            return
        worker = next((w for w in ctx.core.cfg.workers.workers
                       if w.id == case.assigned_worker), None)
        update = CaseUpdate(case_id=case.id, state=case.state.value,
                            revision=case.revision, updated_at=case.updated_at,
                            assigned_worker=case.assigned_worker,
                            worker_name=worker.name if worker else None,
                            worker_kind=str(getattr(worker.kind, "value", worker.kind))
                            if worker else None,
                            outcome=case.outcome)
        try:
            ctx.client.publish(topics.topic(site, device, "cases"), dumps(update), qos=1,
                               expiry_s=ctx.settings.case_update_ttl_s)
        except NotConnected:
            return
        ctx.stats["case_updates"] += 1
        self._revision_sent[case.id] = case.revision
        while len(self._revision_sent) > REVISIONS_KEPT:
            self._revision_sent.popitem(last=False)
        if case.state.value in _TERMINAL:
            self._sent.pop(case.id, None)
        else:
            self._sent[case.id] = key
