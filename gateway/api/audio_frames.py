"""Call audio on MQTT: 12-byte header (seq u32 BE, sent f64 BE ms since epoch) + G.711 µ-law samples."""

from __future__ import annotations

import struct

HEADER = struct.Struct(">Id")
HEADER_BYTES = HEADER.size  # 12
MAX_SAMPLES = 480           # 60 ms at 8 kHz


class AudioFrameError(ValueError):
    pass


def pack(seq: int, sent_ms: float, ulaw: bytes) -> bytes:
    return HEADER.pack(seq & 0xFFFFFFFF, sent_ms) + ulaw


def unpack(payload: bytes) -> tuple[int, float, bytes]:
    if len(payload) <= HEADER_BYTES:
        raise AudioFrameError(f"audio frame of {len(payload)} bytes: shorter than the 12-byte header plus samples")
    samples = len(payload) - HEADER_BYTES
    if samples > MAX_SAMPLES:
        raise AudioFrameError(f"audio frame of {samples} samples: more than {MAX_SAMPLES}")
    seq, sent = HEADER.unpack_from(payload)
    return seq, sent, payload[HEADER_BYTES:]
