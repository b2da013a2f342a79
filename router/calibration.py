"""Calibration: raw assistant confidence -> probability that the AI is right.

Fitted per (assistant, intent class) from logged (raw confidence, outcome) pairs, with
isotonic regression when there are enough samples and Platt scaling (a logistic on the
logit of the raw score) otherwise. A key without enough samples falls back to its
assistant's map, then to the map fitted on everything, then to the identity.

Pure: fitting is a function of the samples; applying a map is a few float operations (no
numpy on the hot path). ``baton calibrate`` (router.calibrate_cli) refits from the store.
"""

from __future__ import annotations

import json
import math
import os
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from common.errors import BatonError

WILDCARD = "*"
CALIBRATOR_VERSION = 1
Method = Literal["auto", "isotonic", "platt"]


class CalibrationError(BatonError):
    """A calibrator file that cannot be used, or too few samples to fit."""

    reason = "calibration_invalid"


@dataclass(frozen=True, slots=True)
class Sample:
    assistant: str
    intent_class: str
    raw: float          # raw confidence in [0, 1]
    right: bool         # the human's verdict (or the case outcome) says the AI was right


@dataclass(frozen=True, slots=True)
class CurveMap:
    kind: Literal["isotonic", "platt", "identity"]
    xs: tuple[float, ...] = ()      # isotonic: thresholds (ascending)
    ys: tuple[float, ...] = ()      # isotonic: values at the thresholds
    a: float = 1.0                  # platt: p = sigmoid(a * logit(raw) + b)
    b: float = 0.0
    n: int = 0                      # samples it was fitted on

    def __call__(self, raw: float) -> float:
        raw = 0.0 if math.isnan(raw) else min(1.0, max(0.0, raw))
        if self.kind == "isotonic":
            xs, ys = self.xs, self.ys
            if raw <= xs[0]:
                return ys[0]
            if raw >= xs[-1]:
                return ys[-1]
            i = bisect_right(xs, raw)
            x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
            return y0 if x1 == x0 else y0 + (y1 - y0) * (raw - x0) / (x1 - x0)
        if self.kind == "platt":
            z = self.a * _logit(raw) + self.b
            return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        return raw

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind, "n": self.n}
        if self.kind == "isotonic":
            d.update(xs=list(self.xs), ys=list(self.ys))
        elif self.kind == "platt":
            d.update(a=self.a, b=self.b)
        return d

    @staticmethod
    def from_dict(d: dict) -> CurveMap:
        kind = d["kind"]
        if kind == "isotonic":
            xs, ys = tuple(float(x) for x in d["xs"]), tuple(float(y) for y in d["ys"])
            if not xs or len(xs) != len(ys) or list(xs) != sorted(xs) \
                    or any(not 0 <= y <= 1 for y in ys):
                raise ValueError("isotonic map needs ascending xs and ys in [0, 1] of equal "
                                 "length")
            return CurveMap("isotonic", xs, ys, n=int(d.get("n", 0)))
        if kind == "platt":
            return CurveMap("platt", a=float(d["a"]), b=float(d["b"]), n=int(d.get("n", 0)))
        if kind == "identity":
            return IDENTITY
        raise ValueError(f"unknown map kind {kind!r}")


IDENTITY = CurveMap("identity")


