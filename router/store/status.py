from __future__ import annotations

from enum import StrEnum


class AppendStatus(StrEnum):
    applied = "applied"  # the event was stored and the projection updated
    duplicate = "duplicate"  # this exact event was stored before; nothing was written
