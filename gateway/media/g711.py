"""G.711 µ-law and A-law, table driven and vectorised, bit-exact to the ITU-T reference coder.

The tables follow the ITU-T G.191 reference implementation of G.711: the 16-bit input is reduced to
14 bits (µ-law) or 13 bits (A-law) in sign-magnitude form, where a negative sample x has magnitude
~x (so -1 sits next to 0, mirroring the positive side). CPython's audioop negates instead, which puts
some negative µ-law inputs one code step away from the reference; those are audioop's, not ours.
"""

from __future__ import annotations

import numpy as np

from gateway.media.frames import as_int16

_ULAW_BIAS = 33  # in 14-bit units (0x84 >> 2)
_ULAW_MAX = 0x1FFF
_POWERS = np.array([1, 2, 4, 8, 16, 32, 64], dtype=np.int32)


def _bit_length(values: np.ndarray) -> np.ndarray:
    """int.bit_length() for 0 <= values < 128, elementwise."""
    return np.searchsorted(_POWERS, values, side="right").astype(np.int32)


def _sign_magnitude(x: np.ndarray, shift: int) -> np.ndarray:
    return np.where(x < 0, ~x, x) >> shift


def _build_ulaw_tables() -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(65536, dtype=np.int32)
    x = np.where(x >= 32768, x - 65536, x)  # row i holds the int16 whose bit pattern is i
    biased = np.minimum(_sign_magnitude(x, 2) + _ULAW_BIAS, _ULAW_MAX)
    exponent = _bit_length(biased >> 6)
    mantissa = (biased >> (exponent + 1)) & 0x0F
    code = 0x7F ^ ((exponent << 4) | mantissa)
    encode = np.where(x >= 0, code | 0x80, code).astype(np.uint8)

    codes = np.arange(256, dtype=np.int32)
    inverted = ~codes
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    magnitude = (0x80 << exponent) + step * mantissa + step // 2 - 4 * _ULAW_BIAS
    decode = np.where(codes >= 0x80, magnitude, -magnitude).astype(np.int16)
    return encode, decode


def _build_alaw_tables() -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(65536, dtype=np.int32)
    x = np.where(x >= 32768, x - 65536, x)
    ix = _sign_magnitude(x, 4)  # 0..2047
    exponent = _bit_length(ix >> 4)  # 0 for ix < 16, else 1..7
    shifted = np.where(exponent > 0, (ix >> np.maximum(exponent - 1, 0)) - 16 + (exponent << 4), ix)
    encode = (np.where(x >= 0, shifted | 0x80, shifted) ^ 0x55).astype(np.uint8)

    codes = np.arange(256, dtype=np.int32)
    ix = (codes ^ 0x55) & 0x7F
    exponent = ix >> 4
    mantissa = (ix & 0x0F) + np.where(exponent > 0, 16, 0)
    magnitude = ((mantissa << 4) + 8) << np.maximum(exponent - 1, 0)
    decode = np.where(codes >= 0x80, magnitude, -magnitude).astype(np.int16)
    return encode, decode


_ULAW_ENCODE, _ULAW_DECODE = _build_ulaw_tables()
_ALAW_ENCODE, _ALAW_DECODE = _build_alaw_tables()
for _table in (_ULAW_ENCODE, _ULAW_DECODE, _ALAW_ENCODE, _ALAW_DECODE):
    _table.setflags(write=False)


def _codes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def ulaw_encode(samples: np.ndarray) -> bytes:
    """int16 samples -> one µ-law byte per sample."""
    return _ULAW_ENCODE[as_int16(samples).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    """µ-law bytes -> int16 samples."""
    return _ULAW_DECODE[_codes(data)]


def alaw_encode(samples: np.ndarray) -> bytes:
    """int16 samples -> one A-law byte per sample."""
    return _ALAW_ENCODE[as_int16(samples).view(np.uint16)].tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """A-law bytes -> int16 samples."""
    return _ALAW_DECODE[_codes(data)]
