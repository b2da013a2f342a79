"""A process of several edges for the fault tests: each emits its deterministic events
(tests.mqtt.helpers.event_for) from where its outbox stands, then waits for the acks.

    python -m tests.mqtt.edge_driver --port P --dir D --events N --rate R lab-00 lab-01 …
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from tests.mqtt.helpers import edge, emit_until


async def main(args) -> None:
    async def one(device: str) -> None:
        async with edge(Path(args.dir).parent, device, args.port) as sync:
            await emit_until(sync, device, args.events, args.rate)
            await sync.wait_acked(args.events, timeout=90)

    async with asyncio.TaskGroup() as tg:
        for d in args.devices:
            tg.create_task(one(d))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("devices", nargs="+")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(p.parse_args()))
