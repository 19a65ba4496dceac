"""The zero-config broker: amqtt started inside the daemon's event loop on loopback, TCP and WebSockets."""

from __future__ import annotations

import logging
import socket

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0


class BrokerStartError(RuntimeError):
    """The embedded broker could not listen (port taken, amqtt missing)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for tests and for port 0 in the config)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """amqtt in-process: MQTT 3.1.1 over TCP for the daemon, over WebSockets for browsers."""

    def __init__(self, host: str = "127.0.0.1", tcp_port: int = 1883, ws_port: int = 9001) -> None:
        self.host = host
        self.tcp_port = tcp_port or free_port(host)
        self.ws_port = ws_port or free_port(host)
        self._broker = None

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}/mqtt"

    async def start(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:  # pragma: no cover - amqtt is a dependency
            raise BrokerStartError(f"embedded broker unavailable: {exc}") from exc
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        config = {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{self.host}:{self.tcp_port}"},
                "ws": {"type": "ws", "bind": f"{self.host}:{self.ws_port}"},
            },
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        broker = Broker(config)
        try:
            await broker.start()
        except Exception as exc:
            raise BrokerStartError(
                f"embedded broker could not listen on {self.host}:{self.tcp_port} (tcp) / "
                f"{self.ws_port} (ws): {exc}") from exc
        self._broker = broker
        log.info("embedded MQTT broker on tcp %s:%d and %s", self.host, self.tcp_port, self.ws_url)

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            try:
                await broker.shutdown()
            except Exception:  # shutting down: nothing left to serve
                log.debug("broker shutdown raised", exc_info=True)
