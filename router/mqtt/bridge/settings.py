"""The bridge's settings, from code or from the environment (``settings_from_env``).

Contract: the MQTT protocol version is configuration, never probed: ``BATON_MQTT_PROTOCOL``
is ``5`` (default; Mosquitto, EMQX) or ``3.1.1`` (amqtt, NATS's MQTT listener). A wrong
value is an error naming the variable and the choices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from common.mqtt.client import PROTOCOLS, Settings, Tls
from common.errors import BatonError
from router.mqtt.auth import router_client_id, router_credentials


class BridgeError(BatonError):
    """A bridge setting or a command for a device not in sites.yaml."""

    reason = "bridge_refused"


@dataclass(slots=True)
class BridgeSettings:
    mqtt: Settings
    max_seq_ahead: int = 10_000  # edges' outboxes hold at most this many unacked events
    ack_every: int = 32  # during a burst, ack at least this often
    resend_hold_s: float = 2.0  # one resend request per origin and high-water mark per ...
    command_retry_s: float = 10.0
    command_ttl_s: float = 3600.0
    heartbeat_misses: float = 3.0  # offline after this many missed heartbeats
    battery_low: float = 15.0
    # Beyond these, bad input is counted but not stored: per device, so one device's flood
    # cannot crowd out another's dead letters, and in all.
    dead_letters_per_s: float = 5.0
    dead_letters_total_per_s: float = 100.0
    # Each refusal is a store write under the core's lock: a device whose events keep being
    # refused is slowed down to this (its later events wait, unacked), not the others.
    refusals_per_s: float = 5.0
    case_update_ttl_s: int = 86400
    storm_count: int = 5  # gaps/conflicts of one device within storm_window_s → an alert
    storm_window_s: float = 60.0
    # Subscribe to the configured sites' topics only (a partition's leader: its core's
    # configuration holds its sites); False: every site (the single router).
    own_sites_only: bool = False


def settings_from_env(env: dict[str, str] | None = None) -> BridgeSettings | None:
    """BATON_MQTT_HOST (unset: no bridge), BATON_MQTT_PORT, BATON_MQTT_USERNAME,
    BATON_MQTT_PASSWORD, BATON_MQTT_CLIENT_ID, BATON_MQTT_PROTOCOL (5 | 3.1.1; default 5),
    BATON_MQTT_TLS_CA (turns TLS on; a CA file, or "system")."""
    env = os.environ if env is None else env
    host = env.get("BATON_MQTT_HOST")
    if not host:
        return None
    user, password = router_credentials(env)
    tls_ca = env.get("BATON_MQTT_TLS_CA")
    tls = Tls(ca_file=None if tls_ca == "system" else tls_ca) if tls_ca else None
    protocol = env.get("BATON_MQTT_PROTOCOL") or "5"
    if protocol not in PROTOCOLS:
        raise BridgeError(f"BATON_MQTT_PROTOCOL={protocol!r}: use 5 (Mosquitto, EMQX) or "
                          "3.1.1 (a broker that only speaks 3.1.1, e.g. amqtt or NATS)",
                          reason="config_invalid")
    return BridgeSettings(Settings(
        host=host, port=int(env.get("BATON_MQTT_PORT") or (8883 if tls else 1883)),
        client_id=env.get("BATON_MQTT_CLIENT_ID") or router_client_id(password),
        username=user, password=password, protocol=protocol, tls=tls,  # type: ignore[arg-type]
        session_expiry_s=3600))
