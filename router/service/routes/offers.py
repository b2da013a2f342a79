"""Offers: a worker accepts (and gets the packet) or rejects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from router.service import views
from router.service.routes.deps import Core, Worker

router = APIRouter()


@router.post("/offers/{offer_id}/accept")
async def accept_offer(offer_id: str, core: Core, principal: Worker) -> dict[str, Any]:
    case = await core.accept_offer(principal.subject, offer_id)
    return {"case": views.case_view(case, core), "packet": await core.packet(case.id)}


@router.post("/offers/{offer_id}/reject")
async def reject_offer(offer_id: str, core: Core, principal: Worker,
                       body: views.RejectOffer | None = None) -> dict[str, Any]:
    case = await core.reject_offer(principal.subject, offer_id,
                                   reason=body.reason if body else None)
    return {"case_id": case.id, "status": "rejected"}
