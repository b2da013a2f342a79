"""Packet enrichment: next steps from playbooks, extractive summary, size bounds, preview;
a conversation with 3 actions and an escalation gives a complete packet that validates
against the published schema and round-trips through JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import TypeAdapter

from protocol.models import ActionRecord, CaseEvent, ContextPacket, TranscriptEntry
from router.assistant import BuiltinAssistant, DialogContext, InMemoryAccountService
from router.escalation import DecisionContext
from router.packet import build_packet
from router.playbooks import (
    PacketBounds,
    bound_transcript,
    collect_flags,
    enrich_packet,
    next_steps,
    packet_preview,
    summarize,
)
from tests.transition.conftest import T0

REPO = Path(__file__).resolve().parents[2]
EVENT = TypeAdapter(CaseEvent)


def entry(i, text, speaker="resident", translated=None, lang="en"):
    return TranscriptEntry(event_id=f"e{i}", at=T0 + i, speaker=speaker, language=lang,
                           text=text, translated=translated,
                           translated_language="en" if translated else None)


def action(tool, ok=True):
    return ActionRecord(event_id=f"a-{tool}", at=T0, tool=tool, args={}, result=None, ok=ok)


def test_next_steps_flags_first_and_done_steps_left_out(layer):
    pb = layer.cfg.playbooks
    steps = next_steps(pb, "collections", ["collections_enforcement"], [action("lookup_balance")])
    assert steps[0].startswith("Check the enforcement status")
    assert not any("check the overdue amount" in s for s in steps)
    assert any("installment plan" in s for s in steps)
    failed = next_steps(pb, "collections", [], [action("lookup_balance", ok=False)])
    assert any("check the overdue amount" in s for s in failed)
    assert next_steps(pb, None, []) == [s.text for s in pb.default]
    assert next_steps(pb, "not_an_intent", []) == [s.text for s in pb.default]
    assert next_steps(pb, "thanks", []) == []


def test_extractive_summary_quotes_the_resident():
    transcript = [
        entry(0, "Recibí una carta de impuestos atrasados de 76.000 yenes.", lang="es",
              translated="I received a letter about overdue taxes of 76,000 yen."),
        entry(1, "You have 76,000 yen past due.", speaker="ai"),
        entry(2, "Hola.", lang="es", translated="Hello."),
        entry(3, "No puedo pagar los impuestos atrasados, me van a embargar.", lang="es",
              translated="I can't pay the overdue taxes, they will seize my account."),
    ]
    s = summarize(transcript, intent="collections", actions=[action("lookup_balance")],
                  stop_reasons=["hard:regulatory_flag", "sentiment:frustrated"],
                  max_sentences=2)
    assert s.startswith("Resident (es), 3 turns, about collections.")
    assert "“I received a letter about overdue taxes of 76,000 yen.”" in s
    assert "“I can't pay the overdue taxes, they will seize my account.”" in s
    assert "Hello" not in s and "AI did: lookup_balance (ok)." in s
    assert "AI stopped: hard:regulatory_flag, sentiment:frustrated." in s
    assert summarize([]) == ""


def test_bound_transcript_keeps_head_and_tail():
    entries = [entry(i, f"turn number {i}") for i in range(50)]
    bounds = PacketBounds(max_transcript_entries=10, max_transcript_chars=10_000, keep_head=3)
    kept, omitted = bound_transcript(entries, bounds)
    assert [e.event_id for e in kept] == ["e0", "e1", "e2"] + [f"e{i}" for i in range(43, 50)]
    assert len(omitted) == 40 and omitted[0].event_id == "e3"
    short = entries[:5]
    assert bound_transcript(short, bounds) == (short, [])
    # by characters: long turns squeeze the tail, the newest one always stays
    big = [entry(i, "x" * 3000) for i in range(6)]
    kept, omitted = bound_transcript(big, PacketBounds(max_transcript_entries=10,
                                                       max_transcript_chars=7000, keep_head=1))
    assert [e.event_id for e in kept] == ["e0", "e5"] and len(omitted) == 4
    huge = [entry(0, "y" * 4000, translated="z" * 8000)]
    assert bound_transcript(huge, PacketBounds(max_transcript_chars=500, keep_head=0))[0] == huge


def ev(seq, type_, payload, origin="kiosk-1", case_id="c-1"):
    return EVENT.validate_python({"event_id": f"{origin}-{seq}", "case_id": case_id,
                                  "origin": origin, "seq": seq, "ts": T0 + seq,
                                  "type": type_, "payload": payload})


async def conversation_events(layer):
    """A real conversation through the layer: appointment lookup, balance, collections (one
    action each), then a frustrated turn that escalates. Events as the router would log."""
    assistant = BuiltinAssistant(layer.cfg.assistant,
                                 InMemoryAccountService.demo(now=lambda: T0),
                                 site_timezones={"city-office": "Asia/Tokyo"})
    events = [ev(1, "opened", {"site": "city-office", "device": "kiosk-1", "resident": "res-3",
                               "language": "es", "channel": "chat",
                               "account": {"resident_since": "2021-04"}})]
    ctx = DialogContext(case_id="c-1", site="city-office", resident="res-3")
    state = layer.new_state(T0)
    turns = [("¿Cuándo es mi cita?", "When is my appointment?"),
             ("¿Cuánto debo de impuestos?", "How much tax do I owe?"),
             ("Tengo impuestos atrasados, ¿puedo pagar en cuotas?",
              "I have overdue taxes, can I pay in installments?"),
             ("¡Esto es ridículo, ya lo dije! Nadie me ayuda.",
              "This is ridiculous, I already said it! Nobody helps me.")]
    seq = 1
    decision = None
    for text, pivot in turns:
        seq += 1
        turn = layer.accept(text, "es", pivot_text=pivot, at=T0 + seq)
        events.append(ev(seq, "turn", {"speaker": "resident", "language": "es", "text": text,
                                       "translated": pivot, "translated_language": "en"}))
        reply = await assistant.respond(turn, ctx)
        ctx.state = reply.state
        for a in reply.actions:
            seq += 1
            events.append(ev(seq, "action", a.model_dump(mode="json"), origin="kiosk-1"))
        # wait_s 30: with the embedding scorer the frustrated last turn scores as "thanks"
        # (out of scope 0.49) and its expected cost (2.20) sits just under a person after a
        # 60 s wait (2.25): a known gap, docs/transition.md "Known gaps".
        result = layer.assess(turn, reply, state, DecisionContext(site="city-office", wait_s=30))
        state = result.state
        for p in result.signal_payloads():
            seq += 1
            events.append(ev(seq, "signal", p.model_dump(mode="json")))
        seq += 1
        events.append(ev(seq, "decision", result.decision_payload().model_dump(mode="json")))
        decision = result.decision
        if decision.decision == "escalate":
            break
        seq += 1
        events.append(ev(seq, "turn", {"speaker": "ai", "language": reply.language,
                                       "text": reply.text,
                                       "confidence": reply.raw_confidence}))
    return events, decision


def test_complete_packet_after_three_actions_and_an_escalation(layer):
    events, decision = asyncio.run(conversation_events(layer))
    assert decision.decision == "escalate"
    packet = build_packet(events)
    assert len(packet.actions) == 3
    enriched = enrich_packet(packet, layer.cfg.playbooks, flags=collect_flags(events),
                             intent="collections")
    # every field is filled
    data = enriched.model_dump(mode="json")
    for field, value in data.items():
        if field in ("requirement", "notes"):  # set by routing and by humans, later
            continue
        assert value not in (None, "", []), field
    assert enriched.escalation.decision.reasons
    assert enriched.escalation.signals["confidence"] >= 0
    assert "expected_cost" in enriched.escalation.decision.reasons
    assert enriched.summary.startswith("Resident (es), 4 turns, about collections.")
    assert "AI stopped:" in enriched.summary and "AI did:" in enriched.summary
    assert enriched.next_steps and enriched.transcript[0].translated
    # the published schema accepts it, and JSON round-trips
    schema = json.loads((REPO / "docs" / "schemas" / "context-packet-1.0.json").read_text())
    jsonschema.validate(data, schema)
    assert ContextPacket.model_validate_json(enriched.model_dump_json()) == enriched
    preview = packet_preview(enriched)
    assert preview.case_id == "c-1" and preview.actions == 3 and preview.reasons
    assert len(preview.summary) <= 400


def test_long_transcript_is_bounded_in_the_packet(layer):
    events = [ev(1, "opened", {"site": "city-office", "language": "en"})]
    for i in range(2, 80):
        events.append(ev(i, "turn", {"speaker": "resident" if i % 2 else "ai",
                                     "language": "en", "text": f"message {i} about my tax"}))
    packet = build_packet(events)
    enriched = enrich_packet(packet, layer.cfg.playbooks,
                             full_transcript_ref="/api/cases/c-1/events")
    assert len(enriched.transcript) == layer.cfg.playbooks.packet.max_transcript_entries
    assert enriched.transcript[-1].event_id == events[-1].event_id
    assert "48 of 78 turns are summarized" in enriched.summary
    assert "/api/cases/c-1/events" in enriched.summary
    assert len(packet.transcript) == 78  # the input is not changed


@pytest.mark.parametrize("flags", [None, ["medical"]])
def test_enrich_uses_given_flags(layer, flags):
    events = [ev(1, "opened", {"site": "city-office", "language": "en", "intent": "office_hours"})]
    enriched = enrich_packet(build_packet(events), layer.cfg.playbooks, flags=flags)
    assert enriched.policy_flags == (flags or [])
    if flags:
        assert enriched.next_steps[0].startswith("Call the first-aid officer")
