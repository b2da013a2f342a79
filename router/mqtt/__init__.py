"""The router's side of MQTT: the bridge (intake, acks, presence, commands, case updates),
the signaling relay, broker credentials/ACLs. Topics and payloads live in ``protocol``, the
client adapter in ``common.mqtt``. See docs/protocol.md."""
