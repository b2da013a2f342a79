"""The matching engine, pure: RoutingFile and Worker objects built here, ``now`` passed in.

Each test pins one rule of routing (workflow widening, queue order, selection, capacity,
offers, preferred worker, restore, waits, presence). The last tests drive the engine with
random operations and check it against a brute-force oracle.
"""

from __future__ import annotations

import itertools
import random

import pytest

from protocol.models import (
    Channel,
    Offer,
    OfferStatus,
    Presence,
    Requirement,
    Surface,
    Worker,
    WorkerKind,
)
from router.config import RoutingFile
from router.matching.engine import (
    EngineError,
    MatchingEngine,
    OfferExpired,
    OfferMade,
    StepChanged,
    WaitExceeded,
    WorkerAway,
)
from router.matching.targets import fit, matches, resolve

# --- builders ----------------------------------------------------------------------------


def routing(**over) -> RoutingFile:
    """The shape of config/routing.yaml, fixed here so the tests do not follow edits to it."""
    data = {
        "offer_timeout_s": 20,
        "away_after_timeouts": 2,
        "max_wait_s": 900,
        "preferred_worker": {"window_days": 30, "fallback_s": 20},
        "channels": {
            "video": {"default_capacity": 1, "alongside": []},
            "voice": {"default_capacity": 1, "alongside": ["chat"]},
            "chat": {"default_capacity": 2, "alongside": ["voice"]},
        },
        "default_workflow": "contact_center",
        "channel_workflows": {"video": "telepresence"},
        "workflows": {
            "telepresence": {"steps": [
                {"name": "native_remote_at_site", "timeout_s": 30, "target": {
                    "kinds": ["remote_worker"], "language": "case", "min_proficiency": 4,
                    "site": "case", "skills": "case"}},
                {"name": "remote_with_language", "timeout_s": 60, "target": {
                    "kinds": ["remote_worker", "specialist"], "language": "case",
                    "min_proficiency": 3, "skills": "case", "skill_level_slack": 1}},
                {"name": "any_with_live_translation", "target": {
                    "kinds": ["remote_worker", "agent", "specialist"], "language": None,
                    "skills": None}},
            ]},
            "contact_center": {"steps": [
                {"name": "specialist_in_language", "timeout_s": 45, "target": {
                    "kinds": ["specialist"], "language": "case", "min_proficiency": 3,
                    "skills": "case"}},
                {"name": "agent_in_language", "timeout_s": 60, "target": {
                    "kinds": ["agent", "specialist"], "language": "case", "min_proficiency": 3,
                    "skills": "case", "skill_level_slack": 2}},
                {"name": "any_agent_with_live_translation", "target": {
                    "kinds": ["agent", "specialist"], "language": None, "skills": None}},
            ]},
            # One unbounded step: no widening, for the tests about order and selection.
            "single": {"steps": [
                {"name": "anyone_in_language", "target": {
                    "kinds": ["agent", "specialist", "remote_worker"], "language": "case",
                    "min_proficiency": 1, "skills": "case"}},
            ]},
        },
    }
    data.update(over)
    return RoutingFile.model_validate(data)


def worker(wid: str, kind: str = "agent", languages: dict | None = None,
           skills: dict | None = None, sites: list | None = None,
           capacity: dict | None = None) -> Worker:
    return Worker(id=wid, kind=WorkerKind(kind), languages=languages or {"ja": 5},
                  skills=skills if skills is not None else {"general": 3},
                  sites=sites or [], capacity=capacity or {})


def req(language: str = "ja", channel: Channel = Channel.chat, skills: dict | None = None,
        priority: int = 0, workflow: str | None = None, site: str | None = None) -> Requirement:
    surface = Surface(kind="telepresence", site=site) if site else Surface()
    return Requirement(language=language, channel=channel,
                       skills=skills if skills is not None else {"general": 2},
                       priority=priority, workflow=workflow, surface=surface)


def make_engine(workers: list[Worker], cfg: RoutingFile | None = None, *, now: float = 0.0,
                available: bool = True) -> MatchingEngine:
    ids = itertools.count(1)
    eng = MatchingEngine(cfg or routing(), workers, now=now, new_id=lambda: f"o{next(ids)}")
    if available:
        for w in workers:
            assert eng.set_presence(w.id, Presence.available, now) == []
    return eng


def made(effects) -> list[Offer]:
    return [e.offer for e in effects if isinstance(e, OfferMade)]


def offered(effects) -> list[tuple[str, str]]:
    """(case, worker) of every offer made, in order."""
    return [(o.case_id, o.worker_id) for o in made(effects)]


def offer_for(eng: MatchingEngine, case_id: str) -> Offer:
    found = [o for o, _ in eng.offers.values() if o.case_id == case_id]
    assert len(found) == 1, f"{case_id} holds {len(found)} offers"
    return found[0]


def load(eng: MatchingEngine, wid: str, channel: Channel) -> int:
    return eng.pool.get(wid).load.get(channel, 0)


# --- workflows: ordered steps that widen on timeout --------------------------------------


