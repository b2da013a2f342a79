"""Resolving a workflow step's target against a case, and testing workers against it."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.models import Channel, Requirement
from router.config import Target


@dataclass(frozen=True, slots=True)
class Resolved:
    """A target with every "case" reference replaced by the case's value.

    Hashable: cases with equal resolved targets share one queue (bucket).
    """

    channel: Channel
    kinds: frozenset[str] | None
    language: str | None
    min_proficiency: int
    site: str | None
    skills: tuple[tuple[str, int], ...]
    worker_id: str | None = None  # preferred-worker phase: only this worker


def resolve(target: Target, req: Requirement) -> Resolved:
    language = req.language if target.language == "case" else target.language
    if target.site == "case":
        site = req.surface.site if req.surface.kind == "telepresence" else None
    else:
        site = target.site
    if target.skills == "case":
        skills = {k: max(1, v - target.skill_level_slack) for k, v in req.skills.items()}
    else:
        skills = dict(target.skills or {})
    return Resolved(
        channel=req.channel,
        kinds=frozenset(k.value for k in target.kinds) if target.kinds else None,
        language=language,
        min_proficiency=target.min_proficiency,
        site=site,
        skills=tuple(sorted(skills.items())),
    )


def preferred(req: Requirement, worker_id: str) -> Resolved:
    return Resolved(channel=req.channel, kinds=None, language=req.language, min_proficiency=1,
                    site=None, skills=(), worker_id=worker_id)


def matches(w, t: Resolved) -> bool:
    """``w`` is a matching.workers.WorkerState; availability is checked elsewhere."""
    if t.worker_id is not None and w.id != t.worker_id:
        return False
    if t.kinds is not None and w.kind not in t.kinds:
        return False
    if t.language is not None and w.languages.get(t.language, 0) < t.min_proficiency:
        return False
    if t.site is not None and t.site not in w.sites:
        return False
    for skill, level in t.skills:
        if w.skills.get(skill, 0) < level:
            return False
    return True


def fit(w, t: Resolved) -> tuple[int, int]:
    """Higher is better: summed skill levels on the required skills, then proficiency."""
    return (sum(w.skills.get(s, 0) for s, _ in t.skills),
            w.languages.get(t.language, 0) if t.language else 0)
