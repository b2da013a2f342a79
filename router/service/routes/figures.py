"""Figures for supervisors: live stats (from the core's memory) and the transition KPIs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from router.kpis import compute_kpis
from router.service.routes.deps import Core, Staff

router = APIRouter()


@router.get("/kpis")
async def kpis(core: Core, principal: Staff,
               limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> dict[str, Any]:
    """Escalation rate, precision/recall against human verdicts, time to human, transfers,
    handbacks, repeat contacts, ratings — over the most recent ``limit`` cases, read with
    their events in one query."""
    items = await core.store.recent_cases_with_events(limit)
    window = core.cfg.routing.preferred_worker.window_days
    return compute_kpis(items, repeat_window_days=window).model_dump(mode="json")


@router.get("/stats")
async def get_stats(core: Core, principal: Staff) -> dict[str, Any]:
    return core.stats()
