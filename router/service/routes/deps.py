"""What the REST route modules share: the core, the callers' roles, the case they may see,
the audit trail — as ``Annotated`` dependencies. HTTP errors are raised here and in the
route modules only (the web edge); the core raises reason codes (router/service/http_errors.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from protocol.models import Role
from router.casestate import Case
from router.service.auth import WORKER_ROLES, Access, Principal, access, require, wrapup_s
from router.service.core import RouterCore

MAX_OFFSET = 1_000_000  # every integer query parameter has bounds (no 500 on 2**63)


async def core_of(request: Request) -> RouterCore:
    # Partitioned mode (router/ha/web.py) puts the partition's core on the request.
    core = getattr(request.state, "core", None) or request.app.state.core
    if core is None:
        raise HTTPException(421, "this router runs partitions: use /p/<partition>/v1/...")
    return core


Core = Annotated[RouterCore, Depends(core_of)]
Staff = Annotated[Principal, require(Role.supervisor, Role.admin)]
CaseCreator = Annotated[Principal, require(Role.device, Role.supervisor, Role.admin)]
Worker = Annotated[Principal, require(*WORKER_ROLES, Role.supervisor)]
Supervisor = Annotated[Principal, require(Role.supervisor)]
Admin = Annotated[Principal, require(Role.admin)]
Device = Annotated[Principal, require(Role.device)]


async def bridge_of(request: Request):
    """The MQTT bridge (router.mqtt.bridge.Bridge), or None when none runs. Partitioned
    mode (router/ha/web.py) puts the partition's bridge on the request."""
    return getattr(request.state, "bridge", None) or getattr(request.app.state, "bridge", None)


Bridge = Annotated[Any, Depends(bridge_of)]


class CaseAudit:
    """Records a sensitive action on a case with the caller's address (router/audit.py)."""

    def __init__(self, request: Request):
        self._log = request.app.state.audit
        self._address = request.client.host if request.client else None

    def __call__(self, action: str, principal: Principal, case_id: str, **detail: Any) -> None:
        self._log.record(action, principal.subject, case_id=case_id, address=self._address,
                         role=principal.role.value, **detail)


async def case_audit(request: Request) -> CaseAudit:
    # An async factory: FastAPI runs a plain class (or any sync callable) dependency in its
    # thread pool, one thread hop per request (~1 ms of CPU on the close path).
    return CaseAudit(request)


Audit = Annotated[CaseAudit, Depends(case_audit)]


def access_to(core: RouterCore, principal: Principal, case: Case) -> Access:
    return access(principal, case, core.clock.now(), wrapup_s(core.cfg))


async def visible_case(core: RouterCore, principal: Principal, case_id: str,
                       need: Access = Access.read) -> Case:
    case = await core.case(case_id)
    level = Access.none if case is None else access_to(core, principal, case)
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


def owner_or_staff(principal: Principal, case: Case) -> None:
    if principal.sees_everything or case.assigned_worker == principal.subject:
        return
    raise HTTPException(403, f"case {case.id!r} is not assigned to you")
