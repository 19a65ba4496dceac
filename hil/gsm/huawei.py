"""Huawei dongle dialect (shared/docs/modems.md §4, T5, T6, T11 d): ^ORIG/^CONF/^CONN/^CEND call
states, ^RSSI chatter until AT^CURC=0, ^DDTMF after AT^DDTMFCFG=0,1, AT^DTMF to send, PCM on the
voice tty after AT^DDSETEX=2 (given after ATA/ATD), "COMMAND NOT SUPPORT" for unknown commands.
The E3531 runs 21.x firmware without voice: ^CVOICE still answers, calls end in NO CARRIER."""

from __future__ import annotations

import asyncio

from hil.gsm.audio import AudioSide
from hil.gsm.base import CME_INVALID_PARAMS, CME_NOT_ALLOWED, AtChannel, CmdError, Result
from hil.gsm.core import CAUSES, Call, GsmEmulator
from hil.gsm.ports import PortSpec

END_STATUS = 104           # ^CEND <end_status> seen on real E1550 traces
CHATTER_INTERVAL = 5.0


class HuaweiE1752(GsmEmulator):
    """Huawei E1752 (11.x firmware, voice) on USB 12d1:1001: modem tty (if00), voice tty (if01),
    PCUI AT tty (if02)."""

    FAMILY = "huawei_e1752"
    PORTS = (PortSpec("modem", 0), PortSpec("audio", 1), PortSpec("at", 2))
    USB_VID, USB_PID = "12d1", "1001"
    USB_MANUFACTURER = "HUAWEI Technology"
    USB_PRODUCT = "HUAWEI Mobile"
    AUDIO_TTY_ROLE = "audio"
    MANUFACTURER = "huawei"
    MODEL = "E1752"
    REVISION = "11.126.13.00.00"
    DEFAULT_IMEI = "351234050000003"
    GCAP = "+GCAP: +CGSM,+DS,+ES"
    ACT = 2
    REG_COMMANDS = ("CREG", "CGREG")
    CREG_ACT = False
    CLCC_URCS = False
    VOICE = True

    def __init__(self, *, chatter_interval: float = CHATTER_INTERVAL, **kwargs) -> None:
        self.chatter_interval = chatter_interval
        self._curc = 1
        self._ddtmf = False
        super().__init__(**kwargs)

    # ---------------------------------------------------------------- dialect basics

    def _ati(self, arg: int) -> list[str]:
        return [f"Manufacturer: {self.MANUFACTURER}", f"Model: {self.model}", f"Revision: {self.revision}",
                f"IMEI: {self.imei}", self.GCAP]

    def _unsupported_final(self, channel: AtChannel) -> str:
        return "COMMAND NOT SUPPORT"

    def _x_clac(self, suffix: str) -> Result:
        result = super()._x_clac(suffix)
        result.crcr_lines = True          # E1752 ends every +CLAC line with \r\r\n
        return result

    def _power_on_state(self) -> None:
        super()._power_on_state()
        self._curc = 1
        self._ddtmf = False

    def _start_background(self) -> None:
        self._spawn_bg(self._chatter())

    async def _chatter(self) -> None:
        """Periodic status URCs a Huawei sends until AT^CURC=0 (and keeps sending when wedged)."""
        while True:
            await asyncio.sleep(self.chatter_interval)
            if self._curc:
                self._urc(f"^RSSI:{self._rssi}")

    def _c_curc(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f"^CURC: {self._curc}"])
        if suffix == "=?":
            return Result(["^CURC: (0-1)"])
        values = self._int_args(suffix, 2)
        if values[0] not in (0, 1):
            raise CmdError(CME_INVALID_PARAMS)
        self._curc = int(values[0] or 0)
        return Result()

    def _c_portsel(self, suffix: str) -> Result:
        return Result(["^PORTSEL: 0"] if suffix == "?" else [])

    def _c_u2diag(self, suffix: str) -> Result:
        return Result(["^U2DIAG: 0"] if suffix == "?" else [])

    def _c_sysinfo(self, suffix: str) -> Result:
        service = 2 if self._registered else 0
        return self._info(suffix, [f"^SYSINFO:{service},3,0,5,1,,4"])

    def _c_iccid(self, suffix: str) -> Result:
        self._need_sim()
        return self._info(suffix, [f"^ICCID: {self.iccid}"])

    def _c_cpbr(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result(['^CPBR: (1-250),40,40,0'])
        raise CmdError(22)        # T11 e: phonebook miss

    # ---------------------------------------------------------------- voice capability and audio

    def _c_cvoice(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([self._cvoice_line()])
        if suffix == "=?":
            return Result(["^CVOICE:(0)"])
        values = self._int_args(suffix, 1)
        if values[0] != 0:
            raise CmdError(CME_INVALID_PARAMS)
        return Result()

    def _cvoice_line(self) -> str:
        return "^CVOICE:0,8000,16,20"

    def _c_ddsetex(self, suffix: str) -> Result:
        if suffix == "?":
            return Result(["^DDSETEX: 2"])
        if suffix == "=?":
            return Result(["^DDSETEX: (2)"])
        values = self._int_args(suffix, 1)
        if values[0] != 2:
            raise CmdError(CME_INVALID_PARAMS)
        call = self._call
        if call is not None and (call.direction == 0 or call.stat == 0):
            call.audio = True     # after ATD or ATA: this call's PCM goes to the voice tty
        return Result()           # before the call it is accepted and does nothing

    def _audio_route(self) -> AudioSide | None:
        call = self._call
        if not self.VOICE or call is None or call.stat != 0 or not call.audio:
            return None
        return self.external_audio if self.external_audio is not None else self._pty_audio

    # ---------------------------------------------------------------- DTMF

    def _c_ddtmfcfg(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f"^DDTMFCFG: 0,{int(self._ddtmf)}"])
        if suffix == "=?":
            return Result(["^DDTMFCFG: (0),(0-1)"])
        values = self._int_args(suffix, 2)
        if values[0] != 0 or len(values) < 2 or values[1] not in (0, 1):
            raise CmdError(CME_INVALID_PARAMS)
        self._ddtmf = values[1] == 1
        return Result()

    def dtmf_urcs(self, digit: str) -> list[tuple[str, bool]]:
        return [(f"^DDTMF: {digit}", False)] if self._ddtmf else []

    def _c_dtmf(self, suffix: str) -> Result:
        if suffix == "=?":
            return Result(["^DTMF: (1-7),(0-9,*,#)"])
        args = self._args(suffix)
        if len(args) != 2 or not args[0].isdigit():
            raise CmdError(CME_INVALID_PARAMS)
        if self._call is None or int(args[0]) != self._call.index:
            raise CmdError(CME_NOT_ALLOWED)
        return self._host_dtmf(args[1].strip().upper(), allowed="0123456789*#")

    # ---------------------------------------------------------------- calls

    def _clip_line(self, call: Call) -> str:
        return f'+CLIP: "{call.number}",{call.number_type},,,,0'

    def _cend(self, call: Call, reason: str) -> str:
        return f"^CEND:{call.index},{call.duration()},{END_STATUS},{CAUSES.get(reason, 16)}"

    def _answer_result(self, call: Call) -> Result:
        return Result(after=[f"^CONN:{call.index},0"])

    def _dial_result(self, call: Call) -> Result:
        return Result(after=[f"^ORIG:{call.index},0"])

    def _alerting_urcs(self, call: Call) -> list[str]:
        return [f"^CONF:{call.index}"]

    def _connected_urcs(self, call: Call) -> list[str]:
        return [f"^CONN:{call.index},0"]

    def _end_call(self, reason: str) -> Call:
        call = self._call
        assert call is not None
        self._cend_line = self._cend(call, reason)
        return super()._end_call(reason)

    def _release_urcs(self, call: Call, reason: str, was_stat: int) -> list[tuple[str, bool]]:
        return [(self._cend_line, False)]

    def _local_hangup_result(self, call: Call) -> Result:
        return Result(after=[self._cend_line])


class HuaweiE3531(HuaweiE1752):
    """Huawei E3531 on 21.x firmware (USB 12d1:1506: voice tty if02, AT if03 — swapped relative to
    11.x): data and SMS work, ^CVOICE answers, but there is no voice: calls end in NO CARRIER and
    no PCM ever flows."""

    FAMILY = "huawei_e3531"
    PORTS = (PortSpec("modem", 0), PortSpec("audio", 2), PortSpec("at", 3))
    USB_PID = "1506"
    USB_MANUFACTURER = "HUAWEI_MOBILE"
    USB_PRODUCT = "HUAWEI_MOBILE"
    MODEL = "E3531"
    REVISION = "21.318.01.00.00"
    DEFAULT_IMEI = "861234020000005"
    VOICE = False

    def _cvoice_line(self) -> str:
        return "^CVOICE: 0, 8000, 16, 20"

    def _dial_refused(self, number: str) -> Result | None:
        return Result(final="NO CARRIER")       # gammu#316: ATD answered with NO CARRIER

    def _answer(self) -> Result:
        call = self._call
        if call is None or call.stat != 4:
            return super()._answer()
        self._end_call("no_carrier")
        return Result(final="NO CARRIER", after=[self._cend_line])
