"""Calibration: ECE on synthetic over-confident scores with known true probabilities, maps
and files, samples from case events, and `baton calibrate` from a real SQLite store."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random

import pytest
from pydantic import TypeAdapter

from protocol.models import CaseEvent
from router.calibration import (
    IDENTITY,
    CalibrationError,
    Calibrator,
    CurveMap,
    Sample,
    cross_validated,
    ece,
    fit,
    fit_isotonic,
    fit_platt,
    load_calibrator,
    reliability_table,
    sample_from_case,
)
from router.casestate import apply
from tests.transition.conftest import CONFIG


def synthetic(n, seed, sharpen=3.0, assistant="builtin", cls="routine"):
    """True probability p ~ U(0.02, 0.98); the raw score is over-confident
    (logit scaled by ``sharpen``); the outcome is drawn with probability p."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = rng.uniform(0.02, 0.98)
        raw = 1 / (1 + math.exp(-sharpen * math.log(p / (1 - p))))
        out.append((p, Sample(assistant, cls, raw, rng.random() < p)))
    return out


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_ece_after_calibration_on_synthetic_overconfident_scores(method):
    train = [s for _, s in synthetic(5000, seed=1)]
    test = synthetic(5000, seed=2)
    cal = fit(train, method=method)
    raw = [s.raw for _, s in test]
    right = [s.right for _, s in test]
    after = [cal.calibrate("builtin", "routine", r) for r in raw]
    before_ece, after_ece = ece(raw, right), ece(after, right)
    assert before_ece > 0.08          # the raw scores really are over-confident
    assert after_ece <= 0.05          # the acceptance bar
    assert after_ece < before_ece
    # against the known truth, too: calibrated values sit close to the true probabilities
    err = sum(abs(c - p) for c, (p, _) in zip(after, test, strict=True)) / len(test)
    assert err < 0.05


def test_reliability_table_and_ece_by_hand():
    conf = [0.05, 0.15, 0.95, 0.95, 1.0]
    right = [False, False, True, False, True]
    table = reliability_table(conf, right, bins=10)
    assert [b.count for b in table] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert table[9].accuracy == pytest.approx(2 / 3)
    assert table[9].confidence == pytest.approx((0.95 + 0.95 + 1.0) / 3)
    expected = (0.05 + 0.15 + 3 * abs(2 / 3 - 2.9 / 3)) / 5
    assert ece(conf, right) == pytest.approx(expected)
    assert ece([], []) == 0.0


def test_maps_are_monotone_and_bounded():
    train = [s for _, s in synthetic(2000, seed=3)]
    for m in (fit_isotonic([s.raw for s in train], [s.right for s in train]),
              fit_platt([s.raw for s in train], [s.right for s in train])):
        xs = [i / 100 for i in range(101)]
        ys = [m(x) for x in xs]
        assert all(0 <= y <= 1 for y in ys)
        assert all(b >= a - 1e-12 for a, b in itertools.pairwise(ys))
        assert m(float("nan")) == m(0.0) and m(-3) == m(0.0) and m(7) == m(1.0)
    one_class = fit_platt([0.9] * 20, [True] * 20)
    assert one_class(0.1) == pytest.approx(21 / 22)


def test_keys_fall_back_and_small_groups_are_pooled():
    samples = [s for _, s in synthetic(400, seed=4, cls="routine")]
    samples += [s for _, s in synthetic(10, seed=5, cls="financial")]   # too few alone
    samples += [s for _, s in synthetic(300, seed=6, assistant="llm", cls="financial")]
    cal = fit(samples, min_samples=30)
    assert ("builtin", "routine") in cal.maps and ("builtin", "financial") not in cal.maps
    assert cal.lookup("builtin", "financial") is cal.maps[("builtin", "*")]
    assert cal.lookup("llm", "financial") is cal.maps[("llm", "financial")]
    assert cal.lookup("other", "x") is cal.maps[("*", "*")]
    assert Calibrator().lookup("a", "b") is IDENTITY
    with pytest.raises(CalibrationError, match="at least 30"):
        fit(samples[:10])


def test_cross_validated_ece_is_out_of_sample():
    samples = [s for _, s in synthetic(1500, seed=7)]
    oof = cross_validated(samples, folds=5)
    assert ece(oof, [s.right for s in samples]) <= 0.05


