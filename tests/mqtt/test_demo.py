"""`baton demo` runs alone: the router, simulated workers and devices that talk MQTT to it
through the embedded broker (amqtt, MQTT 3.1.1)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from sandbox.procs import free_port
from tests.mqtt.helpers import ADMIN, REPO, wait_until


@pytest.mark.slow
def test_demo_runs_on_the_embedded_broker(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "router.cli", "demo", "--port", str(port),
                             "--seconds", "60", "--cases-per-minute", "60", "--seed", "7"],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, encoding="utf-8")
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5,
                            headers={"Authorization": f"Bearer {ADMIN}"})

        def sync():
            try:
                return http.get("/v1/sync").json()
            except httpx.TransportError:
                return None

        # 90 s: this includes the router's start-up (36-40 s on a loaded 2-core machine).
        status = wait_until(lambda: (s := sync()) and s["counters"].get("applied", 0) >= 6
                            and s, 90, "device events applied over MQTT")
        assert status["protocol"] == "3.1.1" and status["connected"]
        assert {d["device"] for d in status["devices"] if d["status"] == "online"} == \
            {"robot-1", "robot-2", "kiosk-1", "kiosk-2"}
        assert status["dead_letters"] == {}
        # Cases opened by devices over MQTT reach humans (escalated over REST).
        cases = http.get("/v1/cases", params={"limit": 100}).json()["cases"]
        assert wait_until(lambda: any(c["assigned_worker"] for c in http.get(
            "/v1/cases", params={"limit": 100}).json()["cases"]), 15, "a case with a human")
        assert cases
        # robot-1 is a live edge station: a resident's turn typed on the demo's stdin goes
        # through the router's transition layer and escalates.
        proc.stdin.write("ja: 在留カードの更新について相談したいです。\n")
        proc.stdin.flush()
        assert wait_until(lambda: any(
            c["device"] == "robot-1" and c["intent"] == "residency_status"
            for c in http.get("/v1/cases", params={"limit": 200}).json()["cases"]), 10,
            "the typed turn's case at robot-1")
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        assert "Traceback" not in out, out
        assert "robot-1 is a live edge station" in out
        assert "/telepresence#token=" in out  # aiko is a remote worker
    finally:
        proc.kill()
