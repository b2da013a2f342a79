"""The floor monitor (endpoints/floor, served at /) in headless Chromium against a real
``baton router`` child process: a case waits → a worker accepts (REST) → the supervisor
reassigns it from the page to another worker → the supervisor, on the roster and available
at their own desk, takes a case themselves (refused for a language they do not speak) → a
second case waits past max_wait_s and the alert shows. No MQTT bridge runs, so device
presence degrades to "unknown" with a note. Screenshots go to test-artifacts/pages/floor-*.png."""

from __future__ import annotations

import time
from functools import partial

import httpx
import pytest

from tests.pages.conftest import running_router, sqlite_url
from tests.pages.test_desk import TIMEOUT_MS, bearer, browser, open_desk, wait_available  # noqa: F401
from tests.pages.test_desk import shot as desk_shot
from tests.service.conftest import config_copy

MAX_WAIT_S = 12
PAGE_ERRORS: list[str] = []


@pytest.fixture
def router(tmp_path):
    # A short service level (client-side "waiting too long") and max wait (the router's
    # wait_exceeded alert) so both show within the test; offers stay up while it works.
    cfg = config_copy(tmp_path, service_level_s=3, max_wait_s=MAX_WAIT_S, offer_timeout_s=60)
    with running_router(cfg, sqlite_url(tmp_path)) as running:
        yield running


shot = partial(desk_shot, prefix="floor")


def available(client: httpx.Client, worker: str) -> None:
    r = client.put(f"/v1/workers/{worker}/presence", headers=bearer("admin"),
                   json={"presence": "available"})
    assert r.status_code == 200, r.text


def accept_when_offered(client: httpx.Client, case_id: str, worker: str) -> None:
    for _ in range(100):
        case = client.get(f"/v1/cases/{case_id}", headers=bearer("admin")).json()["case"]
        offer = case.get("pending_offer")
        if offer and offer["worker_id"] == worker:
            r = client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=bearer(worker))
            assert r.status_code == 200, r.text
            return
        time.sleep(0.1)
    raise AssertionError(f"{case_id} was never offered to {worker}: {case}")


