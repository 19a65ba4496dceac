"""A V.253 analog voice modem (USRobotics 5637 or a Conexant CX93001 dongle) on one pseudo-terminal.

Built from shared/docs/modems.md §5, T8, T9, T10, T11k and the vendors' command references, not
from our driver. One tty carries everything, as on the real CDC-ACM device: V.250 commands with
echo on at power-up, RING and formatted caller ID between the first and second ring, voice mode
(+FCLASS=8) with +VSM/+VLS/+VSD/+VTS, and the in-band voice states: +VTX (host plays, DLE-shielded),
+VRX (modem streams the caller's audio, DLE-shielded, with DLE events), +VTR (both). The far end
hanging up shows only as <DLE>b busy then <DLE>d dial tone, never NO CARRIER. DTMF from the caller
arrives USR style (<DLE>5) or Conexant style (<DLE>/<DLE>5<DLE>5<DLE>~).

Outbound (ATD in voice mode), the same for both dialects, from the +VRA/+VRN text of the USR and
Conexant references: the modem dials, reports each ringback cycle as <DLE>r, and gives OK once
ringback has stopped for +VRA tenths of a second (the callee answered; +VRN seconds without any
ringback count as answered too); busy gives <DLE>b then BUSY; nobody answering within S7 seconds
gives NO ANSWER. Any character from the host while dialling aborts with NO CARRIER.

Emulator choices (not modem facts): the caller's speech queued with play_pcm() is heard only while
the host listens (+VRX/+VTR), so a test need not race the clock; RING is sent as text in +FCLASS=8
too; ADPCM formats are accepted by +VSM but stream zero bytes and capture nothing.
It runs in its own thread with its own asyncio loop; the scripting methods are thread-safe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import time
from pathlib import Path

import numpy as np

from gateway.media import g711
from gateway.media.wavfile import read_wav, resample, write_wav
from hil.emulator_base import ThreadedEmulator
from hil.gsm.mixer import DTMF_FREQS, ClipQueue, frame_clock, pcm_samples
from hil.gsm.ports import ByIdLinks, PortSpec, Pty, UsbIdentity, by_id_name, inventory_row
from hil.v250 import clean_line, command_parts, frame_code

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 8000
TICK = 0.020
OUT_BACKLOG = 65536           # bytes queued for a host that does not read before audio is held back
LINE_LIMIT = 1024             # a command line longer than this without CR is discarded

DLE, ETX, SUB, CAN, NUL = 0x10, 0x03, 0x1A, 0x18, 0x00
DTMF_DIGITS = "0123456789*#ABCD"
# Conexant repeats the digit inside its /…~ bracket about every 70 ms while the tone lasts.
SHIELD_REPEAT = 0.07
DTMF_TONE = 0.1
OUTCOMES = ("answer", "busy", "no_answer", "no_dialtone")
# Commands the USR reference answers with "ERROR … if not in Voice Mode" (T11k).
VOICE_ONLY = {"VSM", "VLS", "VTX", "VRX", "VTR", "VTS", "VSD", "VGT", "VGR", "VIT", "VRA", "VRN",
              "VTD", "VDR", "VNH", "VEM"}
# Single-value voice parameters: name -> (low, high, power-up value).
VOICE_SETTINGS = {"VGT": (0, 255, 128), "VGR": (0, 255, 128), "VIT": (0, 255, 0),
                  "VRA": (0, 255, 50), "VRN": (0, 255, 10), "VTD": (0, 500, 10),
                  "VNH": (0, 2, 0)}
# +VLS labels and their primitives (Conexant/MultiTech table); a "T" means the line is off-hook.
VLS_TABLE = (
    (0, "", "B0804100,B0804100,B0804100"), (1, "T", "0B8433C1,0FE431C1,0B8431C1"),
    (2, "L", "08800300,0CE00100,08800100"), (3, "LT", "0B8433C1,0FE431C1,0B8431C1"),
    (4, "S", "00800300,04E00100,20800100"), (5, "ST", "0B8433C1,0FE431C1,0B8431C1"),
    (8, "S1", "00800300,04E00100,20800100"), (9, "S1T", "0B8433C1,0FE431C1,0B8431C1"),
    (11, "M1", "00800300,04E00100,20800100"), (14, "H", "00800300,04E00100,20800100"),
)
VLS_PRIMITIVES = {label: prims for label, prims, _ in VLS_TABLE}


@dataclasses.dataclass(frozen=True)
class Dialect:
    name: str
    ati: dict[int, tuple[str, ...]]          # ATIn information text
    gmi: str
    gmm: str
    gmr: str
    fclass: str                              # the +FCLASS=? list
    vsm: tuple[tuple[int, str, int], ...]    # (id, name, bits) as AT+VSM=? lists them
    vsm_rates: tuple[int, ...]
    default_vsm: int
    vsd_range: str
    cid_separator: str                       # "=" (USR) or " = " (Conexant)
    dtmf_shielded: bool                      # Conexant /…~ brackets
    prefixed_answers: bool                   # "+VGT: 128" (USR reference) or "128" (Conexant)
    dash_commands: bool                      # -SCID, -STE (Conexant)
    vid: str
    pid: str
    usb_manufacturer: str
    usb_product: str
    usb_serial: str
    rx_stop_etx: bool = True                 # <DLE>! answered with <DLE><ETX> before OK
    dial_answered: str = "OK"

    def vsm_line(self, vsm_id: int, name: str, bits: int) -> str:
        if self.prefixed_answers:
            rates = ",".join(str(r) for r in self.vsm_rates)
            return f'{vsm_id},"{name}",{bits},0,({rates}),(0),(0)'
        return f'{vsm_id},"{name}",{bits},0,{",".join(str(r) for r in self.vsm_rates)},0,0'


DIALECTS = {
    # ATI0 per callattendant; +VSM list per the USR command reference p.142; USB ids and the
    # by-id name (usb-U.S.Robotics_USB_Modem_0000002-if00) as seen on real units. ATI3, +GMM and
    # +GMR texts are illustrative (unverified); NPA1F01 is a firmware name a user reported.
    "usr5637": Dialect(
        name="usr5637", ati={0: ("5601",), 3: ("U.S. Robotics 56K FAX USB V1.2.23",)},
        gmi="U.S. Robotics", gmm="USR5637", gmr="NPA1F01", fclass="0,1,1.0,8",
        vsm=((1, "UNSIGNED PCM", 8), (128, "8-BIT LINEAR", 8), (129, "ADPCM", 4),
             (130, "UNSIGNED PCM", 8), (131, "ULAW", 8), (132, "ALAW", 8), (133, "LINEAR", 16)),
        vsm_rates=(7200, 8000), default_vsm=128, vsd_range="(0,127,128,129),(0-255)",
        cid_separator="=", dtmf_shielded=False, prefixed_answers=True, dash_commands=False,
        vid="0baf", pid="0303", usb_manufacturer="U.S.Robotics", usb_product="USB Modem",
        usb_serial="0000002"),
    # ATI0/ATI3 per T10 and the Zoom 3095 reports; +VSM list per the Conexant/MultiTech reference;
    # 0572:1329 with by-id usb-Conexant_USB_Modem_24680246-if00 as seen on a real dongle.
    # +FCLASS=? and the +GM* texts are illustrative (unverified).
    "cx93001": Dialect(
        name="cx93001", ati={0: ("56000",), 3: ("CX93001-EIS_V0.2002-V92",)},
        gmi="CONEXANT", gmm="CX93001-EIS_V0.2002-V92", gmr="CX93001-EIS_V0.2002-V92",
        fclass="0,1,1.0,2,2.0,8",
        vsm=((1, "UNSIGNED PCM", 8), (129, "IMA ADPCM", 4), (130, "UNSIGNED PCM", 8),
             (140, "2 Bit ADPCM", 2), (141, "4 Bit ADPCM", 4)),
        vsm_rates=(8000,), default_vsm=1, vsd_range="(0-255),(0-255)",
        cid_separator=" = ", dtmf_shielded=True, prefixed_answers=False, dash_commands=True,
        vid="0572", pid="1329", usb_manufacturer="Conexant", usb_product="USB Modem",
        usb_serial="24680246"),
}


# ---------------------------------------------------------------- sample formats (modem side)

def _encode(vsm_id: int, samples: np.ndarray) -> bytes:
    s = samples.astype(np.int16)
    if vsm_id in (1, 128, 130):
        return ((s >> 8) + 128).astype(np.uint8).tobytes()
    if vsm_id == 0:
        return (s >> 8).astype(np.int8).tobytes()
    if vsm_id in (4, 131):
        return g711.ulaw_encode(s)
    if vsm_id in (5, 132):
        return g711.alaw_encode(s)
    if vsm_id == 133:
        return s.astype("<i2").tobytes()
    return bytes(len(s) // 2)                       # ADPCM: silence-ish nibbles, not decoded


def _decode(vsm_id: int, data: bytes) -> np.ndarray | None:
    if vsm_id in (1, 128, 130):
        return ((np.frombuffer(data, np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if vsm_id == 0:
        return (np.frombuffer(data, np.int8).astype(np.int16) << 8).astype(np.int16)
    if vsm_id in (4, 131):
        return g711.ulaw_decode(data)
    if vsm_id in (5, 132):
        return g711.alaw_decode(data)
    if vsm_id == 133:
        return np.frombuffer(data, "<i2").astype(np.int16)
    return None


def _sample_bytes(vsm_id: int) -> int:
    return 2 if vsm_id == 133 else 1


def _tone(f1: float, f2: float, seconds: float, amplitude: float = 0.35) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = np.zeros_like(t)
    for freq in (f1, f2):
        if freq:
            wave += np.sin(2 * np.pi * freq * t)
    scale = amplitude * 32767 / (2 if f1 and f2 else 1)
    return np.round(wave * scale).astype(np.int16)


def _busy_tone(start: int, count: int) -> np.ndarray:
    """North American busy (480 + 620 Hz, 0.5 s on / 0.5 s off) from sample `start` on."""
    n = np.arange(start, start + count)
    on = (n // (SAMPLE_RATE // 2)) % 2 == 0
    t = n / SAMPLE_RATE
    wave = 0.2 * 32767 * (np.sin(2 * np.pi * 480 * t) + np.sin(2 * np.pi * 620 * t)) / 2
    return np.where(on, np.round(wave), 0).astype(np.int16)


class _CmdError(Exception):
    pass


@dataclasses.dataclass
class _Result:
    lines: list[str] = dataclasses.field(default_factory=list)
    final: str | None = "OK"            # None: the command answers later by itself
    delay: float = 0.0                  # seconds before the final result (tones being sent)
    stream: str | None = None           # "tx" | "rx" | "duplex": enter that state after CONNECT


@dataclasses.dataclass
class _Call:
    direction: str                      # "in" | "out"
    number: str
    name: str | None = None
    state: str = "ringing"              # ringing | dialing | active | gone
    rings: int = 0


# The modem's one tty: CDC-ACM interface 0.
_PORT = PortSpec("modem", 0)


class V253Emulator(ThreadedEmulator):
    """A USB V.253 voice modem (USR 5637 or Conexant CX93001) on one pseudo-terminal."""

    def __init__(self, dialect: str = "usr5637", *, ring_interval: float = 6.0,
                 by_id_dir: str | os.PathLike | None = None, location: str = "1-1.3",
                 late_rings: int = 0, dtmf_repeat: int = 1, busy_interval: float = 4.0,
                 busy_count: int = 2, dial_delay: float = 0.3, underrun_grace: float = 0.2,
                 tx_buffer_limit: int = 4096, cid_time: datetime.datetime | None = None) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"dialect {dialect!r}: use one of {sorted(DIALECTS)}")
        if dtmf_repeat < 1:
            raise ValueError("dtmf_repeat must be at least 1")
        super().__init__()
        self.dialect = DIALECTS[dialect]
        self.ring_interval = ring_interval
        self.by_id_dir = Path(by_id_dir) if by_id_dir is not None else None
        self.location = location
        d = self.dialect
        self._usb = UsbIdentity(d.vid, d.pid, d.usb_manufacturer, d.usb_product, d.usb_serial, location)
        self.late_rings = late_rings
        self.dtmf_repeat = dtmf_repeat
        self.busy_interval = busy_interval
        self.busy_count = busy_count
        self.dial_delay = dial_delay
        self.underrun_grace = underrun_grace
        self.tx_buffer_limit = tx_buffer_limit
        self.cid_time = cid_time
        self.dialed: list[str] = []                 # numbers the host dialled
        self.vts_log: list[str] = []                # tone items the host sent with AT+VTS
        self.replugs = 0
        self._pty = Pty()
        self.port = self._pty.open()
        self._links = ByIdLinks(str(self.by_id_dir)) if self.by_id_dir is not None else None
        self._by_id_link: str | None = None
        self._gone = False
        self._frozen = False
        self._slow = 0.0
        self._outcome = ("answer", 2)
        self._capture: list[np.ndarray] = []
        self._play = ClipQueue()
        self._power_on()

    # ---------------------------------------------------------------- lifecycle

    def _power_on(self) -> None:
        self._reset_settings()
        self._rx = bytearray()
        self._out = bytearray()
        self._held = bytearray()            # input that arrived while a command was executing
        self._busy = False                  # a command is executing (tone, dial)
        self._call: _Call | None = None
        self._offhook = False
        self._stream: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self._clock: asyncio.Task | None = None
        self._dial_task: asyncio.Task | None = None
        self._ring_task: asyncio.Task | None = None
        self._reset_stream()

    def _reset_settings(self) -> None:
        self._echo = True
        self._verbose = True
        self._fclass = "0"
        self._vcid = 0
        self._vsm = (self.dialect.default_vsm, SAMPLE_RATE)
        self._vls = 0
        self._vsd = (128, 50)
        self._vdr = (0, 0)
        self._voice = {name: spec[2] for name, spec in VOICE_SETTINGS.items()}
        self._extra: dict[str, str] = {}
        self._sregs = {0: 0, 3: 13, 4: 10, 5: 8, 7: 60}

    def _reset_stream(self) -> None:
        self._tx = bytearray()              # unescaped modem-format audio the host sent
        self._tx_end: str | None = None     # "etx" once <DLE><ETX> came
        self._host_dle = False              # the host's last byte was an unpaired <DLE>
        self._underrun = False
        self._stream_since = 0.0
        self._reading_paused = False
        self._rx_voice = False
        self._rx_quiet_since: float | None = None
        self._rx_silence_sent = False
        self._overrun = False
        self._busy_sample = 0

    def _thread_name(self) -> str:
        return f"v253-{self.dialect.name}"

    def _loop_started(self) -> None:
        assert self._loop is not None
        self._loop.add_reader(self._pty.master, self._on_readable)
        self._make_link()

    def _loop_stopping(self) -> None:
        self._cancel_tasks()
        self._detach()

    def _release(self) -> None:
        self._pty.close()
        self._remove_link()

    def _detach(self) -> None:
        if self._loop is not None and self._pty.is_open:
            self._loop.remove_reader(self._pty.master)
            self._loop.remove_writer(self._pty.master)

    def _make_link(self) -> None:
        if self._links is not None:
            self._by_id_link = self._links.point(self.by_id_name, self.port)

    def _remove_link(self) -> None:
        if self._links is not None and self._by_id_link is not None:
            self._links.remove(self.by_id_name)
            self._by_id_link = None

    # ---------------------------------------------------------------- scripting API

    @property
    def at_port(self) -> str:
        return self.port

    @property
    def by_id_name(self) -> str:
        return by_id_name(self._usb, _PORT.interface, acm=True)

    @property
    def state(self) -> str:
        """gone | idle | ringing | dialing | active | remote_hangup | offhook"""
        if self._gone:
            return "gone"
        call = self._call
        if call is None:
            return "offhook" if self._offhook else "idle"
        return {"ringing": "ringing", "dialing": "dialing", "active": "active",
                "gone": "remote_hangup"}[call.state]

    @property
    def stream(self) -> str | None:
        """None in command state, else "tx" (+VTX), "rx" (+VRX) or "duplex" (+VTR)."""
        return self._stream

    @property
    def sample_format(self) -> tuple[int, int]:
        """The current (+VSM id, rate)."""
        return self._vsm

    def wait_for_stream(self, stream: str | None, timeout: float) -> bool:
        return self._wait_for(lambda: self._stream == stream, timeout)

    def ring(self, caller: str = "5551234567", name: str | None = "WIRELESS CALLER", *,
             rings_before_cid: int = 1, ring_interval: float | None = None,
             max_rings: int | None = None) -> None:
        """An incoming call. Caller ID comes after `rings_before_cid` rings (0: before the first
        RING) when the host enabled AT+VCID=1; caller "P"/"O" is private/unavailable, name None
        leaves NAME out. The caller gives up after `max_rings` rings (None: rings until answered)."""
        if rings_before_cid < 0:
            raise ValueError("rings_before_cid must be 0 or more")
        interval = self.ring_interval if ring_interval is None else ring_interval
        self._call_in_loop(self._ring, caller, name, rings_before_cid, interval, max_rings)

    def send_dtmf(self, digits: str, gap: float = 0.25) -> None:
        digits = digits.upper()
        if not digits or any(d not in DTMF_DIGITS for d in digits):
            raise ValueError(f"DTMF digits {digits!r}: use only {DTMF_DIGITS}")
        self._call_in_loop(self._send_dtmf, digits, gap)

    def play_pcm(self, samples) -> None:
        """The caller speaks: int16 8 kHz samples, heard by the host while it listens."""
        self._call_in_loop(self._play.append, pcm_samples(samples))

    def play_wav(self, path: str) -> None:
        self.play_pcm(read_wav(path))

    def capture(self) -> np.ndarray:
        """What the host played into the line (+VTX/+VTR audio and +VTS tones), as int16 8 kHz."""
        parts = self._call_in_loop(lambda: list(self._capture), after_stop=True)
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def clear_capture(self) -> None:
        self._call_in_loop(self._capture.clear, after_stop=True)

    def save_capture(self, path: str) -> None:
        write_wav(path, self.capture())

    def hangup(self) -> None:
        """The far end hangs up: a ringing caller gives up; on a call the line shows busy."""
        self._call_in_loop(self._remote_hangup)

    def set_outbound_outcome(self, outcome: str, rings: int = 2) -> None:
        """How the next ATD goes: answer (after `rings` ringbacks), busy, no_answer, no_dialtone."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r}: use one of {OUTCOMES}")
        self._call_in_loop(setattr, self, "_outcome", (outcome, rings))

    def no_answer(self, on: bool = True) -> None:
        """Commands are taken but get no echo and no result until switched off; RING, caller ID
        and DLE events keep coming."""
        self._call_in_loop(setattr, self, "_frozen", bool(on))

    freeze = no_answer

    def slow(self, seconds: float) -> None:
        """Each command's result comes this many seconds late (0: back to normal)."""
        if seconds < 0:
            raise ValueError("slow wants seconds >= 0")
        self._call_in_loop(setattr, self, "_slow", float(seconds))

    def inject(self, data: bytes) -> None:
        """Raw bytes (garbage, a stray result, a DLE code) written to the host."""
        self._call_in_loop(self._inject, bytes(data))

    garbage = inject

    def unplug(self) -> None:
        """The USB device goes away: the tty vanishes (the host reads EOF/EIO), the by-id link
        with it."""
        self._call_in_loop(self._unplug)

    vanish = unplug

    def replug(self) -> str:
        """The device comes back (powered up afresh) under a new tty; returns its path."""
        return self._call_in_loop(self._replug)

    def port_inventory(self) -> list[dict]:
        """What a USB serial port scan would list for this device (empty while unplugged)."""
        if self._gone:
            return []
        return [inventory_row(self._usb, _PORT, self.port, self._by_id_link)]

    # ---------------------------------------------------------------- output

    def _log(self, direction: str, text: str) -> None:
        self._record(direction, text)
        _LOGGER.debug("%s %s %s", self.dialect.name, direction, text)

    def _write(self, data: bytes) -> None:
        if self._gone:
            return
        self._out += data
        if len(self._out) > 4 * OUT_BACKLOG:
            _LOGGER.warning("host is not reading; dropping %d bytes", len(self._out) - OUT_BACKLOG)
            del self._out[: len(self._out) - OUT_BACKLOG]
        self._flush()

    def _flush(self) -> None:
        assert self._loop is not None
        if self._gone:
            return
        del self._out[: self._pty.write(bytes(self._out))]
        if self._out:
            self._loop.add_writer(self._pty.master, self._flush)
        else:
            self._loop.remove_writer(self._pty.master)

    def _result(self, final: str, lines: list[str] | None = None) -> None:
        for line in lines or []:
            self._log("<", line)
        self._log("<", final)
        frame = "\r\n{}\r\n" if self._verbose else "{}\r\n"
        text = "".join(frame.format(line) for line in lines or []) + frame_code(final, self._verbose)
        self._write(text.encode("latin-1"))

    def _unsolicited(self, line: str) -> None:
        self._log("<", line)
        self._write(frame_code(line, self._verbose).encode("latin-1"))

    def _event(self, code: str) -> None:
        """A DLE-shielded event to the host (voice mode only; data mode has no such reports)."""
        if self._fclass != "8" or self._gone:
            return
        self._log("<", f"<DLE>{code}")
        self._write(bytes([DLE]) + code.encode("latin-1"))

    def _inject(self, data: bytes) -> None:
        self._log("<", data.decode("latin-1"))
        self._write(data)

    # ---------------------------------------------------------------- input

    def _on_readable(self) -> None:
        data = self._pty.read(4096)
        if data:
            self._consume(data)

    def _consume(self, data: bytes) -> None:
        while data:
            if self._stream is not None:
                if self._tx_end is not None:     # +VTX draining: the next command waits for OK
                    self._held += data
                    return
                data = self._stream_input(data)
                continue
            if self._dial_task is not None:
                self._abort_dial()
                data = data[1:]
                continue
            if self._busy:
                self._held += data
                return
            if self._frozen:
                self._log(">", f"(ignored while frozen) {data!r}")
                return
            cr = data.find(b"\r")
            part, data = (data, b"") if cr < 0 else (data[:cr + 1], data[cr + 1:])
            if self._echo:
                self._write(part)
            self._rx += part
            if cr >= 0:
                raw = bytes(self._rx[:-1])
                self._rx.clear()
                try:
                    self._command_line(raw)
                except Exception:  # the modem must survive anything the host sends
                    _LOGGER.exception("emulator fault on %r", raw)
                    self._result("ERROR")
            elif len(self._rx) > LINE_LIMIT:
                _LOGGER.warning("discarding %d bytes without CR", len(self._rx))
                self._rx.clear()
                self._result("ERROR")

    def _release_held(self) -> None:
        self._busy = False
        held, self._held = bytes(self._held), bytearray()
        if held:
            self._consume(held)

    def _command_line(self, raw: bytes) -> None:
        text = clean_line(raw)
        if not text:
            return
        start = text.upper().find("AT")
        if start < 0:
            self._log(">", text)
            return
        self._log(">", text[start:])
        result = self._execute(text[start + 2:])
        if result.final is None:
            return
        result.delay += self._slow
        if result.delay > 0:
            self._busy = True
            self._spawn(self._late_result(result))
            return
        self._finish(result)

    async def _late_result(self, result: _Result) -> None:
        await asyncio.sleep(result.delay)
        self._finish(result)
        self._release_held()

    def _finish(self, result: _Result) -> None:
        assert result.final is not None
        self._result(result.final, result.lines)
        if result.stream is not None:
            self._start_stream(result.stream)

    def _execute(self, body: str) -> _Result:
        """A V.250 command line: basic commands back to back, extended ones split by ';'."""
        result = _Result()
        try:
            for part in command_parts(body, "+-#", self._extended, self._dial, self._basic):
                result.lines += part.lines
                result.delay += part.delay
                if part.final != "OK" or part.stream is not None:
                    result.final, result.stream = part.final, part.stream
                    break
        except _CmdError:
            return _Result(lines=result.lines, final="ERROR")
        return result

    def _basic(self, body: str, pos: int) -> tuple[_Result, int]:
        ch = body[pos].upper()
        pos += 1
        if ch in "&\\%" and pos < len(body):
            ch += body[pos].upper()
            pos += 1
        if ch == "S":
            end = pos
            while end < len(body) and body[end].isdigit():
                end += 1
            if end == pos:
                raise _CmdError()
            reg = int(body[pos:end])
            if body[end:end + 1] == "?":
                value = f"{self._sregs.get(reg, 0):03d}"
                return _Result([value]), end + 1
            if body[end:end + 1] == "=":
                vend = end + 1
                while vend < len(body) and body[vend].isdigit():
                    vend += 1
                if vend == end + 1 or int(body[end + 1:vend]) > 255:
                    raise _CmdError()
                self._sregs[reg] = int(body[end + 1:vend])
                return _Result(), vend
            raise _CmdError()
        end = pos
        while end < len(body) and body[end].isdigit():
            end += 1
        arg = int(body[pos:end]) if end > pos else 0
        pos = end
        if ch == "E" and arg in (0, 1):
            self._echo = bool(arg)
        elif ch == "V" and arg in (0, 1):
            self._verbose = bool(arg)
        elif ch in ("Z", "&F"):
            self._hang_up()
            self._reset_settings()
        elif ch == "I":
            if arg not in self.dialect.ati and arg > 9:
                raise _CmdError()
            return _Result(list(self.dialect.ati.get(arg, ()))), pos
        elif ch == "H":
            if arg == 0:
                self._hang_up()
            elif arg == 1:
                self._go_offhook()
            else:
                raise _CmdError()
        elif ch == "A":
            return self._answer(), pos
        elif ch == "&V":
            return _Result(self._profile_dump()), pos
        elif ch in ("Q", "L", "M", "X", "B", "N", "W", "Y", "&W", "&C", "&D", "&K", "&H", "&R",
                    "&I", "&S", "&B", "&N", "&U", "\\N", "%C"):
            pass
        else:
            raise _CmdError()
        return _Result(), pos

    def _profile_dump(self) -> list[str]:
        e, v = int(self._echo), int(self._verbose)
        regs = " ".join(f"S{r:02d}:{self._sregs.get(r, 0):03d}" for r in (0, 3, 4, 5, 7))
        return ["ACTIVE PROFILE:",
                f"B1 E{e} L2 M1 N0 Q0 T V{v} W0 X4 Y0 &C1 &D2 &G0 &J0 &K3 &Q5 &R1 &S0 &T5 &X0 &Y0",
                regs]

    # ---------------------------------------------------------------- extended commands

    def _answer_text(self, name: str, value: str) -> str:
        return f"+{name}: {value}" if self.dialect.prefixed_answers else value

    def _extended(self, command: str) -> _Result:
        prefix, text = command[0], command[1:]
        end = 0
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        name = text[:end].upper()
        suffix = text[end:].strip()
        if prefix == "-":
            if not self.dialect.dash_commands or name not in ("SCID", "STE"):
                raise _CmdError()
            return self._store(f"-{name}", suffix, 0, 7)
        if prefix != "+":
            raise _CmdError()
        if name in VOICE_ONLY and self._fclass != "8":
            raise _CmdError()                      # "ERROR … if not in Voice Mode" (T11k)
        handler = getattr(self, f"_x_{name.lower()}", None)
        if handler is not None:
            return handler(suffix)
        if name in VOICE_SETTINGS:
            return self._voice_setting(name, suffix)
        raise _CmdError()

    def _store(self, key: str, suffix: str, low: int, high: int) -> _Result:
        if suffix == "?":
            return _Result([self._extra.get(key, "0")])
        if suffix == "=?":
            return _Result([f"({low}-{high})"])
        if suffix.startswith("=") and suffix[1:].strip().isdigit() \
                and low <= int(suffix[1:]) <= high:
            self._extra[key] = suffix[1:].strip()
            return _Result()
        raise _CmdError()

    def _info(self, suffix: str, text: str) -> _Result:
        if suffix == "":
            return _Result([text])
        if suffix == "=?":
            return _Result()
        raise _CmdError()

    def _x_gmi(self, suffix: str) -> _Result:
        return self._info(suffix, self.dialect.gmi)

    def _x_gmm(self, suffix: str) -> _Result:
        return self._info(suffix, self.dialect.gmm)

    def _x_gmr(self, suffix: str) -> _Result:
        return self._info(suffix, self.dialect.gmr)

    _x_fmi, _x_fmm, _x_fmr = _x_gmi, _x_gmm, _x_gmr

    def _x_gci(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result([f"+GCI: {self._extra.get('GCI', 'B5')}"])
        if suffix == "=?":
            return _Result(["+GCI: (00-FE)"])
        if suffix.startswith("=") and len(suffix) > 1:
            self._extra["GCI"] = suffix[1:].strip().upper()
            return _Result()
        raise _CmdError()

    def _x_ifc(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result([self._extra.get("IFC", "2,2")])
        if suffix == "=?":
            return _Result(["(0-2),(0-2)"])
        if suffix.startswith("="):
            self._extra["IFC"] = suffix[1:].strip()
            return _Result()
        raise _CmdError()

    def _x_fclass(self, suffix: str) -> _Result:
        classes = self.dialect.fclass.split(",")
        if suffix == "?":
            return _Result([self._fclass])
        if suffix == "=?":
            return _Result([self.dialect.fclass])
        if suffix.startswith("=") and suffix[1:].strip() in classes:
            self._fclass = suffix[1:].strip()
            return _Result()
        raise _CmdError()

    def _x_vcid(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result([self._answer_text("VCID", str(self._vcid))])
        if suffix == "=?":
            return _Result([self._answer_text("VCID", "(0-2)")])
        if suffix in ("=0", "=1", "=2"):
            self._vcid = int(suffix[1])
            return _Result()
        raise _CmdError()

    def _voice_setting(self, name: str, suffix: str) -> _Result:
        low, high, _ = VOICE_SETTINGS[name]
        if suffix == "?":
            return _Result([self._answer_text(name, str(self._voice[name]))])
        if suffix == "=?":
            return _Result([self._answer_text(name, f"({low}-{high})")])
        value = suffix[1:].strip() if suffix.startswith("=") else ""
        if not value.isdigit() or not low <= int(value) <= high:
            raise _CmdError()
        self._voice[name] = int(value)
        return _Result()

    def _two_values(self, suffix: str, ranges: tuple[range, range]) -> tuple[int, int]:
        parts = [p.strip() for p in suffix[1:].split(",")] if suffix.startswith("=") else []
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise _CmdError()
        a, b = int(parts[0]), int(parts[1])
        if a not in ranges[0] or b not in ranges[1]:
            raise _CmdError()
        return a, b

    def _x_vsd(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result([self._answer_text("VSD", f"{self._vsd[0]},{self._vsd[1]}")])
        if suffix == "=?":
            return _Result([self._answer_text("VSD", self.dialect.vsd_range)])
        sds_ok = range(256) if not self.dialect.prefixed_answers else (0, 127, 128, 129)
        self._vsd = self._two_values(suffix, (sds_ok, range(256)))
        return _Result()

    def _x_vdr(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result([self._answer_text("VDR", f"{self._vdr[0]},{self._vdr[1]}")])
        if suffix == "=?":
            return _Result([self._answer_text("VDR", "(0,1),(0-60)")])
        self._vdr = self._two_values(suffix, (range(2), range(61)))
        return _Result()

    def _x_vsm(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result([self._answer_text("VSM", f"{self._vsm[0]},{self._vsm[1]},0,0")])
        if suffix == "=?":
            return _Result([self.dialect.vsm_line(*entry) for entry in self.dialect.vsm])
        parts = [p.strip() for p in suffix[1:].split(",")] if suffix.startswith("=") else []
        if not parts or not all(p.isdigit() for p in parts if p):
            raise _CmdError()
        vsm_id = int(parts[0])
        rate = int(parts[1]) if len(parts) > 1 and parts[1] else SAMPLE_RATE
        if vsm_id not in {entry[0] for entry in self.dialect.vsm} \
                or rate not in self.dialect.vsm_rates:
            raise _CmdError()
        self._vsm = (vsm_id, rate)
        return _Result()

    def _x_vls(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result([self._answer_text("VLS", str(self._vls))])
        if suffix == "=?":
            return _Result([f'{label},"{prims}",{events}' for label, prims, events in VLS_TABLE])
        value = suffix[1:].strip() if suffix.startswith("=") else ""
        if not value.isdigit() or int(value) not in VLS_PRIMITIVES:
            raise _CmdError()
        if "T" in VLS_PRIMITIVES[int(value)]:
            self._go_offhook()
        else:
            self._hang_up()
        self._vls = int(value)
        return _Result()

    def _x_vtx(self, suffix: str) -> _Result:
        return self._stream_command(suffix, "tx")

    def _x_vrx(self, suffix: str) -> _Result:
        return self._stream_command(suffix, "rx")

    def _x_vtr(self, suffix: str) -> _Result:
        return self._stream_command(suffix, "duplex")

    def _stream_command(self, suffix: str, mode: str) -> _Result:
        if suffix:
            raise _CmdError()
        if self._vls == 0:
            raise _CmdError()          # no line or device selected to play to or record from
        return _Result(final="CONNECT", stream=mode)

    def _x_vts(self, suffix: str) -> _Result:
        if suffix == "=?":
            return _Result([self._answer_text("VTS", "(200-3300),(200-3300),(0-500)")])
        if not suffix.startswith("=") or len(suffix) < 2:
            raise _CmdError()
        items = self._parse_vts(suffix[1:].strip().strip('"'))
        total = 0.0
        for label, f1, f2, seconds in items:
            self.vts_log.append(label)
            if self._offhook:
                self._capture.append(_tone(f1, f2, seconds))
            total += seconds
        return _Result(delay=total)

    def _parse_vts(self, text: str) -> list[tuple[str, float, float, float]]:
        """+VTS items: a DTMF digit, [f1,f2,duration] or {digit,duration}; durations in 10 ms."""
        items, depth, current = [], 0, ""
        for ch in text + ",":
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
            if ch == "," and depth == 0:
                items.append(current.strip())
                current = ""
            else:
                current += ch
        default = self._voice["VTD"] / 100 or DTMF_TONE
        out = []
        for item in items:
            if len(item) == 1 and item.upper() in DTMF_DIGITS:
                out.append((item.upper(), *DTMF_FREQS[item.upper()], default))
            elif item.startswith("[") and item.endswith("]"):
                fields = [f.strip() for f in item[1:-1].split(",")]
                if len(fields) != 3 or not fields[0].isdigit() or not fields[2].isdigit() \
                        or (fields[1] and not fields[1].isdigit()):
                    raise _CmdError()
                f1, f2 = int(fields[0]), int(fields[1] or 0)
                if not (0 <= f1 <= 4000 and 0 <= f2 <= 4000) or int(fields[2]) > 500:
                    raise _CmdError()
                out.append((item, f1, f2, int(fields[2]) / 100))
            elif item.startswith("{") and item.endswith("}"):
                fields = [f.strip() for f in item[1:-1].split(",")]
                if len(fields) != 2 or fields[0].upper() not in DTMF_FREQS \
                        or not fields[1].isdigit():
                    raise _CmdError()
                out.append((fields[0].upper(), *DTMF_FREQS[fields[0].upper()],
                            int(fields[1]) / 100))
            else:
                raise _CmdError()
        return out

    # ---------------------------------------------------------------- line and calls

    def _set_call(self, call: _Call | None) -> None:
        self._call = call
        self._notify()

    def _spawn(self, coro) -> asyncio.Task:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self._dial_task = None
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def _go_offhook(self) -> None:
        self._offhook = True
        call = self._call
        if call is not None and call.state == "ringing":
            call.state = "active"
            if self.late_rings:
                self._spawn(self._late_rings(call))
        self._notify()

    async def _late_rings(self, call: _Call) -> None:
        # USR 5637: slow to go off-hook, RINGs kept arriving after the pick-up commands.
        for _ in range(self.late_rings):
            await asyncio.sleep(min(0.2, self.ring_interval / 2))
            if self._call is not call:
                return
            self._unsolicited("RING")

    def _hang_up(self) -> None:
        """On-hook. A call still ringing in goes on ringing: only answering stops that."""
        call = self._call
        ringing = call is not None and call.state == "ringing"
        for task in list(self._tasks):
            if not (ringing and task is self._ring_task):
                task.cancel()
                self._tasks.discard(task)
        self._dial_task = None
        self._offhook = False
        self._vls = 0
        self._play.clear()
        if not ringing:
            self._set_call(None)

    def _answer(self) -> _Result:
        call = self._call
        if call is None or call.state != "ringing":
            if self._fclass == "8":
                self._go_offhook()
                return _Result(final="VCON")
            return _Result(final="NO CARRIER")
        if self._fclass == "8":
            self._vls = 1
            self._go_offhook()
            return _Result(final="VCON")
        self._hang_up()                  # a data answer: no modem at the far end
        return _Result(final="NO CARRIER")

    def _ring(self, caller: str, name: str | None, rings_before_cid: int, interval: float,
              max_rings: int | None) -> None:
        if self._gone:
            raise RuntimeError("the modem is unplugged")
        if self._call is not None or self._offhook:
            raise RuntimeError(f"the line is busy (state {self.state})")
        call = _Call("in", caller, name)
        self._set_call(call)
        self._ring_task = self._spawn(self._ringing(call, rings_before_cid, interval, max_rings))

    def _cid_lines(self, call: _Call) -> list[str]:
        when = self.cid_time or datetime.datetime.now()
        sep = self.dialect.cid_separator
        lines = [f"DATE{sep}{when:%m%d}", f"TIME{sep}{when:%H%M}", f"NMBR{sep}{call.number}"]
        if call.name is not None:
            lines.append(f"NAME{sep}{call.name}")
        return lines

    async def _ringing(self, call: _Call, rings_before_cid: int, interval: float,
                       max_rings: int | None) -> None:
        cid_delay = min(0.5, interval / 3)
        if rings_before_cid == 0 and self._vcid:
            for line in self._cid_lines(call):
                self._unsolicited(line)
        while self._call is call and call.state == "ringing":
            self._unsolicited("RING")
            call.rings += 1
            if call.rings == rings_before_cid and self._vcid:
                await asyncio.sleep(cid_delay)
                if self._call is not call or call.state != "ringing":
                    return
                for line in self._cid_lines(call):
                    self._unsolicited(line)
                await asyncio.sleep(interval - cid_delay)
            else:
                await asyncio.sleep(interval)
            if max_rings is not None and call.rings >= max_rings and call.state == "ringing":
                self._log("<", "(caller gave up)")
                self._set_call(None)
                return

    def _remote_hangup(self) -> None:
        call = self._call
        if call is None:
            raise RuntimeError("no call to hang up (state idle)")
        if call.state == "ringing":
            self._log("<", "(caller gave up)")
            self._set_call(None)
            return
        if call.state != "active":
            raise RuntimeError(f"no connected call to hang up (state {self.state})")
        call.state = "gone"
        self._notify()
        self._spawn(self._busy_signal(call))

    async def _busy_signal(self, call: _Call) -> None:
        for i in range(self.busy_count):
            if self._call is not call:
                return
            self._event("b")
            await asyncio.sleep(self.busy_interval)
        if self._call is call:
            self._event("d")

    # ---------------------------------------------------------------- outbound

    def _dial(self, rest: str) -> _Result:
        number = "".join(ch for ch in rest.upper() if ch in DTMF_DIGITS)
        if not number:
            raise _CmdError()
        if self._call is not None:
            raise _CmdError()
        self.dialed.append(number)
        self._offhook = True
        call = _Call("out", number, state="dialing")
        self._set_call(call)
        self._dial_task = self._spawn(self._dialing(call))
        return _Result(final=None)

    def _dial_done(self, call: _Call, final: str, answered: bool) -> None:
        self._dial_task = None
        if answered:
            call.state = "active"
            self._vls = 1
            self._notify()
        else:
            self._hang_up()
        self._result(final)
        self._release_held()

    async def _dialing(self, call: _Call) -> None:
        outcome, rings = self._outcome
        voice = self._fclass == "8"
        await asyncio.sleep(self.dial_delay)
        if outcome == "no_dialtone":
            self._dial_done(call, "NO DIALTONE", False)
            return
        if not voice:                                   # a data call: nobody whistles back
            if outcome == "busy":
                self._dial_done(call, "BUSY", False)
                return
            await asyncio.sleep(min(self._sregs.get(7, 60), 2 * self.ring_interval))
            self._dial_done(call, "NO CARRIER", False)
            return
        if outcome == "busy":
            self._event("b")
            self._dial_done(call, "BUSY", False)
            return
        if outcome == "answer" and rings == 0:
            await asyncio.sleep(self._voice["VRN"])     # ringback never appeared: answered
            self._dial_done(call, self.dialect.dial_answered, True)
            return
        started = time.monotonic()
        count = 0
        while True:
            self._event("r")
            count += 1
            if outcome == "answer" and count >= rings:
                await asyncio.sleep(self._voice["VRA"] / 10)   # ringback has gone away
                self._dial_done(call, self.dialect.dial_answered, True)
                return
            left = self._sregs.get(7, 60) - (time.monotonic() - started)
            if outcome == "no_answer" and left <= self.ring_interval:
                await asyncio.sleep(max(left, 0))
                self._dial_done(call, "NO ANSWER", False)
                return
            await asyncio.sleep(self.ring_interval)

    def _abort_dial(self) -> None:
        self._log(">", "(character during dialling: abort)")
        self._hang_up()                          # cancels the dialling task
        self._result("NO CARRIER")

    # ---------------------------------------------------------------- DTMF from the far end

    def _send_dtmf(self, digits: str, gap: float) -> None:
        call = self._call
        if call is None or call.state != "active":
            raise RuntimeError(f"DTMF needs a connected call (state {self.state})")
        self._spawn(self._dtmf_sequence(call, digits, gap))

    async def _dtmf_sequence(self, call: _Call, digits: str, gap: float) -> None:
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(gap)
            if self._call is not call:
                return
            if self._stream in ("rx", "duplex"):
                tone = _tone(*DTMF_FREQS[digit], DTMF_TONE)
                self._play.append(np.concatenate((tone, np.zeros(int(gap * SAMPLE_RATE) // 2,
                                                                 np.int16))))
            if self.dialect.dtmf_shielded:
                self._event("/")
                self._event(digit)
                await asyncio.sleep(SHIELD_REPEAT)
                self._event(digit)
                self._event("~")
            else:
                for _ in range(self.dtmf_repeat):
                    self._event(digit)

    # ---------------------------------------------------------------- voice streams

    def _start_stream(self, mode: str) -> None:
        self._reset_stream()
        self._stream = mode
        self._stream_since = time.monotonic()
        self._rx_quiet_since = time.monotonic()
        assert self._loop is not None
        self._clock = self._loop.create_task(frame_clock(self._stream_tick, TICK))
        self._notify()

    def _end_stream(self, etx: bool) -> None:
        if self._clock is not None and self._clock is not asyncio.current_task():
            self._clock.cancel()
        self._clock = None
        mode, self._stream = self._stream, None
        if self._reading_paused:
            self._resume_reading()
        if etx:
            self._log("<", "<DLE><ETX>")
            self._write(bytes([DLE, ETX]))
        self._log("<", f"(end of {mode} stream)")
        self._result("OK")
        self._notify()
        self._release_held()

    def _stream_input(self, data: bytes) -> bytes:
        """Host bytes in a voice state; returns what follows the end of the stream."""
        audio = bytearray()
        pos = 0
        if self._host_dle and data:
            self._host_dle = False
            pos = 1
            if self._host_code(data[0], audio):
                return self._after_stream(data[1:])
        while pos < len(data):
            dle = data.find(DLE, pos)
            if dle < 0:
                audio += data[pos:]
                break
            audio += data[pos:dle]
            if dle + 1 >= len(data):
                self._host_dle = True
                break
            pos = dle + 2
            if data[dle + 1] != DLE:
                self._tx_audio(audio)            # the audio before a terminator is played first
                audio.clear()
            if self._host_code(data[dle + 1], audio):
                return self._after_stream(data[pos:])
        self._tx_audio(audio)
        return b""

    def _after_stream(self, rest: bytes) -> bytes:
        if self._stream is None:
            return rest
        if rest:                      # a command sent before the OK of a draining +VTX
            self._held += rest
        return b""

    def _tx_audio(self, audio: bytearray) -> None:
        if not audio or self._stream not in ("tx", "duplex") or self._tx_end is not None:
            return
        self._tx += audio
        self._underrun = False
        if len(self._tx) > self.tx_buffer_limit and not self._reading_paused:
            assert self._loop is not None
            self._loop.remove_reader(self._pty.master)    # hardware flow control: CTS off
            self._reading_paused = True

    def _resume_reading(self) -> None:
        assert self._loop is not None
        if self._gone or not self._pty.is_open:
            return
        self._reading_paused = False
        self._loop.add_reader(self._pty.master, self._on_readable)

    def _host_code(self, byte: int, audio: bytearray) -> bool:
        """The byte after a host <DLE>; True when it ended the stream right away."""
        mode = self._stream
        if byte == DLE:
            audio.append(DLE)
            return False
        code = chr(byte)
        self._log(">", f"<DLE>{'<ETX>' if byte == ETX else '<CAN>' if byte == CAN else code}")
        if byte == ETX and mode in ("tx", "duplex"):
            self._tx_end = "etx"                 # play out the buffer, then finish
            return True
        if byte == CAN and mode in ("tx", "duplex"):
            self._tx.clear()
            self._end_stream(etx=mode == "duplex")
            return True
        if code == "!" and mode in ("rx", "duplex"):
            self._end_stream(etx=self.dialect.rx_stop_etx)
            return True
        if code == "^" and mode == "duplex":
            self._end_stream(etx=True)
            return True
        return False                              # <NUL>, volume codes and unknowns: ignored

    def _stream_tick(self) -> bool:
        """One 20 ms tick of the voice stream; True when the stream finished."""
        if self._stream in ("tx", "duplex") and self._play_tick():
            return True
        if self._stream in ("rx", "duplex"):
            self._record_tick()
        return False

    def _line_up(self) -> bool:
        return self._offhook and self._call is not None and self._call.state in ("active", "gone")

    def _play_tick(self) -> bool:
        """Consume one tick of host audio; True when the stream finished."""
        vsm_id, rate = self._vsm
        width = _sample_bytes(vsm_id)
        need = int(rate * TICK) * width
        take = min(need, len(self._tx) - len(self._tx) % width)
        chunk = bytes(self._tx[:take])
        del self._tx[:take]
        if chunk and self._offhook:
            samples = _decode(vsm_id, chunk)
            if samples is not None:
                if rate != SAMPLE_RATE:
                    samples = resample(samples, rate, SAMPLE_RATE)
                self._capture.append(samples)
        if self._reading_paused and len(self._tx) < self.tx_buffer_limit // 2:
            self._resume_reading()
        if take < need:
            if self._tx_end is not None:
                if self._stream == "tx":
                    self._end_stream(etx=False)
                else:
                    self._end_stream(etx=True)
                return True
            grace = time.monotonic() - self._stream_since > self.underrun_grace
            if not self._underrun and grace:
                self._underrun = True
                self._event("u")
        return False

    def _caller_samples(self, count: int) -> tuple[np.ndarray, bool]:
        """`count` samples of what the far end sends, and whether any of it was speech."""
        call = self._call
        if call is not None and call.state == "gone":
            tone = _busy_tone(self._busy_sample, count)
            self._busy_sample += count
            return tone, False
        out = np.zeros(count, np.int16)
        filled = self._play.read_into(out)
        return out, filled > 0 and bool(np.any(out))

    def _record_tick(self) -> None:
        vsm_id, rate = self._vsm
        if len(self._out) > OUT_BACKLOG:
            if not self._overrun:
                self._overrun = True
                self._event("o")          # the host is not reading: the modem's buffer overran
            return
        self._overrun = False
        if self._line_up():
            samples, speech = self._caller_samples(SAMPLE_RATE * 20 // 1000)
        else:
            samples, speech = np.zeros(SAMPLE_RATE * 20 // 1000, np.int16), False
        if rate != SAMPLE_RATE:
            samples = resample(samples, SAMPLE_RATE, rate)
        self._write(_encode(vsm_id, samples).replace(b"\x10", b"\x10\x10"))
        self._silence_detection(speech)

    def _silence_detection(self, speech: bool) -> None:
        now = time.monotonic()
        if speech:
            self._rx_voice = True
            self._rx_quiet_since = now
            self._rx_silence_sent = False
            return
        sdi = self._vsd[1]
        call = self._call
        if sdi == 0 or self._rx_silence_sent or call is None or call.state != "active":
            return
        if self._rx_quiet_since is not None and now - self._rx_quiet_since >= sdi / 10:
            self._rx_silence_sent = True
            self._event("q" if self._rx_voice else "s")

    # ---------------------------------------------------------------- unplug / replug

    def _unplug(self) -> None:
        if self._gone:
            return
        self._cancel_tasks()
        self._stream = None
        self._detach()
        self._pty.close()
        self._remove_link()
        self._gone = True
        self._log("<", "(unplugged)")
        self._notify()

    def _replug(self) -> str:
        if not self._gone:
            self._unplug()
        self.port = self._pty.open()
        self._gone = False
        self._frozen = False
        self._power_on()
        assert self._loop is not None
        self._loop.add_reader(self._pty.master, self._on_readable)
        self._make_link()
        self.replugs += 1
        self._log("<", f"(replugged as {self.port})")
        self._notify()
        self._run_replug_callbacks()
        return self.port
