"""The expected-cost decision: asymmetric costs, policy as data, hard triggers, modes, the
cost of a human growing with the wait."""

from __future__ import annotations

import math

import pytest

from protocol.models import Decision
from router.assistant.base import AssistantReply
from router.calibration import Calibrator
from router.escalation import (
    DecisionContext,
    EscalationEngine,
    ai_may_answer,
    estimate_wait,
)
from router.transition import TransitionLayer
from tests.transition.conftest import T0

SITE = "city-office"


def reply(intent, conf, oos=0.02, **kw):
    return AssistantReply(assistant="builtin", text="ok", language="en", intent=intent,
                          raw_confidence=conf, out_of_scope=oos, **kw)


def decide(layer, text, intent, conf, *, site=SITE, wait_s=120.0, human="none", oos=0.02,
           language="en", pivot=None, state=None, at=T0 + 20, **kw) -> Decision:
    turn = layer.accept(text, language, pivot_text=pivot, at=at)
    st = state or layer.new_state(T0)
    return layer.assess(turn, reply(intent, conf, oos, **kw), st,
                        DecisionContext(site=site, wait_s=wait_s, human=human)).decision


def load(cfg, directory) -> TransitionLayer:
    return TransitionLayer.load(cfg.model_copy(update={"directory": str(directory)}),
                                calibrator=Calibrator())


FRUSTRATED = "This is awful, I am furious and sick of this terrible mess"
CALM = "Could you tell me that, please?"


def test_asymmetry_same_confidence_different_stakes(layer):
    """The acceptance case: the same raw confidence escalates a collections intent with a
    frustrated resident and keeps the AI on a balance lookup with a calm one."""
    raw = 0.8
    collections = decide(layer, FRUSTRATED, "collections", raw)
    balance = decide(layer, CALM, "balance_lookup", raw)
    assert collections.numbers["raw_confidence"] == balance.numbers["raw_confidence"] == raw
    assert collections.decision == "escalate"
    assert balance.decision == "continue_ai"
    # by cost, not by a hard trigger
    assert "expected_cost" in collections.reasons
    assert not any(r.startswith("hard:") for r in collections.reasons)
    assert "sentiment:frustrated" in collections.reasons
    assert "intent_class:financial" in collections.reasons
    assert collections.expected_cost_ai > collections.cost_human
    assert balance.expected_cost_ai < balance.cost_human
    assert collections.numbers["sentiment_multiplier"] == 3.0
    assert collections.numbers["flag_multiplier"] == 1.5
    # each factor matters alone: calm collections and frustrated balance stay with the AI
    assert decide(layer, CALM, "collections", raw).decision == "continue_ai"
    assert decide(layer, FRUSTRATED, "balance_lookup", raw).decision == "continue_ai"


def test_decision_numbers_are_consistent(layer):
    d = decide(layer, CALM, "balance_lookup", 0.7, oos=0.1, wait_s=240)
    n = d.numbers
    assert n["p_wrong"] == pytest.approx(0.3)
    assert n["cost_of_wrong"] == pytest.approx(3.0 * 1.0)
    assert d.expected_cost_ai == pytest.approx(0.9)
    assert d.cost_human == pytest.approx(2.0 + 0.25 * 4)
    assert d.threshold == pytest.approx(1 - 3.0 / 3.0)
    assert d.mode == "ai_primary"
    # out of scope dominates when it is larger than 1 - confidence
    d = decide(layer, CALM, "balance_lookup", 0.95, oos=0.7)
    assert d.numbers["p_wrong"] == pytest.approx(0.7)


def test_policy_file_changes_the_decision_without_code(config_copy, cfg):
    base = load(cfg, config_copy)
    assert decide(base, FRUSTRATED, "collections", 0.8).decision == "escalate"
    text = (config_copy / "policy.yaml").read_text()
    text = text.replace("financial: {cost_of_wrong: 8.0", "financial: {cost_of_wrong: 1.0")
    (config_copy / "policy.yaml").write_text(text)
    cheaper = load(cfg, config_copy)
    assert decide(cheaper, FRUSTRATED, "collections", 0.8).decision == "continue_ai"
    # and the other way: a routine question made expensive escalates
    text = text.replace("routine:   {cost_of_wrong: 1.0", "routine:   {cost_of_wrong: 40.0")
    (config_copy / "policy.yaml").write_text(text)
    costly = load(cfg, config_copy)
    assert decide(costly, CALM, "office_hours", 0.8).decision == "escalate"
    assert decide(base, CALM, "office_hours", 0.8).decision == "continue_ai"


def test_hard_triggers_always_escalate(layer):
    # confident, calm, routine: only the trigger escalates
    d = decide(layer, "Can I talk to a person?", "office_hours", 0.99)
    assert d.decision == "escalate" and "hard:asked_for_person" in d.reasons
    d = decide(layer, "How do I renew my visa?", "residency_status", 0.99)
    assert d.decision == "escalate"
    assert {"hard:regulatory_flag", "regulatory_flag:residency_status"} <= set(d.reasons)
    d = decide(layer, "x", None, 0.0, oos=1.0, gave_up=True)
    assert "hard:assistant_gave_up" in d.reasons and d.decision == "escalate"
    d = decide(layer, CALM, "office_hours", 0.99, at=T0 + 1300)
    assert d.decision == "escalate" and "hard:ai_time_limit" in d.reasons
    # hard even when a person is expensive (nobody staffed)
    d = decide(layer, "Can I talk to a person?", "office_hours", 0.99, wait_s=math.inf)
    assert d.decision == "escalate"


