"""REST for the workspace pages (desk, remote worker page, floor monitor): the transfer
directory, the offer preview (the resident's words and why), dispositions and canned
responses, why a waiting case is not matched, assigning it, and trends. Thin: authenticate,
check the role, call the core or a pure module (router.matching.explain, router.trends)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from protocol.models import Presence, Role
from router.service import views
from router.service.auth import WORKER_ROLES, Authed, Principal, require
from router.service.routes.deps import Core
from router.service.routes.handoffs import transfer_requirement
from router.trends import trends
from common.config import ConfigError
from router.workspace_config import load_workspace

workspace_api = APIRouter(prefix="/v1")
Staff = require(Role.supervisor, Role.admin)
Desk = require(*WORKER_ROLES, Role.supervisor, Role.admin)
MAX_TREND_CASES = 5000
WORDS = 3  # the resident's last turns shown on an offer




class WarmTransferIn(views.TransferCase):
    timeout_s: float = Field(default=60.0, ge=10, le=600, description="How long to look "
                             "for the next person before the case stays with you.")


class ConsultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000)


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    worker_id: str = Field(min_length=1, max_length=80)
    note: str = Field(default="", max_length=4000)


@workspace_api.get("/workspace")
async def workspace(core: Core, principal: Principal = Desk) -> dict[str, Any]:
    """Dispositions and canned responses (config/workspace.yaml), and the routing numbers a
    desk explains to its user (offer timeout, misses before away, wrap-up window)."""
    try:
        ws = load_workspace(core.cfg.directory)
    except ConfigError as exc:
        raise HTTPException(503, str(exc)) from None
    r = core.cfg.routing
    return {**ws.model_dump(mode="json"), "offer_timeout_s": r.offer_timeout_s,
            "away_after_timeouts": r.away_after_timeouts,
            "wrapup_s": core.cfg.tokens.access.wrapup_minutes * 60.0,
            "wrapup_capacity_s": r.wrapup_capacity_s, "handback_limit": 1}


@workspace_api.get("/directory")
async def directory(core: Core, principal: Principal = Desk) -> dict[str, Any]:
    """People and queues to transfer to, with live availability, languages, skills, load,
    and how long each person has been in their presence state."""
    since = await core.store.worker_presence()
    people = []
    for w in core.cfg.workers.workers:
        presence = core.presence_of(w.id) or Presence.offline
        load = {c: n for c, n in core.worker_load(w.id)["load"].items() if n}
        avail = core.availability(w.id)
        people.append({
            "id": w.id, "name": w.name, "kind": w.kind.value, "languages": w.languages,
            "skills": w.skills, "sites": w.sites, "presence": presence.value,
            "state": "wrap-up" if presence is Presence.available and avail["wrapping_up"]
            else "busy" if presence is Presence.available and load else presence.value,
            "since": since.get(w.id, (None, None))[1], "load": load,
            "idle_since": core.worker_load(w.id)["idle_since"],
            "can_take": avail["can_take"]})
    waiting = core.waiting_by_queue()
    queues = [{"id": name, "steps": [s.name for s in wf.steps], "waiting": waiting.get(name, 0)}
              for name, wf in core.cfg.routing.workflows.items()]
    return {"at": core.clock.now(), "people": people, "queues": queues}


@workspace_api.post("/cases/{case_id}/warm-transfer")
async def warm_transfer(case_id: str, body: WarmTransferIn, core: Core, request: Request,
                        principal: Principal = require(*WORKER_ROLES, Role.supervisor)
                        ) -> dict[str, Any]:
    """Warm transfer (router/service/core/warm.py): you keep the resident — video, chat — until
    the next person accepts; if nobody does within ``timeout_s`` the case stays with you and
    the reason comes back (WebSocket ``transfer`` message, and a note on the case)."""
    case = await core.case(case_id)
    if case is None or case.assigned_worker != principal.subject:
        raise HTTPException(404 if case is None else 403,
                            f"case {case_id!r} is not connected to you")
    requirement = transfer_requirement(core, case, body)
    out = await core.warm_transfer(case_id, principal.subject, requirement, body.note,
                                   body.to_worker, body.timeout_s)
    request.app.state.audit.record("transfer", principal.subject, case_id=case_id,
                                   address=request.client.host if request.client else None,
                                   role=principal.role.value, to_worker=body.to_worker,
                                   warm=True)
    return out


@workspace_api.delete("/cases/{case_id}/warm-transfer")
async def cancel_warm_transfer(case_id: str, core: Core,
                               principal: Principal = require(*WORKER_ROLES, Role.supervisor)
                               ) -> dict[str, Any]:
    case = await core.case(case_id)
    if case is None or (case.assigned_worker != principal.subject
                        and not principal.sees_everything):
        raise HTTPException(404, f"case {case_id!r} is not connected to you")
    if not await core.cancel_warm_transfer(case_id, f"cancelled by {principal.subject}"):
        raise HTTPException(409, f"no warm transfer of case {case_id!r} is pending")
    return {"case_id": case_id, "status": "cancelled"}


@workspace_api.post("/cases/{case_id}/consult")
async def consult(case_id: str, body: ConsultIn, core: Core,
                  principal: Principal = require(*WORKER_ROLES, Role.supervisor)
                  ) -> dict[str, Any]:
    """Write to the other worker of a warm transfer (while it is offered to them or names
    them, and after they accepted): a ``consult`` WebSocket message on both desks; it never
    reaches the resident's device."""
    text = body.text.strip()
    if not text:
        raise HTTPException(422, "the consult message is empty: write what you want to ask")
    return await core.consult(case_id, principal.subject, text)


