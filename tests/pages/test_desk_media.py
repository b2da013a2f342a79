"""Live video both ways, captions and robot controls on the desk page (endpoints/desk) in
headless Chromium: a real Mosquitto and a real router child process with the bridge, and
the edge's MediaPeer (SimulatedRobot, 640×480 test pattern) on MqttSignaler for robot-1.
The remote worker accepts a robot-1 video case over REST and clicks "Start video"."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import time

import pytest

from edge.device import DeviceRunner, SafetyLimits, SimulatedRobot
from edge.webrtc import MediaPeer, RecordingDisplay, open_local_media
from edge.webrtc.channels import Caption, CaptionText
from sandbox.procs import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import require
from tests.mqtt.helpers import fleet_config
from tests.pages.test_desk import SHOTS
from tests.telepresence.conftest import broker, device_link, router, token  # noqa: F401
from tests.webrtc.conftest import loopback_ice  # noqa: F401 (fixture)

TIMEOUT_MS = 15_000


@pytest.fixture
def cfg_dir(tmp_path):
    # config/telepresence.yaml has no ICE servers: host candidates only, as on one LAN.
    return fleet_config(tmp_path, devices=2)


def auth(subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(subject)}"}


def open_video_case(http) -> str:
    """A resident at robot-1 (city office, Japanese) asks for a person on video: the case id."""
    r = http.post("/v1/cases", headers=auth("robot-1"),
                  json={"site": "city-office", "device": "robot-1", "language": "ja",
                        "channel": "video", "skills": {"general": 3}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def wait_for(fn, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


@pytest.mark.slow
async def test_desk_live_video_captions_and_robot_controls(router, broker,  # noqa: F811
                                                           loopback_ice):
    require(shutil.which("chromium") is not None, "Chromium at /usr/bin/chromium",
            "apt-get install chromium")
    require(importlib.util.find_spec("playwright") is not None, "the playwright package",
            ".venv/bin/pip install -e '.[test]'")
    from playwright.async_api import async_playwright, expect

    http = router.http
    errors: list[str] = []
    robot = SimulatedRobot(limits=SafetyLimits(command_timeout_s=2.0))
    runner = DeviceRunner(robot, tick_s=0.01)
    display = RecordingDisplay()
    edge: MediaPeer | None = None

    async with device_link(broker.port, "robot-1") as link, runner, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await (await browser.new_context(
                viewport={"width": 1280, "height": 1000})).new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{router.url}/desk#token={token('aiko')}")
            await page.wait_for_selector('#conn[data-state="connected"]')
            await page.get_by_label("Available").check()
            await wait_for(lambda: next(w for w in http.get("/v1/workers").json()["workers"]
                                        if w["id"] == "aiko")["presence"] == "available",
                           5, "aiko available")

            # A resident at robot-1 asks for a person on video; aiko accepts over REST.
            case_id = open_video_case(http)
            offer = page.locator("li.offer", has_text=case_id)
            await expect(offer).to_be_visible()
            offer_id = await offer.get_attribute("data-offer-id")
            r = http.post(f"/v1/offers/{offer_id}/accept", headers=auth("aiko"))
            assert r.status_code == 200, r.text
            assert r.json()["case"]["state"] == "connected"

            await expect(offer).to_have_count(0)  # accepted elsewhere: no longer offered
            await page.locator("#case-tabs button", has_text=case_id).click()
            await expect(page.locator("#case-h")).to_have_text(f"Case {case_id}")
            panel = page.locator("#media")
            await expect(panel).to_be_visible()

            # The edge answers whatever session the router opens for it.
            async def edge_side() -> MediaPeer:
                signaler = await link.next_session(20)
                assert signaler.case_id == case_id and signaler.worker == "aiko"
                peer = MediaPeer(signaler, role="answer", media=open_local_media("test", "tone"),
                                 display=display, device=runner, name="edge",
                                 state_interval_s=0.2)
                await peer.start()
                return peer

            edge_task = asyncio.create_task(edge_side())
            await page.get_by_role("button", name="Start video").click()
            edge = await asyncio.wait_for(edge_task, 20)
            await edge.wait_connected(20)
            await expect(page.locator("#media-status")).to_contain_text("Live with robot-1")
            await edge.wait_channels_open(10)

            # The page decodes the edge's video: the decoded-frame count keeps rising.
            frames = "() => document.getElementById('remote-video')" \
                     ".getVideoPlaybackQuality().totalVideoFrames"
            # A function, not an expression: the page's CSP forbids eval of a string.
            await page.wait_for_function(f"() => ({frames})() > 10", timeout=TIMEOUT_MS)
            first = await page.evaluate(frames)
            await asyncio.sleep(1.0)
            assert await page.evaluate(frames) > first + 10
            size = await page.evaluate("() => { const v = document.getElementById("
                                       "'remote-video'); return [v.videoWidth, v.videoHeight]; }")
            assert size == [640, 480], size

            # The edge shows the worker's camera (Chromium's fake device).
            await wait_for(lambda: display.stats().fps > 5, 10, "the browser's video at the edge")
            stats = edge.stats()
            assert stats.video_frames > 10 and stats.fps > 5, stats

            # A caption from the edge, original and translation.
            assert edge.send_caption(Caption(
                id="u1", speaker="resident", text="I need a copy of my residence record",
                lang="en", original=CaptionText(text="住民票の写しが必要です", lang="ja")))
            cap = page.locator("#captions li", has_text="I need a copy of my residence record")
            await expect(cap).to_be_visible()
            await expect(cap).to_contain_text("住民票の写しが必要です")

            # A caption from the worker is a message to the resident: recorded first, in the
            # language the worker writes in (the page says which), then sent to the device.
            await page.get_by_label("Caption to send").fill("Of course, one moment please.")
            await page.get_by_label("Caption language").select_option("en")
            await page.get_by_role("button", name="Send caption").click()

            def recorded():
                events = http.get(f"/v1/cases/{case_id}/events").json()["events"]
                return next((e for e in events if e["type"] == "turn"
                             and e["payload"]["text"] == "Of course, one moment please."), None)
            said = await wait_for(recorded, 5, "the worker's caption recorded")
            assert (said["payload"]["speaker"], said["payload"]["language"]) == ("human", "en")

            # The device state arrives on the device channel.
            await expect(page.locator("#ds-battery")).to_contain_text("%")
            await expect(page.locator("#ds-pose")).to_contain_text("x 0.00 m")

            # Forward: the robot moves, and stops by itself after the command's duration.
            start_x = robot.pose.x
            await page.get_by_role("button", name="Forward").click()
            await wait_for(lambda: robot.state().linear > 0, 5, "the robot to move")
            await wait_for(lambda: robot.state().linear == 0 and robot.pose.x > start_x + 0.1,
                           6, "the robot to stop by itself")
            moving = [s for s in robot.pose_log if s.linear > 0]
            stopped = [s for s in robot.pose_log if s.linear == 0 and s.t > moving[0].t]
            took = stopped[0].t - moving[0].t
            # The page sends no duration: the device's safety timeout (2 s here) stops it.
            assert 1.9 <= took <= 2.1, took
            assert robot.pose.x == pytest.approx(0.3 * took, abs=0.02)
            await expect(page.locator("#ds-result")).to_have_text("ok")
            await expect(page.locator("#ds-motion")).to_have_text("stopped (stopped by itself 1×)")
            await expect(page.locator("#ds-video")).to_contain_text("fps at 640×480")

            # Keyboard: arrow keys on a focused control send commands too.
            await page.get_by_role("button", name="Stop", exact=True).focus()
            await page.keyboard.press("ArrowLeft")
            await wait_for(lambda: robot.state().angular > 0, 5, "the robot to turn")
            await page.keyboard.press("Enter")  # Stop, the focused button
            await wait_for(lambda: robot.state().angular == 0, 5, "the robot to stop")

            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "desk-media.png"), full_page=True)

            # Emergency stop latches on the robot: a banner says so, moves are refused, and
            # the worker in session resets it from the banner (edge/device estop_reset).
            banner = page.locator("#estop-banner")
            await expect(banner).to_be_hidden()
            await page.get_by_role("button", name="Emergency stop").click()
            await wait_for(lambda: robot.state().estop, 5, "the e-stop to latch")
            await expect(banner).to_be_visible()
            await expect(banner).to_contain_text("Emergency stop is on")
            await expect(page.locator("#ds-motion")).to_contain_text("EMERGENCY STOP")
            await page.get_by_role("button", name="Forward").click()
            await expect(page.locator("#ds-result")).to_contain_text("refused")
            assert robot.state().linear == 0
            await page.screenshot(path=str(SHOTS / "desk-estop-latched.png"), full_page=True)
            await page.get_by_role("button", name="Reset emergency stop").click()
            await wait_for(lambda: not robot.state().estop, 5, "the e-stop to reset")
            await expect(banner).to_be_hidden()
            await expect(page.locator("#ds-motion")).not_to_contain_text("EMERGENCY")
            await page.get_by_role("button", name="Forward").click()
            await wait_for(lambda: robot.state().linear > 0, 5, "the robot to move again")
            await page.screenshot(path=str(SHOTS / "desk-estop-reset.png"), full_page=True)
            assert not errors, errors
        finally:
            if edge is not None:
                await edge.aclose()
            await browser.close()
