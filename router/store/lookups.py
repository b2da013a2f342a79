"""Point lookups that arrive together are answered by one query (the read side's group
commit).

Constraint: every device event is checked against the store (is its id taken?) before it
is applied; one round trip per event through the database driver's thread costs more than
the rest of the event's path, and the devices' events come in concurrently. So a lookup
that arrives while another query runs waits for the next query, which asks for every key
waiting by then (``WHERE key IN (...)``): under load one round trip answers many events,
alone it costs what a single lookup did.

No task of its own: the first caller runs the query; when it has its answer and keys are
waiting, it hands the turn to one of their callers (who runs the next query) and returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_YOUR_TURN = object()


class GroupedLookup(Generic[K]):
    def __init__(self, fetch: Callable[[list[K]], Awaitable[dict[K, Any]]], *,
                 max_keys: int = 500):
        """``fetch(keys)`` returns the found keys' values (absent: not found)."""
        self._fetch, self._max = fetch, max_keys
        self._waiting: dict[K, list[asyncio.Future]] = {}
        self._running = False
        self.queries = 0  # for tests and benchmarks: round trips made

    async def get(self, key: K) -> Any:
        """The value of ``key``, or None when the store has none."""
        while True:
            if not self._running:
                return await self._lead(key)
            fut = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, []).append(fut)
            try:
                result = await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and fut.result() is _YOUR_TURN:
                    self._hand_off()  # cancelled just after being handed the turn
                raise
            if result is not _YOUR_TURN:
                return result

    async def _lead(self, key: K) -> Any:
        self._running = True
        batch: dict[K, list[asyncio.Future]] = {key: self._waiting.pop(key, [])}
        while self._waiting and len(batch) < self._max:
            k = next(iter(self._waiting))
            batch[k] = self._waiting.pop(k)
        try:
            self.queries += 1
            found = await self._fetch(list(batch))
        except BaseException as exc:
            for k, futs in batch.items():
                for f in futs:
                    if f.done():
                        continue
                    if isinstance(exc, Exception):
                        f.set_exception(exc)
                    else:  # this caller was cancelled: the others wait for the next query
                        self._waiting.setdefault(k, []).append(f)
            raise
        finally:
            self._running = False
            self._hand_off()
        for k, futs in batch.items():
            for f in futs:
                if not f.done():
                    f.set_result(found.get(k))
        return found.get(key)

    def _hand_off(self) -> None:
        """Wake one waiting caller to run the next query (when none is running)."""
        if self._running:
            return
        for k in list(self._waiting):
            futs = self._waiting[k]
            while futs:
                f = futs.pop(0)
                if not f.done():
                    if not futs:
                        del self._waiting[k]
                    f.set_result(_YOUR_TURN)
                    return
            del self._waiting[k]