def test_step_one_only_until_its_timeout_then_the_next_step_is_offered():
    eng = make_engine([worker("agent-1", "agent", {"ja": 5}, {"general": 4})])
    effects = eng.enqueue("c1", req(), queued_at=0.0, now=0.0)
    assert made(effects) == []  # step 1 wants a specialist
    assert eng.cases["c1"].step_name == "specialist_in_language"
    assert eng.tick(44.9) == []
    effects = eng.tick(45.0)
    assert StepChanged("c1", "agent_in_language") in effects
    assert offered(effects) == [("c1", "agent-1")]
    assert offer_for(eng, "c1").step == "agent_in_language"


def test_last_step_has_no_timeout_and_takes_anyone_with_translation():
    eng = make_engine([worker("en-agent", "agent", {"en": 5}, {})])
    eng.enqueue("c1", req("ja"), queued_at=0.0, now=0.0)
    assert made(eng.tick(45.0)) == []  # step 2 still needs Japanese
    effects = eng.tick(105.0)
    assert StepChanged("c1", "any_agent_with_live_translation") in effects
    assert offered(effects) == [("c1", "en-agent")]
    eng.offer_result(offer_for(eng, "c1").offer_id, OfferStatus.rejected, 106.0)
    # The last step never times out: the case stays there (only the max-wait timer remains).
    assert eng.cases["c1"].step_name == "any_agent_with_live_translation"
    assert not [e for e in eng.tick(800.0) if isinstance(e, StepChanged)]
    assert eng.cases["c1"].step_name == "any_agent_with_live_translation"


def test_restored_case_starts_at_the_step_its_age_gives():
    eng = make_engine([worker("agent-1", "agent")])
    effects = eng.enqueue("c1", req(), queued_at=0.0, now=50.0)  # step 1 ended at 45
    assert offered(effects) == [("c1", "agent-1")]
    assert offer_for(eng, "c1").step == "agent_in_language"


def test_widening_into_a_bucket_keeps_the_cases_already_waiting_there():
    one = {Channel.chat: 1}
    eng = make_engine([worker("a1", "agent", capacity=one), worker("a2", "agent", capacity=one)],
                      available=False)
    eng.enqueue("older", req(), queued_at=-50.0, now=0.0)  # already on step 2
    eng.enqueue("newer", req(), queued_at=0.0, now=0.0)  # step 1
    assert eng.tick(45.0) == [StepChanged("newer", "agent_in_language")]
    # Both now wait on the same step with the same target: a worker gets the older first,
    # the next worker the newer one.
    assert offered(eng.set_presence("a1", Presence.available, 46.0)) == [("older", "a1")]
    assert offered(eng.set_presence("a2", Presence.available, 47.0)) == [("newer", "a2")]


# --- queue order and selection -----------------------------------------------------------


def test_queue_order_is_priority_then_age():
    eng = make_engine([worker("a1", capacity={Channel.chat: 1})], available=False)
    eng.enqueue("old", req(workflow="single"), queued_at=0.0, now=0.0)
    eng.enqueue("new", req(workflow="single"), queued_at=1.0, now=1.0)
    eng.enqueue("urgent", req(workflow="single", priority=50), queued_at=2.0, now=2.0)
    eng.enqueue("newest", req(workflow="single"), queued_at=3.0, now=3.0)
    assert offered(eng.set_presence("a1", Presence.available, 10.0)) == [("urgent", "a1")]
    order = []
    for t in range(11, 15):
        case = next(o.case_id for o, _ in eng.offers.values())
        order.append(case)
        eng.offer_result(offer_for(eng, case).offer_id, OfferStatus.accepted, t)
        eng.release(case, t + 0.5)
    assert order == ["urgent", "old", "new", "newest"]


def test_queue_order_spans_buckets_a_worker_can_serve():
    # Different targets (skills), same worker can serve both: the older case comes first.
    eng = make_engine([worker("a1", skills={"general": 5, "tax": 5},
                              capacity={Channel.chat: 1})], available=False)
    eng.enqueue("tax", req(workflow="single", skills={"tax": 3}), queued_at=0.0, now=0.0)
    eng.enqueue("general", req(workflow="single"), queued_at=1.0, now=1.0)
    eng.enqueue("vip", req(workflow="single", skills={"tax": 1}, priority=5),
                queued_at=2.0, now=2.0)
    assert offered(eng.set_presence("a1", Presence.available, 3.0)) == [("vip", "a1")]
    eng.offer_result(offer_for(eng, "vip").offer_id, OfferStatus.accepted, 4.0)
    assert offered(eng.release("vip", 5.0)) == [("tax", "a1")]


def test_selection_prefers_skill_fit_over_longest_idle():
    eng = make_engine([worker("idle-long", skills={"general": 3})], now=0.0)
    eng.upsert_worker(worker("expert", skills={"general": 5}), 10.0)
    eng.set_presence("expert", Presence.available, 10.0)
    effects = eng.enqueue("c1", req(workflow="single"), queued_at=20.0, now=20.0)
    assert offered(effects) == [("c1", "expert")]


def test_selection_prefers_language_proficiency_over_longest_idle():
    eng = make_engine([worker("idle-long", languages={"ja": 3})], now=0.0)
    eng.upsert_worker(worker("native", languages={"ja": 5}), 10.0)
    eng.set_presence("native", Presence.available, 10.0)
    effects = eng.enqueue("c1", req(workflow="single"), queued_at=20.0, now=20.0)
    assert offered(effects) == [("c1", "native")]


