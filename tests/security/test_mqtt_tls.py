"""Findings: MQTT client ids were not bound to users (a device's own credentials with client
id ``baton-edge-<other device>`` kicked that device off, in a loop; with the router's
predictable client id, the router itself), and there was no tested TLS path. Now Mosquitto
binds the client id to the username (config/mosquitto.conf ``use_username_as_clientid``),
the router's client id is unguessable, and the broker's TLS listener and the router's HTTPS
run here with a CA made in the test."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from common.mqtt.client import MqttClient, Settings, Tls
from router.config import load_config
from router.mqtt.auth import write_auth
from router.mqtt.bridge import settings_from_env
from router.secrets import generate_values
from sandbox.mosquitto import MosquittoProcess, mosquitto_binary
from sandbox.procs import RouterProcess, free_port
from tests.helpers import require
from tests.security.pki import make_pki

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def secrets():
    return generate_values(load_config(REPO / "config"))


@pytest.fixture
def broker(tmp_path, secrets):
    require(mosquitto_binary() is not None, "mosquitto", "apt-get install mosquitto")
    pki = make_pki(tmp_path / "pki")
    passwd, acl = write_auth(load_config(REPO / "config"), tmp_path / "auth", env=secrets)
    tls_port = free_port()
    extra = (f"listener {tls_port} 127.0.0.1\ncertfile {pki['cert']}\nkeyfile {pki['key']}\n"
             "tls_version tlsv1.2\n")
    b = MosquittoProcess(tmp_path / "broker", passwd=passwd, acl=acl, extra=extra,
                         bind_client_ids=True)
    b.start()
    b.tls_port, b.pki = tls_port, pki
    yield b
    b.stop()


def _device(port: int, device: str, password: str, client_id: str, tls: Tls | None = None
            ) -> MqttClient:
    return MqttClient(Settings("127.0.0.1", port, client_id=client_id, username=device,
                               password=password, protocol="5", connect_timeout_s=3,
                               backoff_max_s=1, tls=tls), on_message=lambda m: None)


async def _stays_connected(client: MqttClient, seconds: float) -> bool:
    end = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < end:
        if not client.connected.is_set():
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_device_cannot_take_over_another_devices_client_id(broker, secrets):
    conf = (REPO / "config/mosquitto.conf").read_text()
    assert "\nuse_username_as_clientid true\n" in conf
    victim = _device(broker.port, "robot-1", secrets["BATON_TOKEN_ROBOT_1"],
                     "baton-edge-robot-1")
    thief = _device(broker.port, "robot-2", secrets["BATON_TOKEN_ROBOT_2"],
                    "baton-edge-robot-1")
    async with victim:
        await victim.wait_connected(10)
        async with thief:
            await thief.wait_connected(10)  # it gets in, as itself (client id "robot-2")
            assert await _stays_connected(victim, 2.0), victim.last_error
    log = broker.log.read_text()
    assert "robot-1 already connected, closing old connection" not in log, log


def test_the_routers_client_id_is_unguessable_and_stable(monkeypatch):
    monkeypatch.delenv("BATON_MQTT_CLIENT_ID", raising=False)
    ids = []
    for password in ("a" * 43, "a" * 43, "b" * 43):
        env = {"BATON_MQTT_HOST": "127.0.0.1", "BATON_MQTT_PASSWORD": password}
        ids.append(settings_from_env(env).mqtt.client_id)
    assert ids[0] == ids[1] != ids[2]  # a restart resumes its session; others cannot guess
    assert socket.gethostname() not in ids[0] and len(ids[0]) >= 32, ids


async def test_tls_listener_with_a_ca_made_here(broker, secrets):
    tls = Tls(ca_file=str(broker.pki["ca"]))
    good = _device(broker.tls_port, "robot-1", secrets["BATON_TOKEN_ROBOT_1"], "x", tls)
    async with good:
        await good.wait_connected(10)
    # Without our CA the client refuses the broker's certificate.
    other_ca = make_pki(broker.dir.parent / "other")["ca"]
    bad = _device(broker.tls_port, "robot-1", secrets["BATON_TOKEN_ROBOT_1"], "y",
                  Tls(ca_file=str(other_ca)))
    async with bad:
        for _ in range(100):
            if bad.last_error:
                break
            await asyncio.sleep(0.05)
        assert not bad.connected.is_set()
        assert "certificate" in (bad.last_error or "").lower(), bad.last_error


def test_router_over_https_and_its_bridge_over_mqtt_tls(tmp_path, broker, secrets):
    env = {"BATON_MQTT_HOST": "localhost", "BATON_MQTT_PORT": str(broker.tls_port),
           "BATON_MQTT_TLS_CA": str(broker.pki["ca"]), "BATON_MQTT_PROTOCOL": "5"}
    router = RouterProcess(REPO / "config", f"sqlite+aiosqlite:///{tmp_path / 'r.db'}",
                           secrets=secrets, env=env, scheme="https",
                           extra_args=["--tls-cert", str(broker.pki["cert"]),
                                       "--tls-key", str(broker.pki["key"])])
    ctx = ssl.create_default_context(cafile=str(broker.pki["ca"]))
    client = router.start(verify=ctx)
    try:
        admin = {"Authorization": f"Bearer {secrets['BATON_TOKEN_ADMIN']}"}
        r = client.get("/", headers=admin)
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        for _ in range(100):
            status = client.get("/v1/sync", headers=admin).json()
            if status["connected"]:
                break
            time.sleep(0.1)
        assert status["connected"], status
        # Plain HTTP to the TLS port gets nowhere.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{router.port}/healthz", timeout=3).raise_for_status()
    finally:
        client.close()
        router.stop()
