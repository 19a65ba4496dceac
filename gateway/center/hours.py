"""Hours of operation: a weekly schedule in an IANA time zone with dated overrides (holidays).

Answers "open now?", "when does that change?" and "which holiday decides it?" for any instant.

Rules (docs/hours.md says the same for users):
- A range "HH:MM-HH:MM" belongs to the day it starts on; an end at or before its start runs past
  midnight into the next day; "24:00" ends a range at midnight. Ranges are half-open [start, end).
- An override replaces the weekly hours on each of its dates, including the tail of the previous
  night's range; its own overnight ranges run into the next day unless that day has another
  override. When overrides overlap, the shorter one wins (a one-day holiday inside a fortnight of
  reduced hours); two of the same length on the same date are refused.
- Daylight saving: a wall time the clocks skip (02:30 on a spring-forward night) means the moment
  the clocks jump; a wall time that happens twice means its first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 1440
MAX_OVERRIDE_DAYS = 3660
_CLOCK_RE = re.compile(r"^(\d\d):(\d\d)$")
_ONE_DAY = timedelta(days=1)


class HoursError(ValueError):
    """A schedule that cannot be built; the message names the range, day or override at fault."""


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}" if minutes < MINUTES_PER_DAY else "24:00"


@dataclass(frozen=True)
class TimeRange:
    """Minutes after midnight: start 0..1439, end 1..1440; end <= start runs past midnight."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> "TimeRange":
        parts = text.split("-")
        if len(parts) != 2:
            raise HoursError("expected HH:MM-HH:MM")
        mins = []
        for part in parts:
            m = _CLOCK_RE.match(part.strip())
            if not m:
                raise HoursError("expected HH:MM-HH:MM")
            h, mi = int(m.group(1)), int(m.group(2))
            if mi > 59 or h > 24 or (h == 24 and mi):
                raise HoursError(f"{part.strip()} is not a time of day (00:00 to 24:00)")
            mins.append(h * 60 + mi)
        start, end = mins
        if start == MINUTES_PER_DAY:
            raise HoursError("24:00 can only end a range (use 00:00 to start at midnight)")
        if start == end:
            raise HoursError(f"starts and ends at {parts[0].strip()}: an empty range "
                             "(\"00:00-24:00\" is all day)")
        return cls(start, end)

    def __post_init__(self) -> None:
        if not (0 <= self.start < MINUTES_PER_DAY and 0 <= self.end <= MINUTES_PER_DAY) \
                or self.start == self.end:
            raise HoursError(f"bad range {self.start}-{self.end} (minutes after midnight)")

    @property
    def overnight(self) -> bool:
        return self.end < self.start

    def same_day_span(self) -> tuple[int, int]:
        """The part on the starting day, in minutes: an overnight range runs to midnight."""
        return self.start, self.end if self.end > self.start else MINUTES_PER_DAY

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


def _as_range(value: TimeRange | str) -> TimeRange:
    return value if isinstance(value, TimeRange) else TimeRange.parse(value)


def first_overlap(ranges: Sequence[TimeRange]) -> tuple[int, int] | None:
    """(earlier index, later index) of the first two ranges of one day that overlap, or None."""
    for j, b in enumerate(ranges):
        b0, b1 = b.same_day_span()
        for i in range(j):
            a0, a1 = ranges[i].same_day_span()
            if a0 < b1 and b0 < a1:
                return i, j
    return None


