"""The audit log of sensitive actions (admins only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from router.service.routes.deps import Admin

router = APIRouter()


@router.get("/audit")
async def audit_log(request: Request, principal: Admin, action: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 200) -> dict[str, Any]:
    """Sensitive actions, newest first (router/audit.py): take, reassign, transfer,
    hand-back, close, a device's e-stop and its reset (estop, estop_reset), and a token's
    first use from a new address. Admins only."""
    return {"entries": request.app.state.audit.recent(limit, action)}
