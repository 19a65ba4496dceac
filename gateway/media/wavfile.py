"""WAV files in and out: any common PCM/float/G.711 WAV read into the 8 kHz int16 mono frame model,
with an anti-aliased numpy resampler; 16-bit PCM written with the stdlib wave module."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import numpy as np

from gateway.media.frames import SAMPLE_RATE, as_int16
from gateway.media.g711 import alaw_decode, ulaw_decode

_PCM, _FLOAT, _ALAW, _ULAW, _EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
_FORMAT_NAMES = {_PCM: "integer PCM", _FLOAT: "float", _ALAW: "A-law", _ULAW: "µ-law"}
_SUPPORTED_WIDTHS = {_PCM: (1, 2, 3, 4), _FLOAT: (4, 8), _ALAW: (1,), _ULAW: (1,)}

# Resampler design: Kaiser-windowed sinc, cut off a little below the lower Nyquist frequency.
RESAMPLE_ROLLOFF = 0.92  # cutoff as a fraction of the lower rate's Nyquist (3.68 kHz at 8 kHz)
RESAMPLE_ZERO_CROSSINGS = 32  # sinc lobes kept on each side of the centre tap
RESAMPLE_KAISER_BETA = 9.0  # about -90 dB side lobes
_RESAMPLE_BLOCK = 2048  # output samples per vectorised step: bounds memory to ~12 MB


class WavError(ValueError):
    """A WAV file that cannot be read; the message names the file and what is wrong."""


def read_wav(path: str | Path, *, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a WAV (8/16/24/32-bit int, 32/64-bit float, A-law, µ-law; any channel count and rate)
    and return it as int16 mono at `rate`. Channels are averaged. OSError and format problems
    are raised as WavError naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise WavError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    audio, src_rate = _decode(str(path), data)
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if src_rate != rate:
        mono = _resample_float(mono, src_rate, rate)
    return _to_int16(mono * 32768.0)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE, channels: int = 1) -> None:
    """Write int16 samples as a 16-bit PCM WAV; with channels > 1 the samples are interleaved
    (a 2-D array of shape (frames, channels) is accepted too)."""
    pcm = as_int16(samples)
    if channels < 1 or pcm.size % channels:
        raise ValueError(f"{path}: {pcm.size} samples do not fill whole frames of {channels} channels")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.astype("<i2").tobytes())


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Change the sample rate with an anti-aliasing windowed-sinc polyphase filter.
    Integer input gives int16 output (rounded, clipped); float input gives float64 output."""
    arr = np.asarray(samples)
    if np.issubdtype(arr.dtype, np.floating):
        return _resample_float(arr.astype(np.float64).reshape(-1), src_rate, dst_rate)
    return _to_int16(_resample_float(as_int16(arr).astype(np.float64), src_rate, dst_rate))


def _to_int16(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


# --- parsing ---------------------------------------------------------------------------------


def _decode(name: str, data: bytes) -> tuple[np.ndarray, int]:
    """Parse RIFF/WAVE bytes into float64 samples in [-1, 1) shaped (frames, channels)."""
    if len(data) < 12:
        if data[:4] == b"RIFF":
            raise WavError(f"{name}: truncated header ({len(data)} bytes, a WAV needs at least 44)")
        raise WavError(f"{name}: not a RIFF/WAVE file")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        if data[:4] == b"RF64":
            raise WavError(f"{name}: RF64 (64-bit RIFF) is not supported")
        raise WavError(f"{name}: not a RIFF/WAVE file")
    fmt_at = data_at = None
    data_size = 0
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"fmt " and fmt_at is None:
            fmt_at = pos
        elif chunk_id == b"data" and data_at is None:
            data_at = pos
            data_size = min(size, len(data) - pos - 8)  # a stream or crashed writer may overstate it
        pos += 8 + size + (size & 1)
    if fmt_at is None:
        raise WavError(f"{name}: truncated header: no fmt chunk in {len(data)} bytes")
    fmt_size = struct.unpack_from("<I", data, fmt_at + 4)[0]
    if fmt_size < 16 or fmt_at + 24 > len(data):
        raise WavError(f"{name}: truncated header: fmt chunk at byte {fmt_at} is too short")
    tag, channels, src_rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, fmt_at + 8)
    if tag == _EXTENSIBLE:
        if fmt_size < 40 or fmt_at + 48 > len(data):
            raise WavError(f"{name}: truncated header: WAVE_FORMAT_EXTENSIBLE fmt at byte {fmt_at} is too short")
        tag = struct.unpack_from("<H", data, fmt_at + 32)[0]  # first two bytes of the SubFormat GUID
    if tag not in _SUPPORTED_WIDTHS:
        raise WavError(f"{name}: unsupported format tag 0x{tag:04x} at byte {fmt_at + 8}")
    kind = _FORMAT_NAMES[tag]
    if channels == 0:
        raise WavError(f"{name}: zero channels at byte {fmt_at + 10}")
    if src_rate == 0:
        raise WavError(f"{name}: zero sample rate at byte {fmt_at + 12}")
    if block_align == 0 or block_align % channels:
        raise WavError(f"{name}: block align {block_align} does not fit {channels} channels at byte {fmt_at + 20}")
    width = block_align // channels
    if width not in _SUPPORTED_WIDTHS[tag]:
        raise WavError(f"{name}: {bits}-bit {kind}? unsupported sample width {width} at byte {fmt_at + 22}")
    if data_at is None:
        raise WavError(f"{name}: no data chunk")
    frames = data_size // block_align
    if frames == 0:
        raise WavError(f"{name}: zero-length data chunk at byte {data_at} (no audio)")
    raw = np.frombuffer(data, dtype=np.uint8, count=frames * block_align, offset=data_at + 8)
    return _samples(raw, tag, width).reshape(frames, channels), src_rate


