"""What crosses a process boundary between the router, the edge and the pages: case events
and the context packet (``models``), the JSON rules for free-form fields (``wire``), the MQTT
topics (``topics``) and payloads (``messages``), WebRTC signaling on MQTT (``signaling``) and
the published JSON Schemas (``schemas``). Imported by both ``router`` and ``edge``; imports
neither (only pydantic). See docs/protocol.md and docs/architecture.md."""
