"""Configuration: the shipped config is valid; every kind of bad file names file, key, reason."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common.config import ConfigError
from router.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cfg_dir(tmp_path) -> Path:
    dst = tmp_path / "config"
    shutil.copytree(REPO / "config", dst)
    return dst


def edit(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


def test_shipped_config_is_valid_and_complete():
    cfg = load_config(REPO / "config")
    sites = {s.id: s for s in cfg.sites.sites}
    assert set(sites) == {"city-office", "north-branch"}
    kinds = sorted(d.kind for d in sites["city-office"].devices)
    assert kinds == ["kiosk", "robot", "robot"]
    assert [d.kind for d in sites["north-branch"].devices] == ["kiosk"]
    assert set(cfg.languages.languages) == {"ja", "en", "es", "pt", "zh"}
    assert {w.kind.value for w in cfg.workers.workers} >= {"agent", "specialist",
                                                          "remote_worker"}
    # Every worker and device can sign in.
    subjects = {e.subject for e in cfg.resolved_tokens().values()}
    assert {w.id for w in cfg.workers.workers} <= subjects
    assert {d.id for s in cfg.sites.sites for d in s.devices} <= subjects


@pytest.mark.parametrize("file,change,key,reason", [
    ("routing.yaml", lambda d: d.update(offer_timeout_s=-1), "offer_timeout_s",
     "greater than 0"),
    ("routing.yaml", lambda d: d["workflows"]["telepresence"]["steps"][0].update(timeout_s=None),
     "workflows.telepresence", "only the last step"),
    ("routing.yaml", lambda d: d["workflows"]["contact_center"]["steps"][1]["target"].update(
        kinds=["wizard"]), "workflows.contact_center.steps.1.target.kinds.0", "agent"),
    ("routing.yaml", lambda d: d.update(default_workflow="nope"), "(top level)",
     "default_workflow 'nope'"),
    ("routing.yaml", lambda d: d.update(surprise=1), "surprise", "Extra inputs"),
    ("workers.yaml", lambda d: d["workers"][0].update(languages={"ja": 9}),
     "workers.0.languages.ja", "less than or equal to 5"),
    ("workers.yaml", lambda d: d["workers"][1].update(skills={"juggling": 2}),
     "workers.1.skills.juggling", "skills.yaml"),
    ("workers.yaml", lambda d: d["workers"][2].update(id=d["workers"][0]["id"]),
     "workers.2.id", "used twice"),
    ("workers.yaml", lambda d: d["workers"][0].update(sites=["atlantis"]),
     "workers.0.sites", "atlantis"),
    ("sites.yaml", lambda d: d["sites"][0].update(languages=["fr"]), "sites.0.languages",
     "'fr'"),
    ("sites.yaml", lambda d: d["sites"][1]["devices"][0].update(kind="drone"),
     "sites.1.devices.0.kind", "kiosk"),
    ("languages.yaml", lambda d: d.update(pivot="de"), "(top level)", "pivot"),
    ("tokens.yaml", lambda d: d["tokens"][0].update(subject="ghost"), "tokens.0.subject",
     "ghost"),
    ("tokens.yaml", lambda d: d["tokens"][0].update(token="short"), "tokens.0.token",
     "at least 16"),
])
def test_bad_config_names_file_key_and_reason(cfg_dir, file, change, key, reason):
    edit(cfg_dir / file, change)
    with pytest.raises(ConfigError) as exc:
        load_config(cfg_dir)
    err = exc.value
    assert err.file.endswith(file)
    assert err.key == key, str(err)
    assert reason.lower() in err.detail.lower(), str(err)


def test_yaml_syntax_error_and_missing_file(cfg_dir):
    (cfg_dir / "routing.yaml").write_text("workflows: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cfg_dir)
    assert "routing.yaml" in str(exc.value) and "line" in exc.value.key
    (cfg_dir / "routing.yaml").unlink()
    with pytest.raises(ConfigError, match="routing.yaml: file is missing"):
        load_config(cfg_dir)


def test_router_refuses_to_start_on_bad_config(cfg_dir):
    edit(cfg_dir / "routing.yaml", lambda d: d.update(away_after_timeouts=0))
    proc = subprocess.run([sys.executable, "-m", "router.cli", "--config", str(cfg_dir),
                           "router", "--port", "1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "routing.yaml: away_after_timeouts:" in proc.stderr


def test_token_env_overrides_demo_token(cfg_dir, monkeypatch):
    monkeypatch.setenv("BATON_TOKEN_KEN", "a-real-secret-from-the-env")
    tokens = load_config(cfg_dir).resolved_tokens()
    assert tokens["a-real-secret-from-the-env"].subject == "ken"
    assert "demo-ken-token-0001" not in tokens
