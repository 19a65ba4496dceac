"""`callgate line test`: place a test call on a line, play a tone to the far end, listen to what comes
back, and report each direction (the two usual modem faults are one-way audio and no audio at all).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.media.frames import frame_to_array, pcm_to_frames
from gateway.media.tones import dominant_frequency, rms_dbfs, sine
from gateway.modem.line import Call, Line

TEST_TONE_HZ = 1000.0
SILENCE_DBFS = -50.0       # quieter than this is "no audio" (line noise on a real call sits around -60)


class LineTest:
    """One test call. The daemon routes the call's inbound frames to audio_in()."""

    def __init__(self, line: Line, number: str, *, seconds: float = 3.0, clock: Clock = SYSTEM_CLOCK,
                 progress: Callable[[str], None] | None = None) -> None:
        self.line, self.number, self.seconds = line, number, seconds
        self._clock = clock
        self._progress = progress or (lambda stage: None)
        self._out = pcm_to_frames(sine(TEST_TONE_HZ, seconds, amplitude=0.3))
        self._sent = 0
        self._heard: list[np.ndarray] = []
        self.call: Call | None = None

    def next_frame(self) -> bytes:
        if self._sent < len(self._out):
            self._sent += 1
            return self._out[self._sent - 1]
        return b""

    def audio_in(self, frame: bytes) -> None:
        self._heard.append(frame_to_array(frame))

    async def run(self) -> dict:
        line = self.line
        self._progress("dialing")
        line.set_audio_source(self.next_frame)
        try:
            call = self.call = await line.dial(self.number)
            if call.ended:
                return self.report(call)
            self._progress("answered")
            frame_s = line.profile.audio.frame_ms / 1000
            deadline = self._clock.monotonic() + self.seconds + 1.0
            while not call.ended and self._sent < len(self._out) and self._clock.monotonic() < deadline:
                await self._clock.sleep(frame_s * 5)
            await line.hangup("line_test_done")
            return self.report(call)
        finally:
            line.set_audio_source(None)

    def report(self, call: Call) -> dict:
        heard = np.concatenate(self._heard) if self._heard else np.zeros(0, dtype=np.int16)
        level = rms_dbfs(heard) if heard.size else None
        received = {"seconds": round(heard.size / 8000, 2), "level_dbfs": None if level is None else round(level, 1),
                    "dominant_hz": round(dominant_frequency(heard), 0) if heard.size >= 800 else None}
        received["audio"] = bool(level is not None and level > SILENCE_DBFS)
        sent = {"seconds": round(self._sent * self.line.profile.audio.frame_ms / 1000, 2), "tone_hz": TEST_TONE_HZ,
                "frames_written": self.line.counters.get("frames_out", 0)}
        sent["audio"] = sent["frames_written"] > 0
        answered = call.answered_at is not None
        if not answered:
            verdict = f"not answered: {call.end_reason}"
        elif received["audio"] and sent["audio"]:
            verdict = "audio both ways"
        elif sent["audio"]:
            verdict = "one-way audio: nothing heard from the far end"
        else:
            verdict = "no audio: the modem took no frames (audio port or enable command failed)"
        return {"line": self.line.id, "number": self.number, "call_id": call.call_id, "answered": answered,
                "outcome": "answered" if answered else call.end_reason, "progress": [s for s, _ in call.progress],
                "sent": sent, "received": received, "verdict": verdict}
