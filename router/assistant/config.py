"""config/assistant.yaml: intents with examples in the pivot language, answers, site facts,
phrases per language and the optional OpenAI-compatible endpoint.

``load_assistant_config(directory)`` validates the file and raises common.config.ConfigError
naming the file, the key and the reason, like every other config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.config import ConfigError, parse_file
from protocol.models import Ident, LangCode

ASSISTANT_FILE = "assistant.yaml"
TOOLS = ("lookup_appointment", "reschedule_appointment", "lookup_balance")


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Topic(_C):
    """A sub-answer of an intent chosen by keywords in the pivot text."""

    keywords: list[str] = Field(min_length=1)
    answer: str = Field(min_length=1)


class IntentConfig(_C):
    examples: list[str] = Field(min_length=3)
    answer: str = Field(min_length=1)
    # The same answer in the residents' languages; otherwise the pivot answer is translated.
    answers: dict[LangCode, str] = Field(default_factory=dict)
    topics: list[Topic] = Field(default_factory=list)
    tool: Literal["lookup_appointment", "reschedule_appointment", "lookup_balance"] | None = None
    # Answers used by tools: when nothing is found, when a slot is missing, when a tool fails.
    not_found: str = "I could not find that in your records."
    ask: str = ""
    failed: str = "I could not complete that."
    skill: Ident | None = None  # what a human needs for this intent (routing requirement)


class ScoringConfig(_C):
    # embedding: sentence embeddings of the pivot text and the resident's own words
    # (router.embeddings); tfidf: word and character n-grams of the pivot text only.
    method: Literal["embedding", "tfidf"] = "embedding"
    # Softmax temperature over cosine similarities: lower is more peaked (more confident).
    temperature: float = Field(default=0.08, gt=0, le=1)
    embedding_temperature: float = Field(default=0.05, gt=0, le=1)
    # Above this out-of-scope score, or below this raw confidence, the assistant does not
    # answer the intent (it asks again, and gives up after give_up_after turns).
    oos_threshold: float = Field(default=0.6, gt=0, le=1)
    min_confidence: float = Field(default=0.3, ge=0, lt=1)
    # After this many turns in a row not understood, the assistant gives up.
    give_up_after: int = Field(default=2, ge=1, le=10)
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)


class LlmConfig(_C):
    url: str | None = None            # e.g. http://127.0.0.1:8000/v1 ; None = not used
    model: str = "local"
    api_key_env: str | None = None    # the key is read from this environment variable
    timeout_s: float = Field(default=15, gt=0, le=120)
    max_tool_rounds: int = Field(default=3, ge=0, le=10)
    temperature: float = Field(default=0.0, ge=0, le=2)


class PhrasesConfig(_C):
    # Matched on the resident's own text, per language; the pivot's list is also matched on
    # the pivot translation (a translation may carry the request when the wording is new).
    ask_for_person: dict[LangCode, list[str]] = Field(min_length=1)
    escalation: dict[LangCode, list[str]] = Field(min_length=1)


class AssistantFile(_C):
    name: Ident = "builtin"
    pivot: LangCode = "en"
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    fallback: str = "Sorry, I did not understand. Could you say it another way?"
    give_up: str = "I'm sorry, I can't help with that. Let me find a person for you."
    # Facts answers can use as {placeholders}; ``default`` applies to every site.
    facts: dict[str, dict[str, str]] = Field(default_factory=dict)
    intents: dict[Ident, IntentConfig] = Field(min_length=2)
    out_of_scope_examples: list[str] = Field(default_factory=list)
    phrases: PhrasesConfig
    llm: LlmConfig = Field(default_factory=LlmConfig)

    @model_validator(mode="after")
    def _checks(self):
        for name, intent in self.intents.items():
            if intent.tool == "reschedule_appointment" and not intent.ask:
                raise ValueError(f"intent {name!r}: a reschedule needs 'ask' (the question for "
                                 "the new date and time)")
        return self

    def facts_for(self, site: str) -> dict[str, str]:
        return {**self.facts.get("default", {}), **self.facts.get(site, {})}


def load_assistant_config(directory: str | Path, *, languages: set[str] | None = None,
                          skills: set[str] | None = None,
                          sites: set[str] | None = None) -> AssistantFile:
    """Load config/assistant.yaml. When given, ``languages``, ``skills`` and ``sites`` (from
    the other config files) are checked against the names used here."""
    path = Path(directory) / ASSISTANT_FILE
    cfg = parse_file(path, AssistantFile)
    assert isinstance(cfg, AssistantFile)
    if languages is not None:
        if cfg.pivot not in languages:
            raise ConfigError(str(path), "pivot", f"language {cfg.pivot!r} is not defined in "
                              "languages.yaml")
        for kind in ("ask_for_person", "escalation"):
            for lang in getattr(cfg.phrases, kind):
                if lang not in languages:
                    raise ConfigError(str(path), f"phrases.{kind}.{lang}",
                                      "language is not defined in languages.yaml")
        for name, intent in cfg.intents.items():
            for lang in intent.answers:
                if lang not in languages:
                    raise ConfigError(str(path), f"intents.{name}.answers.{lang}",
                                      "language is not defined in languages.yaml")
    if skills is not None:
        for name, intent in cfg.intents.items():
            if intent.skill and intent.skill not in skills:
                raise ConfigError(str(path), f"intents.{name}.skill",
                                  f"skill {intent.skill!r} is not defined in skills.yaml")
    if sites is not None:
        for site in cfg.facts:
            if site != "default" and site not in sites:
                raise ConfigError(str(path), f"facts.{site}", "site is not defined in sites.yaml")
    return cfg
