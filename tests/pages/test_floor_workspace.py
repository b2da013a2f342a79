"""The floor monitor acting (issue #15) in headless Chromium against a real ``baton router``:
trend charts drawn from an hour of real cases in the store (driven through the app with a
manual clock, then served by the router process), assigning a waiting case with "why not
matched" per workflow step, alert actions (jump, assign, acknowledge) and the urgent-alert
sound, time in state per person, and 390/768 px layouts without sideways scrolling.
axe-core on every state; screenshots: test-artifacts/pages/floor-ws-*.png."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from router.config import load_config
from tests.pages.conftest import running_router, sqlite_url
from router.service.app import create_app
from tests.pages.test_desk import PAGE_ERRORS, bearer, browser, shot  # noqa: F401
from tests.pages.test_floor import accept_when_offered
from tests.pages.test_workspace import axe_check, no_sideways_scroll, open_desk, open_page
from tests.service.conftest import ManualClock, Router, auth, config_copy

HOUR = 3600.0


def seed_an_hour(cfg_dir, db_url: str) -> None:
    """Six cases an hour long on the manual clock, through the app and its store: waits of
    5 … 55 s before the accept, verdicts alternating; two at the north branch. All go to
    haruto (a specialist, the first step of the default workflow, contact_center)."""
    clock = ManualClock(time.time() - HOUR)
    with TestClient(create_app(load_config(cfg_dir), db_url, clock=clock,
                               autotick=False)) as client:
        router = Router(client, clock)
        router.available("haruto")
        for i in range(6):
            device = "kiosk-2" if i in (2, 5) else "kiosk-1"
            case = router.open_case(device, skills={"residency": 3})
            offer = router.case(case["id"])["case"]["pending_offer"]
            assert offer and offer["worker_id"] == "haruto", offer
            who = offer["worker_id"]
            wait = 5 + 10 * i
            router.advance(wait)
            r = client.post(f"/v1/offers/{offer['offer_id']}/accept", headers=auth(who))
            assert r.status_code == 200, r.text
            client.post(f"/v1/cases/{case['id']}/close", headers=auth(who), json={
                "status": "resolved", "ai_verdict": "wrong" if i % 2 else "right"})
            client.post(f"/v1/cases/{case['id']}/wrapup/done", headers=auth(who))
            router.advance(600 - wait)
        for w in ("haruto",):
            client.put(f"/v1/workers/{w}/presence", json={"presence": "offline"},
                       headers=auth(w))


@pytest.fixture
def router(tmp_path):
    cfg = config_copy(tmp_path, service_level_s=3, offer_timeout_s=120)
    url = sqlite_url(tmp_path)
    seed_an_hour(cfg, url)
    with running_router(cfg, url) as running:
        yield running


def visit(page, name: str) -> None:
    shot(page, name, prefix="floor-ws")
    axe_check(page, name)


def open_floor(browser, url: str, width: int = 1280, height: int = 1000,  # noqa: F811
               token: str = "demo-sato-floor-token-0001"):
    return open_page(browser, f"{url}/floor#token={token}", "floor", width, height)


def test_floor_trends_assign_why_not_alert_actions_and_small_screens(router, browser):  # noqa: F811
    from playwright.sync_api import expect

    proc, client = router
    admin = bearer("admin")
    page = open_floor(browser, proc.url)

    # Trends over the last 3 hours, from the store: the seeded hour has data in each chart.
    charts = page.locator("#charts")
    for metric in ("waiting", "service_level", "asa_s", "escalation_rate",
                   "escalation_precision", "escalation_recall"):
        expect(charts.locator(f'figure[data-metric="{metric}"] svg')).to_be_visible()
    asa = charts.locator('figure[data-metric="asa_s"] svg')
    assert int(asa.get_attribute("data-points")) >= 5
    assert int(charts.locator('figure[data-metric="escalation_precision"] svg')
               .get_attribute("data-points")) >= 5
    expect(charts.locator('figure[data-metric="asa_s"] path.line')).to_have_count(1)
    expect(page.locator("#trends-status")).to_contain_text("6 cases opened, 6 answered")
    visit(page, "01-trends")
    page.get_by_label("Site", exact=True).select_option("north-branch")
    expect(page.locator("#trends-status")).to_contain_text("at north-branch: 2 cases opened")
    page.get_by_label("Queue", exact=True).select_option("contact_center")
    expect(page.locator("#trends-status")).to_contain_text("in contact_center")
    visit(page, "02-trends-north-branch")
    page.get_by_label("Site", exact=True).select_option("")
    page.get_by_label("Queue", exact=True).select_option("")

    # A case nobody free can take: Japanese residency 5 needs a specialist; only ken (an
    # agent) is available. The floor says why, per step, and assigns it to ken.
    r = client.put("/v1/workers/ken/presence", json={"presence": "available"}, headers=admin)
    assert r.status_code == 200, r.text
    r = client.post("/v1/cases", headers=bearer("kiosk-1"), json={
        "site": "city-office", "device": "kiosk-1", "language": "ja", "escalate": True,
        "skills": {"residency": 5}, "workflow": "contact_center"})
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    row = page.locator(f'#cases tr[data-case="{case_id}"]')
    expect(row).to_contain_text("queued")
    # Time in state comes from /v1/directory, which the page reads every 5 s.
    expect(page.locator('#workers tr[data-worker="ken"]')).to_contain_text(
        "available for", timeout=12_000)
    row.get_by_role("button", name=f"Assign case {case_id} to a person").click()
    why = page.locator("#whynot")
    step1 = why.locator('li[data-step="specialist_in_language"]')
    expect(step1).to_contain_text("(current step)")
    expect(step1).to_contain_text("No one available meets: kind: specialist")
    expect(step1).to_contain_text("No one available meets: skill residency at level 5 or more")
    expect(why.locator('li[data-step="any_agent_with_live_translation"]')).to_contain_text(
        "could go to ken")
    expect(page.get_by_label("Assign to (free for this channel now)")).to_be_focused()
    visit(page, "03-assign-why-not")

    # Alerts with actions: past service level (3 s here), then urgent (3×): it sounds once.
    alert = page.locator("#attention li", has_text=case_id)
    expect(alert).to_contain_text("Waiting past service level", timeout=10_000)
    expect(alert).to_have_class("bad", timeout=15_000)
    page.wait_for_function("() => window.__chimes >= 3")
    assert page.evaluate("document.documentElement.dataset.alertSound") in ("playing", "requested")
    expect(alert.get_by_role("button", name="Jump to case")).to_be_visible()
    expect(alert.get_by_role("button", name=f"Assign case {case_id} from this alert")).to_be_visible()
    visit(page, "04-alert-actions")
    alert.get_by_role("button", name="Jump to case").click()
    expect(row.locator("th")).to_be_focused()

    page.get_by_label("Assign to (free for this channel now)").select_option("ken")
    page.get_by_label("Note for them (optional)").fill("Ken, please start; a specialist can follow.")
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(page.locator("#assign")).to_be_hidden()
    expect(row.locator("td.who")).to_have_text("Ken Sato (ken)")
    expect(row).to_contain_text("connected")
    got = client.get(f"/v1/cases/{case_id}", headers=admin).json()
    assert got["case"]["assigned_worker"] == "ken"
    assert got["packet"]["notes"][-1]["author"] == "sato-floor"
    visit(page, "05-assigned")

    # Acknowledge an alert from the list: another waiting case, acknowledged on this screen.
    r = client.post("/v1/cases", headers=bearer("kiosk-1"), json={
        "site": "city-office", "device": "kiosk-1", "language": "zh", "escalate": True,
        "skills": {"childcare": 5}, "workflow": "contact_center"})
    other = r.json()["id"]
    waiting = page.locator("#attention li", has_text=other)
    expect(waiting).to_be_visible(timeout=10_000)
    waiting.get_by_role("button", name=f"Acknowledge: Waiting past service level {other}").click()
    expect(page.locator("#attention li", has_text=other)).to_have_count(0)
    expect(page.locator("#log")).to_contain_text(
        f"acknowledged Waiting past service level on {other}")
    visit(page, "06-acknowledged")

    # Phone and tablet: nothing scrolls sideways, every state reachable.
    for width in (390, 768):
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate("window.scrollTo(0, 0)")
        no_sideways_scroll(page, f"floor at {width} px")
        visit(page, f"07-floor-{width}px")
        row = page.locator(f'#cases tr[data-case="{other}"]')
        row.get_by_role("button", name=f"Assign case {other} to a person").click()
        expect(page.locator("#whynot li").first).to_be_visible()
        no_sideways_scroll(page, f"floor assign panel at {width} px")
        visit(page, f"08-floor-assign-{width}px")
        page.get_by_role("button", name="Cancel").first.click()

    # A supervisor who is not in workers.yaml (floor-supervisor: languages in tokens.yaml)
    # takes a case from the floor and works it at their desk.
    sup = open_floor(browser, proc.url, token="demo-supervisor-token-0001")
    expect(sup.locator("#who")).to_contain_text("floor-supervisor")
    desk = open_desk(browser, proc.url, "supervisor")
    desk.get_by_label("Available").check()
    expect(desk.get_by_label("Available")).to_be_checked()
    r = client.put("/v1/workers/haruto/presence", json={"presence": "available"}, headers=admin)
    assert r.status_code == 200, r.text
    r = client.post("/v1/cases", headers=bearer("kiosk-1"), json={
        "site": "city-office", "device": "kiosk-1", "language": "ja",
        "skills": {"residency": 2}, "workflow": "contact_center"})
    assert r.status_code == 201, r.text
    ja_id = r.json()["id"]
    accept_when_offered(client, ja_id, "haruto")
    ja_row = sup.locator(f'#cases tr[data-case="{ja_id}"]')
    expect(ja_row.locator("td.who")).to_have_text("Haruto Ito (haruto)")
    expect(sup.locator("#take-help")).to_be_hidden()  # on the roster through tokens.yaml
    sup.on("dialog", lambda dialog: dialog.accept())
    ja_row.get_by_role("button", name=f"Take case {ja_id} yourself").click()
    expect(ja_row.locator("td.who")).to_have_text("Floor supervisor (floor-supervisor)")
    expect(sup.locator("#error")).to_be_hidden()
    visit(sup, "09-supervisor-took-a-case")
    expect(desk.locator("#case-tabs")).to_contain_text(ja_id)
    desk.locator("#case-tabs button", has_text=ja_id).click()
    expect(desk.locator("#case-meta")).to_contain_text("with floor-supervisor")
    desk.get_by_label("Message to the resident").fill("I am the floor supervisor; I will help you.")
    desk.get_by_label("Message language").select_option("en")  # English text: say so
    desk.get_by_role("button", name="Send", exact=True).click()
    status = desk.locator("#chat-status")
    expect(status).not_to_be_empty()
    # The box empties only when the router took the message.
    expect(desk.get_by_label("Message to the resident")).to_have_value("")
    assert "Not sent" not in status.inner_text(), status.inner_text()
    expect(desk.locator("#error")).to_be_hidden()
    visit(desk, "10-supervisor-desk-working-the-case")
    said = []
    for _ in range(50):  # the router stores events in batches: the turn may be a moment behind
        events = client.get(f"/v1/cases/{ja_id}/events", headers=admin).json()["events"]
        said = [e["payload"] for e in events if e["type"] == "turn"
                and e["payload"].get("speaker") == "human"]
        if said:
            break
        time.sleep(0.1)
    assert said and said[-1]["worker_id"] == "floor-supervisor", said
    transfer = [e for e in events if e["type"] == "transfer"][-1]["payload"]
    assert transfer["from_worker"] == "haruto" and transfer["to_worker"] == "floor-supervisor"
    assert not PAGE_ERRORS, PAGE_ERRORS