@dataclass(slots=True)
class Calibrator:
    """Maps keyed by (assistant, intent class); either may be ``*``."""

    maps: dict[tuple[str, str], CurveMap] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def lookup(self, assistant: str, intent_class: str) -> CurveMap:
        m = self.maps
        return (m.get((assistant, intent_class)) or m.get((assistant, WILDCARD))
                or m.get((WILDCARD, intent_class)) or m.get((WILDCARD, WILDCARD)) or IDENTITY)

    def calibrate(self, assistant: str, intent_class: str, raw: float) -> float:
        return self.lookup(assistant, intent_class)(raw)

    def to_dict(self) -> dict:
        return {"version": CALIBRATOR_VERSION, "meta": self.meta,
                "maps": [{"assistant": a, "intent_class": c, **cm.to_dict()}
                         for (a, c), cm in sorted(self.maps.items())]}

    @staticmethod
    def from_dict(d: dict) -> Calibrator:
        if d.get("version") != CALIBRATOR_VERSION:
            raise ValueError(f"version {d.get('version')!r} is not {CALIBRATOR_VERSION}")
        maps = {(str(e["assistant"]), str(e["intent_class"])): CurveMap.from_dict(e)
                for e in d["maps"]}
        return Calibrator(maps, dict(d.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        """Write atomically: a router loading it meanwhile sees the old or the new file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def load_calibrator(path: str | Path) -> Calibrator:
    """The fitted calibrator at ``path``; the identity when there is no file yet (nothing
    fitted: raw confidence is used as it is). A damaged file raises CalibrationError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Calibrator(meta={"source": "identity: no calibrator file yet"})
    try:
        return Calibrator.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise CalibrationError(f"{path}: not a calibrator file ({exc}): run `baton calibrate` "
                               "to write it again") from None


# --- fitting --------------------------------------------------------------------------------


def fit_isotonic(raw: Sequence[float], right: Sequence[bool]) -> CurveMap:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit([float(r) for r in raw], [1.0 if y else 0.0 for y in right])
    return CurveMap("isotonic", tuple(float(x) for x in iso.X_thresholds_),
                    tuple(float(y) for y in iso.y_thresholds_), n=len(raw))


def fit_platt(raw: Sequence[float], right: Sequence[bool]) -> CurveMap:
    from sklearn.linear_model import LogisticRegression

    ys = [1 if y else 0 for y in right]
    if len(set(ys)) < 2:  # one class only: a constant probability (Laplace-smoothed)
        p = (sum(ys) + 1) / (len(ys) + 2)
        return CurveMap("platt", a=0.0, b=_logit(p), n=len(ys))
    lr = LogisticRegression(C=1e4).fit([[_logit(r)] for r in raw], ys)
    return CurveMap("platt", a=float(lr.coef_[0][0]), b=float(lr.intercept_[0]), n=len(ys))


def fit_map(raw: Sequence[float], right: Sequence[bool], method: Method = "auto",
            isotonic_min: int = 200) -> CurveMap:
    if method == "isotonic" or (method == "auto" and len(raw) >= isotonic_min):
        return fit_isotonic(raw, right)
    return fit_platt(raw, right)


def fit(samples: Iterable[Sample], *, method: Method = "auto", min_samples: int = 30,
        isotonic_min: int = 200) -> Calibrator:
    """Fit a map for every (assistant, intent class), every assistant and everything that
    has at least ``min_samples`` samples."""
    samples = list(samples)
    if len(samples) < min_samples:
        raise CalibrationError(f"{len(samples)} samples with a verdict; calibration needs at "
                               f"least {min_samples}: collect more verdicts on the desk")
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        for key in ((s.assistant, s.intent_class), (s.assistant, WILDCARD),
                    (WILDCARD, WILDCARD)):
            groups.setdefault(key, []).append(s)
    maps = {key: fit_map([s.raw for s in group], [s.right for s in group], method,
                         isotonic_min)
            for key, group in groups.items() if len(group) >= min_samples}
    return Calibrator(maps, {"samples": len(samples), "method": method,
                             "min_samples": min_samples})


def cross_validated(samples: Sequence[Sample], *, folds: int = 5, method: Method = "auto",
                    min_samples: int = 30, isotonic_min: int = 200) -> list[float]:
    """Out-of-fold calibrated confidences (for an honest ECE after calibration): each sample
    is calibrated by a calibrator fitted without it. Deterministic folds (index mod k)."""
    out = [0.0] * len(samples)
    for k in range(folds):
        train = [s for i, s in enumerate(samples) if i % folds != k]
        cal = fit(train, method=method, min_samples=min(min_samples, len(train)),
                  isotonic_min=isotonic_min)
        for i in range(k, len(samples), folds):
            s = samples[i]
            out[i] = cal.calibrate(s.assistant, s.intent_class, s.raw)
    return out


# --- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bin:
    lo: float
    hi: float
    count: int
    confidence: float   # mean predicted probability in the bin
    accuracy: float     # fraction right in the bin


def reliability_table(conf: Sequence[float], right: Sequence[bool], bins: int = 10) -> list[Bin]:
    """Equal-width bins over [0, 1]; a value of exactly 1 falls in the last bin."""
    sums = [[0, 0.0, 0] for _ in range(bins)]
    for c, y in zip(conf, right, strict=True):
        i = min(bins - 1, max(0, int(c * bins)))
        sums[i][0] += 1
        sums[i][1] += c
        sums[i][2] += 1 if y else 0
    return [Bin(i / bins, (i + 1) / bins, n, (s / n) if n else 0.0, (r / n) if n else 0.0)
            for i, (n, s, r) in enumerate(sums)]


def ece(conf: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error: sum over bins of |accuracy - confidence| x share."""
    total = len(conf)
    if total == 0:
        return 0.0
    return sum(b.count / total * abs(b.accuracy - b.confidence)
               for b in reliability_table(conf, right, bins))


def _logit(p: float) -> float:
    p = min(1 - 1e-6, max(1e-6, p))
    return math.log(p / (1 - p))


# --- samples from a case's events ------------------------------------------------------------


def sample_from_case(events: Sequence, *, intent_class_of, default_assistant: str = "builtin",
                     use_case_outcomes: bool = True) -> Sample | None:
    """The (raw confidence, outcome) pair of one closed case, or None.

    Outcome: the human's verdict (``outcome.ai_verdict``); else, with ``use_case_outcomes``,
    a case resolved with no person involved counts as the AI being right. Raw confidence:
    the AI's last assessment up to the first escalation — the ``confidence`` signal (raw,
    assistant and intent class in its detail), else the decision's numbers, else the AI's
    last turn. ``intent_class_of(intent)`` maps the case's intent when the signal is absent.
    """
    verdict = status = None
    cutoff = len(events)
    human = False
    for i, ev in enumerate(events):
        if ev.type == "outcome":
            verdict, status = ev.payload.ai_verdict, ev.payload.status
        elif ev.type in ("queued", "connect", "offer"):
            human = True
        elif ev.type == "decision" and cutoff == len(events) \
                and ev.payload.decision.decision in ("escalate", "assist"):
            cutoff = i + 1
            human = True
    if verdict is not None:
        right = verdict == "right"
    elif use_case_outcomes and status == "resolved" and not human:
        right = True
    else:
        return None
    intent = events[0].payload.intent if events and events[0].type == "opened" else None
    for ev in reversed(events[:cutoff]):
        if ev.type == "signal" and ev.payload.name == "confidence":
            d = ev.payload.detail
            raw = d.get("raw")
            if isinstance(raw, (int, float)):
                return Sample(str(d.get("assistant") or default_assistant),
                              str(d.get("intent_class") or intent_class_of(d.get("intent"))),
                              float(raw), right)
    for ev in reversed(events[:cutoff]):
        if ev.type == "decision" and "raw_confidence" in ev.payload.decision.numbers:
            return Sample(default_assistant, intent_class_of(intent),
                          float(ev.payload.decision.numbers["raw_confidence"]), right)
        if ev.type == "turn" and ev.payload.speaker == "ai" and ev.payload.confidence is not None:
            return Sample(default_assistant, intent_class_of(intent),
                          float(ev.payload.confidence), right)
    return None