def test_skill_fit_outranks_language_proficiency():
    eng = make_engine([worker("fluent", languages={"ja": 5}, skills={"general": 2}),
                       worker("skilled", languages={"ja": 3}, skills={"general": 5})])
    assert offered(eng.enqueue("c1", req(workflow="single"), queued_at=1.0, now=1.0)) \
        == [("c1", "skilled")]


def test_equal_fit_goes_to_the_longest_idle():
    eng = make_engine([worker("w1"), worker("w2"), worker("w3")], available=False)
    eng.set_presence("w2", Presence.available, 1.0)
    eng.set_presence("w3", Presence.available, 2.0)
    eng.set_presence("w1", Presence.available, 3.0)
    assert offered(eng.enqueue("c1", req(workflow="single"), queued_at=5.0, now=5.0)) \
        == [("c1", "w2")]


def test_an_idle_worker_comes_before_a_busy_one_then_lower_load():
    caps = {Channel.chat: 3}
    eng = make_engine([worker("w1", capacity=caps), worker("w2", capacity=caps),
                       worker("w3", capacity=caps)], available=False)
    for t, wid in enumerate(["w1", "w2", "w3"]):
        eng.set_presence(wid, Presence.available, float(t))
    got = [offered(eng.enqueue(f"c{i}", req(workflow="single"), queued_at=10.0 + i,
                               now=10.0 + i))[0][1] for i in range(6)]
    # Idle first (longest idle first), then the least loaded.
    assert got[:3] == ["w1", "w2", "w3"]
    assert sorted(got[3:]) == ["w1", "w2", "w3"]
    assert load(eng, "w1", Channel.chat) == 2
    # w2 now has one case fewer than the others: it takes the next one.
    eng.remove_case("c4", 20.0)  # c4 was w2's second chat
    assert offered(eng.enqueue("c9", req(workflow="single"), queued_at=21.0, now=21.0)) \
        == [("c9", "w2")]


def test_a_declined_or_withdrawn_offer_keeps_the_worker_s_place_in_the_idle_line():
    eng = make_engine([worker("first"), worker("second")], available=False)
    eng.set_presence("first", Presence.available, 0.0)
    eng.set_presence("second", Presence.available, 5.0)
    assert offered(eng.enqueue("c1", req(workflow="single"), queued_at=10.0, now=10.0)) \
        == [("c1", "first")]
    eng.remove_case("c1", 11.0)  # the resident hung up before "first" answered
    assert offered(eng.enqueue("c2", req(workflow="single"), queued_at=12.0, now=12.0)) \
        == [("c2", "first")]


# --- capacity per channel and multitasking ------------------------------------------------


def _accept(eng: MatchingEngine, case_id: str, now: float) -> None:
    eng.offer_result(offer_for(eng, case_id).offer_id, OfferStatus.accepted, now)


def test_a_worker_on_video_takes_nothing_else():
    w = worker("rw", "remote_worker", skills={"general": 5}, sites=["hq"],
               capacity={Channel.video: 1, Channel.voice: 1, Channel.chat: 3})
    eng = make_engine([w])
    vid = req(channel=Channel.video, site="hq")
    assert offered(eng.enqueue("v1", vid, queued_at=0.0, now=0.0)) == [("v1", "rw")]
    _accept(eng, "v1", 1.0)
    single = {"workflow": "single"}
    assert made(eng.enqueue("chat1", req(**single), queued_at=2.0, now=2.0)) == []
    assert made(eng.enqueue("voice1", req(channel=Channel.voice, **single),
                            queued_at=3.0, now=3.0)) == []
    assert made(eng.enqueue("v2", vid, queued_at=4.0, now=4.0)) == []
    effects = eng.release("v1", 10.0)
    # The oldest waiting case first (chat), then voice alongside it; video is not allowed.
    assert offered(effects) == [("chat1", "rw"), ("voice1", "rw")]


def test_a_worker_on_voice_may_take_chat_but_not_a_second_voice_or_video():
    w = worker("ag", capacity={Channel.video: 1, Channel.voice: 1, Channel.chat: 2})
    eng = make_engine([w])
    single = {"workflow": "single"}
    assert offered(eng.enqueue("voice1", req(channel=Channel.voice, **single),
                               queued_at=0.0, now=0.0)) == [("voice1", "ag")]
    _accept(eng, "voice1", 1.0)
    assert made(eng.enqueue("voice2", req(channel=Channel.voice, **single),
                            queued_at=2.0, now=2.0)) == []
    assert made(eng.enqueue("video1", req(channel=Channel.video, **single),
                            queued_at=3.0, now=3.0)) == []
    assert offered(eng.enqueue("chat1", req(**single), queued_at=4.0, now=4.0)) \
        == [("chat1", "ag")]


def test_chat_capacity_is_n():
    eng = make_engine([worker("ag", capacity={Channel.chat: 3})])
    got = [made(eng.enqueue(f"c{i}", req(workflow="single"), queued_at=i, now=i))
           for i in range(4)]
    assert [len(g) for g in got] == [1, 1, 1, 0]
    assert load(eng, "ag", Channel.chat) == 3
    assert made(eng.enqueue("v", req(channel=Channel.video, workflow="single"),
                            queued_at=5.0, now=5.0)) == []  # chat does not allow video


