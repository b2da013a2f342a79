"""The fuzz tests' router: the real app in-process on a temp SQLite store with a manual
clock, its MQTT bridge on a real Mosquitto (the generated password file and ACL), so the
sync routes answer too."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from router.config import load_config
from router.mqtt.bridge import settings_from_env
from router.service.app import create_app
from sandbox.mosquitto import mosquitto_binary
from tests.helpers import require
from tests.mqtt.helpers import REPO, start_broker
from tests.service.conftest import ManualClock, Router


@pytest.fixture
def broker(tmp_path):
    require(mosquitto_binary() is not None and shutil.which("mosquitto_passwd") is not None,
            "mosquitto and mosquitto_passwd", "run scripts/setup.sh (apt-get install mosquitto)")
    b = start_broker(tmp_path, REPO / "config")
    yield b
    b.kill()


@pytest.fixture
def router(tmp_path, broker):
    cfg = load_config(REPO / "config")
    mqtt = settings_from_env({"BATON_MQTT_HOST": "127.0.0.1",
                              "BATON_MQTT_PORT": str(broker.port),
                              "BATON_MQTT_CLIENT_ID": "baton-router-fuzz"})
    client = TestClient(create_app(cfg, f"sqlite+aiosqlite:///{tmp_path / 'router.db'}",
                                   clock=ManualClock(), autotick=False, mqtt=mqtt))
    with client:
        yield Router(client, client.app.state.core.clock)
