"""The architecture as executable contracts: .importlinter, checked by import-linter (PyPI).

The contracts (docs/architecture.md): the domain imports no web, broker, database or media
library; the edge imports only protocol and common from the shared side; protocol and common
import nothing above them; the surfaces do not import each other; product code never imports
the sandbox; the router does not import the edge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import require

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / ".importlinter"


def _lint(cwd: Path, *args: str, pythonpath: Path) -> subprocess.CompletedProcess:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    require(lint is not None, "import-linter (lint-imports)",
            "install the test extra: pip install -e '.[test]' (scripts/setup.sh does)")
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([lint, "--no-cache", "--no-logo", str(CONTRACTS), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    proc = _lint(ROOT, pythonpath=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout and "6 kept" in proc.stdout, proc.stdout


def test_a_broken_contract_is_reported(tmp_path: Path):
    """The same contract file on a tree where the edge imports the router: import-linter
    must fail, naming the import (the contracts are not vacuous)."""
    for pkg in ("protocol", "common", "router", "edge", "endpoints", "sandbox"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "router" / "config.py").write_text("X = 1\n")
    (tmp_path / "edge" / "node.py").write_text("from router.config import X\n")
    proc = _lint(tmp_path, "--contract", "edge-only-protocol", pythonpath=tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "edge.node -> router.config" in proc.stdout, proc.stdout
