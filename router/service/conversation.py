"""Resident turns through the transition layer: the AI answers, or the case moves to a person.

For each resident turn (from a kiosk, a robot's edge node or a chat surface): accept it, let
the assistant answer (outside the core's lock: it may do I/O), read the signals, decide with
the expected-cost engine, and record everything as events — the resident's turn, the AI's
actions and reply, the signals and the decision. An escalation queues the case at once with
the skills the intent and the policy flags call for (the general skill instead of an
uncertain intent's when a hard trigger fired, the reason recorded). A medical or safety flag
at a kiosk or robot starts the emergency protocol (router/emergency.py). Once a person is connected the AI stays
silent to the resident; in human_primary and joint modes its reply goes to the person's desk
as a suggestion instead.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocol.models import CaseState, DecisionKind, Requirement
from router.assistant.base import (
    Assistant,
    AssistantError,
    DialogContext,
    DialogState,
    gave_up_reply,
)
from router.emergency import ALERT_KIND, Emergency, emergency_for
from router.escalation import DecisionContext, ai_may_answer, estimate_wait
from router.service.core import CoreError, NotFound, Unit
from router.service.core.events import Suggestion
from router.service.views import EscalateCase
from router.signals import SignalState
from router.transition import TransitionLayer
from router.turns import TurnRejected

if TYPE_CHECKING:
    from router.service.core import RouterCore

log = logging.getLogger("baton.conversation")
DIALOG_PRUNE_AT = 2000  # dialogs of closed cases are dropped past this many
DEVICE_MESSAGE = "emergency.notice"  # the device's screen shows it (docs/protocol.md §5)
DEVICE_MESSAGE_TTL_S = 600.0
# send_command(device, type, args, ttl_s=...) of the MQTT bridge, when one runs.
SendCommand = Callable[..., Awaitable[str]]

# An escalating case is not routed yet (a device said "escalate" without queueing it): the
# next turn that escalates queues it.
WAITING = {CaseState.queued, CaseState.offered, CaseState.transferring}


_UNKNOWN: Any = object()  # the dialog's preferred worker is not read yet


@dataclass
class _Dialog:
    state: DialogState = field(default_factory=DialogState)
    signals: SignalState | None = None
    preferred: str | None = _UNKNOWN  # the resident's last worker (repeat contact)


class Conversations:
    def __init__(self, core: RouterCore, layer: TransitionLayer, assistant: Assistant, *,
                 aht_s: float = 300.0):
        self.core, self.layer, self.assistant, self.aht_s = core, layer, assistant, aht_s
        self.send_command: SendCommand | None = None  # set by the app when the bridge runs
        # Per open case. After a router restart a case starts a fresh dialog: the streak of
        # misunderstandings restarts, the events (and so the packet) keep everything.
        self._dialogs: dict[str, _Dialog] = {}

    def wait_estimate(self, req: Requirement, pools=None) -> float:
        """Seconds until someone of the workflow's widening pools could take the case.
        ``pools``: the core's (or a unit's) ``pools`` query."""
        best = math.inf
        for starts, ahead, staffed, free in (pools or self.core.pools)(req):
            best = min(best, starts + estimate_wait(ahead, staffed, self.aht_s, free))
        return best

    async def resident_turn(self, case_id: str, text: str, language: str,
                            translated: str | None, *,
                            untranslated: str | None = None) -> dict[str, Any]:
        core = self.core
        case = await core.case(case_id)
        if case is None:
            raise NotFound(f"unknown case {case_id!r}")
        if case.terminal:
            self.forget(case_id)
            raise CoreError(f"case {case_id!r} is {case.state.value}: open a new one",
                            reason="closed")
        if len(self._dialogs) > DIALOG_PRUNE_AT:
            for stale in [k for k in self._dialogs if core.open_case_of(k) is None]:
                del self._dialogs[stale]
        now = core.clock.now()
        # Untranslated (no model for the pair at the edge): recorded as said and marked, never
        # dropped. The layer reads the resident's own words where its multilingual model
        # covers the language; elsewhere the assistant reads the original as the pivot.
        try:
            turn = self.layer.accept(text, language, at=now, pivot_text=translated)
        except TurnRejected as exc:
            if not (untranslated and not translated and exc.reason == "missing_translation"):
                raise CoreError(f"turn rejected ({exc.reason}): {exc}",
                                reason="turn_rejected") from None
            turn = self.layer.accept(text, language, at=now, pivot_text=text)
        await self.layer.prepare(turn)  # the model runs in a worker thread, not on the loop
        dialog = self._dialogs.setdefault(case_id, _Dialog())
        if dialog.signals is None:
            dialog.signals = self.layer.new_state(opened_at=case.created_at)
        if dialog.preferred is _UNKNOWN:
            # A store read, so before the core's lock; once per dialog (a repeat contact's
            # worker does not change during the case, and a stale answer only changes who
            # is asked first).
            dialog.preferred = await core.preferred_worker(case.resident)
        ctx = DialogContext(case_id=case_id, site=case.site, resident=case.resident,
                            state=dialog.state)
        try:
            reply = await self.assistant.respond(turn, ctx)
        except AssistantError as exc:
            reply = gave_up_reply(self.assistant.name, turn, ctx, str(exc))

        async def record(case, unit: Unit) -> dict[str, Any]:
            human = "connected" if case.state is CaseState.connected else \
                "waiting" if case.state in WAITING else "none"
            probe = unit.requirement(self._request(case, reply.intent, [], []))
            wait_s = self.wait_estimate(probe, unit.pools) if human == "none" else 0.0
            result = self.layer.assess(turn, reply, dialog.signals,
                                       DecisionContext(case.site, wait_s, human))
            dialog.state, dialog.signals = reply.state, result.state
            decision = result.decision
            marked = (untranslated if untranslated and not translated else
                      "no translation came with the turn" if turn.untranslated else None)
            translated_here = turn.language != turn.pivot_language and not marked
            await unit.record(case_id, "turn", {
                "speaker": "resident", "language": turn.language, "text": turn.text,
                "translated": turn.pivot_text if translated_here else None,
                "translated_language": turn.pivot_language if translated_here else None,
                "confidence": reply.raw_confidence,
                **({"untranslated": marked} if marked else {})})
            for action in reply.actions:
                await unit.record(case_id, "action", action.model_dump(mode="json"))
            for sig in result.signal_payloads():
                await unit.record(case_id, "signal", sig.model_dump(mode="json"))
            await unit.record(case_id, "decision",
                              result.decision_payload().model_dump(mode="json"))
            # Once a person is connected the AI never talks to the resident (any mode).
            to_resident = human != "connected" and ai_may_answer(decision, human)
            reply_event_id = None
            if to_resident:
                ai_turn = await unit.record(case_id, "turn", {
                    "speaker": "ai", "language": reply.language, "text": reply.text,
                    "confidence": reply.raw_confidence})
                reply_event_id = ai_turn.event_id  # the edge records its translation
            elif human == "connected" and case.assigned_worker:
                unit.suggest(Suggestion(
                    worker_id=case.assigned_worker, case_id=case_id, text=reply.text,
                    language=reply.language, intent=reply.intent,
                    confidence=reply.raw_confidence, decision=decision.decision.value))
            handoff = None
            emergency: Emergency | None = None
            routes = decision.decision is DecisionKind.escalate or (
                decision.decision is DecisionKind.assist and decision.mode == "joint")
            if routes and human == "none" and "already_waiting" not in decision.reasons:
                flags = list(result.signals.policy_flags)
                hard = [r[5:] for r in decision.reasons if r.startswith("hard:")]
                intent, why = self.layer.routing_basis(reply.intent, result.signals, hard)
                reasons = decision.reasons + ([why] if why else [])
                req = self._request(case, reply.intent, flags, reasons, skills_of=intent)
                emergency = emergency_for(self.layer.cfg.policy, core.cfg.site(case.site),
                                          case.device, flags, case.language,
                                          core.cfg.routing.workflows)
                if emergency is not None:
                    req = req.model_copy(update={
                        "priority": emergency.priority, "workflow": emergency.workflow,
                        "reasons": (req.reasons + ["emergency:" + ",".join(emergency.flags)]
                                    )[:20]})
                    await self._start_emergency(case, emergency, unit)
                queued = await unit.queue(case_id, req, dialog.preferred)
                wait = self.wait_estimate(queued.requirement, unit.pools)
                handoff = {"status": "connecting", "wait_estimate_s":
                           None if math.isinf(wait) else round(wait),
                           "message": "Connecting you to a person"}
            out = {"case_id": case_id, "decision": decision.model_dump(mode="json"),
                   "reply": {"text": reply.text, "language": reply.language,
                             "event_id": reply_event_id}
                   if to_resident else None, "ai_silent": not to_resident,
                   "intent": reply.intent, "handoff": handoff}
            return out, emergency

        try:
            out, emergency = await core.record_turn(case_id, record)
        except CoreError as exc:
            if exc.reason == "closed":
                raise CoreError(f"case {case_id!r} closed meanwhile", reason="closed") from None
            raise
        if emergency is not None:
            out["emergency"] = await self._tell_device(case, emergency)
        return out

    async def _start_emergency(self, case, e: Emergency, unit: Unit) -> None:
        """Inside the unit: the blocking floor alert, the event, the resident's message."""
        alert_id = "al-" + uuid.uuid4().hex[:16]
        detail = {"alert_id": alert_id, "flags": list(e.flags), "number": e.number,
                  "site": case.site, "device": case.device, "language": e.language}
        await unit.record(case.id, "signal", {
            "name": "emergency", "value": True, "detail": detail})
        unit.alert(ALERT_KIND, alert_id=alert_id, case_id=case.id, site=case.site,
                   device=case.device, language=case.language, flags=list(e.flags),
                   blocking=True, sound=e.sound, number=e.number,
                   message=f"Emergency ({', '.join(e.flags)}) at {case.device}: "
                           "staff needed now")
        await unit.record(case.id, "turn", {
            "speaker": "ai", "language": e.language, "text": e.message})

    async def _tell_device(self, case, e: Emergency) -> dict[str, Any]:
        """After the unit: the message on the device (durable command through the bridge)."""
        out: dict[str, Any] = {"flags": list(e.flags), "number": e.number,
                               "message": e.message, "language": e.language,
                               "delivered_to": None}
        if self.send_command is None or case.device is None:
            out["delivery_error"] = "no MQTT bridge runs: the device was not told"
            return out
        args = {"case_id": case.id, "text": e.message, "number": e.number,
                "language": e.language}
        try:
            out["command_id"] = await self.send_command(case.device, DEVICE_MESSAGE, args,
                                                        ttl_s=DEVICE_MESSAGE_TTL_S)
            out["delivered_to"] = case.device
        except Exception as exc:  # noqa: BLE001 - recorded and alerted; the case still routes
            log.warning("emergency message not sent to the device",
                        extra={"case_id": case.id, "device": case.device, "error": str(exc)})
            out["delivery_error"] = f"not sent to {case.device}: {exc}"
        return out

    def _request(self, case, intent: str | None, flags: list[str], reasons: list[str],
                 skills_of: str | None | bool = True):
        """``skills_of``: the intent whose skill is required (True: ``intent`` itself)."""
        skills = self.layer.required_skills(intent if skills_of is True else skills_of, flags)
        # Reason codes are bounded on the wire (100 characters); the detectors' full evidence
        # (scores, nearest exemplar) is in the case's signal events.
        req = EscalateCase(skills=skills, reasons=[r[:100] for r in reasons[:20]]).for_case(case)
        return req.model_copy(update={"intent": intent})

    def forget(self, case_id: str) -> None:
        self._dialogs.pop(case_id, None)


