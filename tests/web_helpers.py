"""Test helpers for the agent dashboard: headless Debian Chromium through Playwright with a fake
microphone, a sox tone generator, a throwaway mosquitto, a paho probe, and G.711/frame helpers.

Reusable by any test that drives the dashboard (the daemon end-to-end test included).
"""

from __future__ import annotations

import json
import queue
import socket
import struct
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import paho.mqtt.client as mqtt

CHROMIUM = "/usr/bin/chromium"
AUDIO_HEADER = struct.Struct(">Id")       # seq u32 BE, sent f64 BE (ms since the epoch)
MOSQUITTO_START_TIMEOUT = 5.0
PROBE_CONNECT_TIMEOUT = 5.0


# ----------------------------------------------------------------------------- Chromium

def chromium_args(fake_mic_wav: Path) -> list[str]:
    """Flags for headless Chromium: no network side traffic, fake mic from a WAV, autoplay allowed."""
    return [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_mic_wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    ]


@contextmanager
def chromium_page(fake_mic_wav: Path, *, viewport: tuple[int, int] = (1100, 760)) -> Iterator:
    """A Playwright page in Debian's headless Chromium whose microphone plays fake_mic_wav (looped).

    Console errors, uncaught page errors and HTTP errors are collected in page.cg_errors (list of str).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=chromium_args(Path(fake_mic_wav)))
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}")
                    if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
            page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}")
                    if r.status >= 400 else None)
            page.cg_errors = errors
            yield page
        finally:
            browser.close()


def make_tone_wav(path: Path, freq: float = 600.0, seconds: float = 60.0, rate: int = 16000,
                  gain_db: float = -6.0) -> Path:
    """A mono 16-bit sine WAV made by sox (make it longer than the test: Chromium loops it)."""
    subprocess.run(["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(path),
                    "synth", str(seconds), "sine", str(freq), "gain", "-n", str(gain_db)],
                   check=True, capture_output=True, timeout=30)
    return Path(path)


# ----------------------------------------------------------------------------- audio frames

def _ulaw_table() -> np.ndarray:
    u = (~np.arange(256)) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = ((((u & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


ULAW_DECODE = _ulaw_table()


def ulaw_decode(data: bytes) -> np.ndarray:
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(samples: np.ndarray) -> bytes:
    """int16 samples -> µ-law bytes (G.711, bias 0x84)."""
    x = samples.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def audio_frame(seq: int, ulaw: bytes, sent_ms: float | None = None) -> bytes:
    """A call-audio payload: 12-byte header then µ-law samples."""
    return AUDIO_HEADER.pack(seq, time.time() * 1000.0 if sent_ms is None else sent_ms) + ulaw


def parse_audio_frame(payload: bytes) -> tuple[int, float, bytes]:
    if len(payload) <= AUDIO_HEADER.size:
        raise ValueError(f"audio payload of {len(payload)} bytes has no samples")
    seq, sent = AUDIO_HEADER.unpack_from(payload)
    return seq, sent, payload[AUDIO_HEADER.size:]


def tone_frames(freq: float, count: int, amplitude: float = 0.5, rate: int = 8000,
                frame: int = 160) -> list[bytes]:
    """count consecutive µ-law frames of a continuous sine."""
    n = np.arange(count * frame)
    pcm = np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * n / rate)).astype(np.int16)
    return [ulaw_encode(pcm[i * frame:(i + 1) * frame]) for i in range(count)]


def dominant_frequency(samples, rate: float) -> float:
    """Frequency of the strongest spectral peak (Hann window, parabolic interpolation)."""
    x = np.asarray(samples, dtype=np.float64)
    x = x - x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    return (k + shift) * rate / len(x)


# ----------------------------------------------------------------------------- mosquitto

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mosquitto:
    tcp_port: int
    ws_port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/mqtt"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    """Anonymous mosquitto on free loopback ports (MQTT TCP + WebSockets); killed on exit."""
    tcp_port, ws_port = free_port(), free_port()
    conf = Path(workdir) / "mosquitto.conf"
    conf.write_text(
        "per_listener_settings false\nallow_anonymous true\npersistence false\n"
        "log_dest stderr\nlog_type error\nlog_type warning\n"
        f"listener {tcp_port} 127.0.0.1\nprotocol mqtt\nset_tcp_nodelay true\n"
        f"listener {ws_port} 127.0.0.1\nprotocol websockets\n")
    log_path = Path(workdir) / "mosquitto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + MOSQUITTO_START_TIMEOUT
        for port in (tcp_port, ws_port):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited with {proc.returncode}: {log_path.read_text()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"mosquitto did not listen on {port}: {log_path.read_text()}")
                    time.sleep(0.01)
        yield Mosquitto(tcp_port, ws_port, proc, log_path)
    finally:
        proc.kill()
        proc.wait(timeout=5)


# ----------------------------------------------------------------------------- paho probe

class MqttProbe:
    """A paho client (TCP, MQTT 3.1.1, NODELAY) that records every message it subscribed to."""

    def __init__(self, port: int, host: str = "127.0.0.1", client_id: str = "probe") -> None:
        self.messages: "queue.Queue[tuple[str, bytes]]" = queue.Queue()
        self._connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._connected.wait(PROBE_CONNECT_TIMEOUT):
            raise RuntimeError(f"paho probe could not connect to {host}:{port}")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        sock = client.socket()
        getattr(sock, "_socket", sock).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connected.set()

    def subscribe(self, *topics: str, qos: int = 1) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe([(t, qos) for t in topics])
        if not done.wait(PROBE_CONNECT_TIMEOUT):
            raise RuntimeError(f"no SUBACK for {topics}")

    def publish(self, topic: str, payload, *, qos: int = 1, retain: bool = False) -> None:
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(PROBE_CONNECT_TIMEOUT)

    def expect(self, topic: str, timeout: float = 5.0) -> bytes:
        """The next message on exactly this topic (others that arrive first are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing on {topic} within {timeout} s")
            try:
                t, payload = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if t == topic:
                return payload

    def expect_json(self, topic: str, timeout: float = 5.0) -> dict:
        return json.loads(self.expect(topic, timeout))

    def drain(self) -> list[tuple[str, bytes]]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
