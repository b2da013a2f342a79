"""Intent scoring over examples in the pivot language: TF-IDF on word and character
n-grams, cosine similarity to every example, nearest example per intent.

- ``raw_confidence``: softmax (temperature from config) over the per-intent best
  similarities, out-of-scope examples included as one more class; the top in-scope share.
  Uncalibrated by design: router.calibration maps it to a probability.
- ``out_of_scope``: P(out of scope) from a logistic regression on two features, the
  similarity to the nearest in-scope example and to the nearest out-of-scope example,
  fitted on the training examples themselves leave-one-out (config lists out-of-scope
  examples). Without out-of-scope examples: 1 - the nearest in-scope similarity.

``EmbeddingIntentScorer`` does the same over sentence embeddings (router.embeddings): the
examples are compared with the pivot text and with the resident's own words (the model is
multilingual), the better of the two per intent. It replaced TF-IDF as the default
(docs/decisions/0007-sentence-embeddings.md has the comparison).

Constraint: a fitted scorer is read-only; ``score`` is safe to call from several threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

OUT_OF_SCOPE = "_out_of_scope"


@dataclass(frozen=True, slots=True)
class IntentScore:
    intent: str | None          # best in-scope intent (None only when nothing was trained)
    raw_confidence: float
    out_of_scope: float
    similarity: float           # best cosine similarity to an in-scope example
    scores: dict[str, float]    # softmax share per in-scope intent


class IntentScorer:
    def __init__(self, intents: dict[str, list[str]], out_of_scope: list[str] = (), *,
                 temperature: float = 0.08, word_ngrams: tuple[int, int] = (1, 2),
                 char_ngrams: tuple[int, int] = (2, 5)):
        if len(intents) < 2:
            raise ValueError("intent scoring needs at least two intents")
        self.temperature = temperature
        self.classes = list(intents) + ([OUT_OF_SCOPE] if out_of_scope else [])
        texts: list[str] = []
        labels: list[int] = []
        for i, name in enumerate(self.classes):
            examples = intents[name] if name != OUT_OF_SCOPE else list(out_of_scope)
            texts += [_norm(t) for t in examples]
            labels += [i] * len(examples)
        self._labels = np.asarray(labels)
        self._word = TfidfVectorizer(analyzer="word", ngram_range=word_ngrams, sublinear_tf=True,
                                     token_pattern=r"(?u)\b\w+\b")
        self._char = TfidfVectorizer(analyzer="char_wb", ngram_range=char_ngrams,
                                     sublinear_tf=True)
        self._word.fit(texts)
        self._char.fit(texts)
        self._examples = self._embed(texts)            # rows L2-normalized
        # The fast path for one text (sklearn's transform costs ~1 ms per call in overhead):
        # the same analyzers, vocabularies and idf weights, applied in plain Python.
        self._parts = []
        offset = 0
        for vec in (self._word, self._char):
            vocab = vec.vocabulary_
            self._parts.append((vec.build_analyzer(), vocab, vec.idf_, offset))
            offset += len(vocab)
        self._dim = offset
        self._oos_model = self._fit_oos()

    def _fit_oos(self) -> tuple[float, float, float] | None:
        return _fit_oos((self._examples @ self._examples.T).toarray(), self._labels,
                        self._oos_index())

    def _oos_index(self) -> int:
        return self.classes.index(OUT_OF_SCOPE) if OUT_OF_SCOPE in self.classes else -1

    def _embed(self, texts: list[str]) -> sparse.csr_matrix:
        both = sparse.hstack([self._word.transform(texts), self._char.transform(texts)],
                             format="csr")
        return normalize(both)

    def _embed_one(self, text: str) -> np.ndarray:
        """Like ``_embed([text])`` (sublinear tf x idf, L2 per part, L2 overall), dense."""
        q = np.zeros(self._dim)
        for analyze, vocab, idf, offset in self._parts:
            counts: dict[int, int] = {}
            for gram in analyze(text):
                j = vocab.get(gram)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if not counts:
                continue
            idx = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            w = (1.0 + np.log(tf)) * idf[idx]
            q[idx + offset] = w / np.linalg.norm(w)
        norm = np.linalg.norm(q)
        return q / norm if norm else q

    def score(self, text: str, original: str | None = None) -> IntentScore:
        """``original``: the resident's own words (not used by TF-IDF: pivot only)."""
        sims = self._examples @ self._embed_one(_norm(text))
        best = np.full(len(self.classes), -1.0)
        np.maximum.at(best, self._labels, sims)
        return _decide(self.classes, best, self.temperature, self._oos_index(),
                       self._oos_model)


