"""Command-line pieces of the MQTT layer, for router/cli.py to wire:

    # baton router
    from router.mqtt.cli import add_router_arguments, bridge_settings
    add_router_arguments(p)                       # --mqtt-host, --mqtt-port, --mqtt-protocol
    app = create_app(cfg, args.db, mqtt=bridge_settings(args))
    # baton demo
    p.add_argument("--mqtt-port", type=int, default=None)   # the embedded broker's port
    # baton mqtt-auth
    from router.mqtt.auth import add_arguments, run_cli
"""

from __future__ import annotations

import argparse
import os

from router.mqtt.bridge import BridgeSettings, settings_from_env


def add_router_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mqtt-host", default=None, help="MQTT broker for the edge bridge "
                   "(default $BATON_MQTT_HOST; unset: no bridge)")
    p.add_argument("--mqtt-port", type=int, default=None,
                   help="default $BATON_MQTT_PORT or 1883")
    p.add_argument("--mqtt-protocol", choices=["5", "3.1.1"], default=None,
                   help="the version the broker speaks (default $BATON_MQTT_PROTOCOL or 5)")


def bridge_settings(args) -> BridgeSettings | None:
    """The flags over the environment (BATON_MQTT_*); None: no bridge."""
    env = dict(os.environ)
    for flag, name in (("mqtt_host", "BATON_MQTT_HOST"), ("mqtt_port", "BATON_MQTT_PORT"),
                       ("mqtt_protocol", "BATON_MQTT_PROTOCOL")):
        value = getattr(args, flag, None)
        if value is not None:
            env[name] = str(value)
    return settings_from_env(env)
