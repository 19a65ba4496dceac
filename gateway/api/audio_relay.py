"""Per-call audio between the modem and the agent's browser over MQTT (µ-law, QoS 0, sequenced).

send() takes the caller's 20 ms PCM frames and publishes them at once on …/call/<id>/audio/out.
Frames from the agent arrive on …/agent/<agent>/audio/<call> into a jitter buffer; next_frame()
gives the modem one 20 ms PCM frame per tick. Latency inside the daemon is sampled both ways.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from gateway.api import audio_frames
from gateway.api.topics import Topics
from gateway.media.frames import FRAME_SAMPLES
from gateway.media.g711 import ulaw_decode, ulaw_encode
from gateway.media.jitter import JitterBuffer

log = logging.getLogger(__name__)

LATENCY_SAMPLES = 3000      # per direction, newest kept


class AudioRelay:
    def __init__(self, mqtt, topics: Topics, call_id: str, agent_id: str, *, frame_ms: int = 20,
                 wall_ms: Callable[[], float] = lambda: time.time() * 1000) -> None:
        self._mqtt = mqtt
        self.call_id, self.agent_id = call_id, agent_id
        self._out_topic = topics.call_audio_out(call_id)
        self._in_topic = topics.agent_audio(agent_id, call_id)
        self._samples_per_msg = 8 * frame_ms
        self._wall_ms = wall_ms
        self._seq = 0
        self._pending = bytearray()          # µ-law awaiting a full outgoing message
        self._jitter = JitterBuffer()
        self._rx_pcm = np.zeros(0, dtype=np.int16)
        self._rx_arrival: float | None = None
        self.sent = 0
        self.bad_frames = 0
        self.latency_out: deque[float] = deque(maxlen=LATENCY_SAMPLES)   # seconds, modem read -> publish
        self.latency_in: deque[float] = deque(maxlen=LATENCY_SAMPLES)    # seconds, MQTT arrival -> modem write

    @property
    def jitter_stats(self) -> dict:
        return dict(self._jitter.stats)

    def summary(self) -> dict:
        """Counters and in-daemon latency percentiles (ms) for the contact record."""
        out = {f"agent_{k}": v for k, v in self._jitter.stats.items()}
        out.update(frames_to_agent=self.sent, bad_agent_frames=self.bad_frames)
        for name, samples in (("to_agent", self.latency_out), ("from_agent", self.latency_in)):
            if samples:
                ms = np.sort(np.fromiter(samples, dtype=float)) * 1000
                out[f"latency_{name}_p50_ms"] = round(float(ms[len(ms) // 2]), 3)
                out[f"latency_{name}_p99_ms"] = round(float(ms[min(len(ms) - 1, int(len(ms) * 0.99))]), 3)
        return out

    def start(self) -> None:
        self._mqtt.subscribe(self._in_topic, self._on_agent_frame, qos=0)

    def stop(self) -> None:
        self._mqtt.unsubscribe(self._in_topic)

    def send(self, pcm_frame: bytes, read_at: float | None = None) -> None:
        self._pending += ulaw_encode(np.frombuffer(pcm_frame, dtype="<i2"))
        if len(self._pending) < self._samples_per_msg:
            return
        payload = audio_frames.pack(self._seq, self._wall_ms(), bytes(self._pending[: self._samples_per_msg]))
        del self._pending[: self._samples_per_msg]
        self._seq += 1
        if self._mqtt.publish(self._out_topic, payload, qos=0):
            self.sent += 1
        if read_at is not None:
            self.latency_out.append(time.perf_counter() - read_at)

    def next_frame(self) -> bytes | None:
        """One 20 ms PCM frame for the modem, or None when the agent has nothing buffered."""
        if len(self._rx_pcm) < FRAME_SAMPLES:
            item = self._jitter.pop()
            if item is None:
                return None
            ulaw, self._rx_arrival = item
            self._rx_pcm = np.concatenate([self._rx_pcm, ulaw_decode(ulaw)])
        frame, self._rx_pcm = self._rx_pcm[:FRAME_SAMPLES], self._rx_pcm[FRAME_SAMPLES:]
        if self._rx_arrival is not None:
            self.latency_in.append(time.perf_counter() - self._rx_arrival)
            self._rx_arrival = None
        return frame.astype("<i2").tobytes()

    def _on_agent_frame(self, topic: str, payload: bytes) -> None:
        try:
            seq, _sent, ulaw = audio_frames.unpack(payload)
        except audio_frames.AudioFrameError as exc:
            self.bad_frames += 1
            if self.bad_frames <= 3:
                log.warning("%s: %s (dropped)", topic, exc)
            return
        self._jitter.push(seq, (ulaw, time.perf_counter()))
