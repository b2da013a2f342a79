"""Semantic detectors of the transition layer: asking for a person and the policy flags,
read from sentence embeddings of the resident's own words (languages the model reads) and
of the pivot translation. Pure given the vectors (router.embeddings.VectorCache).

    score(detector, text) = max cos(text, exemplar) - contrast x max cos(text, ordinary)

"ordinary" are the assistant's intent and out-of-scope examples: a turn that is close to an
exemplar *and* to an everyday request scores lower than one close to the exemplar alone. A
turn's score is the better of its own words and its translation; it fires at or above the
detector's threshold (policy.yaml, fitted on a validation split). Each reading keeps the
nearest exemplar, so the packet and the desk show why a case came to a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router.embeddings import VectorCache, exemplar_matrix
from router.policy import Detector, PolicyFile

ASK_FOR_PERSON = "ask_for_person"


@dataclass(frozen=True, slots=True)
class Reading:
    detector: str
    score: float
    threshold: float
    exemplar: str        # the nearest exemplar
    similarity: float    # its cosine similarity, before the contrast
    on: str              # "own" (the resident's words) or "pivot"

    @property
    def fired(self) -> bool:
        return self.score >= self.threshold

    def evidence(self) -> dict:
        return {"score": round(self.score, 4), "threshold": self.threshold,
                "exemplar": self.exemplar, "similarity": round(self.similarity, 4),
                "on": self.on, "fired": self.fired}


class SemanticDetectors:
    def __init__(self, policy: PolicyFile, vectors: VectorCache,
                 ordinary: dict[str, Sequence[str]], *, pivot: str,
                 cache_dir: str | Path | None = None):
        """``ordinary``: everyday requests by intent (out-of-scope ones under any other
        key): the contrast set, and what ``intent_similarity`` compares with."""
        sem = policy.semantic
        self.vectors = vectors
        self.pivot = pivot
        self.contrast = sem.contrast
        self.own_languages = frozenset(sem.own_languages)
        specs: dict[str, Detector] = {}
        if sem.ask_for_person is not None:
            specs[ASK_FOR_PERSON] = sem.ask_for_person
        for rule in policy.flags:
            if rule.semantic is not None:
                specs[rule.id] = rule.semantic
        self.specs = specs
        # One matrix for every exemplar (one cached file), sliced per detector.
        plain = [(name, e) for name, items in ordinary.items() for e in items]
        self._ordinary_labels = np.asarray([name for name, _ in plain], dtype=object)
        texts = [e for d in specs.values() for e in d.exemplars] + [e for _, e in plain]
        m = exemplar_matrix(vectors.encoder, texts, cache_dir)
        self._slices: dict[str, tuple[np.ndarray, list[str]]] = {}
        at = 0
        for name, d in specs.items():
            self._slices[name] = (m[at:at + len(d.exemplars)], d.exemplars)
            at += len(d.exemplars)
        self._ordinary = m[at:]
        own_intents = {r.id: set(r.intents) for r in policy.flags}
        self._contrast_mask = {
            name: ~np.isin(self._ordinary_labels, list(own_intents[name]))
            for name in specs if own_intents.get(name)}

    def texts(self, text: str, pivot_text: str, language: str) -> list[str]:
        """The texts a turn is read on: its own words (when the model reads the language)
        and the pivot translation."""
        out = [pivot_text]
        if language != self.pivot and language in self.own_languages and text != pivot_text:
            out.append(text)
        return out

    def intent_similarity(self, intent: str, text: str, pivot_text: str,
                          language: str) -> float | None:
        """How close the turn is to its intent's nearest example (cosine), or None."""
        rows = self._ordinary[self._ordinary_labels == intent]
        if not len(rows):
            return None
        return max(float((rows @ self.vectors.get(t)).max())
                   for t in self.texts(text, pivot_text, language))

    def read(self, text: str, pivot_text: str, language: str) -> dict[str, Reading]:
        if not self.specs:
            return {}
        views = [(t, "pivot" if i == 0 else "own")
                 for i, t in enumerate(self.texts(text, pivot_text, language))]
        vecs = [(self.vectors.get(t), on) for t, on in views]
        # Closeness to everyday requests, per view (the contrast set is mostly in the pivot
        # language; chosen over the best-of-both-views contrast on the validation split). A
        # flag's own intents are not "everyday" for that flag.
        ord_sims = [self._ordinary @ v if len(self._ordinary) else None for v, _ in vecs]
        out: dict[str, Reading] = {}
        for name, (m, exemplars) in self._slices.items():
            mask = self._contrast_mask.get(name)
            best: Reading | None = None
            for (v, on), o in zip(vecs, ord_sims):
                ordinary = 0.0 if o is None else float(
                    o[mask].max() if mask is not None and mask.any() else o.max())
                sims = m @ v
                j = int(sims.argmax())
                score = float(sims[j]) - self.contrast * ordinary
                if best is None or score > best.score:
                    best = Reading(name, score, self.specs[name].threshold, exemplars[j],
                                   float(sims[j]), on)
            out[name] = best
        return out
