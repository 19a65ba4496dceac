"""A SIMCom SIM7600 module as the host sees it: an AT tty and a USB PCM audio tty on pseudo-terminals.

The emulator follows the module's documented behaviour (shared/docs/modems.md §1, §2, T1, T7, T11):
V.250 line discipline with echo on at power-up, the 27.007 call-control commands, SIMCom's call
URCs (``VOICE CALL: BEGIN/END``, ``+CLCC`` after ``AT+CLCC=1``, ``MISSED_CALL:``), ``+RXDTMF``
with its doubled-CR framing, and raw S16LE PCM on the audio tty after ``AT+CPCMREG=1``, which is
accepted only while a call exists. It runs in its own thread with its own asyncio loop; the
scripting methods (ring, send_dtmf, play_wav, hangup, ...) are thread-safe.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import datetime
import errno
import logging
import os
import threading
import time
import tty
import wave
from typing import Callable

import numpy as np

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 8000
FRAME_SECONDS = 0.020
# Longest stall of the emulator's loop the audio clock catches up on by sending the missed frames
# at once; after a longer stall it restarts its schedule (a real module would have dropped them).
AUDIO_MAX_CATCHUP = 0.2
# Audio bytes the emulator keeps queued for a host that does not read the audio tty.
AUDIO_OUT_BACKLOG_FRAMES = 4
# AT bytes kept for a host that does not read the AT tty; older bytes are dropped beyond this.
AT_OUT_BACKLOG = 65536
# A command line longer than this without CR is discarded (the module's line buffer limit).
AT_LINE_LIMIT = 1024
# Delay between the dialing and alerting +CLCC URCs of an outgoing call.
DIAL_ALERT_DELAY = 0.3
# How long a scripting call waits for the emulator's loop to run it.
CALL_TIMEOUT = 5.0
START_TIMEOUT = 5.0

DTMF_DIGITS = "0123456789*#ABCD"
END_ORDER_ITEMS = ("clcc", "voice_call_end", "no_carrier")

# 27.007 §9.2 texts for AT+CMEE=2.
CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    50: "Incorrect parameters",
    100: "unknown",
}
CME_NOT_ALLOWED = 3
CME_INVALID_PARAMS = 50
CME_UNKNOWN = 100

# V.250 numeric result codes for ATV0.
NUMERIC_RESULTS = {"OK": "0", "CONNECT": "1", "RING": "2", "NO CARRIER": "3", "ERROR": "4",
                   "NO DIALTONE": "6", "BUSY": "7", "NO ANSWER": "8"}

# Single-integer settings: name -> (low, high, power-up value, query format).
_SETTINGS = {
    "CMEE": (0, 2, 0, "+CMEE: {}"),
    "CLIP": (0, 1, 0, "+CLIP: {},1"),
    "CLCC": (0, 1, 0, "+CLCC: {}"),
    "CVHU": (0, 1, 1, "+CVHU: {}"),
    "CRC": (0, 1, 0, "+CRC: {}"),
    "CREG": (0, 2, 0, "+CREG: {},1"),
    "CEREG": (0, 2, 0, "+CEREG: {},1"),
    "CGREG": (0, 2, 0, "+CGREG: {},1"),
    "COLP": (0, 1, 0, "+COLP: {},1"),
    "CCWA": (0, 1, 0, "+CCWA: {}"),
    "CSSN": (0, 1, 0, "+CSSN: {},0"),
    "DDET": (0, 1, 0, "+DDET: {}"),
    "CLTS": (0, 1, 0, "+CLTS: {}"),
    "CNSMOD": (0, 1, 0, "+CNSMOD: {},8"),
    "AUTOCSQ": (0, 1, 0, "+AUTOCSQ: {},0"),
    "CMICGAIN": (0, 8, 3, "+CMICGAIN: {}"),
    "COUTGAIN": (0, 8, 4, "+COUTGAIN: {}"),
    "CPCMFRM": (0, 1, 0, "+CPCMFRM: {}"),
    "CFUN": (0, 1, 1, "+CFUN: {}"),
}


class _CmdError(Exception):
    """A command failed; code None means a plain ERROR whatever AT+CMEE says."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


