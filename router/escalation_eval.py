"""Conversation corpora through the real transition layer: accept -> built-in assistant ->
signals -> escalation decision, with figures per category and language.

A corpus file is a YAML list of conversations (tests/data/conversations/README.md). Optional
fields used for held-out measurement: ``split`` (train | validation | test) on a
conversation; ``category``, ``intent`` (the expected intent) and ``asr`` on a turn.

Used by ``baton eval-escalation``, tests/transition and benchmarks/escalation.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import BatonError
from router.escalation import DecisionContext

# Monday 2025-10-06 10:00 in Tokyo: appointments of the demo accounts are on later weekdays.
START = 1759712400.0

Expect = Literal["continue_ai", "assist", "escalate"]
Split = Literal["train", "validation", "test"]
# Categories whose turns must reach a person; recall targets apply to the first four.
SAFETY_CATEGORIES = ("violence", "medical")


class CorpusTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    say: str
    pivot: str | None = None
    expect: Expect
    human: Literal["none", "waiting", "connected"] = "none"
    after_s: float | None = None
    category: str | None = None
    intent: str | None = None
    asr: bool = False


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    site: str
    language: str
    resident: str | None = None
    wait_s: float = 120.0
    gap_s: float = 20.0
    split: Split | None = None
    turns: list[CorpusTurn] = Field(min_length=1)


class CorpusError(BatonError, ValueError):
    """A corpus file that cannot be read; the message names the file and the entry."""

    reason = "corpus_invalid"


def load_corpus_file(path: str | Path) -> list[Conversation]:
    path = Path(path)
    try:
        items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise CorpusError(f"{path}: cannot read: {exc}") from None
    if not isinstance(items, list):
        raise CorpusError(f"{path}: expected a list of conversations")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(Conversation.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise CorpusError(f"{path}: conversation {i} ({where}): {err['msg']}") from None
    return out


def load_corpus(paths: Path | Iterable[Path], split: str | None = None) -> list[Conversation]:
    """Conversations of a file, of every *.yaml in a directory, or of several; only those of
    ``split`` when given. Ids must be unique."""
    files: list[Path] = []
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        p = Path(p)
        files += sorted(p.glob("*.yaml")) if p.is_dir() else [p]
    out = [c for f in files for c in load_corpus_file(f)]
    ids = Counter(c.id for c in out)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise CorpusError(f"conversation ids must be unique: {dup[:5]}")
    return [c for c in out if split is None or c.split == split]


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
    category: str | None = None
    expected_intent: str | None = None
    asr: bool = False
    split: str | None = None
    signals: dict = field(default_factory=dict)


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _group(rows: list[TurnResult]) -> dict:
    esc = [x for x in rows if x.expected == "escalate"]
    other = [x for x in rows if x.expected != "escalate"]
    intents = [x for x in rows if x.expected_intent and x.category == "routine"]
    return {
        "turns": len(rows),
        "accuracy": _rate(sum(x.expected == x.got for x in rows), len(rows)),
        "missed_escalations": sum(x.got != "escalate" for x in esc),
        "expected_escalations": len(esc),
        "missed_escalation_rate": _rate(sum(x.got != "escalate" for x in esc), len(esc)),
        "false_escalations": sum(x.got == "escalate" for x in other),
        "expected_other": len(other),
        "false_escalation_rate": _rate(sum(x.got == "escalate" for x in other), len(other)),
        "routine_intent_accuracy": _rate(sum(x.intent == x.expected_intent for x in intents),
                                         len(intents)),
    }


@dataclass(slots=True)
class CorpusReport:
    results: list[TurnResult] = field(default_factory=list)

    def figures(self) -> dict:
        r = self.results
        n = len(r)
        convs = {x.conversation for x in r}
        conv_ok = sum(all(x.expected == x.got for x in r if x.conversation == c) for c in convs)
        by_lang: dict[str, list[TurnResult]] = defaultdict(list)
        by_cat: dict[str, list[TurnResult]] = defaultdict(list)
        for x in r:
            by_lang[x.language].append(x)
            by_cat[x.category or "uncategorized"].append(x)
            if x.asr:
                by_cat["asr_style"].append(x)
        overall = _group(r)
        intents = [x for x in r if x.expected_intent]
        return {
            "conversations": len(convs), "turns": n, "languages": sorted(by_lang),
            **overall,
            "intent_accuracy": _rate(sum(x.intent == x.expected_intent for x in intents),
                                     len(intents)),
            "conversation_exact_rate": _rate(conv_ok, len(convs)),
            "accuracy_by_language": {k: _group(v)["accuracy"] for k, v in sorted(by_lang.items())},
            "by_language": {k: _group(v) for k, v in sorted(by_lang.items())},
            "by_category": {k: _group(v) for k, v in sorted(by_cat.items())},
            "by_language_category": {
                f"{lang}/{cat}": _group([x for x in v if (x.category or "uncategorized") == cat])
                for lang, v in sorted(by_lang.items())
                for cat in sorted({x.category or "uncategorized" for x in v})},
            "confusion": {f"{e}->{g}": c for (e, g), c in
                          sorted(Counter((x.expected, x.got) for x in r).items())},
            "mismatches": [{"conversation": x.conversation, "turn": x.index, "say": x.say,
                            "category": x.category, "expected": x.expected, "got": x.got,
                            "intent": x.intent, "expected_intent": x.expected_intent,
                            "reasons": x.reasons,
                            "expected_cost_ai": x.numbers.get("expected_cost_ai"),
                            "cost_human": x.numbers.get("cost_human")}
                           for x in r if x.expected != x.got
                           or (x.expected_intent and x.category == "routine"
                               and x.intent != x.expected_intent)],
        }


def make_layer(cfg, *, calibrator=None):
    """The real layer (identity calibrator unless given: nothing fitted in a fresh checkout)
    and the built-in assistant on the demo accounts, sharing one embedding cache."""
    from router.assistant import BuiltinAssistant, InMemoryAccountService
    from router.calibration import Calibrator
    from router.transition import TransitionLayer

    layer = TransitionLayer.load(cfg, calibrator=calibrator or Calibrator(),
                                 transition=getattr(cfg, "transition", None))
    accounts = InMemoryAccountService.demo(now=lambda: START)
    tz = {s.id: s.timezone for s in cfg.sites.sites}
    return layer, BuiltinAssistant(layer.cfg.assistant, accounts, site_timezones=tz,
                                   vectors=layer.vectors, cache_dir=layer.cache_dir)


async def run_conversation(layer, assistant, conv: Conversation, report: CorpusReport,
                           keep_signals: bool = False) -> None:
    from router.assistant import DialogContext

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
        sig = result.signals
        report.results.append(TurnResult(
            conversation=conv.id, language=conv.language, index=i, say=t.say,
            expected=t.expect, got=d.decision.value, intent=reply.intent, reasons=d.reasons,
            numbers={**d.numbers, "expected_cost_ai": d.expected_cost_ai,
                     "cost_human": d.cost_human},
            category=t.category, expected_intent=t.intent, asr=t.asr, split=conv.split,
            signals={"semantic": sig.semantic, "flags": list(sig.policy_flags),
                     "asked_for_person": sig.asked_for_person,
                     "confidence": sig.confidence} if keep_signals else {}))


def run_corpus(cfg, conversations: list[Conversation], *, layer=None, assistant=None,
               keep_signals: bool = False) -> CorpusReport:
    if layer is None or assistant is None:
        layer, assistant = make_layer(cfg)
    report = CorpusReport()

    async def go() -> None:
        for conv in conversations:
            await run_conversation(layer, assistant, conv, report, keep_signals)

    asyncio.run(go())
    return report


# --- thresholds --------------------------------------------------------------------------

# Which corpus category a detector is meant to catch. Complaints to a regulator are the
# complaint turns with no expected intent (a plain complaint is the complaint intent's).
DETECTOR_CATEGORY = {"ask_for_person": "person", "medical": "medical",
                     "safeguarding": "violence", "collections_enforcement": "enforcement",
                     "residency_status": "residency", "regulator_complaint": "complaint"}


def _is_positive(detector: str, x: TurnResult) -> bool:
    if detector == "regulator_complaint":
        return x.category == "complaint" and x.expected_intent is None
    return x.category == DETECTOR_CATEGORY.get(detector)


def fit_thresholds(report: CorpusReport, recall: float = 0.98) -> dict[str, dict]:
    """Per detector: the highest threshold (rounded down to 0.01) that keeps ``recall`` of
    its category's turns, and the precision at that point over every turn (a turn of another
    escalating category counts as a false positive too). Needs ``keep_signals``."""
    import math

    out: dict[str, dict] = {}
    detectors = {k for x in report.results for k in x.signals.get("semantic", {})}
    for det in sorted(detectors):
        cat = DETECTOR_CATEGORY.get(det)
        if cat is None:
            continue
        rows = [(x.signals["semantic"][det]["score"], _is_positive(det, x), x)
                for x in report.results if det in x.signals.get("semantic", {})]
        pos = sorted(s for s, is_pos, _ in rows if is_pos)
        if not pos:
            continue
        k = int(math.floor((1 - recall) * len(pos) + 1e-9))
        thr = math.floor(pos[k] * 100) / 100
        tp = sum(s >= thr for s, p, _ in rows if p)
        fp = sum(s >= thr for s, p, _ in rows if not p)
        fp_ordinary = sum(s >= thr for s, p, x in rows if not p and x.expected != "escalate")
        out[det] = {"category": cat, "threshold": thr, "positives": len(pos),
                    "recall": round(tp / len(pos), 4),
                    "precision": round(tp / (tp + fp), 4) if tp + fp else None,
                    "false_positives": fp, "false_positives_on_non_escalating": fp_ordinary}
    return out
