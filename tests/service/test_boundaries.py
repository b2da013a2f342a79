"""The core's boundary, checked on the source tree: nothing outside router/service/core/
reaches into the core's private names or the matching engine behind it, and the core does
not import the web or view layer."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "router" / "service" / "core"
SKIP_DIRS = {".venv", "node_modules", ".git", "__pycache__", "var"}

# `core._x`, `app.state.core._x`, `self.core._x`; and the engine held by the core.
PRIVATE = re.compile(r"\bcore\._[A-Za-z]")
ENGINE = re.compile(r"\bcore\.(_?engine)\b|\._engine\b")
# The core imports neither FastAPI nor the view/web modules around it.
_WEB = r"(views|hub|ws|routes|app|auth|http_errors)"
WEB_IMPORT = re.compile(r"^\s*(?:(?:from|import)\s+(?:fastapi|starlette)\b|"
                        rf"(?:from|import)\s+router\.service\.{_WEB}\b|"
                        rf"from\s+router\.service\s+import\s+.*\b{_WEB}\b)", re.M)


def _python_files():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if SKIP_DIRS & set(rel.parts):
            continue
        yield path, rel


def test_nothing_outside_the_core_touches_its_private_names_or_the_engine():
    hits = []
    for path, rel in _python_files():
        if path.is_relative_to(CORE) or path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if PRIVATE.search(line) or ENGINE.search(line):
                hits.append(f"{rel}:{n}: {line.strip()}")
    assert not hits, ("use the core's public commands and queries (router/service/core/"
                      "service.py) instead of its internals:\n" + "\n".join(hits))


def test_the_core_does_not_import_the_web_layer():
    hits = []
    for path in CORE.rglob("*.py"):
        for m in WEB_IMPORT.finditer(path.read_text(encoding="utf-8")):
            hits.append(f"{path.relative_to(ROOT)}: {m.group(0).strip()}")
    assert not hits, "the core must not import the web or view layer:\n" + "\n".join(hits)


def test_the_check_finds_what_it_looks_for():
    # The patterns above must match the shapes they guard against (a check that cannot
    # fail proves nothing).
    assert PRIVATE.search("case = await request.app.state.core._case(case_id)")
    assert PRIVATE.search("async with self.core._unit():")
    assert ENGINE.search("for o in core.engine.offers.values()")
    assert not PRIVATE.search("core.case(case_id)")
    assert WEB_IMPORT.search("from router.service import views")
    assert WEB_IMPORT.search("from fastapi import HTTPException")