@dataclasses.dataclass
class _Result:
    lines: list[str] = dataclasses.field(default_factory=list)   # information text before the final
    final: str = "OK"
    after: list[str] = dataclasses.field(default_factory=list)   # URCs that follow the final result


@dataclasses.dataclass
class _Call:
    direction: int          # 0 mobile-originated, 1 mobile-terminated
    stat: int               # +CLCC <stat>: 0 active, 2 dialing, 3 alerting, 4 incoming
    number: str
    number_type: int
    created: float
    active_since: float | None = None
    index: int = 1

    def clcc(self, stat: int | None = None) -> str:
        stat = self.stat if stat is None else stat
        return f'+CLCC: {self.index},{self.direction},{stat},0,0,"{self.number}",{self.number_type}'


def _open_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def _lowpass(samples: np.ndarray, cutoff: float) -> np.ndarray:
    """Windowed-sinc low-pass; cutoff is a fraction of the sample rate (0..0.5)."""
    taps = np.arange(-32, 33)
    kernel = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.hamming(len(taps))
    kernel /= kernel.sum()
    return np.convolve(samples, kernel, mode="same")


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample int16 audio (band-limited on the way down, linear interpolation)."""
    if from_rate == to_rate or len(samples) == 0:
        return samples.astype(np.int16)
    x = samples.astype(np.float64)
    if to_rate < from_rate:
        x = _lowpass(x, 0.45 * to_rate / from_rate)
    count = int(len(x) * to_rate / from_rate)
    positions = np.arange(count) * (from_rate / to_rate)
    y = np.interp(positions, np.arange(len(x)), x)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def read_wav(path: str) -> np.ndarray:
    """An int16 8 kHz mono array from a PCM WAV file (other rates, widths and channels converted)."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path}: not a PCM WAV file ({exc})") from None
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.int32)
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.int64) >> 16
    else:
        raise ValueError(f"{path}: {8 * width}-bit samples are not supported (use 8, 16 or 32-bit PCM)")
    if channels > 1:
        data = data[: len(data) - len(data) % channels].reshape(-1, channels).mean(axis=1)
    return resample(np.asarray(data), rate, SAMPLE_RATE)


def write_wav(path: str, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())


