"""Findings: no security headers on any page (no CSP; framing allowed, so the floor monitor's
Take/Reassign could be clickjacked), and /docs loaded Swagger UI from a CDN, blank on an
office network without internet. In headless Chromium against a real router process."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sandbox.procs import RouterProcess
from tests.pages.test_desk import browser  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
PAGES = ["/", "/desk", "/telepresence", "/docs", "/redoc"]
FILES = ["/favicon.svg", "/favicon.ico", "/static/desk/desk.js", "/static/floor/floor.css",
         "/openapi.json", "/healthz"]


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("router")
    proc = RouterProcess(REPO / "config", f"sqlite+aiosqlite:///{tmp / 'r.db'}")
    client = proc.start()
    try:
        yield proc
    finally:
        client.close()
        proc.stop()


def _csp(headers: dict[str, str]) -> dict[str, str]:
    out = {}
    for part in headers["content-security-policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        out[name] = value
    return out


def test_every_page_carries_the_security_headers(router, browser):  # noqa: F811
    page = browser.new_page()
    for path in PAGES + FILES:
        response = page.goto(router.url + path)
        assert response is not None and response.status == 200, path
        h = response.all_headers()
        csp = _csp(h)
        assert csp["frame-ancestors"] == "'none'", (path, csp)
        assert csp["script-src"] == "'self'", (path, csp)  # no inline script, no eval
        assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'", path
        assert "unsafe-inline" not in csp["style-src"] or path == "/redoc", (path, csp)
        assert h["x-content-type-options"] == "nosniff", path
        assert h["referrer-policy"] == "no-referrer", path
        assert h["x-frame-options"] == "DENY", path
        perms = h["permissions-policy"]
        if path in ("/desk", "/telepresence"):
            assert "camera=(self)" in perms and "microphone=(self)" in perms, (path, perms)
        else:
            assert "camera=()" in perms and "microphone=()" in perms, (path, perms)
        assert "strict-transport-security" not in h, path  # plain HTTP: HSTS means nothing
    page.close()


def test_csp_blocks_an_injected_inline_script_and_framing(router, browser):  # noqa: F811
    page = browser.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy"
            in m.text else None)
    page.goto(router.url + "/")
    ran = page.evaluate("""() => new Promise((resolve) => {
        document.addEventListener('securitypolicyviolation',
            (e) => resolve({blocked: e.violatedDirective, ran: window.__pwned === 1}));
        const s = document.createElement('script');
        s.textContent = 'window.__pwned = 1';
        document.body.appendChild(s);
        setTimeout(() => resolve({blocked: null, ran: window.__pwned === 1}), 2000);
    })""")
    assert ran == {"blocked": "script-src-elem", "ran": False}, ran
    # An inline event handler (the stored-XSS shape) is refused too.
    handler = page.evaluate("""() => new Promise((resolve) => {
        const img = document.createElement('img');
        img.setAttribute('onerror', 'window.__pwned2 = 1');
        img.src = 'data:,x';
        document.body.appendChild(img);
        setTimeout(() => resolve(window.__pwned2 === 1), 1000);
    })""")
    assert handler is False
    # Framed by another origin (a would-be clickjacker), the floor monitor does not render.
    framer = browser.new_page()
    framer.set_content(f'<iframe id="f" src="{router.url}/" width="800" height="600"></iframe>')
    framer.wait_for_timeout(1500)
    child = next(f for f in framer.frames if f != framer.main_frame)
    assert child.url.startswith("chrome-error://") or not child.query_selector("#conn"), child.url
    page.close()
    framer.close()


def test_api_docs_render_with_the_network_cut_off(router, browser):  # noqa: F811
    context = browser.new_context()
    blocked: list[str] = []

    def only_loopback(route):
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort("internetdisconnected")

    context.route("**/*", only_loopback)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(router.url + "/docs")
    page.wait_for_selector(".swagger-ui .opblock-tag", timeout=20_000)
    assert "/v1/cases" in page.inner_text(".swagger-ui")
    assert page.query_selector(".swagger-ui .authorize")  # the bearer scheme is declared
    page.goto(router.url + "/redoc")
    page.wait_for_selector("[role=search], .api-content", timeout=20_000)
    page.wait_for_function("() => document.body.innerText.includes('/v1/cases')",
                           timeout=20_000)
    assert blocked == [], blocked
    assert errors == [], errors
    context.close()


def test_openapi_declares_bearer_and_error_bodies(router):
    import httpx

    spec = httpx.get(router.url + "/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    op = spec["paths"]["/v1/cases/{case_id}"]["get"]
    assert op.get("security"), op
    for code in ("401", "403", "404"):
        ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorBody"), ref
    assert set(spec["components"]["schemas"]["ErrorBody"]["required"]) == {"error", "message"}
    # Every authenticated operation declares the scheme and its 401 body.
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if op.get("security"):
                assert "401" in op["responses"], (method, path)
