"""Hours of operation: weekly and overnight ranges, holidays and overrides, DST days, next_change,
and the [[hours]] config with every mistake reported at its place."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from gateway.center.hours import HoursError, HoursOfOperation, Override, TimeRange
from gateway.config import ConfigError, load_config

BERLIN = "Europe/Berlin"
# 2026: Dec 24 is a Thursday; Berlin springs forward on Sun Mar 29 and falls back on Sun Oct 25.


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def office(**kw) -> HoursOfOperation:
    weekly = {d: ["08:00-12:00", "13:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    return HoursOfOperation("office", BERLIN, weekly, **kw)


def day(first: str, last: str | None = None, hours: tuple[str, ...] = (), name: str = "") -> Override:
    return Override(date.fromisoformat(first), date.fromisoformat(last or first),
                    tuple(TimeRange.parse(h) for h in hours), name)


def opens(h: HoursOfOperation, local: str) -> bool:
    return h.is_open(h.epoch(local))


def change(h: HoursOfOperation, local: str) -> tuple[str, bool] | None:
    nc = h.next_change(h.epoch(local))
    return None if nc is None else (h.local(nc[0]).strftime("%Y-%m-%dT%H:%M%z"), nc[1])


# -- weekly hours --------------------------------------------------------------------------

def test_weekly_ranges_are_half_open_and_lunch_is_a_gap():
    h = office()
    assert not opens(h, "2026-12-07T07:59:59")     # a Monday
    assert opens(h, "2026-12-07T08:00")
    assert opens(h, "2026-12-07T11:59:59")
    assert not opens(h, "2026-12-07T12:00")
    assert opens(h, "2026-12-07T13:00")
    assert not opens(h, "2026-12-07T17:00")
    assert not opens(h, "2026-12-12T10:00")        # Saturday: no ranges
    assert h.status(h.epoch("2026-12-07T10:00")).override is None


def test_next_change_says_when_it_opens_or_closes():
    h = office()
    assert change(h, "2026-12-07T07:00") == ("2026-12-07T08:00+0100", True)
    assert change(h, "2026-12-07T10:00") == ("2026-12-07T12:00+0100", False)
    assert change(h, "2026-12-07T12:00") == ("2026-12-07T13:00+0100", True)
    assert change(h, "2026-12-11T17:30") == ("2026-12-14T08:00+0100", True)   # Friday evening -> Monday
    only_monday = HoursOfOperation("m", BERLIN, {"mon": ["09:00-10:00"]})
    assert change(only_monday, "2026-12-07T10:00") == ("2026-12-14T09:00+0100", True)


def test_overnight_range_belongs_to_the_day_it_starts():
    h = HoursOfOperation("bar", BERLIN, {"fri": ["18:00-02:00"], "sat": ["18:00-02:00"]})
    assert not opens(h, "2026-12-11T17:59")
    assert opens(h, "2026-12-11T23:59")
    assert opens(h, "2026-12-12T01:59")           # Saturday morning: Friday's range
    assert not opens(h, "2026-12-12T02:00")
    assert not opens(h, "2026-12-11T01:00")       # Friday morning: Thursday had no range
    assert opens(h, "2026-12-13T01:00")           # Sunday morning: Saturday's range
    assert change(h, "2026-12-11T20:00") == ("2026-12-12T02:00+0100", False)
    assert change(h, "2026-12-12T02:00") == ("2026-12-12T18:00+0100", True)


def test_touching_ranges_are_one_stretch_and_24_00_ends_the_day():
    h = HoursOfOperation("w", BERLIN, {"sat": ["00:00-24:00"], "sun": ["00:00-24:00"],
                                       "mon": ["22:00-24:00"], "tue": ["00:00-06:00"]})
    assert opens(h, "2026-12-12T23:59:59") and opens(h, "2026-12-13T00:00")
    assert change(h, "2026-12-12T10:00") == ("2026-12-14T00:00+0100", False)   # no flip Sat->Sun
    assert change(h, "2026-12-14T22:30") == ("2026-12-15T06:00+0100", False)   # Mon 22-24 + Tue 0-6
    assert h.intervals(h.epoch("2026-12-14T00:00"), h.epoch("2026-12-16T00:00")) == [
        (h.epoch("2026-12-14T22:00"), h.epoch("2026-12-15T06:00"))]


def test_always_open_and_never_open_have_no_next_change():
    always = HoursOfOperation("24/7", "UTC", {d: ["00:00-24:00"] for d in range(7)})
    never = HoursOfOperation("never", "UTC", {})
    at = utc("2026-12-24T12:00")
    assert always.is_open(at) and always.next_change(at) is None
    assert not never.is_open(at) and never.status(at).next_change is None


def test_same_wall_hours_are_different_instants_in_different_zones():
    ny = HoursOfOperation("ny", "America/New_York", {"mon": ["09:00-17:00"]})
    assert ny.is_open(utc("2026-12-07T14:00")) and not ny.is_open(utc("2026-12-07T13:59"))
    assert not office().is_open(utc("2026-12-07T16:00"))    # 17:00 in Berlin


# -- holidays and overrides ----------------------------------------------------------------

def test_closed_holiday_beats_weekly_hours_and_is_named():
    h = office(overrides=[day("2026-12-24", name="Christmas Eve"),
                          day("2026-12-25", "2026-12-26", name="Christmas")])
    at = h.epoch("2026-12-24T10:00")                  # a Thursday, normally open
    status = h.status(at)
    assert not status.open and status.override_name == "Christmas Eve"
    assert h.local(status.next_change[0]).isoformat() == "2026-12-28T08:00:00+01:00"
    assert status.next_change[1] is True
    assert h.status(h.epoch("2026-12-26T10:00")).override_name == "Christmas"
    assert opens(h, "2026-12-23T10:00") and opens(h, "2026-12-28T10:00")


def test_override_with_its_own_hours_replaces_the_day():
    h = office(overrides=[day("2026-12-27", "2026-12-31", ("10:00-14:00",), "Between the years")])
    assert opens(h, "2026-12-27T11:00")               # a Sunday: weekly closed, override open
    assert not opens(h, "2026-12-28T09:00")           # a Monday: weekly 08:00 does not apply
    assert opens(h, "2026-12-28T13:30")               # inside the weekly lunch gap, override open
    assert not opens(h, "2026-12-28T15:00")
    assert h.status(h.epoch("2026-12-28T11:00")).override_name == "Between the years"
    assert opens(h, "2027-01-04T08:00")               # back to weekly afterwards


def test_shorter_override_wins_inside_a_longer_one():
    h = office(overrides=[day("2026-12-25", name="Christmas"),
                          day("2026-12-20", "2027-01-06", ("10:00-12:00",), "Reduced")])
    s = h.status(h.epoch("2026-12-25T11:00"))
    assert not s.open and s.override_name == "Christmas"
    s = h.status(h.epoch("2026-12-23T11:00"))
    assert s.open and s.override_name == "Reduced"
    assert not opens(h, "2026-12-23T09:00")


def test_unnamed_override_is_labelled_by_its_dates():
    h = office(overrides=[day("2026-12-24"), day("2026-12-28", "2026-12-30")])
    assert h.status(h.epoch("2026-12-24T10:00")).override_name == "2026-12-24"
    assert h.status(h.epoch("2026-12-29T10:00")).override_name == "2026-12-28..2026-12-30"


def test_holiday_cuts_the_previous_nights_range_at_midnight():
    nights = {d: ["22:00-06:00"] for d in range(7)}
    h = HoursOfOperation("night", BERLIN, nights, [day("2026-12-25", name="Christmas")])
    assert opens(h, "2026-12-24T23:59")
    assert not opens(h, "2026-12-25T00:00")
    assert change(h, "2026-12-24T23:00") == ("2026-12-25T00:00+0100", False)
    # Dec 25 has no night of its own, so the early hours of Dec 26 stay closed too
    assert change(h, "2026-12-25T03:00") == ("2026-12-26T22:00+0100", True)
    assert not opens(h, "2026-12-26T05:00")
    assert opens(h, "2026-12-27T05:00")


def test_override_night_runs_into_a_weekly_day_but_not_into_another_override():
    h = office(overrides=[day("2026-12-31", hours=("20:00-02:00",), name="New Year's Eve"),
                          day("2026-12-27", "2026-12-28", ("22:00-02:00",), "Late"),
                          day("2026-12-29", name="Closed")])
    s = h.status(h.epoch("2027-01-01T01:00"))         # Friday, weekly day after the override
    assert s.open and s.override_name == "New Year's Eve"
    assert not opens(h, "2027-01-01T02:00")
    assert opens(h, "2026-12-28T01:00")               # same override on both days keeps its night
    assert not opens(h, "2026-12-29T01:00")           # the next override cuts it


# -- daylight saving -----------------------------------------------------------------------

def test_spring_forward_day_in_berlin():
    h = HoursOfOperation("dst", BERLIN, {"sun": ["00:00-24:00"], "sat": ["01:00-04:00"],
                                         "fri": ["02:30-05:00"]})
    [(s, e)] = h.intervals(h.epoch("2026-03-29T00:00"), h.epoch("2026-03-30T00:00"))
    assert e - s == 23 * 3600
    sun = HoursOfOperation("dst", BERLIN, {"sun": ["01:00-04:00"]})
    [(s, e)] = sun.intervals(utc("2026-03-28T00:00"), utc("2026-03-30T00:00"))
    assert (s, e) == (utc("2026-03-29T00:00"), utc("2026-03-29T02:00")) and e - s == 2 * 3600
    assert sun.is_open(utc("2026-03-29T00:59:59")) and sun.is_open(utc("2026-03-29T01:00"))
    # 02:30 never happens that night: the range opens when the clocks jump to 03:00
    late = HoursOfOperation("late", BERLIN, {"sun": ["02:30-05:00"]})
    assert late.epoch("2026-03-29T02:30") == utc("2026-03-29T01:00")
    assert not late.is_open(utc("2026-03-29T00:59:59")) and late.is_open(utc("2026-03-29T01:00"))
    assert late.next_change(utc("2026-03-29T00:00")) == (utc("2026-03-29T01:00"), True)
    assert late.next_change(utc("2026-03-29T01:00")) == (utc("2026-03-29T03:00"), False)


def test_fall_back_day_in_berlin():
    allday = HoursOfOperation("dst", BERLIN, {"sun": ["00:00-24:00"]})
    [(s, e)] = allday.intervals(utc("2026-10-24T00:00"), utc("2026-10-27T00:00"))
    assert e - s == 25 * 3600
    # 02:30 happens twice (00:30Z in summer time, 01:30Z in winter time): the first one counts
    early = HoursOfOperation("early", BERLIN, {"sun": ["01:00-02:30"]})
    assert early.epoch("2026-10-25T02:30") == utc("2026-10-25T00:30")
    assert early.is_open(utc("2026-10-25T00:29"))
    assert not early.is_open(utc("2026-10-25T01:15"))      # 02:15 again, in winter time
    assert early.next_change(utc("2026-10-24T23:30")) == (utc("2026-10-25T00:30"), False)
    late = HoursOfOperation("late", BERLIN, {"sun": ["02:30-04:00"]})
    assert late.is_open(utc("2026-10-25T00:30")) and late.is_open(utc("2026-10-25T01:45"))
    assert late.next_change(utc("2026-10-25T00:00")) == (utc("2026-10-25T00:30"), True)
    assert late.next_change(utc("2026-10-25T00:30")) == (utc("2026-10-25T03:00"), False)


def test_midnight_that_does_not_exist_opens_when_the_clocks_jump():
    # Havana skips from 23:59:59 on Sat Mar 7 2026 to 01:00 on Sunday
    h = HoursOfOperation("hav", "America/Havana", {"sat": ["20:00-24:00"], "sun": ["00:00-02:00"]})
    assert h.epoch("2026-03-08T00:00") == utc("2026-03-08T05:00")
    assert h.next_change(utc("2026-03-08T02:00")) == (utc("2026-03-08T06:00"), False)  # 02:00 EDT
    assert h.is_open(utc("2026-03-08T04:59:59")) and h.is_open(utc("2026-03-08T05:00"))


# -- the model refuses bad input -----------------------------------------------------------

@pytest.mark.parametrize("text, problem", [
    ("13:00-1700", "expected HH:MM-HH:MM"),
    ("8:00-12:00", "expected HH:MM-HH:MM"),
    ("08:00", "expected HH:MM-HH:MM"),
    ("08:00-12:00-13:00", "expected HH:MM-HH:MM"),
    ("25:00-26:00", "25:00 is not a time of day"),
    ("08:60-12:00", "08:60 is not a time of day"),
    ("24:30-01:00", "24:30 is not a time of day"),
    ("24:00-06:00", "24:00 can only end a range"),
    ("09:00-09:00", "an empty range"),
])
def test_time_range_errors(text, problem):
    with pytest.raises(HoursError, match=problem):
        TimeRange.parse(text)


def test_time_range_accepts_spaces_midnight_and_24_00():
    assert TimeRange.parse("08:00 - 12:30") == TimeRange(480, 750)
    assert str(TimeRange.parse("22:00-24:00")) == "22:00-24:00"
    assert TimeRange.parse("22:00-02:00").overnight and not TimeRange.parse("00:00-24:00").overnight


def test_model_errors_name_the_problem():
    with pytest.raises(HoursError, match='unknown time zone "Europe/Berln" \\(did you mean "Europe/Berlin"\\?\\)'):
        HoursOfOperation("x", "Europe/Berln", {})
    with pytest.raises(HoursError, match="unknown day 'monday'"):
        HoursOfOperation("x", "UTC", {"monday": ["08:00-12:00"]})
    with pytest.raises(HoursError, match="weekly.mon: 11:00-13:00 overlaps 08:00-12:00"):
        HoursOfOperation("x", "UTC", {"mon": ["08:00-12:00", "11:00-13:00"]})
    with pytest.raises(HoursError, match="both cover 2026-12-24"):
        HoursOfOperation("x", "UTC", {}, [day("2026-12-24"), day("2026-12-24", hours=("10:00-12:00",))])
    with pytest.raises(HoursError, match="before it starts"):
        day("2026-12-31", "2026-12-24")


# -- configuration -------------------------------------------------------------------------

BASE = '[[queues]]\nid = "support"\nhours = "office"\n\n[[queues]]\nid = "sales"\n\n'
OFFICE = '''
[[hours]]
name = "office"
time_zone = "Europe/Berlin"

[hours.weekly]
mon = ["08:00-12:00", "13:00-17:00"]
tue = ["08:00-12:00", "13:00-17:00"]
fri = ["08:00-14:00"]
sat = []

[[hours.overrides]]
date = "2026-12-24"
closed = true
name = "Christmas Eve"

[[hours.overrides]]
from = "2026-12-27"
to = "2026-12-31"
open = ["10:00-14:00"]
'''


def load(tmp_path: Path, text: str):
    path = tmp_path / "callgate.toml"
    path.write_text(text)
    return load_config(path)


def test_config_reads_hours_and_links_queues(tmp_path):
    cfg = load(tmp_path, BASE + OFFICE + '''
[[hours]]
name = "Basic Hours"
time_zone = "UTC"
[hours.weekly]
sun = ["22:00-02:00"]
[[hours.overrides]]
date = 2026-12-25
closed = true
''')
    h = cfg.hours["office"]
    assert h.time_zone == BERLIN and len(h.overrides) == 2
    assert cfg.hours_for_queue("support") is h and cfg.hours_for_queue("sales") is None
    assert h.status(h.epoch("2026-12-24T10:00")).override_name == "Christmas Eve"
    assert opens(h, "2026-12-28T13:00") and not opens(h, "2026-12-28T09:00")
    assert opens(h, "2026-12-11T13:30") and not opens(h, "2026-12-08T12:30")
    basic = cfg.hours["Basic Hours"]
    assert basic.overrides[0].first == date(2026, 12, 25)   # a bare TOML date works too
    assert basic.is_open(utc("2026-12-14T01:00"))


def test_config_without_hours_is_fine(tmp_path):
    cfg = load(tmp_path, '[[queues]]\nid = "support"\n')
    assert cfg.hours == {} and cfg.hours_for_queue("support") is None


H = '[[hours]]\nname = "office"\ntime_zone = "Europe/Berlin"\n[hours.weekly]\n'
OV = H + 'mon = ["08:00-12:00"]\n[[hours.overrides]]\n'
P = 'callgate.toml: hours "office": '


@pytest.mark.parametrize("toml, message", [
    (H + 'mon = ["08:00-12:00", "13:00-1700"]\n',
     P + 'weekly.mon[1] "13:00-1700": expected HH:MM-HH:MM'),
    (H + 'tue = ["25:00-26:00"]\n', P + 'weekly.tue[0] "25:00-26:00": 25:00 is not a time of day'),
    (H + 'wed = ["24:00-06:00"]\n', P + 'weekly.wed[0] "24:00-06:00": 24:00 can only end a range'),
    (H + 'thu = ["09:00-09:00"]\n', P + 'weekly.thu[0] "09:00-09:00": starts and ends at 09:00'),
    (H + 'fri = ["08:00-12:00", "11:00-17:00"]\n',
     P + 'weekly.fri[1] "11:00-17:00": overlaps weekly.fri[0] "08:00-12:00"'),
    (H + 'fri = ["22:00-02:00", "23:00-23:30"]\n',
     P + 'weekly.fri[1] "23:00-23:30": overlaps weekly.fri[0] "22:00-02:00"'),
    (H + 'monday = ["08:00-12:00"]\n', P + 'weekly.monday: not a day (days: mon, tue, wed'),
    (H + 'mon = "08:00-12:00"\n', P + "weekly.mon: expected list, got str"),
    (H + 'mon = [800]\n', P + "weekly.mon: expected a list of strings"),
    ('[[hours]]\nname = "office"\n[hours.weekly]\n', P + "time_zone: missing"),
    ('[[hours]]\nname = "office"\ntime_zone = "Europe/Berln"\n[hours.weekly]\n',
     P + 'time_zone: unknown time zone "Europe/Berln" (did you mean "Europe/Berlin"?)'),
    ('[[hours]]\nname = "office"\ntime_zone = "Mars/Olympus"\n[hours.weekly]\n',
     P + 'time_zone: unknown time zone "Mars/Olympus"'),
    ('[[hours]]\nname = "office"\ntime_zone = "UTC"\n', P + "weekly: missing"),
    ('[[hours]]\nname = "office"\ntime_zone = "UTC"\ntimezone = "UTC"\n[hours.weekly]\n',
     P + "timezone: unknown key (typo?)"),
    ('[[hours]]\ntime_zone = "UTC"\n[hours.weekly]\n', "callgate.toml: hours[0].name: missing"),
    ('[[hours]]\nname = " "\ntime_zone = "UTC"\n[hours.weekly]\n',
     "callgate.toml: hours[0].name: must not be blank"),
    (H + '[[hours]]\nname = "office"\ntime_zone = "UTC"\n[hours.weekly]\n',
     'callgate.toml: hours[1].name: "office" is used twice'),
    ('hours = "office"\n', "callgate.toml: hours: expected list, got str"),
    (OV + 'closed = true\n', P + "overrides[0].date: missing (or from and to for several days)"),
    (OV + 'date = "2026-12-24"\nfrom = "2026-12-24"\nto = "2026-12-25"\nclosed = true\n',
     P + "overrides[0].from: give either date, or from and to, not both"),
    (OV + 'from = "2026-12-24"\nclosed = true\n', P + "overrides[0].to: missing"),
    (OV + 'from = "2026-12-31"\nto = "2026-12-24"\nclosed = true\n',
     P + "overrides[0].to: 2026-12-24 is before from (2026-12-31)"),
    (OV + 'date = "2026-13-01"\nclosed = true\n',
     P + 'overrides[0].date: "2026-13-01": expected a date YYYY-MM-DD'),
    (OV + 'date = "24.12.2026"\nclosed = true\n',
     P + 'overrides[0].date: "24.12.2026": expected a date YYYY-MM-DD'),
    (OV + 'date = 2026-12-24T10:00:00\nclosed = true\n',
     P + "overrides[0].date: expected a date (YYYY-MM-DD), got a date and time"),
    (OV + 'date = 20261224\nclosed = true\n', P + "overrides[0].date: expected str/date, got int"),
    (OV + 'date = "2026-12-24"\n', P + "overrides[0].closed: missing: write closed = true, or open ="),
    (OV + 'date = "2026-12-24"\nclosed = false\n',
     P + 'overrides[0].closed: false needs open = ["HH:MM-HH:MM", ...] hours'),
    (OV + 'date = "2026-12-24"\nclosed = true\nopen = ["10:00-12:00"]\n',
     P + "overrides[0].open: closed = true and open hours contradict each other"),
    (OV + 'date = "2026-12-24"\nopen = []\n',
     P + "overrides[0].open: empty: write closed = true for a day with no hours"),
    (OV + 'date = "2026-12-24"\nopen = ["10-14"]\n',
     P + 'overrides[0].open[0] "10-14": expected HH:MM-HH:MM'),
    (OV + 'date = "2026-12-24"\nopen = ["10:00-14:00", "13:00-15:00"]\n',
     P + 'overrides[0].open[1] "13:00-15:00": overlaps overrides[0].open[0] "10:00-14:00"'),
    (OV + 'date = "2026-12-24"\nclosed = true\nreason = "snow"\n',
     P + "overrides[0].reason: unknown key (typo?)"),
    (OV + 'date = "2026-12-24"\nclosed = "yes"\n', P + "overrides[0].closed: expected bool, got str"),
    (OV + 'from = "2026-01-01"\nto = "2040-01-01"\nclosed = true\n', P + "overrides[0].to: 5114 days"),
    (OV + 'date = "2026-12-24"\nclosed = true\n[[hours.overrides]]\ndate = "2026-12-24"\nopen = ["10:00-12:00"]\n',
     P + "overrides[1]: covers 2026-12-24 like overrides[0] and lasts as long (1 day(s)): which one wins?"),
])
def test_config_mistakes_name_their_place(tmp_path, toml, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml + '\n[[queues]]\nid = "support"\n')
    assert message in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "callgate.toml") + ": ")


def test_queue_naming_unknown_hours_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r'callgate.toml: queues\[0\].hours: no \[\[hours\]\] named "ofice" '
                                          r'\(hours: "office"\)'):
        load(tmp_path, BASE.replace('"office"', '"ofice"') + OFFICE)
    with pytest.raises(ConfigError, match=r'queues\[0\].hours: no \[\[hours\]\] named "office" \(hours: none defined\)'):
        load(tmp_path, BASE)
    with pytest.raises(ConfigError, match=r"queues\[0\].hours: expected str, got int"):
        load(tmp_path, '[[queues]]\nid = "support"\nhours = 1\n')


def test_the_example_in_docs_hours_md_loads(tmp_path):
    doc = (Path(__file__).resolve().parents[1] / "docs/hours.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = load(tmp_path, example)
    h = cfg.hours_for_queue("support")
    assert h is cfg.hours["office"]
    assert opens(h, "2026-12-13T01:30") and not opens(h, "2026-12-13T02:00")   # Saturday night
    assert h.status(h.epoch("2026-12-29T11:00")).override_name == "Between the years"
