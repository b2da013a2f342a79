"""The transition layer in one object: accept a turn, read its signals, decide.

    layer = TransitionLayer.load(cfg)                 # cfg: router.config.BatonConfig
    turn = layer.accept(text, "es", pivot_text=translated, at=clock.now())  # TurnRejected
    await layer.prepare(turn)                         # embeddings, in a worker thread
    reply = await assistant.respond(turn, dialog_ctx)
    result = layer.assess(turn, reply, state, DecisionContext(site, wait_s, human))
    state = result.state                              # keep per case
    log(result.signal_payloads(), result.decision_payload())

Pure apart from loading config, the calibrator file and the embedding model in ``load``
(``prepare`` runs the model in a worker thread; without it the synchronous readers embed a
turn themselves, which is what the corpus driver wants and the router must not do).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from protocol.models import Decision, DecisionPayload, SignalPayload
from router.assistant.base import AssistantReply
from router.assistant.config import TOOLS, AssistantFile, load_assistant_config
from router.calibration import Calibrator, load_calibrator
from router.embeddings import VectorCache, load_encoder
from router.escalation import DecisionContext, EscalationEngine
from router.playbooks import PlaybooksFile, load_playbooks
from router.policy import PolicyFile, load_policy
from router.semantic import SemanticDetectors
from router.signals import SentimentScorer, SignalExtractor, SignalState, TurnSignals
from router.turns import MAX_TURN_CHARS, AcceptedTurn, accept_turn

# Skill levels a requirement asks for: the intent's skill, or a flag's (a specialist).
INTENT_SKILL_LEVEL = 2
FLAG_SKILL_LEVEL = 3


@dataclass(frozen=True, slots=True)
class Assessment:
    signals: TurnSignals
    decision: Decision
    state: SignalState

    def signal_payloads(self) -> list[SignalPayload]:
        return self.signals.to_payloads()

    def decision_payload(self) -> DecisionPayload:
        return DecisionPayload(decision=self.decision)


class TransitionConfig(BaseModel):
    """assistant.yaml, policy.yaml and playbooks.yaml (a field of BatonConfig can hold it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    assistant: AssistantFile
    policy: PolicyFile
    playbooks: PlaybooksFile


def load_transition_config(directory: str | Path, *, languages: set[str] | None = None,
                           skills: set[str] | None = None,
                           sites: set[str] | None = None) -> TransitionConfig:
    """assistant.yaml, policy.yaml and playbooks.yaml, checked against each other and (when
    given) against the names of languages.yaml, skills.yaml and sites.yaml. Raises
    common.config.ConfigError naming the file and the key."""
    assistant = load_assistant_config(directory, languages=languages, skills=skills,
                                      sites=sites)
    intents = set(assistant.intents)
    policy = load_policy(directory, intents=intents, sites=sites, languages=languages,
                         skills=skills)
    playbooks = load_playbooks(directory, intents=intents, flags={f.id for f in policy.flags},
                               tools=TOOLS)
    return TransitionConfig(assistant=assistant, policy=policy, playbooks=playbooks)


def calibrator_path(policy: PolicyFile) -> Path:
    if policy.calibration.file:
        return Path(policy.calibration.file)
    return Path(os.environ.get("BATON_DATA_DIR", "var")) / "calibrator.json"


class TransitionLayer:
    def __init__(self, cfg: TransitionConfig, *, languages: set[str], pivot: str,
                 calibrator: Calibrator | None = None,
                 sentiment: SentimentScorer | None = None, max_turn_chars: int = MAX_TURN_CHARS,
                 vectors: VectorCache | None = None):
        """``vectors``: the embedding cache (its encoder); None loads the model named by
        policy.yaml ``semantic`` when semantic detection or embedding intents are on.
        Raises router.embeddings.ModelError when the model cannot be loaded."""
        self.cfg = cfg
        self.languages = frozenset(languages)
        self.pivot = pivot
        self.max_turn_chars = max_turn_chars
        self.calibrator = calibrator or Calibrator()
        sem = cfg.policy.semantic
        self.vectors = vectors
        if self.vectors is None and (sem.enabled or cfg.assistant.scoring.method == "embedding"):
            self.vectors = VectorCache(load_encoder(sem.model_dir))
        self.cache_dir = sem.cache_dir
        self.semantic = None
        if sem.enabled and self.vectors is not None:
            a = cfg.assistant
            ordinary = {name: i.examples for name, i in a.intents.items()}
            ordinary["_out_of_scope"] = list(a.out_of_scope_examples)
            self.semantic = SemanticDetectors(cfg.policy, self.vectors, ordinary, pivot=pivot,
                                              cache_dir=sem.cache_dir)
        self.signals = SignalExtractor(cfg.policy, cfg.assistant.phrases, pivot=pivot,
                                       calibrator=self.calibrator, sentiment=sentiment,
                                       semantic=self.semantic)
        self.engine = EscalationEngine(cfg.policy)

    @classmethod
    def load(cls, cfg: Any, *, calibrator: Calibrator | None = None,
             transition: TransitionConfig | None = None) -> TransitionLayer:
        """From a router.config.BatonConfig: reads the three files beside the others (or
        takes ``transition`` when already loaded) and the fitted calibrator (identity when
        none was fitted yet; a damaged file raises CalibrationError)."""
        tc = transition or load_transition_config(
            cfg.directory, languages=set(cfg.languages.languages),
            skills=set(cfg.skills.skills), sites={s.id for s in cfg.sites.sites})
        if calibrator is None:
            calibrator = load_calibrator(calibrator_path(tc.policy))
        return cls(tc, languages=set(cfg.languages.languages), pivot=cfg.languages.pivot,
                   calibrator=calibrator)

    def accept(self, text: str | None, language: str | None, *, pivot_text: str | None,
               at: float) -> AcceptedTurn:
        sem = self.cfg.policy.semantic
        untranslated_ok = frozenset(sem.own_languages) \
            if sem.accept_untranslated and self.vectors is not None else frozenset()
        return accept_turn(text, language, pivot_text=pivot_text, languages=self.languages,
                           pivot=self.pivot, at=at, max_chars=self.max_turn_chars,
                           untranslated_ok=untranslated_ok)

    def turn_texts(self, turn: AcceptedTurn) -> list[str]:
        """The texts of a turn the embedding readers (intents, detectors) will ask for."""
        return [turn.pivot_text] if turn.text == turn.pivot_text else [turn.pivot_text,
                                                                       turn.text]

    async def prepare(self, turn: AcceptedTurn) -> None:
        """Embed the turn's texts in a worker thread, so the assistant and the signals read
        them from the cache instead of running the model on the event loop."""
        if self.vectors is not None:
            await asyncio.to_thread(self.vectors.warm, self.turn_texts(turn))

    def new_state(self, opened_at: float) -> SignalState:
        return SignalState(opened_at=opened_at)

    def assess(self, turn: AcceptedTurn, reply: AssistantReply, state: SignalState,
               ctx: DecisionContext) -> Assessment:
        signals, new_state = self.signals.assess(turn, reply, state)
        return Assessment(signals, self.engine.decide(signals, ctx), new_state)

    def routing_basis(self, intent: str | None, sig: TurnSignals,
                      hard: list[str] | tuple[str, ...]) -> tuple[str | None, str | None]:
        """(the intent whose skill the case needs, the reason when it is not the detected
        one). A hard trigger with an uncertain intent routes on the site's general skill and
        the flags' skills instead of waiting for that intent's specialists. Uncertain: the
        calibrated confidence is below ``routing.intent_certain``, or the turn asks for a
        person and is closer to a request for a person than to any example of its intent
        ("may I see a member of staff?" is not a complaint about staff)."""
        r = self.cfg.policy.routing
        if intent is None or not hard:
            return intent, None
        if sig.confidence < r.intent_certain:
            return None, (f"routing:general (hard trigger {', '.join(hard)}; intent "
                          f"{intent} uncertain at {sig.confidence:.2f} < {r.intent_certain})")
        person = sig.semantic.get("ask_for_person") or {}
        if sig.asked_for_person and sig.intent_similarity is not None \
                and person.get("similarity", -1.0) >= sig.intent_similarity:
            return None, (f"routing:general (asked for a person: nearer a request for a "
                          f"person ({person['similarity']:.2f}) than intent {intent} "
                          f"({sig.intent_similarity:.2f}))")
        return intent, None

    def required_skills(self, intent: str | None, flags: list[str] | tuple[str, ...]
                        ) -> dict[str, int]:
        """Skills a person needs for this case: its intent's (or the general skill without
        one), and its flags' (higher)."""
        out: dict[str, int] = {}
        icfg = self.cfg.assistant.intents.get(intent) if intent else None
        if icfg is not None and icfg.skill:
            out[icfg.skill] = INTENT_SKILL_LEVEL
        elif intent is None and self.cfg.policy.routing.general_skill:
            out[self.cfg.policy.routing.general_skill] = INTENT_SKILL_LEVEL
        rules = {r.id: r for r in self.cfg.policy.flags}
        for f in flags:
            rule = rules.get(f)
            if rule is not None and rule.skill:
                out[rule.skill] = max(out.get(rule.skill, 0), FLAG_SKILL_LEVEL)
        return out
