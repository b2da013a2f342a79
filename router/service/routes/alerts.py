"""Floor alerts: the recent ones, and a supervisor's acknowledgement."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from router.service.routes.deps import Core, Staff

router = APIRouter()


@router.get("/alerts")
async def alerts(core: Core, principal: Staff,
                 limit: Annotated[int, Query(ge=1, le=5000)] = 500,
                 kind: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
    """The newest alerts (of ``kind``), oldest first; each kind keeps its own recent ones."""
    return {"alerts": core.recent_alerts(limit, kind)}


@router.post("/alerts/{alert_id}/ack")
async def ack_alert(alert_id: str, core: Core, principal: Staff) -> dict[str, Any]:
    """A supervisor acknowledges a blocking alert (the emergency protocol)."""
    return {"alert": await core.ack_alert(alert_id, principal.subject)}
