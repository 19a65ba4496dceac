"""Call recording to a 16-bit 8 kHz WAV that stays valid through a crash, and what a call's
recording should be (stereo, mono or off; who is heard; pauses).

The header goes out at open; audio is appended in one write about once per second of audio, and
right after each append the RIFF and data sizes are patched in place. So a killed process leaves
a WAV that any reader opens, missing at most the last second; repair() recovers even that header
when the sizes never got written. A call is always written in stereo; a call whose final mode is
mono is mixed down afterwards by downmix_to_mono(), which replaces the file atomically.
"""

from __future__ import annotations

import os
import struct
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gateway.media.frames import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE
from gateway.media.wavfile import WavError

FLUSH_TICKS = 50  # 20 ms ticks between appends and header updates: one second of audio
_HEADER_BYTES = 44
_RIFF_SIZE_AT = 4
_DATA_SIZE_AT = 40
_MAX_DATA_BYTES = 0xFFFFFFFF - (_HEADER_BYTES - 8)
_SILENCE = np.zeros(FRAME_SAMPLES, dtype="<i2")
LAYOUTS = ("stereo", "mono")
MODES = ("stereo", "mono", "off")          # what a queue may say, and what the contact record keeps
PARTICIPANTS = ("Customer", "Agent")       # Connect's RecordedParticipants: caller (left) and agent (right)
_DOWNMIX_CHUNK = SAMPLE_RATE               # sample frames per read while mixing down: one second


def _header(channels: int, data_bytes: int, rate: int = SAMPLE_RATE) -> bytes:
    block_align = 2 * channels
    return b"".join((
        b"RIFF", struct.pack("<I", _HEADER_BYTES - 8 + data_bytes), b"WAVE",
        b"fmt ", struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block_align, block_align, 16),
        b"data", struct.pack("<I", data_bytes),
    ))  # fmt: chunk size 16, PCM, channels, rate, byte rate, block align, bits


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class CallRecorder:
    """Records one call, one write() per 20 ms tick. Stereo puts the caller on the left and the
    agent/gateway on the right; mono sums the two (clipped)."""

    def __init__(self, path: Path, *, stereo: bool = True) -> None:
        self.path = Path(path)
        self.stereo = stereo
        self._channels = 2 if stereo else 1
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        # one second of ticks is gathered in place, so a tick costs no allocation
        self._buffer = np.zeros((FLUSH_TICKS * FRAME_SAMPLES, self._channels), dtype="<i2")
        self._mix = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        self._held = 0                      # ticks in _buffer not yet appended to the file
        self._frames = 0
        self._data_bytes = 0
        self._sides = (True, True)
        self._paused_ticks: int | None = None     # ticks dropped since pause(); None when not paused
        self.pauses: list[dict] = []               # {"at": seconds into the recording, "seconds": length}
        try:
            _write_all(self._fd, _header(self._channels, 0))
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise

    @property
    def duration(self) -> float:
        """Seconds of audio written so far (including audio not yet appended to the file)."""
        return self._frames / SAMPLE_RATE

    @property
    def paused(self) -> bool:
        return self._paused_ticks is not None

    def pause(self) -> bool:
        """Stop writing until resume() (a card number is being said); False if already paused."""
        if self._paused_ticks is not None:
            return False
        self._paused_ticks = 0
        return True

    def resume(self) -> bool:
        """Write again; the pause is added to `pauses`. False if it was not paused."""
        if self._paused_ticks is None:
            return False
        seconds = self._paused_ticks * FRAME_SAMPLES / SAMPLE_RATE
        self.pauses.append({"at": round(self.duration, 3), "seconds": round(seconds, 3)})
        self._paused_ticks = None
        return True

    def record_sides(self, caller: bool, agent: bool) -> None:
        """Which sides are heard; an unheard side is written as silence, and with neither nothing is
        written at all (recording off)."""
        self._sides = (bool(caller), bool(agent))

    def write(self, caller: bytes | None, agent: bytes | None) -> None:
        """Record one 20 ms tick: 320-byte int16 frames per side, None meaning silence."""
        if self._fd is None:
            raise ValueError(f"{self.path}: recorder is closed")
        left, right = _side(caller, "caller"), _side(agent, "agent")
        if self._paused_ticks is not None:
            self._paused_ticks += 1
            return
        if not any(self._sides):
            return
        if not self._sides[0]:
            left = _SILENCE
        if not self._sides[1]:
            right = _SILENCE
        at = self._held * FRAME_SAMPLES
        tick = self._buffer[at : at + FRAME_SAMPLES]
        if self.stereo:
            tick[:, 0], tick[:, 1] = left, right
        else:
            np.add(left, right, out=self._mix, dtype=np.int32)
            np.clip(self._mix, -32768, 32767, out=self._mix)
            tick[:, 0] = self._mix
        self._held += 1
        self._frames += FRAME_SAMPLES
        if self._held >= FLUSH_TICKS:
            self._flush()

    def close(self) -> float:
        """Append what is pending, finalise the header and close (ending a pause); returns the duration
        in seconds."""
        self.resume()
        if self._fd is not None:
            fd = self._fd
            try:
                self._flush()
            finally:
                self._fd = None
                os.close(fd)
        return self.duration

    def __enter__(self) -> CallRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush(self) -> None:
        assert self._fd is not None
        if self._held:
            data = self._buffer[: self._held * FRAME_SAMPLES].tobytes()
            self._held = 0
            _write_all(self._fd, data)
            self._data_bytes += len(data)
        _patch_sizes(self._fd, min(self._data_bytes, _MAX_DATA_BYTES), _HEADER_BYTES - 8, _DATA_SIZE_AT)

    @staticmethod
    def repair(path: Path) -> float:
        """Make the header of a WAV cut short by a crash match its length: the data chunk runs to
        the end of the file, less any partial sample frame (truncated). Returns the duration."""
        name = str(path)
        with open(path, "r+b") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
                raise WavError(f"{name}: not a RIFF/WAVE file")
            pos, fmt = 12, None
            while True:
                f.seek(pos)
                chunk = f.read(8)
                if len(chunk) < 8:
                    raise WavError(f"{name}: no data chunk found (scanned to byte {pos})")
                chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if chunk_id == b"data":
                    break
                if chunk_id == b"fmt ":
                    fmt = f.read(16)
                    if len(fmt) < 16:
                        raise WavError(f"{name}: truncated fmt chunk at byte {pos}")
                pos += 8 + size + (size & 1)
            if fmt is None:
                raise WavError(f"{name}: no fmt chunk before the data chunk at byte {pos}")
            _, _, rate, _, block_align, _ = struct.unpack("<HHIIHH", fmt)
            if block_align == 0 or rate == 0:
                raise WavError(f"{name}: fmt chunk has block align {block_align}, rate {rate}")
            data_at = pos + 8
            available = max(0, os.fstat(f.fileno()).st_size - data_at)
            data_bytes = min(available - available % block_align, _MAX_DATA_BYTES)
            f.truncate(data_at + data_bytes)
            _patch_sizes(f.fileno(), data_bytes, data_at - 8, pos + 4)
        return data_bytes // block_align / rate