def test_default_capacity_comes_from_the_channel_config():
    eng = make_engine([worker("ag")])  # no capacity given: chat default is 2
    got = [made(eng.enqueue(f"c{i}", req(workflow="single"), queued_at=i, now=i))
           for i in range(3)]
    assert [len(g) for g in got] == [1, 1, 0]


def test_alongside_reads_from_the_busy_channel():
    # "alongside: channels a worker may still take while busy on this one": on voice the
    # worker may take chat; on chat (empty list) nothing else.
    cfg = routing(channels={
        "video": {"default_capacity": 1, "alongside": []},
        "voice": {"default_capacity": 1, "alongside": ["chat"]},
        "chat": {"default_capacity": 2, "alongside": []},
    })
    single = {"workflow": "single"}
    eng = make_engine([worker("on-voice"), worker("on-chat")], cfg)
    eng.set_presence("on-chat", Presence.away, 0.0)
    eng.enqueue("voice1", req(channel=Channel.voice, **single), queued_at=0.0, now=0.0)
    _accept(eng, "voice1", 1.0)
    assert offered(eng.enqueue("chat1", req(**single), queued_at=2.0, now=2.0)) \
        == [("chat1", "on-voice")]
    eng.set_presence("on-voice", Presence.away, 3.0)
    eng.set_presence("on-chat", Presence.available, 3.0)
    assert offered(eng.enqueue("chat2", req(**single), queued_at=4.0, now=4.0)) \
        == [("chat2", "on-chat")]
    _accept(eng, "chat2", 5.0)
    assert made(eng.enqueue("voice2", req(channel=Channel.voice, **single),
                            queued_at=6.0, now=6.0)) == []


# --- offers: decline, timeout, away -------------------------------------------------------


def test_a_decline_goes_to_the_next_candidate_and_never_back_even_after_widening():
    eng = make_engine([worker("best", "specialist", skills={"general": 5}),
                       worker("second", "specialist", skills={"general": 4})])
    assert offered(eng.enqueue("c1", req(), queued_at=0.0, now=0.0)) == [("c1", "best")]
    effects = eng.offer_result(offer_for(eng, "c1").offer_id, OfferStatus.rejected, 1.0)
    assert offered(effects) == [("c1", "second")]
    assert made(eng.offer_result(offer_for(eng, "c1").offer_id, OfferStatus.rejected,
                                 2.0)) == []
    # Both still match every wider step; neither is asked again.
    assert made(eng.tick(45.0)) == [] and made(eng.tick(105.0)) == []
    assert eng.cases["c1"].step_name == "any_agent_with_live_translation"
    eng.upsert_worker(worker("third", "agent"), 200.0)
    assert offered(eng.set_presence("third", Presence.available, 200.0)) == [("c1", "third")]


def test_excluded_workers_given_at_enqueue_are_never_asked():
    eng = make_engine([worker("a1", "specialist"), worker("a2", "specialist")])
    effects = eng.enqueue("c1", req(), queued_at=0.0, now=0.0, excluded=["a1", "a2"])
    assert made(effects) == []


def test_consecutive_timeouts_set_the_worker_away():
    eng = make_engine([worker("sleepy", "specialist", skills={"general": 5}),
                       worker("backup", "specialist", capacity={Channel.chat: 1})])
    assert offered(eng.enqueue("c1", req(), queued_at=0.0, now=0.0)) == [("c1", "sleepy")]
    effects = eng.tick(20.0)
    expired = [e.offer for e in effects if isinstance(e, OfferExpired)]
    assert [(o.case_id, o.worker_id) for o in expired] == [("c1", "sleepy")]
    assert offered(effects) == [("c1", "backup")]
    assert not [e for e in effects if isinstance(e, WorkerAway)]
    _accept(eng, "c1", 20.5)  # backup is now full
    assert offered(eng.enqueue("c2", req(), queued_at=21.0, now=21.0)) == [("c2", "sleepy")]
    effects = eng.tick(41.0)
    assert [e for e in effects if isinstance(e, WorkerAway)] == [
        WorkerAway("sleepy", "2 offers in a row timed out")]
    assert eng.pool.get("sleepy").presence is Presence.away
    assert made(effects) == []
    assert made(eng.enqueue("c3", req(), queued_at=42.0, now=42.0)) == []
    assert all(o.worker_id != "sleepy" for o, _ in eng.offers.values())


def test_an_accept_resets_the_timeout_count():
    eng = make_engine([worker("w", "specialist", capacity={Channel.chat: 1})])
    eng.enqueue("c1", req(), queued_at=0.0, now=0.0)
    eng.tick(20.0)  # timeout 1; c1 waits (w declined it by silence)
    eng.enqueue("c2", req(), queued_at=21.0, now=21.0)
    _accept(eng, "c2", 22.0)
    eng.release("c2", 23.0)
    eng.enqueue("c3", req(), queued_at=24.0, now=24.0)
    effects = eng.tick(44.0)  # timeout 2, but not in a row
    assert not [e for e in effects if isinstance(e, WorkerAway)]
    assert eng.pool.get("w").presence is Presence.available


