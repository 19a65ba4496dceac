"""The 3GPP TS 27.007 modem every family shares: V.250 basic commands, identification, SIM,
registration, signal, the voice call state machine (incoming ring cadence, ATA, ATD with a scripted
outcome, hang-ups) and the scripting API. Families (simcom.py, quectel.py, huawei.py) override the
hooks that make their dialect: ATI text, call URCs, DTMF format, audio switching, extra commands."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np

from gateway.media.wavfile import read_wav, write_wav
from hil.gsm.audio import AudioSide
from hil.gsm.base import (CME_INVALID_PARAMS, CME_NOT_ALLOWED, CME_NOT_SUPPORTED, CME_UNKNOWN, AtChannel,
                          CmdError, EmulatorBase, Prompt, Result, Unsupported)
from hil.gsm.faults import FaultsMixin
from hil.gsm.mixer import AudioEngine, dtmf_tone, pcm_samples
from hil.gsm.sms import SmsMixin
from hil.v250 import command_parts

DTMF_DIGITS = "0123456789*#ABCD"
OUTCOMES = ("answer", "busy", "no_answer", "reject", "no_carrier")
# 24.008 release causes the network gives for each way a call can end.
CAUSES = {"hangup": 16, "missed": 16, "local": 16, "busy": 17, "no_answer": 19, "reject": 21,
          "no_carrier": 31, "network": 31}
CAUSE_TEXT = {16: "Normal call clearing", 17: "User busy", 19: "No answer from user (user alerted)",
              21: "Call rejected", 31: "Normal, unspecified"}
# Final lines 27.007/V.250 modems print when an outgoing call fails.
OUTCOME_FINAL = {"busy": "BUSY", "no_answer": "NO ANSWER", "reject": "NO CARRIER", "no_carrier": "NO CARRIER"}
# Delay between the dialing and alerting indications of an outgoing call, and to the outcome.
DIAL_ALERT_DELAY = 0.3
DIAL_OUTCOME_DELAY = 1.0
# How long after its OK a reset command takes the ports away.
RESET_OK_DELAY = 0.05
DIAL_CHARS = "0123456789+*#ABCD"
DIAL_IGNORED = " -().TtPpWw,!@IiGg"

STATE_NAMES = {0: "active", 2: "dialing", 3: "dialing", 4: "ringing"}


@dataclasses.dataclass
class Setting:
    """An integer-valued extended command: value ranges per parameter, power-up values, query text."""

    ranges: tuple[tuple[int, int], ...]
    default: tuple[int, ...]
    query: str          # format with the values, e.g. "+CLIP: {0},1"


@dataclasses.dataclass
class Call:
    index: int
    direction: int          # 0 mobile-originated, 1 mobile-terminated
    stat: int               # +CLCC <stat>: 0 active, 2 dialing, 3 alerting, 4 incoming, 6 released
    number: str
    number_type: int
    created: float
    active_since: float | None = None
    audio: bool = False     # the family's per-call audio latch (Huawei ^DDSETEX, Quectel QPCMV at connect)

    def clcc(self, stat: int | None = None) -> str:
        stat = self.stat if stat is None else stat
        return f'+CLCC: {self.index},{self.direction},{stat},0,0,"{self.number}",{self.number_type}'

    def duration(self) -> int:
        return 0 if self.active_since is None else int(time.monotonic() - self.active_since)


@dataclasses.dataclass
class OutboundPlan:
    outcome: str | None     # None: stay alerting until the script answers or hangs up
    alert_after: float = DIAL_ALERT_DELAY
    outcome_after: float = DIAL_OUTCOME_DELAY
    talk_seconds: float | None = None    # after "answer": the far end hangs up after this long


class GsmEmulator(FaultsMixin, SmsMixin, EmulatorBase):
    """A 27.007 voice modem on pseudo-terminals; subclass per family."""

    MANUFACTURER = ""
    MODEL = ""
    REVISION = ""
    DEFAULT_IMEI = "000000000000000"
    GCAP = "+GCAP: +CGSM"
    ACT = 7                      # access technology in +COPS / +CREG (7 E-UTRAN, 2 UTRAN, 0 GSM)
    REG_COMMANDS = ("CREG", "CGREG", "CEREG")
    CREG_ACT = True              # +CREG: n,stat,"lac","ci",act (False: no <AcT>)
    COPS_ACT = True
    BOOT_URCS: tuple[str, ...] = ()
    RING_INTERVAL = 3.0
    CLCC_URCS = True             # AT+CLCC=1 gives +CLCC URCs on every call state change
    MISSING_SIM_URCS: tuple[str, ...] = ()
    SETTINGS: dict[str, Setting] = {}
    # 27.007 settings every family has; families add or replace entries in SETTINGS.
    CORE_SETTINGS = {
        "CLIP": Setting(((0, 1),), (0,), "+CLIP: {0},1"),
        "COLP": Setting(((0, 1),), (0,), "+COLP: {0},1"),
        "CRC": Setting(((0, 1),), (0,), "+CRC: {0}"),
        "CVHU": Setting(((0, 1),), (0,), "+CVHU: {0}"),
        "CCWA": Setting(((0, 1), (0, 2), (1, 255)), (0, 0, 1), "+CCWA: {0}"),
        "CSSN": Setting(((0, 1), (0, 1)), (0, 0), "+CSSN: {0},{1}"),
        "CLVL": Setting(((0, 5),), (3,), "+CLVL: {0}"),
        "CMUT": Setting(((0, 1),), (0,), "+CMUT: {0}"),
    }

    def __init__(self, *, imei: str | None = None, model: str | None = None, revision: str | None = None,
                 imsi: str = "001010123456789", iccid: str = "89010100000000000019",
                 operator: str = "HIL Network", mcc_mnc: str = "00101", own_number: str = "",
                 ring_interval: float | None = None, boot_urcs: bool = True,
                 audio_side: AudioSide | None = None, usb_serial: str | None = None,
                 usb_path: str = "1-1.2", by_id_dir: str | None = None, reset_seconds: float = 1.0,
                 boot_delay: float = 0.3,
                 incoming_index: int = 1, inband_dtmf: bool = True, smsc: str = "+15550000000") -> None:
        self.imei = imei or self.DEFAULT_IMEI
        self.model = model or self.MODEL
        self.revision = revision or self.REVISION
        self.imsi, self.iccid, self.operator, self.mcc_mnc = imsi, iccid, operator, mcc_mnc
        self.own_number = own_number
        self.ring_interval = self.RING_INTERVAL if ring_interval is None else ring_interval
        self.boot_urcs = boot_urcs
        self.reset_seconds = reset_seconds
        self.boot_delay = boot_delay
        self.incoming_index = incoming_index
        self.inband_dtmf = inband_dtmf
        self.dtmf_sent: list[str] = []       # digits the host sent (AT+VTS, AT+QVTS, AT^DTMF)
        self.last_cause = 0
        self._ch: AtChannel | None = None
        self._call: Call | None = None
        self._call_tasks: set[asyncio.Task] = set()
        self._bg_tasks: set[asyncio.Task] = set()
        self._plan = OutboundPlan(None)
        self._sim = "ready"
        self._sim_pin = ""
        self._reg_stat = 1
        self._coverage = True
        self._home_stat = 1           # 1 home, 5 roaming
        self._no_coverage_stat = 2    # what +CREG says without coverage
        self._rssi = 21
        self._cfun = 1
        self._settings_spec = {**self.CORE_SETTINGS, **self.SETTINGS}
        self._settings: dict[str, list[int]] = {}
        self._reg_modes = {name: 0 for name in self.REG_COMMANDS}
        self._power_up_settings()
        super().__init__(audio_side=audio_side, usb_serial=usb_serial or f"{self.imei[-10:]}",
                         usb_path=usb_path, by_id_dir=by_id_dir)
        self._audio = AudioEngine([self._pty_audio, audio_side], audio_side, self._audio_route)
        self._sms_init(smsc)

    # ---------------------------------------------------------------- lifecycle hooks

    def _on_loop_start(self) -> None:
        if self.external_audio is not None and self._plugged:
            self.external_audio.open()
        self._audio.loop = self._loop
        self._audio.run(False)
        self._boot(initial=True)

    def _on_shutdown(self) -> None:
        for task in list(self._call_tasks) + list(self._bg_tasks):
            task.cancel()
        self._audio.stop()
        if self.external_audio is not None and self._plugged:
            self.external_audio.close()

    def _power_up_settings(self) -> None:
        """Volatile settings after power-up (also after ATZ for the settings V.250 covers)."""
        self._settings = {name: list(spec.default) for name, spec in self._settings_spec.items()}
        self._reg_modes = {name: 0 for name in self.REG_COMMANDS}

    def _boot(self, initial: bool) -> None:
        """Power-up: boot URCs, background chatter. Runs on the loop after start and each replug;
        after a replug the URCs wait boot_delay, so a host that saw the tty appear can open it."""
        if initial:
            if self.boot_urcs:
                self._boot_lines()
        else:
            assert self._loop is not None
            self._loop.call_later(self.boot_delay, self._boot_lines)
        self._start_background()

    def _boot_lines(self) -> None:
        for line in self._boot_urcs():
            self._urc(line)

    def _boot_urcs(self) -> list[str]:
        lines = list(self.BOOT_URCS)
        if self._sim != "ready":
            lines = [line for line in lines if "CPIN" not in line and "DONE" not in line]
        return lines

    def _start_background(self) -> None:
        """Families start periodic URCs here (Huawei ^RSSI)."""

    def _spawn_bg(self, coro) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._bg_tasks.add(task)
        task.add_done_callback(self._bg_tasks.discard)

    # ---------------------------------------------------------------- scripting API

    @property
    def family(self) -> str:
        return self.FAMILY

    @property
    def state(self) -> str:
        if not self._plugged:
            return "gone"
        call = self._call
        return "idle" if call is None else STATE_NAMES.get(call.stat, "idle")

    @property
    def pcm_enabled(self) -> bool:
        """Whether call audio flows on the audio side right now."""
        return self._plugged and self._audio_route() is not None

    @property
    def vts_digits(self) -> list[str]:
        return self.dtmf_sent

    @property
    def frames_sent(self) -> int:
        return self._pty_audio.frames_sent if self._pty_audio is not None else 0

    @property
    def frames_dropped(self) -> int:
        return self._pty_audio.frames_dropped if self._pty_audio is not None else 0

    def call_info(self) -> dict | None:
        call = self._call
        if call is None:
            return None
        return {"index": call.index, "direction": "out" if call.direction == 0 else "in", "stat": call.stat,
                "number": call.number, "number_type": call.number_type, "state": STATE_NAMES.get(call.stat),
                "seconds": call.duration()}

    def ports(self) -> dict:
        """The port names a host needs, keyed like the JSON `python -m hil modem` prints."""
        info: dict = {"family": self.FAMILY, "at_port": self.at_port}
        if self._pty_audio is not None:
            info.update(self._pty_audio.describe() if self._plugged else {self._pty_audio.key: None})
        if self.external_audio is not None:
            info.update(self.external_audio.describe())
        info["by_id_dir"] = self.by_id_dir
        return info

    def ring(self, caller: str = "+15551230001", number_type: int | None = None) -> None:
        if number_type is None:
            number_type = 145 if caller.startswith("+") else 129
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
        self._call_in_loop(self._audio.play, pcm_samples(samples))

    def play_tone(self, freq: float, seconds: float, amplitude: float = 0.3) -> None:
        if not 0 < freq < 4000 or seconds <= 0 or not 0 < amplitude <= 1:
            raise ValueError("play_tone wants 0 < freq < 4000 Hz, seconds > 0, 0 < amplitude <= 1")
        t = np.arange(int(seconds * 8000)) / 8000
        self.play_pcm(np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16))

    def hangup(self) -> None:
        """The far end hangs up (a ringing caller gives up: a missed call)."""
        self._call_in_loop(self._remote_hangup)

    def remote_answer(self) -> None:
        """The far end answers the host's outgoing call."""
        self._call_in_loop(self._remote_answer)

    def set_outbound_outcome(self, outcome: str | None, *, alert_after: float = DIAL_ALERT_DELAY,
                             after: float = DIAL_OUTCOME_DELAY, talk_seconds: float | None = None) -> None:
        """What happens to the next calls the host places with ATD: answer | busy | no_answer |
        reject | no_carrier after `after` seconds (None: stay alerting until remote_answer/hangup)."""
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r}: use one of {', '.join(OUTCOMES)} or None")
        if alert_after < 0 or after < 0 or (talk_seconds is not None and talk_seconds < 0):
            raise ValueError("outcome delays must be >= 0 seconds")
        plan = OutboundPlan(outcome, alert_after, after, talk_seconds)
        self._call_in_loop(setattr, self, "_plan", plan)

    def capture(self) -> np.ndarray:
        return self._call_in_loop(self._audio.capture, after_stop=True)

    def save_capture(self, path: str) -> None:
        write_wav(path, self.capture())

    def clear_capture(self) -> None:
        self._call_in_loop(self._audio.segments.clear, after_stop=True)

    # ---------------------------------------------------------------- command line parsing

    def _execute(self, channel: AtChannel, body: str) -> Result | Prompt:
        """Run a V.250 command line: basic commands back to back, extended ones split by ';'."""
        self._ch = channel
        result = Result()
        try:
            for part in command_parts(body, "+^$*%", self._extended, self._dial, self._basic, self._extended_end):
                if isinstance(part, Prompt):
                    return part
                result.lines += part.lines
                result.after += part.after
                result.crcr_lines = result.crcr_lines or part.crcr_lines
                if part.final != "OK":
                    result.final = part.final
                    break
        except CmdError as exc:
            return Result(lines=result.lines, final=self._error_text(channel, exc))
        except Unsupported:
            return Result(lines=result.lines, final=self._unsupported_final(channel))
        return result

    def _unsupported_final(self, channel: AtChannel) -> str:
        return self._error_text(channel, CmdError(CME_UNKNOWN))

    @staticmethod
    def _extended_end(body: str, pos: int) -> int:
        quoted = False
        for i in range(pos, len(body)):
            if body[i] == '"':
                quoted = not quoted
            elif body[i] == ";" and not quoted:
                return i
        return len(body)

    def _extended(self, text: str) -> Result | Prompt:
        name_end = 1
        while name_end < len(text) and (text[name_end].isalnum() or text[name_end] == "_"):
            name_end += 1
        name = text[1:name_end].upper()
        suffix = _unspace(text[name_end:])
        prefix = {"+": "_x_", "^": "_c_", "$": "_d_", "*": "_s_", "%": "_p_"}[text[0]]
        handler = getattr(self, f"{prefix}{name.lower()}", None)
        if handler is not None:
            return handler(suffix)
        if text[0] == "+" and name in self._settings_spec and self._settings_spec[name].query:
            return self._setting(name, suffix)
        raise Unsupported(name)

    def _basic(self, body: str, pos: int) -> tuple[Result, int]:
        ch = body[pos].upper()
        pos += 1
        if ch == "&":
            if pos >= len(body):
                raise CmdError(CME_UNKNOWN)
            ch = "&" + body[pos].upper()
            pos += 1
        channel = self._ch
        assert channel is not None
        if ch == "S":
            return self._s_register(channel, body, pos)
        digits_end = pos
        while digits_end < len(body) and body[digits_end].isdigit():
            digits_end += 1
        arg = int(body[pos:digits_end]) if digits_end > pos else 0
        pos = digits_end
        if ch == "E" and arg in (0, 1):
            channel.echo = bool(arg)
        elif ch == "V" and arg in (0, 1):
            channel.verbose = bool(arg)
        elif ch == "Q" and arg in (0, 1):
            channel.quiet = bool(arg)
        elif ch in ("Z", "&F") and arg == 0:
            channel.reset_settings()
            if ch == "Z":
                self._power_up_settings()
        elif ch in ("&W", "&D", "&C", "&K", "X", "L", "M", "T", "P") and arg <= 4:
            pass
        elif ch == "&V":
            return Result([f"E{int(channel.echo)} Q{int(channel.quiet)} V{int(channel.verbose)} "
                           f"S0:{channel.sregs[0]:03d} S3:{channel.sregs[3]:03d} S4:{channel.sregs[4]:03d} "
                           f"S5:{channel.sregs[5]:03d} +CMEE:{channel.cmee}"]), pos
        elif ch == "I":
            return Result(self._ati(arg)), pos
        elif ch == "A" and arg == 0:
            return self._answer(), pos
        elif ch == "H" and arg == 0:
            return self._local_hangup(), pos
        elif ch == "O" and arg == 0:
            return Result(final="NO CARRIER"), pos      # no data call to return to
        else:
            raise CmdError(CME_UNKNOWN)
        return Result(), pos

    def _s_register(self, channel: AtChannel, body: str, pos: int) -> tuple[Result, int]:
        digits_end = pos
        while digits_end < len(body) and body[digits_end].isdigit():
            digits_end += 1
        register = body[pos:digits_end]
        if not register:
            raise CmdError(CME_UNKNOWN)
        pos = digits_end
        reg = int(register)
        if body[pos:pos + 1] == "?":
            return Result([f"{channel.sregs.get(reg, 0):03d}"]), pos + 1
        if body[pos:pos + 1] == "=":
            value_end = pos + 1
            while value_end < len(body) and body[value_end].isdigit():
                value_end += 1
            value = body[pos + 1:value_end]
            if not value or int(value) > 255 or (reg in (3, 4, 5) and int(value) > 127):
                raise CmdError(CME_INVALID_PARAMS)
            channel.sregs[reg] = int(value)
            return Result(), value_end
        raise CmdError(CME_INVALID_PARAMS)

    # ---------------------------------------------------------------- helpers for handlers

    def _setting(self, name: str, suffix: str) -> Result:
        spec = self._settings_spec[name]
        if suffix == "?":
            return Result([spec.query.format(*self._settings[name])])
        if suffix == "=?":
            ranges = ",".join(f"({low}-{high})" for low, high in spec.ranges)
            return Result([f"+{name}: {ranges}"])
        if suffix.startswith("="):
            values = self._int_args(suffix, len(spec.ranges))
            for i, value in enumerate(values):
                low, high = spec.ranges[i]
                if value is None:
                    continue
                if not low <= value <= high:
                    raise CmdError(CME_INVALID_PARAMS)
                self._settings[name][i] = value
            return Result()
        raise CmdError(CME_INVALID_PARAMS)

    @staticmethod
    def _args(suffix: str) -> list[str]:
        """Parameters after '=': comma-separated, quotes removed (commas inside quotes kept)."""
        if not suffix.startswith("="):
            raise CmdError(CME_INVALID_PARAMS)
        out, current, quoted = [], [], False
        for ch in suffix[1:]:
            if ch == '"':
                quoted = not quoted
            elif ch == "," and not quoted:
                out.append("".join(current))
                current = []
            else:
                current.append(ch)
        if quoted:
            raise CmdError(CME_INVALID_PARAMS)
        out.append("".join(current))
        return out

    def _int_args(self, suffix: str, most: int) -> list[int | None]:
        args = self._args(suffix)
        if len(args) > most or not args[0]:
            raise CmdError(CME_INVALID_PARAMS)
        values: list[int | None] = []
        for arg in args:
            if arg == "":
                values.append(None)
            elif arg.lstrip("-").isdigit():
                values.append(int(arg))
            else:
                raise CmdError(CME_INVALID_PARAMS)
        return values

    @staticmethod
    def _info(suffix: str, lines: list[str]) -> Result:
        if suffix == "":
            return Result(lines)
        if suffix == "=?":
            return Result()
        raise CmdError(CME_INVALID_PARAMS)

    def _need_sim(self) -> None:
        if self._sim == "missing":
            raise CmdError(10)
        if self._sim == "pin":
            raise CmdError(11)

    @property
    def _registered(self) -> bool:
        return self._reg_stat in (1, 5) and self._cfun == 1 and self._sim == "ready"

    # ---------------------------------------------------------------- identification

    def _ati(self, arg: int) -> list[str]:
        return [self.MANUFACTURER, self.model, f"Revision: {self.revision}"]

    def _x_cgmi(self, suffix: str) -> Result:
        return self._info(suffix, [self.MANUFACTURER])

    def _x_gmi(self, suffix: str) -> Result:
        return self._x_cgmi(suffix)

    def _x_cgmm(self, suffix: str) -> Result:
        return self._info(suffix, [self.model])

    def _x_gmm(self, suffix: str) -> Result:
        return self._x_cgmm(suffix)

    def _x_cgmr(self, suffix: str) -> Result:
        return self._info(suffix, [self.revision])

    def _x_gmr(self, suffix: str) -> Result:
        return self._x_cgmr(suffix)

    def _x_cgsn(self, suffix: str) -> Result:
        return self._info(suffix, [self.imei])

    def _x_gsn(self, suffix: str) -> Result:
        return self._x_cgsn(suffix)

    def _x_cimi(self, suffix: str) -> Result:
        self._need_sim()
        return self._info(suffix, [self.imsi])

    def _x_gcap(self, suffix: str) -> Result:
        return self._info(suffix, [self.GCAP])

    def _x_cnum(self, suffix: str) -> Result:
        self._need_sim()
        if suffix not in ("", "=?"):
            raise CmdError(CME_INVALID_PARAMS)
        if suffix == "" and self.own_number:
            kind = 145 if self.own_number.startswith("+") else 129
            return Result([f'+CNUM: "","{self.own_number}",{kind}'])
        return Result()

    def _x_clac(self, suffix: str) -> Result:
        if suffix:
            raise CmdError(CME_INVALID_PARAMS)
        return Result(self._command_names())

    def _command_names(self) -> list[str]:
        names = set()
        prefixes = {"_x_": "+", "_c_": "^", "_d_": "$"}
        for attr in dir(self):
            for prefix, mark in prefixes.items():
                if attr.startswith(prefix) and getattr(self, attr, None) is not None:
                    names.add(mark + attr[len(prefix):].upper())
        names |= {f"+{name}" for name, spec in self._settings_spec.items() if spec.query}
        return ["A", "D", "E", "H", "I", "O", "Q", "S", "V", "Z", "&F", "&V", "&W"] + sorted(names)

    # ---------------------------------------------------------------- V.250/27.007 general

    def _x_cmee(self, suffix: str) -> Result:
        channel = self._ch
        assert channel is not None
        if suffix == "?":
            return Result([f"+CMEE: {channel.cmee}"])
        if suffix == "=?":
            return Result(["+CMEE: (0-2)"])
        values = self._int_args(suffix, 1)
        if values[0] not in (0, 1, 2):
            raise CmdError(CME_INVALID_PARAMS)
        channel.cmee = int(values[0] or 0)
        return Result()

    def _x_cpin(self, suffix: str) -> Result:
        if suffix == "?":
            if self._sim == "missing":
                raise CmdError(10)
            return Result(["+CPIN: SIM PIN" if self._sim == "pin" else "+CPIN: READY"])
        if suffix == "=?":
            return Result()
        args = self._args(suffix)
        if self._sim == "missing":
            raise CmdError(10)
        if self._sim != "pin":
            raise CmdError(CME_NOT_ALLOWED)     # no PIN is pending
        if args[0] != self._sim_pin:
            raise CmdError(16)
        self._sim = "ready"
        self._loop.call_later(0.05, self._sim_became_ready)
        return Result()

    def _sim_became_ready(self) -> None:
        self._urc("+CPIN: READY")
        self._update_registration()

    def _x_cfun(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f"+CFUN: {self._cfun}"])
        if suffix == "=?":
            return Result(["+CFUN: (0,1,4),(0-1)"])
        values = self._int_args(suffix, 2)
        fun, rst = values[0], (values[1] if len(values) > 1 else 0)
        if fun not in (0, 1, 4) or rst not in (0, 1, None):
            raise CmdError(CME_INVALID_PARAMS)
        if rst == 1:
            if fun != 1:
                raise CmdError(CME_INVALID_PARAMS)
            self._schedule_reset()
            return Result()
        self._set_cfun(int(fun))
        return Result()

    def _set_cfun(self, fun: int) -> None:
        if fun == self._cfun:
            return
        self._cfun = fun
        self._update_registration()

    def _x_csq(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result(["+CSQ: (0-31,99),(0-7,99)"])
        rssi = self._rssi if self._cfun == 1 else 99
        return self._info(suffix, [f"+CSQ: {rssi},99"])

    # ---------------------------------------------------------------- registration

    def _reg_urc_line(self, name: str) -> str | None:
        mode = self._reg_modes.get(name, 0)
        if mode == 0:
            return None
        if mode == 1 or self._reg_stat not in (1, 5):
            return f"+{name}: {self._reg_stat}"
        return f"+{name}: {self._reg_stat},{self._location(name)}"

    def _location(self, name: str) -> str:
        area = "00A1" if name == "CEREG" else "2A2B"
        text = f'"{area}","0C8D1F3"'
        if self.CREG_ACT or name == "CEREG":
            text += f",{self.ACT}"
        return text

    def _registration(self, name: str, suffix: str) -> Result:
        if suffix == "?":
            mode = self._reg_modes[name]
            text = f"+{name}: {mode},{self._reg_stat}"
            if mode == 2 and self._reg_stat in (1, 5):
                text += "," + self._location(name)
            return Result([text])
        if suffix == "=?":
            return Result([f"+{name}: (0-2)"])
        values = self._int_args(suffix, 1)
        if values[0] not in (0, 1, 2):
            raise CmdError(CME_INVALID_PARAMS)
        self._reg_modes[name] = int(values[0] or 0)
        return Result()

    def _x_creg(self, suffix: str) -> Result:
        if "CREG" not in self.REG_COMMANDS:
            raise Unsupported("CREG")
        return self._registration("CREG", suffix)

    def _x_cgreg(self, suffix: str) -> Result:
        if "CGREG" not in self.REG_COMMANDS:
            raise Unsupported("CGREG")
        return self._registration("CGREG", suffix)

    def _x_cereg(self, suffix: str) -> Result:
        if "CEREG" not in self.REG_COMMANDS:
            raise Unsupported("CEREG")
        return self._registration("CEREG", suffix)

    def _desired_registration(self) -> int:
        if self._sim != "ready" or self._cfun != 1:
            return 0
        return self._home_stat if self._coverage else self._no_coverage_stat

    def _update_registration(self) -> None:
        self._set_registration(self._desired_registration())

    def _set_registration(self, stat: int) -> None:
        if stat == self._reg_stat:
            return
        self._reg_stat = stat
        for name in self.REG_COMMANDS:
            line = self._reg_urc_line(name)
            if line is not None:
                self._urc(line)
        self._registration_changed()
        if stat not in (1, 5) and self._call is not None:
            self._network_release("no_carrier")

    def _registration_changed(self) -> None:
        """Families: technology URCs (+CNSMOD), IMS state."""

    def _x_cops(self, suffix: str) -> Result:
        if suffix == "?":
            if not self._registered:
                return Result(["+COPS: 0"])
            act = f",{self.ACT}" if self.COPS_ACT else ""
            return Result([f'+COPS: 0,0,"{self.operator}"{act}'])
        if suffix == "=?":
            act = f",{self.ACT}" if self.COPS_ACT else ""
            return Result([f'+COPS: (2,"{self.operator}","HIL","{self.mcc_mnc}"{act}),,(0-4),(0-2)'])
        args = self._args(suffix)
        if args[0] not in ("0", "1", "2", "3", "4"):
            raise CmdError(CME_INVALID_PARAMS)
        return Result()

    # ---------------------------------------------------------------- call control commands

    def _x_clcc(self, suffix: str) -> Result:
        if suffix == "":
            return Result(self._clcc_list())
        if not self.CLCC_URCS:
            if suffix == "=?":
                return Result()
            raise CmdError(CME_NOT_SUPPORTED)
        if suffix == "?":
            return Result([f"+CLCC: {self._clcc_urc_mode}"])
        if suffix == "=?":
            return Result(["+CLCC: (0-1)"])
        values = self._int_args(suffix, 1)
        if values[0] not in (0, 1):
            raise CmdError(CME_INVALID_PARAMS)
        self._clcc_urc_mode = int(values[0] or 0)
        return Result()

    _clcc_urc_mode = 0

    def _clcc_list(self) -> list[str]:
        return [self._call.clcc()] if self._call is not None else []

    def _x_chup(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result()
        if suffix:
            raise CmdError(CME_INVALID_PARAMS)
        return self._local_hangup()

    def _x_chld(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result(["+CHLD: (0,1,1x,2,2x,3,4)"])
        args = self._args(suffix)
        if args[0] in ("1", f"1{self._call.index if self._call else ''}") and self._call is not None:
            return self._local_hangup()
        if args[0] == "0":
            return Result()
        raise CmdError(CME_NOT_ALLOWED)

    def _x_ceer(self, suffix: str) -> Result:
        text = CAUSE_TEXT.get(self.last_cause, "No cause information available")
        return self._info(suffix, [f"+CEER: {text}"])

    def _x_vts(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result(["+VTS: (0-9,*,#,A,B,C,D)"])
        return self._host_dtmf(self._args(suffix)[0].strip().upper())

    def _host_dtmf(self, digits: str, allowed: str = DTMF_DIGITS) -> Result:
        if not digits or any(d not in allowed for d in digits):
            raise CmdError(CME_INVALID_PARAMS)
        if self._call is None or self._call.stat != 0:
            raise CmdError(CME_NOT_ALLOWED)
        self.dtmf_sent.extend(digits)
        return Result()

    def _x_vtd(self, suffix: str) -> Result:
        if suffix == "?":
            return Result(["+VTD: 1"])
        if suffix == "=?":
            return Result(["+VTD: (0-255)"])
        self._int_args(suffix, 1)
        return Result()

    # ---------------------------------------------------------------- call state machine

    def _set_call(self, call: Call | None) -> None:
        with self._state_cond:
            self._call = call
            self._state_cond.notify_all()
        self._audio.run(call is not None)

    def _set_stat(self, call: Call, stat: int) -> None:
        with self._state_cond:
            call.stat = stat
            if stat == 0 and call.active_since is None:
                call.active_since = time.monotonic()
            self._state_cond.notify_all()

    def _spawn(self, coro) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)

    def _clcc_urcs(self, call: Call, stat: int | None = None) -> list[str]:
        return [call.clcc(stat)] if self.CLCC_URCS and self._clcc_urc_mode else []

    def _ring(self, caller: str, number_type: int) -> None:
        if not self._plugged:
            raise RuntimeError("the modem is unplugged")
        if self._call is not None:
            raise RuntimeError(f"a call is already in progress (state {self.state})")
        if not self._registered:
            raise RuntimeError("the modem is not registered on the network; a call cannot reach it")
        call = Call(self._incoming_index(), 1, 4, caller, number_type, time.monotonic())
        self._set_call(call)
        self._spawn(self._ringing(call))

    def _incoming_index(self) -> int:
        return self.incoming_index

    async def _ringing(self, call: Call) -> None:
        first = True
        while self._call is call and call.stat == 4:
            for line, crcr in self._ring_urcs(call, first):
                self._urc(line, crcr)
            first = False
            await asyncio.sleep(self.ring_interval)

    def _ring_urcs(self, call: Call, first: bool) -> list[tuple[str, bool]]:
        """One ring: RING (or +CRING) and +CLIP; the first ring also carries the call-state URCs."""
        lines = [("+CRING: VOICE", False) if self._settings["CRC"][0] else ("RING", False)]
        if self._settings["CLIP"][0]:
            lines.append((self._clip_line(call), False))
        if first:
            lines += [(line, False) for line in self._clcc_urcs(call)]
        return lines

    def _clip_line(self, call: Call) -> str:
        return f'+CLIP: "{call.number}",{call.number_type},"",0,"",0'

    def _answer(self) -> Result:
        call = self._call
        if call is None:
            return Result(final="NO CARRIER")
        if call.stat != 4:
            raise CmdError(CME_NOT_ALLOWED)
        self._cancel_call_tasks()
        self._set_stat(call, 0)
        self._on_connected(call)
        return self._answer_result(call)

    def _answer_result(self, call: Call) -> Result:
        return Result(after=self._clcc_urcs(call))

    def _on_connected(self, call: Call) -> None:
        """Families latch per-call audio state here."""

    def _dial(self, rest: str) -> Result:
        text = rest.strip()
        voice = text.endswith(";")
        raw = text[:-1] if voice else text
        if raw.startswith(">"):
            raise CmdError(CME_NOT_SUPPORTED)   # phonebook dialling
        number = "".join(c for c in raw if c not in DIAL_IGNORED)
        if not number or any(c not in DIAL_CHARS for c in number.upper()):
            raise CmdError(CME_INVALID_PARAMS)
        if not voice:
            return self._data_dial(number)
        self._need_sim()
        if self._call is not None:
            raise CmdError(CME_NOT_ALLOWED)
        if not self._registered:
            return Result(final="NO CARRIER")
        failed = self._dial_refused(number)
        if failed is not None:
            return failed
        call = Call(self._outgoing_index(), 0, 2, number, 145 if number.startswith("+") else 129,
                    time.monotonic())
        self._set_call(call)
        self._spawn(self._outbound(call, self._plan))
        return self._dial_result(call)

    def _data_dial(self, number: str) -> Result:
        raise CmdError(CME_NOT_SUPPORTED)        # data calls are not supported, voice only

    def _dial_refused(self, number: str) -> Result | None:
        """Families whose firmware cannot place voice calls answer here."""
        return None

    def _outgoing_index(self) -> int:
        return 1

    def _dial_result(self, call: Call) -> Result:
        return Result(after=self._clcc_urcs(call))

    async def _outbound(self, call: Call, plan: OutboundPlan) -> None:
        if plan.outcome in (None, "answer", "no_answer", "reject"):
            await asyncio.sleep(plan.alert_after)
            if self._call is not call:
                return
            self._set_stat(call, 3)
            for line in self._alerting_urcs(call):
                self._urc(line)
        if plan.outcome is None:
            return
        await asyncio.sleep(plan.outcome_after)
        if self._call is not call:
            return
        if plan.outcome != "answer":
            self._network_release(plan.outcome)
            return
        self._connect(call)
        if plan.talk_seconds is not None:
            await asyncio.sleep(plan.talk_seconds)
            if self._call is call:
                self._network_release("hangup")

    def _alerting_urcs(self, call: Call) -> list[str]:
        return self._clcc_urcs(call)

    def _connect(self, call: Call) -> None:
        self._set_stat(call, 0)
        self._on_connected(call)
        for line in self._connected_urcs(call):
            self._urc(line)

    def _connected_urcs(self, call: Call) -> list[str]:
        lines = self._clcc_urcs(call)
        if self._settings["COLP"][0]:
            lines.append(f'+COLP: "{call.number}",{call.number_type}')
        return lines

    def _remote_answer(self) -> None:
        call = self._call
        if call is None or call.direction != 0 or call.stat not in (2, 3):
            raise RuntimeError(f"no outgoing call is waiting to be answered (state {self.state})")
        self._cancel_call_tasks()
        self._connect(call)

    def _cancel_call_tasks(self) -> None:
        current = asyncio.current_task() if self._loop is not None and self._loop.is_running() else None
        for task in list(self._call_tasks):
            if task is not current:
                task.cancel()

    def _end_call(self, reason: str) -> Call:
        """Release the call in the emulator's state; the caller emits the family's lines."""
        call = self._call
        assert call is not None
        self._cancel_call_tasks()
        self._audio.clear_play()
        self.last_cause = CAUSES.get(reason, 16)
        self._call_ending(call)
        self._set_call(None)
        return call

    def _call_ending(self, call: Call) -> None:
        """Families switch their audio state off here."""

    def _remote_hangup(self) -> None:
        if self._call is None:
            raise RuntimeError("no call to hang up (state idle)")
        self._network_release("missed" if self._call.stat == 4 else "hangup")

    def _network_release(self, reason: str) -> None:
        """The far end or the network ends the call: reason hangup | missed | busy | no_answer |
        reject | no_carrier."""
        call = self._call
        if call is None:
            return
        was_stat = call.stat
        call = self._end_call(reason)
        for line, crcr in self._release_urcs(call, reason, was_stat):
            self._urc(line, crcr)

    def _release_urcs(self, call: Call, reason: str, was_stat: int) -> list[tuple[str, bool]]:
        lines = [(line, False) for line in self._clcc_urcs(call, 6)]
        final = OUTCOME_FINAL.get(reason, "NO CARRIER")
        return lines + [(final, False)]

    def _local_hangup(self) -> Result:
        if self._call is None:
            return Result()
        call = self._end_call("local")
        return self._local_hangup_result(call)

    def _local_hangup_result(self, call: Call) -> Result:
        return Result(after=self._clcc_urcs(call, 6))

    # ---------------------------------------------------------------- DTMF from the far end

    def _send_dtmf(self, digits: str, gap: float) -> None:
        call = self._call
        if call is None or call.stat != 0:
            raise RuntimeError(f"DTMF needs an active call (state {self.state})")
        self._spawn(self._dtmf_sequence(call, digits, gap))

    async def _dtmf_sequence(self, call: Call, digits: str, gap: float) -> None:
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(gap)
            if self._call is not call:
                return
            if self.inband_dtmf:
                self._audio.overlay(dtmf_tone(digit))
            for line, crcr in self.dtmf_urcs(digit):
                self._urc(line, crcr)

    def dtmf_urcs(self, digit: str) -> list[tuple[str, bool]]:
        """The unsolicited lines (and whether they are CR CR LF framed) this family reports a received
        digit with, once the host enabled detection; empty when it reports none."""
        return []

    # ---------------------------------------------------------------- audio

    def _audio_route(self) -> AudioSide | None:
        """The audio side that carries call audio right now, or None."""
        return None

    def _call_active(self) -> bool:
        return self._call is not None and self._call.stat == 0

    # ---------------------------------------------------------------- reset / power

    def _schedule_reset(self) -> None:
        """Answer OK first, then take the ports away; they come back after reset_seconds."""
        assert self._loop is not None
        self._loop.call_later(RESET_OK_DELAY, self._unplug)
        self._loop.call_later(RESET_OK_DELAY + self.reset_seconds, self._replug)

    def _power_on_state(self) -> None:
        """Module state after a power cycle (replug, reset)."""
        self._power_up_settings()
        self._cfun = 1
        self._clcc_urc_mode = 0
        self._reg_stat = self._desired_registration()
        self._sms_power_on()


def _unspace(text: str) -> str:
    """Spaces outside quotes are not significant in an extended command's parameters."""
    out, quoted = [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == " " and not quoted:
            continue
        out.append(ch)
    return "".join(out)
