"""A phrasebook: fixed, human-translated sentences, looked up before the translation model.

Kiosks show common phrases as buttons, and staff reuse set sentences ("One moment, please");
their reviewed translations beat a model's. The phrasebook is also what the demo and the
tests speak: no real Argos models can be obtained on these machines (docs/edge.md), so
sentences outside it stay untranslated there. File format (YAML)::

    phrases:
      - {en: "One moment, please.", ja: "少々お待ちください。", es: "Un momento, por favor."}

Lookup ignores case, surrounding space and final punctuation.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import yaml

from edge.translate.errors import TranslationError

_TRAILING = re.compile(r"[\s.!?。！？、,]+$")


def _key(text: str) -> str:
    return _TRAILING.sub("", unicodedata.normalize("NFKC", text).strip()).casefold()


class PhrasebookError(TranslationError):
    code = "bad_phrasebook"


class Phrasebook:
    def __init__(self, phrases: list[dict[str, str]]):
        self._index: dict[tuple[str, str], int] = {}
        self._phrases = phrases
        for i, entry in enumerate(phrases):
            for lang, text in entry.items():
                self._index.setdefault((lang, _key(text)), i)

    @classmethod
    def load(cls, path: str | Path) -> Phrasebook:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PhrasebookError(f"cannot read the phrasebook {path}: {exc}") from exc
        phrases = data.get("phrases") if isinstance(data, dict) else None
        if not isinstance(phrases, list) or not all(
                isinstance(p, dict) and p and all(isinstance(k, str) and isinstance(v, str)
                                                  and v.strip() for k, v in p.items())
                for p in phrases):
            raise PhrasebookError(f"{path}: expected 'phrases:' as a list of mappings "
                                  "language → non-empty sentence")
        return cls(phrases)

    def __len__(self) -> int:
        return len(self._phrases)

    def lookup(self, text: str, src: str, dst: str) -> str | None:
        i = self._index.get((src.split("-")[0], _key(text)))
        return None if i is None else self._phrases[i].get(dst.split("-")[0])