def test_a_decline_breaks_a_run_of_timeouts():
    # routing.yaml: "this many unanswered offers in a row set a worker away"; a decline is
    # an answer.
    eng = make_engine([worker("w", "specialist", capacity={Channel.chat: 1})])
    eng.enqueue("c1", req(), queued_at=0.0, now=0.0)
    eng.tick(20.0)  # timeout 1
    eng.enqueue("c2", req(), queued_at=21.0, now=21.0)
    eng.offer_result(offer_for(eng, "c2").offer_id, OfferStatus.rejected, 22.0)
    eng.enqueue("c3", req(), queued_at=23.0, now=23.0)
    effects = eng.tick(43.0)  # timeout 2, after a decline
    assert not [e for e in effects if isinstance(e, WorkerAway)]


def test_answering_an_unknown_offer_is_an_error():
    eng = make_engine([worker("w")])
    with pytest.raises(EngineError):
        eng.offer_result("nope", OfferStatus.accepted, 0.0)


# --- preferred worker for a repeat contact -------------------------------------------------


def test_preferred_worker_is_asked_first_even_when_the_workflow_would_pick_another():
    eng = make_engine([worker("spec", "specialist", skills={"general": 5}),
                       worker("pref", "agent", skills={"general": 2})])
    effects = eng.enqueue("c1", req(), queued_at=0.0, now=0.0, preferred_worker="pref")
    assert offered(effects) == [("c1", "pref")]
    assert offer_for(eng, "c1").step == "preferred_worker"


def test_only_the_preferred_worker_until_fallback_then_the_workflow():
    pref = worker("pref", "agent", capacity={Channel.chat: 1})
    eng = make_engine([worker("spec", "specialist"), pref])
    eng.enqueue("busy", req(), queued_at=0.0, now=0.0, preferred_worker="pref")
    _accept(eng, "busy", 0.0)  # pref is now full
    effects = eng.enqueue("c1", req(), queued_at=0.0, now=0.0, preferred_worker="pref")
    assert made(effects) == []  # spec is free but only pref is asked for now
    assert eng.cases["c1"].step_name == "preferred_worker"
    assert eng.tick(19.9) == []
    effects = eng.tick(20.0)
    assert StepChanged("c1", "specialist_in_language") in effects
    assert offered(effects) == [("c1", "spec")]


def test_preferred_worker_freeing_up_within_fallback_gets_the_case():
    pref = worker("pref", "agent", capacity={Channel.chat: 1})
    eng = make_engine([worker("spec", "specialist"), pref])
    eng.enqueue("busy", req(), queued_at=0.0, now=0.0, preferred_worker="pref")
    _accept(eng, "busy", 0.0)  # pref is now full
    eng.enqueue("c1", req(), queued_at=0.0, now=0.0, preferred_worker="pref")
    assert offered(eng.release("busy", 10.0)) == [("c1", "pref")]


def test_a_decline_by_the_preferred_worker_widens_at_once():
    eng = make_engine([worker("spec", "specialist"), worker("pref", "agent")])
    eng.enqueue("c1", req(), queued_at=0.0, now=0.0, preferred_worker="pref")
    effects = eng.offer_result(offer_for(eng, "c1").offer_id, OfferStatus.rejected, 5.0)
    assert StepChanged("c1", "specialist_in_language") in effects
    assert offered(effects) == [("c1", "spec")]
    # Step 1 runs its full timeout from the decline, and "pref" is never asked again.
    assert made(eng.offer_result(offer_for(eng, "c1").offer_id, OfferStatus.rejected,
                                 6.0)) == []
    assert eng.tick(49.9) == []
    effects = eng.tick(50.0)
    assert StepChanged("c1", "agent_in_language") in effects and made(effects) == []


def test_an_unknown_preferred_worker_is_ignored():
    eng = make_engine([worker("spec", "specialist")])
    effects = eng.enqueue("c1", req(), queued_at=0.0, now=0.0, preferred_worker="ghost")
    assert offered(effects) == [("c1", "spec")]


# --- remove and release -------------------------------------------------------------------


def test_remove_case_withdraws_its_offer_and_frees_the_reservation():
    eng = make_engine([worker("w", capacity={Channel.chat: 1})])
    eng.enqueue("c1", req(workflow="single"), queued_at=0.0, now=0.0)
    eng.enqueue("c2", req(workflow="single"), queued_at=1.0, now=1.0)
    assert load(eng, "w", Channel.chat) == 1
    effects = eng.remove_case("c1", 2.0)
    assert offered(effects) == [("c2", "w")]
    assert [o.case_id for o, _ in eng.offers.values()] == ["c2"]
    assert "c1" not in eng.cases and load(eng, "w", Channel.chat) == 1
    eng.remove_case("c2", 3.0)
    assert load(eng, "w", Channel.chat) == 0 and eng.offers == {} and eng.cases == {}
    assert eng.tick(1000.0) == []  # no timer of a removed case fires


def test_remove_case_of_a_waiting_case_takes_it_out_of_the_queue():
    eng = make_engine([worker("w")], available=False)
    eng.enqueue("c1", req(workflow="single"), queued_at=0.0, now=0.0)
    eng.enqueue("c2", req(workflow="single"), queued_at=1.0, now=1.0)
    assert eng.remove_case("c1", 2.0) == []
    assert offered(eng.set_presence("w", Presence.available, 3.0)) == [("c2", "w")]


