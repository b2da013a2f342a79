"""Device events in: validation, per-origin ordering, applying to the core, refusals.

Contract:
- ``validate`` turns a payload into a model or a (class, reason) — oversized, malformed
  JSON, schema — and never raises.
- Events of one origin are applied one after the other, in arrival order, by that origin's
  worker task (owned by the bridge's supervisor); origins run concurrently, which lets the
  core's group commit batch them. At most ``MAX_QUEUED_PER_ORIGIN`` wait per origin: beyond
  that they are dropped unacked (the edge sends them again).
- An event is acked only once durable (``Acks``); seq ≤ durable is a duplicate (answered from
  the store, without the core's lock) or a conflict (another event holds that seq); a seq past
  the next one is a gap (resend request) or, far ahead, a dead letter.
- Input that names the device's next seq but is not a valid event consumes that seq
  (router.device_rules, docs/protocol.md §8): an origin is never blocked behind its own bad
  event. A device whose events keep being refused is slowed to ``refusals_per_s``.
- Core errors are told apart by their reason code, never by their text.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from pydantic import TypeAdapter, ValidationError

from common.tasks import Supervisor
from protocol import topics
from protocol.messages import MAX_EVENT_BYTES
from protocol.models import CaseEvent
from router.device_rules import event_header
from router.mqtt.bridge.acks import Acks
from router.mqtt.bridge.context import BridgeContext
from router.mqtt.bridge.dead_letters import Bucket, DeadLetters
from router.service.core import CoreError
from router.store.errors import StoreError

log = logging.getLogger("baton.bridge")

EVENT = TypeAdapter(CaseEvent)
# Events waiting per origin; an edge keeps at most its window (256) in flight, so only a
# misbehaving one gets here. What is dropped is not acked, so it is sent again.
MAX_QUEUED_PER_ORIGIN = 5000
# An origin's worker waits this long for the origin's next event before it ends: a device
# sending steadily keeps one task instead of a new one per event.
WORKER_LINGER_S = 5.0


def _refusal_stat(exc: CoreError) -> str:
    """The counter for a core error, by its reason code (never its text)."""
    return "store_unavailable" if exc.reason == "unavailable" else f"refused_{exc.reason}"


def raw_text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def validate(model, raw: bytes, limit: int):
    """(the payload as ``model``, None, None) or (None, class, reason)."""
    if len(raw) > limit:
        return None, "oversized", f"{len(raw)} bytes; the limit is {limit}"
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_json(raw), None, None
        return model.model_validate_json(raw), None, None
    except ValidationError as exc:
        errs = exc.errors()
        if any(e["type"] == "json_invalid" for e in errs):
            if "recursion limit" in errs[0]["msg"]:
                return None, "schema", "nested too deep for the parser: flatten it"
            return None, "malformed_json", errs[0]["msg"]
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                          for e in errs[:3])
        return None, "schema", where


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class Intake:
    def __init__(self, ctx: BridgeContext, acks: Acks, dead_letters: DeadLetters,
                 tasks: Supervisor):
        self.ctx, self.acks, self.dead_letters, self.tasks = ctx, acks, dead_letters, tasks
        self._queues: dict[str, deque] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._idle: dict[str, asyncio.Future] = {}  # origins whose worker waits for more
        self._refusal_budget: dict[str, Bucket] = {}
        self._slow: set[str] = set()  # origins over their refusal budget

    def event_in(self, t: topics.Topic, msg) -> None:
        """A message on ``…/events`` (runs in the loop, called by the MQTT client)."""
        ctx = self.ctx
        ctx.stats["received"] += 1
        event, cls, why = validate(EVENT, msg.payload, MAX_EVENT_BYTES)
        if event is None:
            # Input that names this device's next seq consumes it, whatever is wrong with
            # the rest (docs/protocol.md §8); anything else is only dead-lettered.
            head = event_header(msg.payload)
            if head is None or head[0] != t.device:
                return ctx.dead(cls, msg.topic, why, msg.payload)
            return self._enqueue(t, (None, msg, head[1], cls, why, head[2]))
        if event.origin != t.device:
            return ctx.dead("origin_mismatch", msg.topic, f"event origin {event.origin!r} is "
                            f"not the topic's device {t.device!r}", msg.payload)
        self._enqueue(t, (event, msg, event.seq, None, None, None))

    def _enqueue(self, t: topics.Topic, item: tuple) -> None:
        queue = self._queues.setdefault(t.device, deque())
        if len(queue) >= MAX_QUEUED_PER_ORIGIN:
            self.ctx.stats["overload_dropped"] += 1  # not acked: the edge sends it again
            return
        queue.append(item)
        idle = self._idle.pop(t.device, None)
        if idle is not None:
            if not idle.done():
                idle.set_result(None)
        elif t.device not in self._workers:
            self._workers[t.device] = self.tasks.spawn(
                self._origin_worker(t.device, t.site), f"origin-{t.device}", origin=t.device)

    async def _origin_worker(self, origin: str, site: str) -> None:
        queue = self._queues[origin]
        unacked = 0
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not queue:
                    # Wait a while for the origin's next event (it wakes us: _enqueue).
                    more = self._idle[origin] = loop.create_future()
                    timer = loop.call_later(WORKER_LINGER_S, _wake, more)
                    try:
                        await more
                    finally:
                        timer.cancel()
                        if self._idle.get(origin) is more:
                            del self._idle[origin]
                    if not queue:
                        return
                event, msg, seq, cls, why, event_id = queue.popleft()
                try:
                    if event is None:
                        await self._apply_invalid(origin, site, seq, msg, cls, why, event_id)
                    else:
                        await self._apply(origin, site, event, msg)
                except Exception:
                    self.ctx.stats["errors"] += 1
                    log.exception("applying a device event failed", extra={"origin": origin})
                unacked += 1
                if not queue or unacked >= self.ctx.settings.ack_every:
                    self.acks.send(origin, site)
                    unacked = 0
                if origin in self._slow:
                    self._slow.discard(origin)
                    self.ctx.stats["refusals_throttled"] += 1
                    await asyncio.sleep(1 / self.ctx.settings.refusals_per_s)
        finally:
            self._workers.pop(origin, None)
            self._idle.pop(origin, None)

    def _ahead(self, origin: str, site: str, seq: int, msg) -> bool:
        """True (handled) when ``seq`` is past the next one: a gap (resend) or far ahead."""
        ctx = self.ctx
        hw = ctx.core.high_water_of(origin)
        if seq <= hw + 1:
            return False
        ahead = seq - hw
        if ahead > ctx.settings.max_seq_ahead:
            ctx.dead("seq_far_ahead", msg.topic, f"seq {seq} is {ahead} past the "
                     f"high-water mark {hw} (limit {ctx.settings.max_seq_ahead}): was "
                     "the device's outbox replaced?", msg.payload)
        else:
            ctx.stats["gap"] += 1
            self.acks.ask_resend(origin, site)
        return True

    async def _apply(self, origin: str, site: str, event, msg) -> None:
        ctx, core, durable = self.ctx, self.ctx.core, self.acks.durable
        if event.seq <= durable.get(origin, 0):
            # Durable already: answered from the store, without the core's lock.
            held = await core.store.held_at(origin, event.seq)
            if held is None or held[1] in (None, event.event_id):
                ctx.stats["duplicate"] += 1
                return
            return self._conflict(origin, site, event, msg, held[1])
        if self._ahead(origin, site, event.seq, msg):
            return
        try:
            result = await core.take_external(event, device=origin, site=site, may_open=True,
                                              source=f"mqtt:{msg.topic}",
                                              raw=raw_text(msg.payload))
        except CoreError as exc:
            if exc.reason == "seq_gap":
                ctx.stats["gap"] += 1
                return self.acks.ask_resend(origin, site)
            # unavailable (or anything else): not acked, so the edge sends it again
            ctx.stats[_refusal_stat(exc)] += 1
            return
        except StoreError as exc:
            ctx.stats["store_unavailable"] += 1
            log.warning("store unavailable while applying", extra={"error": str(exc)})
            return
        ctx.stats[result.status] += 1
        if result.status in ("applied", "refused"):
            self.acks.raise_to(origin, event.seq)
            if result.status == "refused":
                self._refused(origin, event.seq, result.cls, result.reason)
            return
        if result.status == "seq_conflict":
            ctx.dead(result.cls, msg.topic, result.reason, msg.payload)
            self.acks.storm(origin, site, "seq_conflict")
        if event.seq > durable.get(origin, 0):
            self.acks.raise_to(origin, await core.store.high_water(origin))

    async def _apply_invalid(self, origin: str, site: str, seq: int, msg, cls: str,
                             why: str, event_id: str | None) -> None:
        """Input naming seq ``seq`` of ``origin`` that is not a valid event: its seq is
        consumed and the input kept with the reason."""
        durable = self.acks.durable
        if seq <= durable.get(origin, 0) or self._ahead(origin, site, seq, msg):
            if seq <= durable.get(origin, 0):
                self.ctx.stats["duplicate"] += 1
            return
        try:
            outcome = await self.ctx.core.refuse_seq(
                origin, seq, cls=cls, reason=why, event_id=event_id,
                source=f"mqtt:{msg.topic}", raw=raw_text(msg.payload))
        except CoreError as exc:  # not consumed: the edge sends it again
            self.ctx.stats[_refusal_stat(exc)] += 1
            return
        if outcome == "refused":
            self.acks.raise_to(origin, seq)
            self._refused(origin, seq, cls, why)
        elif outcome == "gap":
            self.ctx.stats["gap"] += 1
            self.acks.ask_resend(origin, site)

    def _refused(self, origin: str, seq: int, cls: str, reason: str) -> None:
        bucket = self._refusal_budget.get(origin)
        if bucket is None:
            per_s = self.ctx.settings.refusals_per_s
            bucket = self._refusal_budget[origin] = Bucket(per_s, burst=4 * per_s)
        if not bucket.take():
            self._slow.add(origin)
        self.dead_letters.count(cls)
        self.ctx.stats["refused_seqs"] += 1
        log.warning("device event refused", extra={"origin": origin, "seq": seq,
                                                   "class": cls, "pii": {"reason": reason}})

    def _conflict(self, origin: str, site: str, event, msg, held: str) -> None:
        self.ctx.stats["seq_conflict"] += 1
        self.ctx.dead("seq_conflict", msg.topic, f"origin {origin!r} seq {event.seq} is "
                      f"taken by another event ({held}): a device continues from its acked "
                      "high-water mark + 1 with new events", msg.payload)
        self.acks.storm(origin, site, "seq_conflict")
