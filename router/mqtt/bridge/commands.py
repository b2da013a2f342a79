"""Commands to devices, durable until receipted.

Contract: ``send`` stores the command first (``sync_commands``), then publishes it (QoS 1,
MQTT 5 message expiry at its ``expires_at``). The edge runs a command once (its outbox keeps
the result) and answers with a receipt. Until then it is published again: every
``command_retry_s`` while the device is online, and all at once when it comes online; an
offline device's copy is the broker's, in its session. Expired commands are marked; old ones
pruned. Publishing never blocks: when the broker is away the rest waits for the next round.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from common.mqtt.client import NotConnected
from protocol import topics
from protocol.messages import Command, Receipt, dumps
from router.mqtt.bridge.context import BridgeContext
from router.mqtt.bridge.settings import BridgeError
from router.store.sync import SyncStore

log = logging.getLogger("baton.bridge")


class Commands:
    def __init__(self, ctx: BridgeContext, sync: SyncStore, parse: Callable[..., Any],
                 device_status: Callable[[str], str | None]):
        self.ctx, self.sync, self._parse, self._device_status = ctx, sync, parse, device_status

    async def send(self, device: str, type: str, args: dict[str, Any] | None = None,
                   ttl_s: float | None = None) -> str:
        """Store a command for ``device`` (durable), then publish it; returns its id."""
        ctx = self.ctx
        site = ctx.site_of.get(device)
        if site is None:
            raise BridgeError(f"unknown device {device!r}; see sites.yaml",
                              reason="unknown_device")
        now = ctx.core.clock.now()
        ttl = ttl_s or ctx.settings.command_ttl_s
        cmd = Command(command_id="cmd-" + uuid.uuid4().hex, type=type, args=args or {},
                      ts=now, expires_at=now + ttl)
        await self.sync.put_command(command_id=cmd.command_id, device=device, site=site,
                                    type=cmd.type, args=cmd.args, created_at=now,
                                    expires_at=cmd.expires_at)
        ctx.stats["commands"] += 1
        await self.send_due(device, resend_all=False, only=cmd.command_id)
        return cmd.command_id

    async def send_due(self, device: str | None, resend_all: bool,
                       only: str | None = None) -> None:
        ctx = self.ctx
        now = ctx.core.clock.now()
        before = now if resend_all else now - ctx.settings.command_retry_s
        rows = await self.sync.due_commands(now, before, device=device)
        sent = []
        for row in rows:
            if only is not None and row["command_id"] != only:
                continue
            if row["device"] not in ctx.site_of:
                continue  # another partition's device: its leader sends it
            if row["sent_at"] is not None and self._device_status(row["device"]) == "offline":
                continue  # the broker holds the last copy for its session
            cmd = Command(command_id=row["command_id"], type=row["type"], args=row["args"],
                          ts=row["created_at"], expires_at=row["expires_at"])
            expiry = None if cmd.expires_at is None else max(1, int(cmd.expires_at - now))
            try:
                ctx.client.publish(topics.topic(row["site"], row["device"], "commands"),
                                   dumps(cmd), qos=1, expiry_s=expiry)
            except NotConnected:
                break
            sent.append(row["command_id"])
        await self.sync.mark_sent(sent, now)
        ctx.stats["commands_sent"] += len(sent)

    async def run(self) -> None:
        ctx, last_prune = self.ctx, 0.0
        while True:
            await asyncio.sleep(max(0.5, ctx.settings.command_retry_s / 2))
            try:
                now = ctx.core.clock.now()
                ctx.stats["commands_expired"] += await self.sync.expire_commands(now)
                if ctx.client.connected.is_set():
                    await self.send_due(None, resend_all=False)
                if now - last_prune > 3600:
                    await self.sync.prune_commands(now - 7 * 86400)
                    last_prune = now
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("command resend failed", extra={"error": str(exc)})

    def receipt_in(self, t: topics.Topic, msg) -> None:
        receipt = self._parse(Receipt, t, msg)
        if receipt is not None:
            self.ctx.work(self._record_receipt(t.device, receipt))

    async def _record_receipt(self, device: str, r: Receipt) -> None:
        ok = await self.sync.set_receipt(r.command_id, device, r.status, r.detail,
                                         self.ctx.core.clock.now())
        self.ctx.stats["receipts" if ok else "receipts_unmatched"] += 1
