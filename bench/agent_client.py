"""An agent over MQTT for the benchmarks: its own state, offer and reply topics, commands answered by id,
state waits, and a worker thread that hands each offer to the bench's own handling (a subclass)."""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time

import paho.mqtt.client as paho

from bench.common import BenchError

REPLY_TIMEOUT = 10.0        # an agent command -> its reply
STATE_TIMEOUT = 10.0        # an agent state change
WORK_POLL = 0.2             # the worker thread looks at closing/abort this often


class AgentClient:
    """One agent's MQTT connection, subscribed as the dashboard would be.

    Subclasses decide what an offer becomes (`offered`, in paho's thread) and what the worker thread does
    with it (`handle`); `raw_message` sees every message first, for non-JSON topics the subclass subscribes to.
    """

    CLIENT_PREFIX = "bench"
    JOIN_TIMEOUT = REPLY_TIMEOUT + 1

    def __init__(self, agent_id: str, password: str, host: str, port: int, gateway_id: str) -> None:
        self.agent_id, self.password = agent_id, password
        self.base = f"callgate/{gateway_id}"
        self.state: dict = {}
        self._cond = threading.Condition()
        self._replies: dict[str, dict] = {}
        self._n = 0
        self._work: queue.Queue = queue.Queue()
        self._closing = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=f"{self.CLIENT_PREFIX}-{agent_id}-{os.getpid()}", protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for suffix in ("state", "offer", "reply"):
            self.client.subscribe(f"{self.base}/agent/{agent_id}/{suffix}", 1)
        self.client.loop_start()
        self._worker = threading.Thread(target=self._run, name=f"agent-{agent_id}", daemon=True)
        self._worker.start()

    # --- for subclasses -------------------------------------------------------------------------------
    def raw_message(self, topic: str, payload: bytes, received: float) -> bool:
        """True when the message was handled here (paho's thread); the base then ignores it."""
        return False

    def offered(self, offer: dict, received: float):
        """The work item an offer becomes (paho's thread), or None to leave it."""
        return offer

    def handle(self, item) -> None:
        """One work item, in the agent's own thread."""
        raise NotImplementedError

    def running(self) -> bool:
        return not self._closing.is_set()

    def closing(self) -> None:
        """Called once at close(), before the worker thread is joined."""

    # --- MQTT side (paho's thread) --------------------------------------------------------------------
    def _on_message(self, client, userdata, msg) -> None:
        received = time.time()
        topic = msg.topic
        if self.raw_message(topic, msg.payload, received):
            return
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return
        if topic.endswith("/offer"):
            item = self.offered(obj, received)
            if item is not None:
                self._work.put(item)
            return
        with self._cond:
            if topic.endswith("/reply"):
                self._replies[obj.get("id")] = obj
            elif topic.endswith("/state"):
                self.state = obj
            self._cond.notify_all()

    # --- commands and state (any thread) --------------------------------------------------------------
    def command(self, action: str, **fields) -> dict:
        with self._cond:
            self._n += 1
            rid = f"{self.agent_id}-{self._n}"
        self.client.publish(f"{self.base}/agent/{self.agent_id}/cmd",
                            json.dumps({"id": rid, "action": action, **fields}), qos=1)
        with self._cond:
            if not self._cond.wait_for(lambda: rid in self._replies, REPLY_TIMEOUT):
                raise BenchError(f"agent {self.agent_id}: no reply to {action} within {REPLY_TIMEOUT:g} s")
            return self._replies.pop(rid)

    def wait_state(self, predicate, what: str, timeout: float = STATE_TIMEOUT) -> dict:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.state), timeout):
                raise BenchError(f"agent {self.agent_id}: {what} not seen within {timeout:g} s (last: {self.state})")
            return self.state

    def current_state(self) -> dict:
        with self._cond:
            return self.state

    def login(self) -> None:
        """Logs in with the agent's password and goes Available."""
        reply = self.command("login", password=self.password)
        if not reply.get("ok"):
            raise BenchError(f"agent {self.agent_id}: login refused: {reply}")
        self.go_available()

    def go_available(self) -> None:
        reply = self.command("available")
        if not reply.get("ok"):
            raise BenchError(f"agent {self.agent_id}: available refused: {reply}")
        self.wait_state(lambda s: s.get("state") == "Available", "state Available")

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        self.closing()
        self._worker.join(self.JOIN_TIMEOUT)
        self.client.loop_stop()
        self.client.disconnect()

    # --- the agent's own thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while self.running():
            try:
                item = self._work.get(timeout=WORK_POLL)
            except queue.Empty:
                continue
            self.handle(item)
