"""Per-turn signals of the transition layer. Pure: a function of (turn, assistant reply,
state); the clock comes in as the turn's ``at``.

Signals: calibrated confidence, sentiment on the pivot text (VADER) with a running mood,
explicit request for a person and escalation phrases per language, repeated
misunderstanding (N turns in a row not understood, or the same request again), policy
flags from rules over intents, entities and phrases, the assistant giving up, time with
the AI.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from protocol.models import SignalPayload
from router.assistant.base import AssistantReply
from router.assistant.config import PhrasesConfig
from router.calibration import Calibrator
from router.policy import PolicyFile
from router.semantic import ASK_FOR_PERSON, Reading, SemanticDetectors
from router.turns import AcceptedTurn


class SentimentScorer(Protocol):
    def __call__(self, text: str) -> float:
        """A score in [-1, 1]: negative is unhappy."""
        ...


class VaderSentiment:
    """VADER's compound score (lexicon and rules, English: the pivot text)."""

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def __call__(self, text: str) -> float:
        return float(self._analyzer.polarity_scores(text)["compound"])


# --- phrases --------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Case, width and accents folded: "¡Hablar con UNA Persona!" ~ "¡hablar con una persona!"."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if not unicodedata.combining(c))


_LATIN = re.compile(r"[a-z0-9]")


def _pattern(phrase: str) -> str:
    p = re.escape(normalize(phrase))
    # Whole words for Latin-script phrases (bounded by Latin letters and digits only, so
    # "DV" matches inside Japanese text); CJK has no spaces: plain substrings there.
    return rf"(?<![a-z0-9]){p}(?![a-z0-9])" if _LATIN.search(normalize(phrase)) else p


class PhraseMatcher:
    """Phrases per language, compiled once; ``match`` returns the first phrase found."""

    def __init__(self, phrases: Mapping[str, Iterable[str]]):
        self._rx: dict[str, tuple[re.Pattern[str], list[str]]] = {}
        for lang, items in phrases.items():
            items = [p for p in items if p.strip()]
            if items:
                rx = re.compile("|".join(f"({_pattern(p)})" for p in items))
                self._rx[lang] = (rx, items)

    def match(self, normalized_text: str, language: str) -> str | None:
        entry = self._rx.get(language)
        if entry is None:
            return None
        m = entry[0].search(normalized_text)
        return entry[1][m.lastindex - 1] if m and m.lastindex else None


# --- state and result -----------------------------------------------------------------------


@dataclass(slots=True)
class SignalState:
    """What the signals remember across the turns of one case (JSON-able via to_dict)."""

    opened_at: float                # when the AI started on the case (opened or handed back)
    turns: int = 0
    streak: int = 0                 # turns in a row not understood
    last_intent: str | None = None
    last_tokens: list[str] = field(default_factory=list)
    last_asked: bool = False        # the assistant's last reply was a question (slot filling)
    mood: float | None = None
    flags: list[str] = field(default_factory=list)  # every flag raised so far, in order

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: Mapping) -> SignalState:
        return SignalState(**d)


@dataclass(frozen=True, slots=True)
class TurnSignals:
    assistant: str
    intent: str | None
    intent_class: str
    raw_confidence: float
    confidence: float               # calibrated P(the AI is right)
    out_of_scope: float
    sentiment: float                # this turn, after the escalation-phrase cap
    mood: float                     # running average over the turns
    sentiment_band: str
    asked_for_person: str | None    # the phrase heard, or None
    escalation_phrase: str | None
    misunderstanding_streak: int
    repeated_misunderstanding: bool
    policy_flags: tuple[str, ...]   # raised on this turn
    regulatory_flags: tuple[str, ...]
    gave_up: bool
    time_in_ai_s: float
    turns: int
    # Why: per detector its score, nearest exemplar and threshold; per flag what raised it.
    semantic: dict[str, dict] = field(default_factory=dict)
    flag_evidence: dict[str, dict] = field(default_factory=dict)
    intent_similarity: float | None = None  # to the intent's nearest example (embeddings)

    def to_payloads(self) -> list[SignalPayload]:
        """One signal event payload per signal, for the case log (the packet folds them)."""
        return [
            SignalPayload(name="confidence", value=round(self.confidence, 4), detail={
                "raw": round(self.raw_confidence, 4), "assistant": self.assistant,
                "intent": self.intent, "intent_class": self.intent_class,
                "out_of_scope": round(self.out_of_scope, 4),
                "intent_similarity": None if self.intent_similarity is None
                else round(self.intent_similarity, 4)}),
            SignalPayload(name="sentiment", value=round(self.sentiment, 4), detail={
                "mood": round(self.mood, 4), "band": self.sentiment_band}),
            SignalPayload(name="asked_for_person", value=self.asked_for_person is not None,
                          detail={k: v for k, v in (
                              ("phrase", self.asked_for_person),
                              ("semantic", self.semantic.get(ASK_FOR_PERSON))) if v}),
            SignalPayload(name="escalation_phrase", value=self.escalation_phrase is not None,
                          detail={"phrase": self.escalation_phrase} if self.escalation_phrase
                          else {}),
            SignalPayload(name="misunderstanding_streak", value=float(self.misunderstanding_streak),
                          detail={"repeated": self.repeated_misunderstanding}),
            SignalPayload(name="policy_flags", value=",".join(self.policy_flags),
                          detail={"flags": list(self.policy_flags),
                                  "regulatory": list(self.regulatory_flags),
                                  "evidence": self.flag_evidence}),
            # The value reads on the desk (the packet keeps values): which detectors fired,
            # their score against the threshold and the nearest exemplar.
            SignalPayload(name="semantic", value="; ".join(
                f"{k} {v['score']:.2f} >= {v['threshold']:.2f} (near \"{v['exemplar'][:80]}\")"
                for k, v in self.semantic.items() if v.get("fired")),
                detail={"detectors": self.semantic}),
            SignalPayload(name="assistant_gave_up", value=self.gave_up),
            SignalPayload(name="time_in_ai_s", value=round(self.time_in_ai_s, 1),
                          detail={"turns": self.turns}),
        ]


