"""What people do with a case: close, transfer, take, hand back, note, write to the resident."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError

from protocol.models import TERMINAL_STATES, Requirement, Role
from router.casestate import Case
from router.mqtt.bridge import BridgeError
from router.service import views
from router.service.auth import Access, Authed
from router.service.core import RouterCore
from router.service.routes.deps import (Audit, Bridge, Core, Supervisor, Worker, owner_or_staff,
                                        visible_case)
from router.store.errors import StoreError

router = APIRouter()
log = logging.getLogger("baton.api")
CHAT_COMMAND = "chat.say"  # edge/chat.py runs it
CHAT_TTL_S = 600.0  # a message the resident did not see within 10 min is not shown late


def transfer_requirement(core: RouterCore, case: Case, body: views.TransferCase) -> Requirement:
    """The requirement a transfer (cold or warm) searches with: the case's own, with what the
    sender changed. Errors are the web's: unknown person 404, never routed 409, invalid 422."""
    if body.to_worker is not None and core.presence_of(body.to_worker) is None:
        raise HTTPException(404, f"unknown worker {body.to_worker!r}")
    old = case.requirement
    if old is None:
        raise HTTPException(409, f"case {case.id!r} was never routed")
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
    return requirement


@router.post("/cases/{case_id}/close")
async def close_case(case_id: str, body: views.CloseCase, core: Core, audit: Audit,
                     principal: Authed) -> dict[str, Any]:
    case = await visible_case(core, principal, case_id)
    if case.state in TERMINAL_STATES:
        raise HTTPException(409, f"case {case_id!r} is already {case.state.value}")
    if principal.role is not Role.device:
        owner_or_staff(principal, case)
    elif body.status != "abandoned":
        raise HTTPException(403, "a device may only close a case as abandoned (resident left)")
    case = await core.close(case_id, principal.subject, body.status, body.code, body.note,
                            body.ai_verdict)
    audit("close", principal, case_id, status=body.status)
    return views.case_view(case, core)


@router.post("/cases/{case_id}/transfer")
async def transfer_case(case_id: str, body: views.TransferCase, core: Core, audit: Audit,
                        principal: Worker) -> dict[str, Any]:
    case = await visible_case(core, principal, case_id)
    owner_or_staff(principal, case)
    requirement = transfer_requirement(core, case, body)
    holder = case.assigned_worker
    case = await core.transfer(case_id, case.assigned_worker or principal.subject, requirement,
                               body.note, body.to_worker)
    # A supervisor moving someone else's case is a reassignment.
    action = "reassign" if principal.sees_everything and holder != principal.subject \
        else "transfer"
    audit(action, principal, case_id, from_worker=holder, to_worker=body.to_worker)
    return views.case_view(case, core)


@router.post("/cases/{case_id}/take")
async def take_case(case_id: str, core: Core, audit: Audit, principal: Supervisor,
                    body: views.TakeCase | None = None) -> dict[str, Any]:
    """A supervisor takes a connected case themselves: a warm transfer to their own worker
    id, accepted at once. They must be on the worker roster (config/workers.yaml, or a supervisor with languages
    in config/tokens.yaml) and
    available on their desk (/desk), where they then work the case."""
    holder = (await visible_case(core, principal, case_id)).assigned_worker
    case = await core.take(case_id, principal.subject, body.note if body else "")
    audit("take", principal, case_id, from_worker=holder)
    return views.case_view(case, core)


@router.post("/cases/{case_id}/handback")
async def handback(case_id: str, body: views.Handback, core: Core, audit: Audit,
                   principal: Worker) -> dict[str, Any]:
    case = await visible_case(core, principal, case_id)
    owner_or_staff(principal, case)
    case = await core.handback(case_id, case.assigned_worker or principal.subject,
                               body.reason, body.note)
    audit("handback", principal, case_id)
    return views.case_view(case, core)


@router.post("/cases/{case_id}/notes", status_code=201)
async def add_note(case_id: str, body: views.NoteIn, core: Core,
                   principal: Authed) -> dict[str, Any]:
    if principal.role is Role.device:
        raise HTTPException(403, "devices add turns as events, not notes")
    await visible_case(core, principal, case_id, Access.write)
    case = await core.add_note(case_id, principal.subject, body.text)
    return views.case_view(case, core)


@router.post("/cases/{case_id}/messages", status_code=201)
async def send_message(case_id: str, body: views.MessageIn, core: Core, bridge: Bridge,
                       principal: Authed) -> dict[str, Any]:
    """The connected worker writes to the resident: recorded as a human turn and, when the
    case has a device and the MQTT bridge runs, sent to the device as ``chat.say``; the
    device translates it, shows it and reports the translation (docs/protocol.md §5)."""
    await visible_case(core, principal, case_id, Access.write)
    event, case = await core.human_message(case_id, principal.subject, body.text,
                                           body.language)
    out: dict[str, Any] = {"event_id": event.event_id, "delivered_to": None}
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
