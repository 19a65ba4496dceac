"""Split the bytes of an AT port into text lines. Pure: no I/O, no clock, any chunking.

Any run of CR and LF ends a line (modems frame lines as CR LF, some URCs as CR CR LF), empty
lines are dropped. Bytes decode as UTF-8; bytes that are not valid UTF-8 (line noise such as
0xff) and control characters (NUL, XON/XOFF, ...) are dropped, so garbage glued to a line does
not hide an "OK". Modems speak ASCII here; texts in other alphabets arrive hex-encoded (UCS2).

Two things the AT session needs besides plain lines:
  - where in a chunk a line ended (lines_with_ends), so that the bytes after a CONNECT can be
    handed over raw to a data-mode consumer instead of being framed;
  - the "> " prompt of AT+CMGS and friends, which has no line break after it: with
    `prompt = True` an unfinished line that reads ">" or "> " is returned as PROMPT.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

# The longest line kept whole. +CLAC lists and long +COPS=? answers stay far below 1 KiB; a
# longer run without a line break is noise or a port speaking another protocol (audio, NMEA).
MAX_LINE_BYTES = 2048
# What lines_with_ends() returns for the body prompt of AT+CMGS / AT+CMGW (27.005 §3.5.1).
PROMPT = "> "

_BREAK = re.compile(rb"[\r\n]+")
# Dropped characters: C0 controls, DEL, C1 controls and the mark of an undecodable byte.
_STRIP = {c: None for c in [*range(0x00, 0x20), *range(0x7F, 0xA0), 0xFFFD]}
_STRIP[ord("\t")] = " "
_CONTROL_BYTES = bytes([*range(0x00, 0x20), 0x7F])
_CR, _LF = 0x0D, 0x0A


class LineFramer:
    """Feed chunks, get complete lines; at most MAX_LINE_BYTES of a line are ever held."""

    def __init__(self, max_line: int = MAX_LINE_BYTES,
                 on_overflow: Callable[[int], None] | None = None) -> None:
        self.max_line = max_line
        self.overflows = 0                 # lines cut because they had no break in time
        self.prompt = False                # report a pending "> " as PROMPT (set by the user)
        self._on_overflow = on_overflow    # called with the byte count kept of the cut line
        self._pending = bytearray()
        self._discarding = False           # inside the tail of a cut line, until the next break

    def feed(self, data: bytes) -> list[str]:
        """Consume `data`; return the lines it completed (possibly none)."""
        return [line for line, _ in self.lines_with_ends(data)]

    def lines_with_ends(self, data: bytes) -> Iterator[tuple[str, int]]:
        """Consume `data` lazily, yielding (line, end) for each line it completes.

        `end` is the offset in `data` just past the line's break (its first CR or LF, and an LF
        right after that CR). A caller may stop iterating after any line: the framer then holds
        nothing, and data[end:] has not been consumed (it is the caller's to handle).
        """
        pos = 0
        size = len(data)
        for match in _BREAK.finditer(data):
            start = match.start()
            end = start + 1
            if data[start] == _CR and end < size and data[end] == _LF:
                end += 1
            part = data[pos:start]
            pos = match.end()
            if self._discarding:               # the break ends the tail of a cut line
                self._discarding = False
                continue
            if self._pending:
                self._pending += part
                part = bytes(self._pending)
                self._pending.clear()
            if len(part) > self.max_line:
                line = _text(part[: self.max_line])
                self._overflow()
            else:
                line = _text(part)
            if line:
                yield line, end
        if self._discarding:
            return
        self._pending += data[pos:]
        if len(self._pending) > self.max_line:
            line = _text(bytes(self._pending[: self.max_line]))
            self._pending.clear()
            self._discarding = True
            self._overflow()
            if line:
                yield line, size
        elif self.prompt and self._pending and _is_prompt(self._pending):
            self._pending.clear()
            yield PROMPT, size

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished line held back (never more than max_line)."""
        return len(self._pending)

    def reset(self) -> None:
        """Forget a partial line (after the port was reopened)."""
        self._pending.clear()
        self._discarding = False

    def _overflow(self) -> None:
        self.overflows += 1
        if self._on_overflow is not None:
            self._on_overflow(self.max_line)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").translate(_STRIP).strip()


def _is_prompt(pending: bytearray) -> bool:
    return bytes(pending).translate(None, _CONTROL_BYTES).strip(b" ") == b">"
