"""What the bridge's parts share: the core, the MQTT client, the settings, the counters, the
sites' devices, and two sinks every part may feed without waiting — dead letters and ordered
background work. Built once by ``Bridge``; the parts never reach into each other otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from common.mqtt.client import MqttClient
from router.mqtt.bridge.settings import BridgeSettings
from router.service.core import RouterCore

# dead(class, topic, reason, raw payload): counted, and kept (rate-limited) with its reason.
DeadSink = Callable[[str, str, str, bytes], None]
# work(coroutine): run after the ones queued before it, off the intake path.
WorkSink = Callable[[Coroutine[Any, Any, Any]], None]


@dataclass(slots=True)
class BridgeContext:
    core: RouterCore
    settings: BridgeSettings
    client: MqttClient
    site_of: dict[str, str]  # device → its site (sites.yaml)
    kind_of: dict[str, str]  # device → kiosk | robot
    stats: Counter[str]
    dead: DeadSink
    work: WorkSink
