"""Voicemail: record the caller frame by frame until they stop speaking, press a stop key or reach a
maximum length, then keep only the message (leading and trailing silence trimmed) or discard it when
no speech was heard.

While recording, the audio goes to a crash-safe partial WAV next to the message (`<name>.partial.wav`,
written by CallRecorder). At the end the speech span plus a small margin is copied to the message
file, which appears atomically (written, fsynced, renamed) before the partial is removed. `recover`
finishes a partial left behind by a crash the same way.
"""

from __future__ import annotations

import math
import os
import wave
from dataclasses import dataclass
from pathlib import Path

from gateway.media.frames import FRAME_BYTES, FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE
from gateway.media.recorder import CallRecorder
from gateway.media.vad import Endpointer, Segment

MARGIN_SECONDS = 0.25        # audio kept before the first and after the last speech
KEY_TAIL_SECONDS = 0.2       # on a stop key, audio this close to the press is the key's tone, not speech
MIN_SPEECH_SECONDS = 0.2     # less speech than this in a whole message counts as none
SEGMENT_HANGOVER_MS = 300    # silence that splits speech into segments (for speech time and trimming)
SPEECH_START_MS = 100        # voiced run that starts speech: noise at 10 dB SNR makes 60-80 ms blips
MIN_SILENCE_SECONDS = 0.1
MAX_SILENCE_SECONDS = 60.0
MAX_LENGTH_LIMIT = 14400.0   # seconds; the flow block allows less
_COPY_FRAMES = 8000 * 16     # samples per read when copying the kept span (256 KB)
_HEADER_BYTES = 44           # CallRecorder's canonical header

# Why recording stopped (ERROR: the gateway could not go on, e.g. a full disk or a cancelled call).
SILENCE, KEY, MAX_LENGTH, NO_INPUT, HUNG_UP, RESTART, ERROR = (
    "silence", "key", "max_length", "no_input", "hung_up", "gateway_restart", "error")
ENDINGS = (SILENCE, KEY, MAX_LENGTH, NO_INPUT, HUNG_UP, RESTART, ERROR)
# What became of the message.
RECORDED, NO_SPEECH = "recorded", "no_speech"   # plus HUNG_UP: kept, the caller hung up mid-message


@dataclass(frozen=True)
class VoicemailSettings:
    """`silence_seconds` of silence after speech ends the message; with no speech at all it ends
    after `no_input_seconds` (default: the same as `silence_seconds`)."""

    max_seconds: float = 120.0
    silence_seconds: float = 5.0
    no_input_seconds: float | None = None
    aggressiveness: int = 3  # webrtcvad's strictest: steady line noise down to about -30 dBFS is not speech
    margin_seconds: float = MARGIN_SECONDS

    def __post_init__(self) -> None:
        _check_seconds("max_seconds", self.max_seconds, FRAME_MS / 1000, MAX_LENGTH_LIMIT)
        _check_seconds("silence_seconds", self.silence_seconds, MIN_SILENCE_SECONDS, MAX_SILENCE_SECONDS)
        if self.no_input_seconds is not None:
            _check_seconds("no_input_seconds", self.no_input_seconds, MIN_SILENCE_SECONDS, MAX_LENGTH_LIMIT)
        _check_seconds("margin_seconds", self.margin_seconds, 0.0, 5.0)

    @property
    def no_input(self) -> float:
        return self.silence_seconds if self.no_input_seconds is None else self.no_input_seconds


