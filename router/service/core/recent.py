"""The events of the cases this core opened, kept while they are open, so the packet a
worker gets with an accept is built from memory instead of a store read (one round trip to
the database thread per accept, ~1 ms of CPU: benchmarks/api.py).

What it holds is what the store would answer once the staged units are written: the core
stages every event of its own cases in append order under its lock. A case opened before
a restart, one with more than ``MAX_EVENTS`` events (long conversations) or a closed case is
not kept: its readers go to the store, as before. After a failed write the core rebuilds
from the store and clears this log (``clear``)."""

from __future__ import annotations

from protocol.models import CaseEvent

MAX_EVENTS = 64  # per case: a long conversation is read from the store (bounded memory)


class OpenCaseEvents:
    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self._max = max_events
        self._by_case: dict[str, list[CaseEvent]] = {}

    def staged(self, event: CaseEvent, new_case: bool, terminal: bool) -> None:
        """``event`` was staged; ``new_case``: it opened a case the core did not know."""
        if new_case:
            if not terminal:
                self._by_case[event.case_id] = [event]
            return
        events = self._by_case.get(event.case_id)
        if events is None:
            return
        if terminal or len(events) >= self._max:
            del self._by_case[event.case_id]
            return
        events.append(event)

    def events(self, case_id: str) -> list[CaseEvent] | None:
        """The case's events in append order, or None: read the store."""
        events = self._by_case.get(case_id)
        return None if events is None else list(events)

    def clear(self) -> None:
        self._by_case.clear()

    def __len__(self) -> int:
        return len(self._by_case)
