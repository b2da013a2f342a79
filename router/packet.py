"""The context packet as a fold of a case's events.

Pure: a function of the events alone, so every router (and a restarted one) builds the same
packet. The transition layer adds policy flags, summary and next steps on top of this fold.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol.models import (
    ActionRecord,
    ContextPacket,
    EscalationInfo,
    NoteRecord,
    TranscriptEntry,
)
from router.casestate import apply


def build_packet(events: Iterable) -> ContextPacket:
    events = list(events)
    if not events or events[0].type != "opened":
        raise ValueError("a packet needs the case's events, starting with 'opened'")
    case = None
    transcript: list[TranscriptEntry] = []
    actions: list[ActionRecord] = []
    notes: list[NoteRecord] = []
    signals: dict[str, float | bool | str] = {}
    escalation: EscalationInfo | None = None
    translations: dict[str, tuple[str, str, str | None]] = {}
    for ev in events:
        case = apply(case, ev)
        p = ev.payload
        if ev.type == "turn":
            transcript.append(TranscriptEntry(
                event_id=ev.event_id, at=ev.ts, speaker=p.speaker, language=p.language,
                text=p.text, translated=p.translated, translated_language=p.translated_language,
                confidence=p.confidence, worker_id=p.worker_id, untranslated=p.untranslated))
        elif ev.type == "translation":
            translations[p.turn_event_id] = (p.language, p.text, p.untranslated)
        elif ev.type == "action":
            actions.append(ActionRecord(event_id=ev.event_id, at=ev.ts, tool=p.tool,
                                        args=p.args, result=p.result, ok=p.ok))
        elif ev.type == "signal":
            signals[p.name] = p.value
        elif ev.type == "decision" and p.decision.decision == "escalate":
            escalation = EscalationInfo(at=ev.ts, decision=p.decision, signals=dict(signals))
        elif ev.type == "note":
            notes.append(NoteRecord(at=ev.ts, author=p.author, text=p.text))
        elif ev.type == "transfer" and p.note:
            notes.append(NoteRecord(at=ev.ts, author=p.from_worker, text=p.note))
    for entry in transcript:
        if entry.event_id in translations and entry.translated is None:
            lang, text, why_not = translations[entry.event_id]
            if why_not:
                entry.untranslated = why_not
            else:
                entry.translated_language, entry.translated = lang, text
    opened = events[0].payload
    assert case is not None
    return ContextPacket(
        case_id=case.id, revision=case.revision, site=case.site, device=case.device,
        resident=case.resident, language=case.language, channel=case.channel,
        intent=case.intent, state=case.state, requirement=case.requirement,
        account=opened.account, transcript=transcript, actions=actions,
        escalation=escalation, notes=notes,
        handoffs=list(case.handoffs),
    )


async def full_packet(core, case_id: str, events: list | None = None) -> dict:
    """The packet a person sees on accept: the fold, plus policy flags, summary and next
    steps from the playbooks, with long transcripts bounded (the full log stays at
    /v1/cases/{id}/events). ``core``: router.service.core.RouterCore; ``events``: the
    case's events when the caller has them (else they are read from the store)."""
    from router.playbooks import collect_flags, enrich_packet

    if events is None:
        events = await core.store.case_events(case_id)
    intent = next((e.payload.detail.get("intent") for e in reversed(events)
                   if e.type == "signal" and e.payload.name == "confidence"), None)
    packet = enrich_packet(build_packet(events), core.cfg.transition.playbooks,
                           flags=collect_flags(events), intent=intent,
                           full_transcript_ref=f"/v1/cases/{case_id}/events")
    return packet.model_dump(mode="json")
