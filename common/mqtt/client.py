"""One asyncio MQTT client over paho-mqtt 2.x, shared by the router and the edge.

Constraints (paho's users hit each of these):
- paho's callbacks run holding paho's locks; publishing or waiting inside one deadlocks.
  Here every callback only copies its arguments and hands them to the event loop with
  ``call_soon_threadsafe``; all work happens in the loop.
- Nothing blocks the loop: paho's socket is driven by the loop (``add_reader`` /
  ``add_writer`` → ``loop_read`` / ``loop_write``, which are non-blocking); the blocking
  ``connect`` (DNS, TCP, TLS handshake) runs in a thread.
- Reconnects back off exponentially with jitter, so a fleet does not stampede a broker
  that just came back.
- Each connection gets a fresh paho client: what must survive a disconnect lives with the
  caller (the edge outbox, the router's command table), never in paho's memory. The broker
  session persists (MQTT 5 session expiry, or clean_session=False on 3.1.1).
- The protocol version is configuration per deployment, never probed: "5" (Mosquitto,
  EMQX: session and message expiry, will delay, reason codes) or "3.1.1" (amqtt, the
  embedded demo broker; NATS's MQTT listener). A broker refusing the configured version is
  a connect error that says which setting to change.
- Why this and not aiomqtt: docs/decisions/0012-mqtt-client.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from common.errors import BatonError
from common.tasks import Supervisor

log = logging.getLogger("baton.mqtt")

Protocol = Literal["5", "3.1.1"]
PROTOCOLS: tuple[str, ...] = ("5", "3.1.1")
# Connects block (DNS, TCP, TLS): their own small pool, so a fleet reconnecting at once
# does not starve the default executor.
_CONNECT_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16,
                                                      thread_name_prefix="mqtt-connect")


class MqttError(BatonError):
    """The MQTT adapter's own error; messages say what to do."""

    reason = "mqtt"


class NotConnected(MqttError):
    reason = "mqtt_not_connected"


class _Refused(MqttError):
    def __init__(self, rc: int, message: str):
        super().__init__(message)
        self.rc = rc


@dataclass(frozen=True, slots=True)
class Tls:
    ca_file: str | None = None  # None: the system's trust store
    cert_file: str | None = None  # client certificate (optional)
    key_file: str | None = None
    insecure: bool = False  # skip hostname checks (tests only)


@dataclass(slots=True)
class Settings:
    host: str
    port: int = 1883
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    protocol: Protocol = "5"
    keepalive: int = 30
    session_expiry_s: int = 7 * 86400  # MQTT 5: how long the broker keeps our session
    connect_timeout_s: float = 10.0
    backoff_min_s: float = 0.2
    backoff_max_s: float = 30.0
    max_inflight: int = 100
    tls: Tls | None = None


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True
    delay_s: int = 0  # MQTT 5: not sent if we are back within this time


@dataclass(frozen=True, slots=True)
class Subscription:
    filter: str
    qos: int = 1


@dataclass(slots=True)
class Connection:
    """What the broker granted for the current connection."""

    protocol: str  # "5" | "3.1.1"
    session_present: bool
    granted: dict[str, int] = field(default_factory=dict)  # filter -> QoS, or -1 if refused


