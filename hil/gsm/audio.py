"""The modem's end of the call audio path, pluggable: a pseudo-terminal carrying raw PCM (SIM7600 USB
audio, Huawei voice tty, Quectel serial PCM on the NMEA tty) or anything else with the AudioSide
shape, such as a sound card wired to an analog module (hil/soundcard.py)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from hil.gsm.ports import Pty

FRAME_BYTES = 320
# Audio bytes kept queued for a host that does not read the pty; beyond this frames are dropped.
BACKLOG_FRAMES = 4


@runtime_checkable
class AudioSide(Protocol):
    """Where the modem's call audio goes and comes from. All methods run on the emulator's loop."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def write_downlink(self, pcm: bytes) -> None:
        """One S16LE 8 kHz mono frame (320 bytes), modem -> host."""

    def read_uplink(self) -> bytes:
        """S16LE 8 kHz bytes host -> modem since the last call (may be b"")."""

    def describe(self) -> dict: ...


class PtyAudioSide:
    """Raw S16LE PCM on a pseudo-terminal, as on a USB vendor-class audio tty.

    Optional extras the emulator uses when present: `wideband` (SIM7600 AT+CPCMFRM=1: 16 kHz,
    640-byte frames on the wire), `uplink_rate`, `reset()` (forget queued bytes when a PCM session
    starts or stops), and `write_text()` for non-audio bytes sharing the tty (NMEA sentences).
    """

    def __init__(self, key: str = "audio_port") -> None:
        self.key = key
        self.pty = Pty()
        self.wideband = False
        self.frames_sent = 0
        self.frames_dropped = 0
        self._out = bytearray()
        self._last_sample = 0

    @property
    def port(self) -> str | None:
        return self.pty.name if self.pty.is_open else None

    @property
    def uplink_rate(self) -> int:
        return 16000 if self.wideband else 8000

    def open(self) -> None:
        self.pty.open()
        self._out.clear()

    def close(self) -> None:
        self.pty.close()
        self._out.clear()

    def reset(self) -> None:
        self._out.clear()
        while self.pty.read():
            pass

    def write_downlink(self, pcm: bytes) -> None:
        if not self.pty.is_open:
            return
        if self.wideband:
            pcm = self._upsample(pcm)
        if len(self._out) >= BACKLOG_FRAMES * len(pcm):
            self.frames_dropped += 1        # the host is not reading: the endpoint drops frames
        else:
            self._out += pcm
            self.frames_sent += 1
        self._flush()

    def write_text(self, data: bytes) -> None:
        if self.pty.is_open:
            self._out += data
            self._flush()

    def read_uplink(self) -> bytes:
        chunks = []
        while True:
            data = self.pty.read()
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def describe(self) -> dict:
        return {self.key: self.port}

    def _flush(self) -> None:
        del self._out[: self.pty.write(bytes(self._out))]

    def _upsample(self, pcm: bytes) -> bytes:
        frame = np.frombuffer(pcm, "<i2").astype(np.int32)
        previous = np.concatenate(([self._last_sample], frame[:-1]))
        up = np.empty(2 * len(frame), np.int16)
        up[0::2] = (previous + frame) // 2
        up[1::2] = frame
        self._last_sample = int(frame[-1]) if len(frame) else self._last_sample
        return up.astype("<i2").tobytes()