# --- the extractor --------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


class SignalExtractor:
    def __init__(self, policy: PolicyFile, phrases: PhrasesConfig, *, pivot: str,
                 calibrator: Calibrator | None = None,
                 sentiment: SentimentScorer | Callable[[str], float] | None = None,
                 semantic: SemanticDetectors | None = None):
        self.policy = policy
        self.semantic = semantic
        self.pivot = pivot
        self.calibrator = calibrator or Calibrator()
        self.sentiment = sentiment or VaderSentiment()
        self._person = PhraseMatcher(phrases.ask_for_person)
        self._escalation = PhraseMatcher(phrases.escalation)
        self._flag_phrases = [(rule, PhraseMatcher(rule.phrases)) for rule in policy.flags]

    def _phrase(self, matcher: PhraseMatcher, text: str, pivot_text: str,
                language: str) -> str | None:
        hit = matcher.match(text, language)
        if hit is None and language != self.pivot:
            hit = matcher.match(pivot_text, self.pivot)
        return hit

    def _flag_why(self, rule, matcher, intent, entities, text, pivot_text, language,
                  reading) -> dict | None:
        """What raised a flag (intent, entity, phrase or meaning), or None."""
        if intent is not None and intent in rule.intents:
            return {"by": "intent", "intent": intent}
        entity = next((e for e in rule.entities if e in entities), None)
        if entity is not None:
            return {"by": "entity", "entity": entity}
        phrase = self._phrase(matcher, text, pivot_text, language)
        if phrase is not None:
            return {"by": "phrase", "phrase": phrase}
        if reading is not None and reading.fired:
            return {"by": "semantic", **reading.evidence()}
        return None

    def assess(self, turn: AcceptedTurn, reply: AssistantReply,
               state: SignalState) -> tuple[TurnSignals, SignalState]:
        """The signals of one resident turn and the state after it (input not changed)."""
        p = self.policy
        text, pivot_text = normalize(turn.text), normalize(turn.pivot_text)
        intent = reply.intent
        intent_class = p.intent_class(intent)
        conf = self.calibrator.calibrate(reply.assistant, intent_class, reply.raw_confidence)
        oos = reply.out_of_scope

        readings: dict[str, Reading] = self.semantic.read(
            turn.text, turn.pivot_text, turn.language) if self.semantic is not None else {}
        person = self._phrase(self._person, text, pivot_text, turn.language)
        hit = readings.get(ASK_FOR_PERSON)
        if person is None and hit is not None and hit.fired:
            person = f"~ {hit.exemplar}"  # heard by meaning, near this exemplar
        escalation = self._phrase(self._escalation, text, pivot_text, turn.language)

        s = p.sentiment
        score = max(-1.0, min(1.0, float(self.sentiment(turn.pivot_text))))
        if escalation is not None:
            score = min(score, s.escalation_phrase_score)
        mood = score if state.mood is None else \
            s.mood_weight * state.mood + (1 - s.mood_weight) * score
        band = s.band(min(score, mood)).name

        flags, regulatory = [], []
        evidence: dict[str, dict] = {}
        entities = reply.entities
        for rule, matcher in self._flag_phrases:
            why = self._flag_why(rule, matcher, intent, entities, text, pivot_text,
                                 turn.language, readings.get(rule.id))
            if why is not None:
                flags.append(rule.id)
                evidence[rule.id] = why
                if rule.regulatory:
                    regulatory.append(rule.id)

        m = p.misunderstanding
        tokens = _WORD.findall(pivot_text)
        repeated = (intent is not None and intent == state.last_intent
                    and intent not in m.repeat_exempt and not state.last_asked
                    and _overlap(tokens, state.last_tokens) >= m.repeat_similarity)
        misunderstood = (conf < m.low_confidence or oos >= m.out_of_scope or reply.gave_up
                         or repeated)
        streak = state.streak + 1 if misunderstood else 0

        signals = TurnSignals(
            assistant=reply.assistant, intent=intent, intent_class=intent_class,
            raw_confidence=reply.raw_confidence, confidence=conf, out_of_scope=oos,
            sentiment=score, mood=mood, sentiment_band=band, asked_for_person=person,
            escalation_phrase=escalation, misunderstanding_streak=streak,
            repeated_misunderstanding=streak >= m.turns, policy_flags=tuple(flags),
            regulatory_flags=tuple(regulatory), gave_up=reply.gave_up,
            time_in_ai_s=max(0.0, turn.at - state.opened_at), turns=state.turns + 1,
            semantic={k: r.evidence() for k, r in readings.items()}, flag_evidence=evidence,
            intent_similarity=self.semantic.intent_similarity(
                intent, turn.text, turn.pivot_text, turn.language)
            if self.semantic is not None and intent is not None else None)
        new_state = replace(
            state, turns=state.turns + 1, streak=streak, last_intent=intent,
            last_tokens=tokens[:64], last_asked=bool(reply.state.pending), mood=mood,
            flags=state.flags + [f for f in flags if f not in state.flags])
        return signals, new_state


def _overlap(a: list[str], b: list[str]) -> float:
    """Jaccard overlap of two token lists."""
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / len(sa | sb)
