"""Evidence for 0012 (run: pip install aiomqtt==2.5.1; python scripts/mqtt_client_evidence.py
in a scratch directory; needs mosquitto and mosquitto_passwd). aiomqtt 2.5.1 vs Baton's client on Mosquitto 2.0.11 (ACL: user dev may write a/# only)."""
import asyncio, json, os, subprocess, sys, time, socket
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import aiomqtt
from paho.mqtt.enums import MQTTProtocolVersion
from common.mqtt.client import MqttClient, Settings

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

port = free_port()
subprocess.run(["mosquitto_passwd", "-c", "-b", "pw", "dev", "secret"], check=True)
open("acl", "w").write("user dev\ntopic readwrite a/#\n")
open("m.conf", "w").write(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file pw\nacl_file acl\n"
                          "max_inflight_messages 100\nmax_queued_messages 100000\n")
broker = subprocess.Popen(["mosquitto", "-c", "m.conf"], stderr=subprocess.DEVNULL)
time.sleep(0.5)
N, PAYLOAD = 5000, b"x" * 300

async def main():
    out = {}
    # 1. MQTT 5 publish to a topic the ACL denies: the broker answers PUBACK 135.
    async with aiomqtt.Client("127.0.0.1", port, username="dev", password="secret",
                              identifier="aio-deny", protocol=MQTTProtocolVersion.MQTTv5) as c:
        try:
            r = await c.publish("b/forbidden", b"{}", qos=1)
            out["aiomqtt_denied_publish"] = f"returned {r!r}, no error"
        except Exception as e:
            out["aiomqtt_denied_publish"] = f"raised {e!r}"
    b = MqttClient(Settings("127.0.0.1", port, client_id="baton-deny", username="dev", password="secret"),
                   on_message=lambda m: None)
    async with b:
        await b.wait_connected(5)
        out["baton_denied_publish_rc"] = await b.publish_wait("b/forbidden", b"{}")
        # 3. throughput: N QoS 1 publishes, pipelined (sync publish; wait for the last PUBACK)
        t = time.perf_counter()
        for i in range(N - 1):
            b.publish("a/x", PAYLOAD, qos=1)
        await b.publish_wait("a/x", PAYLOAD)
        out["baton_pipelined_msgs_per_s"] = round(N / (time.perf_counter() - t))
    async with aiomqtt.Client("127.0.0.1", port, username="dev", password="secret",
                              identifier="aio-tp", protocol=MQTTProtocolVersion.MQTTv5,
                              max_inflight_messages=100) as c:
        c.pending_calls_threshold = 10**6  # fair: no warning per call
        t = time.perf_counter()
        for i in range(N):
            await c.publish("a/x", PAYLOAD, qos=1)
        out["aiomqtt_awaited_msgs_per_s"] = round(N / (time.perf_counter() - t))
        t = time.perf_counter()
        for k in range(0, N, 128):
            await asyncio.gather(*(c.publish("a/x", PAYLOAD, qos=1) for _ in range(min(128, N - k))))
        out["aiomqtt_gather128_msgs_per_s"] = round(N / (time.perf_counter() - t))
    out["aiomqtt_session_present_exposed"] = any("session" in a for a in dir(aiomqtt.Client))
    print(json.dumps(out))

try:
    asyncio.run(main())
finally:
    broker.terminate()
