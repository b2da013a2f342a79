"""Each surface serves its own document (endpoints/<surface>/routes.py), and the remote
worker's document keeps every element the desk's script drives (the two pages share
endpoints/desk/desk.js). No browser: the documents are parsed."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from fastapi.testclient import TestClient

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


def _ids(path: Path) -> set[str]:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.ids


def test_the_telepresence_document_has_what_the_desk_script_looks_up():
    wanted = set(re.findall(r'\$\("([A-Za-z0-9_-]+)"\)', (ENDPOINTS / "desk" / "desk.js")
                            .read_text(encoding="utf-8")))
    assert len(wanted) > 20, "the desk script's $(id) look-ups were not found"
    for page in ("desk", "telepresence"):
        missing = wanted - _ids(ENDPOINTS / page / "index.html")
        assert not missing, f"endpoints/{page}/index.html lacks {sorted(missing)}"


def test_each_surface_serves_its_own_page(tmp_path: Path):
    app = create_app(load_config(ROOT / "config"), f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    client = TestClient(app)  # no lifespan: the pages need no core
    pages = {"/": "floor", "/floor": "floor", "/desk": "desk", "/telepresence": "telepresence"}
    for path, surface in pages.items():
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.text == (ENDPOINTS / surface / "index.html").read_text(encoding="utf-8"), path
    assert '<body data-surface="telepresence">' in client.get("/telepresence").text
    for asset in ("/static/floor/floor.js", "/static/desk/desk.js",
                  "/static/telepresence/telepresence.css"):
        assert client.get(asset).status_code == 200, asset
