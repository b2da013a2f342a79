"""Cases: open, escalate, a resident's turn, list and read (with the packet and events)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from protocol.models import CaseState, Role
from router.service import views
from router.service.auth import WORKER_ROLES, Access, Authed
from router.service.routes.deps import MAX_OFFSET, CaseCreator, Core, access_to, visible_case

router = APIRouter()


@router.post("/cases", status_code=201)
async def create_case(body: views.CreateCase, core: Core,
                      principal: CaseCreator) -> dict[str, Any]:
    if principal.role is Role.device and body.device != principal.subject:
        raise HTTPException(403, f"a device may only open cases for itself ({principal.subject})")
    case = await core.open_case(body)
    return views.case_view(case, core)


@router.post("/cases/{case_id}/escalate")
async def escalate_case(case_id: str, body: views.EscalateCase, core: Core,
                        principal: CaseCreator) -> dict[str, Any]:
    await visible_case(core, principal, case_id)
    case = await core.escalate(case_id, body)
    return views.case_view(case, core)


@router.post("/cases/{case_id}/turns")
async def resident_turn(case_id: str, body: views.ResidentTurn, request: Request, core: Core,
                        principal: CaseCreator) -> dict[str, Any]:
    """A resident's turn: the AI answers, or the case is handed to a person. The answer
    says which (``ai_silent``, ``handoff`` with a wait estimate)."""
    await visible_case(core, principal, case_id)
    # Partitioned (router/ha/): the partition's own; the single router: the app's.
    conversations = getattr(request.state, "conversations", None) \
        or request.app.state.conversations
    return await conversations.resident_turn(
        case_id, body.text, body.language, body.translated, untranslated=body.untranslated)


@router.get("/cases")
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
        return {"cases": [views.case_view(c, core) for c in found]}
    # Workers and devices: only their own cases, whatever the filters ask.
    found = await core.store.list_cases(states=states, site=site, resident=resident,
                                        worker=None, limit=500, offset=0)
    mine = [c for c in found if access_to(core, principal, c) >= Access.read]
    offered = []
    if principal.role in WORKER_ROLES:
        mine_ids = {m.id for m in mine}
        offered = [c for o in core.offers_of(principal.subject)
                   if o.case_id not in mine_ids
                   and (c := core.open_case_of(o.case_id)) is not None]
    items = [views.case_view(c, core) for c in mine]
    # An offer shows its preview only: the packet comes with the accept.
    items += [views.case_preview(c) for c in offered]
    return {"cases": items[offset:offset + limit]}


@router.get("/cases/{case_id}")
async def get_case(case_id: str, core: Core, principal: Authed) -> dict[str, Any]:
    case = await core.case(case_id)
    if case is not None and access_to(core, principal, case) is Access.preview:
        return {"case": views.case_preview(case), "packet": None,
                "access": "preview: accept the offer for the packet"}
    case = await visible_case(core, principal, case_id)
    return {"case": views.case_view(case, core), "packet": await core.packet(case_id)}


@router.get("/cases/{case_id}/events")
async def case_events(case_id: str, core: Core, principal: Authed) -> dict[str, Any]:
    await visible_case(core, principal, case_id)
    events = await core.store.case_events(case_id)
    return {"events": [e.model_dump(mode="json") for e in events]}
