"""config/policy.yaml: the escalation policy, a product decision kept out of code.

Intent risk classes with their cost of being wrong, sentiment bands with multipliers, the
cost of a human now (growing with the estimated wait), hard triggers, policy flag rules,
modes per site and intent, calibration settings. ``load_policy(directory)`` validates it
and raises common.config.ConfigError naming the file, the key and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.config import ConfigError, parse_file
from protocol.models import Ident, LangCode

POLICY_FILE = "policy.yaml"

Mode = Literal["ai_primary", "human_primary", "joint"]
Trigger = Literal["asked_for_person", "regulatory_flag", "repeated_misunderstanding",
                  "assistant_gave_up", "ai_time_limit", "escalation_phrase"]


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RiskClass(_C):
    cost_of_wrong: float = Field(gt=0)
    description: str = ""


class SentimentBand(_C):
    name: Ident
    max: float = Field(ge=-1, le=1)   # the band holds scores up to and including this
    multiplier: float = Field(gt=0)


class SentimentConfig(_C):
    bands: list[SentimentBand] = Field(min_length=1)
    # Weight of the past in the running mood (exponential average over turns).
    mood_weight: float = Field(default=0.5, ge=0, lt=1)
    # An escalation phrase in the resident's words caps the turn's score at this value:
    # a lexicon on translated text misses much of what frustration sounds like.
    escalation_phrase_score: float = Field(default=-0.6, ge=-1, le=0)

    @model_validator(mode="after")
    def _ordered(self):
        maxes = [b.max for b in self.bands]
        if maxes != sorted(maxes) or len(set(maxes)) != len(maxes):
            raise ValueError("bands must be in ascending order of max, without repeats")
        if maxes[-1] < 1:
            raise ValueError("the last band must reach max: 1.0 (every score needs a band)")
        return self

    def band(self, score: float) -> SentimentBand:
        for b in self.bands:
            if score <= b.max:
                return b
        return self.bands[-1]


class HumanCost(_C):
    base: float = Field(ge=0)                      # cost of a human with no wait
    per_wait_minute: float = Field(ge=0)           # added per minute of estimated wait
    max_wait_s: float = Field(default=1800, gt=0)  # waits are capped here (nobody staffed)


class MisunderstandingConfig(_C):
    low_confidence: float = Field(default=0.45, ge=0, le=1)   # calibrated, below = not understood
    out_of_scope: float = Field(default=0.6, ge=0, le=1)      # at or above = not understood
    # The same intent again with similar words (token overlap) after an answer = not helped.
    repeat_similarity: float = Field(default=0.5, ge=0, le=1)
    repeat_exempt: list[Ident] = Field(default_factory=list)
    turns: int = Field(default=2, ge=1, le=20)                 # in a row -> the signal fires


class TimeInAi(_C):
    free_s: float = Field(default=300, ge=0)       # no cost before this
    per_minute: float = Field(default=0.1, ge=0)   # cost-of-wrong multiplier grows per minute
    limit_s: float = Field(default=1200, gt=0)     # past this: the ai_time_limit trigger


class Detector(_C):
    """A semantic detector: fires when a turn's score reaches ``threshold``. The score is the
    cosine similarity to the nearest exemplar minus ``SemanticConfig.contrast`` x the
    similarity to the nearest ordinary request (router/semantic.py)."""

    threshold: float = Field(ge=-1, le=1)
    exemplars: list[str] = Field(min_length=3)


class SemanticConfig(_C):
    enabled: bool = True
    model_dir: str | None = None     # None: the installed package's files
    cache_dir: str | None = None     # None: $BATON_DATA_DIR/embeddings
    own_languages: list[LangCode] = Field(default_factory=list)
    # A turn in one of own_languages that arrives without its pivot translation (the edge has
    # no model for the pair) is read in the resident's words instead of being refused.
    accept_untranslated: bool = True
    # Weight of the nearest ordinary request (assistant.yaml examples and out-of-scope
    # examples) subtracted from the nearest exemplar's similarity: keeps "are you a real
    # robot?" from scoring as a request for a real person.
    contrast: float = Field(default=0.7, ge=0, le=1)
    ask_for_person: Detector | None = None


class FlagRule(_C):
    """A policy flag: raised when the intent, an entity or a phrase matches. A regulatory
    flag is a hard trigger (when regulatory_flag is in hard_triggers); any flag multiplies
    the cost of being wrong and is shown to the human."""

    id: Ident
    note: str = ""
    intents: list[Ident] = Field(default_factory=list)
    entities: list[Ident] = Field(default_factory=list)
    phrases: dict[LangCode, list[str]] = Field(default_factory=dict)
    regulatory: bool = False
    multiplier: float = Field(default=1.0, gt=0)
    skill: Ident | None = None  # a skill the human needs when this flag is raised
    semantic: Detector | None = None

    @model_validator(mode="after")
    def _something(self):
        if not (self.intents or self.entities or self.phrases or self.semantic):
            raise ValueError("a flag rule needs intents, entities, phrases or semantic "
                             "exemplars to match")
        return self


class SiteModes(_C):
    default: Mode | None = None
    intents: dict[Ident, Mode] = Field(default_factory=dict)


class ModesConfig(_C):
    """Most specific first: site intent, intent, site default, default."""

    default: Mode = "ai_primary"
    intents: dict[Ident, Mode] = Field(default_factory=dict)
    sites: dict[Ident, SiteModes] = Field(default_factory=dict)

    def mode(self, site: str, intent: str | None) -> Mode:
        s = self.sites.get(site)
        if s is not None and intent is not None and intent in s.intents:
            return s.intents[intent]
        if intent is not None and intent in self.intents:
            return self.intents[intent]
        if s is not None and s.default is not None:
            return s.default
        return self.default


class CalibrationConfig(_C):
    file: str | None = None          # default: $BATON_DATA_DIR/calibrator.json (var/)
    method: Literal["auto", "isotonic", "platt"] = "auto"
    min_samples: int = Field(default=30, ge=5)
    isotonic_min: int = Field(default=200, ge=10)
    bins: int = Field(default=10, ge=2, le=50)


class RoutingPolicy(_C):
    """Who a case goes to once it escalates. When a hard trigger (a request for a person
    above all) fires and the intent is uncertain (calibrated confidence below
    ``intent_certain``), the intent's skill is not required: the case asks for
    ``general_skill`` plus the skills its flags call for, and the reason is recorded."""

    intent_certain: float = Field(default=0.6, ge=0, le=1)
    general_skill: Ident | None = "general"


class EmergencyPolicy(_C):
    """Flags that start the emergency protocol at a kiosk or robot (sites.yaml turns it on
    per site and gives the number): top priority, widened at once to anyone with the
    language, a blocking alert on the floor monitor, a message on the device."""

    flags: list[Ident] = Field(default_factory=lambda: ["medical", "safeguarding"])
    priority: int = Field(default=100, ge=0, le=100)
    workflow: Ident | None = "emergency"   # routing.yaml: a workflow that widens at once
    # What the device shows the resident, per language; {number} is the site's number.
    messages: dict[LangCode, str] = Field(default_factory=dict)


class PolicyFile(_C):
    version: Literal[1] = 1
    risk_classes: dict[Ident, RiskClass] = Field(min_length=1)
    intents: dict[Ident, Ident]             # intent -> risk class
    unknown_intent_class: Ident             # class of a turn with no intent (out of scope)
    sentiment: SentimentConfig
    human: HumanCost
    # In joint mode a human is brought in (assist) once the AI's expected cost passes this
    # share of the human's cost; above the whole cost the case escalates.
    joint_assist_ratio: float = Field(default=0.5, gt=0, le=1)
    misunderstanding: MisunderstandingConfig = Field(default_factory=MisunderstandingConfig)
    time_in_ai: TimeInAi = Field(default_factory=TimeInAi)
    hard_triggers: list[Trigger] = Field(default_factory=list)
    # Soft weight of a trigger that is not hard: multiplies the cost of being wrong.
    multipliers: dict[Trigger, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    flags: list[FlagRule] = Field(default_factory=list)
    modes: ModesConfig = Field(default_factory=ModesConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    semantic: SemanticConfig = Field(default_factory=lambda: SemanticConfig(enabled=False))
    routing: RoutingPolicy = Field(default_factory=lambda: RoutingPolicy())
    emergency: EmergencyPolicy = Field(default_factory=lambda: EmergencyPolicy())

    def problems(self) -> list[tuple[str, str]]:
        """References inside the file that do not resolve, as (key, reason)."""
        out = []
        for intent, cls in self.intents.items():
            if cls not in self.risk_classes:
                out.append((f"intents.{intent}",
                            f"risk class {cls!r} is not defined under risk_classes"))
        if self.unknown_intent_class not in self.risk_classes:
            reason = f"risk class {self.unknown_intent_class!r} is not defined under risk_classes"
            out.append(("unknown_intent_class", reason))
        ids = {r.id for r in self.flags}
        for f in self.emergency.flags:
            if f not in ids:
                out.append(("emergency.flags", f"flag {f!r} is not defined under flags"))
        seen: set[str] = set()
        for i, rule in enumerate(self.flags):
            if rule.id in seen:
                out.append((f"flags.{i}.id", f"flag id {rule.id!r} is used twice"))
            seen.add(rule.id)
        return out

    def intent_class(self, intent: str | None) -> str:
        if intent is None:
            return self.unknown_intent_class
        return self.intents.get(intent, self.unknown_intent_class)


def load_policy(directory: str | Path, *, intents: set[str] | None = None,
                sites: set[str] | None = None, languages: set[str] | None = None,
                skills: set[str] | None = None) -> PolicyFile:
    """Load config/policy.yaml. When given, the names of the other files are checked:
    ``intents`` (assistant.yaml: each must have a risk class here), ``sites``,
    ``languages`` and ``skills``."""
    path = Path(directory) / POLICY_FILE
    policy = parse_file(path, PolicyFile)
    assert isinstance(policy, PolicyFile)
    where = str(path)
    for key, reason in policy.problems():
        raise ConfigError(where, key, reason)
    if intents is not None:
        for intent in policy.intents:
            if intent not in intents:
                raise ConfigError(where, f"intents.{intent}",
                                  "intent is not defined in assistant.yaml")
        for intent in sorted(intents - set(policy.intents)):
            raise ConfigError(where, f"intents.{intent}", "intent of assistant.yaml has no "
                              "risk class here: add it under intents")
        for i, rule in enumerate(policy.flags):
            for intent in rule.intents:
                if intent not in intents:
                    raise ConfigError(where, f"flags.{i}.intents",
                                      f"intent {intent!r} is not defined in assistant.yaml")
        for intent in policy.modes.intents:
            if intent not in intents:
                raise ConfigError(where, f"modes.intents.{intent}",
                                  "intent is not defined in assistant.yaml")
    if sites is not None:
        for site in policy.modes.sites:
            if site not in sites:
                raise ConfigError(where, f"modes.sites.{site}",
                                  "site is not defined in sites.yaml")
    if languages is not None:
        for i, rule in enumerate(policy.flags):
            for lang in rule.phrases:
                if lang not in languages:
                    raise ConfigError(where, f"flags.{i}.phrases.{lang}",
                                      "language is not defined in languages.yaml")
    if skills is not None:
        g = policy.routing.general_skill
        if g and g not in skills:
            raise ConfigError(where, "routing.general_skill",
                              f"skill {g!r} is not defined in skills.yaml")
        for i, rule in enumerate(policy.flags):
            if rule.skill and rule.skill not in skills:
                raise ConfigError(where, f"flags.{i}.skill",
                                  f"skill {rule.skill!r} is not defined in skills.yaml")
    return policy