class Sim7600Emulator:
    """SIM7600 module on two pseudo-terminals (AT port and USB audio port, interface 4)."""

    def __init__(self, *, imei: str = "867584030000001", model: str = "SIMCOM_SIM7600G-H",
                 revision: str = "LE20B04SIM7600G22", ring_interval: float = 3.0,
                 pcm_accept_after: float = 0.0,
                 end_order: tuple[str, ...] = ("clcc", "voice_call_end", "no_carrier"),
                 imsi: str = "001010123456789", iccid: str = "89010100000000000019",
                 operator: str = "HIL Network", boot_urcs: bool = True) -> None:
        bad = [item for item in end_order if item not in END_ORDER_ITEMS]
        if bad or len(set(end_order)) != len(end_order):
            raise ValueError(f"end_order {end_order!r}: use each of {END_ORDER_ITEMS} at most once")
        self.imei, self.model, self.revision = imei, model, revision
        self.imsi, self.iccid, self.operator = imsi, iccid, operator
        self.ring_interval = ring_interval
        self.pcm_accept_after = pcm_accept_after
        self.end_order = tuple(end_order)
        self.boot_urcs = boot_urcs
        self.transcript: list[tuple[float, str, str]] = []
        self.vts_digits: list[str] = []          # digits the host sent with AT+VTS
        self._at_master, self._at_slave, self.at_port = _open_pty()
        self._audio_master, self._audio_slave, self.audio_port = _open_pty()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._state_cond = threading.Condition()
        self._gone = False
        self._closed = False
        self._frozen = False
        self._reset_settings()
        self._rx = bytearray()
        self._at_out = bytearray()
        self._call: _Call | None = None
        self._pcm = False
        self._pcm_task: asyncio.Task | None = None
        self._call_tasks: set[asyncio.Task] = set()
        self._audio_out = bytearray()
        self._play: collections.deque[np.ndarray] = collections.deque()
        self._play_offset = 0
        self._last_played = 0
        self._capture: list[tuple[int, bytearray]] = []
        self.frames_sent = 0
        self.frames_dropped = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._thread = threading.Thread(target=self._run, name="sim7600-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("emulator loop did not start")

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._shutdown)
            thread.join(CALL_TIMEOUT)
        self._close_fds()

    def __enter__(self) -> "Sim7600Emulator":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.add_reader(self._at_master, self._on_at_readable)
        loop.add_reader(self._audio_master, self._on_audio_readable)
        if self.boot_urcs:
            for line in ("RDY", "+CPIN: READY", "SMS DONE", "PB DONE"):
                self._urc(line)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _shutdown(self) -> None:
        self._detach_fds()
        for task in list(self._call_tasks):
            task.cancel()
        if self._pcm_task is not None:
            self._pcm_task.cancel()
        assert self._loop is not None
        self._loop.stop()

    def _detach_fds(self) -> None:
        loop = self._loop
        if loop is None or self._closed:
            return
        for fd in (self._at_master, self._audio_master):
            loop.remove_reader(fd)
            loop.remove_writer(fd)

    def _close_fds(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self._at_master, self._at_slave, self._audio_master, self._audio_slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def _call_in_loop(self, fn: Callable, *args, after_stop: bool = False):
        """Run fn(*args) on the emulator's loop and return its result (exceptions propagate).

        after_stop: once the loop has ended, run fn here instead (for reading what was recorded).
        """
        loop = self._loop
        if after_stop and self._thread is not None and not self._thread.is_alive():
            return fn(*args)
        if loop is None or not self._ready.is_set() or loop.is_closed():
            raise RuntimeError("emulator is not running (call start() first)")
        if threading.current_thread() is self._thread:
            return fn(*args)
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the calling thread
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(CALL_TIMEOUT)

    # ---------------------------------------------------------------- scripting API

    @property
    def state(self) -> str:
        if self._gone:
            return "gone"
        call = self._call
        if call is None:
            return "idle"
        return {0: "active", 2: "dialing", 3: "dialing", 4: "ringing"}[call.stat]

    @property
    def pcm_enabled(self) -> bool:
        return self._pcm

    def wait_for_state(self, state: str, timeout: float) -> bool:
        with self._state_cond:
            return self._state_cond.wait_for(lambda: self.state == state, timeout)

    def ring(self, caller: str = "+15551230001", number_type: int = 145) -> None:
        self._call_in_loop(self._ring, caller, number_type)

    def send_dtmf(self, digits: str, gap: float = 0.25) -> None:
        digits = digits.upper()
        bad = [d for d in digits if d not in DTMF_DIGITS]
        if bad or not digits:
            raise ValueError(f"DTMF digits {digits!r}: use only {DTMF_DIGITS}")
        self._call_in_loop(self._send_dtmf, digits, gap)

    def play_wav(self, path: str) -> None:
        self.play_pcm(read_wav(path))

    def play_pcm(self, samples) -> None:
        array = np.asarray(samples)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError("play_pcm wants a one-dimensional int16 array at 8 kHz")
        self._call_in_loop(self._play.append, array.astype(np.int16))

    def hangup(self) -> None:
        self._call_in_loop(self._remote_hangup)

    def remote_answer(self) -> None:
        self._call_in_loop(self._remote_answer)

    def capture(self) -> np.ndarray:
        segments = self._call_in_loop(lambda: [(rate, bytes(buf)) for rate, buf in self._capture],
                                      after_stop=True)
        parts = []
        for rate, raw in segments:
            samples = np.frombuffer(raw[: len(raw) // 2 * 2], "<i2")
            parts.append(resample(samples, rate, SAMPLE_RATE))
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def save_capture(self, path: str) -> None:
        write_wav(path, self.capture())

    def clear_capture(self) -> None:
        self._call_in_loop(self._capture.clear, after_stop=True)

    def inject(self, data: bytes) -> None:
        self._call_in_loop(self._inject, bytes(data))

    def freeze(self, frozen: bool = True) -> None:
        self._call_in_loop(setattr, self, "_frozen", bool(frozen))

    def vanish(self) -> None:
        self._call_in_loop(self._vanish)

    # ---------------------------------------------------------------- AT port output

    def _log(self, direction: str, line: str) -> None:
        self.transcript.append((time.time(), direction, line))
        _LOGGER.debug("%s %s", direction, line)

    def _write_at(self, data: bytes) -> None:
        if self._gone:
            return
        self._at_out += data
        if len(self._at_out) > AT_OUT_BACKLOG:
            _LOGGER.warning("host is not reading the AT port; dropping %d bytes",
                            len(self._at_out) - AT_OUT_BACKLOG)
            del self._at_out[: len(self._at_out) - AT_OUT_BACKLOG]
        self._flush_at()

    def _flush_at(self) -> None:
        assert self._loop is not None
        try:
            written = os.write(self._at_master, self._at_out)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            _LOGGER.warning("AT port write failed: %s", exc)
            self._at_out.clear()
            written = 0
        del self._at_out[:written]
        if self._at_out:
            self._loop.add_writer(self._at_master, self._flush_at)
        else:
            self._loop.remove_writer(self._at_master)

    def _urc(self, line: str, crcr: bool = False) -> None:
        """An unsolicited line; crcr gives SIMCom's <CR><CR><LF> framing (+RXDTMF, +CRING)."""
        self._log("<", line)
        if self._verbose:
            sep = "\r\r\n" if crcr else "\r\n"
            self._write_at(f"{sep}{line}{sep}".encode("latin-1"))
        elif line in NUMERIC_RESULTS:
            self._write_at(f"{NUMERIC_RESULTS[line]}\r".encode())
        else:
            self._write_at(f"{line}\r\n".encode("latin-1"))

    def _respond(self, result: _Result) -> None:
        for line in result.lines:
            self._log("<", line)
        self._log("<", result.final)
        text = ""
        if self._verbose:
            if result.lines:
                text += "\r\n" + "\r\n".join(result.lines) + "\r\n"
            text += f"\r\n{result.final}\r\n"
        else:
            text += "".join(f"{line}\r\n" for line in result.lines)
            code = NUMERIC_RESULTS.get(result.final)
            text += f"{code}\r" if code is not None else f"{result.final}\r\n"
        self._write_at(text.encode("latin-1"))
        for line in result.after:
            self._urc(line)

    def _inject(self, data: bytes) -> None:
        self._log("<", data.decode("latin-1"))
        self._write_at(data)

    # ---------------------------------------------------------------- AT port input

    def _on_at_readable(self) -> None:
        try:
            data = os.read(self._at_master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                _LOGGER.warning("AT port read failed: %s", exc)
            return
        if not data:
            return
        if self._echo and not self._frozen:
            self._write_at(data)
        self._rx += data
        while True:
            cr = self._rx.find(b"\r")
            if cr < 0:
                break
            raw = bytes(self._rx[:cr])
            del self._rx[: cr + 1]
            try:
                self._command_line(raw)
            except Exception:  # the module must survive anything the host sends
                _LOGGER.exception("emulator fault on command line %r", raw)
                self._respond(_Result(final="ERROR"))
        if len(self._rx) > AT_LINE_LIMIT:
            _LOGGER.warning("discarding %d bytes without CR on the AT port", len(self._rx))
            self._rx.clear()
            if not self._frozen:
                self._respond(_Result(final="ERROR"))

    def _command_line(self, raw: bytes) -> None:
        chars: list[str] = []
        for ch in raw.decode("latin-1"):
            if ch == "\x08":
                if chars:
                    chars.pop()
            elif ch >= " ":
                chars.append(ch)
        text = "".join(chars).strip()
        if not text:
            return
        self._log(">", text)
        if self._frozen:
            return
        start = text.upper().find("AT")
        if start < 0:
            return  # V.250: characters before the "AT" prefix are ignored
        self._respond(self._execute(text[start + 2:]))

    def _execute(self, body: str) -> _Result:
        """Run a V.250 command line: basic commands back to back, extended ones split by ';'."""
        result = _Result()
        pos = 0
        try:
            while pos < len(body):
                ch = body[pos].upper()
                if ch in " ;":
                    pos += 1
                    continue
                if ch in "+^$":
                    end = self._extended_end(body, pos)
                    part = self._extended(body[pos:end])
                    pos = end
                elif ch == "D":
                    part = self._dial(body[pos + 1:])
                    pos = len(body)
                else:
                    part, pos = self._basic(body, pos)
                result.lines += part.lines
                result.after += part.after
                if part.final != "OK":
                    result.final = part.final
                    break
        except _CmdError as exc:
            return _Result(lines=result.lines, final=self._error_text(exc.code))
        return result

    @staticmethod
    def _extended_end(body: str, pos: int) -> int:
        quoted = False
        for i in range(pos, len(body)):
            if body[i] == '"':
                quoted = not quoted
            elif body[i] == ";" and not quoted:
                return i
        return len(body)

    def _error_text(self, code: int | None) -> str:
        if code is None or self._settings["CMEE"] == 0:
            return "ERROR"
        if self._settings["CMEE"] == 1:
            return f"+CME ERROR: {code}"
        return f"+CME ERROR: {CME_TEXT.get(code, 'unknown')}"

    def _basic(self, body: str, pos: int) -> tuple[_Result, int]:
        ch = body[pos].upper()
        pos += 1
        if ch == "&":
            if pos >= len(body):
                raise _CmdError(CME_UNKNOWN)
            ch = "&" + body[pos].upper()
            pos += 1
        if ch == "S":
            digits_end = pos
            while digits_end < len(body) and body[digits_end].isdigit():
                digits_end += 1
            register = body[pos:digits_end]
            if not register:
                raise _CmdError(CME_UNKNOWN)
            pos = digits_end
            if body[pos:pos + 1] == "?":
                return _Result([f"{self._sregs.get(int(register), 0):03d}"]), pos + 1
            if body[pos:pos + 1] == "=":
                value_end = pos + 1
                while value_end < len(body) and body[value_end].isdigit():
                    value_end += 1
                value = body[pos + 1:value_end]
                if not value or int(value) > 255:
                    raise _CmdError(CME_INVALID_PARAMS)
                self._sregs[int(register)] = int(value)
                return _Result(), value_end
            raise _CmdError(CME_INVALID_PARAMS)
        digits_end = pos
        while digits_end < len(body) and body[digits_end].isdigit():
            digits_end += 1
        arg = int(body[pos:digits_end]) if digits_end > pos else 0
        pos = digits_end
        if ch == "E" and arg in (0, 1):
            self._echo = bool(arg)
            return _Result(), pos
        if ch == "V" and arg in (0, 1):
            self._verbose = bool(arg)
            return _Result(), pos
        if ch == "Q" and arg == 0:
            return _Result(), pos
        if ch in ("Z", "&F") and arg == 0:
            self._reset_settings()
            return _Result(), pos
        if ch in ("&W", "&D", "&C", "X"):
            return _Result(), pos
        if ch == "I" and arg == 0:
            return _Result(["Manufacturer: SIMCOM INCORPORATED", f"Model: {self.model}",
                            f"Revision: {self.revision}", f"IMEI: {self.imei}", "+GCAP: +CGSM"]), pos
        if ch == "A" and arg == 0:
            return self._answer(), pos
        if ch == "H" and arg == 0:
            return self._local_hangup(), pos
        raise _CmdError(CME_UNKNOWN)

    def _reset_settings(self) -> None:
        self._echo = True
        self._verbose = True
        self._settings = {name: spec[2] for name, spec in _SETTINGS.items()}
        self._sregs: dict[int, int] = {0: 0, 3: 13, 4: 10, 5: 8}

    # ---------------------------------------------------------------- extended commands

    def _extended(self, text: str) -> _Result:
        name_end = 1
        while name_end < len(text) and (text[name_end].isalnum() or text[name_end] == "_"):
            name_end += 1
        name = text[1:name_end].upper()
        suffix = text[name_end:].strip()
        handler = getattr(self, f"_x_{name.lower()}", None) if text[0] == "+" else None
        if handler is not None:
            return handler(suffix)
        if name in _SETTINGS and text[0] == "+":
            return self._setting(name, suffix)
        raise _CmdError(CME_UNKNOWN)

    def _setting(self, name: str, suffix: str) -> _Result:
        low, high, _, query = _SETTINGS[name]
        if suffix == "?":
            return _Result([query.format(self._settings[name])])
        if suffix == "=?":
            return _Result([f"+{name}: ({low}-{high})"])
        if suffix.startswith("="):
            first = suffix[1:].split(",")[0].strip()
            if not first.isdigit() or not low <= int(first) <= high:
                raise _CmdError(CME_INVALID_PARAMS)
            self._settings[name] = int(first)
            return _Result()
        raise _CmdError(CME_INVALID_PARAMS)

    def _info(self, suffix: str, lines: list[str]) -> _Result:
        if suffix == "":
            return _Result(lines)
        if suffix == "=?":
            return _Result()
        raise _CmdError(CME_INVALID_PARAMS)

    def _x_cgmi(self, suffix: str) -> _Result:
        return self._info(suffix, ["SIMCOM INCORPORATED"])

    _x_gmi = _x_cgmi

    def _x_cgmm(self, suffix: str) -> _Result:
        return self._info(suffix, [self.model])

    _x_gmm = _x_cgmm

    def _x_cgmr(self, suffix: str) -> _Result:
        return self._info(suffix, [f"+CGMR: {self.revision}"])

    def _x_gmr(self, suffix: str) -> _Result:
        return self._info(suffix, [self.revision])

    def _x_cgsn(self, suffix: str) -> _Result:
        return self._info(suffix, [self.imei])

    _x_gsn = _x_cgsn

    def _x_cimi(self, suffix: str) -> _Result:
        return self._info(suffix, [self.imsi])

    def _x_ciccid(self, suffix: str) -> _Result:
        return self._info(suffix, [f"+ICCID: {self.iccid}"])

    def _x_gcap(self, suffix: str) -> _Result:
        return self._info(suffix, ["+GCAP: +CGSM"])

    def _x_cpin(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result(["+CPIN: READY"])
        if suffix == "=?":
            return _Result()
        raise _CmdError(CME_NOT_ALLOWED)   # no PIN is pending

    def _x_csq(self, suffix: str) -> _Result:
        if suffix == "=?":
            return _Result(["+CSQ: (0-31,99),(0-7,99)"])
        return self._info(suffix, ["+CSQ: 21,99"])

    def _x_cops(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result([f'+COPS: 0,0,"{self.operator}",7'])
        if suffix == "=?":
            return _Result([f'+COPS: (2,"{self.operator}","HIL","00101",7),,(0-4),(0-2)'])
        if suffix.startswith("="):
            return _Result()
        raise _CmdError(CME_INVALID_PARAMS)

    def _x_clcc(self, suffix: str) -> _Result:
        if suffix == "":
            return _Result([self._call.clcc()] if self._call else [])
        return self._setting("CLCC", suffix)

    def _x_cpcmfrm(self, suffix: str) -> _Result:
        if suffix.startswith("=") and suffix != "=?" and self._pcm:
            raise _CmdError(CME_NOT_ALLOWED)   # the frame rate cannot change under a running stream
        return self._setting("CPCMFRM", suffix)

    def _x_cpcmreg(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result([f"+CPCMREG: {int(self._pcm)}"])
        if suffix == "=?":
            return _Result(["+CPCMREG: (0-1)"])
        args = [a.strip() for a in suffix[1:].split(",")] if suffix.startswith("=") else []
        if not args or args[0] not in ("0", "1") or any(a not in ("0", "1") for a in args[1:2]):
            raise _CmdError(None)
        if args[0] == "0":
            self._pcm_off()
            return _Result()
        call = self._call
        if call is None or call.stat == 4:
            raise _CmdError(None)       # no call in progress (T11 f): plain ERROR
        since = call.active_since if call.active_since is not None else call.created
        if time.monotonic() - since < self.pcm_accept_after:
            raise _CmdError(None)       # the module is not ready yet; the host retries
        self._pcm_on()
        return _Result()

    def _x_vts(self, suffix: str) -> _Result:
        if not suffix.startswith("=") or suffix == "=?":
            if suffix == "=?":
                return _Result(["+VTS: (0-9,*,#,A,B,C,D)"])
            raise _CmdError(CME_INVALID_PARAMS)
        digits = suffix[1:].strip().strip('"').upper()
        if not digits or any(d not in DTMF_DIGITS for d in digits):
            raise _CmdError(CME_INVALID_PARAMS)
        if self._call is None or self._call.stat != 0:
            raise _CmdError(CME_NOT_ALLOWED)
        self.vts_digits.extend(digits)
        return _Result()

    def _x_vtd(self, suffix: str) -> _Result:
        if suffix == "?":
            return _Result(["+VTD: 1"])
        return _Result()

    def _x_chup(self, suffix: str) -> _Result:
        if suffix == "=?":
            return _Result()
        if suffix:
            raise _CmdError(CME_INVALID_PARAMS)
        return self._local_hangup()

    # ---------------------------------------------------------------- call control

    def _set_call(self, call: _Call | None) -> None:
        with self._state_cond:
            self._call = call
            self._state_cond.notify_all()

    def _spawn(self, coro) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)

    def _ring(self, caller: str, number_type: int) -> None:
        if self._gone:
            raise RuntimeError("the modem has vanished")
        if self._call is not None:
            raise RuntimeError(f"a call is already in progress (state {self.state})")
        call = _Call(direction=1, stat=4, number=caller, number_type=number_type,
                     created=time.monotonic())
        self._set_call(call)
        self._spawn(self._ringing(call))

    async def _ringing(self, call: _Call) -> None:
        first = True
        while self._call is call and call.stat == 4:
            if self._settings["CRC"]:
                self._urc("+CRING: VOICE", crcr=True)
            else:
                self._urc("RING")
            if self._settings["CLIP"]:
                self._urc(f'+CLIP: "{call.number}",{call.number_type},"",0,"",0')
            if first and self._settings["CLCC"]:
                self._urc(call.clcc())
            first = False
            await asyncio.sleep(self.ring_interval)

    def _answer(self) -> _Result:
        call = self._call
        if call is None:
            return _Result(final="NO CARRIER")
        if call.stat != 4:
            raise _CmdError(CME_NOT_ALLOWED)
        self._activate(call)
        after = [call.clcc()] if self._settings["CLCC"] else []
        return _Result(["VOICE CALL: BEGIN"], after=after)

    def _activate(self, call: _Call) -> None:
        with self._state_cond:
            call.stat = 0
            call.active_since = time.monotonic()
            self._state_cond.notify_all()

    def _dial(self, rest: str) -> _Result:
        text = rest.strip()
        if not text.endswith(";"):
            raise _CmdError(4)              # data calls are not supported, voice only
        number = text[:-1].strip()
        if not number or any(c not in "0123456789+*#" for c in number):
            raise _CmdError(CME_INVALID_PARAMS)
        if self._call is not None:
            raise _CmdError(CME_NOT_ALLOWED)
        call = _Call(direction=0, stat=2, number=number,
                     number_type=145 if number.startswith("+") else 129, created=time.monotonic())
        self._set_call(call)
        self._spawn(self._alerting(call))
        return _Result(after=[call.clcc()] if self._settings["CLCC"] else [])

    async def _alerting(self, call: _Call) -> None:
        await asyncio.sleep(DIAL_ALERT_DELAY)
        if self._call is call and call.stat == 2:
            call.stat = 3
            if self._settings["CLCC"]:
                self._urc(call.clcc())

    def _remote_answer(self) -> None:
        call = self._call
        if call is None or call.direction != 0 or call.stat not in (2, 3):
            raise RuntimeError(f"no outgoing call is waiting to be answered (state {self.state})")
        self._activate(call)
        self._urc("VOICE CALL: BEGIN")
        if self._settings["CLCC"]:
            self._urc(call.clcc())

    def _end_call(self) -> tuple[_Call, str]:
        """Release the call; returns it and its VOICE CALL: END line."""
        call = self._call
        assert call is not None
        for task in list(self._call_tasks):
            task.cancel()
        self._pcm_off()
        self._play.clear()
        self._play_offset = 0
        self._set_call(None)
        if call.active_since is None:
            return call, "VOICE CALL: END"
        seconds = int(time.monotonic() - call.active_since)
        return call, f"VOICE CALL: END: {seconds:06d}"

    def _local_hangup(self) -> _Result:
        if self._call is None:
            return _Result()
        call, end_line = self._end_call()
        lines = [call.clcc(6)] if self._settings["CLCC"] else []
        return _Result(lines + [end_line])

    def _remote_hangup(self) -> None:
        if self._call is None:
            raise RuntimeError("no call to hang up (state idle)")
        ringing = self._call.stat == 4
        call, end_line = self._end_call()
        if ringing:
            if self._settings["CLCC"]:
                self._urc(call.clcc(6))
            self._urc(end_line)
            stamp = datetime.datetime.now().strftime("%I:%M%p")
            self._urc(f"MISSED_CALL: {stamp} {call.number}")
            return
        for item in self.end_order:
            if item == "clcc" and self._settings["CLCC"]:
                self._urc(call.clcc(6))
            elif item == "voice_call_end":
                self._urc(end_line)
            elif item == "no_carrier":
                self._urc("NO CARRIER")

    def _send_dtmf(self, digits: str, gap: float) -> None:
        call = self._call
        if call is None or call.stat != 0:
            raise RuntimeError(f"DTMF needs an active call (state {self.state})")
        self._spawn(self._dtmf_sequence(call, digits, gap))

    async def _dtmf_sequence(self, call: _Call, digits: str, gap: float) -> None:
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(gap)
            if self._call is not call:
                return
            self._urc(f"+RXDTMF: {digit}", crcr=True)

    def _vanish(self) -> None:
        if self._gone:
            return
        if self._call is not None:
            self._end_call()
        self._detach_fds()
        self._close_fds()
        with self._state_cond:
            self._gone = True
            self._state_cond.notify_all()
        self._log("<", "(unplugged)")

    # ---------------------------------------------------------------- audio

    def _frame_samples(self) -> tuple[int, int]:
        """(sample rate, samples per 20 ms frame) for the current AT+CPCMFRM setting."""
        rate = 16000 if self._settings["CPCMFRM"] == 1 else SAMPLE_RATE
        return rate, int(rate * FRAME_SECONDS)

    def _pcm_on(self) -> None:
        if self._pcm:
            return
        self._pcm = True
        self._audio_out.clear()
        assert self._loop is not None
        self._pcm_task = self._loop.create_task(self._audio_clock())

    def _pcm_off(self) -> None:
        if self._pcm_task is not None:
            self._pcm_task.cancel()
            self._pcm_task = None
        self._pcm = False
        self._audio_out.clear()

    async def _audio_clock(self) -> None:
        start = time.monotonic()
        sent = 0
        while True:
            sent += 1
            delay = start + sent * FRAME_SECONDS - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > AUDIO_MAX_CATCHUP:
                _LOGGER.warning("audio clock stalled %.3f s; restarting its schedule", -delay)
                start, sent = time.monotonic(), 0
            self._send_frame()

    def _next_frame(self) -> np.ndarray:
        """160 samples at 8 kHz from the play queue, padded with silence."""
        out = np.zeros(int(SAMPLE_RATE * FRAME_SECONDS), np.int16)
        if self._call is None or self._call.stat != 0:
            return out
        filled = 0
        while filled < len(out) and self._play:
            head = self._play[0]
            take = min(len(out) - filled, len(head) - self._play_offset)
            out[filled:filled + take] = head[self._play_offset:self._play_offset + take]
            filled += take
            self._play_offset += take
            if self._play_offset >= len(head):
                self._play.popleft()
                self._play_offset = 0
        return out

    def _send_frame(self) -> None:
        rate, count = self._frame_samples()
        frame = self._next_frame()
        if rate != SAMPLE_RATE:
            previous = np.concatenate(([self._last_played], frame[:-1])).astype(np.int32)
            up = np.empty(count, np.int16)
            up[0::2] = ((previous + frame) // 2).astype(np.int16)
            up[1::2] = frame
            self._last_played = int(frame[-1])
            frame = up
        data = frame.astype("<i2").tobytes()
        if len(self._audio_out) >= AUDIO_OUT_BACKLOG_FRAMES * len(data):
            self.frames_dropped += 1        # the host is not reading: the endpoint drops frames
        else:
            self._audio_out += data
            self.frames_sent += 1
        try:
            written = os.write(self._audio_master, self._audio_out)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            _LOGGER.warning("audio port write failed: %s", exc)
            written = len(self._audio_out)
        del self._audio_out[:written]

    def _on_audio_readable(self) -> None:
        try:
            data = os.read(self._audio_master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                _LOGGER.warning("audio port read failed: %s", exc)
            return
        if not data or not self._pcm:
            return          # outside a PCM session the module discards what the host writes
        rate, _ = self._frame_samples()
        if not self._capture or self._capture[-1][0] != rate:
            self._capture.append((rate, bytearray()))
        self._capture[-1][1].extend(data)
