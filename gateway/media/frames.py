"""The one audio frame model inside the daemon: 8 kHz mono signed 16-bit PCM in 20 ms frames.

Every source and sink (modem PCM, G.711 from agents, prompts, recordings) converts to and from this
model at its edge, so nothing in between has to think about rates, widths or byte order.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 160
FRAME_BYTES = FRAME_SAMPLES * 2  # 320
SILENCE_FRAME = bytes(FRAME_BYTES)

_LE_INT16 = np.dtype("<i2")


def as_int16(samples: np.ndarray) -> np.ndarray:
    """Return `samples` as a 1-D int16 array; other integer types are clipped, floats are refused."""
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        return arr.reshape(-1)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"expected integer PCM samples, got {arr.dtype}")
    return np.clip(arr.reshape(-1), -32768, 32767).astype(np.int16)


def pcm_to_frames(samples: np.ndarray) -> list[bytes]:
    """Cut int16 samples into 320-byte little-endian frames; the last one is padded with silence."""
    pcm = as_int16(samples)
    if pcm.size == 0:
        return []
    padded = np.zeros(-(-pcm.size // FRAME_SAMPLES) * FRAME_SAMPLES, dtype=_LE_INT16)
    padded[: pcm.size] = pcm
    data = padded.tobytes()
    return [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]


def frame_to_array(frame: bytes) -> np.ndarray:
    """Turn one 320-byte little-endian frame into a writable int16[160] array."""
    if len(frame) != FRAME_BYTES:
        raise ValueError(f"audio frame is {len(frame)} bytes, expected {FRAME_BYTES}")
    return np.frombuffer(frame, dtype=_LE_INT16).astype(np.int16)
