"""Quectel EC25 dialect (shared/docs/modems.md §3, T3, T4, T7): RING/+CLIP, `+QIND: "ccinfo"` and
`^DSCI` call state URCs, `+QTONEDET` DTMF as ASCII codes, the LTE packet pseudo-call in +CLCC,
serial PCM on the NMEA tty (AT+QPCMV=1,0) or a USB sound card (AT+QPCMV=1,2) switched on before
ATA/ATD, VoLTE/IMS state (+QCFG="ims", +QNWINFO), GNSS sentences sharing the NMEA tty."""

from __future__ import annotations

import asyncio

from hil.gsm.audio import AudioSide
from hil.gsm.base import CME_INVALID_PARAMS, AtChannel, CmdError, Result
from hil.gsm.core import OUTCOME_FINAL, Call, GsmEmulator, Setting
from hil.gsm.ports import PortSpec

QINDCFG_DEFAULTS = {"all": 1, "csq": 0, "smsfull": 0, "ring": 1, "smsincoming": 1, "act": 0, "ccinfo": 0}
# ^DSCI <stat> numbers differ from +CLCC's (modems.md §3.4): 3 connected, 7 alerting, 6 ended.
DSCI_STAT = {2: 2, 3: 7, 0: 3, 4: 4, 6: 6}
GNSS_INTERVAL = 1.0
URC_PORTS = ("usbat", "usbmodem", "uart1")


def _nmea(body: str) -> str:
    checksum = 0
    for ch in body:
        checksum ^= ord(ch)
    return f"${body}*{checksum:02X}\r\n"


