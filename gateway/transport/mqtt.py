"""The daemon's MQTT connection: paho-mqtt 2.x (MQTT 3.1.1) driven by the asyncio loop, with reconnect.

paho's socket callbacks are hooked to the loop's reader/writer, so every message handler runs in the
loop's thread and no extra thread exists. TCP_NODELAY is set on every socket (Nagle adds ~44 ms).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.supervisor import Supervisor

log = logging.getLogger(__name__)

MISC_INTERVAL = 1.0          # paho keepalive/retry housekeeping
CONNECT_TIMEOUT = 5.0        # socket connect to the broker
FIRST_CONNECT_TIMEOUT = 10.0  # wait_connected() default
RECONNECT_MIN = 0.25
RECONNECT_MAX = 10.0

Handler = Callable[[str, bytes], None]


@dataclass
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class MqttConnection:
    """One client connection; subscriptions survive reconnects; QoS 0 is never queued while offline."""

    def __init__(self, host: str, port: int, *, client_id: str, username: str | None = None,
                 password: str | None = None, transport: str = "tcp", keepalive: int = 30,
                 will: Will | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.host, self.port = host, port
        self._clock = clock
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=paho.MQTTv311, transport=transport)
        self._client.connect_timeout = CONNECT_TIMEOUT
        if username:
            self._client.username_pw_set(username, password)
        if will:
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._keepalive = keepalive
        self._subs: dict[str, tuple[int, Handler]] = {}
        self._connected = asyncio.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks = Supervisor()
        self._on_connect_hooks: list[Callable[[], None]] = []
        self.last_error: str | None = None
        c = self._client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write

    # --- public -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Run hook after every (re)connect, e.g. to republish retained state."""
        self._on_connect_hooks.append(hook)

    async def start(self) -> None:
        """Start connecting in the background; use wait_connected() to wait for the broker."""
        self._loop = asyncio.get_running_loop()
        self._tasks.spawn(self._connect_loop(), "mqtt-connect")
        self._tasks.spawn(self._misc_loop(), "mqtt-misc")

    async def wait_connected(self, timeout: float = FIRST_CONNECT_TIMEOUT) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
            return True
        except TimeoutError:
            return False

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        self._subs[topic_filter] = (qos, handler)
        if self.connected:
            self._client.subscribe(topic_filter, qos)

    def unsubscribe(self, topic_filter: str) -> None:
        if self._subs.pop(topic_filter, None) is not None and self.connected:
            self._client.unsubscribe(topic_filter)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> bool:
        """Send now; False when offline (QoS 0 media is dropped rather than queued stale)."""
        if not self.connected:
            return False
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc == paho.MQTT_ERR_SUCCESS

    async def stop(self, final: list[tuple[str, bytes, bool]] | None = None) -> None:
        """Publish the final messages (e.g. retained offline status), disconnect, stop tasks."""
        self._stopping = True
        if self.connected:
            for topic, payload, retain in final or []:
                self._client.publish(topic, payload, qos=1, retain=retain)
            self._client.loop_write()
            self._client.disconnect()
            self._client.loop_write()
        await self._tasks.shutdown(timeout=2.0)
        sock = self._client.socket()
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)

    # --- internals ----------------------------------------------------------------------------
    async def _connect_loop(self) -> None:
        delay = RECONNECT_MIN
        while not self._stopping:
            if not self.connected and self._client.socket() is None:
                try:
                    self._client.connect(self.host, self.port, keepalive=self._keepalive)
                    delay = RECONNECT_MIN
                except OSError as exc:
                    self.last_error = f"cannot reach MQTT broker {self.host}:{self.port}: {exc}"
                    log.warning("%s; retrying in %.1f s", self.last_error, delay)
                    await self._clock.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX)
                    continue
            await self._clock.sleep(RECONNECT_MIN)

    async def _misc_loop(self) -> None:
        while True:
            self._client.loop_misc()
            await self._clock.sleep(MISC_INTERVAL)

    def _on_socket_open(self, client, userdata, sock) -> None:
        raw = getattr(sock, "_socket", sock)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._loop.add_reader(sock, client.loop_read)

    def _on_socket_close(self, client, userdata, sock) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _on_register_write(self, client, userdata, sock) -> None:
        self._loop.add_writer(sock, client.loop_write)

    def _on_unregister_write(self, client, userdata, sock) -> None:
        self._loop.remove_writer(sock)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"MQTT broker {self.host}:{self.port} refused the connection: {reason_code}"
            log.error("%s", self.last_error)
            return
        self.last_error = None
        for topic_filter, (qos, _) in self._subs.items():
            client.subscribe(topic_filter, qos)
        self._connected.set()
        log.info("connected to MQTT broker %s:%d", self.host, self.port)
        for hook in list(self._on_connect_hooks):
            try:
                hook()
            except Exception:
                log.exception("on-connect hook failed")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stopping:
            self.last_error = f"lost MQTT broker {self.host}:{self.port}: {reason_code}"
            log.warning("%s", self.last_error)

    def _on_message(self, client, userdata, msg) -> None:
        for topic_filter, (_, handler) in list(self._subs.items()):
            if paho.topic_matches_sub(topic_filter, msg.topic):
                try:
                    handler(msg.topic, msg.payload)
                except Exception:
                    log.exception("handler for %s failed on %s", topic_filter, msg.topic)
