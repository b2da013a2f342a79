"""The embedded broker (amqtt, MQTT 3.1.1, pure Python) so ``baton demo`` runs alone.
Loopback only and anonymous: production and tests use Mosquitto with passwords and ACLs."""

from __future__ import annotations

import logging

from sandbox.procs import free_port


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        self.host, self.port = host, port or free_port()
        self._broker = None

    async def __aenter__(self) -> EmbeddedBroker:
        from amqtt.broker import Broker

        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self._broker = Broker({
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}}})
        await self._broker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
