"""Fixtures of the transition-layer tests: the repository's config, loaded once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from router.calibration import Calibrator
from router.config import load_config
from router.transition import TransitionLayer

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
# Monday 2025-10-06 10:00 in Tokyo.
T0 = 1759712400.0


@pytest.fixture(scope="session")
def cfg():
    return load_config(CONFIG)


@pytest.fixture(scope="session")
def layer(cfg):
    """The real layer with the identity calibrator (raw confidence as is)."""
    return TransitionLayer.load(cfg, calibrator=Calibrator())


@pytest.fixture
def config_copy(tmp_path) -> Path:
    """A writable copy of config/ for tests that change a file."""
    dst = tmp_path / "config"
    shutil.copytree(CONFIG, dst)
    return dst


# Figures the corpus test measured in this session, printed in pytest's summary.
CORPUS_FIGURES: dict = {}


def pytest_terminal_summary(terminalreporter):
    if CORPUS_FIGURES:
        terminalreporter.write_sep("-", "transition corpus (test-artifacts/transition-corpus.json)")
        terminalreporter.write_line(CORPUS_FIGURES["line"])
