"""The workspace issue (#15) in headless Chromium against a real ``baton router`` process:

- offers that cannot be missed: Web Audio chime (AudioContext hooked), a browser notification
  (permission stubbed), a countdown, the resident's words and the reason in plain language;
  A/D keys; set Away after a missed offer, explained, one click back;
- the case page: summary, why and transcript first, numbers behind "details", the sticky
  action bar, ready answers per language, hand back to the AI with the loop guard, close
  with a disposition, wrap-up with its timer;
- 390 px and 768 px without horizontal scrolling.
axe-core runs on every state; screenshots go to test-artifacts/pages/workspace-*.png."""

from __future__ import annotations

import time

import pytest

from tests.pages.conftest import (
    escalate_at_kiosk,
    mateo_takes_appointments,
    running_router,
    sqlite_url,
)
from tests.pages.test_desk import PAGE_ERRORS, TIMEOUT_MS, bearer, browser, shot  # noqa: F401
from tests.pages.test_resident import AXE
from tests.helpers import require
from tests.service.conftest import config_copy

# Counts what the page asks of the browser: oscillators started (the chime) and
# notifications shown; the permission prompt answers "granted" when asked.
STUBS = """
window.__chimes = 0; window.__notes = []; window.__asked = 0;
const RealAudio = window.AudioContext;
window.AudioContext = class extends RealAudio {
  createOscillator() { window.__chimes++; return super.createOscillator(); }
};
class StubNotification {
  constructor(title, opts) { window.__notes.push({ title, body: opts && opts.body }); }
  close() {}
}
StubNotification.permission = "default";
StubNotification.requestPermission = async () => {
  window.__asked++; StubNotification.permission = "granted"; return "granted"; };
window.Notification = StubNotification;
// The page in the background: set window.__background to make document.hasFocus() false.
window.__background = false;
const realHasFocus = Document.prototype.hasFocus;
Document.prototype.hasFocus = function () { return !window.__background && realHasFocus.call(this); };
"""


@pytest.fixture
def router(tmp_path):
    # Chat cases go to remote workers first; offers expire after 10 s and one miss sets a
    # worker away, so the Away explanation shows without waiting long.
    cfg = config_copy(tmp_path, default_workflow="telepresence", offer_timeout_s=10,
                      away_after_timeouts=1, wrapup_capacity_s=30)
    mateo_takes_appointments(cfg)
    with running_router(cfg, sqlite_url(tmp_path)) as running:
        yield running


def axe_check(page, state: str) -> None:
    """No serious or critical axe-core violation in this state. The router's pages forbid
    inline scripts (CSP), so axe is evaluated through DevTools rather than injected."""
    require(AXE.exists(), f"axe-core at {AXE}", "run scripts/setup.sh (npm install axe-core)")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']}))"
                           ".violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
                           " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))")
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe-core on the {state} state: {bad}"


def visit(page, name: str) -> None:
    shot(page, name, prefix="workspace")
    axe_check(page, name)


def no_sideways_scroll(page, what: str) -> None:
    sizes = page.evaluate("() => [document.documentElement.scrollWidth,"
                          " document.documentElement.clientWidth]")
    assert sizes[0] <= sizes[1], f"{what}: page scrolls sideways ({sizes[0]} > {sizes[1]} px)"


def open_page(browser, address: str, who: str, width: int, height: int):
    """``address`` (with its #token) in a new context with the sound/notification STUBS;
    page errors are collected under ``who``; returns once its socket is connected."""
    ctx = browser.new_context(viewport={"width": width, "height": height})
    ctx.add_init_script(STUBS)
    page = ctx.new_page()
    page.on("pageerror", lambda e: PAGE_ERRORS.append(f"{who}: {e}"))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(address)
    page.wait_for_selector('#conn[data-state="connected"]')
    return page


def open_desk(browser, url: str, subject: str, width: int = 1280, height: int = 900):  # noqa: F811
    return open_page(browser, f"{url}/desk#token=demo-{subject}-token-0001", subject,
                     width, height)


def wait_presence(client, subject: str, presence: str) -> None:
    for _ in range(100):
        workers = client.get("/v1/workers", headers=bearer("admin")).json()["workers"]
        if next(w for w in workers if w["id"] == subject)["presence"] == presence:
            return
        time.sleep(0.1)
    raise AssertionError(f"{subject} never became {presence}")


