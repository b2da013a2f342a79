"""Bearer-token authentication and role checks.

Tokens come from config/tokens.yaml, overridden per entry by the environment variable named
in ``token_env``. Browsers cannot set headers on a WebSocket, so WebSockets may pass the
token as the ``token`` query parameter instead.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from router.casestate import Case
from router.config import BatonConfig
from router.models import Role

WORKER_ROLES = frozenset({Role.agent, Role.specialist, Role.remote_worker})
STAFF_ROLES = frozenset({Role.supervisor, Role.admin})
# Who may work cases at the desk: workers, and supervisors who are also on the worker roster
# (they take cases themselves: POST /v1/cases/{id}/take).
DESK_ROLES = WORKER_ROLES | {Role.supervisor}


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role

    @property
    def sees_everything(self) -> bool:
        return self.role in STAFF_ROLES


class TokenBook:
    def __init__(self, cfg: BatonConfig):
        self._entries = [(token.encode(), Principal(e.subject, e.role))
                         for token, e in cfg.resolved_tokens().items()]

    def lookup(self, token: str | None) -> Principal | None:
        if not token:
            return None
        raw = token.encode()
        found = None
        for candidate, principal in self._entries:  # constant-time compare per entry
            if hmac.compare_digest(candidate, raw):
                found = principal
        return found


async def principal_from_header(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = request.app.state.tokens.lookup(token.strip())
    if principal is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return principal


Authed = Annotated[Principal, Depends(principal_from_header)]


def require(*roles: Role):
    allowed = frozenset(roles)

    async def check(principal: Authed) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(403, f"role {principal.role.value!r} may not do this; allowed: "
                                f"{', '.join(sorted(r.value for r in allowed))}")
        return principal

    return Depends(check)


def can_see(principal: Principal, case: Case) -> bool:
    """A worker sees only cases offered or assigned to them (now or before); a device only
    its own; supervisors and admins see all."""
    if principal.sees_everything:
        return True
    if principal.role is Role.device:
        return case.device == principal.subject
    if case.assigned_worker == principal.subject:
        return True
    if case.pending_offer is not None and case.pending_offer.worker_id == principal.subject:
        return True
    return any(h.to_owner == principal.subject for h in case.handoffs)
