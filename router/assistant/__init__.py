"""The AI front: the ``Assistant`` interface and its implementations.

    cfg = load_assistant_config("config")
    assistant = BuiltinAssistant(cfg, InMemoryAccountService.demo(now=clock))
    reply = await assistant.respond(accepted_turn, DialogContext(case_id=..., site=...))

The built-in assistant and the intent scorer (scikit-learn) load on first use, so the
interface types import without them.
"""

from typing import Any

from router.assistant.accounts import (
    AccountError,
    AccountService,
    Appointment,
    Balance,
    InMemoryAccountService,
)
from router.assistant.base import (
    Assistant,
    AssistantError,
    AssistantReply,
    DialogContext,
    DialogState,
    gave_up_reply,
)
from router.assistant.config import AssistantFile, load_assistant_config

_LAZY = {"BuiltinAssistant": "router.assistant.builtin", "build_scorer": "router.assistant.builtin",
         "IntentScorer": "router.assistant.intents", "IntentScore": "router.assistant.intents",
         "OpenAICompatibleAssistant": "router.assistant.openai_compat"}

__all__ = [
    "AccountError", "AccountService", "Appointment", "Assistant", "AssistantError",
    "AssistantFile", "AssistantReply", "Balance", "BuiltinAssistant", "DialogContext",
    "DialogState", "InMemoryAccountService", "IntentScore", "IntentScorer",
    "OpenAICompatibleAssistant", "build_scorer", "gave_up_reply", "load_assistant_config",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'router.assistant' has no attribute {name!r}")
