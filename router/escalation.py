"""The escalation decision: expected cost, with config/policy.yaml. Pure, no I/O.

    P(wrong)        = max(1 - calibrated confidence, out-of-scope score)
    cost_of_wrong   = risk class cost x sentiment band multiplier x policy flag multipliers
                      x soft trigger multipliers x (1 + per_minute x minutes past free_s)
    E[cost of AI]   = P(wrong) x cost_of_wrong
    cost of human   = human.base + human.per_wait_minute x min(estimated wait, max_wait_s)/60

Hard triggers always escalate. What the decision kinds mean for the caller:

- ``continue_ai``: the AI's reply goes to the resident; no person is needed.
- ``escalate``:    a person takes the case; the AI stops answering the resident.
- ``assist``:      a person is (or is being brought) in the loop and the AI keeps working
                   with them: with a person connected, the AI's reply goes to that person as
                   a suggestion, not to the resident; in joint mode before anyone is
                   connected, the case is routed and the AI keeps answering meanwhile.

Modes (per site and intent, see ModesConfig.mode):
- ai_primary:    continue_ai | escalate; once a person is connected: assist.
- human_primary: escalate from the first turn (routed at once); once connected: assist.
- joint:         continue_ai below joint_assist_ratio x cost of human, assist up to the cost
                 of a human, escalate above it or on a hard trigger. Once a person is
                 connected, each turn is arbitrated: continue_ai (the AI answers, the person
                 watches) or assist (the person answers, the AI suggests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from protocol.models import Decision, DecisionKind
from router.policy import Mode, PolicyFile, load_policy
from router.signals import TurnSignals

__all__ = ["DecisionContext", "EscalationEngine", "ai_may_answer", "estimate_wait",
           "load_policy"]

HumanState = Literal["none", "waiting", "connected"]


def estimate_wait(waiting_ahead: int, staffed: int, aht_s: float, free: int = 0) -> float:
    """Seconds until a person of the required pool could take a new case.

    ``waiting_ahead``: cases queued before it for that pool; ``staffed``: workers of the pool
    signed in (free or busy); ``free``: of those, how many could take it now; ``aht_s``: mean
    handle time. With ``free`` > cases ahead the wait is 0; otherwise the case needs
    ``ahead - free + 1`` completions, which arrive at ``staffed / AHT`` per second (M/M/c
    with every server busy). Nobody staffed: ``math.inf``.
    """
    if waiting_ahead < 0 or staffed < 0 or free < 0:
        raise ValueError("counts must be >= 0")
    if not math.isfinite(aht_s) or aht_s <= 0:
        raise ValueError(f"AHT must be a finite number of seconds > 0, got {aht_s!r}")
    if staffed == 0:
        return math.inf
    if free > waiting_ahead:
        return 0.0
    return (waiting_ahead - free + 1) * aht_s / staffed


@dataclass(frozen=True, slots=True)
class DecisionContext:
    site: str
    wait_s: float = 0.0            # estimated wait for the required pool (estimate_wait)
    human: HumanState = "none"     # none | waiting (queued/offered) | connected


def ai_may_answer(decision: Decision, human: HumanState) -> bool:
    """Whether the AI's reply of this turn goes to the resident."""
    if decision.decision is DecisionKind.continue_ai:
        return True
    return decision.decision is DecisionKind.assist and human != "connected"


