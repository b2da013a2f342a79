"""`pip install .` is the router alone; the edge extra brings the edge.

The router-only install is made for real: a fresh virtualenv, `pip install` of a copy of the
package sources (as the router image does), then `baton router` started until /healthz
answers. The edge's libraries are not installed there, so any import of them on the
router's path would fail the start. The edge side is this repository's .venv, installed with
`.[edge,demo,test,bench]` by scripts/setup.sh.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "common", "router", "endpoints", "edge", "sandbox")
# What only `baton[edge]` brings: speech recognition, translation, WebRTC media.
EDGE_ONLY = ("faster_whisper", "ctranslate2", "aiortc", "av", "argostranslate")

# Imports what `baton router` imports before it serves (the command's parser, the app, the
# bridge) and prints which of EDGE_ONLY got loaded.
ROUTER_IMPORTS = """
import json, sys
from router.cli import build_parser
build_parser("router")
import router.service.app, router.mqtt.cli, router.mqtt.bridge, router.transition
print(json.dumps(sorted(m for m in %r if m in sys.modules)))
""" % (EDGE_ONLY,)


def test_the_router_command_loads_no_edge_library():
    """In the full development venv (edge installed) the router's path still leaves the edge's
    libraries alone: `baton router` does not pay for them."""
    proc = subprocess.run([sys.executable, "-c", ROUTER_IMPORTS], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_the_edge_extra_runs_baton_edge():
    for mod in EDGE_ONLY:
        assert importlib.util.find_spec(mod) is not None, (
            f"{mod} is missing from this venv: scripts/setup.sh installs .[edge,demo,test,bench]")
    proc = subprocess.run([sys.executable, "-m", "router.cli", "edge", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout, proc.stdout


@pytest.mark.slow
def test_a_router_only_install_starts_without_the_edge(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", src / "pyproject.toml")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # The pip configuration of the machine applies (its index, wheel cache and find-links).
    pip = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                          str(src)], capture_output=True, text=True, timeout=1500)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]

    probe = subprocess.run(
        [str(py), "-c", "import importlib.util, json; print(json.dumps([m for m in %r if "
         "importlib.util.find_spec(m) is not None]))" % (EDGE_ONLY,)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == [], f"the router install brought {probe.stdout}"

    imports = subprocess.run([str(py), "-c", ROUTER_IMPORTS], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert imports.returncode == 0, imports.stderr
    assert json.loads(imports.stdout.strip().splitlines()[-1]) == []

    # An edge command says which extra to install instead of a traceback.
    baton = env_dir / "bin" / "baton"
    edge = subprocess.run([str(baton), "--config", str(ROOT / "config"), "edge", "--config",
                           "x.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert edge.returncode == 2, edge.stdout + edge.stderr
    assert "pip install 'baton[edge]'" in edge.stderr, edge.stderr

    port = free_port()
    log = (tmp_path / "router.log").open("wb")
    router = subprocess.Popen(
        [str(baton), "--config", str(ROOT / "config"), "router", "--port", str(port),
         "--db", f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}", "--demo-secrets"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "BATON_DATA_DIR": str(tmp_path / "var")})
    try:
        deadline = time.monotonic() + 180
        while True:
            assert router.poll() is None, (tmp_path / "router.log").read_text()[-4000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the router did not answer /healthz in 180 s"
            time.sleep(0.5)
        page = httpx.get(f"http://127.0.0.1:{port}/telepresence", timeout=10)
        assert page.status_code == 200 and "remote worker" in page.text
    finally:
        router.terminate()
        router.wait(timeout=30)
        log.close()
