"""The conversation corpus (tests/data/conversations) and a driver that runs the real
transition layer over it: accept -> built-in assistant -> signals -> escalation decision.

Used by tests/transition/test_corpus.py and benchmarks/escalation.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from router.assistant import BuiltinAssistant, DialogContext, InMemoryAccountService
from router.config import BatonConfig
from router.escalation import DecisionContext
from router.transition import TransitionLayer

REPO = Path(__file__).resolve().parents[2]
CORPUS_DIR = REPO / "tests" / "data" / "conversations"
# Monday 2025-10-06 10:00 in Tokyo: appointments of the demo accounts are on later weekdays.
START = 1759712400.0

Expect = Literal["continue_ai", "assist", "escalate"]


class CorpusTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    say: str
    pivot: str | None = None
    expect: Expect
    human: Literal["none", "waiting", "connected"] = "none"
    after_s: float | None = None


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    site: str
    language: str
    resident: str | None = None
    wait_s: float = 120.0
    gap_s: float = 20.0
    turns: list[CorpusTurn] = Field(min_length=1)


def load_corpus(directory: Path = CORPUS_DIR) -> list[Conversation]:
    out: list[Conversation] = []
    for path in sorted(directory.glob("*.yaml")):
        for item in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            out.append(Conversation.model_validate(item))
    ids = [c.id for c in out]
    assert len(ids) == len(set(ids)), "conversation ids must be unique"
    return out


@dataclass(slots=True)
class TurnResult:
    conversation: str
    language: str
    index: int
    say: str
    expected: str
    got: str
    intent: str | None
    reasons: list[str]
    numbers: dict[str, float]


@dataclass(slots=True)
class CorpusReport:
    results: list[TurnResult] = field(default_factory=list)

    def figures(self) -> dict:
        r = self.results
        n = len(r)
        correct = sum(x.expected == x.got for x in r)
        not_esc = [x for x in r if x.expected != "escalate"]
        esc = [x for x in r if x.expected == "escalate"]
        false_esc = sum(x.got == "escalate" for x in not_esc)
        missed = sum(x.got != "escalate" for x in esc)
        convs = {x.conversation for x in r}
        conv_ok = sum(all(x.expected == x.got for x in r if x.conversation == c) for c in convs)
        by_lang: dict[str, list[int]] = {}
        for x in r:
            s = by_lang.setdefault(x.language, [0, 0])
            s[0] += x.expected == x.got
            s[1] += 1
        return {
            "conversations": len(convs), "turns": n,
            "languages": sorted(by_lang),
            "accuracy": round(correct / n, 4) if n else None,
            "false_escalation_rate": round(false_esc / len(not_esc), 4) if not_esc else None,
            "missed_escalation_rate": round(missed / len(esc), 4) if esc else None,
            "false_escalations": false_esc, "missed_escalations": missed,
            "expected_escalations": len(esc), "expected_other": len(not_esc),
            "conversation_exact_rate": round(conv_ok / len(convs), 4) if convs else None,
            "accuracy_by_language": {k: round(a / b, 4) for k, (a, b) in sorted(by_lang.items())},
            "confusion": {f"{e}->{g}": c for (e, g), c in
                          sorted(Counter((x.expected, x.got) for x in r).items())},
            "mismatches": [{"conversation": x.conversation, "turn": x.index, "say": x.say,
                            "expected": x.expected, "got": x.got, "intent": x.intent,
                            "reasons": x.reasons,
                            "expected_cost_ai": x.numbers.get("expected_cost_ai"),
                            "cost_human": x.numbers.get("cost_human")}
                           for x in r if x.expected != x.got],
        }


def make_layer(cfg: BatonConfig) -> tuple[TransitionLayer, BuiltinAssistant]:
    """The real layer with the identity calibrator (nothing fitted in a fresh checkout)."""
    from router.calibration import Calibrator

    layer = TransitionLayer.load(cfg, calibrator=Calibrator())
    accounts = InMemoryAccountService.demo(now=lambda: START)
    tz = {s.id: s.timezone for s in cfg.sites.sites}
    return layer, BuiltinAssistant(layer.cfg.assistant, accounts, site_timezones=tz)


async def run_conversation(layer: TransitionLayer, assistant: BuiltinAssistant,
                           conv: Conversation, report: CorpusReport) -> None:
    at = START
    state = layer.new_state(opened_at=at)
    ctx = DialogContext(case_id=conv.id, site=conv.site, resident=conv.resident)
    for i, t in enumerate(conv.turns):
        at += t.after_s if t.after_s is not None else conv.gap_s
        turn = layer.accept(t.say, conv.language, pivot_text=t.pivot, at=at)
        reply = await assistant.respond(turn, ctx)
        ctx.state = reply.state
        result = layer.assess(turn, reply, state, DecisionContext(
            site=conv.site, wait_s=conv.wait_s, human=t.human))
        state = result.state
        d = result.decision
        report.results.append(TurnResult(
            conversation=conv.id, language=conv.language, index=i, say=t.say,
            expected=t.expect, got=d.decision.value, intent=reply.intent, reasons=d.reasons,
            numbers={**d.numbers, "expected_cost_ai": d.expected_cost_ai,
                     "cost_human": d.cost_human}))


def run_corpus(cfg: BatonConfig, conversations: list[Conversation] | None = None) -> CorpusReport:
    layer, assistant = make_layer(cfg)
    report = CorpusReport()

    async def go() -> None:
        for conv in conversations if conversations is not None else load_corpus():
            await run_conversation(layer, assistant, conv, report)

    asyncio.run(go())
    return report
