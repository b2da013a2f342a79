"""What a device may say about its own cases, whatever the transport (REST /v1/events or
MQTT): the one place both check, before looking the case up."""

from __future__ import annotations

from router.audit import estop_refusal

# Event types a device may send for a case it opened, and with "opened" itself (over MQTT an
# edge may open its own cases while offline; REST devices use POST /v1/cases instead).
DEVICE_CASE_EVENTS = ("turn", "translation", "action", "signal", "decision", "rating",
                      "outcome")
DEVICE_EVENT_TYPES = frozenset({"opened", *DEVICE_CASE_EVENTS})


def device_event_refusal(event) -> str | None:
    """Why a device may not send ``event`` (a router.models case event), or None."""
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