def test_file_round_trip_and_errors(tmp_path):
    samples = [s for _, s in synthetic(600, seed=8)]
    cal = fit(samples)
    path = cal.save(tmp_path / "sub" / "calibrator.json")
    back = load_calibrator(path)
    for r in (0.0, 0.1, 0.5, 0.77, 0.99, 1.0):
        assert back.calibrate("builtin", "routine", r) == cal.calibrate("builtin", "routine", r)
    assert load_calibrator(tmp_path / "none.json").maps == {}
    (tmp_path / "bad.json").write_text('{"version": 1, "maps": [{"kind": "isotonic"}]}')
    with pytest.raises(CalibrationError, match="baton calibrate"):
        load_calibrator(tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text("not json")
    with pytest.raises(CalibrationError):
        load_calibrator(tmp_path / "bad2.json")
    with pytest.raises(ValueError):
        CurveMap.from_dict({"kind": "isotonic", "xs": [0.5, 0.1], "ys": [0.1, 0.2]})


# --- from case events -----------------------------------------------------------------------

EVENT = TypeAdapter(CaseEvent)


class Log:
    def __init__(self):
        self.seq = 0

    def ev(self, case_id, type_, payload, ts=100.0):
        self.seq += 1
        return EVENT.validate_python({"event_id": f"e-{self.seq}", "case_id": case_id,
                                      "origin": "router", "seq": self.seq, "ts": ts,
                                      "type": type_, "payload": payload})

    def case(self, case_id, *, raw, verdict=None, escalate=False, status="resolved",
             signal=True, intent="collections"):
        evs = [self.ev(case_id, "opened", {"site": "city-office", "language": "en",
                                           "intent": intent}),
               self.ev(case_id, "turn", {"speaker": "resident", "language": "en",
                                         "text": "hello"})]
        if signal:
            evs.append(self.ev(case_id, "signal", {"name": "confidence", "value": raw, "detail": {
                "raw": raw, "assistant": "builtin", "intent": intent,
                "intent_class": "financial"}}))
        decision = {"decision": "escalate" if escalate else "continue_ai",
                    "numbers": {"raw_confidence": raw}}
        evs.append(self.ev(case_id, "decision", {"decision": decision}))
        if escalate:  # a later, different assessment must not be used
            evs.append(self.ev(case_id, "signal", {"name": "confidence", "value": 0.01,
                                                   "detail": {"raw": 0.01}}))
        evs.append(self.ev(case_id, "outcome", {"status": status, "ai_verdict": verdict}))
        return evs


def test_sample_from_case():
    log = Log()
    cls = {"collections": "financial"}.get
    s = sample_from_case(log.case("c1", raw=0.8, verdict="wrong", escalate=True),
                         intent_class_of=cls)
    assert s == Sample("builtin", "financial", 0.8, False)
    s = sample_from_case(log.case("c2", raw=0.7), intent_class_of=cls)
    assert s == Sample("builtin", "financial", 0.7, True)  # the AI resolved it alone
    assert sample_from_case(log.case("c3", raw=0.7), intent_class_of=cls,
                            use_case_outcomes=False) is None
    assert sample_from_case(log.case("c4", raw=0.7, escalate=True), intent_class_of=cls) is None
    s = sample_from_case(log.case("c5", raw=0.6, verdict="right", signal=False),
                         intent_class_of=cls)
    assert s == Sample("builtin", "financial", 0.6, True)  # from the decision's numbers


def test_baton_calibrate_from_the_store(tmp_path):
    """Cases with verdicts in a SQLite store -> calibrator, table, PNG; the layer loads it."""
    from router.calibrate_cli import add_arguments, run_cli
    from router.store import open_store

    url = f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}"
    log = Log()
    rng = random.Random(11)
    cases = []
    for i, (_p, s) in enumerate(synthetic(700, seed=12, cls="financial")):
        cases.append(log.case(f"c{i}", raw=round(s.raw, 4),
                              verdict="right" if s.right else "wrong",
                              escalate=rng.random() < 0.5))

    async def populate():
        async with await open_store(url) as store:
            for events in cases:
                case = None
                items = []
                for ev in events:
                    case = apply(case, ev)
                    items.append((ev, case))
                await store.append_many(items)

    asyncio.run(populate())
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_arguments(parser)
    out = tmp_path / "calibrator.json"
    args = parser.parse_args(["--config", str(CONFIG), "--db", url, "--out", str(out),
                              "--report-dir", str(tmp_path / "report")])
    assert run_cli(args) == 0
    report = json.loads((tmp_path / "report" / "reliability.json").read_text())
    assert report["samples"] == 700 and report["by_key"] == {"builtin/financial": 700}
    assert report["ece_after"] <= 0.05 < report["ece_before"]
    assert len(report["table"]) == 10
    csv_lines = (tmp_path / "report" / "reliability.csv").read_text().splitlines()
    assert csv_lines[0].startswith("lo,hi,count_before") and len(csv_lines) == 11
    png = (tmp_path / "report" / "reliability.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    cal = load_calibrator(out)
    assert cal.maps[("builtin", "financial")].kind == "isotonic"
    assert cal.meta["ece_after"] == report["ece_after"]
    # too few samples: a clear error, exit 2, nothing written
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    args = parser.parse_args(["--config", str(CONFIG), "--db", empty,
                              "--out", str(tmp_path / "x.json")])
    assert run_cli(args) == 2 and not (tmp_path / "x.json").exists()
