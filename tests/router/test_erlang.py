import math

import pytest

from router import erlang


def _p_wait_by_logs(m: int, a: float) -> float:
    """The textbook formula in log space: an independent reference for any m."""
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(m)]
    top = m * math.log(a) - math.lgamma(m + 1) + math.log(m / (m - a))
    big = max(logs + [top])
    below = sum(math.exp(x - big) for x in logs)
    return math.exp(top - big) / (below + math.exp(top - big))


def test_facts_example():
    # FACTS.md: 100 calls per 30 min, AHT 180 s, 13 agents.
    ec = erlang.erlang_c(agents=13, arrivals_per_hour=200, aht_seconds=180, sl_seconds=20)
    assert ec.offered_load == pytest.approx(10.0)
    assert ec.p_wait == pytest.approx(0.2853, abs=5e-5)
    assert ec.service_level == pytest.approx(0.7956, abs=5e-5)
    assert ec.asa_seconds == pytest.approx(17.1, abs=0.05)
    assert ec.occupancy == pytest.approx(10 / 13)
    assert ec.as_dict()["asa_seconds"] == ec.asa_seconds


def test_single_agent_is_mm1():
    # M/M/1: P_wait = ρ, ASA = ρ/(1−ρ)·AHT, SL(t) = 1 − ρ·e^{−(1−ρ)t/AHT}.
    for rho in (0.1, 0.5, 0.9):
        assert erlang.p_wait(1, rho) == pytest.approx(rho)
        assert erlang.asa(1, rho, 60) == pytest.approx(rho / (1 - rho) * 60)
        assert erlang.service_level(1, rho, 60, 30) == \
            pytest.approx(1 - rho * math.exp(-(1 - rho) * 30 / 60))


def test_two_agents_by_hand():
    # a = 1, m = 2: B = (1/2)/(1 + 1 + 1/2) = 0.2; C = 2·0.2/(2 − 0.8) = 1/3; ASA = C·AHT/1.
    assert erlang.erlang_b(2, 1.0) == pytest.approx(0.2)
    assert erlang.p_wait(2, 1.0) == pytest.approx(1 / 3)
    assert erlang.asa(2, 1.0, 300) == pytest.approx(100.0)
    assert erlang.service_level(2, 1.0, 300, 0) == pytest.approx(2 / 3)
    assert erlang.occupancy(2, 1.0) == 0.5


def test_erlang_b_table_value():
    assert erlang.erlang_b(1, 3.0) == pytest.approx(3 / 4)
    assert erlang.erlang_b(10, 5.0) == pytest.approx(0.018384, abs=1e-6)


@pytest.mark.parametrize("m,a", [(13, 10.0), (50, 45.0), (300, 290.0), (2000, 1950.0)])
def test_stable_for_large_m(m, a):
    # a**m / m! overflows a float long before m = 2000; the recursion does not.
    value = erlang.p_wait(m, a)
    assert 0 < value < 1
    assert value == pytest.approx(_p_wait_by_logs(m, a), rel=1e-9)


def test_no_load_never_waits():
    assert erlang.p_wait(3, 0.0) == 0.0
    assert erlang.service_level(3, 0.0, 100, 0) == 1.0
    assert erlang.asa(3, 0.0, 100) == 0.0


def test_service_level_grows_with_agents_and_threshold():
    levels = [erlang.service_level(m, 10.0, 180, 20) for m in range(11, 20)]
    assert levels == sorted(levels)
    assert erlang.service_level(13, 10.0, 180, 60) > erlang.service_level(13, 10.0, 180, 20)


def test_agents_for_service_level():
    # 13 agents give 0.7956 (FACTS), so 80/20 needs 14.
    assert erlang.agents_for_service_level(200, 180, 20, 0.8) == 14
    assert erlang.agents_for_service_level(200, 180, 20, 0.79) == 13


@pytest.mark.parametrize("call,match", [
    (lambda: erlang.p_wait(0, 0.5), "agents must be at least 1"),
    (lambda: erlang.p_wait(2.5, 0.5), "whole number"),
    (lambda: erlang.p_wait(3, -1.0), "offered load"),
    (lambda: erlang.p_wait(3, float("nan")), "offered load"),
    (lambda: erlang.p_wait(10, 10.0), "grows without bound"),
    (lambda: erlang.asa(10, 12.0, 180), "needs more than 10 agents"),
    (lambda: erlang.asa(10, 5.0, 0), "handle time"),
    (lambda: erlang.service_level(10, 5.0, 180, -1), "threshold"),
    (lambda: erlang.offered_load(-5, 180), "arrivals per hour"),
    (lambda: erlang.erlang_c(13, 200, -180, 20), "handle time"),
    (lambda: erlang.agents_for_service_level(200, 180, 20, 1.0), "between 0 and 1"),
])
def test_bad_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call()
