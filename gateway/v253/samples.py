"""V.253 sample formats (`AT+VSM` compression ids) to and from the daemon's int16 8 kHz samples.

Ids below 128 are V.253's own (0 signed PCM, 1 unsigned PCM, 4 G.711 µ-law, 5 G.711 A-law); 128
and up are vendor ids, and the PCM ones agree between USR and Conexant (shared/docs/modems.md §5.5):
128 and 130 unsigned 8-bit linear, 131 µ-law, 132 A-law, 133 16-bit linear (little-endian). The
ADPCM ids (129, 140, 141, V.253's 2/3/7) are listed by the modems but not decoded here.
8-bit linear keeps the top byte of a sample (as audioop.lin2lin does); G.711 is the ITU reference
coder of gateway.media.g711. Vectorised with numpy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from gateway.media import g711
from gateway.media.frames import SAMPLE_RATE, as_int16


def _u8_decode(data: bytes) -> np.ndarray:
    return ((np.frombuffer(data, np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)


def _u8_encode(samples: np.ndarray) -> bytes:
    return ((as_int16(samples) >> 8) + 128).astype(np.uint8).tobytes()


def _s8_decode(data: bytes) -> np.ndarray:
    return (np.frombuffer(data, np.int8).astype(np.int16) << 8).astype(np.int16)


def _s8_encode(samples: np.ndarray) -> bytes:
    return (as_int16(samples) >> 8).astype(np.int8).tobytes()


def _s16_decode(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2").astype(np.int16)


def _s16_encode(samples: np.ndarray) -> bytes:
    return as_int16(samples).astype("<i2").tobytes()


@dataclass(frozen=True)
class SampleFormat:
    vsm_id: int
    name: str
    sample_bytes: int
    silence: bytes                                  # one sample of silence in this format
    _decode: Callable[[bytes], np.ndarray]
    _encode: Callable[[np.ndarray], bytes]

    def decode(self, data: bytes) -> np.ndarray:
        """Whole samples of `data` → int16 (a trailing partial sample is an error: see Decoder)."""
        if len(data) % self.sample_bytes:
            raise ValueError(f"{self.name}: {len(data)} bytes is not a whole number of "
                             f"{self.sample_bytes}-byte samples")
        return self._decode(bytes(data))

    def encode(self, samples: np.ndarray) -> bytes:
        return self._encode(samples)

    def silence_bytes(self, samples: int) -> bytes:
        return self.silence * samples


_UNSIGNED8 = dict(sample_bytes=1, silence=b"\x80", _decode=_u8_decode, _encode=_u8_encode)
_ULAW = dict(sample_bytes=1, silence=b"\xff", _decode=g711.ulaw_decode, _encode=g711.ulaw_encode)
_ALAW = dict(sample_bytes=1, silence=b"\xd5", _decode=g711.alaw_decode, _encode=g711.alaw_encode)

FORMATS: dict[int, SampleFormat] = {
    0: SampleFormat(0, "signed 8-bit linear", 1, b"\x00", _s8_decode, _s8_encode),
    1: SampleFormat(1, "unsigned 8-bit linear", **_UNSIGNED8),
    4: SampleFormat(4, "G.711 mu-law", **_ULAW),
    5: SampleFormat(5, "G.711 A-law", **_ALAW),
    128: SampleFormat(128, "8-bit linear (USR)", **_UNSIGNED8),
    130: SampleFormat(130, "unsigned 8-bit linear", **_UNSIGNED8),
    131: SampleFormat(131, "mu-law (USR)", **_ULAW),
    132: SampleFormat(132, "A-law (USR)", **_ALAW),
    133: SampleFormat(133, "16-bit linear LE (USR)", 2, b"\x00\x00", _s16_decode, _s16_encode),
}
ADPCM_IDS = frozenset({2, 3, 7, 129, 140, 141})
# Proven first (callattendant and vgetty run 8-bit linear), then G.711, then 16-bit.
PREFERENCE = (128, 1, 130, 131, 4, 132, 5, 133)


def sample_format(vsm_id: int, rate: int = SAMPLE_RATE) -> SampleFormat:
    if rate != SAMPLE_RATE:
        raise ValueError(f"AT+VSM rate {rate}: only {SAMPLE_RATE} samples/s is supported")
    fmt = FORMATS.get(vsm_id)
    if fmt is None:
        what = "ADPCM" if vsm_id in ADPCM_IDS else "unknown"
        raise ValueError(f"AT+VSM compression {vsm_id} ({what}) is not supported; use one of "
                         f"{sorted(FORMATS)}")
    return fmt


@dataclass(frozen=True)
class VsmOption:
    """One line of an `AT+VSM=?` answer."""

    vsm_id: int
    name: str
    bits: int
    rates: tuple[int, ...]


_VSM_LINE = re.compile(r'^(?:\+VSM:\s*)?(\d+)\s*,\s*"([^"]*)"\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(.*)$')


def parse_vsm_options(lines: Iterable[str]) -> list[VsmOption]:
    """The formats an `AT+VSM=?` answer lists, e.g. `128,"8-BIT LINEAR",8,0,(7200,8000),(0),(0)`
    (USR) or `1,"UNSIGNED PCM",8,0,8000,0,0` (Conexant). Lines of other shapes are skipped."""
    options = []
    for line in lines:
        match = _VSM_LINE.match(line.strip())
        if match is None:
            continue
        tail = match.group(5)
        rates_text = tail[1:tail.index(")")] if tail.startswith("(") and ")" in tail \
            else tail.split(",")[0]
        rates = _parse_range(rates_text)
        options.append(VsmOption(int(match.group(1)), match.group(2), int(match.group(3)), rates))
    return options


def _parse_range(text: str) -> tuple[int, ...]:
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            low, _, high = part.partition("-")
            if low.strip().isdigit() and high.strip().isdigit():
                values += [int(low), int(high)]
        elif part.isdigit():
            values.append(int(part))
    return tuple(values)


def choose_format(options: Sequence[VsmOption], preference: Sequence[int] = PREFERENCE
                  ) -> SampleFormat:
    """The first id in `preference` the modem lists at 8000 samples/s."""
    offered = {opt.vsm_id for opt in options if SAMPLE_RATE in opt.rates}
    for vsm_id in preference:
        if vsm_id in offered and vsm_id in FORMATS:
            return FORMATS[vsm_id]
    listed = ", ".join(f"{opt.vsm_id} {opt.name!r}" for opt in options) or "nothing"
    raise ValueError(f"AT+VSM=? offers no supported format at {SAMPLE_RATE} Hz (it listed "
                     f"{listed}; supported: {sorted(FORMATS)})")


class SampleDecoder:
    """Modem-format bytes in any chunking → int16 samples; holds a split 16-bit sample."""

    def __init__(self, fmt: SampleFormat) -> None:
        self.format = fmt
        self._carry = b""

    def feed(self, data: bytes) -> np.ndarray:
        data = self._carry + bytes(data)
        whole = len(data) - len(data) % self.format.sample_bytes
        self._carry = data[whole:]
        return self.format.decode(data[:whole])
