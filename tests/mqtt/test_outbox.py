"""The edge outbox on its own: durable, ordered, bounded with an alarm, pruned by acks."""

from __future__ import annotations

import pytest

from edge.outbox import Outbox, OutboxError, OutboxFull

TURN = {"speaker": "resident", "language": "en", "text": "hello"}


async def test_events_survive_a_restart_in_order_until_acked(tmp_path):
    path = tmp_path / "o.db"
    async with Outbox(path, "kiosk-1") as ob:
        for i in range(5):
            e = await ob.append("c1", "turn", TURN, event_id=f"k-{i}")
            assert e["seq"] == i + 1 and e["origin"] == "kiosk-1"
        assert await ob.ack(2) == 2
    async with Outbox(path, "kiosk-1") as ob:  # as after a crash and a restart
        assert (ob.last_seq, ob.acked, ob.pending) == (5, 2, 3)
        rows = await ob.unacked(0, 100)
        assert [seq for seq, _ in rows] == [3, 4, 5]
        assert b'"event_id":"k-2"' in rows[0][1]
        assert [s for s, _ in await ob.unacked(3, 1)] == [4]
        e = await ob.append("c1", "turn", TURN)
        assert e["seq"] == 6  # never reused


async def test_full_outbox_refuses_with_an_alarm_and_recovers(tmp_path):
    alarms = []
    async with Outbox(tmp_path / "o.db", "kiosk-1", capacity=5,
                      on_alarm=lambda level, info: alarms.append(level)) as ob:
        for _ in range(5):
            await ob.append("c1", "turn", TURN)
        assert alarms == ["high"]
        with pytest.raises(OutboxFull, match="not acknowledged by the router"):
            await ob.append("c1", "turn", TURN)
        assert alarms == ["high", "full"] and ob.last_seq == 5
        await ob.ack(5)
        assert alarms[-1] == "clear"
        assert (await ob.append("c1", "turn", TURN))["seq"] == 6


async def test_invalid_events_are_refused_before_they_are_stored(tmp_path):
    async with Outbox(tmp_path / "o.db", "kiosk-1") as ob:
        with pytest.raises(ValueError, match="payload"):
            await ob.append("c1", "turn", {"speaker": "parrot", "language": "en", "text": "x"})
        assert ob.last_seq == 0


async def test_one_file_per_device(tmp_path):
    async with Outbox(tmp_path / "o.db", "kiosk-1"):
        pass
    with pytest.raises(OutboxError, match="another device"):
        async with Outbox(tmp_path / "o.db", "kiosk-2"):
            pass


async def test_rebase_when_the_router_knows_more_than_the_outbox(tmp_path):
    async with Outbox(tmp_path / "o.db", "kiosk-1") as ob:  # a reinstalled device
        for i in range(3):
            await ob.append("c1", "turn", TURN, event_id=f"new-{i}")
        assert await ob.rebase(40) == 3
        assert (ob.acked, ob.last_seq) == (40, 43)
        rows = await ob.unacked(0, 10)
        assert [s for s, _ in rows] == [41, 42, 43] and b'"seq":41' in rows[0][1]


async def test_commands_are_remembered(tmp_path):
    async with Outbox(tmp_path / "o.db", "kiosk-1") as ob:
        assert await ob.command_status("cmd-1") is None
        await ob.record_command("cmd-1", "done", "ok")
    async with Outbox(tmp_path / "o.db", "kiosk-1") as ob:
        assert await ob.command_status("cmd-1") == ("done", "ok")
