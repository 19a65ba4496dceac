"""Call recording to a 16-bit 8 kHz WAV that stays valid through a crash.

The header goes out at open; audio is appended in one write about once per second of audio, and
right after each append the RIFF and data sizes are patched in place. So a killed process leaves
a WAV that any reader opens, missing at most the last second; repair() recovers even that header
when the sizes never got written.
"""

from __future__ import annotations

import os
import struct
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


def _header(channels: int, data_bytes: int) -> bytes:
    block_align = 2 * channels
    return b"".join((
        b"RIFF", struct.pack("<I", _HEADER_BYTES - 8 + data_bytes), b"WAVE",
        b"fmt ", struct.pack("<IHHIIHH", 16, 1, channels, SAMPLE_RATE, SAMPLE_RATE * block_align, block_align, 16),
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
        self._pending: list[bytes] = []
        self._frames = 0
        self._data_bytes = 0
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

    def write(self, caller: bytes | None, agent: bytes | None) -> None:
        """Record one 20 ms tick: 320-byte int16 frames per side, None meaning silence."""
        if self._fd is None:
            raise ValueError(f"{self.path}: recorder is closed")
        left, right = _side(caller, "caller"), _side(agent, "agent")
        if self.stereo:
            tick = np.empty((FRAME_SAMPLES, 2), dtype="<i2")
            tick[:, 0], tick[:, 1] = left, right
        else:
            mixed = left.astype(np.int32) + right
            tick = np.clip(mixed, -32768, 32767).astype("<i2")
        self._pending.append(tick.tobytes())
        self._frames += FRAME_SAMPLES
        if len(self._pending) >= FLUSH_TICKS:
            self._flush()

    def close(self) -> float:
        """Append what is pending, finalise the header and close; returns the duration in seconds."""
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
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
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
