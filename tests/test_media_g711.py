"""G.711 tables against a plain transcription of the ITU-T G.191 reference coder, over every input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gateway.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from gateway.media.tones import sine

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


# --- the reference, written the way the G.191 C code reads: one sample at a time --------------


def ref_ulaw_compress(x: int) -> int:
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33
    if absno > 0x1FFF:
        absno = 0x1FFF
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    code = (high_nibble << 4) | low_nibble
    if x >= 0:
        code |= 0x0080
    return code


def ref_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x07
    segment = exponent + 1
    mantissa &= 0x0F
    step = 4 << segment
    return sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)


def ref_alaw_compress(x: int) -> int:
    ix = (~x) >> 4 if x < 0 else x >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if x >= 0:
        ix |= 0x0080
    return ix ^ 0x0055


def ref_alaw_expand(code: int) -> int:
    ix = (code ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = ix & 0x0F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 8
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


# --- bit exactness ---------------------------------------------------------------------------


def test_ulaw_encode_matches_reference_for_all_65536_inputs() -> None:
    expected = bytes(ref_ulaw_compress(int(x)) for x in ALL_INT16)
    assert ulaw_encode(ALL_INT16) == expected


def test_alaw_encode_matches_reference_for_all_65536_inputs() -> None:
    expected = bytes(ref_alaw_compress(int(x)) for x in ALL_INT16)
    assert alaw_encode(ALL_INT16) == expected


def test_decode_matches_reference_for_all_256_codes() -> None:
    assert ulaw_decode(ALL_CODES).tolist() == [ref_ulaw_expand(c) for c in ALL_CODES]
    assert alaw_decode(ALL_CODES).tolist() == [ref_alaw_expand(c) for c in ALL_CODES]
    assert ulaw_decode(ALL_CODES).dtype == np.int16 and alaw_decode(ALL_CODES).dtype == np.int16


def test_known_landmarks() -> None:
    assert ulaw_encode(np.array([0, -1, 32767, -32768], dtype=np.int16)) == b"\xff\x7f\x80\x00"
    assert alaw_encode(np.array([0, -1, 32767, -32768], dtype=np.int16)) == b"\xd5\x55\xaa\x2a"
    assert ulaw_decode(b"\x80\x00\xff\x7f").tolist() == [32124, -32124, 0, 0]
    assert alaw_decode(b"\xaa\x2a\xd5\x55").tolist() == [32256, -32256, 8, -8]


def test_against_audioop_within_its_known_one_step_difference() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # gone in 3.13; the reference tests above still run
    raw = ALL_INT16.tobytes()
    assert alaw_encode(ALL_INT16) == audioop.lin2alaw(raw, 2)
    assert ulaw_decode(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)
    assert alaw_decode(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES, 2)
    ours = np.frombuffer(ulaw_encode(ALL_INT16), dtype=np.uint8)
    theirs = np.frombuffer(audioop.lin2ulaw(raw, 2), dtype=np.uint8)
    differ = ours != theirs
    assert not differ[ALL_INT16 >= 0].any()  # audioop negates negatives; the reference complements them
    assert 0 < differ.sum() < 1000
    assert (np.abs(ours[differ].astype(int) - theirs[differ]) == 1).all()


# --- quantisation behaviour ------------------------------------------------------------------


def _ulaw_step(codes: np.ndarray) -> np.ndarray:
    return 8 << ((~codes.astype(np.int32) >> 4) & 7)


def _alaw_step(codes: np.ndarray) -> np.ndarray:
    exponent = ((codes.astype(np.int32) ^ 0x55) >> 4) & 7
    return 16 << np.maximum(exponent - 1, 0)


def test_round_trip_error_is_within_half_a_step_plus_input_truncation() -> None:
    x = ALL_INT16.astype(np.int32)
    codes = np.frombuffer(ulaw_encode(ALL_INT16), dtype=np.uint8)
    err = np.abs(ulaw_decode(ulaw_encode(ALL_INT16)).astype(np.int32) - x)
    inside = np.abs(x) <= 32124 + 512
    assert (err[inside] <= _ulaw_step(codes)[inside] // 2 + 4).all()
    assert err[~inside].max() <= 32768 - 32124  # clipping beyond the last decision level

    codes = np.frombuffer(alaw_encode(ALL_INT16), dtype=np.uint8)
    err = np.abs(alaw_decode(alaw_encode(ALL_INT16)).astype(np.int32) - x)
    assert (err <= _alaw_step(codes) // 2 + 16).all()
    assert err.max() == 32768 - 32256


def test_codes_survive_decode_then_encode() -> None:
    codes = np.frombuffer(ALL_CODES, dtype=np.uint8)
    again = np.frombuffer(ulaw_encode(ulaw_decode(ALL_CODES)), dtype=np.uint8)
    assert (again == np.where(codes == 0x7F, 0xFF, codes)).all()  # -0 decodes to 0, which is +0
    assert alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES


def test_decoders_are_odd_symmetric_and_monotonic() -> None:
    for decode in (ulaw_decode, alaw_decode):
        values = decode(ALL_CODES).astype(np.int32)
        flipped = decode(bytes(c ^ 0x80 for c in ALL_CODES)).astype(np.int32)
        assert (values == -flipped).all()
    encoded = np.frombuffer(ulaw_encode(ALL_INT16), dtype=np.uint8)
    assert (np.diff(ulaw_decode(encoded.tobytes()).astype(np.int32)) >= 0).all()
    encoded = np.frombuffer(alaw_encode(ALL_INT16), dtype=np.uint8)
    assert (np.diff(alaw_decode(encoded.tobytes()).astype(np.int32)) >= 0).all()


@pytest.mark.parametrize(("freq", "floor_db"), [(440.0, 35.0), (1000.0, 33.0)])
def test_sine_round_trip_snr(freq: float, floor_db: float) -> None:
    x = sine(freq, 1.0, amplitude=0.5).astype(np.float64)
    for encode, decode in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        y = decode(encode(x.astype(np.int16))).astype(np.float64)
        snr = 10 * np.log10(np.sum(x * x) / np.sum((y - x) ** 2))
        assert floor_db < snr < 45.0, (encode.__name__, snr)


def test_one_byte_per_sample_and_integer_inputs_accepted() -> None:
    frame = sine(1000.0, 0.02)
    assert len(ulaw_encode(frame)) == len(alaw_encode(frame)) == 160
    as_int32 = frame.astype(np.int32)
    assert ulaw_encode(as_int32) == ulaw_encode(frame)
    assert ulaw_encode(np.array([40000, -40000])) == ulaw_encode(np.array([32767, -32768], dtype=np.int16))
    with pytest.raises(TypeError):
        ulaw_encode(np.array([0.5]))