@dataclass(frozen=True)
class VoicemailResult:
    status: str                 # "recorded" | "hung_up" (both kept) | "no_speech" (discarded)
    ended_by: str               # one of ENDINGS
    path: Path | None           # the message file; None when discarded
    seconds: float              # length of the kept message (0 when discarded)
    speech_seconds: float       # speech inside it
    recorded_seconds: float     # everything heard before trimming
    offset: float = 0.0         # where the kept message starts in what was heard

    @property
    def kept(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        return (f"{self.status}, ended by {self.ended_by}: {self.seconds:.2f} s kept, "
                f"{self.speech_seconds:.2f} s speech, {self.recorded_seconds:.2f} s heard")


def _check_seconds(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g} s, got {value:g}")


def partial_path(path: Path) -> Path:
    """Where the audio of the message at `path` is written while it is being recorded."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial.wav")


class Listener:
    """The decisions, without any file: fed caller frames, it says when to stop and which stretch
    of the audio to keep."""

    def __init__(self, settings: VoicemailSettings) -> None:
        self.settings = settings
        hangover = min(SEGMENT_HANGOVER_MS, round(settings.silence_seconds * 1000))
        self._vad = Endpointer(settings.aggressiveness, start_ms=SPEECH_START_MS, hangover_ms=hangover)
        self._segments: list[Segment] = []
        self._speech_start: float | None = None  # of the segment in progress
        self._frames = 0

    @property
    def seconds(self) -> float:
        return self._frames * FRAME_SAMPLES / SAMPLE_RATE

    @property
    def heard_speech(self) -> bool:
        return bool(self._segments) or self._vad.speaking

    def feed(self, frame: bytes) -> str | None:
        """One 20 ms caller frame; returns why recording should stop now (SILENCE, NO_INPUT,
        MAX_LENGTH), or None to go on."""
        for event in self._vad.feed(frame):
            if event.kind == "start":
                self._speech_start = event.time
            elif event.segment is not None:
                self._segments.append(event.segment)
                self._speech_start = None
        self._frames += 1
        now = self.seconds
        if now >= self.settings.max_seconds - 1e-9:
            return MAX_LENGTH
        if self._vad.speaking:
            return None
        if self._segments:
            if now - self._segments[-1].end >= self.settings.silence_seconds - 1e-9:
                return SILENCE
        elif now >= self.settings.no_input - 1e-9:
            return NO_INPUT
        return None

    def speech(self, ended_by: str) -> list[Segment]:
        """The speech segments of the message, the one in progress closed; on a stop key, whatever
        lies in the key's own tone at the very end is left out."""
        segments = list(self._segments)
        if self._vad.speaking:
            segments.extend(e.segment for e in self._vad.flush() if e.segment is not None)
        if ended_by == KEY:
            cut = self.seconds - KEY_TAIL_SECONDS
            segments = [Segment(s.start, min(s.end, cut)) for s in segments if s.start < cut]
        return segments

    def keep(self, ended_by: str) -> tuple[float, float, float] | None:
        """(start, end, speech seconds) of the stretch to keep, None when there is no speech."""
        segments = self.speech(ended_by)
        speech = sum(s.duration for s in segments)
        if speech < MIN_SPEECH_SECONDS:
            return None
        margin = self.settings.margin_seconds
        start = max(0.0, segments[0].start - margin)
        end = min(self.seconds, segments[-1].end + margin)
        return start, end, speech


class VoicemailRecorder:
    """One message. Feed it the caller's frames until `feed` returns a reason to stop or the caller of
    this class decides to (stop key, hang-up), then call `finish(reason)` once."""

    def __init__(self, path: Path, settings: VoicemailSettings = VoicemailSettings()) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.settings = settings
        self.listener = Listener(settings)
        self._recorder: CallRecorder | None = CallRecorder(self.partial, stereo=False)
        self.result: VoicemailResult | None = None

    @property
    def seconds(self) -> float:
        return self.listener.seconds

    def feed(self, frame: bytes) -> str | None:
        if self._recorder is None:
            raise ValueError(f"{self.path}: voicemail already finished")
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"caller frame is {len(frame)} bytes, expected {FRAME_BYTES}")
        self._recorder.write(frame, None)
        return self.listener.feed(frame)

    def finish(self, ended_by: str) -> VoicemailResult:
        """Close the partial file, keep the message (trimmed) or discard it, and say what happened."""
        if ended_by not in ENDINGS:
            raise ValueError(f"unknown voicemail ending {ended_by!r} (one of {', '.join(ENDINGS)})")
        if self.result is not None:
            return self.result
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        self.result = _conclude(self.partial, self.path, self.listener, ended_by)
        return self.result

    def abandon(self) -> None:
        """Stop without deciding: the partial stays as a valid WAV for `recover`."""
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None


def recover(path: Path, settings: VoicemailSettings = VoicemailSettings()) -> VoicemailResult:
    """Finish the message at `path` that a crash interrupted: repair its partial WAV, find the speech
    in it and keep or discard it like a normal ending. Without a partial, an existing message file
    is taken as finished; with neither, the message had no speech."""
    path = Path(path)
    partial = partial_path(path)
    if partial.exists():
        CallRecorder.repair(partial)
        listener = Listener(settings)
        _listen_to_file(partial, listener)
        return _conclude(partial, path, listener, RESTART)
    if path.exists():
        listener = Listener(settings)
        _listen_to_file(path, listener)
        speech = sum(s.duration for s in listener.speech(RESTART))
        return VoicemailResult(RECORDED, RESTART, path, listener.seconds, speech, listener.seconds)
    return VoicemailResult(NO_SPEECH, RESTART, None, 0.0, 0.0, 0.0)


def _conclude(partial: Path, path: Path, listener: Listener, ended_by: str) -> VoicemailResult:
    heard = listener.seconds
    span = listener.keep(ended_by)
    if span is None:
        partial.unlink(missing_ok=True)
        return VoicemailResult(NO_SPEECH, ended_by, None, 0.0, 0.0, heard)
    start, end, speech = span
    first, last = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
    _copy_span(partial, path, first, last)
    partial.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    status = HUNG_UP if ended_by == HUNG_UP else RECORDED
    return VoicemailResult(status, ended_by, path, (last - first) / SAMPLE_RATE, speech, heard, first / SAMPLE_RATE)


def _listen_to_file(path: Path, listener: Listener) -> None:
    """Feed a mono 8 kHz 16-bit WAV to `listener` frame by frame (a short last frame is dropped)."""
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SAMPLE_RATE):
            raise ValueError(f"{path}: not a mono 16-bit {SAMPLE_RATE} Hz voicemail recording")
        while True:
            block = w.readframes(_COPY_FRAMES)
            usable = len(block) - len(block) % FRAME_BYTES
            for offset in range(0, usable, FRAME_BYTES):
                listener.feed(block[offset : offset + FRAME_BYTES])
            if len(block) < _COPY_FRAMES * 2:
                return


def _copy_span(source: Path, dest: Path, first: int, last: int) -> None:
    """Samples [first, last) of the partial WAV into `dest`, which appears complete or not at all."""
    tmp = dest.with_name(f"{dest.name}.tmp")
    try:
        with open(source, "rb") as src, open(tmp, "wb") as out:
            with wave.open(out, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(SAMPLE_RATE)
                src.seek(_HEADER_BYTES + 2 * first)
                remaining = last - first
                while remaining > 0:
                    chunk = src.read(2 * min(remaining, _COPY_FRAMES))
                    if not chunk:
                        break
                    w.writeframes(chunk)
                    remaining -= len(chunk) // 2
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
