"""``baton calibrate``: refit the calibrator from the store and report.

Reads every closed case, pairs the AI's raw confidence with the humans' verdict (and, unless
--verdicts-only, cases the AI resolved alone as "right"), fits per (assistant, intent class),
reports ECE before and after (after = out-of-fold, so it is not flattered by the fit),
writes the calibrator the escalation engine loads, a reliability table (CSV and JSON) and a
PNG reliability diagram.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
from collections import Counter
from pathlib import Path

from router.calibration import (
    CalibrationError,
    Sample,
    cross_validated,
    ece,
    fit,
    reliability_table,
    sample_from_case,
)

PAGE = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, help="database URL (default: $BATON_DB_URL or "
                        "sqlite in $BATON_DATA_DIR, ./var)")
    parser.add_argument("--out", default=None, help="calibrator file to write (default: "
                        "policy.yaml calibration.file, else $BATON_DATA_DIR/calibrator.json)")
    parser.add_argument("--report-dir", default=None, help="where the reliability table and "
                        "diagram go (default: beside the calibrator, calibration/)")
    parser.add_argument("--method", choices=["auto", "isotonic", "platt"], default=None)
    parser.add_argument("--min-samples", type=int, default=None)
    parser.add_argument("--bins", type=int, default=None)
    parser.add_argument("--folds", type=int, default=5, help="folds for the out-of-fold ECE")
    parser.add_argument("--verdicts-only", action="store_true",
                        help="use only cases with a human verdict")
    parser.add_argument("--max-cases", type=int, default=200_000)


def default_db_url() -> str:
    url = os.environ.get("BATON_DB_URL")
    if url:
        return url
    return f"sqlite+aiosqlite:///{Path(os.environ.get('BATON_DATA_DIR', 'var')) / 'baton.db'}"


async def collect_samples(db_url: str, *, intent_class_of, use_case_outcomes: bool = True,
                          max_cases: int = 200_000) -> list[Sample]:
    from router.store import open_store

    samples: list[Sample] = []
    async with await open_store(db_url) as store:
        offset = 0
        while offset < max_cases:
            cases = await store.list_cases(states=["resolved", "abandoned"],
                                           limit=min(PAGE, max_cases - offset), offset=offset)
            if not cases:
                break
            for case in cases:
                s = sample_from_case(await store.case_events(case.id),
                                     intent_class_of=intent_class_of,
                                     use_case_outcomes=use_case_outcomes)
                if s is not None:
                    samples.append(s)
            offset += len(cases)
    return samples


def write_report(directory: Path, samples: list[Sample], after: list[float],
                 bins: int) -> dict:
    """reliability.csv, reliability.json and reliability.png in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = [s.raw for s in samples]
    right = [s.right for s in samples]
    before_t, after_t = reliability_table(raw, right, bins), reliability_table(after, right, bins)
    summary = {"samples": len(samples), "bins": bins,
               "ece_before": round(ece(raw, right, bins), 4),
               "ece_after": round(ece(after, right, bins), 4),
               "by_key": {f"{a}/{c}": n for (a, c), n in
                          sorted(Counter((s.assistant, s.intent_class) for s in samples).items())},
               "table": [{"lo": b.lo, "hi": b.hi, "count_before": b.count,
                          "confidence_before": round(b.confidence, 4),
                          "accuracy_before": round(b.accuracy, 4), "count_after": a.count,
                          "confidence_after": round(a.confidence, 4),
                          "accuracy_after": round(a.accuracy, 4)}
                         for b, a in zip(before_t, after_t, strict=True)]}
    with open(directory / "reliability.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(summary["table"][0]))
        w.writeheader()
        w.writerows(summary["table"])
    (directory / "reliability.json").write_text(json.dumps(summary, indent=1) + "\n",
                                                encoding="utf-8")
    write_diagram(directory / "reliability.png", before_t, after_t,
                  summary["ece_before"], summary["ece_after"])
    return summary


def write_diagram(path: Path, before, after, ece_before: float, ece_after: float) -> Path:
    """The reliability diagram: accuracy against confidence per bin, before and after, with
    the diagonal of perfect calibration and the sample counts underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hx) = plt.subplots(2, 1, figsize=(6, 7), height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for table, label, color in ((before, f"raw (ECE {ece_before:.3f})", "tab:red"),
                                (after, f"calibrated (ECE {ece_after:.3f})", "tab:blue")):
        pts = [(b.confidence, b.accuracy) for b in table if b.count]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", color=color, label=label)
    ax.set_ylabel("fraction the AI was right")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Reliability of the AI's confidence")
    ax.legend(loc="upper left")
    width = before[0].hi - before[0].lo
    centers = [b.lo + width / 2 for b in before]
    hx.bar([c - width / 4 for c in centers], [b.count for b in before], width=width / 2,
           color="tab:red", label="raw")
    hx.bar([c + width / 4 for c in centers], [a.count for a in after], width=width / 2,
           color="tab:blue", label="calibrated")
    hx.set_xlabel("confidence")
    hx.set_ylabel("samples")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_cli(args: argparse.Namespace) -> int:
    from common.config import ConfigError
    from router.config import DEFAULT_CONFIG_DIR
    from router.policy import load_policy
    from router.store import StoreError
    from router.transition import calibrator_path

    directory = Path(getattr(args, "config", None) or os.environ.get("BATON_CONFIG_DIR")
                     or DEFAULT_CONFIG_DIR)
    try:
        policy = load_policy(directory)
    except ConfigError as exc:
        print(f"baton calibrate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    c = policy.calibration
    method = args.method or c.method
    min_samples = args.min_samples or c.min_samples
    bins = args.bins or c.bins
    out = Path(args.out) if args.out else calibrator_path(policy)
    report_dir = Path(args.report_dir) if args.report_dir else out.parent / "calibration"
    try:
        samples = asyncio.run(collect_samples(
            args.db or default_db_url(), intent_class_of=policy.intent_class,
            use_case_outcomes=not args.verdicts_only, max_cases=args.max_cases))
        calibrator = fit(samples, method=method, min_samples=min_samples,
                         isotonic_min=c.isotonic_min)
        folds = max(2, min(args.folds, len(samples) // max(1, min_samples // 2)))
        after = cross_validated(samples, folds=folds, method=method,
                                min_samples=min_samples, isotonic_min=c.isotonic_min)
    except (CalibrationError, StoreError) as exc:
        print(f"baton calibrate: {exc}", file=sys.stderr)
        return 2
    summary = write_report(report_dir, samples, after, bins)
    calibrator.meta.update(ece_before=summary["ece_before"], ece_after=summary["ece_after"],
                           folds=folds)
    calibrator.save(out)
    keys = ", ".join(f"{k}: {n}" for k, n in summary["by_key"].items())
    print(f"samples: {len(samples)} ({keys})")
    print(f"ECE before: {summary['ece_before']:.4f}  after ({folds}-fold, out of sample): "
          f"{summary['ece_after']:.4f}")
    maps = ", ".join(f"{a}/{k}={m.kind}" for (a, k), m in sorted(calibrator.maps.items()))
    print(f"maps: {maps}")
    print(f"calibrator: {out}")
    print(f"reliability table: {report_dir / 'reliability.csv'}")
    print(f"reliability diagram: {report_dir / 'reliability.png'}")
    return 0
