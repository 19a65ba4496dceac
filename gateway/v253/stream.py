"""A V.253 voice stream in the daemon's frame model: raw modem bytes in, 320-byte frames and DLE
events out (RxStream); 320-byte frames in, DLE-shielded modem bytes out (TxStream).

RxStream.feed() is meant to be called straight from a data-mode callback with whatever the port
delivered after CONNECT; once it reports `rest` (the bytes after <DLE><ETX>), the stream is over
and `rest` belongs to the AT line parser again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gateway.media.frames import FRAME_SAMPLES, frame_to_array
from gateway.v253.dle import DleDecoder, DleEncoder, DleEvent
from gateway.v253.samples import SampleDecoder, SampleFormat


@dataclass
class RxChunk:
    frames: list[bytes] = field(default_factory=list)    # whole 320-byte S16LE frames
    events: list[DleEvent] = field(default_factory=list)
    rest: bytes | None = None                             # set once <DLE><ETX> arrived
    end: int | None = None                                # offset just past it in the chunk


class RxStream:
    """Modem → host: DLE decode, sample decode, cut into 20 ms frames."""

    def __init__(self, fmt: SampleFormat) -> None:
        self.format = fmt
        self.dle = DleDecoder(stop_at_etx=True)
        self._samples = SampleDecoder(fmt)
        self._pending = np.zeros(0, np.int16)
        self.audio_bytes = 0                  # unescaped audio bytes received so far

    @property
    def ended(self) -> bool:
        return self.dle.ended

    def feed(self, data: bytes) -> RxChunk:
        decoded = self.dle.feed(data)
        self.audio_bytes += len(decoded.audio)
        samples = self._samples.feed(decoded.audio)
        if self._pending.size:
            samples = np.concatenate((self._pending, samples))
        whole = samples.size - samples.size % FRAME_SAMPLES
        self._pending = samples[whole:]
        raw = samples[:whole].astype("<i2").tobytes()
        frames = [raw[i:i + 2 * FRAME_SAMPLES] for i in range(0, len(raw), 2 * FRAME_SAMPLES)]
        return RxChunk(frames, decoded.events, decoded.rest, decoded.end)

    def flush(self) -> bytes | None:
        """The last partial frame padded with silence (None if nothing is pending)."""
        if not self._pending.size:
            return None
        frame = np.zeros(FRAME_SAMPLES, np.int16)
        frame[: self._pending.size] = self._pending
        self._pending = np.zeros(0, np.int16)
        return frame.astype("<i2").tobytes()


class TxStream:
    """Host → modem: 320-byte S16LE frames to DLE-shielded bytes in the modem's format."""

    def __init__(self, fmt: SampleFormat, encoder: DleEncoder | None = None) -> None:
        self.format = fmt
        self.encoder = encoder or DleEncoder()

    def encode_frame(self, frame: bytes) -> bytes:
        return self.encoder.escape(self.format.encode(frame_to_array(frame)))

    def encode_samples(self, samples: np.ndarray) -> bytes:
        return self.encoder.escape(self.format.encode(samples))

    def silence(self, samples: int = FRAME_SAMPLES) -> bytes:
        return self.encoder.escape(self.format.silence_bytes(samples))