def test_offers_cannot_be_missed_and_away_is_explained(router, browser):  # noqa: F811
    from playwright.sync_api import expect

    proc, client = router
    page = open_desk(browser, proc.url, "mateo")
    visit(page, "01-desk-signed-in")
    # Offer alerts: one click asks the browser for notifications (stubbed: granted).
    page.get_by_role("button", name="Turn on offer alerts").click()
    expect(page.locator("#alerts-state")).to_have_text("Offer alerts: sound, notification, title")
    assert page.evaluate("window.__asked") == 1
    page.get_by_label("Available").check()
    wait_presence(client, "mateo", "available")

    title = page.title()
    page.evaluate("window.__background = true")  # the worker is in another tab
    case_id = escalate_at_kiosk(client)["case_id"]
    offer = page.locator("li.offer", has_text=case_id)
    expect(offer).to_be_visible()
    # The title flashes while the offer is pending: it alternates with the page's own title.
    page.wait_for_function("() => document.title.startsWith('● New offer')")
    page.wait_for_function(f"() => document.title === {title!r}")
    page.wait_for_function("() => document.title.startsWith('● New offer')")
    # The resident's words and why, in plain language; a visible countdown.
    expect(offer.locator("blockquote.words").last).to_contain_text(
        "Prefiero hablar con una persona, por favor.")
    expect(offer.locator("blockquote.words").last).to_contain_text("I'd rather speak to a real person")
    expect(offer.locator("ul.why")).to_contain_text("The resident asked for a person")
    countdown = offer.locator("p.countdown")
    expect(countdown).to_contain_text("Answer within")
    first = int(countdown.inner_text().split()[2])
    assert 1 <= first <= 10, first
    expect(page.locator("#offer-keys")).to_be_visible()
    # Sound and a notification were requested for it.
    page.wait_for_function("() => window.__chimes >= 2")
    notes = page.evaluate("window.__notes")
    assert len(notes) == 1 and case_id in notes[0]["title"], notes
    assert page.evaluate("document.documentElement.dataset.offerSound") in ("playing", "requested")
    visit(page, "02-offer-with-words-and-countdown")
    time.sleep(1.2)
    assert int(countdown.inner_text().split()[2]) < first, "the countdown does not count down"

    # Missed: the offer expires, the router sets mateo away; the page says why, one click back.
    banner = page.locator("#away-banner")
    expect(banner).to_be_visible(timeout=20_000)
    expect(banner).to_contain_text("You were set to Away because 1 offers in a row timed out")
    expect(page.locator("li.offer")).to_have_count(0)
    expect(page.get_by_label("Away")).to_be_checked()
    # No offer pending: the title stops flashing and is the page's own again.
    assert page.title() == title and page.evaluate(
        "document.documentElement.dataset.titleFlash") is None
    page.evaluate("window.__background = false")
    visit(page, "03-away-explained")
    page.get_by_role("button", name="I'm back: set me available").click()
    expect(banner).to_be_hidden()
    wait_presence(client, "mateo", "available")
    expect(page.get_by_label("Available")).to_be_checked()

    # A second case: the A key accepts the oldest offer (not while typing).
    second = escalate_at_kiosk(client)["case_id"]
    expect(page.locator("li.offer", has_text=second)).to_be_visible()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("a")
    expect(page.locator("#case-h")).to_have_text(f"Case {second}")
    assert not PAGE_ERRORS, PAGE_ERRORS