def build_conversations(core: RouterCore) -> Conversations:
    """The transition layer and the assistant from config (``dialogue_parts``) on ``core``."""
    layer, assistant = dialogue_parts(core.cfg, core.clock.now)
    return Conversations(core, layer, assistant)


def dialogue_parts(cfg, now) -> tuple[TransitionLayer, Assistant]:
    """The transition layer and the assistant from config: the OpenAI-compatible adapter
    when assistant.yaml sets llm.url, else the built-in assistant on the demo accounts.
    Loads the embedding model (seconds, ~230 MB): build them once per process and share them
    between cores (a router leading several partitions makes one Conversations per core)."""
    from router.assistant import BuiltinAssistant, InMemoryAccountService, OpenAICompatibleAssistant

    tc = cfg.transition
    layer = TransitionLayer.load(cfg, transition=tc)  # loads the embedding model once
    zones = {s.id: s.timezone for s in cfg.sites.sites}
    accounts = InMemoryAccountService.demo(now=now, tz=next(iter(zones.values()), "UTC"))
    if tc.assistant.llm.url:
        assistant: Assistant = OpenAICompatibleAssistant(tc.assistant, accounts)
    else:
        assistant = BuiltinAssistant(tc.assistant, accounts, site_timezones=zones,
                                     vectors=layer.vectors, cache_dir=layer.cache_dir)
    return layer, assistant
