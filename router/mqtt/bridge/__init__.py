"""The router's MQTT bridge, split by concern (see service.py for the parts)."""

from router.mqtt.bridge.presence import DeviceInfo
from router.mqtt.bridge.service import Bridge
from router.mqtt.bridge.settings import BridgeError, BridgeSettings, settings_from_env

__all__ = ["Bridge", "BridgeError", "BridgeSettings", "DeviceInfo", "settings_from_env"]
