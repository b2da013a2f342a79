"""The desk's page and assets."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from endpoints.pages import mount_page

HERE = Path(__file__).resolve().parent


def mount(app: FastAPI) -> None:
    mount_page(app, "desk", HERE, ("/desk",))
