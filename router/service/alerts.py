"""The floor's recent alerts, with a cap per kind: a flood of one kind (a worker toggling
presence, a device reconnecting in a loop) pushes out only older alerts of that kind, never
another kind's (a device offline, a resident waiting too long)."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from typing import Any

PER_KIND = 200  # alerts kept of each kind
KINDS = 64  # kinds kept; beyond it the kind with the oldest latest alert goes


class AlertBuffer:
    def __init__(self, per_kind: int = PER_KIND, kinds: int = KINDS):
        self.per_kind, self.kinds = per_kind, kinds
        self._by_kind: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self._n = itertools.count()

    def append(self, alert: dict[str, Any]) -> None:
        kind = str(alert.get("kind"))
        q = self._by_kind.get(kind)
        if q is None:
            if len(self._by_kind) >= self.kinds:
                stalest = min(self._by_kind, key=lambda k: self._by_kind[k][-1][0])
                del self._by_kind[stalest]
            q = self._by_kind[kind] = deque(maxlen=self.per_kind)
        q.append((next(self._n), alert))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Oldest first, across kinds."""
        merged = sorted(itertools.chain.from_iterable(self._by_kind.values()),
                        key=lambda item: item[0])
        return (alert for _, alert in merged)

    def __len__(self) -> int:
        return sum(len(q) for q in self._by_kind.values())

    def recent(self, limit: int, kind: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` alerts (of ``kind``), oldest first."""
        if kind is not None:
            return [a for _, a in list(self._by_kind.get(kind, ()))[-limit:]] if limit else []
        return list(self)[-limit:] if limit else []