@dataclass(frozen=True)
class Override:
    """Dates first..last (inclusive) with their own ranges; no ranges means closed all day."""

    first: date
    last: date
    ranges: tuple[TimeRange, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise HoursError(f"ends ({self.last}) before it starts ({self.first})")
        if self.days > MAX_OVERRIDE_DAYS:
            raise HoursError(f"lasts {self.days} days; at most {MAX_OVERRIDE_DAYS}")

    @property
    def closed(self) -> bool:
        return not self.ranges

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def label(self) -> str:
        """The name, or the dates when it has none: what a person is shown."""
        if self.name:
            return self.name
        return str(self.first) if self.first == self.last else f"{self.first}..{self.last}"


def override_clash(overrides: Sequence[Override]) -> tuple[int, int, date] | None:
    """(earlier index, later index, date) of two same-length overrides sharing a date, or None."""
    for j, b in enumerate(overrides):
        for i in range(j):
            a = overrides[i]
            if a.days == b.days and a.first <= b.last and b.first <= a.last:
                return i, j, max(a.first, b.first)
    return None


@dataclass(frozen=True)
class HoursStatus:
    open: bool
    override: Override | None              # the override deciding this moment, None: weekly hours
    next_change: tuple[float, bool] | None  # (epoch, opens) of the next flip; None: never

    @property
    def override_name(self) -> str | None:
        return self.override.label if self.override else None


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; HoursError naming it (and a near spelling) when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    import difflib
    from zoneinfo import available_timezones
    near = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
    hint = f" (did you mean \"{near[0]}\"?)" if near else ""
    raise HoursError(f"unknown time zone \"{name}\"{hint}")


Interval = tuple[float, float, "Override | None"]


class HoursOfOperation:
    """A named schedule. Instants are POSIX epoch seconds; days and clock times are local."""

    def __init__(self, name: str, time_zone: str,
                 weekly: Mapping[str | int, Iterable[TimeRange | str]],
                 overrides: Iterable[Override] = ()) -> None:
        self.name = name
        self.time_zone = time_zone
        self.zone = zone(time_zone)
        days: list[tuple[TimeRange, ...]] = [()] * 7
        for key, ranges in weekly.items():
            index = key if isinstance(key, int) else DAYS.index(key) if key in DAYS else -1
            if not 0 <= index < 7:
                raise HoursError(f"weekly: unknown day {key!r} (days: {', '.join(DAYS)})")
            rs = tuple(sorted((_as_range(r) for r in ranges), key=lambda r: r.start))
            clash = first_overlap(rs)
            if clash:
                raise HoursError(f"weekly.{DAYS[index]}: {rs[clash[1]]} overlaps {rs[clash[0]]}")
            days[index] = rs
        self.weekly: tuple[tuple[TimeRange, ...], ...] = tuple(days)
        self.overrides: tuple[Override, ...] = tuple(overrides)
        clash = override_clash(self.overrides)
        if clash:
            i, j, on = clash
            raise HoursError(f"overrides[{j}] and overrides[{i}] both cover {on} and are as long as "
                             "each other: which one wins?")
        for k, ov in enumerate(self.overrides):
            overlap = first_overlap(ov.ranges)
            if overlap:
                raise HoursError(f"overrides[{k}]: {ov.ranges[overlap[1]]} overlaps "
                                 f"{ov.ranges[overlap[0]]}")
        self._by_date: dict[date, Override] = {}
        for ov in sorted(self.overrides, key=lambda o: -o.days):  # shorter ones written last win
            for n in range(ov.days):
                self._by_date[ov.first + timedelta(days=n)] = ov
        self._last_override = max(self._by_date, default=None)

    def __repr__(self) -> str:
        return f"HoursOfOperation({self.name!r}, {self.time_zone!r}, {len(self.overrides)} overrides)"

    # -- local time ------------------------------------------------------------------------

    def local(self, at: float) -> datetime:
        """The instant as an aware datetime in this schedule's zone (for "we open at 08:00")."""
        return datetime.fromtimestamp(at, self.zone)

    def epoch(self, when: datetime | str) -> float:
        """A local wall time (naive datetime or ISO text like "2026-12-24T18:30") as epoch seconds.

        An aware datetime is taken as the instant it names.
        """
        if isinstance(when, str):
            when = datetime.fromisoformat(when)
        if when.tzinfo is not None:
            return when.timestamp()
        return self._wall(when.date(), when.hour * 60 + when.minute) + when.second + when.microsecond / 1e6

    def _wall(self, day: date, minute: int) -> float:
        if minute >= MINUTES_PER_DAY:
            day, minute = day + _ONE_DAY, minute - MINUTES_PER_DAY
        naive = datetime.combine(day, time(minute // 60, minute % 60))
        first = naive.replace(tzinfo=self.zone).timestamp()
        if datetime.fromtimestamp(first, self.zone).replace(tzinfo=None) == naive:
            return first  # exists (fold=0 is the first of two occurrences)
        # Skipped by the clocks: the answer is the jump itself, the first instant whose wall
        # time is later than `naive`. It lies between the two fold readings.
        other = naive.replace(tzinfo=self.zone, fold=1).timestamp()
        lo, hi = int(min(first, other)), int(max(first, other)) + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, self.zone).replace(tzinfo=None) > naive:
                hi = mid
            else:
                lo = mid + 1
        return float(lo)

    # -- the schedule ----------------------------------------------------------------------

    def override_on(self, day: date) -> Override | None:
        """The override that decides this local date, if any."""
        return self._by_date.get(day)

    def _day_intervals(self, day: date) -> list[Interval]:
        source = self._by_date.get(day)
        ranges = source.ranges if source else self.weekly[day.weekday()]
        nxt = self._by_date.get(day + _ONE_DAY)
        cut_tail = nxt is not None and nxt is not source
        out = []
        for r in ranges:
            start = self._wall(day, r.start)
            if not r.overnight:
                end = self._wall(day, r.end)
            else:
                end = self._wall(day + _ONE_DAY, 0 if cut_tail else r.end)
            if end > start:
                out.append((start, end, source))
        return out

    def _merged(self, first_day: date, last_day: date) -> Iterator[tuple[float, float]]:
        """Open stretches, merged where they touch, from ranges starting on first_day..last_day."""
        current: list[float] | None = None
        day = first_day
        while day <= last_day:
            for start, end, _ in self._day_intervals(day):
                if current is not None and start <= current[1]:
                    current[1] = max(current[1], end)
                    continue
                if current is not None:
                    yield current[0], current[1]
                current = [start, end]
            day += _ONE_DAY
        if current is not None:
            yield current[0], current[1]

    def _deciding(self, at: float) -> tuple[bool, Override | None]:
        today = self.local(at).date()
        for day in (today - _ONE_DAY, today):
            for start, end, source in self._day_intervals(day):
                if start <= at < end:
                    return True, source
        return False, self._by_date.get(today)

    # -- questions -------------------------------------------------------------------------

    def is_open(self, at: float) -> bool:
        return self._deciding(at)[0]

    def next_change(self, at: float) -> tuple[float, bool] | None:
        """(epoch, opens) of the first flip after `at`: opens=True when it opens then. None: never.

        Touching ranges (Monday 00:00-24:00 and Tuesday 00:00-24:00) are one stretch, not a flip.
        """
        today = self.local(at).date()
        horizon = max(today, self._last_override or today) + timedelta(days=8)
        for start, end in self._merged(today - _ONE_DAY, horizon):
            if start > at:
                return start, True
            if at < end:
                # Still open at the horizon means open for a whole week of plain weekly days: always.
                reaches_horizon = end >= self._wall(horizon, 0)
                return None if reaches_horizon else (end, False)
        return None

    def status(self, at: float) -> HoursStatus:
        is_open, source = self._deciding(at)
        return HoursStatus(open=is_open, override=source, next_change=self.next_change(at))

    def intervals(self, start: float, end: float) -> list[tuple[float, float]]:
        """The open stretches overlapping [start, end), merged, clipped to it: for displays."""
        first = self.local(start).date() - _ONE_DAY
        last = self.local(end).date()
        return [(max(s, start), min(e, end)) for s, e in self._merged(first, last) if s < end and e > start]
