"""The emergency protocol end to end, against real processes: Mosquitto, a ``baton router``
child process with the MQTT bridge, a ``baton edge --router`` child process for robot-1 (the
simulated resident types on stdin) and the floor monitor in headless Chromium.

A bystander at the robot reports, in Spanish and in words no phrase list holds, that a man
collapsed → the router flags it medical, puts the case first in line on the emergency
workflow → the floor monitor raises a blocking dialog with the alarm requested → a supervisor
acknowledges it → the robot shows the message in Spanish with the site's number → the
case's events record the emergency, the message and who acknowledged it when.
Screenshots: test-artifacts/pages/emergency-*.png."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from sandbox.procs import EdgeProcess
from tests.mqtt.helpers import fleet_config
from tests.pages.test_desk import browser  # noqa: F401 (fixture)
from tests.pages.test_desk import shot as desk_shot  # noqa: F401 (fixture)
from tests.telepresence.conftest import broker, router, token  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 15_000
PAGE_ERRORS: list[str] = []


@pytest.fixture
def cfg_dir(tmp_path):
    return fleet_config(tmp_path, devices=2)


shot = partial(desk_shot, prefix="emergency")


@pytest.mark.slow
def test_medical_turn_at_a_robot_raises_the_emergency_protocol(router, broker, browser,  # noqa: F811
                                                               tmp_path):
    from playwright.sync_api import expect

    http = router.http
    edge = EdgeProcess(
        router.config_dir / "edge" / "robot-1.yaml", router.url, token("robot-1"), broker.port,
        tmp_path / "edge-outbox.db", cwd=REPO,
        extra=["--video", "test", "--display", "record", "--no-speech",
               "--models-dir", str(tmp_path / "no-models")])
    try:
        edge.wait_event(lambda e: e["event"] == "station", 30, "the station to start")
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.on("pageerror", lambda e: PAGE_ERRORS.append(str(e)))
        page.set_default_timeout(TIMEOUT_MS)
        # The page records that the alarm was asked to sound (Web Audio).
        page.add_init_script("""
            window.__beeps = 0;
            const Orig = window.AudioContext;
            window.AudioContext = class extends Orig {
              createOscillator() { window.__beeps += 1; return super.createOscillator(); }
            };""")
        page.goto(f"{router.url}/#token={token('sato-floor')}")
        page.wait_for_selector('#conn[data-state="connected"]')
        dialog = page.locator("#emergency")
        expect(dialog).to_be_hidden()

        # A bystander, in Spanish (the edge has no translation models: the router reads the
        # resident's own words with the multilingual model).
        edge.say("es", "Un señor se ha caído al lado de la máquina y no se despierta")
        turn = edge.wait_event(lambda e: e["event"] == "router_turn", 30, "the router's answer")
        assert turn["decision"] == "escalate", turn
        case_id = turn["case_id"]

        # The floor monitor: a modal dialog that Escape does not dismiss, with the alarm.
        expect(dialog).to_be_visible()
        expect(dialog).to_have_attribute("role", "alertdialog")
        expect(page.locator("#emergency-where")).to_contain_text("robot-1")
        expect(page.locator("#emergency-case")).to_have_text(case_id)
        expect(page.locator("#emergency-number")).to_have_text("119")
        expect(dialog).to_have_attribute("data-sound", __import__("re").compile(
            "requested|playing"))
        page.wait_for_function("() => window.__beeps > 0")
        page.keyboard.press("Escape")
        expect(dialog).to_be_visible()
        shot(page, "01-alert")

        # The case is first in line, on the emergency workflow, for anyone with Spanish.
        case = http.get(f"/v1/cases/{case_id}",
                        headers={"Authorization": f"Bearer {token('supervisor')}"}).json()
        queued = [e for e in http.get(
            f"/v1/cases/{case_id}/events",
            headers={"Authorization": f"Bearer {token('supervisor')}"}).json()["events"]
            if e["type"] == "queued"][-1]["payload"]
        assert queued["requirement"]["priority"] == 100
        assert queued["requirement"]["workflow"] == "emergency"
        assert queued["requirement"]["language"] == "es"
        assert any(r.startswith("emergency:") for r in queued["reasons"]), queued
        assert case["case"]["state"] in ("queued", "offered")

        # The robot shows the message in Spanish with the site's number.
        shown = edge.wait_event(lambda e: e["event"] == "emergency" and e["number"] == "119",
                                20, "the emergency message on the robot's screen")
        assert shown["language"] == "es" and "personal" in shown["text"], shown

        # The supervisor acknowledges: the dialog closes, the alarm stops.
        page.get_by_role("button", name="Acknowledge").click()
        expect(dialog).to_be_hidden()
        expect(dialog).to_have_attribute("data-sound", "off")
        expect(page.locator("#alerts")).to_contain_text("Emergency")
        shot(page, "02-acknowledged")

        events = http.get(f"/v1/cases/{case_id}/events",
                          headers={"Authorization": f"Bearer {token('supervisor')}"}
                          ).json()["events"]
        signals = {e["payload"]["name"]: e for e in events if e["type"] == "signal"}
        assert signals["emergency"]["payload"]["detail"]["flags"] == ["medical"]
        ack = signals["emergency_acknowledged"]
        assert ack["payload"]["detail"]["by"] == "sato-floor"
        assert ack["payload"]["detail"]["at"] >= signals["emergency"]["ts"]
        ai_turns = [e["payload"] for e in events if e["type"] == "turn"
                    and e["payload"]["speaker"] == "ai"]
        assert any("119" in t["text"] and t["language"] == "es" for t in ai_turns)
        # Why it came to a person: the detector's score, nearest exemplar and threshold.
        flags = signals["policy_flags"]["payload"]["detail"]
        assert "medical" in flags["flags"]
        ev = flags["evidence"]["medical"]
        assert ev["by"] in ("semantic", "phrase")
        if ev["by"] == "semantic":
            assert ev["score"] >= ev["threshold"] and ev["exemplar"]
        assert not PAGE_ERRORS, PAGE_ERRORS
    finally:
        edge.stop()
