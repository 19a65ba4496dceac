"""Reading `[[hours]]` tables from the gateway's TOML into HoursOfOperation, every mistake placed.

Errors read `callgate.toml: hours "office": weekly.mon[1] "13:00-1700": expected HH:MM-HH:MM`.
The shape is documented in docs/hours.md.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from gateway.center.hours import (DAYS, MAX_OVERRIDE_DAYS, HoursError, HoursOfOperation, Override,
                                  TimeRange, first_overlap, override_clash, zone)
from gateway.tomltable import TomlTable

MAX_NAME = 127


class _Named(TomlTable):
    """A TomlTable whose errors start with the schedule's name instead of its list index."""

    def __init__(self, data: dict, source, error, where: str, prefix: str) -> None:
        super().__init__(data, source, error, where)
        self.prefix = prefix

    def err(self, key: str, msg: str) -> Exception:
        path = f"{self.where}.{key}" if self.where else key
        return self.error(f"{self.source}: {self.prefix}: {path}: {msg}")

    def _child(self, data: dict, where: str) -> "_Named":
        return _Named(data, self.source, self.error, f"{self.where}.{where}" if self.where else where,
                      self.prefix)


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _name(value: str) -> str | None:
    if not value.strip() or value != value.strip():
        return "must not be blank or start or end with spaces"
    return None if len(value) <= MAX_NAME else f"at most {MAX_NAME} characters"


def _ranges(t: TomlTable, key: str) -> tuple[TimeRange, ...]:
    """The list of "HH:MM-HH:MM" strings under `key`, parsed and checked for overlaps."""
    texts = t.strings(key)
    out = []
    for i, text in enumerate(texts):
        try:
            out.append(TimeRange.parse(text))
        except HoursError as exc:
            raise t.err(f"{key}[{i}] {_q(text)}", str(exc)) from None
    clash = first_overlap(out)
    if clash:
        i, j = clash
        raise t.err(f"{key}[{j}] {_q(texts[j])}", f"overlaps {t.where}.{key}[{i}] {_q(texts[i])}")
    return tuple(out)


def _date(t: TomlTable, key: str) -> date:
    value = t.get(key, (str, date))
    if isinstance(value, datetime):
        raise t.err(key, f"expected a date (YYYY-MM-DD), got a date and time {value.isoformat()}")
    if isinstance(value, date):
        return value
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise t.err(key, f"{_q(value)}: expected a date YYYY-MM-DD") from None


def _override(o: TomlTable) -> Override:
    if "date" in o.data:
        for other in ("from", "to"):
            if other in o.data:
                raise o.err(other, "give either date, or from and to, not both")
        first = last = _date(o, "date")
    elif "from" in o.data or "to" in o.data:
        first, last = _date(o, "from"), _date(o, "to")
        if last < first:
            raise o.err("to", f"{last} is before from ({first})")
    else:
        raise o.err("date", "missing (or from and to for several days)")
    if (last - first).days + 1 > MAX_OVERRIDE_DAYS:
        raise o.err("to", f"{(last - first).days + 1} days from {first}; at most {MAX_OVERRIDE_DAYS}")

    closed = o.get("closed", bool, None)
    if "open" in o.data:
        if closed:
            raise o.err("open", "closed = true and open hours contradict each other")
        ranges = _ranges(o, "open")
        if not ranges:
            raise o.err("open", "empty: write closed = true for a day with no hours")
    elif closed is None:
        raise o.err("closed", "missing: write closed = true, or open = [\"HH:MM-HH:MM\", ...]")
    elif not closed:
        raise o.err("closed", "false needs open = [\"HH:MM-HH:MM\", ...] hours")
    else:
        ranges = ()
    name = o.get("name", str, "", check=lambda v: None if len(v) <= MAX_NAME else
                 f"at most {MAX_NAME} characters")
    o.finish()
    return Override(first, last, ranges, name)


def _one(t: TomlTable, name: str) -> HoursOfOperation:
    named = _Named(t.data, t.source, t.error, "", f"hours {_q(name)}")
    named.used = t.used
    tz = named.get("time_zone", str)
    try:
        zone(tz)
    except HoursError as exc:
        raise named.err("time_zone", str(exc)) from None

    w = named.table("weekly")
    weekly = {}
    for key in w.data:
        if key not in DAYS:
            raise w.err(key, f"not a day (days: {', '.join(DAYS)})")
        weekly[key] = _ranges(w, key)
    w.finish()

    overrides = [_override(o) for o in named.tables("overrides")]
    clash = override_clash(overrides)
    if clash:
        i, j, on = clash
        raise named.err(f"overrides[{j}]", f"covers {on} like overrides[{i}] and lasts as long "
                        f"({overrides[j].days} day(s)): which one wins? (the shorter override wins)")
    named.finish()
    try:
        return HoursOfOperation(name, tz, weekly, overrides)
    except HoursError as exc:  # every check above should have caught it first
        raise t.error(f"{t.source}: hours {_q(name)}: {exc}") from None


def parse_hours(root: TomlTable) -> dict[str, HoursOfOperation]:
    """Every `[[hours]]` table of the file, by name; `root.error` with the place on any mistake."""
    out: dict[str, HoursOfOperation] = {}
    for t in root.tables("hours"):
        name = t.get("name", str, check=_name)
        if name in out:
            raise t.err("name", f"{_q(name)} is used twice")
        out[name] = _one(t, name)
    return out


def check_reference(t: TomlTable, key: str, hours: dict[str, HoursOfOperation]) -> str | None:
    """The optional hours name under `key` of table t (a queue), refused when no [[hours]] has it."""
    name = t.get(key, str, None)
    if name is not None and name not in hours:
        known = ", ".join(_q(n) for n in sorted(hours)) or "none defined"
        raise t.err(key, f"no [[hours]] named {_q(name)} (hours: {known})")
    return name
