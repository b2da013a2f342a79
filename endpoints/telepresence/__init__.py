"""The remote worker's page (/telepresence): the desk's script with video first; the worker's
browser signals WebRTC through the worker socket to the device (router.mqtt.signal_relay)."""
