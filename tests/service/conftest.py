"""Router service fixtures: the real app on a temp SQLite store, driven with a manual clock."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from router.config import load_config
from router.service.app import create_app

REPO = Path(__file__).resolve().parents[2]
TOKENS = {
    "supervisor": "demo-supervisor-token-0001", "admin": "demo-admin-token-0001",
    "robot-1": "demo-robot-1-token-0001", "kiosk-1": "demo-kiosk-1-token-0001",
    "kiosk-2": "demo-kiosk-2-token-0001",
}


def token(subject: str) -> str:
    return TOKENS.get(subject, f"demo-{subject}-token-0001")


def auth(subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(subject)}"}


class ManualClock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def now(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def config_copy(tmp_path: Path, **routing_overrides) -> Path:
    """A copy of config/ with routing.yaml keys overridden."""
    dst = tmp_path / "config"
    shutil.copytree(REPO / "config", dst)
    if routing_overrides:
        routing = yaml.safe_load((dst / "routing.yaml").read_text())
        routing.update(routing_overrides)
        (dst / "routing.yaml").write_text(yaml.safe_dump(routing, allow_unicode=True))
    return dst


class Router:
    """The app under a TestClient, with handles on its core and clock."""

    def __init__(self, client: TestClient, clock: ManualClock):
        self.client, self.clock = client, clock

    @property
    def core(self):
        return self.client.app.state.core

    def call(self, fn, *args):
        return self.client.portal.call(fn, *args)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.call(self.core.run_timers)

    def available(self, *workers: str) -> None:
        for w in workers:
            r = self.client.put(f"/v1/workers/{w}/presence", json={"presence": "available"},
                                headers=auth(w))
            assert r.status_code == 200, r.text

    def open_case(self, device: str = "kiosk-1", **body):
        site = "north-branch" if device == "kiosk-2" else "city-office"
        payload = {"site": site, "device": device, "language": "ja", **body}
        r = self.client.post("/v1/cases", json=payload, headers=auth(device))
        assert r.status_code == 201, r.text
        return r.json()

    def case(self, case_id: str, who: str = "supervisor") -> dict:
        r = self.client.get(f"/v1/cases/{case_id}", headers=auth(who))
        assert r.status_code == 200, r.text
        return r.json()

    def events(self, case_id: str) -> list[dict]:
        r = self.client.get(f"/v1/cases/{case_id}/events", headers=auth("supervisor"))
        assert r.status_code == 200, r.text
        return r.json()["events"]


@pytest.fixture
def make_router(tmp_path):
    opened = []

    def make(config_dir: Path | None = None, db: Path | None = None,
             clock: ManualClock | None = None) -> Router:
        cfg = load_config(config_dir or REPO / "config")
        clock = clock or ManualClock()
        url = f"sqlite+aiosqlite:///{db or tmp_path / 'router.db'}"
        client = TestClient(create_app(cfg, url, clock=clock, autotick=False))
        client.__enter__()
        opened.append(client)
        return Router(client, clock)

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def router(make_router) -> Router:
    return make_router()