def downmix_to_mono(path: Path) -> float:
    """Replace a finished stereo 16-bit recording by its mono mix (the two sides summed, clipped),
    one second at a time so that an hours-long call needs no more memory than a short one. The mix
    goes to a temporary file beside it that is synced and then renamed over the original, so a crash
    leaves either the stereo file or the mono one. A mono file is left as it is. Returns the duration."""
    path = Path(path)
    tmp = path.with_name(path.name + ".mono-tmp")
    try:
        src = wave.open(str(path), "rb")
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not a readable WAV: {exc}") from None
    with src:
        channels, width, rate, frames = src.getnchannels(), src.getsampwidth(), src.getframerate(), src.getnframes()
        if width != 2:
            raise WavError(f"{path}: {8 * width}-bit samples, a call recording is 16-bit")
        if channels == 1:
            return frames / rate
        if channels != 2:
            raise WavError(f"{path}: {channels} channels, a call recording has 1 or 2")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, _header(1, frames * 2, rate))
            done = 0
            while done < frames:
                block = np.frombuffer(src.readframes(_DOWNMIX_CHUNK), dtype="<i2")
                if not len(block):
                    raise WavError(f"{path}: data ends after {done} of {frames} sample frames")
                pairs = block.reshape(-1, 2).astype(np.int32)
                _write_all(fd, np.clip(pairs[:, 0] + pairs[:, 1], -32768, 32767).astype("<i2").tobytes())
                done += len(pairs)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return frames / rate


def wav_channels(path: Path) -> int:
    """The channel count in a WAV's header."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnchannels()
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not a readable WAV: {exc}") from None


@dataclass
class RecordingPolicy:
    """What one call's recording should be. It starts from the gateway's layout with both sides heard;
    the flow (UpdateContactRecordingBehavior) sets who is heard, and may set the layout; a later flow
    setting overrides an earlier one. The queue's setting, applied when the contact is queued, fills
    in only what the flow has not set: "off" silences everyone, "stereo"/"mono" sets the layout."""

    layout: str = "stereo"
    participants: frozenset[str] = frozenset(PARTICIPANTS)
    _flow_participants: bool = field(default=False, init=False, repr=False)
    _flow_layout: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"recording layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")

    @property
    def mode(self) -> str:
        """"stereo", "mono" or "off" (nobody heard)."""
        return self.layout if self.participants else "off"

    @property
    def caller_heard(self) -> bool:
        return "Customer" in self.participants

    @property
    def agent_heard(self) -> bool:
        return "Agent" in self.participants

    def from_flow(self, participants: Iterable[str], layout: str | None = None) -> None:
        chosen = frozenset(participants)
        unknown = sorted(chosen - set(PARTICIPANTS))
        if unknown:
            raise ValueError(f"recorded participants {', '.join(map(repr, unknown))}: use {' and/or '.join(PARTICIPANTS)}")
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"recording layout {layout!r} is not one of {', '.join(LAYOUTS)}")
        self.participants, self._flow_participants = chosen, True
        if layout is not None:
            self.layout, self._flow_layout = layout, True

    def from_queue(self, setting: str | None) -> None:
        if setting is None:
            return
        if setting not in MODES:
            raise ValueError(f"queue recording {setting!r} is not one of {', '.join(MODES)}")
        if not self._flow_participants:
            self.participants = frozenset() if setting == "off" else frozenset(PARTICIPANTS)
        if setting != "off" and not self._flow_layout:
            self.layout = setting


def _patch_sizes(fd: int, data_bytes: int, riff_overhead: int, data_size_at: int) -> None:
    """Two in-place 4-byte writes: the RIFF size and the data size."""
    os.pwrite(fd, struct.pack("<I", riff_overhead + data_bytes), _RIFF_SIZE_AT)
    os.pwrite(fd, struct.pack("<I", data_bytes), data_size_at)


def _side(frame: bytes | None, side: str) -> np.ndarray:
    if frame is None:
        return _SILENCE
    if len(frame) != FRAME_BYTES:
        raise ValueError(f"{side} frame is {len(frame)} bytes, expected {FRAME_BYTES}")
    return np.frombuffer(frame, dtype="<i2")