def test_floor_monitor_wait_accept_reassign_alert(router, browser):  # noqa: F811
    from playwright.sync_api import expect

    proc, client = router
    started = time.monotonic()

    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.on("pageerror", lambda e: PAGE_ERRORS.append(str(e)))
    page.set_default_timeout(TIMEOUT_MS)

    # A worker's token is refused: the page is for supervisors.
    page.goto(f"{proc.url}/")
    expect(page.get_by_label("Supervisor access token")).to_be_focused()
    page.get_by_label("Supervisor access token").fill("demo-mateo-token-0001")
    page.keyboard.press("Enter")
    expect(page.locator("#error")).to_contain_text("for supervisors")

    page.goto(f"{proc.url}/#token=demo-sato-floor-token-0001")
    page.reload()
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    expect(page.locator("#who")).to_contain_text("sato-floor")
    # Every site and device, and why presence is unknown (no MQTT bridge here).
    for device in ("robot-1", "robot-2", "kiosk-1", "kiosk-2"):
        expect(page.locator(f'tr[data-device="{device}"]')).to_contain_text("unknown")
    expect(page.locator("#devices")).to_contain_text("North Branch")
    expect(page.locator("#sync-note")).to_contain_text("MQTT bridge")
    expect(page.locator("#kpis")).to_contain_text("Escalation rate")

    # A resident at robot-1 asks for a person by video; nobody is available yet.
    robot = bearer("robot-1")
    r = client.post("/v1/cases", headers=robot, json={
        "site": "city-office", "device": "robot-1", "language": "es", "channel": "video"})
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    # A second case at the branch kiosk goes to agents only; none will come: it waits past
    # max_wait_s and the router raises wait_exceeded.
    r = client.post("/v1/cases", headers=bearer("kiosk-2"), json={
        "site": "north-branch", "device": "kiosk-2", "language": "pt",
        "workflow": "contact_center"})
    assert r.status_code == 201, r.text
    late_id = r.json()["id"]

    row = page.locator(f'#cases tr[data-case="{case_id}"]')
    expect(row).to_contain_text("queued")
    expect(row).to_contain_text("nobody yet")
    expect(row).to_contain_text("Waiting")
    expect(page.locator("#queues")).to_contain_text("telepresence / native_remote_at_site")
    # Past the 3 s service level the monitor says so, computed from queued_at.
    expect(page.locator("#attention")).to_contain_text(f"waiting", timeout=8000)
    expect(page.locator("#attention li", has_text=case_id)).to_contain_text(
        "Waiting past service level")
    shot(page, "01-waiting")

    # Mateo comes in and accepts (REST): the monitor shows who has it and the session.
    available(client, "mateo")
    accept_when_offered(client, case_id, "mateo")
    expect(row).to_contain_text("connected")
    expect(row).to_contain_text("Mateo Silva (mateo)")
    expect(page.locator('tr[data-device="robot-1"]')).to_contain_text(
        f"In session: {case_id} with Mateo Silva (mateo)")
    expect(page.locator('#workers tr[data-worker="mateo"]')).to_contain_text(case_id)
    shot(page, "02-accepted")

    # The supervisor reassigns it to Ana from the page (keyboard-reachable form).
    available(client, "ana")
    expect(page.locator('#workers tr[data-worker="ana"]')).to_contain_text("available",
                                                                          timeout=8000)
    row.get_by_role("button", name=f"Reassign case {case_id}").click()
    expect(page.get_by_label("To worker (available now)")).to_be_focused()
    page.get_by_label("To worker (available now)").select_option("ana")
    page.get_by_label("Note for the next person").fill("Mateo is needed at the counter.")
    shot(page, "03-reassign-form")
    page.get_by_role("button", name="Reassign", exact=True).click()
    expect(row).to_contain_text("Ana Costa (ana) (offered)")
    expect(page.locator("#reassign")).to_be_hidden()
    accept_when_offered(client, case_id, "ana")
    expect(row).to_contain_text("connected")
    expect(row.locator("td.who")).to_have_text("Ana Costa (ana)")
    expect(page.locator('tr[data-device="robot-1"]')).to_contain_text("with Ana Costa (ana)")
    expect(page.locator('#workers tr[data-worker="mateo"]')).to_contain_text("idle")
    shot(page, "04-reassigned")

    events = client.get(f"/v1/cases/{case_id}/events", headers=bearer("admin")).json()["events"]
    transfer = [e for e in events if e["type"] == "transfer"][-1]["payload"]
    assert transfer["from_worker"] == "mateo" and transfer["to_worker"] == "ana"
    assert transfer["note"] == "Mateo is needed at the counter."

    # The supervisor takes a case themselves. They are on the roster (config/workers.yaml)
    # and open their own desk, available; the desk uses the same worker WebSocket.
    desk = open_desk(browser, proc.url, "sato-floor")
    wait_available(client, "sato-floor")
    expect(desk.locator("#who")).to_contain_text("sato-floor (supervisor)")
    dialogs: list[str] = []

    def confirm(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    # Ana's case is in Spanish, which sato-floor does not speak: the router says so.
    row.get_by_role("button", name=f"Take case {case_id} yourself").click()
    expect(page.locator("#error")).to_contain_text("you do not speak es")
    assert "Ana Costa (ana)" in dialogs[-1]
    expect(row.locator("td.who")).to_have_text("Ana Costa (ana)")
    # A Japanese case at the kiosk, with Haruto: the supervisor takes it (keyboard; the
    # focus survives the table's re-rendering every second).
    available(client, "haruto")
    r = client.post("/v1/cases", headers=bearer("kiosk-1"), json={
        "site": "city-office", "device": "kiosk-1", "language": "ja",
        "skills": {"residency": 2}})
    assert r.status_code == 201, r.text
    ja_id = r.json()["id"]
    accept_when_offered(client, ja_id, "haruto")
    ja_row = page.locator(f'#cases tr[data-case="{ja_id}"]')
    expect(ja_row.locator("td.who")).to_have_text("Haruto Ito (haruto)")
    take = ja_row.get_by_role("button", name=f"Take case {ja_id} yourself")
    take.focus()
    page.wait_for_timeout(1200)
    expect(take).to_be_focused()
    page.keyboard.press("Enter")
    expect(ja_row.locator("td.who")).to_have_text("Sato (floor lead) (sato-floor)")
    expect(page.locator("#error")).to_be_hidden()
    expect(ja_row.get_by_role("button", name=f"Take case {ja_id} yourself")).to_have_count(0)
    expect(page.locator('#workers tr[data-worker="haruto"]')).not_to_contain_text(ja_id)
    shot(page, "05-taken")
    # It is on the supervisor's desk, theirs to work.
    expect(desk.locator("#case-tabs")).to_contain_text(ja_id)
    desk.locator("#case-tabs button", has_text=ja_id).click()
    expect(desk.locator("#case-meta")).to_contain_text("with sato-floor")
    shot(desk, "06-taken-desk")
    events = client.get(f"/v1/cases/{ja_id}/events", headers=bearer("admin")).json()["events"]
    transfer = [e for e in events if e["type"] == "transfer"][-1]["payload"]
    assert transfer["from_worker"] == "haruto" and transfer["to_worker"] == "sato-floor"

    # The branch case passes max_wait_s: the router's alert arrives live and the case leaves.
    alert = page.locator("#alerts li", has_text=late_id)
    expect(alert).to_contain_text("Waited too long", timeout=(MAX_WAIT_S + 8) * 1000)
    expect(page.locator(f'#cases tr[data-case="{late_id}"]')).to_have_count(0)
    shot(page, "07-alert")

    got = client.get(f"/v1/cases/{late_id}", headers=bearer("admin")).json()["case"]
    assert got["state"] == "abandoned" and got["outcome_code"] == "max_wait_exceeded"
    assert not PAGE_ERRORS, PAGE_ERRORS
    assert time.monotonic() - started < 60
