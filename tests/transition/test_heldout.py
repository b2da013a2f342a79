"""The held-out escalation corpus (tests/data/escalation): its shape, that nothing of its test
split leaked into the configuration, that the configured thresholds are the validation
split's, and the acceptance figures on the test split (written to
test-artifacts/escalation-heldout.json; docs/benchmarks.md quotes them)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from router.escalation_eval import fit_thresholds, make_layer, run_corpus
from router.signals import normalize
from tests.transition.corpus import HELDOUT_DIR, load_corpus

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "test-artifacts" / "escalation-heldout.json"
LANGS = {"ja", "en", "es", "pt", "zh"}
CATEGORIES = {"person", "violence", "medical", "residency", "enforcement", "complaint",
              "routine", "chitchat"}


def _norm(text: str) -> str:
    """Case, width, accents, punctuation and spacing folded: how leakage is compared."""
    return "".join(c for c in normalize(text) if c.isalnum())


@pytest.fixture(scope="module")
def heldout():
    return load_corpus(HELDOUT_DIR)


@pytest.fixture(scope="module")
def pair(cfg):
    return make_layer(cfg)


def test_heldout_corpus_shape(heldout):
    turns = [(c, t) for c in heldout for t in c.turns]
    assert len(turns) >= 400
    assert {c.language for c in heldout} == LANGS
    assert {c.split for c in heldout} == {"train", "validation", "test"}
    assert {t.category for _, t in turns} == CATEGORIES
    for c, t in turns:
        assert (t.pivot is None) == (c.language == "en"), c.id
        assert t.category in CATEGORIES, c.id
        if t.category == "routine":
            assert t.intent and t.expect == "continue_ai", c.id
    per_lang = Counter(c.language for c, t in turns if t.category == "person")
    assert all(per_lang[lang] >= 15 for lang in LANGS), per_lang
    # Every split of every language holds the safety categories and ASR-style turns.
    for split in ("validation", "test"):
        for lang in LANGS:
            cats = {t.category for c, t in turns if c.split == split and c.language == lang}
            assert {"person", "violence", "medical", "routine"} <= cats, (split, lang)
    assert sum(t.asr for _, t in turns) >= 40
    said = Counter(_norm(t.say) for _, t in turns)
    assert max(said.values()) == 1, [s for s, n in said.items() if n > 1]


def _config_texts(cfg) -> dict[str, str]:
    """Every exemplar, example and phrase of the configuration, normalized -> where."""
    a, p = cfg.transition.assistant, cfg.transition.policy
    out: dict[str, str] = {}
    for name, intent in a.intents.items():
        for e in intent.examples:
            out[_norm(e)] = f"assistant.yaml intents.{name}"
    for e in a.out_of_scope_examples:
        out[_norm(e)] = "assistant.yaml out_of_scope_examples"
    for kind in ("ask_for_person", "escalation"):
        for lang, items in getattr(a.phrases, kind).items():
            for e in items:
                out[_norm(e)] = f"assistant.yaml phrases.{kind}.{lang}"
    if p.semantic.ask_for_person:
        for e in p.semantic.ask_for_person.exemplars:
            out[_norm(e)] = "policy.yaml semantic.ask_for_person"
    for rule in p.flags:
        for lang, items in rule.phrases.items():
            for e in items:
                out[_norm(e)] = f"policy.yaml flags.{rule.id}.phrases.{lang}"
        if rule.semantic:
            for e in rule.semantic.exemplars:
                out[_norm(e)] = f"policy.yaml flags.{rule.id}.semantic"
    return out


def test_no_validation_or_test_sentence_is_in_the_configuration(cfg, heldout):
    known = _config_texts(cfg)
    leaked = [(c.id, text, known[_norm(text)]) for c in heldout if c.split != "train"
              for t in c.turns for text in (t.say, t.pivot) if text and _norm(text) in known]
    assert not leaked, f"held-out sentences found in the configuration: {leaked[:5]}"


def test_the_check_would_catch_a_leak(cfg, heldout):
    known = _config_texts(cfg)
    sample = next(t.say for c in heldout if c.split == "test" for t in c.turns)
    assert _norm(sample) not in known
    assert _norm("  " + sample.upper() + "!! ") == _norm(sample)


def test_configured_thresholds_hold_the_recall_on_validation(cfg, heldout, pair):
    layer, assistant = pair
    val = [c for c in heldout if c.split == "validation"]
    fitted = fit_thresholds(run_corpus(cfg, val, layer=layer, assistant=assistant,
                                       keep_signals=True))
    configured = {name: d.threshold for name, d in layer.semantic.specs.items()}
    for name, f in fitted.items():
        # The configured threshold is the fitted one (or lower: never above it, which
        # would lose recall on the split it was chosen on).
        assert configured[name] <= f["threshold"] + 1e-9, (name, configured[name], f)
        assert f["recall"] >= 0.98


def test_test_split_figures(cfg, heldout, pair):
    layer, assistant = pair
    test = [c for c in heldout if c.split == "test"]
    figures = run_corpus(cfg, test, layer=layer, assistant=assistant).figures()
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    print("\nheld-out test split:", json.dumps({k: figures[k] for k in (
        "turns", "accuracy", "missed_escalation_rate", "false_escalation_rate",
        "routine_intent_accuracy")}))
    for m in figures["mismatches"]:
        print(f"  mismatch {m['conversation']}: expected {m['expected']} got {m['got']} "
              f"(intent {m['intent']}, expected {m['expected_intent']})")
    assert figures["turns"] >= 120
    assert figures["missed_escalation_rate"] <= 0.02
    by = figures["by_category"]
    assert by["violence"]["missed_escalations"] == 0
    assert by["medical"]["missed_escalations"] == 0
    assert figures["false_escalation_rate"] <= 0.08
    assert by["routine"]["routine_intent_accuracy"] >= 0.90
