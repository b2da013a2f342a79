"""Worker → resident chat on the device: the ``chat.say`` command (docs/protocol.md §5).

The router sends ``chat.say`` when the case's worker writes to the resident
(``POST /v1/cases/{id}/messages``). The relay translates the text into the resident's
language, shows it on the device's screen and reports the translation as a ``translation``
event of the worker's turn, so the desk's transcript shows both side by side.

    sync = EdgeSync(settings, outbox)
    sync.on_command = ChatRelay(sync, driver, translation)  # or call it from a dispatcher
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.device.base import DeviceDriver, DeviceError
from edge.outbox import OutboxFull
from edge.translate import TranslationError, TranslationService
from edge.translate.argos import base_code
from protocol.messages import Command
from protocol.models import Ident, LangCode

log = logging.getLogger("baton.edge.chat")
COMMAND = "chat.say"


class Emitter(Protocol):
    """Where the translation event goes: ``edge.sync.EdgeSync`` (durable, then sent)."""

    async def emit(self, case_id: str, type: str, payload: dict[str, Any]) -> Any: ...


class ChatSay(BaseModel):
    """The command's ``args``."""

    model_config = ConfigDict(extra="forbid")
    case_id: Ident
    turn_event_id: str = Field(min_length=1, max_length=80)
    text: str = Field(min_length=1, max_length=4000)
    language: LangCode  # what the worker wrote in
    to_language: LangCode  # the resident's language: shown in this


class ChatRelay:
    """An ``EdgeSync`` command handler for ``chat.say``; other types are ``unsupported``.

    ``device``: the driver, or a ``DeviceRunner`` (its driver is used). ``translation``:
    None when the device has no translation models (the text is then shown as written)."""

    def __init__(self, events: Emitter, device: Any,
                 translation: TranslationService | None = None, *,
                 on_shown: Callable[[str, str, str, tuple[str, str], bool], None] | None = None):
        # on_shown(turn_event_id, shown, shown_language, (original, its language),
        # untranslated): the resident's screen (edge.station); without it the driver shows it.
        self.events = events
        self.driver: DeviceDriver = getattr(device, "driver", device)
        self.translation = translation
        self.on_shown = on_shown

    async def __call__(self, cmd: Command) -> tuple[str, str]:
        if cmd.type != COMMAND:
            return "unsupported", f"no handler for {cmd.type!r}"
        try:
            say = ChatSay.model_validate(cmd.args)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "args"
            return "failed", f"invalid {COMMAND} args: {where}: {err['msg']}"
        translated, problem = None, ""
        if base_code(say.language) != base_code(say.to_language):
            if self.translation is None:
                problem = "this device has no translation models"
            else:
                try:
                    result = await self.translation.translate(say.text, say.language,
                                                              say.to_language)
                    translated = result.text.strip() or None
                    problem = "" if translated else "the translation came back empty"
                except TranslationError as exc:
                    problem = str(exc)
        text, lang = (translated, say.to_language) if translated else (say.text, say.language)
        try:
            if self.on_shown is not None:
                self.on_shown(say.turn_event_id, text, lang, (say.text, say.language),
                              bool(problem))
            else:
                self.driver.display_text(text, lang)
        except DeviceError as exc:
            return "failed", f"the display refused the message ({exc.reason}): {exc}"
        if problem:
            log.warning("chat message shown untranslated",
                        extra={"case_id": say.case_id, "error": problem})
            # Recorded as shown: the worker's transcript marks the turn untranslated.
            recorded = ""
            try:
                await self.events.emit(say.case_id, "translation", {
                    "turn_event_id": say.turn_event_id, "language": say.to_language,
                    "text": "", "untranslated": problem[:300]})
            except (OutboxFull, ValueError) as exc:
                recorded = f"; the mark was not recorded: {exc}"
            return "failed", (f"shown untranslated in {say.language}: no translation to "
                              f"{say.to_language}: {problem}{recorded}")
        if translated is None:
            return "done", ""  # same language: nothing to translate
        try:
            await self.events.emit(say.case_id, "translation", {
                "turn_event_id": say.turn_event_id, "language": say.to_language,
                "text": translated})
        except (OutboxFull, ValueError) as exc:  # shown, but the desk will not know
            return "failed", f"shown, but the translation was not recorded: {exc}"
        return "done", ""
