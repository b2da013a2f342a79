"""The remote worker's page (/telepresence) and its assets.

The page is the desk's document (endpoints/desk/index.html, driven by the same endpoints/desk
scripts) with the remote worker's title and heading and the video-first stylesheet
(telepresence.css). It is derived when served, so the two documents cannot drift apart; the
desk's markup is read as a file, not imported (surfaces do not import each other).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from endpoints.pages import mount_page

HERE = Path(__file__).resolve().parent
DESK_DOCUMENT = HERE.parent / "desk" / "index.html"

# (what the desk's document says, what the remote worker's says): each must occur once.
SWAPS = (
    ("<title>Baton — desk</title>", "<title>Baton — remote worker</title>"),
    ("</head>", '<link rel="stylesheet" href="/static/telepresence/telepresence.css">\n</head>'),
    ("<body>", '<body data-surface="telepresence">'),
    ('<span class="sub">desk</span>', '<span class="sub">remote worker</span>'),
)


def document() -> str:
    html = DESK_DOCUMENT.read_text(encoding="utf-8")
    for old, new in SWAPS:
        if html.count(old) != 1:
            raise RuntimeError(f"{DESK_DOCUMENT}: expected {old!r} exactly once to build the "
                               "remote worker's page; update SWAPS in "
                               "endpoints/telepresence/routes.py with the desk's markup")
        html = html.replace(old, new)
    return html


def mount(app: FastAPI) -> None:
    mount_page(app, "telepresence", HERE, ("/telepresence",), document)
