"""router/matching/explain.py: the requirement nobody free meets, per workflow step."""

from __future__ import annotations

from router.config import load_config
from router.matching.explain import explain
from router.matching.workers import WorkerState
from protocol.models import Presence, Requirement
from tests.service.conftest import REPO


def _w(id_, kind, languages, skills=None, free=True):
    return WorkerState(id=id_, kind=kind, languages=languages, skills=skills or {},
                       sites=frozenset({"city-office"}), capacity={},
                       presence=Presence.available if free else Presence.offline)


def is_free(w):
    return w.presence is Presence.available


def _steps():
    return load_config(REPO / "config").routing.workflows["contact_center"].steps


def test_names_each_requirement_no_free_person_meets():
    req = Requirement.model_validate({"language": "ja", "skills": {"tax": 4},
                                      "channel": "chat", "workflow": "contact_center"})
    workers = [_w("lucas", "specialist", {"ja": 4}, {"tax": 5}, free=False),
               _w("ken", "agent", {"ja": 5}, {"tax": 2})]
    steps = explain(_steps(), req, workers, is_free)
    assert steps[0]["unmet"] == ["kind: specialist", "skill tax at level 4 or more"]
    row = next(r for r in steps[0]["requirements"] if r["text"].startswith("skill tax"))
    assert (row["on_roster"], row["free"]) == (1, 0)  # lucas has it but is not free
    assert steps[1]["matched"] == ["ken"]  # slack 2: tax 2 is enough
    assert steps[1]["unmet"] == []


def test_each_met_by_someone_but_never_all_by_one():
    req = Requirement.model_validate({"language": "zh", "skills": {"childcare": 3},
                                      "channel": "chat", "workflow": "contact_center"})
    workers = [_w("a", "specialist", {"zh": 5}), _w("b", "specialist", {"en": 5}, {"childcare": 5})]
    first = explain(_steps(), req, workers, lambda w: True)[0]
    assert first["matched"] == [] and first["unmet"] == []
    assert first["summary"].startswith("each requirement is met by someone free")


def test_nobody_free_and_declined():
    req = Requirement.model_validate({"language": "ja", "channel": "video",
                                      "workflow": "contact_center"})
    workers = [_w("ken", "agent", {"ja": 5})]
    first = explain(_steps(), req, workers, lambda w: True, excluded=["ken"])[0]
    assert first["summary"] == ("nobody is available with room for a video case "
                                "(1 declined or missed it)")