def backoff_delay(attempt: int, lo: float, hi: float, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
    cap = min(hi, lo * (2 ** min(attempt, 30)))
    return cap / 2 + rng.uniform(0, cap / 2)


class MqttClient:
    """``async with MqttClient(settings, on_message=...) as c: c.publish(...)``.

    ``on_message`` runs in the event loop for every message received. ``on_connect`` (an
    async function) runs after each successful (re)connect and subscribe, before
    ``connected`` is set; ``on_disconnect`` after each loss.
    """

    def __init__(self, settings: Settings, *, on_message: Callable[[Message], None],
                 subscriptions: list[Subscription] | Callable[[str], list[Subscription]]
                 | None = None, will: Will | Callable[[], Will] | None = None,
                 on_connect: Callable[[Connection], Awaitable[None]] | None = None,
                 on_disconnect: Callable[[], None] | None = None,
                 may_connect: Callable[[], bool] | None = None,
                 rng: random.Random | None = None):
        self.settings = settings
        # A list, or a function of the protocol in use (shared subscriptions need 5).
        self.subscriptions = subscriptions or []
        self.will = will
        self._on_message, self._on_connect, self._on_disconnect = (
            on_message, on_connect, on_disconnect)
        # Asked before every (re)connect: False waits for the next attempt (a partition's
        # leader whose lease may have run out must not take its session back).
        self._may_connect = may_connect
        self._rng = rng or random.Random()
        if settings.protocol not in PROTOCOLS:
            raise MqttError(f"MQTT protocol {settings.protocol!r}: use 5 or 3.1.1 (the "
                            "version the deployment's broker speaks)")
        self._protocol: str = settings.protocol
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._client: paho.Client | None = None
        self._fds: dict[int, set[str]] = {}
        self._connack: asyncio.Future | None = None
        self._suback: dict[int, asyncio.Future] = {}
        self._puback: dict[int, asyncio.Future] = {}
        self._lost: asyncio.Event = asyncio.Event()
        self.tasks: Supervisor | None = None  # per start(): the connection loop, keepalive
        self._misc: asyncio.Task | None = None
        self._up = False  # connected and subscribed: publishing allowed
        self._closing = False
        self.connected = asyncio.Event()
        self.connection: Connection | None = None
        self.connects = 0
        self.last_error: str | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> MqttClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closing = False
        self.tasks = Supervisor(f"mqtt-{self.settings.client_id}", logger=log,
                                context={"client_id": self.settings.client_id})
        self.tasks.spawn(self._run(), "connection")

    async def aclose(self) -> None:
        """Disconnect cleanly (no last will) and stop."""
        self._closing = True
        client = self._client
        if client is not None and self._up:
            client.disconnect()
            client.loop_write()
        if self.tasks is not None:
            await self.tasks.aclose()
        self._drop_client()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    @property
    def protocol(self) -> str:
        return self._protocol

    # --- publishing -----------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                expiry_s: int | None = None) -> int:
        """Queue a message on the current connection; returns its message id. Raises
        NotConnected when there is none: durable data is the caller's to resend."""
        client = self._client
        if client is None or not self._up:
            raise NotConnected(f"not connected to {self._where()}")
        props = None
        if expiry_s is not None and self._protocol == "5":
            props = _expiry_properties(max(1, int(expiry_s)))
        info = client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return info.mid

    async def publish_wait(self, topic: str, payload: bytes, qos: int = 1,
                           retain: bool = False, expiry_s: int | None = None,
                           timeout: float = 10.0) -> int:
        """Publish and wait for the broker's PUBACK; returns its reason code (0 = accepted;
        on MQTT 5 e.g. 135 = not authorized). QoS 1 only."""
        fut = self._loop.create_future()
        mid = self.publish(topic, payload, qos=1, retain=retain, expiry_s=expiry_s)
        self._puback[mid] = fut
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._puback.pop(mid, None)

    # --- the connection loop ----------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            started = time.monotonic()
            try:
                if self._may_connect is not None and not self._may_connect():
                    raise MqttError("not connecting: the owner does not allow it now")
                await self._connect_once()
            except MqttError as exc:
                self.last_error = str(exc)
                log.warning("mqtt connect failed", extra={"broker": self._where(),
                                                          "client_id": self.settings.client_id,
                                                          "error": str(exc)})
            except Exception as exc:  # a bug in a hook must not end the reconnect loop
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("mqtt connection set-up failed",
                              extra={"client_id": self.settings.client_id})
            else:
                await self._lost.wait()
            finally:
                was_connected = self.connected.is_set()
                self.connected.clear()
                self._drop_client()
                if was_connected and self._on_disconnect is not None:
                    self._on_disconnect()
            if self._closing:
                return
            if time.monotonic() - started > 10:
                attempt = 0  # the connection held: start over from the short delay
            delay = backoff_delay(attempt, self.settings.backoff_min_s,
                                  self.settings.backoff_max_s, self._rng)
            attempt += 1
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        protocol = self._protocol
        client = self._new_client(protocol)
        self._client = client
        self._lost = asyncio.Event()
        self._connack = self._loop.create_future()
        s = self.settings
        props = None
        if protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry_s
        try:
            await asyncio.wait_for(self._loop.run_in_executor(
                _CONNECT_POOL, lambda: client.connect(
                    s.host, s.port, s.keepalive,
                    clean_start=False if protocol == "5" else paho.MQTT_CLEAN_START_FIRST_ONLY,
                    properties=props)), s.connect_timeout_s)
            rc, session_present = await asyncio.wait_for(self._connack, s.connect_timeout_s)
        except (OSError, ssl.SSLError, TimeoutError, ValueError) as exc:
            raise MqttError(f"cannot reach {self._where()}: {exc or type(exc).__name__}; "
                            f"check that the broker runs, host/port are right and it speaks "
                            f"MQTT {protocol}") from None
        if rc != 0:
            hint = ""
            if _is_auth_failure(rc):
                hint = ": check the username and password (the device token) and the ACL"
            elif _is_bad_version(rc):
                hint = (f": the broker does not speak MQTT {protocol}; configure the version it "
                        "speaks (BATON_MQTT_PROTOCOL, --mqtt-protocol)")
            raise _Refused(rc, f"{self._where()} refused the connection "
                               f"({_reason_name(rc)}){hint}")
        conn = Connection(protocol=protocol, session_present=session_present)
        if self.subscriptions:
            conn.granted = await self._subscribe(client)
        self.connection = conn
        self.connects += 1
        self.last_error = None
        self._up = True
        if self._on_connect is not None:
            await self._on_connect(conn)
        if not self._lost.is_set():
            self.connected.set()
            log.info("mqtt connected", extra={"broker": self._where(), "protocol": protocol,
                                              "client_id": s.client_id,
                                              "session_present": session_present})

    async def _subscribe(self, client: paho.Client) -> dict[str, int]:
        subs = self.subscriptions
        subs = subs(self._protocol) if callable(subs) else subs
        if self._protocol == "5":
            topics = [(sub.filter, SubscribeOptions(qos=sub.qos)) for sub in subs]
        else:
            topics = [(sub.filter, sub.qos) for sub in subs]
        fut = self._loop.create_future()
        rc, mid = client.subscribe(topics)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise MqttError(f"subscribe failed: {paho.error_string(rc)}")
        self._suback[mid] = fut
        try:
            codes = await asyncio.wait_for(fut, self.settings.connect_timeout_s)
        except TimeoutError:
            raise MqttError(f"{self._where()} did not answer our subscribe") from None
        granted = {}
        for sub, code in zip(subs, codes):
            granted[sub.filter] = code if code < 0x80 else -1
            if code >= 0x80:
                log.error("subscription refused", extra={"filter": sub.filter,
                                                         "reason": _reason_name(code)})
        return granted

    def _new_client(self, protocol: str) -> paho.Client:
        s = self.settings
        kwargs = {} if protocol == "5" else {"clean_session": not s.client_id}
        client = _Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             protocol=paho.MQTTv5 if protocol == "5" else paho.MQTTv311,
                             reconnect_on_failure=False, **kwargs)
        client.suppress_exceptions = True
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(0)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            ctx = ssl.create_default_context(cafile=s.tls.ca_file)
            if s.tls.cert_file:
                ctx.load_cert_chain(s.tls.cert_file, s.tls.key_file)
            if s.tls.insecure:
                ctx.check_hostname = False
            client.tls_set_context(ctx)
        will = self.will() if callable(self.will) else self.will
        if will is not None:
            wprops = None
            if protocol == "5" and will.delay_s:
                wprops = Properties(PacketTypes.WILLMESSAGE)
                wprops.WillDelayInterval = will.delay_s
            client.will_set(will.topic, will.payload, will.qos, will.retain, properties=wprops)
        client.on_connect = self._cb_connect
        client.on_disconnect = self._cb_disconnect
        client.on_message = self._cb_message
        client.on_subscribe = self._cb_subscribe
        client.on_publish = self._cb_publish
        client.on_socket_open = self._cb_socket_open
        client.on_socket_close = self._cb_socket_close
        client.on_socket_register_write = self._cb_register_write
        client.on_socket_unregister_write = self._cb_unregister_write
        return client

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._up = False
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        if client is not None:
            client.on_disconnect = None
            client._sock_close()  # removes our readers through on_socket_close
        for fut in (*self._suback.values(), *self._puback.values()):
            if not fut.done():
                fut.set_exception(NotConnected(f"connection to {self._where()} lost"))
        self._suback.clear()
        self._puback.clear()

    def _where(self) -> str:
        return f"mqtt broker {self.settings.host}:{self.settings.port}"

    # --- paho callbacks: copy the arguments, hand them to the loop, nothing else -----------

    def _hand(self, fn, *args) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _cb_connect(self, client, userdata, flags, reason_code, properties) -> None:
        rc = reason_code.value if isinstance(reason_code, ReasonCode) else int(reason_code)
        self._loop.call_soon_threadsafe(self._connected, client, rc,
                                        bool(flags.session_present))

    def _cb_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._loop.call_soon_threadsafe(self._disconnected, client, str(reason_code))

    def _soon(self, fn, *args) -> None:
        """``fn(*args)`` in the loop, after the current callback. paho calls us from the
        loop's own thread (``loop_read`` in ``_readable``): then a plain ``call_soon``,
        which spares a write to the loop's self-pipe (and its read) per message."""
        if threading.get_ident() == self._loop_thread:
            self._loop.call_soon(fn, *args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _cb_message(self, client, userdata, msg) -> None:
        m = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain))
        self._soon(self._message, client, m)

    def _cb_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        codes = [rc.value if isinstance(rc, ReasonCode) else int(rc) for rc in reason_codes]
        self._soon(self._resolve, self._suback, mid, codes)

    def _cb_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if not self._puback:  # nobody waits for a PUBACK (publish_wait): nothing to do
            return
        rc = reason_code.value if isinstance(reason_code, ReasonCode) else int(reason_code)
        self._soon(self._resolve, self._puback, mid, rc)

    def _cb_socket_open(self, client, userdata, sock) -> None:
        try:  # small QoS 1 packets and their acks must not wait for Nagle + delayed ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not TCP (unix socket)
        self._hand(self._watch, client, sock.fileno(), "r")

    def _cb_socket_close(self, client, userdata, sock) -> None:
        # Called before paho closes the socket; unwatch now when we can, so a new socket
        # reusing the descriptor is never confused with this one.
        self._hand(self._unwatch, sock.fileno(), "rw")

    def _cb_register_write(self, client, userdata, sock) -> None:
        self._hand(self._watch, client, sock.fileno(), "w")

    def _cb_unregister_write(self, client, userdata, sock) -> None:
        self._hand(self._unwatch, sock.fileno(), "w")

    # --- in the loop --------------------------------------------------------------------------

    def _watch(self, client: paho.Client, fd: int, what: str) -> None:
        if client is not self._client or fd < 0:
            return
        modes = self._fds.setdefault(fd, set())
        if "r" in what and "r" not in modes:
            self._loop.add_reader(fd, self._readable, client)
            modes.add("r")
        if "w" in what and "w" not in modes:
            self._loop.add_writer(fd, self._writable, client)
            modes.add("w")

    def _unwatch(self, fd: int, what: str) -> None:
        modes = self._fds.get(fd)
        if not modes:
            return
        if "r" in what and "r" in modes:
            self._loop.remove_reader(fd)
            modes.discard("r")
        if "w" in what and "w" in modes:
            self._loop.remove_writer(fd)
            modes.discard("w")
        if not modes:
            self._fds.pop(fd, None)

    def _readable(self, client: paho.Client) -> None:
        if client is not self._client:
            return
        rc = client.loop_read()
        sock = client.socket()
        # Bytes already read but not yet parsed (our read buffer; TLS keeps decrypted bytes
        # too): the selector cannot see them, so parse them now.
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and sock is not None and (
                client.buffered() or (hasattr(sock, "pending") and sock.pending())):
            rc = client.loop_read()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:  # after the callbacks paho just queued
            self._loop.call_soon(self._lose, client, paho.error_string(rc))

    def _writable(self, client: paho.Client) -> None:
        if client is not self._client:
            return
        rc = client.loop_write()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._loop.call_soon(self._lose, client, paho.error_string(rc))

    def _connected(self, client: paho.Client, rc: int, session_present: bool) -> None:
        if client is self._client and self._connack is not None and not self._connack.done():
            self._connack.set_result((rc, session_present))
            if rc == 0 and not self._closing:
                self._misc = self.tasks.spawn(self._keepalive(client), "keepalive")

    async def _keepalive(self, client: paho.Client) -> None:
        """paho's timers (PINGREQ, and dropping a connection whose PINGRESP is late)."""
        while client is self._client and not self._lost.is_set():
            await asyncio.sleep(1.0)
            if client is self._client and client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lose(client, "keepalive timeout")

    def _disconnected(self, client: paho.Client, reason: str) -> None:
        self._lose(client, reason)

    def _lose(self, client: paho.Client, reason: str) -> None:
        if client is not self._client or self._lost.is_set():
            return
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(OSError(f"connection closed ({reason})"))
        elif not self._closing:
            log.warning("mqtt connection lost", extra={"broker": self._where(),
                                                       "client_id": self.settings.client_id,
                                                       "reason": reason})
        self._lost.set()

    def _message(self, client: paho.Client, msg: Message) -> None:
        if client is not self._client:
            return
        try:
            self._on_message(msg)
        except Exception:  # a bad handler must not take the connection down
            log.exception("mqtt message handler failed", extra={"topic": msg.topic})

    @staticmethod
    def _resolve(table: dict[int, asyncio.Future], mid: int, value) -> None:
        fut = table.get(mid)
        if fut is not None and not fut.done():
            fut.set_result(value)


