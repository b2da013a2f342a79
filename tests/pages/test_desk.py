"""The desk page (endpoints/desk) in headless Chromium against a real ``baton router`` child
process: offer with preview → accept (mouse and keyboard) → packet → note → warm transfer to
a specialist (second browser context) → close with a verdict on the AI. Screenshots of every
state go to test-artifacts/pages/."""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import httpx
import pytest

from sandbox.procs import CHROMIUM, CHROMIUM_ARGS
from tests.pages.conftest import (
    escalate_at_kiosk,
    mateo_takes_appointments,
    running_router,
    sqlite_url,
)
from tests.helpers import require
from tests.service.conftest import config_copy

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-artifacts" / "pages"
TIMEOUT_MS = 10_000
PAGE_ERRORS: list[str] = []


def bearer(subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer demo-{subject}-token-0001"}


@pytest.fixture
def router(tmp_path):
    # Chat cases go straight to remote workers (telepresence step 1) instead of waiting
    # 45 s for a specialist step to pass; offers stay up while the browser works.
    cfg = config_copy(tmp_path, default_workflow="telepresence", offer_timeout_s=60)
    mateo_takes_appointments(cfg)
    with running_router(cfg, sqlite_url(tmp_path)) as running:
        yield running


@pytest.fixture
def browser():
    require(shutil.which("chromium") is not None, "Chromium at /usr/bin/chromium",
            "apt-get install chromium")
    require(importlib.util.find_spec("playwright") is not None, "the playwright package",
            ".venv/bin/pip install -e '.[test]'")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def shot(page, name: str, prefix: str = "desk") -> None:
    """A full-page screenshot in test-artifacts/pages/{prefix}-{name}.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{prefix}-{name}.png"), full_page=True)


def open_desk(browser, url: str, subject: str):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("pageerror", lambda e: PAGE_ERRORS.append(f"{subject}: {e}"))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/desk#token=demo-{subject}-token-0001")
    page.wait_for_selector('#conn[data-state="connected"]')
    page.get_by_label("Available").check()
    page.wait_for_function("() => document.querySelector('input[value=available]').checked")
    return page


def wait_available(client: httpx.Client, subject: str) -> None:
    for _ in range(50):
        workers = client.get("/v1/workers", headers=bearer("admin")).json()["workers"]
        if next(w for w in workers if w["id"] == subject)["presence"] == "available":
            return
        time.sleep(0.1)
    raise AssertionError(f"{subject} never became available")


def test_desk_offer_accept_packet_note_transfer_close(router, browser):
    from playwright.sync_api import expect

    proc, client = router
    kiosk = bearer("kiosk-1")

    # Sign-in form (no fragment) refuses a bad token with a readable message.
    page0 = browser.new_context().new_page()
    page0.set_default_timeout(TIMEOUT_MS)
    page0.goto(f"{proc.url}/desk")
    expect(page0.get_by_label("Access token")).to_be_focused()
    page0.get_by_label("Access token").fill("not-a-token")
    page0.keyboard.press("Enter")
    expect(page0.locator("#error")).to_contain_text("Sign-in failed")
    shot(page0, "01-signin-refused")
    page0.context.close()

    mateo = open_desk(browser, proc.url, "mateo")
    wait_available(client, "mateo")
    expect(mateo.locator("#who")).to_contain_text("mateo")
    shot(mateo, "02-signed-in-available")

    # A resident at the kiosk: one answered question, then asks for a person.
    out = escalate_at_kiosk(client)
    case_id = out["case_id"]
    reasons = out["decision"]["reasons"]

    # The offer with its preview.
    offer = mateo.locator("li.offer", has_text=case_id)
    expect(offer).to_be_visible()
    expect(offer).to_contain_text("es")
    expect(offer).to_contain_text("chat")
    expect(offer).to_contain_text("Waiting since")
    expect(offer.locator("dd[data-since]")).to_contain_text(" s)")
    expect(mateo.locator("#offer-count")).to_have_text("1")
    shot(mateo, "03-offer")

    # Keyboard: Tab reaches Accept, Enter accepts.
    accept = offer.get_by_role("button", name=f"Accept case {case_id}")
    mateo.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(40):
        mateo.keyboard.press("Tab")
        if accept.evaluate("b => b === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the Accept button")
    mateo.keyboard.press("Enter")

    # The packet.
    case = mateo.locator("#case")
    expect(case).to_be_visible()
    expect(mateo.locator("#case-h")).to_have_text(f"Case {case_id}")
    transcript = mateo.locator("#transcript")
    row = transcript.locator("tr", has_text="¿Dónde pago mis impuestos?")
    expect(row).to_contain_text("Where do I pay my taxes?")
    expect(transcript).to_contain_text("En la ventanilla 3, planta baja.")
    expect(transcript.locator("tr", has_text="Prefiero hablar")).to_contain_text(
        "I'd rather speak to a real person, please.")
    # Why, in plain words first; the reason codes and model numbers behind "details".
    expect(mateo.locator("#esc-plain")).to_contain_text("The resident asked for a person")
    expect(mateo.locator("#esc-numbers")).to_be_hidden()
    mateo.locator("#details > summary").click()
    expect(mateo.locator("#esc-reasons")).to_contain_text(reasons[0])
    expect(mateo.locator("#esc-numbers")).to_contain_text("threshold")
    mateo.locator("#details > summary").click()
    expect(mateo.locator("#offers li")).to_have_count(0)
    shot(mateo, "04-packet")

    # The resident speaks again: the AI's suggestion goes to the side panel, not to them.
    r = client.post(f"/v1/cases/{case_id}/turns", headers=kiosk, json={
        "text": "¿A qué hora cierra la oficina?", "language": "es",
        "translated": "What time does the office close?"})
    assert r.status_code == 200 and r.json()["ai_silent"] is True, r.text
    expect(mateo.locator("#suggestions li")).to_have_count(1)
    expect(mateo.locator("#suggestions")).to_contain_text(case_id)

    # A note over REST, shown in the packet.
    mateo.locator("#actionbar").get_by_role("button", name="Note").click()
    mateo.get_by_label("Note", exact=True).fill("Resident prefers Spanish; tax question first.")
    mateo.get_by_role("button", name="Add note").click()
    expect(mateo.locator("#note-dlg")).to_be_hidden()
    expect(mateo.locator("#notes")).to_contain_text("mateo: Resident prefers Spanish")
    shot(mateo, "05-note-and-suggestion")

    # Chat with the resident: Shift+Enter is a new line, Enter sends; the message joins the
    # transcript under mateo (no MQTT bridge here: recorded only).
    expect(mateo.locator("#chat-where")).to_have_text(
        "Shown on kiosk-1's screen in es, translated by the device.")
    chat = mateo.get_by_label("Message to the resident")
    chat.fill("Buenos días.")
    chat.press("Shift+Enter")
    chat.press_sequentially("Le atiendo yo.")
    chat.press("Enter")
    expect(mateo.locator("#chat-status")).to_have_text("Added to the conversation.")
    expect(chat).to_have_value("")
    expect(chat).to_be_focused()
    sent = transcript.locator("tr", has_text="Le atiendo yo.")
    expect(sent.locator("td.speaker")).to_have_text("mateo")
    expect(sent.locator(".lang")).to_have_text("es")  # his strongest language
    # The device's translation of a message arrives later and fills the translation column.
    r = client.post(f"/v1/cases/{case_id}/messages", headers=bearer("mateo"),
                    json={"text": "Window 3 is on the ground floor.", "language": "en"})
    assert r.status_code == 201 and r.json()["delivered_to"] is None, r.text
    r = client.post("/v1/events", headers=kiosk, json={
        "event_id": "kiosk-1-tr-1", "case_id": case_id, "origin": "kiosk-1", "seq": 1,
        "ts": time.time(), "type": "translation", "payload": {
            "turn_event_id": r.json()["event_id"], "language": "es",
            "text": "La ventanilla 3 está en la planta baja."}})
    assert r.status_code == 200, r.text
    expect(transcript.locator("tr", has_text="Window 3 is on the ground floor.")).to_contain_text(
        "La ventanilla 3 está en la planta baja.")
    shot(mateo, "05b-chat")

    # Warm transfer to a residency specialist; the specialist's desk gets the offer.
    haruto = open_desk(browser, proc.url, "haruto")
    wait_available(client, "haruto")
    # The transfer dialog (key T) lists people with live availability, languages and skills.
    mateo.evaluate("document.activeElement && document.activeElement.blur()")
    mateo.keyboard.press("t")
    expect(mateo.locator("#transfer-dlg")).to_be_visible()
    row = mateo.locator('#directory tr[data-worker="haruto"]')
    expect(row).to_contain_text("available")
    expect(row).to_contain_text("ja 5")
    expect(row).to_contain_text("residency 5")
    expect(mateo.locator('#directory tr[data-worker="lucas"]')).to_contain_text("offline")
    shot(mateo, "06a-transfer-directory")
    mateo.get_by_label("Language (code, e.g. ja)").fill("ja")
    mateo.get_by_label("Skills (e.g. residency:4, tax:3)").fill("residency:5")
    mateo.get_by_label("Workflow (optional)").fill("contact_center")
    mateo.get_by_label("Note for the next person").fill("Needs a residency card renewal.")
    mateo.get_by_role("button", name="Request transfer").click()
    expect(mateo.locator("#case-status")).to_contain_text("Transfer requested")
    expect(mateo.locator("#transfer-banner")).to_contain_text("haruto")
    shot(mateo, "06-transfer-requested")

    h_offer = haruto.locator("li.offer", has_text=case_id)
    expect(h_offer).to_be_visible()
    expect(h_offer).to_contain_text("residency 5")
    expect(h_offer).to_contain_text("Needs a residency card renewal.")
    shot(haruto, "07-specialist-offer")
    h_offer.get_by_role("button", name=f"Accept case {case_id}").click()
    expect(haruto.locator("#case-h")).to_have_text(f"Case {case_id}")
    expect(haruto.locator("#notes")).to_contain_text("mateo: Needs a residency card renewal.")
    expect(haruto.locator("#notes")).to_contain_text("Resident prefers Spanish")
    expect(haruto.locator("#handoffs")).to_contain_text("mateo → haruto")
    expect(haruto.locator("#transcript")).to_contain_text("Where do I pay my taxes?")
    shot(haruto, "08-specialist-packet")
    # The sender's page follows the transfer to its end (never stuck on "requested").
    expect(mateo.locator("#transfer-banner")).to_contain_text("haruto accepted the transfer")
    shot(mateo, "08b-transfer-accepted")

    # Close with an outcome and a verdict on the AI.
    haruto.locator("#actionbar").get_by_role("button", name="Close").click()
    haruto.get_by_label("Disposition").select_option("document_explained")
    haruto.get_by_label("AI was right").check()
    haruto.get_by_role("button", name="Close case").click()
    expect(haruto.locator("#case-status")).to_contain_text(
        "Case closed: resolved, Document or form explained (AI was right)")
    shot(haruto, "09-closed")

    got = client.get(f"/v1/cases/{case_id}", headers=bearer("admin")).json()["case"]
    assert got["state"] == "resolved" and got["assigned_worker"] == "haruto"
    events = client.get(f"/v1/cases/{case_id}/events", headers=bearer("admin")).json()["events"]
    outcome = [e for e in events if e["type"] == "outcome"][-1]["payload"]
    assert outcome["ai_verdict"] == "right" and outcome["code"] == "document_explained"
    assert not PAGE_ERRORS, PAGE_ERRORS
