"""What every HTTP response carries for browsers, and the API docs served without a CDN.

- Content-Security-Policy: scripts and styles only from files of this origin (no inline
  script anywhere; /redoc alone allows inline *styles*, which ReDoc injects), no framing
  (``frame-ancestors 'none'``: the floor monitor's Take/Reassign cannot be clickjacked).
- nosniff, Referrer-Policy no-referrer, COOP same-origin.
- Permissions-Policy: camera and microphone only on the pages that run a video session
  (/desk, /telepresence); nowhere else.
- HSTS when the request came over TLS (uvicorn with --tls-cert, or a trusted proxy's
  X-Forwarded-Proto).
- /docs (Swagger UI) and /redoc from the files of the ``fastapi-offline`` package, so they
  work on an office network without internet.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

ENDPOINTS = Path(__file__).resolve().parents[2] / "endpoints"
MEDIA_PAGES = ("/desk", "/telepresence")
_BASE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; "
             "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
             "connect-src 'self'; font-src 'self' data:; worker-src 'self' blob:; "
             "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_REDOC_CSP = _BASE_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
_NO_DEVICES = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), display-capture=()"
_AV_DEVICES = ("camera=(self), microphone=(self), geolocation=(), payment=(), usb=(), "
               "display-capture=()")
HSTS = b"max-age=31536000; includeSubDomains"


def headers_for(path: str, https: bool) -> list[tuple[bytes, bytes]]:
    csp = _REDOC_CSP if path == "/redoc" else _BASE_CSP
    perms = _AV_DEVICES if path in MEDIA_PAGES else _NO_DEVICES
    out = [(b"content-security-policy", csp.encode()),
           (b"x-content-type-options", b"nosniff"),
           (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer"),
           (b"cross-origin-opener-policy", b"same-origin"),
           (b"permissions-policy", perms.encode())]
    if https:
        out.append((b"strict-transport-security", HSTS))
    return out


class SecurityHeaders:
    """Pure ASGI (no BaseHTTPMiddleware: it buffers streaming bodies)."""

    def __init__(self, app, force_https: bool = False):
        self.app, self.force_https = app, force_https

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        https = self.force_https or scope.get("scheme") == "https"
        extra = headers_for(scope.get("path", ""), https)
        names = {k for k, _ in extra}

        async def with_headers(message):
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + extra}
            await send(message)

        await self.app(scope, receive, with_headers)


def _offline_assets() -> Path:
    try:
        return Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError as exc:  # pragma: no cover - a dependency in pyproject.toml
        raise RuntimeError("fastapi-offline is missing: run scripts/setup.sh") from exc


_SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/docs/swagger-ui.css"></head>
<body><div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="/static/docs/swagger-ui-bundle.js"></script>
<script src="/static/docs-init/swagger-init.js"></script></body></html>
"""
_REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API (ReDoc)</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml"></head>
<body><redoc spec-url="{openapi}"></redoc>
<script src="/static/docs/redoc.standalone.js"></script></body></html>
"""


def add_docs_and_icon(app: FastAPI) -> None:
    """Call with ``FastAPI(docs_url=None, redoc_url=None)``."""
    app.mount("/static/docs", StaticFiles(directory=_offline_assets()), name="docs-assets")
    app.mount("/static/docs-init", StaticFiles(directory=ENDPOINTS / "docs"),
              name="docs-init")
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return HTMLResponse(_SWAGGER.format(title=app.title, openapi=openapi))

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(_REDOC.format(title=app.title, openapi=openapi))

    @app.get("/favicon.svg", include_in_schema=False)
    async def favicon_svg() -> FileResponse:
        return FileResponse(ENDPOINTS / "favicon.svg", media_type="image/svg+xml")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon_ico() -> FileResponse:
        return FileResponse(ENDPOINTS / "favicon.svg", media_type="image/svg+xml")
