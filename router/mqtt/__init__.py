"""MQTT between edges and routers: topics, payloads, the asyncio adapter over paho, the
router bridge and the broker helpers. See docs/protocol.md."""