def test_release_frees_capacity_and_the_worker_takes_the_next_waiting_case():
    eng = make_engine([worker("w", capacity={Channel.chat: 1})])
    eng.enqueue("c1", req(workflow="single"), queued_at=0.0, now=0.0)
    _accept(eng, "c1", 1.0)
    assert eng.assignments["c1"] == ("w", Channel.chat)
    assert made(eng.enqueue("c2", req(workflow="single"), queued_at=2.0, now=2.0)) == []
    effects = eng.release("c1", 3.0)
    assert offered(effects) == [("c2", "w")]
    assert "c1" not in eng.assignments
    assert eng.release("c1", 4.0) == []  # twice changes nothing


def test_remove_case_of_a_connected_case_releases_the_worker():
    eng = make_engine([worker("w", capacity={Channel.chat: 1})])
    eng.enqueue("c1", req(workflow="single"), queued_at=0.0, now=0.0)
    _accept(eng, "c1", 1.0)
    eng.enqueue("c2", req(workflow="single"), queued_at=2.0, now=2.0)
    assert offered(eng.remove_case("c1", 3.0)) == [("c2", "w")]


def test_enqueue_twice_is_an_error():
    eng = make_engine([worker("w")])
    eng.enqueue("c1", req(), queued_at=0.0, now=0.0)
    with pytest.raises(EngineError):
        eng.enqueue("c1", req(), queued_at=0.0, now=0.0)


# --- restore after a restart ----------------------------------------------------------------


def test_restored_offer_past_expiry_times_out_on_the_next_tick_and_is_rerouted():
    eng = make_engine([worker("old", "specialist", skills={"general": 5}),
                       worker("other", "specialist")], available=False)
    assert eng.enqueue("c1", req(), queued_at=0.0, now=100.0) == []
    stale = Offer(offer_id="o-before", case_id="c1", worker_id="old", created_at=10.0,
                  expires_at=30.0, step="specialist_in_language")
    assert eng.restore_offer(stale, 100.0) == []
    assert load(eng, "old", Channel.chat) == 1
    eng.set_presence("old", Presence.available, 100.0)
    assert made(eng.set_presence("other", Presence.available, 100.0)) == []  # c1 is held
    effects = eng.tick(100.0)
    assert [e.offer.offer_id for e in effects if isinstance(e, OfferExpired)] == ["o-before"]
    # Restored at age 100 s: the case is on step 2, and "old" (who missed it) is excluded.
    assert offered(effects) == [("c1", "other")]
    assert offer_for(eng, "c1").step == "agent_in_language"
    assert load(eng, "old", Channel.chat) == 0


def test_restored_offer_still_valid_is_kept_until_it_expires():
    eng = make_engine([worker("w", "specialist")], available=False)
    eng.enqueue("c1", req(), queued_at=0.0, now=5.0)
    offer = Offer(offer_id="o-live", case_id="c1", worker_id="w", created_at=4.0,
                  expires_at=24.0, step="specialist_in_language")
    eng.restore_offer(offer, 5.0)
    eng.set_presence("w", Presence.available, 5.0)
    assert eng.tick(10.0) == []
    assert eng.offer_result("o-live", OfferStatus.accepted, 11.0) == []
    assert eng.assignments["c1"] == ("w", Channel.chat)


def test_restore_offer_needs_the_case_and_one_offer_only():
    eng = make_engine([worker("w", "specialist")], available=False)
    offer = Offer(offer_id="o1x", case_id="c1", worker_id="w", created_at=0.0,
                  expires_at=20.0, step="s")
    with pytest.raises(EngineError):
        eng.restore_offer(offer, 1.0)
    eng.enqueue("c1", req(), queued_at=0.0, now=1.0)
    eng.restore_offer(offer, 1.0)
    with pytest.raises(EngineError):
        eng.restore_offer(offer.model_copy(update={"offer_id": "o2x"}), 1.0)


def test_restore_assignment_holds_capacity():
    eng = make_engine([worker("w", capacity={Channel.chat: 1})])
    eng.restore_assignment("c0", "w", Channel.chat, 0.0)
    assert made(eng.enqueue("c1", req(workflow="single"), queued_at=0.0, now=0.0)) == []
    assert offered(eng.release("c0", 1.0)) == [("c1", "w")]


# --- waits and presence --------------------------------------------------------------------


def test_max_wait_is_reported_once():
    eng = make_engine([], routing(max_wait_s=900))
    eng.enqueue("c1", req(), queued_at=0.0, now=0.0)
    assert not [e for e in eng.tick(899.0) if isinstance(e, WaitExceeded)]
    assert [e for e in eng.tick(900.0) if isinstance(e, WaitExceeded)] == [
        WaitExceeded("c1", 900.0)]
    assert not [e for e in eng.tick(5000.0) if isinstance(e, WaitExceeded)]


def test_max_wait_counts_from_queued_at_of_a_re_enqueue():
    eng = make_engine([], routing(max_wait_s=900))
    eng.enqueue("c1", req(), queued_at=0.0, now=0.0)
    eng.remove_case("c1", 10.0)
    eng.enqueue("c1", req(), queued_at=500.0, now=500.0)  # a new routing of the case
    assert not [e for e in eng.tick(1000.0) if isinstance(e, WaitExceeded)]
    assert [e.case_id for e in eng.tick(1400.0) if isinstance(e, WaitExceeded)] == ["c1"]


