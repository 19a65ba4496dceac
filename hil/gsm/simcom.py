"""SIMCom dialects (shared/docs/modems.md §2, T1, T2, T7, T11): the SIM7600 LTE module with USB PCM on
interface 4 after AT+CPCMREG=1 (only while a call exists), and the 2G SIM800 with analog audio
only, reached through a USB-UART bridge."""

from __future__ import annotations

import datetime
import time

from hil.gsm.audio import AudioSide
from hil.gsm.base import CME_INVALID_PARAMS, CME_NOT_ALLOWED, CmdError, Result
from hil.gsm.core import OUTCOME_FINAL, Call, GsmEmulator, Setting
from hil.gsm.ports import PortSpec

END_ORDER_ITEMS = ("clcc", "voice_call_end", "no_carrier")


class SimcomSim7600(GsmEmulator):
    """SIMCom SIM7600G-H on USB 1e0e:9001: diag, NMEA, AT, AT/PPP and the PCM audio tty (if04)."""

    FAMILY = "simcom_sim7600"
    PORTS = (PortSpec("diag", 0), PortSpec("nmea", 1), PortSpec("at", 2), PortSpec("modem", 3),
             PortSpec("audio", 4))
    USB_VID, USB_PID = "1e0e", "9001"
    USB_MANUFACTURER = USB_PRODUCT = "SimTech, Incorporated"
    AUDIO_TTY_ROLE = "audio"
    MANUFACTURER = "SIMCOM INCORPORATED"
    MODEL = "SIMCOM_SIM7600G-H"
    REVISION = "LE20B04SIM7600G22"
    DEFAULT_IMEI = "867584030000001"
    BOOT_URCS = ("RDY", "+CPIN: READY", "SMS DONE", "PB DONE")
    SETTINGS = {
        "CVHU": Setting(((0, 1),), (1,), "+CVHU: {0}"),
        "DDET": Setting(((0, 1),), (0,), "+DDET: {0}"),
        "CLTS": Setting(((0, 1),), (0,), "+CLTS: {0}"),
        "AUTOCSQ": Setting(((0, 1), (0, 1)), (0, 0), "+AUTOCSQ: {0},{1}"),
        "CMICGAIN": Setting(((0, 8),), (3,), "+CMICGAIN: {0}"),
        "COUTGAIN": Setting(((0, 8),), (4,), "+COUTGAIN: {0}"),
    }

    def __init__(self, *, pcm_accept_after: float = 0.0,
                 end_order: tuple[str, ...] = END_ORDER_ITEMS, **kwargs) -> None:
        bad = [item for item in end_order if item not in END_ORDER_ITEMS]
        if bad or len(set(end_order)) != len(end_order):
            raise ValueError(f"end_order {end_order!r}: use each of {END_ORDER_ITEMS} at most once")
        self.pcm_accept_after = pcm_accept_after
        self.end_order = tuple(end_order)
        self._pcm = False
        self._cnsmod = 0
        super().__init__(**kwargs)

    # ---------------------------------------------------------------- identification

    def _ati(self, arg: int) -> list[str]:
        return [f"Manufacturer: {self.MANUFACTURER}", f"Model: {self.model}", f"Revision: {self.revision}",
                f"IMEI: {self.imei}", self.GCAP]

    def _x_cgmr(self, suffix: str) -> Result:
        return self._info(suffix, [f"+CGMR: {self.revision}"])

    def _x_gmr(self, suffix: str) -> Result:
        return self._info(suffix, [self.revision])

    def _x_ciccid(self, suffix: str) -> Result:
        self._need_sim()
        return self._info(suffix, [f"+ICCID: {self.iccid}"])

    def _x_simcomati(self, suffix: str) -> Result:
        return self._info(suffix, [f"Manufacturer: {self.MANUFACTURER}", f"Model: {self.model}",
                                   f"Revision: {self.revision}", "QCN: ", f"IMEI: {self.imei}",
                                   "MEID: ", "+GCAP:+CGSM", "DeviceInfo: 173,170"])

    def _x_exunsol(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result(['+EXUNSOL: ("SQ"),(0-1)'])
        args = self._args(suffix)
        if len(args) != 2 or args[1] not in ("0", "1"):
            raise CmdError(CME_INVALID_PARAMS)
        return Result()

    def _x_creset(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result()
        if suffix:
            raise CmdError(CME_INVALID_PARAMS)
        self._schedule_reset()
        return Result()

    # ---------------------------------------------------------------- network

    def _x_cnsmod(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f"+CNSMOD: {self._cnsmod},{self._system_mode()}"])
        if suffix == "=?":
            return Result(["+CNSMOD: (0-1)"])
        values = self._int_args(suffix, 1)
        if values[0] not in (0, 1):
            raise CmdError(CME_INVALID_PARAMS)
        self._cnsmod = int(values[0] or 0)
        return Result()

    def _system_mode(self) -> int:
        return 8 if self._registered else 0       # 8 LTE, 0 no service

    def _registration_changed(self) -> None:
        if self._cnsmod:
            self._urc(f"+CNSMOD: {self._system_mode()}")

    def _power_on_state(self) -> None:
        super()._power_on_state()
        self._cnsmod = 0
        self._pcm = False
        if self._pty_audio is not None:
            self._pty_audio.wideband = False

    # ---------------------------------------------------------------- calls

    def _ring_urcs(self, call: Call, first: bool) -> list[tuple[str, bool]]:
        lines = super()._ring_urcs(call, first)
        return [(line, line.startswith("+CRING")) for line, _ in lines]   # <CR><CR><LF> framing

    def _answer_result(self, call: Call) -> Result:
        return Result(["VOICE CALL: BEGIN"], after=self._clcc_urcs(call))

    def _connected_urcs(self, call: Call) -> list[str]:
        return ["VOICE CALL: BEGIN"] + super()._connected_urcs(call)

    def _voice_call_end(self, call: Call) -> str:
        if call.active_since is None:
            return "VOICE CALL: END"
        return f"VOICE CALL: END: {call.duration():06d}"

    def _end_call(self, reason: str) -> Call:
        call = self._call
        assert call is not None
        self._ended_line = self._voice_call_end(call)
        return super()._end_call(reason)

    def _release_urcs(self, call: Call, reason: str, was_stat: int) -> list[tuple[str, bool]]:
        clcc = self._clcc_urcs(call, 6)
        if reason == "missed":
            stamp = datetime.datetime.now().strftime("%I:%M%p")
            return [(line, False) for line in clcc] + [(self._ended_line, False),
                                                       (f"MISSED_CALL: {stamp} {call.number}", False)]
        lines: list[tuple[str, bool]] = []
        for item in self.end_order:
            if item == "clcc":
                lines += [(line, False) for line in clcc]
            elif item == "voice_call_end":
                lines.append((self._ended_line, False))
            elif item == "no_carrier":
                lines.append((OUTCOME_FINAL.get(reason, "NO CARRIER"), False))
        return lines

    def _local_hangup_result(self, call: Call) -> Result:
        return Result(self._clcc_urcs(call, 6) + [self._ended_line])

    def dtmf_urcs(self, digit: str) -> list[tuple[str, bool]]:
        return [(f"+RXDTMF: {digit}", True)]

    # ---------------------------------------------------------------- USB PCM audio

    def _audio_route(self) -> AudioSide | None:
        if not self._pcm or not self._call_active():
            return None
        return self.external_audio if self.external_audio is not None else self._pty_audio

    @property
    def pcm_enabled(self) -> bool:
        return self._pcm and self._plugged

    def _call_ending(self, call: Call) -> None:
        self._pcm = False

    def _x_cpcmreg(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f"+CPCMREG: {int(self._pcm)}"])
        if suffix == "=?":
            return Result(["+CPCMREG: (0-1)"])
        args = [a.strip() for a in suffix[1:].split(",")] if suffix.startswith("=") else []
        if not args or args[0] not in ("0", "1") or any(a not in ("0", "1") for a in args[1:2]):
            raise CmdError(None)
        if args[0] == "0":
            self._pcm = False
            return Result()
        call = self._call
        if call is None or call.stat == 4:
            raise CmdError(None)        # no call in progress (T11 f): plain ERROR
        since = call.active_since if call.active_since is not None else call.created
        if time.monotonic() - since < self.pcm_accept_after:
            raise CmdError(None)        # the module is not ready yet; the host retries
        self._pcm = True
        return Result()

    def _x_cpcmfrm(self, suffix: str) -> Result:
        side = self._pty_audio
        wide = int(side.wideband) if side is not None else 0
        if suffix == "?":
            return Result([f"+CPCMFRM: {wide}"])
        if suffix == "=?":
            return Result(["+CPCMFRM: (0-1)"])
        values = self._int_args(suffix, 1)
        if values[0] not in (0, 1):
            raise CmdError(CME_INVALID_PARAMS)
        if self._pcm:
            raise CmdError(CME_NOT_ALLOWED)   # the frame rate cannot change under a running stream
        if side is not None:
            side.wideband = values[0] == 1
        return Result()


