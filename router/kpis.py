"""Transition KPIs from cases and their events. Pure: the caller reads the store.

- escalation rate: cases escalated (an escalate/assist decision, or queued for a person)
- precision / recall of escalations against the humans' verdicts: an escalation is right when
  the verdict says the AI was wrong. precision = escalated & AI wrong / escalated with a
  verdict; recall = escalated & AI wrong / AI wrong (cases with a verdict only)
- time to human: escalation (or queueing) to the first accepted offer
- transfers per case and handbacks, over cases a person accepted
- repeat contact: the same pseudonymous resident opening another case within the window
- post-contact rating: mean of the ratings
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict

from router.casestate import Case


class Kpis(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cases: int
    escalated: int
    escalation_rate: float | None
    verdicts: int
    escalation_precision: float | None
    escalation_recall: float | None
    false_escalations: int          # escalated, and the verdict says the AI was right
    missed_escalations: int         # not escalated, and the verdict says the AI was wrong
    reached_human: int
    time_to_human_mean_s: float | None
    time_to_human_p50_s: float | None
    time_to_human_p90_s: float | None
    transfers_per_case: float | None
    handbacks: int
    handback_rate: float | None
    abandoned: int
    repeat_contact_rate: float | None
    repeat_window_days: float
    ratings: int
    rating_mean: float | None


def compute_kpis(cases: Iterable[tuple[Case, Sequence]], *,
                 repeat_window_days: float = 30.0) -> Kpis:
    items = list(cases)
    escalated = tp = fp = fn = verdicts = reached = handbacks = abandoned = 0
    waits: list[float] = []
    transfers: list[int] = []
    ratings: list[int] = []
    by_resident: dict[str, list[float]] = {}
    for case, events in items:
        esc_at: float | None = None
        accepted_at: float | None = None
        verdict = None
        for ev in events:
            t = ev.type
            if esc_at is None and (t == "queued" or (
                    t == "decision" and ev.payload.decision.decision in ("escalate", "assist"))):
                esc_at = ev.ts
            elif t == "offer_result" and accepted_at is None \
                    and ev.payload.status == "accepted":
                accepted_at = ev.ts
            elif t == "outcome":
                verdict = ev.payload.ai_verdict
            elif t == "rating":
                ratings.append(ev.payload.score)
        was_escalated = esc_at is not None
        escalated += was_escalated
        if verdict is not None:
            verdicts += 1
            ai_wrong = verdict == "wrong"
            tp += was_escalated and ai_wrong
            fp += was_escalated and not ai_wrong
            fn += (not was_escalated) and ai_wrong
        if accepted_at is not None:
            reached += 1
            transfers.append(case.transfers)
            handbacks += case.handbacks > 0
            if esc_at is not None:
                waits.append(max(0.0, accepted_at - esc_at))
        abandoned += case.state.value == "abandoned"
        if case.resident:
            by_resident.setdefault(case.resident, []).append(case.created_at)
    window = repeat_window_days * 86400.0
    repeats = 0
    with_resident = 0
    for times in by_resident.values():
        times.sort()
        for i, t in enumerate(times):
            with_resident += 1
            repeats += i + 1 < len(times) and times[i + 1] - t <= window
    waits.sort()
    n = len(items)
    return Kpis(
        cases=n, escalated=escalated, escalation_rate=_ratio(escalated, n), verdicts=verdicts,
        escalation_precision=_ratio(tp, tp + fp), escalation_recall=_ratio(tp, tp + fn),
        false_escalations=fp, missed_escalations=fn, reached_human=reached,
        time_to_human_mean_s=round(sum(waits) / len(waits), 2) if waits else None,
        time_to_human_p50_s=_pct(waits, 50), time_to_human_p90_s=_pct(waits, 90),
        transfers_per_case=round(sum(transfers) / len(transfers), 4) if transfers else None,
        handbacks=handbacks, handback_rate=_ratio(handbacks, reached), abandoned=abandoned,
        repeat_contact_rate=_ratio(repeats, with_resident),
        repeat_window_days=repeat_window_days, ratings=len(ratings),
        rating_mean=round(sum(ratings) / len(ratings), 3) if ratings else None)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = max(0, math.ceil(q / 100 * len(sorted_values)) - 1)
    return round(sorted_values[k], 2)
