"""The asyncio MQTT client adapter shared by the router's bridge and the edge's sync."""