def test_going_away_withdraws_pending_offers_and_never_reoffers_them_to_the_leaver():
    eng = make_engine([worker("leaver", "specialist", capacity={Channel.chat: 2})])
    eng.enqueue("c1", req(), queued_at=0.0, now=0.0)
    eng.enqueue("c2", req(), queued_at=1.0, now=1.0)
    assert len(eng.offers) == 2
    effects = eng.set_presence("leaver", Presence.away, 2.0)
    assert made(effects) == []
    assert eng.offers == {}
    assert load(eng, "leaver", Channel.chat) == 0
    assert made(eng.enqueue("c3", req(), queued_at=3.0, now=3.0)) == []
    # The withdrawn cases go to someone else...
    eng.upsert_worker(worker("stayer", "specialist", capacity={Channel.chat: 3}), 4.0)
    effects = eng.set_presence("stayer", Presence.available, 4.0)
    assert sorted(offered(effects)) == [("c1", "stayer"), ("c2", "stayer"), ("c3", "stayer")]


def test_offline_worker_is_out_of_selection_until_available_again():
    eng = make_engine([worker("w", "specialist")])
    eng.set_presence("w", Presence.offline, 0.0)
    assert made(eng.enqueue("c1", req(), queued_at=0.0, now=0.0)) == []
    assert offered(eng.set_presence("w", Presence.available, 5.0)) == [("c1", "w")]


def test_presence_of_an_unknown_worker_is_an_error():
    eng = make_engine([])
    with pytest.raises(EngineError):
        eng.set_presence("ghost", Presence.available, 0.0)


def test_telepresence_step_one_needs_the_site_and_native_language():
    eng = make_engine([
        worker("elsewhere", "remote_worker", {"ja": 5}, sites=["branch"]),
        worker("non-native", "remote_worker", {"ja": 3}, sites=["hq"]),
        worker("here", "remote_worker", {"ja": 4}, sites=["hq"]),
    ])
    effects = eng.enqueue("v1", req(channel=Channel.video, site="hq"), queued_at=0.0, now=0.0)
    assert offered(effects) == [("v1", "here")]


# --- random operations against a brute-force oracle ---------------------------------------


def _check_invariants(eng: MatchingEngine) -> None:
    pool = eng.pool
    # Loads: one per pending offer and per assignment, nothing else.
    expected: dict[tuple[str, Channel], int] = {}
    for offer, qc in eng.offers.values():
        expected[(offer.worker_id, qc.req.channel)] = \
            expected.get((offer.worker_id, qc.req.channel), 0) + 1
        assert offer.worker_id not in qc.excluded
    for wid, ch in eng.assignments.values():
        expected[(wid, ch)] = expected.get((wid, ch), 0) + 1
    for w in pool.workers.values():
        for ch in Channel:
            assert w.load.get(ch, 0) == expected.get((w.id, ch), 0), (w.id, ch)
            assert w.load.get(ch, 0) <= w.capacity.get(ch, 0)
    holding = {qc.case_id for _, qc in eng.offers.values()}
    for cid, qc in eng.cases.items():
        assert qc.waiting == (cid not in holding), cid
    # Work-conserving: no waiting case that an available worker could take right now.
    for qc in eng.cases.values():
        if not qc.waiting:
            continue
        for w in pool.workers.values():
            ok = pool.can_take(w, qc.req.channel) and matches(w, qc.target) \
                and w.id not in qc.excluded
            assert not ok, f"{qc.case_id} waits while {w.id} could take it"
    # Queue side: the case a worker would take on a channel is the first, by priority then
    # age, of the waiting cases it matches and was not excluded from.
    waiting = sorted((qc for qc in eng.cases.values() if qc.waiting), key=lambda q: q.order)
    for w in pool.workers.values():
        for ch in Channel:
            want = next((qc.case_id for qc in waiting if qc.req.channel is ch
                         and matches(w, qc.target) and w.id not in qc.excluded), None)
            got = eng.queues.head_for(w, ch)
            assert (got.case_id if got else None) == want, (w.id, ch)
    # The queue holds exactly the waiting cases.
    assert sum(eng.queues.lengths().values()) == sum(1 for qc in eng.cases.values()
                                                     if qc.waiting)


def _random_worker(rng: random.Random, i: int) -> Worker:
    langs = rng.sample(["ja", "en", "es"], rng.randint(1, 2))
    return Worker(
        id=f"w{i}", kind=WorkerKind(rng.choice(["agent", "specialist", "remote_worker"])),
        languages={lang: rng.randint(1, 5) for lang in langs},
        skills={s: rng.randint(1, 5) for s in rng.sample(["general", "tax", "welfare"],
                                                         rng.randint(0, 2))},
        sites=rng.sample(["hq", "branch"], rng.randint(0, 2)),
        capacity={Channel.chat: rng.randint(1, 3)},
    )


