"""The REST API under /v1: one small module per resource, sharing deps.py's ``Annotated``
dependencies. Thin: authenticate, check the role and visibility, call the core."""

from fastapi import APIRouter

from router.service.routes import (alerts, audit, cases, device_events, directory, figures,
                                   handoffs, offers, workers)

api = APIRouter(prefix="/v1")
for module in (directory, cases, handoffs, offers, device_events, workers, figures, audit,
               alerts):
    api.include_router(module.router)

__all__ = ["api"]
