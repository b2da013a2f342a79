"""Which event ids the store holds, answered in memory: a Bloom filter over every stored id.

Constraint: every device event is checked (is its id taken?) before it is applied; even
grouped (router/store/lookups.py), that query was a large share of the sync path's CPU, and
almost every answer is "no". A Bloom filter answers "no" with certainty and "maybe" for an
id it holds (or, rarely, one it does not: ~1 % by the sizing below); only a "maybe" goes to
the database.

Exactness rests on one rule: every id this process stores is added *before* its
transaction commits (an id added for a transaction that then fails is only a false
"maybe"), and the ids stored before this process opened the store are loaded by
``IdIndex.load`` (keyset pages in the background). Until the load is done the index answers
nothing (``ready`` is False) and callers ask the database. Ids written by *another* process
are not seen: the index is used only when this process is the database's one writer of
events (router/store/events.py: not under high availability's fenced partitions); the
unique key on ``case_events.event_id`` stays the last guard either way.

Memory: ~1.3-2 bytes per id (10 bits in the first layer, 2 more in each next one, 6 probes);
layers double in size as ids are added, so there is no limit to set up front, and the false
"maybe"s stay under ~2 % in all (an extra query each).
"""

from __future__ import annotations

_MASK = (1 << 64) - 1


class _Layer:
    __slots__ = ("bits", "nbits", "capacity", "count")

    def __init__(self, capacity: int, bits_per_item: int):
        self.capacity = capacity
        self.nbits = capacity * bits_per_item
        self.bits = bytearray((self.nbits + 7) // 8)
        self.count = 0


class BloomSet:
    """A set of strings that may answer "present" wrongly (~1 %), never "absent" wrongly.
    In-process only: it uses ``hash()``, which is salted per process."""

    PROBES = 6

    def __init__(self, capacity: int = 1 << 17):
        self._layers = [_Layer(capacity, 10)]

    def __len__(self) -> int:
        return sum(layer.count for layer in self._layers)

    def add(self, item: str) -> None:
        layer = self._layers[-1]
        if layer.count >= layer.capacity:
            # Each layer is tighter than the last (10, 12, 14 ... bits per id: ~0.8 %,
            # 0.4 %, 0.2 % ...), so the sum over layers stays under ~2 %.
            layer = _Layer(layer.capacity * 2, layer.nbits // layer.capacity + 2)
            self._layers.append(layer)
        h = hash(item) & _MASK
        step = (h >> 32) | 1
        bits, n = layer.bits, layer.nbits
        for i in range(self.PROBES):
            k = (h + i * step) % n
            bits[k >> 3] |= 1 << (k & 7)
        layer.count += 1

    def __contains__(self, item: str) -> bool:
        h = hash(item) & _MASK
        step = (h >> 32) | 1
        for layer in self._layers:
            bits, n = layer.bits, layer.nbits
            for i in range(self.PROBES):
                k = (h + i * step) % n
                if not bits[k >> 3] & (1 << (k & 7)):
                    break
            else:
                return True
        return False


class IdIndex:
    """The event ids stored, for ``EventStore.event_stored_at``: ``maybe(id)`` is False only
    when the id is certainly not stored (once ``ready``)."""

    def __init__(self) -> None:
        self._ids = BloomSet()
        self.ready = False
        self.loaded = 0  # ids read by the initial load (for logs and tests)

    def add_all(self, event_ids) -> None:
        add = self._ids.add
        for event_id in event_ids:
            add(event_id)

    def maybe(self, event_id: str) -> bool:
        return event_id in self._ids

    async def load(self, pages) -> None:
        """``pages``: an async iterator of lists of stored ids (all of them, by position)."""
        async for ids in pages:
            self.add_all(ids)
            self.loaded += len(ids)
        self.ready = True
