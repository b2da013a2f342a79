"""Devices in partitioned mode: the leader of a partition runs the MQTT bridge for its sites.

One bridge per led partition (its term), built on the term's core, so every write it makes
(events, acks' high-water marks, presence, commands, receipts) goes through the term's fenced
store view (router/ha/fenced.py):

- **Session.** The bridge logs in as ``<router user>-<partition>`` (``baton-router-city``)
  with the router's password, and that is its client id too: Mosquitto binds client ids to
  usernames (``use_username_as_clientid``, docs/security.md), and the generated ACL lets
  that user read and write only its partition's sites (router/mqtt/auth.py). The session
  is persistent (MQTT 5 clean start off, session expiry ``SESSION_EXPIRY_S``, far longer
  than any lease; 3.1.1: clean session off) and its subscriptions are QoS 1 on the
  partition's sites only. Every leader of the partition uses the same id, so the next
  leader resumes the session: what the broker queued while nobody led (the old leader dead,
  the lease not yet expired) is delivered to it.
- **Term end.** ``stop`` disconnects the bridge when the term ends (before the core stops).
  A guard also closes it as soon as the term's last confirmed renewal is older than the
  lease minus one poll — the time after which another router may hold the lease — and the
  bridge never (re)connects outside that window (``may_connect``), so a leader that was
  paused past its lease does not take the session back when it resumes.
- **A deposed leader that still holds the connection** (paused, or cut from PostgreSQL but
  not from the broker): the new leader's connect with the same client id makes Mosquitto
  close the old connection (session takeover); until then the old one may receive
  messages, but every write it tries is refused by the lease fence (``Deposed``) in the
  transaction that would store it, so it acks nothing new (acks only carry durable
  high-water marks) and the edges resend from their outbox to the new leader. A command it
  republishes from the table is idempotent for the edge (it runs a command id once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from common.tasks import Supervisor
from router.ha.leader import Term
from router.ha.partitions import partition_login
from router.mqtt.bridge import Bridge, BridgeSettings

log = logging.getLogger("baton.ha.devices")

SESSION_EXPIRY_S = 3600  # the broker keeps a partition's session this long without a leader


def partition_bridge_settings(base: BridgeSettings, partition: str) -> BridgeSettings:
    user = partition_login(base.mqtt.username or "baton-router", partition)
    mqtt = dataclasses.replace(base.mqtt, client_id=user, username=user,
                               session_expiry_s=max(base.mqtt.session_expiry_s,
                                                    SESSION_EXPIRY_S))
    return dataclasses.replace(base, mqtt=mqtt, own_sites_only=True)


class PartitionBridges:
    """The bridges of the partitions this router leads (``start`` on gain, ``stop`` on
    loss), and the guard that closes a bridge whose term may be over."""

    def __init__(self, settings: BridgeSettings, ttl_s: float, poll_s: float):
        self.settings, self.ttl_s, self.poll_s = settings, ttl_s, poll_s
        self.running: dict[str, tuple[Term, Bridge]] = {}
        self.paused: set[str] = set()  # disconnected by the guard
        self.failed: dict[str, Term] = {}  # terms whose bridge could not start yet
        self.tasks = Supervisor("ha-devices", logger=log)
        self.tasks.keep("guard", self._guard)

    def valid(self, term: Term) -> bool:
        """Whether the term's lease surely still holds: it runs ttl_s from the renewal's
        statement on PostgreSQL's clock, before ``term.renewed``; one poll of margin
        covers the round trip."""
        return time.monotonic() - term.renewed < self.ttl_s - self.poll_s

    async def start(self, term: Term) -> None:
        """Start the term's bridge; one that cannot start (the store does not answer its
        first reads) is tried again by the guard while the term lasts."""
        bridge = Bridge(term.core, partition_bridge_settings(self.settings, term.partition),
                        may_connect=lambda: self.valid(term))
        self.running[term.partition] = (term, bridge)
        term.extras["bridge"] = bridge
        try:
            await bridge.start()
        except Exception:  # noqa: BLE001 - retried by the guard; the term goes on meanwhile
            log.exception("starting the partition's bridge failed; trying again",
                          extra={"partition": term.partition})
            await self.stop(term)
            self.failed[term.partition] = term

    async def stop(self, term: Term) -> None:
        if self.failed.get(term.partition) is term:
            del self.failed[term.partition]
        running = self.running.get(term.partition)
        if running is None or running[0] is not term:
            return
        del self.running[term.partition]
        self.paused.discard(term.partition)
        try:
            await asyncio.wait_for(running[1].aclose(), 5.0)
        except Exception:  # noqa: BLE001 - the term ends anyway; Mosquitto kicks a stale holder
            log.exception("stopping the partition's bridge failed",
                          extra={"partition": term.partition})

    async def _guard(self) -> None:
        """Disconnect a bridge whose lease may have run out (the renewals are late: a
        store that does not answer, a paused process); connect it again if its term is
        confirmed once more. A term that is over is stopped by the leadership loop."""
        while True:
            await asyncio.sleep(self.poll_s)
            for pid, term in list(self.failed.items()):
                if self.valid(term):
                    del self.failed[pid]
                    await self.start(term)
            for pid, (term, bridge) in list(self.running.items()):
                valid, paused = self.valid(term), pid in self.paused
                if not valid and not paused:
                    log.warning("the lease may have run out: disconnecting the partition's "
                                "bridge", extra={"partition": pid, "epoch": term.epoch})
                    self.paused.add(pid)
                    await bridge.client.aclose()
                elif valid and paused:
                    self.paused.discard(pid)
                    await bridge.client.start()

    async def aclose(self) -> None:
        await self.tasks.aclose()
        self.failed.clear()
        for term, _ in list(self.running.values()):
            await self.stop(term)
