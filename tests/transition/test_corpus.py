"""The conversation corpus through the real transition layer (assistant, signals, engine):
accuracy, false-escalation and missed-escalation rates, written to
test-artifacts/transition-corpus.json and printed (docs/benchmarks.md quotes them)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.transition.conftest import CORPUS_FIGURES
from tests.transition.corpus import load_corpus, run_corpus

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "test-artifacts" / "transition-corpus.json"


def test_corpus_shape():
    corpus = load_corpus()
    assert len(corpus) >= 40
    languages = {c.language for c in corpus}
    assert len(languages) >= 4 and {"ja", "en", "es", "pt", "zh"} <= languages
    assert all(len(c.turns) >= 1 for c in corpus)
    assert sum(len(c.turns) > 1 for c in corpus) >= 25  # mostly multi-turn
    for c in corpus:
        for t in c.turns:
            assert (t.pivot is None) == (c.language == "en"), c.id
    kinds = {t.expect for c in corpus for t in c.turns}
    assert kinds == {"continue_ai", "assist", "escalate"}


def test_corpus_decisions(cfg):
    report = run_corpus(cfg)
    figures = report.figures()
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    summary = {k: figures[k] for k in ("conversations", "turns", "languages", "accuracy",
                                       "false_escalation_rate", "missed_escalation_rate",
                                       "conversation_exact_rate", "accuracy_by_language")}
    line = json.dumps(summary, ensure_ascii=False)
    CORPUS_FIGURES["line"] = line
    print("\ntransition corpus:", line)
    for m in figures["mismatches"]:
        print(f"  mismatch {m['conversation']} turn {m['turn']}: expected {m['expected']}, "
              f"got {m['got']} ({', '.join(m['reasons']) or 'no reasons'})")
    assert figures["conversations"] >= 40 and len(figures["languages"]) >= 4
    # Bars: a missed escalation is the costly error; a false one wastes a person's time.
    assert figures["missed_escalation_rate"] <= 0.05
    assert figures["false_escalation_rate"] <= 0.10
    assert figures["accuracy"] >= 0.90
