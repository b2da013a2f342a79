"""The case fold and the context packet, checked against the published JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import TypeAdapter

from protocol.models import CaseEvent
from protocol.schemas import schemas
from router.casestate import TransitionError, fold
from router.packet import build_packet

REPO = Path(__file__).resolve().parents[2]
EVENT = TypeAdapter(CaseEvent)


def ev(seq, type_, payload, origin="kiosk-1", case_id="c-1"):
    return EVENT.validate_python({"event_id": f"{origin}-{seq}", "case_id": case_id,
                                  "origin": origin, "seq": seq, "ts": 100.0 + seq,
                                  "type": type_, "payload": payload})


def conversation():
    req = {"language": "es", "skills": {"welfare": 2}, "channel": "video",
           "surface": {"kind": "telepresence", "site": "city-office"}}
    return [
        ev(1, "opened", {"site": "city-office", "device": "robot-1", "resident": "res-1",
                         "language": "es", "channel": "video", "intent": "benefits",
                         "account": {"resident_since": "2021-04"}}),
        ev(2, "turn", {"speaker": "resident", "language": "es", "text": "Quiero ayuda",
                       "translated": "I want help", "translated_language": "en"}),
        ev(3, "action", {"tool": "lookup_account", "args": {"resident": "res-1"},
                         "result": {"open_applications": 1}}),
        ev(4, "action", {"tool": "check_status", "args": {"application": "A-7"},
                         "result": "pending", "ok": True}),
        ev(5, "action", {"tool": "book_slot", "args": {}, "result": None, "ok": False}),
        ev(6, "signal", {"name": "sentiment", "value": -0.6}),
        ev(7, "decision", {"decision": {"decision": "escalate", "reasons": ["asked_for_human"],
                                        "expected_cost_ai": 3.2, "cost_human": 1.0}}),
        ev(1, "queued", {"requirement": req, "reasons": ["asked_for_human"]}, origin="router"),
    ]


def test_fold_and_packet_have_every_field_and_match_the_schema():
    events = conversation()
    case = fold(events)
    assert case.state.value == "queued" and case.revision == len(events)
    packet = build_packet(events)
    assert [a.tool for a in packet.actions] == ["lookup_account", "check_status", "book_slot"]
    assert packet.transcript[0].translated == "I want help"
    assert packet.escalation.decision.reasons == ["asked_for_human"]
    assert packet.escalation.signals == {"sentiment": -0.6}
    assert packet.account == {"resident_since": "2021-04"}
    assert [h.kind for h in packet.handoffs] == ["escalated"]
    data = json.loads(packet.model_dump_json())
    schema = json.loads((REPO / "docs/schemas/context-packet-1.0.json").read_text())
    jsonschema.validate(data, schema)
    assert type(packet).model_validate(data) == packet  # round-trips through JSON
    event_schema = json.loads((REPO / "docs/schemas/case-event-1.0.json").read_text())
    for e in events:
        jsonschema.validate(json.loads(e.model_dump_json()), event_schema)


def test_published_schemas_are_current():
    for name, schema in schemas().items():
        published = json.loads((REPO / "docs/schemas" / name).read_text())
        assert published == json.loads(json.dumps(schema)), f"run: baton schemas ({name})"


def test_illegal_transitions_are_refused():
    events = conversation()
    with pytest.raises(TransitionError, match="already open"):
        fold([*events, events[0]])
    accepted = ev(9, "offer_result", {"offer_id": "o-1", "worker_id": "w", "status": "accepted"},
                  origin="router")
    with pytest.raises(TransitionError, match="not pending"):
        fold([*events, accepted])
    closed = [*events, ev(2, "outcome", {"status": "resolved"}, origin="router")]
    with pytest.raises(TransitionError, match="no further changes"):
        fold([*closed, ev(3, "note", {"author": "x", "text": "late"}, origin="router")])
    # A rating may still arrive after the case is closed.
    assert fold([*closed, ev(3, "rating", {"score": 4}, origin="router")]).revision == 10
