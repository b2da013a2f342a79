"""The translation path loses nothing and labels everything truly (issue 14, Why):

- a worker's message is recorded in the language it was written in (the desk says which),
  not the resident's;
- the translation column fills: the device's translation of a worker's message and of the
  AI's reply is recorded against that turn (the AI's reply turn id comes back for it);
- a resident's turn that no model translates is recorded as said with an explicit
  "untranslated" mark, never dropped; a turn with neither a translation nor a mark is still
  refused (the edge must say which it is);
- a message the device could not translate is marked in the packet, so the worker knows.
"""

from __future__ import annotations

from tests.service.conftest import auth
from tests.service.test_chat import connected_case, say as message


def turn(router, case_id, text, language, **body):
    return router.client.post(f"/v1/cases/{case_id}/turns", headers=auth("kiosk-1"),
                              json={"text": text, "language": language, **body})


def device_event(router, case_id: str, seq: int, type_: str, payload: dict) -> None:
    r = router.client.post("/v1/events", headers=auth("kiosk-1"), json={
        "event_id": f"kiosk-1-{seq}", "case_id": case_id, "origin": "kiosk-1", "seq": seq,
        "ts": 1.0, "type": type_, "payload": payload})
    assert r.status_code == 200, r.text


def test_worker_message_keeps_the_language_it_was_written_in(router):
    case = connected_case(router)  # haruto: ja 5, en 4; the resident's language: en
    r = message(router, case["id"], "haruto", text="Your card is ready.", language="en")
    assert r.status_code == 201, r.text
    entry = router.case(case["id"], "haruto")["packet"]["transcript"][-1]
    assert (entry["language"], entry["text"]) == ("en", "Your card is ready.")
    r = message(router, case["id"], "haruto", text="カードの準備ができました。", language="ja")
    entry = router.case(case["id"], "haruto")["packet"]["transcript"][-1]
    assert entry["language"] == "ja"


def test_translation_column_fills_from_the_devices_translation(router):
    case = connected_case(router)
    r = message(router, case["id"], "haruto", text="Your card is ready.", language="en")
    ev_id = r.json()["event_id"]
    device_event(router, case["id"], 1, "translation",
                 {"turn_event_id": ev_id, "language": "ja", "text": "カードの準備ができました。"})
    entry = router.case(case["id"], "haruto")["packet"]["transcript"][-1]
    assert (entry["translated_language"], entry["translated"], entry["untranslated"]) == \
        ("ja", "カードの準備ができました。", None)


def test_ai_reply_turn_id_comes_back_for_its_translation(router):
    case = router.open_case(language="ja", escalate=False)
    r = turn(router, case["id"], "税金の窓口はどこですか？", "ja",
             translated="Where is the tax counter?")
    assert r.status_code == 200, r.text
    reply = r.json()["reply"]
    assert reply and reply["event_id"]
    device_event(router, case["id"], 1, "translation",
                 {"turn_event_id": reply["event_id"], "language": "ja",
                  "text": "税金・お支払いは2階の8番・9番窓口です。"})
    ai = next(t for t in router.case(case["id"])["packet"]["transcript"]
              if t["speaker"] == "ai")
    assert ai["translated"] == "税金・お支払いは2階の8番・9番窓口です。"


def test_untranslated_resident_turn_is_recorded_and_marked_never_dropped(router):
    case = router.open_case(language="ja", escalate=False)
    r = turn(router, case["id"], "今日はいい天気ですね。", "ja",
             untranslated="no translation ja→en: no package translate-ja_en installed")
    assert r.status_code == 200, r.text
    # Neither a translation nor a mark: the router's multilingual sentence model reads
    # Japanese itself, so the turn is taken and recorded as said, marked untranslated.
    r = turn(router, case["id"], "窓口は何時まで開いていますか。", "ja")
    assert r.status_code == 200, r.text
    entries = [t for t in router.case(case["id"])["packet"]["transcript"]
               if t["speaker"] == "resident"]
    assert len(entries) == 2
    e, bare = entries
    assert (e["text"], e["language"], e["translated"]) == ("今日はいい天気ですね。", "ja", None)
    assert "translate-ja_en" in e["untranslated"]
    assert (bare["language"], bare["translated"]) == ("ja", None)
    assert bare["untranslated"] == "no translation came with the turn"


def test_message_the_device_could_not_translate_is_marked_for_the_worker(router):
    case = connected_case(router)
    r = message(router, case["id"], "haruto", text="Bring form B-7.", language="ja")
    device_event(router, case["id"], 1, "translation", {
        "turn_event_id": r.json()["event_id"], "language": "en", "text": "",
        "untranslated": "no translation ja→en on this device"})
    entry = router.case(case["id"], "haruto")["packet"]["transcript"][-1]
    assert entry["translated"] is None
    assert entry["untranslated"] == "no translation ja→en on this device"
