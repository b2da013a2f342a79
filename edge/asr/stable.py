"""Stable-prefix commit for partial hypotheses (local agreement of consecutive partials).

A unit (a word; a character in languages written without spaces) is committed once two
consecutive partial hypotheses agree on it and everything before it. Committed text never
changes within an utterance, so captions do not flicker; the final transcript replaces it.
"""

from __future__ import annotations

import re

_NO_SPACES = {"ja", "zh", "th", "lo", "km", "my", "yue"}


def units(text: str, language: str) -> list[str]:
    if language.split("-")[0] in _NO_SPACES:
        return [c for c in text.strip()]
    return text.split()


def join(parts: list[str], language: str) -> str:
    return ("" if language.split("-")[0] in _NO_SPACES else " ").join(parts)


def _key(unit: str) -> str:
    return re.sub(r"[^\w]", "", unit.lower())


class StablePrefix:
    def __init__(self) -> None:
        self.committed: list[str] = []
        self._previous: list[str] = []

    def update(self, text: str, language: str) -> tuple[str, str]:
        """Feed a new partial; returns (stable, unstable) text."""
        new = units(text, language)
        n = len(self.committed)
        agree = n
        if [_key(u) for u in new[:n]] != [_key(u) for u in self.committed]:
            agree = -1  # the hypothesis rewrote committed words: commit nothing new
        while (0 <= agree < len(new) and agree < len(self._previous)
               and _key(new[agree]) == _key(self._previous[agree])):
            agree += 1
        if agree > n:
            self.committed += new[n:agree]
        self._previous = new
        tail = new[len(self.committed):]
        return join(self.committed, language), join(tail, language)
