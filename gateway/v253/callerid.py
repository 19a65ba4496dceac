"""Formatted caller ID (`AT+VCID=1`) from the lines between rings, and a ring counter.

The modem prints tag lines between the first and second RING (shared/docs/modems.md §5.3):
    DATE=0117 / TIME=1452 / NMBR=5551234567 / NAME=WIRELESS CALLER
USR writes `TAG=value`, Conexant `TAG = value`. NMBR or NAME may be `P` (private) or `O`
(unavailable), NAME is often missing (UK), the record may come 0–2 rings in, and MESG lines
(undecoded message parameters) carry nothing we use. A record ends at the next RING, at the start
of another record, or when the caller gives up waiting (flush()). Pure: time is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

PRIVATE = "private"
UNAVAILABLE = "unavailable"
AVAILABLE = "available"
ABSENT = "absent"

_WITHHELD = {"P": PRIVATE, "O": UNAVAILABLE}
_TAG = re.compile(r"^\s*(DATE|TIME|NMBR|DDN_NMBR|NAME|MESG)\s*=\s*(.*?)\s*$", re.IGNORECASE)
_FIELDS = {"DATE": "date", "TIME": "time", "NMBR": "number_raw", "DDN_NMBR": "number_raw",
           "NAME": "name_raw"}


@dataclass(frozen=True)
class CallerId:
    date: str | None = None            # MMDD as sent
    time: str | None = None            # HHMM as sent
    number_raw: str | None = None      # NMBR as sent ("P" and "O" included)
    name_raw: str | None = None

    @property
    def number(self) -> str | None:
        raw = self.number_raw
        return None if raw is None or raw.upper() in _WITHHELD else raw

    @property
    def name(self) -> str | None:
        raw = self.name_raw
        return None if raw is None or raw.upper() in _WITHHELD else raw

    @property
    def number_status(self) -> str:
        return _status(self.number_raw)

    @property
    def name_status(self) -> str:
        return _status(self.name_raw)

    @property
    def empty(self) -> bool:
        return self == CallerId()


def _status(raw: str | None) -> str:
    if raw is None:
        return ABSENT
    return _WITHHELD.get(raw.upper(), AVAILABLE)


def parse_tag(line: str) -> tuple[str, str] | None:
    """(TAG, value) for a caller-ID tag line in either spacing, else None."""
    match = _TAG.match(line)
    if match is None:
        return None
    return match.group(1).upper(), match.group(2)


class CallerIdParser:
    """Feed every line the modem prints while idle; get a CallerId when a record is complete."""

    def __init__(self) -> None:
        self._record = CallerId()

    @property
    def pending(self) -> CallerId | None:
        return None if self._record.empty else self._record

    def feed(self, line: str) -> CallerId | None:
        text = line.strip()
        if text.upper() == "RING":
            return self.flush()
        tag = parse_tag(text)
        if tag is None:
            return None
        name, value = tag
        field_name = _FIELDS.get(name)
        if field_name is None or not value:
            return None                                    # MESG, or a tag with nothing in it
        done = None
        if getattr(self._record, field_name) is not None:  # a second record without RING between
            done = self.flush()
        self._record = replace(self._record, **{field_name: value})
        return done

    def flush(self) -> CallerId | None:
        """The record gathered so far (None if nothing came); the parser starts afresh."""
        record, self._record = self.pending, CallerId()
        return record


class RingCounter:
    """Counts the RINGs of one call; a gap longer than `reset_after` starts a new call (North
    American cadence is 2 s on, 4 s off, so 8 s means the caller gave up)."""

    def __init__(self, reset_after: float = 8.0) -> None:
        self.reset_after = reset_after
        self.count = 0
        self._last: float | None = None

    def ring(self, now: float) -> int:
        if self._last is None or now - self._last > self.reset_after:
            self.count = 0
        self.count += 1
        self._last = now
        return self.count

    def gave_up(self, now: float) -> bool:
        """True once rings started and none came for `reset_after` seconds."""
        return self._last is not None and now - self._last > self.reset_after

    def reset(self) -> None:
        self.count = 0
        self._last = None