class QuectelEc25(GsmEmulator):
    """Quectel EC25 on USB 2c7c:0125: diag, NMEA (also serial PCM), AT, AT/PPP. audio_side, when
    given, is the USB Audio Class card that AT+QPCMV=1,2 uses."""

    FAMILY = "quectel_ec25"
    PORTS = (PortSpec("diag", 0), PortSpec("nmea", 1), PortSpec("at", 2), PortSpec("modem", 3))
    USB_VID, USB_PID = "2c7c", "0125"
    USB_MANUFACTURER = "Quectel"
    USB_PRODUCT = "EC25"
    AUDIO_TTY_ROLE = "nmea"
    MANUFACTURER = "Quectel"
    MODEL = "EC25"
    REVISION = "EC25EFAR06A03M4G"
    DEFAULT_IMEI = "866758040000002"
    CLCC_URCS = False
    BOOT_URCS = ("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE")
    SMS_CSCS_DEFAULT = "GSM"
    SMS_EMPTY_ALPHA = ""
    SETTINGS = {
        "QTONEDET": Setting(((0, 1),), (0,), "+QTONEDET: {0}"),
        "QAUDMOD": Setting(((0, 6),), (0,), "+QAUDMOD: {0}"),
        "QSIMSTAT": Setting(((0, 1),), (0,), "+QSIMSTAT: {0},1"),
        "QMIC": Setting(((0, 65535), (0, 65535)), (8192, 8192), "+QMIC: {0},{1}"),
        "QRXGAIN": Setting(((0, 65535),), (20000,), "+QRXGAIN: {0}"),
    }

    def __init__(self, *, qgmr: str | None = None, lte_data_call: bool = True, **kwargs) -> None:
        self.lte_data_call = lte_data_call
        self._qgmr = qgmr
        self._ims_cfg = 1            # AT+QCFG="ims": persistent, applied at the next boot
        self._ims_active = 1
        self._ims_network = True     # the network accepts our IMS registration
        self._qpcmv = [0, 0]
        self._qindcfg = dict(QINDCFG_DEFAULTS)
        self._dsci = 0
        self._gnss = False
        self._gnss_outport = "usbnmea"
        self._urcport = "usbat"
        super().__init__(**kwargs)

    @property
    def qgmr(self) -> str:
        return self._qgmr or f"{self.revision}_01.001.01.001"

    def _wants_pty_audio(self, audio_side: AudioSide | None) -> bool:
        return True      # the NMEA tty is always there; audio_side is the UAC card

    # ---------------------------------------------------------------- scripting extras

    def set_ims(self, available: bool) -> None:
        """Whether the network grants IMS registration (VoLTE); without it calls fail."""
        self._call_in_loop(self._set_ims_network, bool(available))

    @property
    def volte(self) -> bool:
        return bool(self._ims_active == 1 and self._ims_network and self._registered)

    def _set_ims_network(self, available: bool) -> None:
        self._ims_network = available

    # ---------------------------------------------------------------- identification and status

    def _x_qgmr(self, suffix: str) -> Result:
        return self._info(suffix, [self.qgmr])

    def _x_qccid(self, suffix: str) -> Result:
        self._need_sim()
        return self._info(suffix, [f"+QCCID: {self.iccid}"])

    def _x_qnwinfo(self, suffix: str) -> Result:
        if not self._registered:
            return self._info(suffix, ["+QNWINFO: No Service"])
        return self._info(suffix, [f'+QNWINFO: "FDD LTE","{self.mcc_mnc}","LTE BAND 3",1650'])

    def _x_qdai(self, suffix: str) -> Result:
        if suffix == "?":
            return Result(["+QDAI: 1,1,0,1,0,0,1,1"])
        return Result()

    def _x_qcfg(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result(['+QCFG: "ims",(0-2)', '+QCFG: "usbcfg"', '+QCFG: "nwscanmode",(0-3)'])
        args = self._args(suffix)
        item = args[0].lower()
        if item == "ims":
            if len(args) == 1:
                return Result([f'+QCFG: "ims",{self._ims_cfg},{int(self.volte)}'])
            if args[1] not in ("0", "1", "2"):
                raise CmdError(CME_INVALID_PARAMS)
            self._ims_cfg = int(args[1])
            return Result()
        if item == "usbcfg":
            uac = int(self.external_audio is not None)
            return Result([f'+QCFG: "usbcfg",0x2C7C,0x0125,1,1,1,1,1,0,{uac}'])
        if item == "nwscanmode":
            return Result(['+QCFG: "nwscanmode",0'] if len(args) == 1 else [])
        if item == "urc/ri/ring":
            return Result(['+QCFG: "urc/ri/ring","pulse",120,1000,5000,"off",1'] if len(args) == 1 else [])
        raise CmdError(CME_INVALID_PARAMS)

    def _x_qindcfg(self, suffix: str) -> Result:
        if suffix == "=?":
            kinds = ",".join(f'"{k}"' for k in QINDCFG_DEFAULTS)
            return Result([f"+QINDCFG: ({kinds}),(0,1),(0,1)"])
        args = self._args(suffix)
        kind = args[0].lower()
        if kind not in self._qindcfg:
            raise CmdError(CME_INVALID_PARAMS)
        if len(args) == 1:
            return Result([f'+QINDCFG: "{kind}",{self._qindcfg[kind]}'])
        if args[1] not in ("0", "1") or (len(args) > 2 and args[2] not in ("0", "1")):
            raise CmdError(CME_INVALID_PARAMS)
        self._qindcfg[kind] = int(args[1])
        return Result()

    def _c_dsci(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f"^DSCI: {self._dsci}"])
        if suffix == "=?":
            return Result(["^DSCI: (0,1)"])
        values = self._int_args(suffix, 1)
        if values[0] not in (0, 1):
            raise CmdError(CME_INVALID_PARAMS)
        self._dsci = int(values[0] or 0)
        return Result()

    def _x_qurccfg(self, suffix: str) -> Result:
        args = self._args(suffix)
        if args[0].lower() != "urcport":
            raise CmdError(CME_INVALID_PARAMS)
        if len(args) == 1:
            return Result([f'+QURCCFG: "urcport","{self._urcport}"'])
        if args[1].lower() not in URC_PORTS:
            raise CmdError(CME_INVALID_PARAMS)
        self._urcport = args[1].lower()
        return Result()

    def _urc_channel(self) -> AtChannel:
        if self._urcport == "usbmodem":
            return next((ch for ch in self._channels if ch.spec.role == "modem"), self._primary)
        return self._primary

    def _power_on_state(self) -> None:
        super()._power_on_state()
        self._ims_active = self._ims_cfg
        self._qpcmv = [0, 0]
        self._qindcfg = dict(QINDCFG_DEFAULTS)
        self._dsci = 0
        self._gnss = False

    # ---------------------------------------------------------------- GNSS on the NMEA tty

    def _x_qgps(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f"+QGPS: {int(self._gnss)}"])
        if suffix == "=?":
            return Result(["+QGPS: (1-3),(1-255),(1-1000),(1-1000),(1-65535)"])
        values = self._int_args(suffix, 5)
        if values[0] != 1:
            raise CmdError(CME_INVALID_PARAMS)
        if self._gnss:
            raise CmdError(504)       # session is ongoing
        self._gnss = True
        self._spawn_bg(self._nmea_output())
        return Result()

    def _x_qgpsend(self, suffix: str) -> Result:
        if not self._gnss:
            raise CmdError(505)       # session not active
        self._gnss = False
        return Result()

    def _x_qgpscfg(self, suffix: str) -> Result:
        args = self._args(suffix)
        if args[0].lower() != "outport":
            raise CmdError(CME_INVALID_PARAMS)
        if len(args) == 1:
            return Result([f'+QGPSCFG: "outport","{self._gnss_outport}"'])
        if args[1].lower() not in ("none", "usbnmea", "uartnmea"):
            raise CmdError(CME_INVALID_PARAMS)
        self._gnss_outport = args[1].lower()
        return Result()

    async def _nmea_output(self) -> None:
        while self._gnss:
            if self._gnss_outport == "usbnmea" and self._pty_audio is not None:
                for body in ("GPGSV,1,1,00", "GPGGA,,,,,,0,,,,,,,,", "GPRMC,,V,,,,,,,,,,N"):
                    self._pty_audio.write_text(_nmea(body).encode())
            await asyncio.sleep(GNSS_INTERVAL)

    # ---------------------------------------------------------------- calls

    def _packet_call(self) -> bool:
        return self.lte_data_call and self._registered

    def _incoming_index(self) -> int:
        return 2 if self._packet_call() else 1

    _outgoing_index = _incoming_index

    def _clcc_list(self) -> list[str]:
        lines = ['+CLCC: 1,0,0,1,0,"",128'] if self._packet_call() else []
        return lines + super()._clcc_list()

    def _state_urcs(self, call: Call, stat: int) -> list[str]:
        lines = []
        if self._qindcfg["ccinfo"]:
            state = -1 if stat == 6 else stat
            lines.append(f'+QIND: "ccinfo",{call.index},{call.direction},{state},0,0,'
                         f'"{call.number}",{call.number_type}')
        if self._dsci:
            lines.append(f"^DSCI: {call.index},{call.direction},{DSCI_STAT[stat]},0,{call.number},"
                         f"{call.number_type}")
        return lines

    def _ring_urcs(self, call: Call, first: bool) -> list[tuple[str, bool]]:
        lines = [(line, False) for line in self._state_urcs(call, 4)] if first else []
        if self._qindcfg["ring"]:
            lines.append(("+CRING: VOICE" if self._settings["CRC"][0] else "RING", False))
        if self._settings["CLIP"][0]:
            lines.append((self._clip_line(call), False))
        return lines

    def _answer_result(self, call: Call) -> Result:
        return Result(after=self._state_urcs(call, 0))

    def _on_connected(self, call: Call) -> None:
        if call.direction == 1:
            self._latch_audio(call)

    def _latch_audio(self, call: Call) -> None:
        """Quectel PCM must be switched on before ATA/ATD; it is taken at that moment."""
        call.audio = self._qpcmv[0] == 1
        self._latched_port = self._qpcmv[1]

    _latched_port = 0

    def _dial_refused(self, number: str) -> Result | None:
        if not self.volte:
            return Result(after=["NO CARRIER"])     # T4: no IMS, the LTE-only call fails at once
        return None

    def _dial_result(self, call: Call) -> Result:
        self._latch_audio(call)
        return Result(after=self._state_urcs(call, 2))

    def _alerting_urcs(self, call: Call) -> list[str]:
        return self._state_urcs(call, 3)

    def _connected_urcs(self, call: Call) -> list[str]:
        lines = self._state_urcs(call, 0)
        if self._settings["COLP"][0]:
            lines.append(f'+COLP: "{call.number}",{call.number_type},"",0,""')
        return lines

    def _release_urcs(self, call: Call, reason: str, was_stat: int) -> list[tuple[str, bool]]:
        lines = [(line, False) for line in self._state_urcs(call, 6)]
        return lines + [(OUTCOME_FINAL.get(reason, "NO CARRIER"), False)]

    def _local_hangup_result(self, call: Call) -> Result:
        return Result(after=self._state_urcs(call, 6))

    def _ring(self, caller: str, number_type: int) -> None:
        if self._registered and not self.volte:
            raise RuntimeError("IMS is not registered (no VoLTE): the call cannot reach the module")
        super()._ring(caller, number_type)

    def _x_qhup(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result(["+QHUP: (1-127),(1-7)"])
        values = self._int_args(suffix, 2)
        if values[0] is None or not 1 <= values[0] <= 127:
            raise CmdError(CME_INVALID_PARAMS)
        if len(values) > 1 and values[1] is not None and (self._call is None or values[1] != self._call.index):
            raise CmdError(CME_INVALID_PARAMS)
        return self._local_hangup()

    # ---------------------------------------------------------------- DTMF

    def dtmf_urcs(self, digit: str) -> list[tuple[str, bool]]:
        return [(f"+QTONEDET: {ord(digit)}", False)] if self._settings["QTONEDET"][0] else []

    def _x_qvts(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result(['+QVTS: (0-9,*,#,A,B,C,D)'])
        return self._host_dtmf(self._args(suffix)[0].strip().upper())

    # ---------------------------------------------------------------- PCM audio

    def _x_qpcmv(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f"+QPCMV: {self._qpcmv[0]},{self._qpcmv[1]}"])
        if suffix == "=?":
            return Result(["+QPCMV: (0,1),(0-2)"])
        values = self._int_args(suffix, 2)
        enable = values[0]
        port = values[1] if len(values) > 1 and values[1] is not None else self._qpcmv[1]
        if enable not in (0, 1) or port not in (0, 1, 2):
            raise CmdError(CME_INVALID_PARAMS)
        self._qpcmv = [int(enable), int(port)]
        return Result()

    def _audio_route(self) -> AudioSide | None:
        call = self._call
        if call is None or call.stat != 0 or not call.audio or self._qpcmv[0] != 1:
            return None
        if self._latched_port == 0:
            return self._pty_audio
        if self._latched_port == 2:
            return self.external_audio
        return None          # the debug UART is not wired to anything here
