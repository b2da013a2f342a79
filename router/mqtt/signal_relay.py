"""The signaling relay: a worker's browser (WebSocket) ⇄ MQTT ``…/signal/down|up`` ⇄ edge.

Only the worker assigned to a *connected* case that has a device reaches that device, and
only that worker hears the device's signals for it. Supervisors and admins are refused
(take the case first). Every relayed case has one session id at a time; a new
``signal_start`` replaces it, and the edge drops signals of any other session. When a case
stops being connected to the session's worker (closed, transferred, handed back), the
relay sends the device a ``bye`` so the media ends with the authorisation.

Runs in the router's event loop; ``publish`` is the bridge's (raises NotConnected). It
follows the cases through its own subscription to the core's events (``run``); signals for a
worker's browser go out as ``WorkerSignal`` events, which the WebSocket hub delivers.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from common.errors import BatonError
from common.mqtt.client import NotConnected
from protocol import topics
from protocol.models import CaseState, Role
from protocol.signaling import (
    MAX_SIGNAL_BYTES,
    SIGNAL,
    Bye,
    SignalDown,
    SignalUp,
    dump,
    signal_dict,
)
from router.service.auth import DESK_ROLES
from router.service.core import Resync, RouterCore, Subscription
from router.service.core.events import CaseChanged, WorkerSignal
from router.telepresence import TelepresenceConfig

log = logging.getLogger("baton.signal")


class SignalRefused(BatonError):
    """Said to the worker as an ``error``; nothing was published."""

    reason = "signal_refused"


@dataclass(slots=True)
class _Session:
    id: str
    worker: str
    device: str
    site: str


class SignalRelay:
    def __init__(self, core: RouterCore, publish: Callable[..., Any],
                 dead: Callable[[str, str, str, bytes], None], ice: TelepresenceConfig,
                 parse: Callable[..., Any]):
        # parse(model, topic, msg, limit): the bridge's size and schema checks, which
        # dead-letter what fails them and return None.
        self.core, self._publish, self._dead, self.ice = core, publish, dead, ice
        self._parse = parse
        self.sessions: dict[str, _Session] = {}  # case id -> current session
        self.stats: dict[str, int] = {"down": 0, "up": 0, "refused": 0, "sessions": 0}

    # --- worker → device ------------------------------------------------------------------

    def _authorize(self, principal, case_id: str):
        if principal.role not in DESK_ROLES:
            raise SignalRefused(f"role {principal.role.value} cannot join a case's media; "
                                "only the worker a case is assigned to can")
        case = self.core.open_case_of(case_id)
        if case is None or case.assigned_worker != principal.subject:
            hint = "; take the case first (floor monitor: Take)" \
                if principal.role is Role.supervisor else ""
            raise SignalRefused(f"case {case_id!r} is not assigned to you: signaling is only "
                                f"for the worker a connected case is assigned to{hint}")
        if case.state is not CaseState.connected:
            raise SignalRefused(f"case {case_id!r} is {case.state.value}, not connected")
        if case.device is None:
            raise SignalRefused(f"case {case_id!r} has no device (a web or phone case): "
                                "there is nothing to connect media to")
        return case

    def start(self, principal, case_id: str) -> dict[str, Any]:
        """A new session for the case; the edge hears it with the ICE servers. Returns the
        ``signal_session`` message for the worker."""
        case = self._authorize(principal, case_id)
        old = self.sessions.get(case_id)
        session = _Session("s-" + uuid.uuid4().hex[:16], principal.subject, case.device,
                           case.site)
        ice = self.ice.ice_for(case.site)
        self._send(session, case_id, SignalDown(case_id=case_id, session=session.id,
                                                worker=session.worker, ts=self.core.clock.now(),
                                                ice_servers=ice))
        if old is not None:
            log.info("signaling session replaced", extra={"case_id": case_id, "old": old.id})
        self.sessions[case_id] = session
        self.stats["sessions"] += 1
        return {"type": "signal_session", "case_id": case_id, "session": session.id,
                "device": case.device, "ice_servers": ice}

    def from_worker(self, principal, case_id: str, signal: dict[str, Any]) -> str:
        """Relay one signal to the case's device; returns the session id."""
        self._authorize(principal, case_id)
        try:
            sig = SIGNAL.validate_python(signal)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise SignalRefused(f"invalid signal: {where}: {err['msg']} (offer, answer, "
                                "candidate or bye; see docs/protocol.md)") from None
        session = self.sessions.get(case_id)
        if session is None or session.worker != principal.subject:
            self.start(principal, case_id)
            session = self.sessions[case_id]
        self._send(session, case_id, SignalDown(
            case_id=case_id, session=session.id, worker=session.worker,
            ts=self.core.clock.now(), signal=sig))
        return session.id

    def _send(self, session: _Session, case_id: str, down: SignalDown) -> None:
        try:
            self._publish(topics.topic(session.site, session.device, "signal/down"),
                          dump(down), qos=1, expiry_s=60)
        except NotConnected:
            raise SignalRefused("the router is not connected to the MQTT broker; try again "
                                "in a moment") from None
        self.stats["down"] += 1

    # --- device → worker ------------------------------------------------------------------

    def from_device(self, t: topics.Topic, msg) -> None:
        """Called by the bridge for ``…/signal/up``. Bad input is dead-lettered."""
        raw = msg.payload
        up = self._parse(SignalUp, t, msg, MAX_SIGNAL_BYTES)
        if up is None:
            return None
        if up.origin != t.device:
            return self._dead("origin_mismatch", msg.topic, f"signal origin {up.origin!r} is "
                              f"not the topic's device {t.device!r}", raw)
        case = self.core.open_case_of(up.case_id)
        if case is None or case.device != t.device or case.state is not CaseState.connected \
                or case.assigned_worker is None:
            return self._dead("not_allowed", msg.topic, f"no connected case {up.case_id!r} "
                              f"at device {t.device!r}", raw)
        session = self.sessions.get(up.case_id)
        if session is None or session.id != up.session or session.worker != case.assigned_worker:
            return self._dead("not_allowed", msg.topic, f"session {up.session!r} is not the "
                              f"case's current signaling session", raw)
        self.stats["up"] += 1
        self.core.publish(WorkerSignal(case.assigned_worker, {
            "type": "signal", "case_id": up.case_id, "session": up.session,
            "signal": signal_dict(up.signal)}))

    # --- authorisation ends -------------------------------------------------------------------

    async def run(self, feed: Subscription) -> None:
        """Follow the cases (the bridge owns the task). On ``Resync`` every session is
        checked against the core's snapshot."""
        async for event in feed:
            try:
                if isinstance(event, Resync):
                    for case_id in list(self.sessions):
                        case = await self.core.case(case_id)
                        if case is None:
                            self.sessions.pop(case_id, None)
                        else:
                            self.case_changed(case)
                elif isinstance(event, CaseChanged):
                    self.case_changed(event.case)
            except Exception:
                log.exception("following a case change failed")

    def case_changed(self, case) -> None:
        """End the session when the case is no longer connected to its worker."""
        session = self.sessions.get(case.id)
        if session is None:
            return
        if case.state is CaseState.connected and case.assigned_worker == session.worker:
            return
        del self.sessions[case.id]
        state = case.state.value
        try:
            self._send(session, case.id, SignalDown(
                case_id=case.id, session=session.id, worker=session.worker,
                ts=self.core.clock.now(), signal=Bye(type="bye", reason=f"case {state}")))
        except SignalRefused:
            pass  # the edge's peer also ends on ICE failure / its own case update
        self.core.publish(WorkerSignal(session.worker, {
            "type": "signal", "case_id": case.id, "session": session.id,
            "signal": {"type": "bye", "reason": f"case {state}"}}))