def _random_req(rng: random.Random) -> Requirement:
    channel = rng.choice(list(Channel))
    skills = {s: rng.randint(1, 4) for s in rng.sample(["general", "tax", "welfare"],
                                                       rng.randint(0, 2))}
    site = rng.choice(["hq", "branch"]) if channel is Channel.video else None
    return req(rng.choice(["ja", "en", "es"]), channel, skills, rng.choice([0, 0, 0, 10]),
               site=site)


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_keep_the_engine_consistent(seed):
    rng = random.Random(seed)
    workers = [_random_worker(rng, i) for i in range(12)]
    eng = make_engine(workers, available=False)
    now, n = 0.0, 0
    for _ in range(400):
        now += rng.choice([0.5, 1.0, 5.0, 15.0])
        eng.tick(now)
        op = rng.random()
        if op < 0.3:
            n += 1
            pref = rng.choice([None, None, None, rng.choice(workers).id])
            eng.enqueue(f"c{n}", _random_req(rng), queued_at=now, now=now,
                        preferred_worker=pref)
        elif op < 0.5 and eng.offers:
            oid = rng.choice(sorted(eng.offers))
            status = rng.choice([OfferStatus.accepted, OfferStatus.accepted,
                                 OfferStatus.rejected])
            eng.offer_result(oid, status, now)
        elif op < 0.6 and eng.assignments:
            eng.release(rng.choice(sorted(eng.assignments)), now)
        elif op < 0.7 and (eng.cases or eng.assignments):
            eng.remove_case(rng.choice(sorted([*eng.cases, *eng.assignments])), now)
        elif op < 0.9:
            w = rng.choice(workers)
            p = rng.choice([Presence.available, Presence.available, Presence.away,
                            Presence.offline])
            eng.set_presence(w.id, p, now)
        else:
            i = rng.randrange(len(workers))
            workers[i] = _random_worker(rng, i)
            eng.upsert_worker(workers[i], now)
        _check_invariants(eng)


@pytest.mark.parametrize("seed", range(4))
def test_best_worker_matches_a_brute_force_ranking(seed):
    rng = random.Random(100 + seed)
    workers = [_random_worker(rng, i) for i in range(60)]
    eng = make_engine(workers, available=False)
    for i, w in enumerate(workers):
        if rng.random() < 0.8:
            eng.set_presence(w.id, Presence.available, float(rng.randint(0, 5)))
    for w in workers:  # some load, for the load tie-break
        st = eng.pool.get(w.id)
        if st.presence is Presence.available and rng.random() < 0.3:
            eng.pool.add_load(st, Channel.chat, +1, 6.0)
    cfg = routing()
    for _ in range(300):
        r = _random_req(rng)
        steps = cfg.workflows[cfg.channel_workflows.get(r.channel, cfg.default_workflow)].steps
        target = resolve(rng.choice(steps).target, r)
        excluded = {w.id for w in rng.sample(workers, 5)}
        cands = [w for w in eng.pool.workers.values()
                 if eng.pool.can_take(w, target.channel) and matches(w, target)
                 and w.id not in excluded]
        cands.sort(key=lambda w: (tuple(-x for x in fit(w, target)), w.total_load,
                                  w.idle_since, w.id))
        got = eng.pool.best_for(target, excluded)
        assert (got.id if got else None) == (cands[0].id if cands else None), target


def test_best_worker_for_many_skills_reads_whole_lists_and_still_ranks_right(monkeypatch):
    from router.matching import workers as workers_mod
    monkeypatch.setattr(workers_mod, "_MAX_CLASSES", 2)  # force the fallback
    scans = []
    real_scan = workers_mod.WorkerPool._scan
    monkeypatch.setattr(workers_mod.WorkerPool, "_scan",
                        lambda self, *a: scans.append(1) or real_scan(self, *a))
    rng = random.Random(5)
    workers = [_random_worker(rng, i) for i in range(60)]
    eng = make_engine(workers, available=False)
    for i, w in enumerate(workers):
        eng.set_presence(w.id, Presence.available, float(i % 7))
    cfg = routing()
    for _ in range(200):
        r = _random_req(rng)
        steps = cfg.workflows[cfg.channel_workflows.get(r.channel, cfg.default_workflow)].steps
        target = resolve(rng.choice(steps).target, r)
        cands = [w for w in eng.pool.workers.values()
                 if eng.pool.can_take(w, target.channel) and matches(w, target)]
        cands.sort(key=lambda w: (tuple(-x for x in fit(w, target)), w.total_load,
                                  w.idle_since, w.id))
        got = eng.pool.best_for(target, set())
        assert (got.id if got else None) == (cands[0].id if cands else None), target
    assert len(scans) >= 10  # the fallback did run


# --- offers are built without validation (the cost per decision): exactly as validated ----


def test_offers_the_engine_builds_are_the_offers_validation_builds():
    from router.matching.engine import _new_offer

    eng = make_engine([worker("agent-1", "agent", {"ja": 5}, {"general": 4})])
    (offer,) = made(eng.enqueue("c-1.x", req(workflow="single"), queued_at=0.0, now=2.5))
    checked = Offer(offer_id="o1", case_id="c-1.x", worker_id="agent-1", created_at=2.5,
                    expires_at=22.5, step="anyone_in_language")
    assert type(offer) is Offer and offer == checked
    assert offer.model_fields_set == checked.model_fields_set
    assert offer.model_dump() == checked.model_dump()
    assert offer.model_dump_json() == checked.model_dump_json()
    assert Offer.model_validate_json(offer.model_dump_json()) == offer
    # A field added to Offer must be added to _new_offer too (or given a default).
    built = _new_offer("o2", "c2", "w2", 1.0, 2.0, "s")
    assert set(built.__dict__) == set(Offer.model_fields)
    # Each offer has its own field set and status (the service updates offers in place).
    built.status = OfferStatus.accepted
    built.model_fields_set.add("status")
    assert offer.status is OfferStatus.pending and "status" not in offer.model_fields_set
