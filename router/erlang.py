"""Erlang C (M/M/c): the queueing oracle the simulator is checked against, and staffing maths.

Notation: ``m`` agents, offered load ``a = λ·AHT`` in erlangs, handle time ``aht`` in seconds.

- P_wait = C(m, a), the probability that an arriving case waits at all.
- ASA    = P_wait · AHT / (m − a), the mean wait over all cases (those that did not wait
  count as 0 s).
- SL(t)  = 1 − P_wait · e^{−(m−a)·t/AHT}, the fraction of cases answered within t seconds.
- Occupancy = a / m.

Constraint: staffing questions reach hundreds of agents, where ``a**m / m!`` overflows a float.
C is therefore derived from Erlang B computed by the recursion
``B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1))`` (every term in [0, 1], m steps), and
``C = m·B / (m − a·(1 − B))``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def _check(m: int, a: float) -> None:
    if isinstance(m, bool) or not isinstance(m, int):
        raise ValueError(f"agents must be a whole number, got {m!r}")
    if m < 1:
        raise ValueError(f"agents must be at least 1, got {m}")
    if not math.isfinite(a) or a < 0:
        raise ValueError(f"offered load must be a finite number >= 0 erlangs, got {a!r}")


def _check_stable(m: int, a: float) -> None:
    _check(m, a)
    if a >= m:
        raise ValueError(f"offered load {a:g} erlangs needs more than {m} agents: with load >= "
                         "agents the queue grows without bound (Erlang C has no answer)")


def _positive(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def offered_load(arrivals_per_hour: float, aht_seconds: float) -> float:
    """a = λ·AHT in erlangs."""
    if not math.isfinite(arrivals_per_hour) or arrivals_per_hour < 0:
        raise ValueError(f"arrivals per hour must be a finite number >= 0, got "
                         f"{arrivals_per_hour!r}")
    _positive("handle time (seconds)", aht_seconds)
    return arrivals_per_hour * aht_seconds / 3600.0


def erlang_b(m: int, a: float) -> float:
    """Blocking probability of M/M/m/m (no queue). Defined for any load."""
    _check(m, a)
    b = 1.0
    for k in range(1, m + 1):
        b = a * b / (k + a * b)
    return b


def p_wait(m: int, a: float) -> float:
    """Erlang C: probability that a case waits (load ``a`` < ``m`` agents)."""
    _check_stable(m, a)
    b = erlang_b(m, a)
    return m * b / (m - a * (1.0 - b))


def asa(m: int, a: float, aht: float) -> float:
    """Average speed of answer in seconds, over all cases."""
    _positive("handle time (seconds)", aht)
    return p_wait(m, a) * aht / (m - a)


def service_level(m: int, a: float, aht: float, t: float) -> float:
    """Fraction of cases answered within ``t`` seconds."""
    _positive("handle time (seconds)", aht)
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"service-level threshold must be a finite number >= 0 s, got {t!r}")
    return 1.0 - p_wait(m, a) * math.exp(-(m - a) * t / aht)


def occupancy(m: int, a: float) -> float:
    """Fraction of agent time spent handling cases."""
    _check_stable(m, a)
    return a / m


@dataclass(frozen=True, slots=True)
class ErlangC:
    agents: int
    offered_load: float
    p_wait: float
    asa_seconds: float
    service_level: float
    occupancy: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def erlang_c(agents: int, arrivals_per_hour: float, aht_seconds: float,
             sl_seconds: float) -> ErlangC:
    """Every Erlang C figure for a staffing, from contact-center units."""
    a = offered_load(arrivals_per_hour, aht_seconds)
    return ErlangC(agents=agents, offered_load=a, p_wait=p_wait(agents, a),
                   asa_seconds=asa(agents, a, aht_seconds),
                   service_level=service_level(agents, a, aht_seconds, sl_seconds),
                   occupancy=occupancy(agents, a))


@dataclass(frozen=True, slots=True)
class ErlangA:
    agents: int
    offered_load: float
    p_wait: float        # an arriving case finds every agent busy
    abandon_rate: float  # an arriving case hangs up before it is answered
    occupancy: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def erlang_a(agents: int, arrivals_per_hour: float, aht_seconds: float,
             patience_seconds: float, max_states: int = 5_000_000) -> ErlangA:
    """M/M/c+M (Erlang A): exponential patience with the given mean; any load.

    Solved exactly as a birth–death chain on the number of cases present (arrival rate λ,
    departure rate min(n, m)·μ + max(n − m, 0)·θ), in log space so that large m cannot
    overflow; the chain is cut where its probabilities fall below 1e-18 of the largest.
    """
    _positive("patience (seconds)", patience_seconds)
    a = offered_load(arrivals_per_hour, aht_seconds)
    _check(agents, a)
    lam, mu, theta = arrivals_per_hour / 3600.0, 1.0 / aht_seconds, 1.0 / patience_seconds
    if lam == 0:
        return ErlangA(agents, 0.0, 0.0, 0.0, 0.0)
    logs = [0.0]
    n = 0
    while True:
        n += 1
        death = min(n, agents) * mu + max(n - agents, 0) * theta
        logs.append(logs[-1] + math.log(lam / death))
        if n > agents and lam < death and logs[-1] < max(logs) - 41.5:  # e^-41.5 ≈ 1e-18
            break
        if n >= max_states:
            raise ValueError(f"patience {patience_seconds:g} s is too long for this load: the "
                             f"queue would exceed {max_states} cases")
    top = max(logs)
    probs = [math.exp(x - top) for x in logs]
    total = sum(probs)
    waiting = sum(probs[agents:]) / total
    abandons_per_s = sum(p * (k - agents) * theta
                         for k, p in enumerate(probs) if k > agents) / total
    abandon = abandons_per_s / lam
    return ErlangA(agents=agents, offered_load=a, p_wait=waiting, abandon_rate=abandon,
                   occupancy=a * (1 - abandon) / agents)


def agents_for_service_level(arrivals_per_hour: float, aht_seconds: float, sl_seconds: float,
                             target: float, max_agents: int = 100_000) -> int:
    """The fewest agents whose Erlang C service level reaches ``target`` (e.g. 0.8)."""
    if not 0 < target < 1:
        raise ValueError(f"target service level must be between 0 and 1, got {target!r}")
    a = offered_load(arrivals_per_hour, aht_seconds)
    m = max(1, math.floor(a) + 1)
    while m <= max_agents:
        if service_level(m, a, aht_seconds, sl_seconds) >= target:
            return m
        m += 1
    raise ValueError(f"no staffing up to {max_agents} agents reaches service level {target}")