class SimcomSim800(GsmEmulator):
    """SIMCom SIM800L (2G) behind a CP2102 USB-UART bridge; call audio is analog, so it reaches the
    host only through the sound card passed as audio_side."""

    FAMILY = "simcom_sim800"
    PORTS = (PortSpec("at", 0),)
    USB_VID, USB_PID = "10c4", "ea60"
    USB_MANUFACTURER = "Silicon Labs"
    USB_PRODUCT = "CP2102 USB to UART Bridge Controller"
    AUDIO_TTY_ROLE = None
    MANUFACTURER = "SIMCOM_Ltd"
    MODEL = "SIMCOM_SIM800L"
    REVISION = "1418B04SIM800L24"
    DEFAULT_IMEI = "865067020000004"
    ACT = 0
    REG_COMMANDS = ("CREG", "CGREG")
    CREG_ACT = False
    COPS_ACT = False
    RING_INTERVAL = 1.0
    BOOT_URCS = ("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready")
    MISSING_SIM_URCS = ("+CPIN: NOT INSERTED",)
    SETTINGS = {
        "DDET": Setting(((0, 1), (0, 10000), (0, 1), (0, 1)), (0, 0, 0, 0), "+DDET: {0},{1},{2},{3}"),
        "MORING": Setting(((0, 1),), (0,), "+MORING: {0}"),
        "CDRIND": Setting(((0, 1),), (0,), "+CDRIND: {0}"),
        "CLTS": Setting(((0, 1),), (0,), "+CLTS: {0}"),
        "CIURC": Setting(((0, 1),), (1,), "+CIURC: {0}"),
        "CMIC": Setting(((0, 1), (0, 15)), (0, 10), "+CMIC: ({0},{1})"),
    }

    def _ati(self, arg: int) -> list[str]:
        return ["SIM800 R14.18"]

    def _x_cgmr(self, suffix: str) -> Result:
        return self._info(suffix, [f"Revision:{self.revision}"])

    def _x_ccid(self, suffix: str) -> Result:
        self._need_sim()
        return self._info(suffix, [self.iccid])

    def _wants_pty_audio(self, audio_side: AudioSide | None) -> bool:
        return False

    def _audio_route(self) -> AudioSide | None:
        return self.external_audio if self._call_active() else None

    def _cdrind(self) -> list[str]:
        return ["+CDRIND: 0"] if self._settings["CDRIND"][0] else []

    def _alerting_urcs(self, call: Call) -> list[str]:
        return (["MO RING"] if self._settings["MORING"][0] else []) + self._clcc_urcs(call)

    def _connected_urcs(self, call: Call) -> list[str]:
        return (["MO CONNECTED"] if self._settings["MORING"][0] else []) + super()._connected_urcs(call)

    def _release_urcs(self, call: Call, reason: str, was_stat: int) -> list[tuple[str, bool]]:
        return super()._release_urcs(call, reason, was_stat) + [(line, False) for line in self._cdrind()]

    def _local_hangup_result(self, call: Call) -> Result:
        return Result(after=self._clcc_urcs(call, 6) + self._cdrind())

    def dtmf_urcs(self, digit: str) -> list[tuple[str, bool]]:
        mode, _, report, _ = self._settings["DDET"]
        if not mode:
            return []
        return [(f"+DTMF: {digit},{100}" if report else f"+DTMF: {digit}", False)]
