"""DLE shielding of V.253 voice streams: decode modem → host bytes into audio and events, and
escape host → modem audio with the stream terminators (shared/docs/modems.md §5.6, §5.7).

Modem → host, during +VRX/+VTR (and for events also in voice command state):
  <DLE><DLE>  one literal 0x10 sample byte        <DLE><SUB>  two literal 0x10 bytes
  <DLE><ETX>  end of the voice stream             <DLE>x      event x (EVENT_CODES)
DTMF comes either bare (`<DLE>5`, USR) or shielded (`<DLE>/<DLE>5<DLE>5<DLE>~`, Conexant and
MultiTech: the digit repeats every ~70 ms while the key is held); a shielded bracket yields one
digit. Pure: no I/O, no clock; any chunking of the input gives the same result.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

DLE = 0x10
ETX = 0x03
SUB = 0x1A
CAN = 0x18
NUL = 0x00

DTMF_DIGITS = "0123456789*#ABCD"
SHIELD_START = "/"
SHIELD_END = "~"


class EventKind(enum.StrEnum):
    DTMF = "dtmf"
    ANSWER_TONE = "answer_tone"            # a: 2100 Hz data/fax answer tone
    BUSY = "busy"                          # b, K: busy or reorder tone: far end hung up, or busy
    FAX_CALLING = "fax_calling"            # c, m: fax calling tone (1100 Hz)
    DIAL_TONE = "dial_tone"                # d, i: line idle, far end gone (USR also sends it
    #                                        spuriously while playing/recording; mgetty ignores it)
    DATA_CALLING = "data_calling"          # e, f: data calling tone / Bell answer tone
    INVALID_FORMAT = "invalid_format"      # E
    HANDSET_ON_HOOK = "handset_on_hook"    # h, p
    HANDSET_OFF_HOOK = "handset_off_hook"  # H, P: an extension picked up
    LOOP_BREAK = "loop_break"              # l: loop-current interruption (possible hang-up)
    LOOP_POLARITY = "loop_polarity"        # L: loop-current polarity reversal
    SIT = "sit"                            # J: special information tone (number unobtainable)
    OVERRUN = "overrun"                    # o: modem's receive buffer overran (host too slow)
    QUIET = "quiet"                        # q: voice, then silence longer than +VSD
    SILENCE = "silence"                    # s: no voice at all within +VSD: presumed hang-up
    XON = "xon"                            # Q
    XOFF = "xoff"                          # S
    RINGBACK = "ringback"                  # r
    RING = "ring"                          # R
    TDD = "tdd"                            # t
    TIMING_MARK = "timing_mark"            # T
    UNDERRUN = "underrun"                  # u: modem's transmit buffer ran dry (host too slow)
    VOICE = "voice"                        # v, V
    CALL_WAITING = "call_waiting"          # w
    LOST_DATA = "lost_data"                # Y
    BONG = "bong"                          # $
    END_OF_STREAM = "end_of_stream"        # <ETX>, only from a decoder that does not stop at it
    UNKNOWN = "unknown"


EVENT_CODES: dict[str, EventKind] = {
    "a": EventKind.ANSWER_TONE,
    "b": EventKind.BUSY, "K": EventKind.BUSY,
    "c": EventKind.FAX_CALLING, "m": EventKind.FAX_CALLING,
    "d": EventKind.DIAL_TONE, "i": EventKind.DIAL_TONE,
    "e": EventKind.DATA_CALLING, "f": EventKind.DATA_CALLING,
    "E": EventKind.INVALID_FORMAT,
    "h": EventKind.HANDSET_ON_HOOK, "p": EventKind.HANDSET_ON_HOOK,
    "H": EventKind.HANDSET_OFF_HOOK, "P": EventKind.HANDSET_OFF_HOOK,
    "l": EventKind.LOOP_BREAK,
    "L": EventKind.LOOP_POLARITY,
    "J": EventKind.SIT,
    "o": EventKind.OVERRUN,
    "q": EventKind.QUIET,
    "s": EventKind.SILENCE,
    "Q": EventKind.XON,
    "S": EventKind.XOFF,
    "r": EventKind.RINGBACK,
    "R": EventKind.RING,
    "t": EventKind.TDD,
    "T": EventKind.TIMING_MARK,
    "u": EventKind.UNDERRUN,
    "v": EventKind.VOICE, "V": EventKind.VOICE,
    "w": EventKind.CALL_WAITING,
    "Y": EventKind.LOST_DATA,
    "$": EventKind.BONG,
}
EVENT_CODES.update({digit: EventKind.DTMF for digit in DTMF_DIGITS})

# Events that say the far end is (probably) gone; the caller decides with its own timeouts.
HANGUP_HINTS = frozenset({EventKind.BUSY, EventKind.DIAL_TONE, EventKind.SILENCE,
                          EventKind.LOOP_BREAK, EventKind.SIT})


@dataclass(frozen=True)
class DleEvent:
    """One shielded code from the modem. `at` is the number of audio bytes the same feed() call
    returned before this event (where in the stream it happened)."""

    kind: EventKind
    code: str                  # the character after <DLE> ("5", "b", "\x03", ...)
    at: int = 0

    @property
    def digit(self) -> str | None:
        return self.code if self.kind is EventKind.DTMF else None


class Decoded(NamedTuple):
    audio: bytes               # unescaped sample bytes
    events: list[DleEvent]
    rest: bytes | None         # bytes after <DLE><ETX> (hand them to the AT line parser); None
    #                            while the stream goes on
    end: int | None = None     # offset in the fed chunk just past <DLE><ETX> (what a data-mode
    #                            consumer of AtSession.start_data returns); None while it goes on


class DleDecoder:
    """Incremental modem → host decoder.

    stop_at_etx=True (a +VRX/+VTR stream): <DLE><ETX> ends the stream, feed() returns the bytes
    after it as `rest` and every later feed() returns all its input as `rest`; reset() re-arms.
    stop_at_etx=False (voice command state, in front of the AT line framer): <DLE><ETX> is just an
    END_OF_STREAM event, and `audio` is the plain text with the shielded codes taken out.
    """

    def __init__(self, *, stop_at_etx: bool = True) -> None:
        self.stop_at_etx = stop_at_etx
        self.reset()

    def reset(self) -> None:
        self.ended = False
        self.unknown_codes = 0             # <DLE>x codes outside EVENT_CODES seen so far
        self._pending_dle = False          # the last byte fed was an unpaired <DLE>
        self._shielded = False             # inside a /…~ DTMF bracket
        self._shield_digit = False         # the bracket already produced its digit

    @property
    def in_dtmf_bracket(self) -> bool:
        return self._shielded

    def feed(self, data: bytes) -> Decoded:
        if self.ended:
            return Decoded(b"", [], bytes(data), 0)
        audio = bytearray()
        events: list[DleEvent] = []
        pos = 0
        size = len(data)
        if self._pending_dle and size:
            self._pending_dle = False
            pos = 1
            if self._code(data[0], audio, events):
                return Decoded(bytes(audio), events, bytes(data[1:]), 1)
        while pos < size:
            dle = data.find(DLE, pos)
            if dle < 0:
                audio += data[pos:]
                break
            audio += data[pos:dle]
            if dle + 1 >= size:
                self._pending_dle = True
                break
            pos = dle + 2
            if self._code(data[dle + 1], audio, events):
                return Decoded(bytes(audio), events, bytes(data[pos:]), pos)
        return Decoded(bytes(audio), events, None)

    def _code(self, byte: int, audio: bytearray, events: list[DleEvent]) -> bool:
        """Handle the byte after a <DLE>; True when it ended the stream."""
        if byte == DLE:
            audio.append(DLE)
            return False
        if byte == SUB:
            audio += b"\x10\x10"
            return False
        code = chr(byte)
        if byte == ETX:
            self._shielded = False
            if self.stop_at_etx:
                self.ended = True
                return True
            events.append(DleEvent(EventKind.END_OF_STREAM, code, len(audio)))
            return False
        if code == SHIELD_START:
            self._shielded, self._shield_digit = True, False
            return False
        if code == SHIELD_END:
            self._shielded = False
            return False
        kind = EVENT_CODES.get(code, EventKind.UNKNOWN)
        if kind is EventKind.DTMF and self._shielded:
            if self._shield_digit:
                return False               # the same key, still held: reported once
            self._shield_digit = True
        if kind is EventKind.UNKNOWN:
            self.unknown_codes += 1
        events.append(DleEvent(kind, code, len(audio)))
        return False


def escape(audio: bytes) -> bytes:
    """Host → modem audio with every 0x10 doubled."""
    return bytes(audio).replace(b"\x10", b"\x10\x10")


class DleEncoder:
    """Host → modem: escaped audio and the stream terminators.

    dle_count is how many <DLE> bytes precede a terminator: 1 by the standard; early callattendant
    needed 3 for a Zoom 3095 (<DLE><DLE><DLE><ETX>, read by the modem as a literal 0x10 followed by
    <DLE><ETX>), so it is a per-device setting.
    """

    def __init__(self, dle_count: int = 1) -> None:
        if dle_count not in (1, 3):
            raise ValueError(f"dle_count {dle_count}: use 1 (standard) or 3 (some Zoom units); "
                             "2 would be read as a literal 0x10 sample")
        self.dle_count = dle_count
        self._prefix = bytes([DLE]) * dle_count

    escape = staticmethod(escape)

    def _terminator(self, code: int) -> bytes:
        return self._prefix + bytes([code])

    def end_of_stream(self) -> bytes:
        """<DLE><ETX>: play out what is buffered, then OK (ends +VTX)."""
        return self._terminator(ETX)

    def abort_receive(self) -> bytes:
        """<DLE>!: stop +VRX; the modem answers <DLE><ETX> then OK."""
        return self._terminator(ord("!"))

    def end_duplex(self) -> bytes:
        """<DLE>^: leave +VTR; the modem answers <DLE><ETX> then OK."""
        return self._terminator(ord("^"))

    def flush(self) -> bytes:
        """<DLE><CAN>: discard the modem's transmit buffer."""
        return self._terminator(CAN)

    def keepalive(self) -> bytes:
        """<DLE><NUL>: a no-op that refreshes the modem's inactivity timer."""
        return self._terminator(NUL)


class DigitDebouncer:
    """Drop a bare DTMF digit that repeats the previous one within `hold` seconds: the USR 5637
    sometimes reports one key press as <DLE>5<DLE>5. Time is passed in, not read."""

    def __init__(self, hold: float = 0.15) -> None:
        self.hold = hold
        self._last: tuple[str, float] | None = None

    def accept(self, digit: str, now: float) -> bool:
        last = self._last
        self._last = (digit, now)
        return not (last is not None and last[0] == digit and now - last[1] < self.hold)


def describe(data: bytes) -> str:
    """Bytes with control characters spelled as <DLE>, <ETX>, ... for logs and test messages."""
    names = {DLE: "<DLE>", ETX: "<ETX>", SUB: "<SUB>", CAN: "<CAN>", NUL: "<NUL>",
             0x0D: "<CR>", 0x0A: "<LF>"}
    out = []
    for byte in data:
        if byte in names:
            out.append(names[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"<{byte:02x}>")
    return "".join(out)
