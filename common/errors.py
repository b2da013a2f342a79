"""The one error root of Baton.

Every error the project raises on purpose derives from ``BatonError`` and carries a ``reason``:
a short snake_case code that code can branch on and clients can act on (``seq_gap``,
``target_unavailable``, ``config_invalid``…), while the message stays for humans and says what
to do. Branch on ``reason`` (or the class), never on the message text.

A class sets its default ``reason`` as a class attribute; an instance may narrow it with
``reason=``. Transport layers map reasons to their own codes at their edge: the web layer to
HTTP statuses, the MQTT bridge to refusal classes; the domain never knows about either.
"""

from __future__ import annotations


class BatonError(Exception):
    reason: str = "error"

    def __init__(self, *args: object, reason: str | None = None):
        super().__init__(*args)
        if reason is not None:
            self.reason = reason
