"""A resident's turn as the transition layer accepts it: checked once, at the boundary.

Everything downstream (assistant, signals, escalation) takes an ``AcceptedTurn`` and never
re-checks it. A turn that cannot be accepted raises ``TurnRejected`` with a stable ``reason``
that an adapter maps to its own answer (a WebSocket error, an MQTT dead letter); nothing
else is touched, so one bad turn breaks no other case.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from common.errors import BatonError

# Same bound as protocol.models.TurnPayload.text.
MAX_TURN_CHARS = 4000
MAX_PIVOT_CHARS = 8000

RejectCode = Literal["empty_text", "unknown_language", "oversized_text", "missing_translation",
                     "invalid_text"]

_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


class TurnRejected(BatonError, ValueError):
    """A turn the transition layer will not process. ``reason`` is machine-readable."""

    reason = "turn_rejected"

    def __init__(self, reason: RejectCode, message: str):
        super().__init__(message, reason=reason)


@dataclass(frozen=True, slots=True)
class AcceptedTurn:
    text: str            # what the resident said, in their language (normalized NFC, stripped)
    language: str        # the resident's language
    pivot_text: str      # the same in the pivot language (== text when language is the pivot)
    pivot_language: str
    at: float            # seconds since the epoch, from the injected clock
    # No translation came with the turn and the layer reads the resident's own words instead
    # (``pivot_text`` then holds them: see ``untranslated_ok``).
    untranslated: bool = False


def accept_turn(text: str | None, language: str | None, *, pivot_text: str | None,
                languages: frozenset[str] | set[str], pivot: str, at: float,
                max_chars: int = MAX_TURN_CHARS,
                untranslated_ok: frozenset[str] | set[str] = frozenset()) -> AcceptedTurn:
    """Check and normalize one resident turn, or raise TurnRejected.

    ``languages`` are the languages the deployment serves (languages.yaml); ``pivot_text`` is
    the edge's translation into ``pivot`` and may be omitted when ``language == pivot`` or
    when ``language`` is in ``untranslated_ok`` (a multilingual model reads it as it is).
    """
    if not isinstance(language, str) or not _LANG.match(language) or language not in languages:
        raise TurnRejected("unknown_language",
                           f"language {language!r} is not served here: use one of "
                           f"{sorted(languages)} (config/languages.yaml)")
    text = _clean(text, "text", max_chars)
    if language == pivot:
        pivot_text = text if pivot_text is None or not pivot_text.strip() else pivot_text
    elif (pivot_text is None or not str(pivot_text).strip()) and language in untranslated_ok:
        return AcceptedTurn(text=text, language=language, pivot_text=text,
                            pivot_language=pivot, at=float(at), untranslated=True)
    elif pivot_text is None or not str(pivot_text).strip():
        raise TurnRejected("missing_translation",
                           f"a turn in {language!r} needs its translation into the pivot "
                           f"language {pivot!r}: translate at the edge before sending")
    pivot_text = _clean(pivot_text, "translation", MAX_PIVOT_CHARS)
    return AcceptedTurn(text=text, language=language, pivot_text=pivot_text,
                        pivot_language=pivot, at=float(at))


def _clean(value: str | None, what: str, max_chars: int) -> str:
    if value is None or not isinstance(value, str):
        raise TurnRejected("invalid_text", f"the turn's {what} must be a string")
    if len(value) > max_chars * 4:  # cheap bound before normalizing a huge input
        raise TurnRejected("oversized_text", f"the turn's {what} has {len(value)} characters; "
                           f"the limit is {max_chars}: split it into shorter turns")
    value = unicodedata.normalize("NFC", value).replace("\x00", "").strip()
    if not value:
        raise TurnRejected("empty_text", f"the turn's {what} is empty: send what the "
                           "resident said, or nothing at all")
    if len(value) > max_chars:
        raise TurnRejected("oversized_text", f"the turn's {what} has {len(value)} characters; "
                           f"the limit is {max_chars}: split it into shorter turns")
    return value