def test_case_page_bar_canned_handback_guard_disposition_wrapup(router, browser):  # noqa: F811
    from playwright.sync_api import expect

    proc, client = router
    page = open_desk(browser, proc.url, "mateo", height=800)
    page.get_by_label("Available").check()
    wait_presence(client, "mateo", "available")
    case_id = escalate_at_kiosk(client)["case_id"]
    page.locator("li.offer", has_text=case_id).get_by_role(
        "button", name=f"Accept case {case_id}").click()
    expect(page.locator("#case-h")).to_have_text(f"Case {case_id}")

    # First what a person needs: summary, why, transcript; the numbers behind "details".
    expect(page.locator("#summary")).not_to_be_empty()
    expect(page.locator("#esc-plain")).to_contain_text("The resident asked for a person")
    expect(page.locator("#transcript")).to_contain_text("Where do I pay my taxes?")
    expect(page.locator("#details")).not_to_have_attribute("open", "")
    expect(page.locator("#esc-numbers")).to_be_hidden()
    # The action bar stays on screen wherever the page is scrolled.
    for y in (0, 600, 5000):
        page.evaluate(f"window.scrollTo(0, {y})")
        box = page.locator("#actionbar").bounding_box()
        assert box and 0 <= box["y"] and box["y"] + box["height"] <= 800 + 1, (y, box)
    page.evaluate("window.scrollTo(0, 0)")
    visit(page, "04-case-first-view")
    page.locator("#details > summary").click()
    expect(page.locator("#esc-numbers")).to_contain_text("threshold")
    visit(page, "05-case-details-open")
    page.locator("#details > summary").click()

    # A ready answer in the writing language (es, mateo's strongest) fills the message.
    page.get_by_label("Ready answer (fills the message; edit before sending)").select_option(
        "Un momento, por favor, lo compruebo.")
    expect(page.get_by_label("Message to the resident")).to_have_value(
        "Un momento, por favor, lo compruebo.")
    expect(page.get_by_label("Message to the resident")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#transcript")).to_contain_text("Un momento, por favor, lo compruebo.")

    # Hand back to the AI (key H): the dialog shows the loop guard.
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("h")
    dlg = page.locator("#handback-dlg")
    expect(dlg).to_be_visible()
    expect(page.locator("#handback-guard")).to_contain_text("goes back to the AI only once")
    visit(page, "06-handback-dialog")
    page.get_by_label("Why", exact=True).select_option("routine_remaining")
    page.get_by_role("button", name="Hand back", exact=True).click()
    expect(page.locator("#case-status")).to_contain_text("Handed back to the AI")
    got = client.get(f"/v1/cases/{case_id}", headers=bearer("admin")).json()["case"]
    assert got["state"] == "handed_back" and got["handbacks"] == 1

    # The resident asks for a person again: back to mateo; a second hand back is blocked.
    kiosk = bearer("kiosk-1")
    r = client.post(f"/v1/cases/{case_id}/turns", headers=kiosk, json={
        "text": "Otra vez, quiero hablar con una persona.", "language": "es",
        "translated": "Again, I want to talk to a person."})
    assert r.json()["decision"]["decision"] == "escalate", r.text
    page.locator("li.offer", has_text=case_id).get_by_role(
        "button", name=f"Accept case {case_id}").click()
    expect(page.locator("#case-meta")).to_contain_text("connected")
    page.locator("#actionbar").get_by_role("button", name="Hand back to AI").click()
    expect(page.locator("#handback-guard")).to_contain_text("handed back to the AI once already")
    expect(page.get_by_role("button", name="Hand back", exact=True)).to_be_disabled()
    visit(page, "07-handback-loop-guard")
    page.keyboard.press("Escape")

    # Close (key C) with a disposition from config/workspace.yaml; wrap-up with its timer.
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("c")
    options = page.locator("#cl-disposition option").all_inner_texts()
    assert "Appointment booked" in options and "Resident left before the end (abandoned)" in options
    visit(page, "08-close-dispositions")
    page.get_by_label("Disposition").select_option("appointment_booked")
    page.get_by_label("AI was wrong").check()
    page.get_by_role("button", name="Close case").click()
    expect(page.locator("#case-status")).to_contain_text("Case closed: resolved, Appointment booked")
    wrap = page.locator("#wrapup-banner")
    expect(wrap).to_be_visible()
    expect(wrap).to_contain_text("counts in your capacity")
    expect(page.locator("#wrapup-timer")).to_have_text("0:02", timeout=5000)
    people = {p["id"]: p for p in client.get("/v1/directory", headers=bearer("admin")).json()["people"]}
    assert people["mateo"]["state"] == "wrap-up"
    visit(page, "09-wrapup")
    page.get_by_role("button", name="Done with wrap-up").click()
    expect(page.locator("#case-status")).to_contain_text("Wrap-up done")
    people = {p["id"]: p for p in client.get("/v1/directory", headers=bearer("admin")).json()["people"]}
    assert people["mateo"]["state"] == "available"
    events = client.get(f"/v1/cases/{case_id}/events", headers=bearer("admin")).json()["events"]
    outcome = [e for e in events if e["type"] == "outcome"][-1]["payload"]
    assert (outcome["code"], outcome["status"], outcome["ai_verdict"]) == (
        "appointment_booked", "resolved", "wrong")
    assert not PAGE_ERRORS, PAGE_ERRORS


def test_desk_on_a_phone_and_a_tablet(router, browser):  # noqa: F811
    from playwright.sync_api import expect

    proc, client = router
    page = open_desk(browser, proc.url, "mateo", width=390, height=844)
    no_sideways_scroll(page, "desk signed in at 390 px")
    page.get_by_label("Available").check()
    wait_presence(client, "mateo", "available")
    for width in (390, 768):
        page.set_viewport_size({"width": width, "height": 1024 if width == 768 else 844})
        case_id = escalate_at_kiosk(client)["case_id"]
        offer = page.locator("li.offer", has_text=case_id)
        expect(offer).to_be_visible()
        expect(offer.locator("blockquote.words").last).to_be_visible()
        no_sideways_scroll(page, f"desk offer at {width} px")
        visit(page, f"10-offer-{width}px")
        offer.get_by_role("button", name=f"Accept case {case_id}").click()
        expect(page.locator("#case-h")).to_have_text(f"Case {case_id}")
        expect(page.locator("#transcript")).to_contain_text("Where do I pay my taxes?")
        no_sideways_scroll(page, f"desk case at {width} px")
        visit(page, f"11-case-{width}px")
        page.locator("#details > summary").click()
        no_sideways_scroll(page, f"desk case details at {width} px")
        page.locator("#details > summary").click()
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("t")
        expect(page.locator("#transfer-dlg")).to_be_visible()
        expect(page.locator('#directory tr[data-worker="aiko"]')).to_be_visible()
        no_sideways_scroll(page, f"desk transfer dialog at {width} px")
        visit(page, f"12-transfer-{width}px")
        page.keyboard.press("Escape")
    assert not PAGE_ERRORS, PAGE_ERRORS


@pytest.fixture
def calm_router(tmp_path):
    # Offers wait 60 s: the two workers consult before the receiver accepts.
    cfg = config_copy(tmp_path, default_workflow="telepresence", offer_timeout_s=60)
    with running_router(cfg, sqlite_url(tmp_path)) as running:
        yield running


def test_warm_transfer_consult_then_handover(calm_router, browser):  # noqa: F811
    """Mateo asks for a warm transfer to Ana; while her offer is up they consult (each sees
    the other's message on their desk; nothing reaches the resident); Ana accepts: handed
    over, and the case is hers."""
    from playwright.sync_api import expect

    proc, client = calm_router
    a = open_desk(browser, proc.url, "mateo")
    a.get_by_label("Available").check()
    wait_presence(client, "mateo", "available")
    case_id = escalate_at_kiosk(client)["case_id"]
    a.locator("li.offer", has_text=case_id).get_by_role(
        "button", name=f"Accept case {case_id}").click()
    expect(a.locator("#case-h")).to_have_text(f"Case {case_id}")
    b = open_desk(browser, proc.url, "ana")
    b.get_by_label("Available").check()
    wait_presence(client, "ana", "available")

    a.evaluate("document.activeElement && document.activeElement.blur()")
    a.keyboard.press("t")
    row = a.locator('#directory tr[data-worker="ana"]')
    expect(row).to_contain_text("available")
    row.get_by_role("radio").check()
    a.get_by_label("Note for the next person").fill("Tax question.")
    a.get_by_role("button", name="Request transfer").click()
    expect(a.locator("#transfer-banner")).to_contain_text("offered to ana")
    expect(a.locator("#consult-about")).to_contain_text(f"With ana about case {case_id}")
    offer = b.locator("li.offer", has_text=case_id)
    expect(offer).to_be_visible()
    expect(b.locator("#consult-about")).to_contain_text(f"With mateo about case {case_id}")

    a.get_by_label("Message to your colleague").fill(
        "She asks where to pay her taxes; can you take it?")
    a.get_by_role("button", name="Send to colleague").click()
    expect(b.locator("#consult-log")).to_contain_text(
        "mateo (", timeout=TIMEOUT_MS)
    expect(b.locator("#consult-log")).to_contain_text("where to pay her taxes; can you take it?")
    visit(b, "20-consult-receiver-offer")
    b.get_by_label("Message to your colleague").fill("Yes, I know that office. Hand her over.")
    b.get_by_role("button", name="Send to colleague").click()
    expect(a.locator("#consult-log li")).to_have_count(2)
    expect(a.locator("#consult-log li").last).to_contain_text(
        "ana (")
    expect(a.locator("#consult-log li").last).to_contain_text("I know that office")
    expect(a.locator("#case-meta")).to_contain_text("with mateo")  # still his until she accepts
    visit(a, "21-consult-sender")

    # The handover: Ana accepts; the case is hers, Mateo's banner says so.
    offer.get_by_role("button", name=f"Accept case {case_id}").click()
    expect(b.locator("#case-h")).to_have_text(f"Case {case_id}")
    expect(a.locator("#transfer-banner")).to_contain_text("ana accepted the transfer")
    got = client.get(f"/v1/cases/{case_id}", headers=bearer("admin")).json()["case"]
    assert got["assigned_worker"] == "ana" and got["state"] == "connected"
    # They can still consult after the handover.
    b.get_by_label("Message to your colleague").fill("Got her, thanks.")
    b.get_by_role("button", name="Send to colleague").click()
    expect(a.locator("#consult-log li").last).to_contain_text("Got her, thanks.")
    visit(b, "22-consult-after-handover")
    # The side conversation never reached the resident: no case event carries it.
    events = client.get(f"/v1/cases/{case_id}/events", headers=bearer("admin")).json()["events"]
    assert "I know that office" not in str(events) and "can you take it" not in str(events)
    assert not PAGE_ERRORS, PAGE_ERRORS