class EscalationEngine:
    def __init__(self, policy: PolicyFile):
        self.policy = policy
        self._hard = frozenset(policy.hard_triggers)
        self._flag_rules = {r.id: r for r in policy.flags}

    def mode(self, site: str, intent: str | None) -> Mode:
        return self.policy.modes.mode(site, intent)

    def human_cost(self, wait_s: float) -> tuple[float, float]:
        """(cost of a human now, the wait used) for an estimated wait."""
        h = self.policy.human
        wait = h.max_wait_s if not math.isfinite(wait_s) else min(max(wait_s, 0.0), h.max_wait_s)
        return h.base + h.per_wait_minute * wait / 60.0, wait

    def decide(self, sig: TurnSignals, ctx: DecisionContext) -> Decision:
        p = self.policy
        mode = self.mode(ctx.site, sig.intent)

        triggers: list[str] = []
        if sig.asked_for_person:
            triggers.append("asked_for_person")
        if sig.regulatory_flags:
            triggers.append("regulatory_flag")
        if sig.repeated_misunderstanding:
            triggers.append("repeated_misunderstanding")
        if sig.gave_up:
            triggers.append("assistant_gave_up")
        if sig.time_in_ai_s >= p.time_in_ai.limit_s:
            triggers.append("ai_time_limit")
        if sig.escalation_phrase:
            triggers.append("escalation_phrase")
        hard = [t for t in triggers if t in self._hard]

        base = p.risk_classes[sig.intent_class].cost_of_wrong
        band = next(b for b in p.sentiment.bands if b.name == sig.sentiment_band)
        flag_mult = 1.0
        for f in sig.policy_flags:
            rule = self._flag_rules.get(f)
            if rule is not None:
                flag_mult *= rule.multiplier
        trigger_mult = 1.0
        for t in triggers:
            if t not in self._hard:
                trigger_mult *= p.multipliers.get(t, 1.0)
        t = p.time_in_ai
        time_mult = 1.0 + t.per_minute * max(0.0, sig.time_in_ai_s - t.free_s) / 60.0
        cost_wrong = base * band.multiplier * flag_mult * trigger_mult * time_mult
        p_wrong = max(1.0 - sig.confidence, sig.out_of_scope)
        cost_ai = p_wrong * cost_wrong
        cost_human, wait = self.human_cost(ctx.wait_s)

        reasons = [f"hard:{t}" for t in hard]
        if "regulatory_flag" in hard:
            reasons += [f"regulatory_flag:{f}" for f in sig.regulatory_flags]
        over = cost_ai > cost_human
        ratio = p.joint_assist_ratio
        if ctx.human == "connected":
            kind = DecisionKind.assist
            if mode == "joint" and not hard and cost_ai <= ratio * cost_human:
                kind = DecisionKind.continue_ai
            reasons.append("human_connected")
        elif mode == "human_primary":
            kind = DecisionKind.escalate
            reasons.append("mode_human_primary")
        elif hard or over:
            kind = DecisionKind.escalate
        elif mode == "joint" and cost_ai > ratio * cost_human:
            kind = DecisionKind.assist
            reasons.append("joint_assist")
        else:
            kind = DecisionKind.continue_ai
        if over:
            reasons.append("expected_cost")
        if ctx.human == "waiting":
            # Routed already. A quiet turn does not un-route it: in joint mode the AI keeps
            # answering until the person connects, otherwise it stays quiet meanwhile.
            if kind is DecisionKind.continue_ai:
                kind = DecisionKind.assist if mode == "joint" else DecisionKind.escalate
            reasons.append("already_waiting")
        if kind is not DecisionKind.continue_ai:
            reasons += self._factors(sig, band.name, triggers, hard)

        threshold = min(1.0, max(0.0, 1.0 - cost_human / cost_wrong))
        return Decision(
            decision=kind, mode=mode, reasons=reasons, expected_cost_ai=round(cost_ai, 4),
            cost_human=round(cost_human, 4), threshold=round(threshold, 4),
            numbers={
                "p_wrong": round(p_wrong, 4), "confidence": round(sig.confidence, 4),
                "raw_confidence": round(sig.raw_confidence, 4),
                "out_of_scope": round(sig.out_of_scope, 4),
                "cost_of_wrong": round(cost_wrong, 4), "risk_cost": base,
                "sentiment": round(sig.sentiment, 4), "mood": round(sig.mood, 4),
                "sentiment_multiplier": band.multiplier, "flag_multiplier": round(flag_mult, 4),
                "trigger_multiplier": round(trigger_mult, 4),
                "time_multiplier": round(time_mult, 4), "time_in_ai_s": round(sig.time_in_ai_s, 1),
                "wait_s": round(wait, 1),
                "misunderstanding_streak": float(sig.misunderstanding_streak),
                "assist_ratio": ratio,
            })

    @staticmethod
    def _factors(sig: TurnSignals, band: str, triggers: list[str], hard: list[str]) -> list[str]:
        """What weighed, for the human reading the decision."""
        out = [f"intent_class:{sig.intent_class}", f"sentiment:{band}"]
        listed = set(sig.regulatory_flags) if "regulatory_flag" in hard else set()
        out += [f"policy_flag:{f}" for f in sig.policy_flags if f not in listed]
        out += [f"soft:{t}" for t in triggers if t not in hard]
        return out
