"""JSON Schemas of what crosses process boundaries, published in docs/schemas/."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter

from protocol.models import PACKET_SCHEMA_VERSION, CaseEvent, ContextPacket

EVENT_SCHEMA_VERSION = "1.0"


def schemas() -> dict[str, dict]:
    event = TypeAdapter(CaseEvent).json_schema()
    event.update({"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"https://baton.example/schemas/case-event-{EVENT_SCHEMA_VERSION}.json",
                  "title": "CaseEvent", "version": EVENT_SCHEMA_VERSION})
    packet = ContextPacket.model_json_schema()
    packet.update({"$schema": "https://json-schema.org/draft/2020-12/schema",
                   "$id": f"https://baton.example/schemas/context-packet-"
                   f"{PACKET_SCHEMA_VERSION}.json", "version": PACKET_SCHEMA_VERSION})
    return {f"case-event-{EVENT_SCHEMA_VERSION}.json": event,
            f"context-packet-{PACKET_SCHEMA_VERSION}.json": packet}


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = out / name
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
