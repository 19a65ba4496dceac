"""SMS as 3GPP TS 27.005 has a modem offer it: text (+CMGF=1) and PDU (+CMGF=0) mode, character sets
(+CSCS "GSM", "IRA", "UCS2"), message storage with +CMGR/+CMGL/+CMGD, new-message indications
(+CNMI: +CMTI or +CMT), and +CMGS with its `> ` prompt. Messages the far end sends are encoded
with gateway/modem/sms_pdu.py (split into concatenated parts when long); messages the host
sends are decoded and kept for the test."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from gateway.modem import sms_pdu
from hil.gsm.base import CME_INVALID_PARAMS, CmdError, CmsError, Prompt, Result

CHARSETS = ("GSM", "IRA", "UCS2")
STAT_TEXT = {0: "REC UNREAD", 1: "REC READ", 2: "STO UNSENT", 3: "STO SENT"}
TEXT_STAT = {text: code for code, text in STAT_TEXT.items()}
MEMORIES = ("SM", "ME", "MT")
SMS_CAPACITY = 50
SMS_MAX_UNITS = {"gsm7": 160, "ucs2": 70}


@dataclasses.dataclass
class StoredSms:
    index: int
    stat: int
    number: str
    text: str
    timestamp: datetime | None
    pdu: str                 # hex with the SMSC prefix, as +CMGR gives it in PDU mode
    encoding: str

    @property
    def tpdu_length(self) -> int:
        return len(self.pdu) // 2 - 1 - int(self.pdu[:2], 16)

    @property
    def first_octet(self) -> int:
        start = 2 + 2 * int(self.pdu[:2], 16)
        return int(self.pdu[start:start + 2], 16)


def scts_text(ts: datetime) -> str:
    """27.005 <scts> in text mode: yy/MM/dd,hh:mm:ss±zz (zz in quarter hours)."""
    offset = ts.utcoffset()
    quarters = int(offset.total_seconds() // 900) if offset is not None else 0
    sign = "-" if quarters < 0 else "+"
    return f"{ts:%y/%m/%d,%H:%M:%S}{sign}{abs(quarters):02d}"


def _smsc_octets(smsc: str) -> str:
    digits = smsc.lstrip("+")
    if not digits.isdigit():
        return "00"
    padded = digits + ("F" if len(digits) % 2 else "")
    swapped = "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))
    kind = "91" if smsc.startswith("+") else "81"
    return f"{1 + len(swapped) // 2:02X}{kind}{swapped}"


class SmsMixin:
    """27.005 commands and SMS scripting for GsmEmulator."""

    SMS_CSCS_DEFAULT = "IRA"
    SMS_CNMI_DEFAULT = (2, 1, 0, 0, 0)
    SMS_EMPTY_ALPHA = '""'       # how +CMGR/+CMGL/+CMT print the absent <alpha> field

    def _sms_init(self, smsc: str) -> None:
        self.smsc = smsc
        self._sms_store: dict[int, StoredSms] = {}
        self._sent: list[dict] = []
        self._mr = 0
        self._sms_fail: int | None = None
        self._sms_power_on()

    def _sms_power_on(self) -> None:
        self._cmgf = 0
        self._cscs = self.SMS_CSCS_DEFAULT
        self._cnmi = list(self.SMS_CNMI_DEFAULT)
        self._csmp = [17, 167, 0, 0]
        self._csdh = 0
        self._cpms = ["SM", "SM", "SM"]
        self._sms_buffered: list[list[str]] = []

    # ---------------------------------------------------------------- scripting

    def receive_sms(self, sender: str, text: str, timestamp: datetime | None = None,
                    reference: int = 0) -> list[int]:
        """The network delivers an SMS (several concatenated parts when long); returns the storage
        indexes used (empty when +CNMI routed the parts straight to the host with +CMT)."""
        stamp = timestamp or datetime.now(timezone.utc).replace(microsecond=0)
        pdus = sms_pdu.encode_deliver(sender, text, stamp, reference=reference)
        return self._call_in_loop(self._deliver_pdus, pdus)

    def sent_sms(self, joined: bool = False) -> list[dict]:
        """What the host sent with AT+CMGS, one dict per part (number, text, encoding, concat,
        mode, pdu, mr); joined=True puts concatenated parts back together."""
        parts = self._call_in_loop(lambda: [dict(item) for item in self._sent], after_stop=True)
        if not joined:
            return parts
        whole: list[dict] = []
        groups: dict[tuple, dict] = {}
        for part in parts:
            concat = part["concat"]
            if concat is None:
                whole.append(part)
                continue
            key = (part["number"], concat[0], concat[1])
            if key not in groups:
                groups[key] = {**part, "texts": {}}
                whole.append(groups[key])
            groups[key]["texts"][concat[2]] = part["text"]
        for item in whole:
            if "texts" in item:
                texts = item.pop("texts")
                item["text"] = "".join(texts[i] for i in sorted(texts))
                item["complete"] = len(texts) == item["concat"][1]
        return whole

    def stored_sms(self) -> list[dict]:
        """The message storage: index, stat, number, text (one entry per part)."""
        return self._call_in_loop(lambda: [dataclasses.asdict(m) for m in self._sms_store.values()],
                                  after_stop=True)

    def fail_next_sms(self, code: int = 500) -> None:
        """The next AT+CMGS is rejected by the network with +CMS ERROR: <code>."""
        self._call_in_loop(setattr, self, "_sms_fail", int(code))

    def _deliver_pdus(self, pdus: list[str]) -> list[int]:
        if not self._plugged:
            raise RuntimeError("the modem is unplugged")
        if not self._registered:
            raise RuntimeError("the modem is not registered; the SMS cannot be delivered")
        indexes = []
        for pdu in pdus:
            full = _smsc_octets(self.smsc) + pdu[2:]
            deliver = sms_pdu.decode_deliver(full)
            mode, mt = self._cnmi[0], self._cnmi[1]
            if mt in (2, 3) and mode != 0 and deliver.message_class in (None, 0, 1, 3):
                self._emit_sms_urc(self._cmt_lines(deliver, full))
                continue
            index = self._store(StoredSms(0, 0, deliver.sender, deliver.text, deliver.timestamp, full,
                                          deliver.encoding))
            if index is None:
                continue
            indexes.append(index)
            if mt in (1, 2, 3):
                self._emit_sms_urc([f'+CMTI: "{self._cpms[2]}",{index}'])
        return indexes

    def _emit_sms_urc(self, lines: list[str]) -> None:
        if self._cnmi[0] == 0:
            self._sms_buffered.append(lines)
        elif len(lines) == 1:
            self._urc(lines[0])
        else:
            self._urc_block(lines)

    def _store(self, message: StoredSms) -> int | None:
        free = next((i for i in range(1, SMS_CAPACITY + 1) if i not in self._sms_store), None)
        if free is None:
            return None
        message.index = free
        self._sms_store[free] = message
        return free

    # ---------------------------------------------------------------- character sets

    def _to_te(self, text: str, encoding: str = "gsm7") -> str:
        """Text as the host sees it in the current +CSCS (a UCS-2 message shows as hex unless UCS2)."""
        if self._cscs == "UCS2" or encoding == "ucs2":
            return text.encode("utf-16-be").hex().upper()
        if self._cscs == "GSM":
            try:
                return bytes(sms_pdu.gsm7_septets(text)).decode("latin-1")
            except ValueError:
                return "".join(ch if ord(ch) < 128 else "?" for ch in text)
        return "".join(ch if ord(ch) < 128 else "?" for ch in text)

    def _from_te(self, text: str, error) -> str:
        if self._cscs == "UCS2":
            try:
                return bytes.fromhex(text).decode("utf-16-be")
            except ValueError:
                raise error from None
        if self._cscs == "GSM":
            septets = [ord(ch) & 0x7F for ch in text]
            try:
                return sms_pdu.gsm7_text(septets)
            except ValueError:
                raise error from None
        return text

    # ---------------------------------------------------------------- 27.005 settings

    def _x_cmgf(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f"+CMGF: {self._cmgf}"])
        if suffix == "=?":
            return Result(["+CMGF: (0-1)"])
        values = self._int_args(suffix, 1)
        if values[0] not in (0, 1):
            raise CmdError(CME_INVALID_PARAMS)
        self._cmgf = int(values[0] or 0)
        return Result()

    def _x_cscs(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f'+CSCS: "{self._cscs}"'])
        if suffix == "=?":
            return Result(["+CSCS: (" + ",".join(f'"{c}"' for c in CHARSETS) + ")"])
        args = self._args(suffix)
        name = args[0].upper()
        if name not in CHARSETS:
            raise CmdError(CME_INVALID_PARAMS)
        self._cscs = name
        return Result()

    def _x_csca(self, suffix: str) -> Result:
        if suffix == "?":
            self._need_sim_sms()
            kind = 145 if self.smsc.startswith("+") else 129
            return Result([f'+CSCA: "{self._to_te(self.smsc)}",{kind}'])
        if suffix == "=?":
            return Result()
        args = self._args(suffix)
        self.smsc = self._from_te(args[0], CmdError(CME_INVALID_PARAMS))
        return Result()

    def _x_csmp(self, suffix: str) -> Result:
        if suffix == "?":
            return Result(["+CSMP: " + ",".join(map(str, self._csmp))])
        if suffix == "=?":
            return Result()
        values = self._int_args(suffix, 4)
        for i, value in enumerate(values):
            if value is not None:
                if not 0 <= value <= 255:
                    raise CmdError(CME_INVALID_PARAMS)
                self._csmp[i] = value
        return Result()

    def _x_csdh(self, suffix: str) -> Result:
        if suffix == "?":
            return Result([f"+CSDH: {self._csdh}"])
        if suffix == "=?":
            return Result(["+CSDH: (0,1)"])
        values = self._int_args(suffix, 1)
        if values[0] not in (0, 1):
            raise CmdError(CME_INVALID_PARAMS)
        self._csdh = int(values[0] or 0)
        return Result()

    def _x_csms(self, suffix: str) -> Result:
        if suffix == "?":
            return Result(["+CSMS: 0,1,1,1"])
        if suffix == "=?":
            return Result(["+CSMS: (0-1)"])
        values = self._int_args(suffix, 1)
        if values[0] not in (0, 1):
            raise CmdError(CME_INVALID_PARAMS)
        return Result(["+CSMS: 1,1,1"])

    def _x_cnmi(self, suffix: str) -> Result:
        if suffix == "?":
            return Result(["+CNMI: " + ",".join(map(str, self._cnmi))])
        if suffix == "=?":
            return Result(["+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"])
        values = self._int_args(suffix, 5)
        ranges = ((0, 3), (0, 3), (0, 3), (0, 2), (0, 1))
        for i, value in enumerate(values):
            if value is not None:
                if not ranges[i][0] <= value <= ranges[i][1]:
                    raise CmsError(302)
                self._cnmi[i] = value
        if self._cnmi[0] != 0 and self._sms_buffered:
            buffered, self._sms_buffered = self._sms_buffered, []
            if self._cnmi[4] == 0:
                after: list[str] = []
                for lines in buffered:
                    after += lines
                return Result(after=after)
        return Result()

    def _x_cnma(self, suffix: str) -> Result:
        return Result()

    def _x_cpms(self, suffix: str) -> Result:
        self._need_sim_sms()
        used, total = len(self._sms_store), SMS_CAPACITY
        if suffix == "?":
            return Result(["+CPMS: " + ",".join(f'"{m}",{used},{total}' for m in self._cpms)])
        if suffix == "=?":
            mems = ",".join(f'"{m}"' for m in MEMORIES)
            return Result([f"+CPMS: ({mems}),({mems}),({mems})"])
        args = [arg.upper() for arg in self._args(suffix)]
        if len(args) > 3 or any(arg not in MEMORIES for arg in args):
            raise CmsError(302)
        for i, arg in enumerate(args):
            self._cpms[i] = arg
        return Result(["+CPMS: " + ",".join(f"{used},{total}" for _ in range(3))])

    def _need_sim_sms(self) -> None:
        if self._sim == "missing":
            raise CmsError(310)
        if self._sim == "pin":
            raise CmsError(311)

    # ---------------------------------------------------------------- reading and deleting

    def _message(self, index_text: str) -> StoredSms:
        if not index_text.isdigit():
            raise CmsError(321)
        message = self._sms_store.get(int(index_text))
        if message is None:
            raise CmsError(321)
        return message

    def _header_text(self, message: StoredSms, listing: bool) -> str:
        stat = f'"{STAT_TEXT[message.stat]}"'
        number = f'"{self._to_te(message.number)}"'
        stamp = f'"{scts_text(message.timestamp)}"' if message.timestamp is not None else ""
        alpha = self.SMS_EMPTY_ALPHA
        head = f"+CMGL: {message.index},{stat}" if listing else f"+CMGR: {stat}"
        text = f"{head},{number},{alpha},{stamp}"
        if self._csdh:
            tooa = 145 if message.number.startswith("+") else 129
            dcs = 8 if message.encoding == "ucs2" else 0
            units = len(message.text.encode("utf-16-be")) // 2 if dcs else len(message.text)
            if listing:
                text += f",{tooa},{units}"
            else:
                smsc_kind = 145 if self.smsc.startswith("+") else 129
                text += f',{tooa},{message.first_octet},0,{dcs},"{self._to_te(self.smsc)}",{smsc_kind},{units}'
        return text

    def _read_lines(self, message: StoredSms, listing: bool) -> list[str]:
        if self._cmgf == 1:
            lines = [self._header_text(message, listing), self._to_te(message.text, message.encoding)]
        else:
            alpha = ""
            head = f"+CMGL: {message.index},{message.stat}" if listing else f"+CMGR: {message.stat}"
            lines = [f"{head},{alpha},{message.tpdu_length}", message.pdu]
        if message.stat == 0:
            message.stat = 1
        return lines

    def _x_cmgr(self, suffix: str) -> Result:
        self._need_sim_sms()
        if suffix == "=?":
            return Result()
        args = self._args(suffix)
        return Result(self._read_lines(self._message(args[0]), listing=False))

    def _x_cmgl(self, suffix: str) -> Result:
        self._need_sim_sms()
        if suffix == "=?":
            if self._cmgf == 1:
                return Result(['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")'])
            return Result(["+CMGL: (0-4)"])
        if suffix == "":
            wanted = "REC UNREAD" if self._cmgf == 1 else "0"
        else:
            wanted = self._args(suffix)[0].upper()
        if self._cmgf == 1:
            if wanted != "ALL" and wanted not in TEXT_STAT:
                raise CmsError(305)
            stats = set(STAT_TEXT) if wanted == "ALL" else {TEXT_STAT[wanted]}
        else:
            if wanted not in ("0", "1", "2", "3", "4"):
                raise CmsError(304)
            stats = set(STAT_TEXT) if wanted == "4" else {int(wanted)}
        lines: list[str] = []
        for index in sorted(self._sms_store):
            message = self._sms_store[index]
            if message.stat in stats:
                lines += self._read_lines(message, listing=True)
        return Result(lines)

    def _x_cmgd(self, suffix: str) -> Result:
        self._need_sim_sms()
        if suffix == "=?":
            used = ",".join(map(str, sorted(self._sms_store)))
            return Result([f"+CMGD: ({used}),(0-4)"])
        args = self._args(suffix)
        flag = int(args[1]) if len(args) > 1 and args[1].isdigit() else 0
        if flag == 0:
            self._sms_store.pop(self._message(args[0]).index)
            return Result()
        doomed = {1: {1}, 2: {1, 3}, 3: {1, 2, 3}, 4: {0, 1, 2, 3}}.get(flag)
        if doomed is None:
            raise CmsError(302)
        for index in [i for i, m in self._sms_store.items() if m.stat in doomed]:
            del self._sms_store[index]
        return Result()

    # ---------------------------------------------------------------- sending

    def _x_cmgs(self, suffix: str) -> Result | Prompt:
        if suffix == "=?":
            return Result()
        self._need_sim_sms()
        args = self._args(suffix)
        if self._cmgf == 1:
            if not args[0]:
                raise CmsError(305)
            number = self._from_te(args[0], CmsError(305))
            return Prompt(lambda text: self._send_text(number, text), text_mode=True)
        if not args[0].isdigit() or not 7 <= int(args[0]) <= 164:
            raise CmsError(304)
        length = int(args[0])
        return Prompt(lambda text: self._send_pdu(length, text), text_mode=False)

    def _check_can_send(self) -> None:
        if not self._registered:
            raise CmsError(331)
        if self._sms_fail is not None:
            code, self._sms_fail = self._sms_fail, None
            raise CmsError(code)

    def _next_mr(self) -> int:
        self._mr = (self._mr + 1) % 256
        return self._mr

    def _send_text(self, number: str, raw: str) -> Result:
        text = self._from_te(raw, CmsError(305))
        ucs2 = (self._csmp[3] & 0x0C) == 0x08 or not sms_pdu.is_gsm7(text)
        encoding = "ucs2" if ucs2 else "gsm7"
        units = len(text.encode("utf-16-be")) // 2 if ucs2 else len(sms_pdu.gsm7_septets(text))
        if units > SMS_MAX_UNITS[encoding]:
            raise CmsError(305)
        self._check_can_send()
        mr = self._next_mr()
        try:
            pdu = sms_pdu.encode_submit(number, text, smsc=True, message_reference=mr)[0].hex
        except sms_pdu.PduError:
            raise CmsError(305) from None
        self._sent.append({"number": number, "text": text, "encoding": encoding, "concat": None,
                           "mode": "text", "pdu": pdu, "mr": mr})
        return Result([f"+CMGS: {mr}"])

    def _send_pdu(self, length: int, raw: str) -> Result:
        hex_text = "".join(raw.split())
        try:
            submit = sms_pdu.decode_submit(hex_text, tpdu_length=length)
        except sms_pdu.PduError:
            raise CmsError(304) from None
        self._check_can_send()
        mr = self._next_mr()
        concat = None if submit.concat is None else (submit.concat.reference, submit.concat.total,
                                                     submit.concat.seq)
        self._sent.append({"number": submit.number, "text": submit.text, "encoding": submit.encoding,
                           "concat": concat, "mode": "pdu", "pdu": hex_text.upper(), "mr": mr})
        return Result([f"+CMGS: {mr}"])

    def _cmt_lines(self, deliver, full_pdu: str) -> list[str]:
        if self._cmgf == 1:
            head = f'+CMT: "{self._to_te(deliver.sender)}",{self.SMS_EMPTY_ALPHA},"{scts_text(deliver.timestamp)}"'
            return [head, self._to_te(deliver.text, deliver.encoding)]
        tpdu_length = len(full_pdu) // 2 - 1 - int(full_pdu[:2], 16)
        return [f"+CMT: ,{tpdu_length}", full_pdu]