def _decide(classes: list[str], best: np.ndarray, temperature: float, oos_i: int,
            oos_model: tuple[float, float, float] | None) -> IntentScore:
    """Softmax over the per-class best similarities; out-of-scope from the logistic model."""
    z = np.exp((best - best.max()) / temperature)
    p = z / z.sum()
    in_scope = [i for i in range(len(classes)) if i != oos_i]
    top = max(in_scope, key=lambda i: best[i])
    sim_in = float(best[top])
    if oos_model is not None:
        a, b, c = oos_model
        oos = 1.0 / (1.0 + math.exp(-(a * sim_in + b * float(best[oos_i]) + c)))
    else:  # no out-of-scope examples: distance from the intents alone
        oos = min(1.0, max(0.0, 1.0 - sim_in))
    return IntentScore(
        intent=classes[top], raw_confidence=float(p[top]), out_of_scope=oos,
        similarity=sim_in,
        scores={classes[i]: round(float(p[i]), 4) for i in in_scope})


def _fit_oos(sims: np.ndarray, labels: np.ndarray, oos_i: int
             ) -> tuple[float, float, float] | None:
    """P(out of scope | nearest in-scope similarity, nearest out-of-scope similarity), fitted
    leave-one-out on the examples' own similarity matrix (``sims``, diagonal ignored)."""
    if oos_i < 0:
        return None
    sims = sims.copy()
    np.fill_diagonal(sims, -1.0)
    is_oos = labels == oos_i
    x = np.column_stack([sims[:, ~is_oos].max(axis=1), sims[:, is_oos].max(axis=1)])
    model = LogisticRegression(class_weight="balanced", C=10.0).fit(x, is_oos.astype(int))
    return float(model.coef_[0][0]), float(model.coef_[0][1]), float(model.intercept_[0])


class EmbeddingIntentScorer:
    """Nearest example per intent by cosine similarity of sentence embeddings, on the pivot
    text and on the resident's own words. ``vectors``: a router.embeddings.VectorCache (its
    encoder also embeds the examples, cached on disk under ``cache_dir``)."""

    def __init__(self, intents: dict[str, list[str]], out_of_scope: list[str] = (), *,
                 vectors, temperature: float = 0.05, cache_dir=None):
        from router.embeddings import exemplar_matrix

        if len(intents) < 2:
            raise ValueError("intent scoring needs at least two intents")
        self.temperature = temperature
        self.vectors = vectors
        self.classes = list(intents) + ([OUT_OF_SCOPE] if out_of_scope else [])
        texts: list[str] = []
        labels: list[int] = []
        for i, name in enumerate(self.classes):
            examples = intents[name] if name != OUT_OF_SCOPE else list(out_of_scope)
            texts += list(examples)
            labels += [i] * len(examples)
        self._labels = np.asarray(labels)
        self._examples = exemplar_matrix(vectors.encoder, texts, cache_dir)
        self._oos_i = self.classes.index(OUT_OF_SCOPE) if out_of_scope else -1
        self._oos_model = _fit_oos(self._examples @ self._examples.T, self._labels,
                                   self._oos_i)

    def score(self, text: str, original: str | None = None) -> IntentScore:
        best = np.full(len(self.classes), -1.0)
        for t in {text, original} - {None}:
            np.maximum.at(best, self._labels, self._examples @ self.vectors.get(t))
        return _decide(self.classes, best, self.temperature, self._oos_i, self._oos_model)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())
