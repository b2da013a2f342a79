"""What a device may say, whatever the transport (REST /v1/events or MQTT), and what the
router does with what it refuses: the one rule both apply (docs/protocol.md §8).

Every device event the router refuses, for any reason (schema, permission, time, store
conflict), is dead-lettered with its reason and consumes its seq: the device is acked past
it and is never blocked by its own bad event. A lower seq with different content is
acknowledged as before and dead-lettered ``seq_conflict``. Pure: the caller looks the case up.
"""

from __future__ import annotations

import json

from router.audit import estop_refusal

# Event types a device may send for a case it opened, and with "opened" itself (over MQTT an
# edge may open its own cases while offline; REST devices use POST /v1/cases instead).
DEVICE_CASE_EVENTS = ("turn", "translation", "action", "signal", "decision", "rating",
                      "outcome")
DEVICE_EVENT_TYPES = frozenset({"opened", *DEVICE_CASE_EVENTS})
MAX_CLOCK_SKEW_S = 300.0  # device events dated further ahead are refused

# Refusal classes (the prefix of a dead letter's reason, and REST's "reason").
SCHEMA, NOT_ALLOWED, CLOCK_SKEW, TOO_OLD, BEFORE_CASE, EVENT_ID_REUSED, REFUSED, \
    SEQ_CONFLICT = ("schema", "not_allowed", "clock_skew", "too_old", "before_case",
                    "event_id_reused", "refused", "seq_conflict")


def device_event_refusal(event) -> str | None:
    """Why a device may not send ``event`` (a protocol.models case event), or None."""
    if event.type not in DEVICE_EVENT_TYPES:
        return f"devices may not send {event.type!r} events"
    if event.type == "outcome" and event.payload.status != "abandoned":
        return "a device may only close a case as abandoned"
    if event.type == "turn" and (event.payload.speaker == "human" or event.payload.worker_id):
        return ("a device may not speak for a person: turns from devices are the resident's "
                "or the AI's")
    if event.type == "action":
        return estop_refusal(event)
    return None


def refusal(event, *, device: str, site: str | None, case, site_languages, may_open: bool,
            now: float, max_age_s: float) -> tuple[str, str] | None:
    """(class, reason saying what to fix) when the router refuses ``event`` from ``device``
    at ``site``, or None. ``case``: the event's case as stored (None when unknown);
    ``site_languages``: what the device's site serves; ``may_open``: whether this transport
    lets a device open cases with an ``opened`` event (MQTT does, REST has POST /v1/cases)."""
    why = device_event_refusal(event)
    if why is not None:
        return NOT_ALLOWED, why
    if event.ts > now + MAX_CLOCK_SKEW_S:
        return CLOCK_SKEW, (f"event ts {event.ts} is {event.ts - now:.0f} s in the future "
                            f"(limit {MAX_CLOCK_SKEW_S:.0f} s): fix the device clock (NTP)")
    if event.ts < now - max_age_s:
        return TOO_OLD, (f"event ts {event.ts} is {now - event.ts:.0f} s old (limit "
                         f"{max_age_s:.0f} s, routing.max_event_age_s): fix the device clock "
                         "(NTP); an event this old is not applied")
    if event.type == "opened":
        if not may_open:
            return NOT_ALLOWED, ("devices may not send 'opened' events here: open cases with "
                                 "POST /v1/cases")
        p = event.payload
        if p.device != device or p.site != site:
            return NOT_ALLOWED, (f"an edge opens cases only for itself at its site ({device} "
                                 f"at {site}), not device {p.device!r} at {p.site!r}")
        if p.language not in site_languages:
            return NOT_ALLOWED, f"site {site!r} does not serve language {p.language!r}"
        if case is not None:
            return REFUSED, f"case {event.case_id!r} exists already: use a new case id"
        return None
    if case is None or case.device != device:
        return NOT_ALLOWED, f"no case {event.case_id!r} at device {device!r}"
    if event.ts < case.created_at - MAX_CLOCK_SKEW_S:
        return BEFORE_CASE, (f"event ts {event.ts} is before case {case.id!r} opened "
                             f"({case.created_at}): fix the device clock (NTP)")
    return None


def event_header(raw: bytes | str) -> tuple[str, int, str | None] | None:
    """(origin, seq, event_id or None) of input that fails the event schema but names them
    (a string origin, an integer seq ≥ 1): its seq is consumed too. None when it names no
    usable seq."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    origin, seq = obj.get("origin"), obj.get("seq")
    if isinstance(origin, str) and type(seq) is int and 1 <= seq <= 2**53:
        event_id = obj.get("event_id")
        return origin, seq, event_id if isinstance(event_id, str) else None
    return None
