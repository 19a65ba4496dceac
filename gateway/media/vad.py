"""Voice activity detection: webrtcvad decides voiced/unvoiced per frame, an endpointer turns that
into speech segments (start delay, hangover), live frame by frame or over a whole file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import webrtcvad

from gateway.media.frames import FRAME_MS, SAMPLE_RATE, as_int16
from gateway.media.wavfile import read_wav

VAD_RATES = (8000, 16000, 32000, 48000)
VAD_FRAME_MS = (10, 20, 30)
AGGRESSIVENESS_LEVELS = (0, 1, 2, 3)
# webrtcvad calls the first 4-5 frames of any stream speech, even faint hiss, until its noise model
# has settled; voiced frames inside this window never start a segment.
DEFAULT_WARMUP_MS = 100


@dataclass(frozen=True)
class Segment:
    """One stretch of speech, in seconds from the start of the stream."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def as_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3)}


@dataclass(frozen=True)
class VadEvent:
    """`kind` is "start" (speech began at `time`, back-dated to its first voiced frame) or "end"
    (speech ended at `time`, the end of its last voiced frame; `segment` holds the whole span)."""

    kind: str
    time: float
    segment: Segment | None = None


def _check_int(name: str, value, allowed=None, minimum=None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if allowed is not None and value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


class Endpointer:
    """Feed it one frame at a time; it reports when speech starts and ends.

    Speech starts after `start_ms` of consecutive voiced frames and ends after `hangover_ms` of
    consecutive unvoiced frames. `aggressiveness` 0..3 is webrtcvad's mode (3 rejects most noise).
    Speech already under way at the very start of a stream is reported from `warmup_ms` on."""

    def __init__(self, aggressiveness: int = 2, start_ms: int = 60, hangover_ms: int = 300,
                 frame_ms: int = FRAME_MS, rate: int = SAMPLE_RATE,
                 warmup_ms: int = DEFAULT_WARMUP_MS) -> None:
        self.aggressiveness = _check_int("aggressiveness", aggressiveness, AGGRESSIVENESS_LEVELS)
        self.start_ms = _check_int("start_ms", start_ms, minimum=0)
        self.hangover_ms = _check_int("hangover_ms", hangover_ms, minimum=0)
        self.frame_ms = _check_int("frame_ms", frame_ms, VAD_FRAME_MS)
        self.rate = _check_int("rate", rate, VAD_RATES)
        self.warmup_ms = _check_int("warmup_ms", warmup_ms, minimum=0)
        self.frame_bytes = self.rate * self.frame_ms // 1000 * 2
        self._frame_s = self.frame_ms / 1000.0
        self._start_frames = max(1, -(-self.start_ms // self.frame_ms))
        self._end_frames = max(1, -(-self.hangover_ms // self.frame_ms))
        self._warmup_frames = -(-self.warmup_ms // self.frame_ms)
        self._vad = webrtcvad.Vad(self.aggressiveness)
        self._frames = 0  # frames fed so far; frame n covers [n, n+1) * frame_s
        self._voiced_run = 0
        self._unvoiced_run = 0
        self._speaking = False
        self._start = 0.0
        self._last_voiced_end = 0.0
        self._done_seconds = 0.0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def speech_seconds(self) -> float:
        """Total speech so far: finished segments plus the one in progress up to its last voiced frame."""
        current = self._last_voiced_end - self._start if self._speaking else 0.0
        return self._done_seconds + current

    @property
    def time(self) -> float:
        """Seconds of audio fed so far."""
        return self._frames * self._frame_s

    def feed(self, frame: bytes) -> list[VadEvent]:
        """Classify one frame (S16LE, `frame_ms` long) and return the events it caused (0, 1 or 2)."""
        if len(frame) != self.frame_bytes:
            raise ValueError(f"VAD frame is {len(frame)} bytes, expected {self.frame_bytes} "
                             f"({self.frame_ms} ms at {self.rate} Hz)")
        voiced = self._vad.is_speech(frame, self.rate) and self._frames >= self._warmup_frames
        index = self._frames
        self._frames += 1
        events: list[VadEvent] = []
        if voiced:
            self._voiced_run += 1
            self._unvoiced_run = 0
            if self._speaking:
                self._last_voiced_end = self._frames * self._frame_s
            elif self._voiced_run >= self._start_frames:
                self._speaking = True
                self._start = (index + 1 - self._voiced_run) * self._frame_s
                self._last_voiced_end = self._frames * self._frame_s
                events.append(VadEvent("start", self._start))
        else:
            self._voiced_run = 0
            self._unvoiced_run += 1
            if self._speaking and self._unvoiced_run >= self._end_frames:
                events.append(self._finish())
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: close a segment still open (at its last voiced frame)."""
        self._voiced_run = self._unvoiced_run = 0
        return [self._finish()] if self._speaking else []

    def _finish(self) -> VadEvent:
        segment = Segment(self._start, self._last_voiced_end)
        self._speaking = False
        self._done_seconds += segment.duration
        return VadEvent("end", segment.end, segment)


def segments_of(samples: np.ndarray, *, rate: int = SAMPLE_RATE, **endpointer_options) -> list[Segment]:
    """Speech segments of a whole int16 mono recording at `rate` (the trailing part frame is padded)."""
    endpointer = Endpointer(rate=rate, **endpointer_options)
    pcm = as_int16(samples)
    step = endpointer.frame_bytes // 2
    usable = -(-pcm.size // step) * step
    padded = np.zeros(usable, dtype="<i2")
    padded[: pcm.size] = pcm
    data = padded.tobytes()
    size = endpointer.frame_bytes
    segments = []
    feed = endpointer.feed
    for offset in range(0, len(data), size):
        for event in feed(data[offset : offset + size]):
            if event.segment is not None:
                segments.append(event.segment)
    segments.extend(event.segment for event in endpointer.flush())
    return segments


def segments_of_file(path: str | Path, **endpointer_options) -> list[Segment]:
    """Speech segments of any WAV file (converted to 8 kHz mono); WavError names a bad file."""
    return segments_of(read_wav(path), **endpointer_options)
