"""docker-compose.ha.yml and config/haproxy.cfg agree with each other and with the router:
two routers with their own instance names on one store, HAProxy health-checking /readyz.
(Docker and HAProxy are not needed: the files are parsed and cross-checked.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from router.ha.settings import ha_settings_from_env

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.ha.yml").read_text())
HAPROXY = (ROOT / "config" / "haproxy.cfg").read_text()


def test_two_routers_with_their_own_instance_on_one_store():
    routers = {n: s for n, s in COMPOSE["services"].items() if n.startswith("router-")}
    assert len(routers) == 2
    envs = [s["environment"] for s in routers.values()]
    assert len({e["BATON_HA_INSTANCE"] for e in envs}) == 2
    assert len({e["BATON_DB_URL"] for e in envs}) == 1
    assert all(e["BATON_DB_URL"].startswith("postgresql+asyncpg://") for e in envs)
    for name, service in routers.items():
        settings = ha_settings_from_env(service["environment"])
        assert settings is not None and settings.instance == name
        # The other router reaches it by its service name, on the port HAProxy checks.
        assert settings.advertise_url == f"http://{name}:8080"
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_haproxy_checks_readyz_on_every_router():
    assert re.search(r"option httpchk GET /readyz", HAPROXY)
    servers = re.findall(r"^\s*server (\S+) (\S+):8080 check", HAPROXY, re.M)
    routers = sorted(n for n in COMPOSE["services"] if n.startswith("router-"))
    assert sorted(host for _, host in servers) == routers
    proxy = COMPOSE["services"]["proxy"]
    assert any(v.startswith("./config/haproxy.cfg:") for v in proxy["volumes"])
    assert proxy["ports"] == ["8080:8080"]
