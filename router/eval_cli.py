"""``baton eval-escalation FILE.yaml [...] [--split S] [--json] [--fit]``: run corpus files
through the real transition layer (the configuration's assistant, signals, engine and
embedding model) and print accuracy, missed and false escalations per category and
language; the last line is a JSON object. ``--fit`` also prints, per semantic detector, the
threshold that keeps the stated recall on these turns and the precision there (run it on a
validation split, then copy the thresholds into policy.yaml)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_arguments(p) -> None:
    p.add_argument("files", nargs="+", type=Path, help="corpus YAML files or directories "
                   "(format: tests/data/conversations/README.md)")
    p.add_argument("--split", choices=["train", "validation", "test"], default=None,
                   help="only conversations of this split")
    p.add_argument("--json", action="store_true", help="print only the JSON figures")
    p.add_argument("--fit", action="store_true", help="fit detector thresholds on these turns")
    p.add_argument("--recall", type=float, default=0.98, help="target recall for --fit")


def _table(title: str, groups: dict) -> list[str]:
    out = [title, f"  {'':22} {'turns':>5} {'acc':>6} {'missed':>9} {'false':>9} {'intent':>6}"]
    for k, g in groups.items():
        acc = "-" if g["accuracy"] is None else f"{g['accuracy']:.3f}"
        ia = "-" if g["routine_intent_accuracy"] is None else f"{g['routine_intent_accuracy']:.2f}"
        out.append(f"  {k:22} {g['turns']:>5} {acc:>6} "
                   f"{g['missed_escalations']:>3}/{g['expected_escalations']:<5} "
                   f"{g['false_escalations']:>3}/{g['expected_other']:<5} {ia:>6}")
    return out


def run_cli(args) -> int:
    from router.cli import _config
    from router.embeddings import ModelError
    from router.escalation_eval import CorpusError, fit_thresholds, load_corpus, run_corpus

    cfg = _config(args)
    try:
        conversations = load_corpus(args.files, args.split)
    except (CorpusError, OSError) as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 2
    if not conversations:
        print("baton: no conversations to evaluate (check the files and --split)",
              file=sys.stderr)
        return 2
    try:
        report = run_corpus(cfg, conversations, keep_signals=args.fit)
    except ModelError as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a turn the layer rejects: say which
        print(f"baton: a corpus turn was rejected: {exc}", file=sys.stderr)
        return 2
    figures = report.figures()
    summary = {k: v for k, v in figures.items() if k not in ("mismatches",
                                                             "by_language_category")}
    if args.fit:
        summary["fitted_thresholds"] = fit_thresholds(report, args.recall)
    if not args.json:
        lines = [f"{figures['turns']} turns in {figures['conversations']} conversations "
                 f"({', '.join(figures['languages'])}): accuracy {figures['accuracy']}, "
                 f"missed escalations {figures['missed_escalations']}/"
                 f"{figures['expected_escalations']}, false escalations "
                 f"{figures['false_escalations']}/{figures['expected_other']}, routine intent "
                 f"accuracy {figures['routine_intent_accuracy']}"]
        lines += _table("by category:", figures["by_category"])
        lines += _table("by language:", figures["by_language"])
        for m in figures["mismatches"]:
            lines.append(f"  mismatch {m['conversation']}#{m['turn']} [{m['category']}]: "
                         f"expected {m['expected']}, got {m['got']} (intent {m['intent']}"
                         f"{', expected ' + m['expected_intent'] if m['expected_intent'] else ''}"
                         f"): {m['say'][:80]}")
        if args.fit:
            for det, f in summary["fitted_thresholds"].items():
                lines.append(f"  fit {det}: threshold {f['threshold']} (recall {f['recall']}, "
                             f"precision {f['precision']}, {f['positives']} positives)")
        print("\n".join(lines))
    print(json.dumps(summary, ensure_ascii=False))
    return 0
