"""The router's application core (router/service/core/service.py) and its public face:
commands and queries on ``RouterCore``, domain events (events.py), errors with reason codes
(errors.py). Nothing outside this package touches a ``core._`` name or the matching
engine; tests/service/test_boundaries.py checks it."""

from router.service.core.errors import CoreError, Forbidden, Invalid, NotFound, Unavailable
from router.service.core.events import Resync, Subscription
from router.service.core.service import (
    EVENT,
    AppendResult,
    Clock,
    RouterCore,
    SystemClock,
    Unit,
)

__all__ = ["EVENT", "AppendResult", "Clock", "CoreError", "Forbidden", "Invalid", "NotFound",
           "Resync", "RouterCore", "Subscription", "SystemClock", "Unavailable", "Unit"]
