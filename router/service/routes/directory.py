"""Who am I, and the configured sites and devices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from router.service.auth import Authed
from router.service.routes.deps import Core

router = APIRouter()


@router.get("/me")
async def me(principal: Authed) -> dict[str, str]:
    return {"subject": principal.subject, "role": principal.role.value}


@router.get("/sites")
async def sites(core: Core, principal: Authed) -> dict[str, Any]:
    return {"sites": [s.model_dump(mode="json") for s in core.cfg.sites.sites]}


@router.get("/devices")
async def devices(core: Core, principal: Authed) -> dict[str, Any]:
    return {"devices": [{**d.model_dump(mode="json"), "site": s.id}
                        for s in core.cfg.sites.sites for d in s.devices]}
