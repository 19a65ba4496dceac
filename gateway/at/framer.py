"""Split the bytes of an AT port into text lines. Pure: no I/O, no clock, any chunking.

Any run of CR and LF ends a line (modems frame lines as CR LF, some URCs as CR CR LF), empty
lines are dropped. Bytes decode as UTF-8; bytes that are not valid UTF-8 (line noise such as
0xff) and control characters (NUL, XON/XOFF, ...) are dropped, so garbage glued to a line does
not hide an "OK". Modems speak ASCII here; texts in other alphabets arrive hex-encoded (UCS2).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# The longest line kept whole. +CLAC lists and long +COPS=? answers stay far below 1 KiB; a
# longer run without a line break is noise or a port speaking another protocol (audio, NMEA).
MAX_LINE_BYTES = 2048

_BREAK = re.compile(rb"[\r\n]+")
# Dropped characters: C0 controls, DEL, C1 controls and the mark of an undecodable byte.
_STRIP = {c: None for c in [*range(0x00, 0x20), *range(0x7F, 0xA0), 0xFFFD]}
_STRIP[ord("\t")] = " "


class LineFramer:
    """Feed chunks, get complete lines; at most MAX_LINE_BYTES of a line are ever held."""

    def __init__(self, max_line: int = MAX_LINE_BYTES,
                 on_overflow: Callable[[int], None] | None = None) -> None:
        self.max_line = max_line
        self.overflows = 0                 # lines cut because they had no break in time
        self._on_overflow = on_overflow    # called with the byte count kept of the cut line
        self._pending = bytearray()
        self._discarding = False           # inside the tail of a cut line, until the next break

    def feed(self, data: bytes) -> list[str]:
        """Consume `data`; return the lines it completed (possibly none)."""
        lines: list[str] = []
        parts = _BREAK.split(data)
        last = len(parts) - 1
        for i, part in enumerate(parts):
            complete = i < last
            if i == 0:
                if self._discarding:
                    if complete:
                        self._discarding = False
                    continue
                self._pending += part
                if not complete and len(self._pending) <= self.max_line:
                    continue
                part = bytes(self._pending)
                self._pending.clear()
            if len(part) > self.max_line:
                self._emit(part[: self.max_line], lines)
                self._overflow()
                self._discarding = not complete
            elif complete:
                self._emit(part, lines)
            else:
                self._pending += part
        return lines

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished line held back (never more than max_line)."""
        return len(self._pending)

    def reset(self) -> None:
        """Forget a partial line (after the port was reopened)."""
        self._pending.clear()
        self._discarding = False

    def _emit(self, raw: bytes, lines: list[str]) -> None:
        text = raw.decode("utf-8", "replace").translate(_STRIP).strip()
        if text:
            lines.append(text)

    def _overflow(self) -> None:
        self.overflows += 1
        if self._on_overflow is not None:
            self._on_overflow(self.max_line)