def test_hard_trigger_made_soft_by_policy(config_copy, cfg):
    text = (config_copy / "policy.yaml").read_text()
    text = text.replace("hard_triggers: [asked_for_person, ", "hard_triggers: [")
    text = text.replace("  escalation_phrase: 1.5\n",
                        "  escalation_phrase: 1.5\n  asked_for_person: 2.0\n")
    (config_copy / "policy.yaml").write_text(text)
    soft = load(cfg, config_copy)
    d = decide(soft, "Can I talk to a person?", "office_hours", 0.99)
    assert d.decision == "continue_ai" and d.numbers["trigger_multiplier"] == 2.0


def test_cost_of_a_human_grows_with_the_wait(layer):
    # same turn: with a short queue a person is cheap enough, with a long one the AI goes on
    args = (layer, "I am worried about this letter", "collections", 0.75)
    short = decide(*args, wait_s=0)
    long = decide(*args, wait_s=1200)
    assert short.cost_human < long.cost_human
    assert short.decision == "escalate" and long.decision == "continue_ai"
    nobody = decide(*args, wait_s=math.inf)
    assert nobody.numbers["wait_s"] == 1800 and nobody.cost_human == pytest.approx(2 + 0.25 * 30)


def test_estimate_wait():
    assert estimate_wait(0, 3, 300, free=1) == 0.0
    assert estimate_wait(2, 3, 300, free=3) == 0.0
    assert estimate_wait(0, 3, 300) == pytest.approx(100.0)        # next of 3 to finish
    assert estimate_wait(5, 2, 240, free=1) == pytest.approx(5 * 120)
    assert estimate_wait(4, 0, 300) == math.inf
    with pytest.raises(ValueError):
        estimate_wait(-1, 2, 300)
    with pytest.raises(ValueError):
        estimate_wait(1, 2, 0)


def test_human_primary_mode(layer):
    d = decide(layer, "I want to complain about the counter", "complaint", 0.99)
    assert d.mode == "human_primary" and d.decision == "escalate"
    assert "mode_human_primary" in d.reasons
    d = decide(layer, "and another thing", "complaint", 0.99, human="connected")
    assert d.decision == "assist" and not ai_may_answer(d, "connected")


def test_joint_mode_bands(layer):
    site = "north-branch"  # joint by default in policy.yaml
    low = decide(layer, CALM, "office_hours", 0.95, site=site)
    mid = decide(layer, CALM, "balance_lookup", 0.45, site=site)       # 3*0.55=1.65 in (1.25, 2.5]
    high = decide(layer, FRUSTRATED, "collections", 0.6, site=site)
    assert low.mode == mid.mode == high.mode == "joint"
    assert (low.decision, mid.decision, high.decision) == ("continue_ai", "assist", "escalate")
    assert "joint_assist" in mid.reasons and ai_may_answer(mid, "none")
    # with a person connected, each turn is arbitrated
    assert decide(layer, CALM, "office_hours", 0.95, site=site,
                  human="connected").decision == "continue_ai"
    assert decide(layer, CALM, "balance_lookup", 0.45, site=site,
                  human="connected").decision == "assist"


def test_waiting_for_a_person(layer):
    d = decide(layer, CALM, "office_hours", 0.95, human="waiting")
    assert d.decision == "escalate" and "already_waiting" in d.reasons
    assert not ai_may_answer(d, "waiting")
    d = decide(layer, CALM, "office_hours", 0.95, site="north-branch", human="waiting")
    assert d.decision == "assist" and ai_may_answer(d, "waiting")


def test_ai_primary_with_person_connected_is_assist(layer):
    d = decide(layer, CALM, "office_hours", 0.99, human="connected")
    assert d.decision == "assist" and d.reasons[-2:] == ["intent_class:routine", "sentiment:calm"]
    assert "human_connected" in d.reasons


def test_mode_resolution_order(layer):
    modes = layer.cfg.policy.modes.model_copy(update={
        "default": "ai_primary", "intents": {"complaint": "human_primary"},
        "sites": {"north-branch": layer.cfg.policy.modes.sites["north-branch"].model_copy(
            update={"default": "joint", "intents": {"office_hours": "human_primary"}})}})
    assert modes.mode("north-branch", "office_hours") == "human_primary"   # site intent
    assert modes.mode("north-branch", "complaint") == "human_primary"      # intent
    assert modes.mode("north-branch", "thanks") == "joint"                 # site default
    assert modes.mode("city-office", "thanks") == "ai_primary"             # default
    assert modes.mode("city-office", None) == "ai_primary"


def test_decision_round_trips_as_json(layer):
    d = decide(layer, FRUSTRATED, "collections", 0.8, wait_s=math.inf)
    assert Decision.model_validate_json(d.model_dump_json()) == d


def test_engine_is_pure(layer):
    engine = EscalationEngine(layer.cfg.policy)
    turn = layer.accept(FRUSTRATED, "en", pivot_text=None, at=T0 + 20)
    sig, _ = layer.signals.assess(turn, reply("collections", 0.8), layer.new_state(T0))
    ctx = DecisionContext(site=SITE, wait_s=60)
    assert engine.decide(sig, ctx) == engine.decide(sig, ctx)
