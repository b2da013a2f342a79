"""Warm transfer in headless Chromium with live video (issue #15): a real Mosquitto, a real
router process with the bridge, the edge's MediaPeer for robot-1 (SimulatedRobot, 640×480
test pattern). Aiko is live with the resident on /desk:

1. she asks for a transfer nobody can take (zh, childcare 5, 10 s): her video keeps playing
   while it is pending, and the case comes back to her with its reason;
2. she transfers to Ana (/telepresence): while Ana's offer is up Aiko still has video; Ana
   accepts; Aiko's session ends, Ana's video starts by itself.
Screenshots: test-artifacts/pages/warm-*.png; axe-core on each state."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil

import pytest

from edge.device import DeviceRunner, SafetyLimits, SimulatedRobot
from edge.webrtc import MediaPeer, RecordingDisplay, open_local_media
from sandbox.procs import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import require
from tests.mqtt.helpers import fleet_config
from tests.pages.test_desk import SHOTS
from tests.pages.test_desk_media import auth, open_video_case, wait_for
from tests.pages.test_resident import AXE
from tests.telepresence.conftest import broker, device_link, router, token  # noqa: F401
from tests.webrtc.conftest import loopback_ice  # noqa: F401 (fixture)

TIMEOUT_MS = 15_000
FRAMES = ("() => { const v = document.getElementById('remote-video');"
          " return v.srcObject ? v.getVideoPlaybackQuality().totalVideoFrames : 0; }")


@pytest.fixture
def cfg_dir(tmp_path):
    return fleet_config(tmp_path, devices=2)


async def visit(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"warm-{name}.png"), full_page=True)
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text(encoding="utf-8"))
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']}))"
        ".violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n =>"
        " n.target.join(' ')).slice(0, 5)}))")
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe-core on {name}: {bad}"


async def rising(page, what: str) -> None:
    first = await page.evaluate(FRAMES)
    await asyncio.sleep(1.0)
    now = await page.evaluate(FRAMES)
    assert now > first + 5, f"{what}: video frames {first} → {now}"


@pytest.mark.slow
async def test_warm_transfer_keeps_video_until_accepted_and_returns_on_timeout(
        router, broker, loopback_ice):  # noqa: F811
    require(shutil.which("chromium") is not None, "Chromium at /usr/bin/chromium",
            "apt-get install chromium")
    require(importlib.util.find_spec("playwright") is not None, "the playwright package",
            ".venv/bin/pip install -e '.[test]'")
    require(AXE.exists(), f"axe-core at {AXE}", "run scripts/setup.sh (npm install axe-core)")
    from playwright.async_api import async_playwright, expect

    http = router.http
    errors: list[str] = []
    robot = SimulatedRobot(limits=SafetyLimits(command_timeout_s=2.0))
    runner = DeviceRunner(robot, tick_s=0.01)
    peers: list[MediaPeer] = []

    async with device_link(broker.port, "robot-1") as link, runner, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                           headless=True)

        async def edge_side(worker: str, case_id: str) -> MediaPeer:
            signaler = await link.next_session(30)
            assert signaler.case_id == case_id and signaler.worker == worker
            peer = MediaPeer(signaler, role="answer", media=open_local_media("test", "tone"),
                             display=RecordingDisplay(), device=runner, name=f"edge-{worker}",
                             state_interval_s=0.2)
            peers.append(peer)
            await peer.start()
            return peer

        async def open_page(path: str, subject: str):
            page = await (await browser.new_context(
                viewport={"width": 1280, "height": 1000})).new_page()
            page.on("pageerror", lambda e: errors.append(f"{subject}: {e}"))
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{router.url}{path}#token={token(subject)}")
            await page.wait_for_selector('#conn[data-state="connected"]')
            await page.get_by_label("Available").check()
            await wait_for(lambda: next(w for w in http.get("/v1/workers").json()["workers"]
                                        if w["id"] == subject)["presence"] == "available",
                           10, f"{subject} available")
            return page

        try:
            aiko = await open_page("/desk", "aiko")
            case_id = open_video_case(http)
            offer = aiko.locator("li.offer", has_text=case_id)
            await expect(offer).to_be_visible()
            edge_task = asyncio.create_task(edge_side("aiko", case_id))
            await offer.get_by_role("button", name=f"Accept case {case_id}").click()
            await expect(aiko.locator("#case-h")).to_have_text(f"Case {case_id}")
            await aiko.get_by_role("button", name="Start video").click()
            first_peer = await asyncio.wait_for(edge_task, 30)
            await first_peer.wait_connected(20)
            await expect(aiko.locator("#media-status")).to_contain_text("Live with robot-1")
            await aiko.wait_for_function(f"() => ({FRAMES})() > 10", timeout=TIMEOUT_MS)

            # 1. Nobody can take it: pending, video on; after 10 s it stays, with the reason.
            await aiko.evaluate("document.activeElement && document.activeElement.blur()")
            await aiko.keyboard.press("t")
            await aiko.get_by_label("Language (code, e.g. ja)").fill("zh")
            await aiko.get_by_label("Skills (e.g. residency:4, tax:3)").fill("childcare:5")
            await aiko.get_by_label("Keep looking for (seconds, then it stays with you)").fill("10")
            await aiko.get_by_label("Note for the next person").fill("Needs Chinese childcare.")
            await aiko.get_by_role("button", name="Request transfer").click()
            banner = aiko.locator("#transfer-banner")
            await expect(banner).to_contain_text("Transfer pending")
            await expect(banner).to_contain_text("You keep the resident until they accept")
            await rising(aiko, "aiko while the transfer is pending")
            await visit(aiko, "01-pending-video-on")
            await expect(banner).to_contain_text(
                "No one accepted the transfer (no_one_accepted)", timeout=20_000)
            await expect(banner).to_contain_text("The case stays with you")
            await expect(aiko.locator("#media-status")).to_contain_text("Live with robot-1")
            await rising(aiko, "aiko after the transfer came back")
            got = http.get(f"/v1/cases/{case_id}", headers=auth("admin")).json()
            assert got["case"]["assigned_worker"] == "aiko"
            assert "no_one_accepted" in got["packet"]["notes"][-1]["text"]
            await visit(aiko, "02-returned-with-reason")

            # 2. To Ana: her offer is up while Aiko still has video; she accepts; her video
            # starts by itself and Aiko's ends.
            ana = await open_page("/telepresence", "ana")
            await aiko.evaluate("document.activeElement && document.activeElement.blur()")
            await aiko.keyboard.press("t")
            row = aiko.locator('#directory tr[data-worker="ana"]')
            await expect(row).to_contain_text("available")
            await row.get_by_role("radio").check()
            await expect(aiko.get_by_label("To a specific person (optional, id)")).to_have_value("ana")
            await aiko.get_by_label("Note for the next person").fill("Prefers Portuguese later.")
            await aiko.get_by_role("button", name="Request transfer").click()
            await expect(banner).to_contain_text("offered to ana")
            ana_offer = ana.locator("li.offer", has_text=case_id)
            await expect(ana_offer).to_be_visible()
            await expect(ana_offer).to_contain_text("Prefers Portuguese later.")
            await rising(aiko, "aiko while ana's offer is up")
            await visit(aiko, "03-offered-video-still-on")
            await visit(ana, "04-receiver-offer")
            edge_task = asyncio.create_task(edge_side("ana", case_id))
            await ana_offer.get_by_role("button", name=f"Accept case {case_id}").click()
            second_peer = await asyncio.wait_for(edge_task, 30)
            await second_peer.wait_connected(20)
            await expect(ana.locator("#media-status")).to_contain_text("Live with robot-1")
            await ana.wait_for_function(f"() => ({FRAMES})() > 10", timeout=TIMEOUT_MS)
            await expect(banner).to_contain_text("ana accepted the transfer")
            await expect(aiko.locator("#media-status")).not_to_contain_text("Live with")
            got = http.get(f"/v1/cases/{case_id}", headers=auth("admin")).json()["case"]
            assert got["assigned_worker"] == "ana" and got["state"] == "connected"
            await visit(ana, "05-receiver-video-started")
            await visit(aiko, "06-sender-after-accept")
            assert not errors, errors
        finally:
            for peer in peers:
                await peer.aclose()
            await browser.close()
