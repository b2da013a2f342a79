"""REST routes. Thin: authenticate, check the role and visibility, call the core."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from protocol.models import TERMINAL_STATES, CaseEvent, CaseState, Presence, Requirement, Role
from router.casestate import Case
from router.device_rules import event_header
from router.kpis import compute_kpis
from router.mqtt.bridge import BridgeError
from router.packet import full_packet
from router.service import views
from router.service.auth import WORKER_ROLES, Access, Authed, Principal, access, require, wrapup_s
from router.service.core import RouterCore
from router.service.stats import stats
from router.store.errors import StoreError

api = APIRouter(prefix="/v1")
EVENT = TypeAdapter(CaseEvent)
log = logging.getLogger("baton.api")
CHAT_COMMAND = "chat.say"  # edge/chat.py runs it
MAX_OFFSET = 1_000_000  # every integer query parameter has bounds (no 500 on 2**63)
CHAT_TTL_S = 600.0  # a message the resident did not see within 10 min is not shown late


async def core_of(request: Request) -> RouterCore:
    return request.app.state.core


Core = Annotated[RouterCore, Depends(core_of)]
Staff = require(Role.supervisor, Role.admin)
CaseCreators = require(Role.device, Role.supervisor, Role.admin)
Workers = require(*WORKER_ROLES, Role.supervisor)


def _access(core: RouterCore, principal: Principal, case: Case) -> Access:
    return access(principal, case, core.clock.now(), wrapup_s(core.cfg))


async def _visible_case(core: RouterCore, principal: Principal, case_id: str,
                        need: Access = Access.read) -> Case:
    case = await core._case(case_id)
    level = Access.none if case is None else _access(core, principal, case)
    # Not-yours and not-there answer alike, so ids cannot be probed.
    if level is Access.none:
        raise HTTPException(404, f"no case {case_id!r} that you may see")
    if level is Access.preview and level < need:
        raise HTTPException(403, f"case {case_id!r} is offered to you, not assigned: accept "
                            "the offer first (the packet comes with the accept)")
    if level < need and case.terminal:
        raise HTTPException(409, f"case {case_id!r} is {case.state.value}, not connected: you "
                            "may read it during the wrap-up window, not change it (the "
                            "close's note is the wrap-up; a supervisor may add a note)")
    if level < need:
        raise HTTPException(403, f"case {case_id!r} is no longer yours: you may read it "
                            "during the wrap-up window, not change it")
    return case


def _audit(request: Request, action: str, principal: Principal, case_id: str,
           **detail: Any) -> None:
    request.app.state.audit.record(action, principal.subject, case_id=case_id,
                                   address=request.client.host if request.client else None,
                                   role=principal.role.value, **detail)


def _owner_or_staff(principal: Principal, case: Case) -> None:
    if principal.sees_everything or case.assigned_worker == principal.subject:
        return
    raise HTTPException(403, f"case {case.id!r} is not assigned to you")


@api.get("/me")
async def me(principal: Authed) -> dict[str, str]:
    return {"subject": principal.subject, "role": principal.role.value}


@api.post("/cases", status_code=201)
async def create_case(body: views.CreateCase, core: Core,
                      principal: Principal = CaseCreators) -> dict[str, Any]:
    if principal.role is Role.device and body.device != principal.subject:
        raise HTTPException(403, f"a device may only open cases for itself ({principal.subject})")
    case = await core.create_case(body)
    return views.case_view(case, core)


@api.post("/cases/{case_id}/escalate")
async def escalate_case(case_id: str, body: views.EscalateCase, core: Core,
                        principal: Principal = CaseCreators) -> dict[str, Any]:
    case = await _visible_case(core, principal, case_id)
    case = await core.escalate(case_id, body)
    return views.case_view(case, core)


@api.post("/cases/{case_id}/turns")
async def resident_turn(case_id: str, body: views.ResidentTurn, request: Request, core: Core,
                        principal: Principal = CaseCreators) -> dict[str, Any]:
    """A resident's turn: the AI answers, or the case is handed to a person. The answer
    says which (``ai_silent``, ``handoff`` with a wait estimate)."""
    await _visible_case(core, principal, case_id)
    return await request.app.state.conversations.resident_turn(
        case_id, body.text, body.language, body.translated, untranslated=body.untranslated)


@api.get("/cases")
async def list_cases(core: Core, principal: Authed,
                     state: Annotated[list[CaseState] | None, Query()] = None,
                     site: str | None = None, worker: str | None = None,
                     resident: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0
                     ) -> dict[str, Any]:
    states = [s.value for s in state] if state else None
    if principal.sees_everything:
        found = await core.store.list_cases(states=states, site=site, worker=worker,
                                            resident=resident, limit=limit, offset=offset)
    else:
        # Workers and devices: only their own cases, whatever the filters ask.
        found = await core.store.list_cases(states=states, site=site, resident=resident,
                                            worker=None, limit=500, offset=0)
        mine = [c for c in found if _access(core, principal, c) >= Access.read]
        offered = []
        if principal.role in WORKER_ROLES:
            offered = [c for c in core.cases.values() if c.pending_offer is not None
                       and c.pending_offer.worker_id == principal.subject
                       and c.id not in {m.id for m in mine}]
        items = [views.case_view(c, core) for c in mine]
        # An offer shows its preview only: the packet comes with the accept.
        items += [views.case_preview(c) for c in offered]
        return {"cases": items[offset:offset + limit]}
    return {"cases": [views.case_view(c, core) for c in found]}


@api.get("/cases/{case_id}")
async def get_case(case_id: str, core: Core, principal: Authed) -> dict[str, Any]:
    case = await core._case(case_id)
    if case is not None and _access(core, principal, case) is Access.preview:
        return {"case": views.case_preview(case), "packet": None,
                "access": "preview: accept the offer for the packet"}
    case = await _visible_case(core, principal, case_id)
    return {"case": views.case_view(case, core), "packet": await full_packet(core, case_id)}


@api.get("/cases/{case_id}/events")
async def case_events(case_id: str, core: Core, principal: Authed) -> dict[str, Any]:
    await _visible_case(core, principal, case_id)
    events = await core.store.case_events(case_id)
    return {"events": [e.model_dump(mode="json") for e in events]}


@api.post("/cases/{case_id}/close")
async def close_case(case_id: str, body: views.CloseCase, core: Core, request: Request,
                     principal: Authed) -> dict[str, Any]:
    case = await _visible_case(core, principal, case_id)
    if case.state in TERMINAL_STATES:
        raise HTTPException(409, f"case {case_id!r} is already {case.state.value}")
    if principal.role is not Role.device:
        _owner_or_staff(principal, case)
    elif body.status != "abandoned":
        raise HTTPException(403, "a device may only close a case as abandoned (resident left)")
    case = await core.close_case(case_id, principal.subject, body.status, body.code, body.note,
                                 body.ai_verdict)
    _audit(request, "close", principal, case_id, status=body.status)
    return views.case_view(case, core)


@api.post("/cases/{case_id}/transfer")
async def transfer_case(case_id: str, body: views.TransferCase, core: Core, request: Request,
                        principal: Principal = Workers) -> dict[str, Any]:
    case = await _visible_case(core, principal, case_id)
    _owner_or_staff(principal, case)
    if body.to_worker is not None and body.to_worker not in core.presence:
        raise HTTPException(404, f"unknown worker {body.to_worker!r}")
    old = case.requirement
    if old is None:
        raise HTTPException(409, f"case {case_id!r} was never routed")
    try:
        requirement = Requirement(
            language=body.language or old.language, skills=body.skills or old.skills,
            surface=old.surface, channel=body.channel or old.channel,
            priority=old.priority if body.priority is None else body.priority,
            workflow=body.workflow or old.workflow)
    except ValidationError as exc:
        raise HTTPException(422, str(exc)) from None
    if requirement.workflow and requirement.workflow not in core.cfg.routing.workflows:
        raise HTTPException(422, f"unknown workflow {requirement.workflow!r}")
    holder = case.assigned_worker
    case = await core.transfer(case_id, case.assigned_worker or principal.subject, requirement,
                               body.note, body.to_worker)
    # A supervisor moving someone else's case is a reassignment.
    action = "reassign" if principal.sees_everything and holder != principal.subject \
        else "transfer"
    _audit(request, action, principal, case_id, from_worker=holder, to_worker=body.to_worker)
    return views.case_view(case, core)


@api.post("/cases/{case_id}/take")
async def take_case(case_id: str, core: Core, request: Request,
                    body: views.TakeCase | None = None,
                    principal: Principal = require(Role.supervisor)) -> dict[str, Any]:
    """A supervisor takes a connected case themselves: a warm transfer to their own worker
    id, accepted at once. They must be on the worker roster (config/workers.yaml) and
    available on their desk (/desk), where they then work the case."""
    await _visible_case(core, principal, case_id)
    holder = (await core._case(case_id)).assigned_worker
    case = await core.take(case_id, principal.subject, body.note if body else "")
    _audit(request, "take", principal, case_id, from_worker=holder)
    return views.case_view(case, core)


@api.post("/cases/{case_id}/handback")
async def handback(case_id: str, body: views.Handback, core: Core, request: Request,
                   principal: Principal = Workers) -> dict[str, Any]:
    case = await _visible_case(core, principal, case_id)
    _owner_or_staff(principal, case)
    case = await core.handback(case_id, case.assigned_worker or principal.subject,
                               body.reason, body.note)
    _audit(request, "handback", principal, case_id)
    return views.case_view(case, core)


@api.post("/cases/{case_id}/notes", status_code=201)
async def add_note(case_id: str, body: views.NoteIn, core: Core,
                   principal: Authed) -> dict[str, Any]:
    if principal.role is Role.device:
        raise HTTPException(403, "devices add turns as events, not notes")
    await _visible_case(core, principal, case_id, Access.write)
    case = await core.add_note(case_id, principal.subject, body.text)
    return views.case_view(case, core)


@api.post("/cases/{case_id}/messages", status_code=201)
async def send_message(case_id: str, body: views.MessageIn, request: Request, core: Core,
                       principal: Authed) -> dict[str, Any]:
    """The connected worker writes to the resident: recorded as a human turn and, when the
    case has a device and the MQTT bridge runs, sent to the device as ``chat.say``; the
    device translates it, shows it and reports the translation (docs/protocol.md §5)."""
    await _visible_case(core, principal, case_id, Access.write)
    event, case = await core.human_message(case_id, principal.subject, body.text,
                                           body.language)
    out: dict[str, Any] = {"event_id": event.event_id, "delivered_to": None}
    bridge = getattr(request.app.state, "bridge", None)
    if case.device is None or bridge is None:
        return out  # recorded: a chat surface reads it from the packet
    args = {"case_id": case.id, "turn_event_id": event.event_id, "text": event.payload.text,
            "language": event.payload.language, "to_language": case.language}
    try:
        out["command_id"] = await bridge.send_command(case.device, CHAT_COMMAND, args,
                                                      ttl_s=CHAT_TTL_S)
    except (BridgeError, StoreError) as exc:
        # The turn is recorded; only the device misses it. Say so rather than fail the
        # request, which a retry would turn into a second turn.
        log.warning("chat message not sent to the device",
                    extra={"case_id": case.id, "device": case.device, "error": str(exc)})
        out["delivery_error"] = f"recorded, but not sent to {case.device}: {exc}"
        return out
    out["delivered_to"] = case.device
    return out


@api.post("/offers/{offer_id}/accept")
async def accept_offer(offer_id: str, core: Core,
                       principal: Principal = Workers) -> dict[str, Any]:
    case = await core.answer_offer(principal.subject, offer_id, accept=True)
    return {"case": views.case_view(case, core), "packet": await full_packet(core, case.id)}


@api.post("/offers/{offer_id}/reject")
async def reject_offer(offer_id: str, core: Core, body: views.RejectOffer | None = None,
                       principal: Principal = Workers) -> dict[str, Any]:
    case = await core.answer_offer(principal.subject, offer_id, accept=False,
                                   reason=body.reason if body else None)
    return {"case_id": case.id, "status": "rejected"}


@api.post("/events")
async def append_event(request: Request, core: Core,
                       principal: Principal = require(Role.device)) -> Any:
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


@api.get("/workers")
async def list_workers(core: Core, principal: Authed) -> dict[str, Any]:
    if principal.role is Role.device:
        raise HTTPException(403, "devices may not list workers")
    out = []
    for w in core.cfg.workers.workers:
        if not principal.sees_everything and w.id != principal.subject:
            continue
        out.append(_worker_view(core, w))
    return {"workers": out}


@api.get("/kpis")
async def kpis(core: Core, principal: Principal = Staff,
               limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> dict[str, Any]:
    """Escalation rate, precision/recall against human verdicts, time to human, transfers,
    handbacks, repeat contacts, ratings — over the most recent ``limit`` cases."""
    cases = await core.store.list_cases(limit=limit)
    items = [(c, await core.store.case_events(c.id)) for c in cases]
    window = core.cfg.routing.preferred_worker.window_days
    return compute_kpis(items, repeat_window_days=window).model_dump(mode="json")


def _worker_view(core: RouterCore, w) -> dict[str, Any]:
    state = core.engine.pool.get(w.id)
    return {**w.model_dump(mode="json"), "presence": core.presence[w.id].value,
            "load": {c.value: n for c, n in state.load.items()} if state else {},
            "idle_since": state.idle_since if state else None}


@api.put("/workers/{worker_id}/presence")
async def set_presence(worker_id: str, body: views.PresenceIn, core: Core,
                       principal: Authed) -> dict[str, Any]:
    if not principal.sees_everything and principal.subject != worker_id:
        raise HTTPException(403, "you may set only your own presence")
    await core.set_presence(worker_id, Presence(body.presence),
                            f"set by {principal.subject}")
    w = next(w for w in core.cfg.workers.workers if w.id == worker_id)
    return _worker_view(core, w)


@api.get("/sites")
async def sites(core: Core, principal: Authed) -> dict[str, Any]:
    return {"sites": [s.model_dump(mode="json") for s in core.cfg.sites.sites]}


@api.get("/devices")
async def devices(core: Core, principal: Authed) -> dict[str, Any]:
    return {"devices": [{**d.model_dump(mode="json"), "site": s.id}
                        for s in core.cfg.sites.sites for d in s.devices]}


@api.get("/stats")
async def get_stats(core: Core, principal: Principal = Staff) -> dict[str, Any]:
    return stats(core)


@api.get("/audit")
async def audit_log(request: Request, principal: Principal = require(Role.admin),
                    action: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 200) -> dict[str, Any]:
    """Sensitive actions, newest first (router/audit.py): take, reassign, transfer,
    hand-back, close, a device's e-stop and its reset (estop, estop_reset), and a token's
    first use from a new address. Admins only."""
    return {"entries": request.app.state.audit.recent(limit, action)}


@api.get("/alerts")
async def alerts(core: Core, principal: Principal = Staff,
                 limit: Annotated[int, Query(ge=1, le=5000)] = 500,
                 kind: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
    """The newest alerts (of ``kind``), oldest first; each kind keeps its own recent ones."""
    return {"alerts": core.alerts.recent(limit, kind)}


@api.post("/alerts/{alert_id}/ack")
async def ack_alert(alert_id: str, core: Core, principal: Principal = Staff) -> dict[str, Any]:
    """A supervisor acknowledges a blocking alert (the emergency protocol)."""
    return {"alert": await core.ack_alert(alert_id, principal.subject)}


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
