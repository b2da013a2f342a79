"""The whole telepresence scenario, as issue #6 words it, against real processes: Mosquitto, a
``baton router`` child process with the MQTT bridge, and a ``baton edge --router`` child
process for robot-1 (simulated robot, 640×480 test pattern, phrasebook translation, the
simulated resident typing on stdin). Headless Chromium (fake camera and microphone) plays the
remote worker (/telepresence), the specialist (/desk) and the floor supervisor (/).

A resident asks at the robot about renewing a residence card in Japanese → the router
escalates → the remote worker's page gets the offer with the preview, accepts, shows the
packet; video starts by itself and flows both ways (decoded frames and fps on both sides);
captions cross translated both ways; a robot command moves the simulated robot, which stops
by itself at the safety timeout; a warm transfer carries the packet to a residency
specialist; the floor monitor shows each change. Screenshots: test-artifacts/pages/scenario-*.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest

from sandbox.procs import EdgeProcess
from tests.mqtt.helpers import fleet_config
from tests.pages.test_desk import browser  # noqa: F401 (fixture)
from tests.pages.test_desk import shot as desk_shot  # noqa: F401 (fixture)
from tests.pages.test_desk import wait_available
from tests.telepresence.conftest import broker, router, token  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 15_000
COMMAND_TIMEOUT_S = 2.0
PAGE_ERRORS: list[str] = []


@pytest.fixture
def cfg_dir(tmp_path):
    # No ICE servers in config/telepresence.yaml: host candidates, as on one LAN.
    return fleet_config(tmp_path, devices=2)


shot = partial(desk_shot, prefix="scenario")


def open_page(browser, url: str, path: str, subject: str, *, available: bool):  # noqa: F811
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.on("pageerror", lambda e: PAGE_ERRORS.append(f"{subject}: {e}"))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}{path}#token={token(subject)}")
    page.wait_for_selector('#conn[data-state="connected"]')
    if available:
        page.get_by_label("Available").check()
    return page


FRAMES = ("() => { const v = document.getElementById('remote-video');"
          " return v.getVideoPlaybackQuality().totalVideoFrames; }")


@pytest.mark.slow
def test_escalation_at_the_robot_to_video_captions_controls_and_warm_transfer(
        router, broker, browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    http = router.http
    edge = EdgeProcess(
        router.config_dir / "edge" / "robot-1.yaml", router.url, token("robot-1"), broker.port,
        tmp_path / "edge-outbox.db", cwd=REPO,
        extra=["--video", "test", "--display", "record", "--no-speech", "--screen-port", "0",
               "--command-timeout",
               str(COMMAND_TIMEOUT_S), "--models-dir", str(tmp_path / "no-models")])
    try:
        edge.wait_event(lambda e: e["event"] == "station", 30, "the station to start")
        floor = open_page(browser, router.url, "/", "sato-floor", available=False)
        expect(floor.locator('tr[data-device="robot-1"]')).to_contain_text("online")
        aiko = open_page(browser, router.url, "/telepresence", "aiko", available=True)
        expect(aiko.locator("h1")).to_contain_text("remote worker")
        wait_available(http, "aiko")
        shot(floor, "01-floor-before")

        # The resident asks the robot, in Japanese, about renewing a residence card.
        edge.say("ja", "在留カードの更新について相談したいです。")
        turn = edge.wait_event(lambda e: e["event"] == "router_turn", 15, "the router's answer")
        assert turn["decision"] == "escalate" and turn["handoff"]["status"] == "connecting"
        case_id = turn["case_id"]
        shown = edge.wait_event(lambda e: e["event"] == "display" and e["from"] == "router", 5,
                                "the hand-off on the robot's screen")
        assert shown["lang"] == "ja" and shown["text"].startswith("担当者におつなぎします")

        # The remote worker's page gets the offer with the packet preview.
        offer = aiko.locator("li.offer", has_text=case_id)
        expect(offer).to_be_visible()
        expect(offer).to_contain_text("residency")
        shot(aiko, "02-worker-offer")
        row = floor.locator(f'#cases tr[data-case="{case_id}"]')
        expect(row).to_contain_text("offered")
        shot(floor, "02-floor-offered")

        # Accept → the packet; video starts by itself on this surface.
        offer.get_by_role("button", name=f"Accept case {case_id}").click()
        expect(aiko.locator("#case-h")).to_have_text(f"Case {case_id}")
        expect(aiko.locator("#transcript")).to_contain_text("在留カードの更新について相談したいです。")
        expect(aiko.locator("#transcript")).to_contain_text(
            "I want to ask about renewing my residence card.")
        expect(aiko.locator("#esc-reasons")).not_to_be_empty()
        expect(row).to_contain_text("connected")
        expect(row).to_contain_text("Aiko Tanaka (aiko)")
        expect(aiko.locator("#media-status")).to_contain_text("Live with robot-1")
        expect(floor.locator('tr[data-device="robot-1"]')).to_contain_text(
            f"In session: {case_id} with Aiko Tanaka (aiko)")

        # Video both ways: the page decodes the robot's 640×480 stream at a real rate, and
        # the robot reports (on the device channel) the worker's video it decodes.
        # A function, not an expression: the page's CSP forbids eval of a string.
        aiko.wait_for_function(f"() => ({FRAMES})() > 10", timeout=TIMEOUT_MS)
        first, t0 = aiko.evaluate(FRAMES), time.monotonic()
        aiko.wait_for_timeout(2000)
        fps = (aiko.evaluate(FRAMES) - first) / (time.monotonic() - t0)
        assert fps >= 10, f"browser decodes the robot's video at {fps:.1f} fps"
        size = aiko.evaluate("() => { const v = document.getElementById('remote-video');"
                             " return [v.videoWidth, v.videoHeight]; }")
        assert size == [640, 480], size
        aiko.wait_for_function("() => Number(document.getElementById('ds-video')"
                               ".dataset.fps || 0) >= 10", timeout=TIMEOUT_MS)
        shot(aiko, "03-worker-live")
        shot(floor, "03-floor-connected")

        # Captions: the resident speaks (translated at the edge, original alongside) ...
        edge.say("ja", "住民票の写しが必要です。")
        cap = aiko.locator("#captions li", has_text="I need a copy of my residence record.")
        expect(cap).to_be_visible()
        expect(cap).to_contain_text("住民票の写しが必要です。")
        # ... and the worker answers: the robot shows it in Japanese, and the worker sees
        # the Japanese under their words.
        aiko.get_by_label("Caption to send").fill("Of course, one moment please.")
        aiko.get_by_label("Caption language").select_option("en")
        aiko.get_by_role("button", name="Send caption").click()
        shown = edge.wait_event(lambda e: e["event"] == "display" and e["from"] == "worker", 5,
                                "the worker's caption on the robot")
        assert shown == {**shown, "lang": "ja", "text": "かしこまりました。少々お待ちください。"}
        expect(aiko.locator("#captions li", has_text="かしこまりました")).to_contain_text(
            "Of course, one moment please.")
        shot(aiko, "04-worker-captions")

        # A robot command reaches the simulated driver; it stops by itself at the safety
        # timeout (the page sends no duration).
        expect(aiko.locator("#ds-pose")).to_contain_text("x 0.00 m")
        aiko.get_by_role("button", name="Forward").click()
        sent = time.monotonic()
        expect(aiko.locator("#ds-motion")).to_contain_text("moving 0.30 m/s")
        expect(aiko.locator("#ds-motion")).to_have_text("stopped (stopped by itself 1×)",
                                                        timeout=COMMAND_TIMEOUT_S * 1000 + 3000)
        took = time.monotonic() - sent
        assert COMMAND_TIMEOUT_S - 0.3 <= took <= COMMAND_TIMEOUT_S + 1.5, took
        pose_x = float(aiko.locator("#ds-pose").inner_text().split()[1])
        assert 0.3 * COMMAND_TIMEOUT_S * 0.9 <= pose_x <= 0.3 * COMMAND_TIMEOUT_S * 1.1, pose_x
        shot(aiko, "05-worker-robot-stopped")

        # Warm transfer to a residency specialist at a desk: the packet goes along.
        haruto = open_page(browser, router.url, "/desk", "haruto", available=True)
        wait_available(http, "haruto")
        aiko.get_by_label("Skills (e.g. residency:4, tax:3)").fill("residency:5")
        aiko.get_by_label("Workflow (optional)").fill("contact_center")
        aiko.get_by_label("Note for the next person").fill(
            "Residence card renewal; she needs the copy of her record too.")
        aiko.get_by_role("button", name="Transfer").click()
        expect(aiko.locator("#case-status")).to_contain_text("Transfer requested")
        expect(row).to_contain_text("Haruto Ito (haruto) (offered)")
        shot(floor, "06-floor-transfer-offered")
        h_offer = haruto.locator("li.offer", has_text=case_id)
        expect(h_offer).to_be_visible()
        expect(h_offer).to_contain_text("Residence card renewal")
        shot(haruto, "06-specialist-offer")
        h_offer.get_by_role("button", name=f"Accept case {case_id}").click()
        expect(haruto.locator("#case-h")).to_have_text(f"Case {case_id}")
        expect(haruto.locator("#transcript")).to_contain_text("住民票の写しが必要です。")
        expect(haruto.locator("#transcript")).to_contain_text(
            "I want to ask about renewing my residence card.")
        expect(haruto.locator("#notes")).to_contain_text("aiko: Residence card renewal")
        expect(haruto.locator("#handoffs")).to_contain_text("aiko → haruto")
        shot(haruto, "07-specialist-packet")
        expect(row).to_contain_text("Haruto Ito (haruto)")
        expect(aiko.locator("#case-tabs button", has_text=case_id)).to_contain_text(
            "now with haruto")
        expect(aiko.locator("#media-status")).to_contain_text("no longer connected to you")
        expect(aiko.locator("#error")).to_be_hidden()
        shot(aiko, "07-worker-after-transfer")
        shot(floor, "07-floor-specialist")
        edge.wait_event(lambda e: e["event"] == "case" and e["worker"] == "haruto", 10,
                        "the robot to learn who has the case")
        assert not PAGE_ERRORS, PAGE_ERRORS
    finally:
        edge.stop()
