"""The far end of the call as audio: a 20 ms clock that sends what the test plays (queued clips plus
overlaid tones such as in-band DTMF) down the active audio side and records what the host sends up.
The clock, the clip queue, the DTMF table and play_pcm's argument check serve hil/v253.py too."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Callable

import numpy as np

from gateway.media.frames import FRAME_SAMPLES, SAMPLE_RATE
from gateway.media.wavfile import resample
from hil.gsm.audio import AudioSide

_LOGGER = logging.getLogger("hil.gsm.audio")

FRAME_SECONDS = 0.020
# Longest stall of the loop the clock catches up on by sending the missed frames at once; after a
# longer stall it restarts its schedule (a real module would have dropped them).
MAX_CATCHUP = 0.2

DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}
DTMF_TONE_SECONDS = 0.1


def dtmf_tone(digit: str, seconds: float = DTMF_TONE_SECONDS, amplitude: float = 0.2) -> np.ndarray:
    low, high = DTMF_FREQS[digit]
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = amplitude * 32767 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    return np.clip(np.round(wave), -32768, 32767).astype(np.int16)


def pcm_samples(samples) -> np.ndarray:
    """What a test hands play_pcm(), checked and clipped to int16 (8 kHz is the caller's promise)."""
    array = np.asarray(samples)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError("play_pcm wants a one-dimensional int16 array at 8 kHz")
    return np.clip(array, -32768, 32767).astype(np.int16)


class ClipQueue:
    """Clips heard one after another, read out in pieces of any length."""

    def __init__(self) -> None:
        self._clips: collections.deque[np.ndarray] = collections.deque()
        self._offset = 0

    def append(self, samples: np.ndarray) -> None:
        self._clips.append(samples)

    def clear(self) -> None:
        self._clips.clear()
        self._offset = 0

    def read_into(self, out: np.ndarray) -> int:
        """Copy the next samples into the front of `out`; returns how many (fewer once the queue
        runs dry; the rest of `out` is left as it was)."""
        filled = 0
        while filled < len(out) and self._clips:
            head = self._clips[0]
            take = min(len(out) - filled, len(head) - self._offset)
            out[filled:filled + take] = head[self._offset:self._offset + take]
            filled += take
            self._offset += take
            if self._offset >= len(head):
                self._clips.popleft()
                self._offset = 0
        return filled


async def frame_clock(tick: Callable[[], bool | None], period: float = FRAME_SECONDS,
                      max_catchup: float = MAX_CATCHUP) -> None:
    """Call tick() every `period` seconds until it returns True; after a stall of the loop the
    missed ticks run at once, up to `max_catchup`, beyond which the schedule restarts."""
    start = time.monotonic()
    ticks = 0
    while True:
        ticks += 1
        delay = start + ticks * period - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > max_catchup:
            _LOGGER.warning("audio clock stalled %.3f s; restarting its schedule", -delay)
            start, ticks = time.monotonic(), 0
        if tick():
            return


class AudioEngine:
    """Clocked audio for one emulator; every method runs on the emulator's loop."""

    def __init__(self, sides: list[AudioSide], external: AudioSide | None,
                 route: Callable[[], AudioSide | None]) -> None:
        self.sides = [side for side in sides if side is not None]
        self.external = external
        self._route = route
        self.loop: asyncio.AbstractEventLoop | None = None
        self._active: AudioSide | None = None
        self._task: asyncio.Task | None = None
        self._play = ClipQueue()
        self._overlays: list[list] = []      # [samples, offset]
        self.segments: list[tuple[int, bytearray]] = []

    # ------------------------------------------------------------ control

    def run(self, needed: bool) -> None:
        """Keep the clock running while a call exists or a sound card is attached (whose uplink is
        drained between calls; its own clock plays silence when nothing is sent down)."""
        needed = needed or self.external is not None
        if needed and self._task is None and self.loop is not None:
            self._task = self.loop.create_task(frame_clock(self._guarded_tick))
        elif not needed and self._task is not None:
            self._task.cancel()
            self._task = None
            self._set_active(None)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._active = None

    def play(self, samples: np.ndarray) -> None:
        self._play.append(samples)

    def overlay(self, samples: np.ndarray) -> None:
        self._overlays.append([samples, 0])

    def clear_play(self) -> None:
        self._play.clear()
        self._overlays.clear()

    def capture(self) -> np.ndarray:
        parts = []
        for rate, raw in self.segments:
            samples = np.frombuffer(bytes(raw[: len(raw) // 2 * 2]), "<i2")
            parts.append(samples.astype(np.int16) if rate == SAMPLE_RATE else resample(samples, rate, SAMPLE_RATE))
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    # ------------------------------------------------------------ clock

    def _set_active(self, side: AudioSide | None) -> None:
        if side is self._active:
            return
        for changed in (self._active, side):
            reset = getattr(changed, "reset", None)
            if reset is not None:
                reset()
        self._active = side

    def _guarded_tick(self) -> None:
        try:
            self._tick()
        except Exception:      # a broken side must not stop the clock for good
            _LOGGER.exception("audio tick failed")

    def _tick(self) -> None:
        route = self._route()
        self._set_active(route)
        for side in self.sides:
            data = side.read_uplink()
            if side is route and data:
                rate = getattr(side, "uplink_rate", SAMPLE_RATE)
                if not self.segments or self.segments[-1][0] != rate:
                    self.segments.append((rate, bytearray()))
                self.segments[-1][1].extend(data)
        if route is not None:
            route.write_downlink(self._next_frame().astype("<i2").tobytes())

    def _next_frame(self) -> np.ndarray:
        out = np.zeros(FRAME_SAMPLES, np.int32)
        self._play.read_into(out)
        for item in self._overlays:
            samples, offset = item
            take = min(FRAME_SAMPLES, len(samples) - offset)
            out[:take] += samples[offset:offset + take]
            item[1] = offset + take
        self._overlays = [item for item in self._overlays if item[1] < len(item[0])]
        return np.clip(out, -32768, 32767).astype(np.int16)