@functools.lru_cache(maxsize=64)
def _expiry_properties(seconds: int) -> Properties:
    """Shared and never changed: building Properties costs more than the publish."""
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = seconds
    return props


class _Client(paho.Client):
    """paho's client, cheaper per message (paho 2.x; tests/mqtt/test_client.py checks the
    methods overridden here still exist):

    - reads buffered: paho reads a packet in three or more ``recv`` calls (the command byte,
      each length byte, the body); here one ``recv`` of up to 64 KiB feeds them all, and
      ``MqttClient._readable`` parses what is buffered before it waits on the socket again;
    - ``on_message`` called directly when no per-topic callback is registered (we register
      none): paho otherwise walks its topic matcher for every message.
    """

    _READ = 65536

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rbuf, self._rpos = b"", 0

    def buffered(self) -> bool:
        return self._rpos < len(self._rbuf)

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            buf = super()._sock_recv(self._READ)  # raises BlockingIOError when empty
            if not buf:
                return buf  # the peer closed the connection
            pos = 0
        end = pos + bufsize
        if end >= len(buf):
            self._rbuf, self._rpos = b"", 0
            return buf[pos:] if pos else buf
        self._rbuf, self._rpos = buf, end
        return buf[pos:end]

    def _sock_close(self) -> None:
        self._rbuf, self._rpos = b"", 0  # bytes of a closed connection never reach the next
        super()._sock_close()

    def _handle_on_message(self, message) -> None:
        if self._on_message_filtered._root._children:  # per-topic callbacks: paho's way
            return super()._handle_on_message(message)
        on_message = self.on_message
        if on_message is not None:
            with self._in_callback_mutex:
                try:
                    on_message(self, self._userdata, message)
                except Exception as err:
                    self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s",
                                   err)
                    if not self.suppress_exceptions:
                        raise


def _reason_name(rc: int) -> str:
    try:
        return f"{ReasonCode(PacketTypes.CONNACK, identifier=rc).getName()} ({rc})"
    except Exception:
        return f"reason code {rc}"


def _is_bad_version(rc: int) -> bool:
    return rc in (1, 0x84)  # 3.1.1 "unacceptable protocol version" / 5 "unsupported"


def _is_auth_failure(rc: int) -> bool:
    return rc in (4, 5, 0x86, 0x87)