@workspace_api.post("/cases/{case_id}/wrapup/done")
async def wrapup_done(case_id: str, core: Core,
                      principal: Principal = require(*WORKER_ROLES, Role.supervisor)
                      ) -> dict[str, Any]:
    """End the wrap-up of a case you closed: your capacity comes back at once."""
    if not await core.end_wrapup(case_id, principal.subject):
        raise HTTPException(409, f"no wrap-up of case {case_id!r} is running for you (it "
                            "ended by itself, or someone else closed the case)")
    return {"case_id": case_id, "wrapup": "done"}


@workspace_api.get("/offers/{offer_id}/preview")
async def offer_preview(offer_id: str, core: Core,
                        principal: Principal = require(*WORKER_ROLES, Role.supervisor)
                        ) -> dict[str, Any]:
    """What the person offered a case reads before accepting: the resident's last words
    (original and translation) and why the case came to a person."""
    offer = core.offer(offer_id)
    if offer is None or offer.worker_id != principal.subject:
        raise HTTPException(404, f"no pending offer {offer_id!r} for you (it expired, was "
                            "withdrawn or answered)")
    case_id = core.warm.real_id(offer.case_id)
    packet = await core.packet(case_id)
    said = [t for t in packet["transcript"] if t.get("speaker") == "resident"][-WORDS:]
    esc = packet.get("escalation") or {}
    reasons = (esc.get("decision") or {}).get("reasons", []) if esc else []
    handoffs = packet.get("handoffs") or []
    return {"offer_id": offer_id, "case_id": case_id, "summary": packet.get("summary"),
            "words": [{"text": t.get("text"), "language": t.get("language"),
                       "translated": t.get("translated"),
                       "translated_language": t.get("translated_language")} for t in said],
            "reasons": reasons, "flags": packet.get("policy_flags", []),
            "last_handoff": handoffs[-1] if handoffs else None}


@workspace_api.get("/cases/{case_id}/why-not")
async def why_not(case_id: str, core: Core, principal: Principal = Staff) -> dict[str, Any]:
    """Per step of the case's workflow, who could take it now, or the requirement that no
    available person meets."""
    case = await core.case(case_id)
    if case is None:
        raise HTTPException(404, f"no case {case_id!r}")
    if case.requirement is None:
        raise HTTPException(409, f"case {case_id!r} was never routed")
    steps = core.why_not(case)
    return {"case_id": case_id, "state": case.state.value,
            "workflow": case.requirement.workflow or "default",
            "requirement": case.requirement.model_dump(mode="json"),
            "excluded": case.excluded_workers, "steps": steps}


@workspace_api.post("/cases/{case_id}/assign")
async def assign(case_id: str, body: AssignIn, core: Core, request: Request,
                 principal: Principal = Staff) -> dict[str, Any]:
    """Assign a waiting case to a chosen person: connected to them at once."""
    case = await core.assign(case_id, body.worker_id, principal.subject, body.note)
    request.app.state.audit.record("assign", principal.subject, case_id=case_id,
                                   address=request.client.host if request.client else None,
                                   role=principal.role.value, to_worker=body.worker_id)
    return views.case_view(case, core)


@workspace_api.get("/trends")
async def get_trends(core: Core, principal: Principal = Staff,
                     hours: Annotated[float, Query(gt=0, le=48)] = 3.0,
                     bucket_s: Annotated[float, Query(ge=60, le=3600)] = 600.0,
                     site: Annotated[str | None, Query(max_length=64)] = None,
                     queue: Annotated[str | None, Query(max_length=64)] = None
                     ) -> dict[str, Any]:
    """Waiting, service level, ASA, escalation rate/precision/recall per time bucket over
    the last ``hours``, from the store's cases and events (router/trends.py)."""
    now = core.clock.now()
    since = now - hours * 3600
    # One query for the cases and their events (not one events query per case).
    items = [(c, events) for c, events
             in await core.store.recent_cases_with_events(MAX_TREND_CASES)
             if c.updated_at >= since or not c.terminal]
    try:
        return trends(items, now=now, hours=hours, bucket_s=bucket_s,
                      service_level_s=core.cfg.routing.service_level_s, site=site,
                      queue=queue)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
