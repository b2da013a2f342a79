"""Serving a surface's page and assets: one helper, so every surface is mounted the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles


def mount_page(app: FastAPI, name: str, folder: Path, paths: tuple[str, ...],
               document: Callable[[], str] | None = None) -> None:
    """``folder/index.html`` (or the page ``document()`` builds) at each of ``paths``; the
    folder's files at /static/<name>/."""
    index = folder / "index.html"
    pages = APIRouter()

    async def page() -> Response:
        return HTMLResponse(document()) if document else FileResponse(index)

    for path in paths:
        pages.add_api_route(path, page, methods=["GET"], include_in_schema=False,
                            name=f"{name}-page")
    app.include_router(pages)
    app.mount(f"/static/{name}", StaticFiles(directory=folder), name=name)
