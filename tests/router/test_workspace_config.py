"""config/workspace.yaml: dispositions and canned responses, validated with a clear error."""

from __future__ import annotations

import shutil

import pytest

from common.config import ConfigError
from router.workspace_config import load_workspace
from tests.service.conftest import REPO


def test_repository_file_loads():
    ws = load_workspace(REPO / "config")
    assert {"answered", "resident_left"} <= {d.code for d in ws.dispositions}
    assert next(d for d in ws.dispositions if d.code == "resident_left").status == "abandoned"
    assert set(ws.canned) >= {"en", "es", "ja"}


def test_bad_file_names_the_key(tmp_path):
    shutil.copy(REPO / "config" / "workspace.yaml", tmp_path / "workspace.yaml")
    text = (tmp_path / "workspace.yaml").read_text().replace("code: answered", "code: Answered!")
    (tmp_path / "workspace.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"workspace.yaml: dispositions.0.code"):
        load_workspace(tmp_path)
    with pytest.raises(ConfigError, match="missing"):
        load_workspace(tmp_path / "nowhere")
