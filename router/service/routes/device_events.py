"""A device's events over REST (the MQTT bridge is the other way in): the same rule."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from protocol.models import CaseEvent
from router.device_rules import event_header
from router.service.routes.deps import Core, Device

router = APIRouter()
EVENT = TypeAdapter(CaseEvent)


@router.post("/events")
async def append_event(request: Request, core: Core, principal: Device) -> Any:
    """One device event, under the rule of docs/protocol.md §8 (router.device_rules): every
    refused event is dead-lettered and consumes its seq — the answer says so, do not resend
    it; a lower seq with other content is kept as a ``seq_conflict`` dead letter."""
    raw = await request.body()
    text = raw.decode("utf-8", "backslashreplace")

    def refused(status: int, cls: str, message: str, seq: int) -> JSONResponse:
        return JSONResponse({"error": "refused", "reason": cls, "seq": seq,
                             "message": f"{message}; the event was recorded as refused and its "
                             "seq consumed: do not resend it, continue with the next seq"},
                            status_code=status)

    try:
        event = EVENT.validate_json(raw)
    except ValidationError as exc:
        why = _summarize(exc)
        head = event_header(raw)
        if head is None or head[0] != principal.subject:
            raise HTTPException(422, why) from None
        origin, seq, event_id = head
        outcome = await core.refuse_seq(origin, seq, cls="schema", reason=why,
                                        event_id=event_id, source="rest:/v1/events", raw=text)
        if outcome == "refused":
            return refused(422, "schema", why, seq)
        raise HTTPException(422, f"{why} (seq {seq} was not consumed: {outcome})") from None
    if event.origin != principal.subject:
        raise HTTPException(403, f"event origin {event.origin!r} is not you "
                            f"({principal.subject}); devices send only their own events")
    site = core.cfg.device(principal.subject)
    result = await core.take_external(event, device=principal.subject,
                                      site=site[0].id if site else None, may_open=False,
                                      source="rest:/v1/events", raw=text)
    if result.status == "refused":
        status = 409 if result.cls == "refused" else 422 if result.cls in (
            "clock_skew", "too_old", "before_case") else 403 if result.cls == "not_allowed" \
            else 409
        return refused(status, result.cls, result.reason, event.seq)
    if result.status == "seq_conflict":
        await core.store.dead_letter("rest:/v1/events", f"{result.cls}: {result.reason}", raw,
                                     core.clock.now())
        return JSONResponse({"error": "conflict", "reason": result.cls, "seq": event.seq,
                             "message": f"{result.reason}; kept as a dead letter"},
                            status_code=409)
    return {"status": result.status, "seq": event.seq}


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
