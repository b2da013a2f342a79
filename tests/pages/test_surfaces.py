"""Each surface serves its own document (endpoints/<surface>/routes.py), and the remote
worker's document (derived from the desk's) keeps every element the desk's script drives
(the two pages share endpoints/desk/desk.js). No browser: the documents are parsed."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from endpoints.telepresence import routes as telepresence_routes
from router.config import load_config
from router.service.app import create_app

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = ROOT / "endpoints"


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        self.ids.update(v for k, v in attrs if k == "id" and v)


def _ids(html: str) -> set[str]:
    parser = _Ids()
    parser.feed(html)
    return parser.ids


def test_the_telepresence_document_has_what_the_desk_script_looks_up():
    wanted = set(re.findall(r'\$\("([A-Za-z0-9_-]+)"\)', (ENDPOINTS / "desk" / "desk.js")
                            .read_text(encoding="utf-8")))
    assert len(wanted) > 20, "the desk script's $(id) look-ups were not found"
    pages = {"desk": (ENDPOINTS / "desk" / "index.html").read_text(encoding="utf-8"),
             "telepresence": telepresence_routes.document()}
    for page, html in pages.items():
        missing = wanted - _ids(html)
        assert not missing, f"the {page} document lacks {sorted(missing)}"


def test_each_surface_serves_its_own_page(tmp_path: Path):
    app = create_app(load_config(ROOT / "config"), f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    client = TestClient(app)  # no lifespan: the pages need no core
    pages = {"/": "floor", "/floor": "floor", "/desk": "desk"}
    for path, surface in pages.items():
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.text == (ENDPOINTS / surface / "index.html").read_text(encoding="utf-8"), path
    remote = client.get("/telepresence")
    assert remote.status_code == 200
    assert remote.text == telepresence_routes.document()
    assert '<body data-surface="telepresence">' in remote.text
    assert "<title>Baton — remote worker</title>" in remote.text
    assert remote.text.index("/static/desk/desk.css") < remote.text.index(
        "/static/telepresence/telepresence.css"), "the remote worker's styles come last"
    for asset in ("/static/floor/floor.js", "/static/desk/desk.js",
                  "/static/telepresence/telepresence.css"):
        assert client.get(asset).status_code == 200, asset


def test_a_desk_document_the_telepresence_page_cannot_be_built_from_is_a_clear_error(
        tmp_path: Path, monkeypatch):
    changed = tmp_path / "index.html"
    changed.write_text("<html><head></head><body></body></html>", encoding="utf-8")
    monkeypatch.setattr(telepresence_routes, "DESK_DOCUMENT", changed)
    with pytest.raises(RuntimeError, match="SWAPS"):
        telepresence_routes.document()