def _samples(raw: np.ndarray, tag: int, width: int) -> np.ndarray:
    if tag == _ULAW:
        return ulaw_decode(raw.tobytes()) / 32768.0
    if tag == _ALAW:
        return alaw_decode(raw.tobytes()) / 32768.0
    if tag == _FLOAT:
        values = raw.view("<f4" if width == 4 else "<f8").astype(np.float64)
        return np.clip(np.nan_to_num(values), -1.0, 1.0)
    if width == 1:
        return (raw.astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return raw.view("<i2") / 32768.0
    if width == 4:
        return raw.view("<i4") / 2147483648.0
    triples = raw.reshape(-1, 3).astype(np.int32)
    value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
    return np.where(value >= 1 << 23, value - (1 << 24), value) / 8388608.0


# --- resampling ------------------------------------------------------------------------------


def _resample_float(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Polyphase resampling: output n sits at input position n * src / dst; each output is a dot
    product of nearby inputs with a Kaiser-windowed sinc evaluated at that fractional position."""
    if src_rate <= 0 or dst_rate <= 0 or int(src_rate) != src_rate or int(dst_rate) != dst_rate:
        raise ValueError(f"sample rates must be positive integers, got {src_rate} -> {dst_rate}")
    src_rate, dst_rate = int(src_rate), int(dst_rate)
    if src_rate == dst_rate or x.size == 0:
        return x.astype(np.float64, copy=True)
    g = math.gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    cutoff = 0.5 * min(1.0, up / down) * RESAMPLE_ROLLOFF  # cycles per input sample
    half_width = RESAMPLE_ZERO_CROSSINGS / (2.0 * cutoff)  # in input samples
    reach = math.ceil(half_width)
    offsets = np.arange(-reach + 1, reach + 1)
    padded = np.concatenate([np.zeros(reach), x, np.zeros(reach + 1)])
    n_out = -(-x.size * up // down)
    out = np.empty(n_out)
    for start in range(0, n_out, _RESAMPLE_BLOCK):
        n = np.arange(start, min(start + _RESAMPLE_BLOCK, n_out), dtype=np.int64)
        base, phase = np.divmod(n * down, up)
        phases, which = np.unique(phase, return_inverse=True)
        distance = offsets[None, :] - phases[:, None] / up  # tap position minus output position
        kernel = 2.0 * cutoff * np.sinc(2.0 * cutoff * distance)
        ratio = np.clip(distance / half_width, -1.0, 1.0)
        kernel *= np.i0(RESAMPLE_KAISER_BETA * np.sqrt(1.0 - ratio * ratio)) / np.i0(RESAMPLE_KAISER_BETA)
        kernel /= kernel.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
        taps = padded[base[:, None] + reach + offsets[None, :]]
        out[start : start + n.size] = np.einsum("ij,ij->i", taps, kernel[which])
    return out
