"""The workforce simulator against queueing theory.

Tolerances: waits in a queue are strongly correlated, so a run of n cases is worth far fewer
than n independent samples. Each tolerance below is about 4–5 standard deviations of the
figure across seeds, measured over 8 seeds of the same run length (the sd is in the comment).
The seeds are fixed, so the tests are deterministic; the margins are what lets an engine change
that reorders random draws or breaks ties differently still pass when it is correct.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import router.simulate as sim
from router import erlang
from router.simulate import SimParams, main, simulate

ROOT = Path(__file__).resolve().parents[2]


def _close(value, expected, tol):
    assert math.isclose(value, expected, abs_tol=tol), f"{value} vs {expected} ± {tol}"


# (agents, arrivals/h, AHT s, SL threshold s, hours), then tolerances for SL, ASA (relative),
# P_wait and occupancy.
MMC_CASES = [
    # m=1, ρ=0.5, ~20k cases: sd SL .0025, ASA 1.7 %, P_wait .003, occupancy .003.
    pytest.param((1, 20, 90, 30, 1000), (0.012, 0.08, 0.015, 0.015), id="m1-rho0.5"),
    # m=5, ρ=0.6, ~45k cases: sd SL .0065, ASA 4.8 %, P_wait .0072, occupancy .0053.
    pytest.param((5, 45, 240, 30, 1000), (0.03, 0.20, 0.035, 0.025), id="m5-rho0.6"),
    # m=40, ρ=0.85, ~48k cases: near saturation the queue wanders slowly, so even this many
    # cases pin the figures only loosely: sd SL .016, ASA 14.5 %, P_wait .022, occupancy .008.
    pytest.param((40, 800, 153, 15, 60), (0.07, 0.6, 0.1, 0.035), id="m40-rho0.85"),
]


@pytest.mark.parametrize("case,tol", MMC_CASES)
def test_agrees_with_erlang_c(case, tol):
    m, lam, aht, t, hours = case
    r = simulate(SimParams(agents=m, arrivals_per_hour=lam, aht_seconds=aht, sl_seconds=t,
                           hours=hours, seed=11))
    ec = erlang.erlang_c(m, lam, aht, t)
    assert r.erlang_service_level == ec.service_level
    assert r.erlang_asa_seconds == ec.asa_seconds
    assert r.cases == r.answered and r.abandoned == 0 and r.abandon_rate == 0
    # Poisson count: sd = sqrt(λ·h); 5 sd.
    _close(r.cases, lam * hours, 5 * math.sqrt(lam * hours))
    _close(r.service_level, ec.service_level, tol[0])
    _close(r.asa_seconds / ec.asa_seconds, 1.0, tol[1])
    _close(r.p_wait, ec.p_wait, tol[2])
    _close(r.occupancy, ec.occupancy, tol[3])
    assert r.erlang_a_abandon_rate is None


@pytest.mark.slow
def test_acceptance_command(capsys):
    # The check. At 500 h (~100k cases) the sd across seeds is .0072 for SL and 5.9 %
    # for ASA; seed 1 gives SL .7966 and ASA 16.91 s.
    code = main(["--agents", "13", "--arrivals-per-hour", "200", "--aht-seconds", "180",
                 "--sl-seconds", "20", "--hours", "500", "--seed", "1", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("service_level", "asa_seconds", "abandon_rate", "occupancy", "cases",
                "answered", "abandoned", "max_wait_s", "wall_seconds",
                "erlang_service_level", "erlang_asa_seconds"):
        assert key in out
    _close(out["service_level"], 0.7956, 0.02)
    _close(out["asa_seconds"], 17.1, 0.1 * 17.1)
    _close(out["occupancy"], 10 / 13, 0.015)  # sd .0034
    _close(out["erlang_service_level"], 0.7956, 5e-5)
    _close(out["erlang_asa_seconds"], 17.1, 0.05)
    assert out["abandon_rate"] == 0 and out["abandoned"] == 0
    assert out["answered"] == out["cases"]
    _close(out["cases"], 100_000, 1_600)  # 5 sd of a Poisson count
    assert 0 < out["max_wait_s"] < 3600
    assert out["wall_seconds"] < 60


def _short(**kw):
    base = dict(agents=13, arrivals_per_hour=200, aht_seconds=180, sl_seconds=20, hours=10,
                seed=5)
    return SimParams(**{**base, **kw})


def test_same_seed_same_result():
    a, b = simulate(_short()).as_dict(), simulate(_short()).as_dict()
    c = simulate(_short(seed=6)).as_dict()
    for d in (a, b, c):
        d.pop("wall_seconds")
    assert a == b
    assert a != c


def test_abandonment_agrees_with_erlang_a():
    # m=13, a=10, mean patience 60 s, ~20k cases: sd abandon .0033, P_wait .008, occupancy
    # .0051.
    r = simulate(_short(hours=100, patience_seconds=60, seed=3))
    ea = erlang.erlang_a(13, 200, 180, 60)
    assert r.abandoned > 0 and r.abandon_rate > 0
    assert r.answered + r.abandoned == r.cases
    _close(r.abandon_rate, ea.abandon_rate, 0.015)
    _close(r.p_wait, ea.p_wait, 0.035)
    _close(r.occupancy, ea.occupancy, 0.025)
    assert r.erlang_a_abandon_rate == ea.abandon_rate
    # Those who would wait longest leave, so the answered wait far less than in M/M/c
    # (Erlang C ASA 17.1 s; with patience ~2.3 s, sd .12) and fewer cases wait at all.
    assert r.asa_seconds < 0.5 * r.erlang_asa_seconds
    assert r.p_wait < r.erlang_p_wait
    assert r.service_level > r.erlang_service_level


def test_overload_needs_patience_and_sheds_the_excess():
    # a = 6 erlangs on 5 agents: no Erlang C answer, but with abandonment a steady state.
    # ~12k cases: sd abandon .0088, occupancy .0059, P_wait .013.
    r = simulate(SimParams(agents=5, arrivals_per_hour=120, aht_seconds=180, hours=100,
                           seed=2, patience_seconds=60))
    ea = erlang.erlang_a(5, 120, 180, 60)
    assert r.erlang_service_level is None and r.erlang_asa_seconds is None
    assert r.abandon_rate > 1 / 6  # at least the load above capacity must leave
    _close(r.abandon_rate, ea.abandon_rate, 0.04)
    _close(r.occupancy, ea.occupancy, 0.03)
    _close(r.p_wait, ea.p_wait, 0.06)


class _CountingEngine(sim.MatchingEngine):
    calls: dict[str, int] = {}

    def _count(self, name):
        _CountingEngine.calls[name] = _CountingEngine.calls.get(name, 0) + 1

    def enqueue(self, *a, **kw):
        self._count("enqueue")
        return super().enqueue(*a, **kw)

    def offer_result(self, *a, **kw):
        self._count("offer_result")
        return super().offer_result(*a, **kw)

    def release(self, *a, **kw):
        self._count("release")
        return super().release(*a, **kw)

    def remove_case(self, *a, **kw):
        self._count("remove_case")
        return super().remove_case(*a, **kw)

    def tick(self, *a, **kw):
        self._count("tick")
        return super().tick(*a, **kw)


def test_every_decision_goes_through_the_matching_engine(monkeypatch):
    _CountingEngine.calls = {}
    monkeypatch.setattr(sim, "MatchingEngine", _CountingEngine)
    r = simulate(_short(patience_seconds=30))
    calls = _CountingEngine.calls
    assert calls["enqueue"] == r.cases
    assert calls["offer_result"] == r.answered
    assert calls["remove_case"] == r.abandoned > 0
    assert r.answered - 13 <= calls["release"] <= r.answered  # the last calls may outlive it


def test_engine_deadlines_are_driven_and_change_nothing(monkeypatch):
    # With offer and wait timeouts inside the horizon the engine's timers fall due: the loop
    # must tick them (expired timers of accepted offers, wait alerts) without changing routing.
    plain = simulate(_short()).as_dict()
    _CountingEngine.calls = {}
    monkeypatch.setattr(sim, "MatchingEngine", _CountingEngine)
    monkeypatch.setattr(sim, "_NEVER", 30.0)
    ticked = simulate(_short()).as_dict()
    assert _CountingEngine.calls["tick"] > 1000
    plain.pop("wall_seconds"), ticked.pop("wall_seconds")
    assert ticked == plain


class _ForgetfulEngine(sim.MatchingEngine):
    def release(self, *a, **kw):
        super().release(*a, **kw)
        return []  # loses the offer made to the freed agent


def test_an_engine_that_idles_agents_is_caught(monkeypatch):
    monkeypatch.setattr(sim, "MatchingEngine", _ForgetfulEngine)
    with pytest.raises(RuntimeError, match="cases waiting while 1 agents were free"):
        simulate(_short())


@pytest.mark.parametrize("kw,match", [
    (dict(agents=0), "agents must be a whole number >= 1"),
    (dict(agents=2.5), "agents must be a whole number"),
    (dict(arrivals_per_hour=-1), "arrivals per hour must be a finite number > 0"),
    (dict(arrivals_per_hour=float("inf")), "arrivals per hour"),
    (dict(aht_seconds=0), "aht seconds must be a finite number > 0"),
    (dict(hours=0), "hours must be"),
    (dict(sl_seconds=-5), "sl seconds"),
    (dict(patience_seconds=0), "patience seconds"),
    (dict(agents=10), "grows without bound"),
])
def test_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        _short(**kw)


def test_cli_reports_bad_parameters_and_exits_2(capsys):
    code = main(["--agents", "0", "--arrivals-per-hour", "200", "--aht-seconds", "180"])
    err = capsys.readouterr().err
    assert code == 2 and "agents must be a whole number >= 1" in err
    code = main(["--agents", "9", "--arrivals-per-hour", "200", "--aht-seconds", "180"])
    err = capsys.readouterr().err
    assert code == 2 and "needs more than 9 agents" in err and "patience" in err


def test_cli_text_output(capsys):
    assert main(["--agents", "3", "--arrivals-per-hour", "40", "--aht-seconds", "120",
                 "--hours", "2", "--patience-seconds", "90"]) == 0
    out = capsys.readouterr().out
    assert "service_level" in out and "erlang_a_abandon_rate" in out


def test_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "router.simulate", "--agents", "2", "--arrivals-per-hour", "30",
         "--aht-seconds", "120", "--hours", "5", "--seed", "3", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["cases"] > 0 and 0 <= out["service_level"] <= 1 and out["seed"] == 3
    proc = subprocess.run([sys.executable, "-m", "router.simulate", "--agents", "0",
                           "--arrivals-per-hour", "30", "--aht-seconds", "120", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "agents" in proc.stderr and proc.stdout == ""


# Figures of the simulator before its per-case overhead was cut (issue 17), same seeds: any
# change to the engine or the loop around it must leave every decision, and so every figure,
# exactly as it was (benchmarks/simulate.py also checks them against a SimPy M/M/c model).
_BEFORE = [
    (dict(agents=13, arrivals_per_hour=200, aht_seconds=180, hours=50, seed=1),
     dict(cases=10024, answered=10024, abandoned=0, service_level=0.7749401436552275,
          asa_seconds=23.162920076893343, p_wait=0.3051675977653631,
          occupancy=0.776159458994034, max_wait_s=485.4347788356208)),
    (dict(agents=5, arrivals_per_hour=120, aht_seconds=150, hours=30, seed=4,
          patience_seconds=60),
     dict(cases=3543, answered=2849, abandoned=694, service_level=0.6689246401354784,
          asa_seconds=8.77600780073451, p_wait=0.4386113463166808,
          occupancy=0.7678566107630073, max_wait_s=150.90128418714448)),
    (dict(agents=3, arrivals_per_hour=200, aht_seconds=120, hours=10, seed=2,
          patience_seconds=30),
     dict(cases=2038, answered=840, abandoned=1198, service_level=0.28655544651619236,
          asa_seconds=15.225978878671649, p_wait=0.8444553483807654,
          occupancy=0.9358956518308187, max_wait_s=119.54044196169707)),
]


@pytest.mark.parametrize("params,before", _BEFORE)
def test_same_seed_gives_exactly_the_figures_of_before(params, before):
    r = simulate(SimParams(**params)).as_dict()
    assert {k: r[k] for k in before} == before
