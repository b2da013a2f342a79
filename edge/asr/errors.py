"""Speech recognition errors."""

from __future__ import annotations


class ASRError(Exception):
    code = "asr_error"


class LanguageError(ASRError):
    code = "asr_language"
