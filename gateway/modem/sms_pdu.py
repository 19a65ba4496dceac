"""SMS PDU codec (3GPP 23.038 / 23.040): SMS-SUBMIT and SMS-DELIVER, GSM-7 and UCS-2, multipart.

Pure: bytes and strings in, bytes and strings out. No library handles text outside the Basic
Multilingual Plane (emoji), hence this codec (shared/docs/libraries.md §8). UCS-2 here means
UTF-16BE: a character above U+FFFF travels as a surrogate pair and a split never cuts one; a GSM-7
split never cuts an escape sequence. Malformed input raises PduError naming the field and octet.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

Encoding = Literal["gsm7", "ucs2"]

# GSM 03.38 default alphabet; index = septet value. 0x1B is the escape to the extension table.
GSM7_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
              "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
                  0x3E: "]", 0x40: "|", 0x65: "€"}
ESC = 0x1B
_TO_BASIC = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != ESC}
_TO_EXTENSION = {ch: code for code, ch in GSM7_EXTENSION.items()}

SINGLE_LIMIT = {"gsm7": 160, "ucs2": 70}       # septets / UTF-16 code units in one SMS
# Per part of a concatenated SMS: 140 octets less the UDH (6 octets with an 8-bit reference,
# 7 with a 16-bit one); GSM-7 counts the header in whole septets.
PART_LIMIT = {("gsm7", False): 153, ("gsm7", True): 152, ("ucs2", False): 67, ("ucs2", True): 66}
MAX_PARTS = 255

_IEI_CONCAT8 = 0x00
_IEI_CONCAT16 = 0x08
_SEMI_OCTET = "0123456789*#abc"
_NUMBER = re.compile(r"\+?[0-9*#]*")
_HEX = re.compile(r"[0-9A-Fa-f]*")


class PduError(ValueError):
    """A PDU (or a text/number to encode) that cannot be handled; the message names the place."""


@dataclass(frozen=True)
class Concat:
    """Concatenation header of one part: `seq` of `total`, grouped by `reference`."""

    reference: int
    total: int
    seq: int


@dataclass(frozen=True)
class SubmitPdu:
    """One SMS-SUBMIT ready for AT+CMGS=<tpdu_length> in PDU mode."""

    hex: str            # what to write after the prompt (SMSC prefix included when asked for)
    tpdu_length: int    # octets without the SMSC prefix: the <length> AT+CMGS wants


@dataclass(frozen=True)
class Deliver:
    """A decoded SMS-DELIVER (one part)."""

    sender: str
    text: str
    timestamp: datetime
    concat: Concat | None
    encoding: str = "gsm7"             # gsm7, ucs2 or 8bit (then text is the octets as Latin-1)
    message_class: int | None = None   # 0 (flash) .. 3, None when the DCS gives none
    smsc: str = ""
    pid: int = 0


@dataclass(frozen=True)
class Submit:
    """A decoded SMS-SUBMIT (one part), as the network side sees it."""

    number: str
    text: str
    concat: Concat | None
    encoding: str = "gsm7"
    message_reference: int = 0
    validity_minutes: int | None = None   # relative TP-VP only
    smsc: str | None = None               # None: no SMSC prefix, "": the SIM's default SMSC


# -- text ------------------------------------------------------------------------------------

def is_gsm7(text: str) -> bool:
    """True if every character is in the GSM 03.38 default alphabet or its extension table."""
    return all(ch in _TO_BASIC or ch in _TO_EXTENSION for ch in text)


def _cost(ch: str, encoding: Encoding) -> int:
    if encoding == "gsm7":
        return 2 if ch in _TO_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def split_text(text: str, *, wide_reference: bool = False) -> tuple[Encoding, list[str]]:
    """The encoding for `text` and its parts: one if it fits one SMS, else concatenation parts.

    GSM-7 when every character has a GSM-7 code, else UCS-2. Limits are 160 septets / 70 code
    units for one SMS, 153 / 67 per part (152 / 66 with a 16-bit reference). An extension
    character (escape + code) and a surrogate pair always stay within one part.
    """
    for i, ch in enumerate(text):
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise PduError(f"text has a lone surrogate U+{ord(ch):04X} at index {i}")
    encoding: Encoding = "gsm7" if is_gsm7(text) else "ucs2"
    if sum(_cost(ch, encoding) for ch in text) <= SINGLE_LIMIT[encoding]:
        return encoding, [text]
    limit = PART_LIMIT[(encoding, wide_reference)]
    parts: list[str] = []
    start = used = 0
    for i, ch in enumerate(text):
        cost = _cost(ch, encoding)
        if used + cost > limit:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    if len(parts) > MAX_PARTS:
        raise PduError(f"text needs {len(parts)} parts; a concatenated SMS has at most {MAX_PARTS}")
    return encoding, parts


def gsm7_septets(text: str) -> list[int]:
    """Septet values of `text` (extension characters become ESC + code)."""
    out: list[int] = []
    for i, ch in enumerate(text):
        code = _TO_BASIC.get(ch)
        if code is not None:
            out.append(code)
        elif ch in _TO_EXTENSION:
            out += (ESC, _TO_EXTENSION[ch])
        else:
            raise PduError(f"character {ch!r} at index {i} has no GSM-7 code")
    return out


def gsm7_text(septets: list[int]) -> str:
    """Text of septet values; an unknown escape shows the basic character, a trailing ESC nothing."""
    out: list[str] = []
    escaped = False
    for s in septets:
        if escaped:
            out.append(GSM7_EXTENSION.get(s) or (" " if s == ESC else GSM7_BASIC[s]))
            escaped = False
        elif s == ESC:
            escaped = True
        else:
            out.append(GSM7_BASIC[s])
    return "".join(out)


def pack_septets(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack 7-bit values LSB first, after `fill_bits` zero bits (alignment after a UDH)."""
    value = 0
    for i, s in enumerate(septets):
        value |= s << (fill_bits + 7 * i)
    return value.to_bytes((fill_bits + 7 * len(septets) + 7) // 8, "little")


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    value = int.from_bytes(data, "little")
    return [(value >> (fill_bits + 7 * i)) & 0x7F for i in range(count)]


def _utf16(data: bytes, keep_edge_surrogates: bool) -> str:
    text = data.decode("utf-16-be", "surrogatepass")
    return text if keep_edge_surrogates else fix_surrogates(text)


def fix_surrogates(text: str) -> str:
    """Join surrogate pairs (split across parts by some phones); a lone one becomes U+FFFD."""
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


# -- reading ---------------------------------------------------------------------------------

class _Reader:
    """Octets of a PDU with a cursor; running out names the field being read."""

    def __init__(self, hex_text: str, what: str) -> None:
        text = "".join(hex_text.split())
        if _HEX.fullmatch(text) is None:
            pos = next(i for i, ch in enumerate(text) if ch not in "0123456789abcdefABCDEF")
            raise PduError(f"{what}: not hexadecimal at character {pos} ({text[pos]!r})")
        if len(text) % 2:
            raise PduError(f"{what}: odd number of hex digits ({len(text)})")
        self.data = bytes.fromhex(text)
        self.pos = 0
        self.what = what

    def take(self, n: int, field: str) -> bytes:
        if self.pos + n > len(self.data):
            raise PduError(f"{self.what}: {field} needs {n} octet(s) at octet {self.pos}, "
                           f"but the PDU has {len(self.data)} octets")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def octet(self, field: str) -> int:
        return self.take(1, field)[0]

    def error(self, field: str, problem: str, at: int | None = None) -> PduError:
        return PduError(f"{self.what}: {field} at octet {self.pos - 1 if at is None else at}: {problem}")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise PduError(f"{self.what}: {len(self.data) - self.pos} octet(s) after the user data "
                           f"(from octet {self.pos})")


def _semi_octets(data: bytes, digits: int, rd: _Reader, field: str, start: int) -> str:
    out = []
    for i in range(digits):
        nibble = (data[i // 2] >> (4 * (i % 2))) & 0x0F
        if nibble == 0x0F:
            raise rd.error(field, f"filler F inside the {digits} digits", start + i // 2)
        out.append(_SEMI_OCTET[nibble])
    return "".join(out)


def _read_smsc(rd: _Reader) -> str:
    n = rd.octet("SMSC length")
    if n == 0:
        return ""
    start = rd.pos
    data = rd.take(n, "SMSC address")
    toa, digits = data[0], data[1:]
    count = 2 * len(digits) - (1 if digits and digits[-1] >> 4 == 0x0F else 0)
    number = _semi_octets(digits, count, rd, "SMSC address", start + 1)
    return ("+" if toa & 0x70 == 0x10 else "") + number


def _read_address(rd: _Reader, field: str) -> str:
    digits = rd.octet(f"{field} length")
    if digits > 20:
        raise rd.error(f"{field} length", f"{digits} semi-octets, at most 20 allowed")
    toa = rd.octet(f"{field} type")
    start = rd.pos
    data = rd.take((digits + 1) // 2, field)
    if toa & 0x70 == 0x50:   # alphanumeric, GSM-7 packed
        return gsm7_text(unpack_septets(data, digits * 4 // 7))
    number = _semi_octets(data, digits, rd, field, start)
    return ("+" if toa & 0x70 == 0x10 and number else "") + number


def _read_scts(rd: _Reader, field: str = "TP-SCTS") -> datetime:
    start = rd.pos
    raw = rd.take(7, field)
    values = []
    for i, b in enumerate(raw[:6]):
        lo, hi = b & 0x0F, b >> 4
        if lo > 9 or hi > 9:
            raise rd.error(field, f"octet {b:02X} is not two decimal digits", start + i)
        values.append(lo * 10 + hi)
    tz = raw[6]
    if tz & 0x07 > 9 or tz >> 4 > 9:
        raise rd.error(field, f"time zone octet {tz:02X} is not decimal", start + 6)
    quarters = (tz & 0x07) * 10 + (tz >> 4)
    if tz & 0x08:
        quarters = -quarters
    yy, month, day, hour, minute, second = values
    year = 2000 + yy if yy < 80 else 1900 + yy    # 23.040 gives two digits; 1980..2079
    try:
        return datetime(year, month, day, hour, minute, second,
                        tzinfo=timezone(timedelta(minutes=15 * quarters)))
    except ValueError as exc:
        raise PduError(f"{rd.what}: {field} at octet {start}: {exc}") from None


def _parse_dcs(dcs: int, rd: _Reader) -> tuple[str, int | None]:
    """(alphabet, message class) of a TP-DCS octet (23.038 §4)."""
    group = dcs >> 4
    if group <= 0x7:                         # general data coding (incl. automatic deletion)
        if dcs & 0x20:
            raise rd.error("TP-DCS", f"{dcs:02X}: compressed text is not supported")
        alphabet = ("gsm7", "8bit", "ucs2", "gsm7")[(dcs >> 2) & 3]
        return alphabet, (dcs & 3 if dcs & 0x10 else None)
    if group in (0xC, 0xD):                  # message waiting indication, GSM-7
        return "gsm7", None
    if group == 0xE:                         # message waiting indication, UCS-2
        return "ucs2", None
    if group == 0xF:                         # data coding / message class
        return ("8bit" if dcs & 0x04 else "gsm7"), dcs & 3
    return "gsm7", None                      # reserved groups 8..B: treat as default alphabet


def _read_user_data(rd: _Reader, udhi: bool, alphabet: str,
                    keep_edges: bool) -> tuple[str, Concat | None]:
    udl = rd.octet("TP-UDL")
    start = rd.pos
    if alphabet == "gsm7":
        if udl > 160:
            raise rd.error("TP-UDL", f"{udl} septets, at most 160")
        body = rd.take((udl * 7 + 7) // 8, "TP-UD")
    else:
        if udl > 140:
            raise rd.error("TP-UDL", f"{udl} octets, at most 140")
        body = rd.take(udl, "TP-UD")
    concat = None
    header_octets = 0
    if udhi:
        if not body:
            raise rd.error("TP-UDH", "header indicated but user data is empty", start)
        header_octets = body[0] + 1
        if header_octets > len(body):
            raise rd.error("TP-UDHL", f"header of {body[0]} octets exceeds the user data", start + 1)
        concat = _parse_udh(body[1:header_octets], rd, start + 1)
    if alphabet == "gsm7":
        header_septets = (header_octets * 8 + 6) // 7
        if header_septets > udl:
            raise rd.error("TP-UDHL", f"header of {header_octets} octets exceeds {udl} septets", start + 1)
        fill = header_septets * 7 - header_octets * 8
        text = gsm7_text(unpack_septets(body[header_octets:], udl - header_septets, fill))
    elif alphabet == "ucs2":
        payload = body[header_octets:]
        if len(payload) % 2:
            raise rd.error("TP-UD", f"UCS-2 text of odd length {len(payload)}", start + header_octets)
        text = _utf16(payload, keep_edges and concat is not None)
    else:
        text = body[header_octets:].decode("latin-1")
    return text, concat


def _parse_udh(header: bytes, rd: _Reader, start: int) -> Concat | None:
    concat = None
    i = 0
    while i < len(header):
        if i + 2 > len(header):
            raise rd.error("TP-UDH", "information element cut short", start + i)
        iei, length = header[i], header[i + 1]
        value = header[i + 2:i + 2 + length]
        if len(value) < length:
            raise rd.error("TP-UDH", f"element {iei:02X} claims {length} octets, "
                           f"{len(value)} left", start + i)
        if iei == _IEI_CONCAT8 and length == 3:
            ref, total, seq = value
        elif iei == _IEI_CONCAT16 and length == 4:
            ref, total, seq = (value[0] << 8) | value[1], value[2], value[3]
        else:
            ref = None
        # 23.040 §9.2.3.24.1: a zero or out-of-range number voids the element, not the SMS
        if ref is not None and 1 <= seq <= total:
            concat = Concat(ref, total, seq)
        i += 2 + length
    return concat


def decode_deliver(hex: str, *, keep_edge_surrogates: bool = True) -> Deliver:
    """Decode an SMS-DELIVER with its SMSC prefix (as +CMGR/+CMGL/+CMT give it in PDU mode).

    A UCS-2 part of a concatenated message keeps lone surrogates (some phones split a pair across
    parts) for Reassembler to join; otherwise a lone surrogate becomes U+FFFD.
    """
    rd = _Reader(hex, "SMS-DELIVER")
    smsc = _read_smsc(rd)
    first = rd.octet("first octet")
    if first & 0x03 != 0x00:
        raise rd.error("first octet", f"{first:02X} has TP-MTI {first & 3}, not SMS-DELIVER (0)")
    sender = _read_address(rd, "TP-OA")
    pid = rd.octet("TP-PID")
    alphabet, message_class = _parse_dcs(rd.octet("TP-DCS"), rd)
    timestamp = _read_scts(rd)
    text, concat = _read_user_data(rd, bool(first & 0x40), alphabet, keep_edge_surrogates)
    rd.end()
    return Deliver(sender, text, timestamp, concat, alphabet, message_class, smsc, pid)


def decode_submit(hex: str, *, tpdu_length: int | None = None) -> Submit:
    """Decode an SMS-SUBMIT as written after AT+CMGS.

    With `tpdu_length` (the AT+CMGS=<length>), the SMSC prefix is present exactly when the PDU is
    longer than that; without it, a prefix is assumed (the usual case).
    """
    rd = _Reader(hex, "SMS-SUBMIT")
    smsc: str | None = ""
    if tpdu_length is not None and len(rd.data) == tpdu_length:
        smsc = None
    else:
        smsc = _read_smsc(rd)
        if tpdu_length is not None and len(rd.data) - rd.pos != tpdu_length:
            raise PduError(f"SMS-SUBMIT: {len(rd.data)} octets with a {rd.pos}-octet SMSC prefix "
                           f"do not match the announced TPDU length {tpdu_length}")
    first = rd.octet("first octet")
    if first & 0x03 != 0x01:
        raise rd.error("first octet", f"{first:02X} has TP-MTI {first & 3}, not SMS-SUBMIT (1)")
    mr = rd.octet("TP-MR")
    number = _read_address(rd, "TP-DA")
    rd.octet("TP-PID")
    alphabet, _ = _parse_dcs(rd.octet("TP-DCS"), rd)
    vpf = (first >> 3) & 3
    validity = None
    if vpf == 2:
        validity = relative_validity_minutes(rd.octet("TP-VP"))
    elif vpf in (1, 3):
        rd.take(7, "TP-VP")
    text, concat = _read_user_data(rd, bool(first & 0x40), alphabet, True)
    rd.end()
    return Submit(number, text, concat, alphabet, mr, validity, smsc)


# -- writing ---------------------------------------------------------------------------------

def _bcd(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    table = _SEMI_OCTET + "F"
    return bytes(table.index(digits[i]) | (table.index(digits[i + 1]) << 4)
                 for i in range(0, len(digits), 2))


def _check_number(number: str, field: str) -> tuple[str, int]:
    if not _NUMBER.fullmatch(number):
        bad = next(i for i, ch in enumerate(number)
                   if ch not in "0123456789*#" and not (i == 0 and ch == "+"))
        raise PduError(f"{field} {number!r}: character {number[bad]!r} at index {bad} "
                       "is not a digit, * or #")
    digits = number.removeprefix("+")
    if len(digits) > 20:
        raise PduError(f"{field} {number!r}: {len(digits)} digits, at most 20")
    return digits, (0x91 if number.startswith("+") else 0x81)


def _address(number: str, field: str) -> bytes:
    """TP-DA / TP-OA: numeric, or alphanumeric (GSM-7, up to 11 characters) for a sender name."""
    if _NUMBER.fullmatch(number):
        digits, toa = _check_number(number, field)
        return bytes((len(digits), toa)) + _bcd(digits)
    septets = gsm7_septets(number)
    if len(septets) > 11:
        raise PduError(f"{field} {number!r}: alphanumeric address of {len(septets)} septets, at most 11")
    packed = pack_septets(septets)
    return bytes((math.ceil(len(septets) * 7 / 4), 0xD0)) + packed


def _smsc_prefix(smsc: bool | str) -> bytes:
    if smsc is False:
        return b""
    if smsc is True or smsc == "":
        return b"\x00"
    digits, toa = _check_number(smsc, "SMSC")
    body = bytes((toa,)) + _bcd(digits)
    return bytes((len(body),)) + body


def relative_validity(minutes: int) -> int:
    """The TP-VP octet (relative format) for at least `minutes` minutes (23.040 §9.2.3.12.1)."""
    if minutes < 1 or minutes > 63 * 7 * 1440:
        raise PduError(f"validity {minutes} min: relative TP-VP covers 5 min to 63 weeks")
    if minutes <= 720:
        return math.ceil(minutes / 5) - 1
    if minutes <= 1440:
        return 143 + math.ceil((minutes - 720) / 30)
    days = math.ceil(minutes / 1440)
    if days <= 30:
        return 166 + days
    return 192 + math.ceil(minutes / (7 * 1440))


def relative_validity_minutes(vp: int) -> int:
    if vp <= 143:
        return (vp + 1) * 5
    if vp <= 167:
        return 720 + (vp - 143) * 30
    if vp <= 196:
        return (vp - 166) * 1440
    return (vp - 192) * 7 * 1440


def _user_data(part: str, encoding: Encoding, udh: bytes) -> tuple[int, bytes]:
    """(TP-UDL, TP-UD) of one part with its header (b"" for none)."""
    header = bytes((len(udh),)) + udh if udh else b""
    if encoding == "ucs2":
        body = header + part.encode("utf-16-be")
        return len(body), body
    header_septets = (len(header) * 8 + 6) // 7
    septets = gsm7_septets(part)
    packed = pack_septets(septets, header_septets * 7 - len(header) * 8)
    return header_septets + len(septets), header + packed


def _concat_udh(reference: int, total: int, seq: int) -> bytes:
    if reference > 0xFF:
        return bytes((_IEI_CONCAT16, 4, reference >> 8, reference & 0xFF, total, seq))
    return bytes((_IEI_CONCAT8, 3, reference, total, seq))


def _parts(text: str, reference: int) -> Iterator[tuple[Encoding, str, bytes]]:
    if not 0 <= reference <= 0xFFFF:
        raise PduError(f"concatenation reference {reference} outside 0..65535")
    encoding, parts = split_text(text, wide_reference=reference > 0xFF)
    for seq, part in enumerate(parts, 1):
        udh = _concat_udh(reference, len(parts), seq) if len(parts) > 1 else b""
        yield encoding, part, udh


def encode_submit(number: str, text: str, *, reference: int = 0, smsc: bool | str = True,
                  validity_minutes: int | None = None,
                  message_reference: int = 0) -> list[SubmitPdu]:
    """SMS-SUBMIT PDUs for `text` to `number`: one, or one per concatenation part.

    reference: the concatenation reference shared by the parts (0..255 gives an 8-bit UDH,
    256..65535 a 16-bit one). smsc: True prefixes 00 (the SIM's SMSC), False no prefix, a number
    that SMSC. validity_minutes: relative TP-VP, rounded up to the next value the format has.
    message_reference: TP-MR (00 lets the modem choose).
    """
    if not 0 <= message_reference <= 0xFF:
        raise PduError(f"TP-MR {message_reference} outside 0..255")
    number = "".join(number.split())
    digits, _ = _check_number(number, "destination")
    if not digits:
        raise PduError(f"destination {number!r} has no digits")
    prefix = _smsc_prefix(smsc)
    vp = b"" if validity_minutes is None else bytes((relative_validity(validity_minutes),))
    out = []
    for encoding, part, udh in _parts(text, reference):
        first = 0x01 | (0x10 if vp else 0) | (0x40 if udh else 0)
        udl, ud = _user_data(part, encoding, udh)
        tpdu = (bytes((first, message_reference)) + _address(number, "destination")
                + bytes((0x00, 0x08 if encoding == "ucs2" else 0x00)) + vp + bytes((udl,)) + ud)
        out.append(SubmitPdu((prefix + tpdu).hex().upper(), len(tpdu)))
    return out


def _scts(ts: datetime) -> bytes:
    offset = ts.utcoffset() or timedelta(0)
    quarters, rest = divmod(int(offset.total_seconds()), 15 * 60)
    if rest:
        raise PduError(f"timestamp {ts.isoformat()}: UTC offset is not a whole quarter hour")
    if not 1980 <= ts.year <= 2079:
        raise PduError(f"timestamp {ts.isoformat()}: year outside 1980..2079")
    digits = "".join(f"{v:02d}" for v in (ts.year % 100, ts.month, ts.day, ts.hour, ts.minute, ts.second))
    out = _bcd(digits)
    q = abs(quarters)
    if q > 79:
        raise PduError(f"timestamp {ts.isoformat()}: UTC offset beyond 19:45")
    tz = (q // 10) | ((q % 10) << 4) | (0x08 if quarters < 0 else 0)
    return out + bytes((tz,))


def encode_deliver(sender: str, text: str, timestamp: datetime, *, reference: int = 0) -> list[str]:
    """SMS-DELIVER PDUs (hex, SMSC prefix 00) as a modem would list them; for the emulator.

    `sender` is a number (+ for international) or an alphanumeric name of up to 11 GSM-7 characters.
    """
    oa = _address(sender, "sender")
    scts = _scts(timestamp)
    out = []
    for encoding, part, udh in _parts(text, reference):
        first = 0x04 | (0x40 if udh else 0)     # SMS-DELIVER, no more messages waiting
        udl, ud = _user_data(part, encoding, udh)
        pdu = (b"\x00" + bytes((first,)) + oa + bytes((0x00, 0x08 if encoding == "ucs2" else 0x00))
               + scts + bytes((udl,)) + ud)
        out.append(pdu.hex().upper())
    return out


# -- reassembly ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reassembled:
    """A whole message, or what arrived of it when waiting ended (`missing` part numbers)."""

    sender: str
    text: str
    timestamp: datetime
    parts: int
    missing: tuple[int, ...] = ()
    reference: int | None = None      # the concatenation reference; None for a single SMS


@dataclass
class _Group:
    reference: int
    first_seen: float
    total: int
    parts: dict[int, Deliver]


class Reassembler:
    """Collects concatenation parts per (sender, reference, total) and hands out whole messages.

    Bounded: a group waits at most `max_wait` seconds after its first part, and at most
    `max_parts` parts are held in all; past either bound the oldest groups come out incomplete
    (never silently dropped). `now` is any monotonic reading the caller keeps.
    """

    def __init__(self, *, max_wait: float = 900.0, max_parts: int = 1000) -> None:
        self.max_wait = max_wait
        self.max_parts = max_parts
        self._groups: dict[tuple[str, int, int], _Group] = {}

    @property
    def stored(self) -> int:
        return sum(len(g.parts) for g in self._groups.values())

    def next_deadline(self) -> float | None:
        """When the oldest waiting group expires, or None when nothing waits."""
        if not self._groups:
            return None
        return min(g.first_seen for g in self._groups.values()) + self.max_wait

    def add(self, part: Deliver, now: float) -> list[Reassembled]:
        """Store one part; returns messages completed (or pushed out incomplete) by it."""
        out = self.expire(now)
        c = part.concat
        if c is None or c.total == 1:
            out.append(Reassembled(part.sender, fix_surrogates(part.text), part.timestamp, 1))
            return out
        key = (part.sender, c.reference, c.total)
        group = self._groups.setdefault(key, _Group(c.reference, now, c.total, {}))
        group.parts.setdefault(c.seq, part)        # a repeated part keeps the first copy
        if len(group.parts) == group.total:
            del self._groups[key]
            out.append(_join(group))
        while self.stored > self.max_parts:
            oldest = min(self._groups, key=lambda k: self._groups[k].first_seen)
            out.append(_join(self._groups.pop(oldest)))
        return out

    def expire(self, now: float) -> list[Reassembled]:
        """Groups that waited longer than max_wait, as incomplete messages."""
        late = [k for k, g in self._groups.items() if now - g.first_seen >= self.max_wait]
        return [_join(self._groups.pop(k)) for k in late]

    def flush(self) -> list[Reassembled]:
        """Everything still waiting, incomplete (at shutdown)."""
        groups, self._groups = self._groups, {}
        return [_join(g) for g in groups.values()]


def _join(group: _Group) -> Reassembled:
    seqs = sorted(group.parts)
    first = group.parts[seqs[0]]
    text = fix_surrogates("".join(group.parts[s].text for s in seqs))
    missing = tuple(s for s in range(1, group.total + 1) if s not in group.parts)
    return Reassembled(first.sender, text, first.timestamp, group.total, missing, group.reference)
