"""Argos Translate (argos-translate-lt) behind a small interface, offline.

Packages are loaded with argostranslate's own ``Package`` and ``PackageTranslation`` (the
real load-and-translate path: splitter -> sentencepiece -> CTranslate2 -> detokenize), with
two changes made at this boundary: the sentence splitter is the offline one, and the
CTranslate2 translator is created eagerly with a bounded thread count, so that a corrupt
package fails at start with a clear error instead of at the first resident's sentence.

``translate`` is blocking: call it from a worker thread (``TranslationService`` does).
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from edge.translate.errors import MissingPairError, PackageError, TranslationError
from edge.translate.packages import PackageInfo, installed_packages
from edge.translate.splitter import Splitter

log = logging.getLogger("baton.edge.translate")


def base_code(language: str) -> str:
    return language.split("-")[0].lower()


@dataclass(slots=True)
class Translated:
    text: str
    src: str
    dst: str
    route: tuple[str, ...]  # languages visited, e.g. ("es", "en", "ja") through the pivot
    ms: float
    cached: bool = False
    via: str = "argos"  # argos | phrasebook


class ArgosTranslator:
    def __init__(self, packages_dir: Path, *, pivot: str = "en", threads: int = 1,
                 beam_size: int = 2):
        from argostranslate import translate as argos_translate
        from argostranslate.package import Package

        self.packages_dir = Path(packages_dir)
        self.pivot = base_code(pivot)
        self.beam_size = beam_size
        self._pairs: dict[tuple[str, str], object] = {}
        self.packages: list[PackageInfo] = installed_packages(self.packages_dir)
        languages: dict[str, object] = {}
        for info in self.packages:
            try:
                pkg = Package(info.path)
            except Exception as exc:  # noqa: BLE001 - argostranslate raises what its readers do
                raise PackageError(f"cannot load Argos package {info.path}: {exc}: install "
                                   "it again") from None
            src = languages.setdefault(info.from_code,
                                       argos_translate.Language(info.from_code, info.from_code))
            dst = languages.setdefault(info.to_code,
                                       argos_translate.Language(info.to_code, info.to_code))
            translation = argos_translate.PackageTranslation(src, dst, pkg)
            translation.sentencizer = Splitter(pkg)
            translation.translator = self._load_model(info, threads)
            self._pairs[(info.from_code, info.to_code)] = translation

    @staticmethod
    def _load_model(info: PackageInfo, threads: int):
        import ctranslate2

        try:
            return ctranslate2.Translator(str(info.path / "model"), device="cpu",
                                          inter_threads=1, intra_threads=threads)
        except (RuntimeError, ValueError, OSError) as exc:
            raise PackageError(f"Argos package {info.name} has a corrupt model ({exc}): "
                               f"reinstall translate-{info.from_code}_{info.to_code}") from None

    @property
    def pairs(self) -> set[tuple[str, str]]:
        return set(self._pairs)

    def route(self, src: str, dst: str) -> tuple[str, ...]:
        """The languages a translation passes through; raises MissingPairError."""
        src, dst = base_code(src), base_code(dst)
        if src == dst:
            return (src,)
        if (src, dst) in self._pairs:
            return (src, dst)
        p = self.pivot
        if p not in (src, dst) and (src, p) in self._pairs and (p, dst) in self._pairs:
            return (src, p, dst)
        raise MissingPairError(src, dst, p)

    def translate(self, text: str, src: str, dst: str) -> Translated:
        t0 = time.perf_counter()
        route = self.route(src, dst)
        out = text
        for a, b in itertools.pairwise(route):
            try:
                hyp = self._pairs[(a, b)].hypotheses(out, num_hypotheses=1)
            except TranslationError:
                raise
            except Exception as exc:  # CTranslate2/sentencepiece errors at the boundary
                raise TranslationError(f"translation {a}->{b} failed: {exc}") from exc
            out = hyp[0].value
        return Translated(out, route[0], route[-1], route, (time.perf_counter() - t0) * 1000)
