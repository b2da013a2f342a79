"""An offline sentence splitter for Argos.

argostranslate's default splitter (MiniSBD) downloads a model on first use, which fails on an
offline device. This one uses pysbd (rule based, pure Python) where it knows the language and
a punctuation rule elsewhere. It has the interface argostranslate expects of a sentencizer:
``Splitter(pkg)`` and ``split_sentences(text) -> list[str]``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

# Sentence ends: Latin and CJK full stops, question and exclamation marks, with what follows.
_RULE = re.compile(r"(?<=[.!?。！？])[\"'”’)\]]*\s+|(?<=[。！？])")


@functools.lru_cache(maxsize=32)
def _segmenter(language: str):
    import pysbd

    if language not in pysbd.languages.LANGUAGE_CODES:
        return None
    return pysbd.Segmenter(language=language, clean=False)


def split_sentences(text: str, language: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    seg = _segmenter(language.split("-")[0].lower())
    parts = seg.segment(text) if seg is not None else _RULE.split(text)
    return [p.strip() for p in parts if p and p.strip()]


class Splitter:
    """Drop-in sentencizer for an argostranslate package (its source language)."""

    def __init__(self, pkg: Any):
        self.pkg = pkg
        self.language = getattr(pkg, "from_code", None) or "en"

    def split_sentences(self, text: str) -> list[str]:
        return split_sentences(text, self.language)

    def __str__(self) -> str:
        return "baton offline splitter (pysbd)"
