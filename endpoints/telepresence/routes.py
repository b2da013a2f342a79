"""The remote worker's page and assets (its own document, endpoints/telepresence/index.html)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from endpoints.pages import mount_page

HERE = Path(__file__).resolve().parent


def mount(app: FastAPI) -> None:
    mount_page(app, "telepresence", HERE, ("/telepresence",))
