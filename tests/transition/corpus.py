"""The conversation corpora (tests/data/conversations: the regression corpus;
tests/data/escalation: the held-out corpus with train/validation/test splits) and the driver
that runs the real transition layer over them (router.escalation_eval)."""

from __future__ import annotations

from pathlib import Path

from router.escalation_eval import (START, Conversation, CorpusReport, CorpusTurn,  # noqa: F401
                                    TurnResult, make_layer, run_conversation)
from router.escalation_eval import load_corpus as _load
from router.escalation_eval import run_corpus as _run

REPO = Path(__file__).resolve().parents[2]
CORPUS_DIR = REPO / "tests" / "data" / "conversations"
HELDOUT_DIR = REPO / "tests" / "data" / "escalation"


def load_corpus(directory: Path = CORPUS_DIR, split: str | None = None) -> list[Conversation]:
    return _load(directory, split)


def run_corpus(cfg, conversations: list[Conversation] | None = None, **kw) -> CorpusReport:
    return _run(cfg, conversations if conversations is not None else load_corpus(), **kw)
