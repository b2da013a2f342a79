"""KPIs from cases and events: escalation rate, precision/recall against verdicts, time to
human, transfers, handbacks, repeat contact, rating."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from protocol.models import CaseEvent
from router.casestate import fold
from router.kpis import compute_kpis

EVENT = TypeAdapter(CaseEvent)
DAY = 86400.0


class World:
    def __init__(self):
        self.seq = 0

    def ev(self, case_id, type_, payload, ts):
        self.seq += 1
        return EVENT.validate_python({"event_id": f"e{self.seq}", "case_id": case_id,
                                      "origin": "router", "seq": self.seq, "ts": ts,
                                      "type": type_, "payload": payload})

    def case(self, case_id, t, *, resident="r1", escalate=False, accept_after=None,
             transfer=False, handback=False, verdict=None, status="resolved", rating=None):
        e = [self.ev(case_id, "opened", {"site": "s", "language": "en", "resident": resident}, t)]
        kind = "escalate" if escalate else "continue_ai"
        e.append(self.ev(case_id, "decision", {"decision": {"decision": kind}}, t + 5))
        if escalate:
            req = {"language": "en"}
            e.append(self.ev(case_id, "queued", {"requirement": req}, t + 6))
            if accept_after is not None:
                offer = {"offer_id": "o1", "case_id": case_id, "worker_id": "w1",
                         "created_at": t + 6, "expires_at": t + 60, "step": "s"}
                e.append(self.ev(case_id, "offer", {"offer": offer}, t + 6))
                e.append(self.ev(case_id, "offer_result", {"offer_id": "o1", "worker_id": "w1",
                                                           "status": "accepted"},
                                 t + 5 + accept_after))
                if transfer:
                    e.append(self.ev(case_id, "transfer", {"from_worker": "w1",
                                                           "requirement": req}, t + 100))
                    offer2 = {**offer, "offer_id": "o2", "worker_id": "w2"}
                    e.append(self.ev(case_id, "offer", {"offer": offer2}, t + 101))
                    e.append(self.ev(case_id, "offer_result", {
                        "offer_id": "o2", "worker_id": "w2", "status": "accepted"}, t + 110))
                if handback:
                    who = "w2" if transfer else "w1"
                    e.append(self.ev(case_id, "handback", {"worker_id": who,
                                                           "reason": "routine_remaining"},
                                     t + 200))
        e.append(self.ev(case_id, "outcome", {"status": status, "ai_verdict": verdict}, t + 300))
        if rating:
            e.append(self.ev(case_id, "rating", {"score": rating}, t + 301))
        return fold(e), e


def test_kpis():
    w = World()
    cases = [
        w.case("c1", 0, escalate=True, accept_after=30, verdict="wrong", rating=5),   # TP
        w.case("c2", 10, resident="r2", escalate=True, accept_after=90, verdict="right",
               transfer=True, rating=3),                                            # FP
        w.case("c3", 20, resident="r3", verdict="wrong", rating=2),                 # FN
        w.case("c4", 40 * DAY, resident="r1"),                                      # r1 again, late
        w.case("c5", 5 * DAY, resident="r3", escalate=True, accept_after=10,
               handback=True, verdict="wrong"),                                     # TP, repeat
        w.case("c6", 30, resident="r4", status="abandoned"),
    ]
    k = compute_kpis(cases)
    assert k.cases == 6 and k.escalated == 3 and k.escalation_rate == pytest.approx(0.5, abs=1e-4)
    assert k.verdicts == 4 and k.false_escalations == 1 and k.missed_escalations == 1
    assert k.escalation_precision == pytest.approx(2 / 3, abs=1e-4)
    assert k.escalation_recall == pytest.approx(2 / 3, abs=1e-4)
    assert k.reached_human == 3
    assert k.time_to_human_mean_s == pytest.approx((30 + 90 + 10) / 3, abs=0.01)
    assert k.time_to_human_p50_s == 30 and k.time_to_human_p90_s == 90
    assert k.transfers_per_case == pytest.approx(1 / 3, abs=1e-4)
    assert k.handbacks == 1 and k.handback_rate == pytest.approx(1 / 3, abs=1e-4)
    assert k.abandoned == 1
    # r1: c1 then c4 40 days later (not a repeat); r3: c3 then c5 within 30 days (repeat)
    assert k.repeat_contact_rate == pytest.approx(1 / 6, abs=1e-4)
    assert k.ratings == 3 and k.rating_mean == pytest.approx(10 / 3, abs=1e-3)
    assert compute_kpis(cases, repeat_window_days=60).repeat_contact_rate == \
        pytest.approx(2 / 6, abs=1e-4)


def test_kpis_empty():
    k = compute_kpis([])
    assert k.cases == 0 and k.escalation_rate is None and k.rating_mean is None
