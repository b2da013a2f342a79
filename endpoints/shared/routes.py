"""The pages' shared ES modules at /static/shared/ (no page of their own)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).resolve().parent


def mount(app: FastAPI) -> None:
    app.mount("/static/shared", StaticFiles(directory=HERE), name="shared")
