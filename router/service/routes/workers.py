"""Workers: the roster with presence and load; setting presence."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from protocol.models import Presence, Role
from router.service import views
from router.service.auth import Authed
from router.service.core import RouterCore
from router.service.routes.deps import Core

router = APIRouter()


def _worker_view(core: RouterCore, w) -> dict[str, Any]:
    return {**w.model_dump(mode="json"), "presence": core.presence_of(w.id).value,
            **core.worker_load(w.id)}


@router.get("/workers")
async def list_workers(core: Core, principal: Authed) -> dict[str, Any]:
    if principal.role is Role.device:
        raise HTTPException(403, "devices may not list workers")
    return {"workers": [_worker_view(core, w) for w in core.cfg.workers.workers
                        if principal.sees_everything or w.id == principal.subject]}


@router.put("/workers/{worker_id}/presence")
async def set_presence(worker_id: str, body: views.PresenceIn, core: Core,
                       principal: Authed) -> dict[str, Any]:
    if not principal.sees_everything and principal.subject != worker_id:
        raise HTTPException(403, "you may set only your own presence")
    await core.set_presence(worker_id, Presence(body.presence),
                            f"set by {principal.subject}")
    w = next(w for w in core.cfg.workers.workers if w.id == worker_id)
    return _worker_view(core, w)
