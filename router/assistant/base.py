"""The AI front's interface: a turn in, a reply with its intent and scores out.

Implementations: ``BuiltinAssistant`` (intent scoring over config examples, answers and demo
tools from config/assistant.yaml) and ``OpenAICompatibleAssistant`` (any server speaking the
OpenAI chat-completions protocol). Both are real subclasses of ``Assistant``; a test fake
should be one too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from common.errors import BatonError
from protocol.models import ActionPayload
from router.turns import AcceptedTurn


class AssistantError(BatonError):
    """The assistant could not produce a reply (its service is down, or answered nonsense).

    The caller treats it as the assistant giving up on this turn: see ``gave_up_reply``."""

    reason = "assistant_unavailable"


class DialogState(BaseModel):
    """What the assistant remembers between turns of one case. JSON-serializable so the
    caller can keep it anywhere; the assistant returns a new one with each reply."""

    model_config = ConfigDict(extra="forbid")
    fallbacks: int = 0                     # turns in a row the assistant did not understand
    last_intent: str | None = None
    pending: dict[str, Any] = Field(default_factory=dict)  # slot filling, e.g. a reschedule
    # Recent messages for assistants that need the conversation (bounded by the assistant).
    history: list[dict[str, str]] = Field(default_factory=list)


class DialogContext(BaseModel):
    """Who the assistant is talking to. Given by the caller from the case."""

    model_config = ConfigDict(extra="forbid")
    case_id: str
    site: str
    resident: str | None = None
    account: dict[str, Any] | None = None
    state: DialogState = Field(default_factory=DialogState)


class AssistantReply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assistant: str                          # which assistant answered (the calibration key)
    text: str                               # what to say to the resident
    language: str                           # the language of ``text``; translate if it differs
    intent: str | None                      # best intent, None when out of scope
    raw_confidence: float = Field(ge=0, le=1)  # uncalibrated P(intent and answer are right)
    out_of_scope: float = Field(ge=0, le=1)    # how far the request is from anything known
    actions: list[ActionPayload] = Field(default_factory=list)
    entities: dict[str, str] = Field(default_factory=dict)
    gave_up: bool = False                   # the assistant says it cannot help
    scores: dict[str, float] = Field(default_factory=dict)  # per-intent scores, for the desk
    state: DialogState = Field(default_factory=DialogState)


class Assistant(ABC):
    """Turn text + language in; reply, intent, raw confidence, out-of-scope score and actions
    out. ``respond`` may do I/O (tools, remote models); callers own the instance and call
    ``aclose()`` when done."""

    name: str = "assistant"

    @abstractmethod
    async def respond(self, turn: AcceptedTurn, ctx: DialogContext) -> AssistantReply:
        """Answer one resident turn. Raises AssistantError when no reply can be made."""

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Assistant:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def gave_up_reply(name: str, turn: AcceptedTurn, ctx: DialogContext, why: str,
                  text: str = "I'm sorry, I can't help with that. Let me find a person for you."
                  ) -> AssistantReply:
    """The reply to use when an assistant fails: it gives up, so the escalation engine
    hands the case to a person (``assistant_gave_up`` is a hard trigger by default)."""
    state = ctx.state.model_copy(update={"fallbacks": ctx.state.fallbacks + 1})
    return AssistantReply(assistant=name, text=text, language=turn.pivot_language, intent=None,
                          raw_confidence=0.0, out_of_scope=1.0, gave_up=True,
                          entities={"gave_up_reason": why[:200]}, state=state)
