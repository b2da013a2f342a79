"""Speech recognition errors."""

from __future__ import annotations

from common.errors import BatonError


class ASRError(BatonError):
    reason = "asr_error"


class LanguageError(ASRError):
    reason = "asr_language"
