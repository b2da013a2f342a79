"""Resident turns through the transition layer: the AI answers, or the case moves to a person.

For each resident turn (from a kiosk, a robot's edge node or a chat surface): accept it, let
the assistant answer (outside the core's lock: it may do I/O), read the signals, decide with
the expected-cost engine, and record everything as events — the resident's turn, the AI's
actions and reply, the signals and the decision. An escalation queues the case at once with
the skills the intent and the policy flags call for. Once a person is connected the AI stays
silent to the resident; in human_primary and joint modes its reply goes to the person's desk
as a suggestion instead.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from router.assistant.base import Assistant, AssistantError, DialogContext, DialogState, \
    gave_up_reply
from router.escalation import DecisionContext, ai_may_answer, estimate_wait
from router.models import CaseState, DecisionKind, Requirement
from router.service.core import CoreError, NotFound
from router.service.views import EscalateCase
from router.signals import SignalState
from router.transition import TransitionLayer
from router.turns import TurnRejected

if TYPE_CHECKING:
    from router.service.core import RouterCore

log = logging.getLogger("baton.conversation")
DIALOG_PRUNE_AT = 2000  # dialogs of closed cases are dropped past this many

# An escalating case is not routed yet (a device said "escalate" without queueing it): the
# next turn that escalates queues it.
WAITING = {CaseState.queued, CaseState.offered, CaseState.transferring}


@dataclass
class _Dialog:
    state: DialogState = field(default_factory=DialogState)
    signals: SignalState | None = None


class Conversations:
    def __init__(self, core: RouterCore, layer: TransitionLayer, assistant: Assistant, *,
                 aht_s: float = 300.0):
        self.core, self.layer, self.assistant, self.aht_s = core, layer, assistant, aht_s
        # Per open case. After a router restart a case starts a fresh dialog: the streak of
        # misunderstandings restarts, the events (and so the packet) keep everything.
        self._dialogs: dict[str, _Dialog] = {}

    def wait_estimate(self, req: Requirement) -> float:
        """Seconds until someone of the workflow's widening pools could take the case."""
        best = math.inf
        for starts, ahead, staffed, free in self.core.engine.pools(req):
            best = min(best, starts + estimate_wait(ahead, staffed, self.aht_s, free))
        return best

    async def resident_turn(self, case_id: str, text: str, language: str,
                            translated: str | None, *,
                            untranslated: str | None = None) -> dict[str, Any]:
        core = self.core
        case = await core._case(case_id)
        if case is None:
            raise NotFound(f"unknown case {case_id!r}")
        if case.terminal:
            self.forget(case_id)
            raise CoreError(f"case {case_id!r} is {case.state.value}: open a new one")
        if len(self._dialogs) > DIALOG_PRUNE_AT:
            for stale in [k for k in self._dialogs if k not in core.cases]:
                del self._dialogs[stale]
        now = core.clock.now()
        try:
            # Untranslated (no model for the pair): recorded as said and marked, never
            # dropped; the assistant reads the original.
            turn = self.layer.accept(text, language, at=now, pivot_text=translated or (
                text if untranslated and not translated else None))
        except TurnRejected as exc:
            raise CoreError(f"turn rejected ({exc.code}): {exc}", status=422) from None
        dialog = self._dialogs.setdefault(case_id, _Dialog())
        if dialog.signals is None:
            dialog.signals = self.layer.new_state(opened_at=case.created_at)
        ctx = DialogContext(case_id=case_id, site=case.site, resident=case.resident,
                            state=dialog.state)
        try:
            reply = await self.assistant.respond(turn, ctx)
        except AssistantError as exc:
            reply = gave_up_reply(self.assistant.name, turn, ctx, str(exc))

        async with core._unit():
            case = await core._case(case_id)
            if case is None or case.terminal:
                raise CoreError(f"case {case_id!r} closed meanwhile")
            human = "connected" if case.state is CaseState.connected else \
                "waiting" if case.state in WAITING else "none"
            probe = self.core.requirement(self._request(case, reply.intent, [], []))
            wait_s = self.wait_estimate(probe) if human == "none" else 0.0
            result = self.layer.assess(turn, reply, dialog.signals,
                                       DecisionContext(case.site, wait_s, human))
            dialog.state, dialog.signals = reply.state, result.state
            decision = result.decision
            marked = bool(untranslated and not translated)
            translated_here = turn.language != turn.pivot_language and not marked
            await core._router_event(case_id, "turn", {
                "speaker": "resident", "language": turn.language, "text": turn.text,
                "translated": turn.pivot_text if translated_here else None,
                "translated_language": turn.pivot_language if translated_here else None,
                "confidence": reply.raw_confidence,
                **({"untranslated": untranslated} if marked else {})})
            for action in reply.actions:
                await core._router_event(case_id, "action", action.model_dump(mode="json"))
            for sig in result.signal_payloads():
                await core._router_event(case_id, "signal", sig.model_dump(mode="json"))
            await core._router_event(case_id, "decision",
                                     result.decision_payload().model_dump(mode="json"))
            # Once a person is connected the AI never talks to the resident (any mode).
            to_resident = human != "connected" and ai_may_answer(decision, human)
            reply_event_id = None
            if to_resident:
                ai_turn = core._event(case_id, "turn", {
                    "speaker": "ai", "language": reply.language, "text": reply.text,
                    "confidence": reply.raw_confidence})
                await core._stage(ai_turn)
                reply_event_id = ai_turn.event_id  # the edge records its translation
            elif human == "connected" and case.assigned_worker:
                core._send(case.assigned_worker, {
                    "type": "suggestion", "case_id": case_id, "text": reply.text,
                    "language": reply.language, "intent": reply.intent,
                    "confidence": reply.raw_confidence, "decision": decision.decision.value})
            handoff = None
            routes = decision.decision is DecisionKind.escalate or (
                decision.decision is DecisionKind.assist and decision.mode == "joint")
            if routes and human == "none" and "already_waiting" not in decision.reasons:
                flags = [f for s in result.signal_payloads() if s.name == "policy_flags"
                         for f in s.detail.get("flags", [])]
                req = self._request(case, reply.intent, flags, decision.reasons)
                await core._queue(case_id, req, await self._preferred(case))
                queued = core.cases[case_id]
                wait = self.wait_estimate(queued.requirement)
                handoff = {"status": "connecting", "wait_estimate_s":
                           None if math.isinf(wait) else round(wait),
                           "message": "Connecting you to a person"}
        return {"case_id": case_id, "decision": decision.model_dump(mode="json"),
                "reply": {"text": reply.text, "language": reply.language,
                          "event_id": reply_event_id}
                if to_resident else None, "ai_silent": not to_resident,
                "intent": reply.intent, "handoff": handoff}

    def _request(self, case, intent: str | None, flags: list[str], reasons: list[str]):
        skills = self.layer.required_skills(intent, flags)
        req = EscalateCase(skills=skills, reasons=reasons[:20]).for_case(case)
        return req.model_copy(update={"intent": intent})

    async def _preferred(self, case) -> str | None:
        # Inside the unit: a store read, but only on the (rare) escalating turn.
        return await self.core._preferred_worker(case.resident)

    def forget(self, case_id: str) -> None:
        self._dialogs.pop(case_id, None)


def build_conversations(core: RouterCore) -> Conversations:
    """The transition layer and the assistant from config: the OpenAI-compatible adapter
    when assistant.yaml sets llm.url, else the built-in assistant on the demo accounts."""
    from router.assistant import BuiltinAssistant, InMemoryAccountService, \
        OpenAICompatibleAssistant

    cfg = core.cfg
    tc = cfg.transition
    layer = TransitionLayer.load(cfg, transition=tc)
    zones = {s.id: s.timezone for s in cfg.sites.sites}
    accounts = InMemoryAccountService.demo(now=core.clock.now,
                                           tz=next(iter(zones.values()), "UTC"))
    if tc.assistant.llm.url:
        assistant: Assistant = OpenAICompatibleAssistant(tc.assistant, accounts)
    else:
        assistant = BuiltinAssistant(tc.assistant, accounts, site_timezones=zones)
    return Conversations(core, layer, assistant)
