"""Bearer-token authentication, role checks and who may see what of a case.

Tokens come from config/tokens.yaml, overridden per entry by the environment variable named
in ``token_env`` (outside the demo only those: router/secrets.py). Browsers cannot set
headers on a WebSocket: they send the token in the socket's first message (router/service/
ws.py), never in the URL, which ends up in logs and browser history.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from protocol.models import Role
from router.casestate import Case
from router.config import BatonConfig

WORKER_ROLES = frozenset({Role.agent, Role.specialist, Role.remote_worker})
STAFF_ROLES = frozenset({Role.supervisor, Role.admin})
# Who may work cases at the desk: workers, and supervisors on the worker roster (workers.yaml,
# or a supervisor entry with languages in tokens.yaml: router/config.py adds them)
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
    """Tokens by their SHA-256 digest: one hash and one dict probe per request, whatever the
    number of tokens (a constant-time compare against every entry cost ~11 µs per request at
    62 tokens and grows with the roster). The probe's timing depends on the digest of what
    was sent, which tells nothing about a stored token; the final compare is constant-time."""

    def __init__(self, cfg: BatonConfig):
        self._by_digest = {_digest(token.encode()): (token.encode(), Principal(e.subject, e.role))
                           for token, e in cfg.resolved_tokens().items()}

    def lookup(self, token: str | None) -> Principal | None:
        if not token:
            return None
        raw = token.encode()
        entry = self._by_digest.get(_digest(raw))
        if entry is None or not hmac.compare_digest(entry[0], raw):
            return None
        return entry[1]


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


# Declares the scheme in OpenAPI; the header is parsed below for our own error bodies.
bearer_scheme = HTTPBearer(auto_error=False, description="A personal token (baton secrets "
                           "generate; config/tokens.yaml names the variables)")


async def principal_from_header(
        request: Request,
        _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = request.app.state.tokens.lookup(token.strip())
    if principal is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    audit = getattr(request.app.state, "audit", None)
    if audit is not None:
        audit.token_used(principal.subject, request.client.host if request.client else None,
                         "http")
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


class Access(IntEnum):
    none = 0
    preview = 1  # an offer: what the case is about, not what was said
    read = 2     # the packet and events, no changes (a previous holder's wrap-up)
    write = 3    # notes, messages, and the case's actions (owner checks apply on top)


_RELEASES = frozenset({"transferred", "handed_back", "closed"})


def access(principal: Principal, case: Case, now: float, wrapup_s: float) -> Access:
    """Pure: what ``principal`` may do with ``case`` at ``now``. The assignee and staff see
    all; a pending offer shows the preview; whoever passed the case on (transfer, hand-back,
    close) reads it for ``wrapup_s`` after; anyone else (who declined, never accepted, or
    whose wrap-up ended) nothing. A device sees its own cases."""
    if principal.sees_everything:
        return Access.write
    if principal.role is Role.device:
        return Access.write if case.device == principal.subject else Access.none
    if case.assigned_worker == principal.subject and not case.terminal:
        return Access.write  # a closed case keeps its last assignee: wrap-up below
    released = [h.at for h in case.handoffs
                if h.kind in _RELEASES and h.from_owner == principal.subject]
    if released and now - max(released) <= wrapup_s:
        return Access.read
    if case.pending_offer is not None and case.pending_offer.worker_id == principal.subject:
        return Access.preview
    return Access.none


def wrapup_s(cfg: BatonConfig) -> float:
    return cfg.tokens.access.wrapup_minutes * 60.0
