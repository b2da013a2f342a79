"""The packet's human side: suggested next steps from per-intent playbooks
(config/playbooks.yaml), an extractive summary of the transcript, and size bounds.

Pure: functions of the packet (router.packet.build_packet) and the config.
``enrich_packet`` fills ``policy_flags``, ``summary`` and ``next_steps`` and bounds the
transcript; the full transcript stays in the case's events.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.config import ConfigError, parse_file
from protocol.models import ActionRecord, ContextPacket, Ident, TranscriptEntry

PLAYBOOKS_FILE = "playbooks.yaml"


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Step(_C):
    text: str = Field(min_length=1, max_length=500)
    done_by: str | None = None  # a tool: the step is done once the AI called it with success


class SummaryConfig(_C):
    max_sentences: int = Field(default=3, ge=1, le=20)


class PacketBounds(_C):
    max_transcript_entries: int = Field(default=30, ge=4)
    max_transcript_chars: int = Field(default=12000, ge=500)
    keep_head: int = Field(default=4, ge=0)

    @model_validator(mode="after")
    def _head_fits(self):
        if self.keep_head >= self.max_transcript_entries:
            raise ValueError("keep_head must be smaller than max_transcript_entries")
        return self


class PlaybooksFile(_C):
    summary: SummaryConfig = Field(default_factory=SummaryConfig)
    packet: PacketBounds = Field(default_factory=PacketBounds)
    default: list[Step] = Field(default_factory=list)
    intents: dict[Ident, list[Step]] = Field(default_factory=dict)
    flags: dict[Ident, list[Step]] = Field(default_factory=dict)


def load_playbooks(directory: str | Path, *, intents: set[str] | None = None,
                   flags: set[str] | None = None,
                   tools: Iterable[str] | None = None) -> PlaybooksFile:
    """Load config/playbooks.yaml; names are checked against ``intents`` (assistant.yaml),
    ``flags`` (policy.yaml flag ids) and ``tools`` when given."""
    path = Path(directory) / PLAYBOOKS_FILE
    pb = parse_file(path, PlaybooksFile)
    assert isinstance(pb, PlaybooksFile)
    where = str(path)
    if intents is not None:
        for name in pb.intents:
            if name not in intents:
                raise ConfigError(where, f"intents.{name}", "intent is not defined in "
                                  "assistant.yaml")
    if flags is not None:
        for name in pb.flags:
            if name not in flags:
                raise ConfigError(where, f"flags.{name}", "flag is not defined in policy.yaml")
    if tools is not None:
        known = set(tools)
        for section, books in (("intents", pb.intents), ("flags", pb.flags)):
            for name, steps in books.items():
                for i, step in enumerate(steps):
                    if step.done_by and step.done_by not in known:
                        raise ConfigError(where, f"{section}.{name}.{i}.done_by",
                                          f"tool {step.done_by!r} is not one of {sorted(known)}")
    return pb


# --- next steps -----------------------------------------------------------------------------


def next_steps(pb: PlaybooksFile, intent: str | None, flags: Iterable[str],
               actions: Iterable[ActionRecord] = ()) -> list[str]:
    """Flag steps first (they are the urgent ones), then the intent's, else the default;
    steps already done by a successful tool call are left out; no duplicates."""
    done = {a.tool for a in actions if a.ok}
    steps: list[Step] = []
    for f in flags:
        steps += pb.flags.get(f, [])
    steps += pb.intents.get(intent, pb.default) if intent else pb.default
    out: list[str] = []
    for s in steps:
        if (s.done_by is None or s.done_by not in done) and s.text not in out:
            out.append(s.text)
    return out


# --- extractive summary ---------------------------------------------------------------------

_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")
_TOKEN = re.compile(r"\w+")
_STOP = frozenset("""a an the and or but if of to in on at for from with by about as is are was
were be been am i me my we our you your he she it its they them their this that these those
do does did have has had can could would should will shall may might not no yes so just very
what when where which who how please hello hi thanks thank ok okay there here want need""".split())


def pivot_text(entry: TranscriptEntry) -> str:
    """The entry in the pivot language when it was translated, else as said."""
    return entry.translated if entry.translated else entry.text


def summarize(transcript: list[TranscriptEntry], *, intent: str | None = None,
              actions: Iterable[ActionRecord] = (), stop_reasons: Iterable[str] = (),
              max_sentences: int = 3) -> str:
    """An extractive summary: the resident's most informative sentences, quoted in order,
    framed by what is known (language, intent, what the AI did, why it stopped).

    Sentence score: mean frequency of its content words across the resident's turns (what
    the resident keeps talking about), plus a bonus for numbers and references, for the
    first request and for the last turn (usually why the AI stopped)."""
    resident = [e for e in transcript if e.speaker == "resident"]
    sentences: list[tuple[int, str]] = []
    for e in resident:
        for m in _SENTENCE.finditer(pivot_text(e)):
            s = m.group(0).strip()
            if len(_TOKEN.findall(s)) >= 2:
                sentences.append((len(sentences), s))
    freq = Counter(w for _, s in sentences for w in _content(s))
    last_turn_start = _first_index_of_last_turn(resident)
    scored = []
    for i, s in sentences:
        words = _content(s)
        score = sum(freq[w] for w in words) / (len(words) + 1) if words else 0.0
        score += 0.5 * bool(re.search(r"\d", s))
        score += 1.0 if i == 0 else 0.0
        score += 0.75 if i >= last_turn_start else 0.0
        scored.append((score, i, s))
    picked = sorted(sorted(scored, key=lambda t: (-t[0], t[1]))[:max_sentences],
                    key=lambda t: t[1])
    parts: list[str] = []
    if resident:
        lang = resident[0].language
        parts.append(f"Resident ({lang}), {len(resident)} turns"
                     + (f", about {intent.replace('_', ' ')}" if intent else "") + ".")
    if picked:
        parts.append("Said: " + " … ".join(f"“{_clip(s, 200)}”" for _, _, s in picked))
    acts = list(actions)
    if acts:
        parts.append("AI did: " + "; ".join(f"{a.tool} ({'ok' if a.ok else 'failed'})"
                                            for a in acts[-5:]) + ".")
    reasons = [r for r in stop_reasons if r]
    if reasons:
        parts.append("AI stopped: " + ", ".join(reasons[:6]) + ".")
    return " ".join(parts)


def _content(sentence: str) -> list[str]:
    return [w for w in _TOKEN.findall(sentence.lower()) if w not in _STOP and len(w) > 1]


def _first_index_of_last_turn(resident: list[TranscriptEntry]) -> int:
    if not resident:
        return 0
    count = 0
    for e in resident[:-1]:
        count += sum(1 for m in _SENTENCE.finditer(pivot_text(e))
                     if len(_TOKEN.findall(m.group(0))) >= 2)
    return count


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# --- size bounds ----------------------------------------------------------------------------


def bound_transcript(entries: list[TranscriptEntry], bounds: PacketBounds
                     ) -> tuple[list[TranscriptEntry], list[TranscriptEntry]]:
    """(kept, omitted): the first ``keep_head`` entries and as many of the last as fit in
    ``max_transcript_entries`` and ``max_transcript_chars``. The newest entry is always kept,
    even when it alone is over the character budget."""
    def size(e: TranscriptEntry) -> int:
        return len(e.text) + len(e.translated or "")

    if len(entries) <= bounds.max_transcript_entries \
            and sum(size(e) for e in entries) <= bounds.max_transcript_chars:
        return list(entries), []
    head = list(entries[: bounds.keep_head])
    budget = bounds.max_transcript_chars - sum(size(e) for e in head)
    room = bounds.max_transcript_entries - len(head)
    tail: list[TranscriptEntry] = []
    for e in reversed(entries[len(head):]):
        if len(tail) >= room or (tail and size(e) > budget):
            break
        tail.append(e)
        budget -= size(e)
    tail.reverse()
    omitted = entries[len(head): len(entries) - len(tail)]
    return head + tail, list(omitted)


# --- the packet -----------------------------------------------------------------------------


class PacketPreview(BaseModel):
    """What an offer shows before accept (the whole packet comes with the accept)."""

    model_config = ConfigDict(extra="forbid")
    case_id: str
    revision: int
    site: str
    language: str
    channel: str
    intent: str | None = None
    reasons: list[str] = Field(default_factory=list)
    policy_flags: list[str] = Field(default_factory=list)
    summary: str = ""
    turns: int = 0
    actions: int = 0


def collect_flags(events: Iterable) -> list[str]:
    """Every policy flag raised on the case, in order (from its ``policy_flags`` signals)."""
    out: list[str] = []
    for ev in events:
        if ev.type == "signal" and ev.payload.name == "policy_flags":
            for f in ev.payload.detail.get("flags", []) or []:
                if isinstance(f, str) and f not in out:
                    out.append(f)
    return out


def enrich_packet(packet: ContextPacket, pb: PlaybooksFile, *,
                  flags: Iterable[str] | None = None, intent: str | None = None,
                  full_transcript_ref: str | None = None) -> ContextPacket:
    """A copy of ``packet`` with policy flags, summary and next steps, and its transcript
    bounded. ``flags``: from collect_flags(events); ``intent``: the AI's latest intent, set
    on the packet when the case has none yet; ``full_transcript_ref``: where the whole
    transcript is (a URL), quoted when turns are left out."""
    flags = list(flags) if flags is not None else list(packet.policy_flags)
    intent = packet.intent or intent
    reasons = packet.escalation.decision.reasons if packet.escalation else []
    summary = summarize(packet.transcript, intent=intent, actions=packet.actions,
                        stop_reasons=reasons, max_sentences=pb.summary.max_sentences)
    kept, omitted = bound_transcript(packet.transcript, pb.packet)
    if omitted:
        where = f" (full transcript: {full_transcript_ref})" if full_transcript_ref else ""
        summary += (f" {len(omitted)} of {len(packet.transcript)} turns are summarized here "
                    f"and not repeated below{where}.")
    return packet.model_copy(update={
        "intent": intent, "policy_flags": flags, "summary": summary, "transcript": kept,
        "next_steps": next_steps(pb, intent, flags, packet.actions)})


def packet_preview(packet: ContextPacket) -> PacketPreview:
    return PacketPreview(
        case_id=packet.case_id, revision=packet.revision, site=packet.site,
        language=packet.language, channel=packet.channel.value, intent=packet.intent,
        reasons=packet.escalation.decision.reasons if packet.escalation else [],
        policy_flags=packet.policy_flags, summary=_clip(packet.summary, 400),
        turns=len(packet.transcript), actions=len(packet.actions))
