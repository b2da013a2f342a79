"""config/telepresence.yaml: optional, per-site overrides, errors name the file and key."""

from __future__ import annotations

import pytest

from common.config import ConfigError
from router.telepresence import load_telepresence_config

SITES = {"city-office", "north-branch"}


def test_absent_means_no_ice_servers(tmp_path):
    assert load_telepresence_config(tmp_path, SITES).ice_for("city-office") == []


def test_site_override_wins(tmp_path):
    (tmp_path / "telepresence.yaml").write_text(
        "ice_servers: [{urls: 'stun:a.example:3478'}]\n"
        "sites: {north-branch: {ice_servers: [{urls: ['turn:b.example'], username: u, "
        "credential: p}]}}\n")
    cfg = load_telepresence_config(tmp_path, SITES)
    assert cfg.ice_for("city-office") == [{"urls": "stun:a.example:3478"}]
    assert cfg.ice_for("north-branch") == [{"urls": ["turn:b.example"], "username": "u",
                                            "credential": "p"}]


@pytest.mark.parametrize(("text", "key"), [
    ("ice_servers: [{url: 'stun:a'}]", "ice_servers.0.url"),
    ("ice_servers: [{urls: []}]", "ice_servers.0.urls"),
    ("sites: {moon-base: {ice_servers: []}}", "sites.moon-base"),
])
def test_errors_name_file_and_key(tmp_path, text, key):
    (tmp_path / "telepresence.yaml").write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_telepresence_config(tmp_path, SITES)
    assert exc.value.key.startswith(key) and exc.value.file.endswith("telepresence.yaml")
