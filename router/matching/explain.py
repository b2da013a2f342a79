"""Why a waiting case is not matched: per step of its workflow, the requirement that no
available person meets. Pure: the caller passes the pool's workers and an availability test.

A requirement is "met" by a worker who is available and has capacity on the case's channel
(``free``) and not excluded (they declined or missed this case). Each requirement is checked
on its own, so the answer names the one(s) nobody free meets; when each is met by someone but
never all by the same person, it says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from router.matching.targets import Resolved, resolve
from protocol.models import Requirement


def _requirements(t: Resolved) -> list[tuple[str, Callable[[Any], bool]]]:
    out: list[tuple[str, Callable[[Any], bool]]] = []
    if t.kinds is not None:
        kinds = sorted(t.kinds)
        out.append((f"kind: {' or '.join(k.replace('_', ' ') for k in kinds)}",
                     lambda w, k=frozenset(kinds): w.kind in k))
    if t.language is not None:
        out.append((f"speaks {t.language} at level {t.min_proficiency} or more",
                     lambda w, lang=t.language, lvl=t.min_proficiency:
                     w.languages.get(lang, 0) >= lvl))
    if t.site is not None:
        out.append((f"serves site {t.site}", lambda w, s=t.site: s in w.sites))
    for skill, level in t.skills:
        out.append((f"skill {skill} at level {level} or more",
                     lambda w, s=skill, lvl=level: w.skills.get(s, 0) >= lvl))
    return out


def explain(steps: Iterable, req: Requirement, workers: Iterable,
            free: Callable[[Any], bool], excluded: Iterable[str] = (),
            current_step: str | None = None) -> list[dict[str, Any]]:
    """One entry per workflow step: {step, current, matched (ids of free people meeting
    everything), requirements [{text, on_roster, free}], unmet [texts], summary}."""
    workers = list(workers)
    excluded = set(excluded)
    candidates = [w for w in workers if w.id not in excluded and free(w)]
    out = []
    for step in steps:
        t = resolve(step.target, req)
        reqs = _requirements(t)
        rows = [{"text": text, "on_roster": sum(1 for w in workers if ok(w)),
                 "free": sum(1 for w in candidates if ok(w))} for text, ok in reqs]
        matched = sorted(w.id for w in candidates if all(ok(w) for _, ok in reqs))
        unmet = [r["text"] for r in rows if r["free"] == 0]
        if matched:
            summary = f"{len(matched)} free: {', '.join(matched)}"
        elif not candidates:
            summary = (f"nobody is available with room for a {req.channel.value} case"
                       + (f" ({len(excluded)} declined or missed it)" if excluded else ""))
        elif unmet:
            summary = "no one free " + "; no one free ".join(
                f"is a {u[6:]}" if u.startswith("kind: ") else u for u in unmet)
        else:
            summary = ("each requirement is met by someone free, but no one free meets all: "
                       + ", ".join(r["text"] for r in rows))
        out.append({"step": step.name, "current": step.name == current_step,
                    "timeout_s": step.timeout_s, "matched": matched, "requirements": rows,
                    "unmet": unmet if not matched else [], "summary": summary})
    return out
