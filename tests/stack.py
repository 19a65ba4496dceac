"""Test harness: a real daemon process on a real emulated SIM7600 (pseudo-terminals) and a real broker.

Used by the end-to-end tests and the dashboard test. Nothing here fakes what the project owns: the
daemon runs as `python -m gateway run`, its modem is hil's emulator on ptys, the broker is either the
daemon's embedded amqtt or a mosquitto process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho

from gateway.center.passwords import hash_password
from hil.sim7600 import Sim7600Emulator

REPO = Path(__file__).resolve().parents[1]
DEMO_FLOW = REPO / "deploy" / "demo" / "flow-main.json"
AGENTS = {"alice": "alice-pass", "bob": "bob-pass"}
READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A mosquitto process with a TCP and a WebSockets listener on free loopback ports."""

    def __init__(self, workdir: Path) -> None:
        self.tcp_port, self.ws_port = free_port(), free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
            f"set_tcp_nodelay true\nlistener {self.tcp_port} 127.0.0.1\nprotocol mqtt\n"
            f"listener {self.ws_port} 127.0.0.1\nprotocol websockets\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/mqtt"

    def start(self) -> "Mosquitto":
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "wb"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def write_config(path: Path, *, gateway_id: str, data_dir: Path, lines: list[dict], broker: Mosquitto | None,
                 web_port: int, extra: str = "") -> None:
    out = [f'[gateway]\nid = "{gateway_id}"\ndata_dir = "{data_dir}"\n']
    if broker is None:
        out.append(f"[mqtt]\nembedded_tcp_port = {free_port()}\nembedded_ws_port = {free_port()}\n")
    else:
        out.append(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.tcp_port}\nws_url = "{broker.ws_url}"\n')
    out.append(f'[web]\nport = {web_port}\n')
    out.append('[[queues]]\nid = "support"\nname = "Support"\nacw_timeout = 30\noffer_timeout = 20\n')
    for agent, password in AGENTS.items():
        out.append(f'[[agents]]\nid = "{agent}"\nname = "{agent.title()}"\npassword_hash = "{hash_password(password, iterations=2000)}"\n')
    for line in lines:
        out.append("[[lines]]\n" + "".join(f'{k} = "{v}"\n' for k, v in line.items()))
    path.write_text("\n".join(out) + extra)


@dataclass
class Stack:
    emulator: Sim7600Emulator
    gateway_id: str
    data_dir: Path
    config: Path
    proc: subprocess.Popen
    mqtt_host: str
    mqtt_port: int
    ws_url: str
    dashboard_url: str
    agents: dict = field(default_factory=lambda: dict(AGENTS))
    log_path: Path | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True,
                              timeout=60, check=check, env=dict(os.environ, CALLGATE_CONFIG=str(self.config)))


def start_daemon(config: Path, data_dir: Path, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gateway", "run", "-c", str(config)],
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, cwd=REPO)


def wait_ready(data_dir: Path, proc: subprocess.Popen, log_path: Path, timeout: float = READY_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    state_file = data_dir / "daemon.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        if state_file.exists():
            try:
                return json.loads(state_file.read_text())
            except ValueError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"daemon not ready after {timeout} s:\n{log_path.read_text(errors='replace')}")


def stop_daemon(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def launch(tmp_path: Path, flow: Path, *, profile: str = "simcom_sim7600", extra: str = "",
           ring_interval: float = 2.0, broker: Mosquitto | None = None) -> Stack:
    """One emulated SIM7600 on ptys and a daemon answering it with `flow` (the embedded broker unless
    `broker` is given)."""
    emulator = Sim7600Emulator(ring_interval=ring_interval)
    emulator.start()
    data_dir, config, log_path = tmp_path / "data", tmp_path / "callgate.toml", tmp_path / "daemon.log"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=data_dir, broker=broker, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": profile, "at_port": emulator.at_port,
                         "audio_port": emulator.audio_port, "flow": str(flow), "number": "+15550000000"}],
                 extra=extra)
    proc = start_daemon(config, data_dir, log_path)
    try:
        state = wait_ready(data_dir, proc, log_path)
    except Exception:
        emulator.stop()
        stop_daemon(proc)
        raise
    return Stack(emulator=emulator, gateway_id=state["gateway_id"], data_dir=data_dir, config=config, proc=proc,
                 mqtt_host=state["mqtt_host"], mqtt_port=state["mqtt_port"], ws_url=state["ws_url"],
                 dashboard_url=state["dashboard"], log_path=log_path)


def wait_until(predicate, timeout: float, what: str, stack: Stack, poll: float = 0.01):
    """predicate()'s first true value within `timeout` s; else fail with the daemon's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}; daemon log:\n{stack.log()[-3000:]}")


class AgentClient:
    """An agent as an MQTT client: collects every message under the gateway's topics."""

    def __init__(self, stack: Stack, agent_id: str) -> None:
        self.stack, self.agent_id = stack, agent_id
        self.base = f"callgate/{stack.gateway_id}"
        self.messages: list[tuple[float, str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._n = 0
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        self.client.connect(stack.mqtt_host, stack.mqtt_port, keepalive=30)
        self.client.subscribe(f"{self.base}/#", 1)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.messages.append((time.monotonic(), msg.topic, bytes(msg.payload), msg.retain))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "message"):
        """First JSON message (topic, payload) after the start of time for which predicate holds."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for _, topic, payload, _ in self.messages[seen:]:
                    seen += 1
                    try:
                        obj = json.loads(payload)
                    except (ValueError, UnicodeDecodeError):
                        continue
                    if predicate(topic, obj):
                        return obj
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting for {what}; daemon log:\n{self.stack.log()[-4000:]}")
                self._cond.wait(remaining)

    def command(self, action: str, timeout: float = 10.0, **fields) -> dict:
        self._n += 1
        rid = f"{self.agent_id}-{self._n}"
        self.client.publish(f"{self.base}/agent/{self.agent_id}/cmd", json.dumps({"id": rid, "action": action, **fields}), qos=1)
        return self.wait_for(lambda t, o: t.endswith(f"/agent/{self.agent_id}/reply") and o.get("id") == rid,
                             timeout, f"reply to {action}")

    def agent_state(self, state: str, timeout: float = 10.0) -> dict:
        return self.wait_for(lambda t, o: t == f"{self.base}/agent/{self.agent_id}/state" and o.get("state") == state,
                             timeout, f"agent {self.agent_id} state {state}")

    def audio_frames(self, call_id: str, since: float) -> list[bytes]:
        topic = f"{self.base}/call/{call_id}/audio/out"
        with self._cond:
            return [p for t0, t, p, _ in self.messages if t == topic and t0 >= since]
