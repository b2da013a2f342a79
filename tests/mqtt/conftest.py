"""MQTT test fixtures: every test gets its own Mosquitto on a free port (killed at the end)."""

from __future__ import annotations

import shutil

import pytest

from sandbox.mosquitto import mosquitto_binary
from tests.helpers import require
from tests.mqtt.helpers import MqttRouter, fleet_config, start_broker


@pytest.fixture
def cfg_dir(tmp_path):
    return fleet_config(tmp_path)


@pytest.fixture
def broker(tmp_path, cfg_dir):
    require(mosquitto_binary() is not None and shutil.which("mosquitto_passwd") is not None,
            "mosquitto and mosquitto_passwd", "run scripts/setup.sh (apt-get install mosquitto)")
    b = start_broker(tmp_path, cfg_dir)
    yield b
    b.kill()


@pytest.fixture
def routers():
    started = []
    yield started
    for r in started:
        r.kill()


@pytest.fixture
def router(tmp_path, cfg_dir, broker, routers):
    """A router process on the test's broker (killed at the end)."""
    r = MqttRouter(cfg_dir, tmp_path / "router.db", broker.port)
    routers.append(r)
    r.http = r.start()
    return r
