"""`callgate contacts` and `callgate metrics` through subprocess on a real contact store (local time:
Europe/Berlin), and the time arguments they read."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.center.records import COLUMNS, ContactStore
from gateway.cli.contacts import parse_time
from tests.test_center_metrics import BY_QUEUE, H9, TOTAL, fill

REPO = Path(__file__).resolve().parents[1]
ZONE = "Europe/Berlin"     # 09:00 UTC on 2025-12-01 is 10:00 local
SINCE, UNTIL = "2025-12-01T10:00", "2025-12-01T13:00"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "data").mkdir()
    config = root / "callgate.toml"
    config.write_text('[gateway]\ndata_dir = "data"\n\n[[queues]]\nid = "support"\n\n[[queues]]\nid = "sales"\n')
    store = ContactStore(root / "data" / "contacts.db")
    fill(store)
    store.close()
    empty = root / "empty.toml"
    empty.write_text('[gateway]\ndata_dir = "nothing-here"\n\n[[queues]]\nid = "support"\n')
    return root, config, empty


def cli(*commands: list[str], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Run several `callgate` commands side by side; results in order."""
    env = dict(os.environ, TZ=ZONE)
    procs = [subprocess.Popen([sys.executable, "-m", "gateway", *args], cwd=cwd, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in commands]
    results = []
    for args, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return results


def test_contacts_filters_and_formats(setup):
    root, config, _ = setup
    c = ["contacts", "-c", str(config)]
    table, by_callback, as_csv, dash_value, export_csv, export_json, limited = cli(
        [*c, "--since", SINCE, "--until", UNTIL, "--queue", "sales"],
        [*c, "--agent", "bob", "--method", "callback", "--json"],
        [*c, "--since", SINCE, "--until", UNTIL, "--csv"],
        [*c, "--since", "-100000d", "--caller", "4930111", "--json"],
        [*c, "--outcome", "abandoned", "--export", "abandoned.csv"],
        [*c, "--with-voicemail", "--export", "voicemail.json"],
        [*c, "--limit", "3", "--offset", "2"],
        cwd=root)

    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["CONTACT", "STARTED", "METHOD"]
    assert [ln.split()[0] for ln in lines[2:]] == ["c14", "c11", "c10", "c05", "c04"]
    assert "2025-12-01 12:59:30" in lines[2] and "handled" in lines[2]   # local time (UTC+1)

    records = json.loads(by_callback.stdout)
    assert [r["contact_id"] for r in records] == ["c09"]
    assert records[0]["outcome"] == "handled" and records[0]["initiated_at"] == H9 + 4500

    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["contact_id"] for r in rows] == ["c14", "s01"] + [f"c{i:02d}" for i in range(13, 0, -1)]
    assert list(rows[0])[:len(COLUMNS)] == list(COLUMNS) and {"duration", "outcome", "queue_wait"} <= set(rows[0])
    c01 = next(r for r in rows if r["contact_id"] == "c01")
    assert c01["initiated_at"] == "2025-12-01T10:00:00.000+01:00"
    assert datetime.fromisoformat(c01["connected_to_agent_at"]).timestamp() == H9 + 25
    assert (c01["queue_wait"], c01["outcome"], c01["enqueued_at"] != "") == ("15.0", "handled", True)
    assert c01["after_contact_work_end_at"] != "" and c01["voicemail_path"] == ""
    sms = next(r for r in rows if r["contact_id"] == "s01")
    assert json.loads(sms["attributes"]) == {"channel": "SMS", "text": "hi"} and sms["outcome"] == "sms"

    assert [r["contact_id"] for r in json.loads(dash_value.stdout)] == ["c08"], dash_value.stderr

    assert export_csv.returncode == 0 and "wrote 4 contact(s)" in export_csv.stdout
    exported = list(csv.DictReader((root / "abandoned.csv").open(newline="")))
    assert [r["contact_id"] for r in exported] == ["c99", "c11", "c06", "c03"]
    assert [r["contact_id"] for r in json.loads((root / "voicemail.json").read_text())] == ["c08", "c07"]

    assert [ln.split()[0] for ln in limited.stdout.splitlines()[2:5]] == ["s01", "c13", "c12"]
    assert "contacts 3-5 of 17 matching" in limited.stdout


def test_contacts_bad_arguments(setup):
    root, config, empty = setup
    c = ["contacts", "-c", str(config)]
    bad_since, reversed_, bad_method, bad_outcome, bad_export, no_db, no_file = cli(
        [*c, "--since", "yesterdayish"],
        [*c, "--since", UNTIL, "--until", SINCE],
        [*c, "--method", "FAX"],
        [*c, "--outcome", "lost"],
        [*c, "--export", "contacts.txt"],
        ["contacts", "-c", str(empty)],
        [*c, "--export", "no-such-dir/x.json"],
        cwd=root)
    assert bad_since.returncode == 2
    assert "argument --since: cannot read 'yesterdayish' as a time" in bad_since.stderr
    assert reversed_.returncode == 2 and "--since must be before --until" in reversed_.stderr
    assert bad_method.returncode == 2 and "--method: unknown initiation method 'FAX'" in bad_method.stderr
    assert bad_outcome.returncode == 2 and "'lost'" in bad_outcome.stderr and "abandoned" in bad_outcome.stderr
    assert bad_export.returncode == 2 and "name it .csv or .json" in bad_export.stderr
    assert no_db.returncode == 1 and "no contact records yet" in no_db.stderr and "nothing-here" in no_db.stderr
    assert no_file.returncode == 1 and "cannot write no-such-dir/x.json" in no_file.stderr
    assert not list(root.glob(".x.json*"))


def test_metrics(setup):
    root, config, empty = setup
    m = ["metrics", "-c", str(config), "--since", SINCE, "--until", UNTIL]
    by_queue, table, hours, sl30, empty_interval, no_db, bad_until = cli(
        [*m, "--by", "queue", "--json"],
        [*m],
        [*m, "--by", "hour"],
        [*m, "--sl", "30", "--json"],
        ["metrics", "--db", str(root / "data" / "contacts.db"), "--since", "2024-01-01", "--until", "2024-01-02",
         "--json"],
        ["metrics", "-c", str(empty), "--since", SINCE],
        [*m[:-1], "13:00 tomorrow"],
        cwd=root)
    assert by_queue.returncode == 0, by_queue.stderr
    result = json.loads(by_queue.stdout)
    assert result["groups"] == BY_QUEUE and result["total"] == TOTAL
    assert (result["since"], result["until"], result["by"], result["sl_seconds"]) == (H9, H9 + 3 * 3600, "queue", 20)

    lines = table.stdout.splitlines()
    assert "service level within 20 s" in lines[0] and "2025-12-01 10:00:00" in lines[0]
    total = lines[-1].split()
    assert total[:7] == ["TOTAL", "14", "7", "3", "2", "1", "1"]
    assert total[7:] == ["170.0", "20.4", "31.67", "57.14", "60.0"]

    assert [ln.split()[0] for ln in hours.stdout.splitlines()[3:]] == [
        "2025-12-01T10:00+01:00", "2025-12-01T11:00+01:00", "2025-12-01T12:00+01:00", "TOTAL"]
    assert json.loads(sl30.stdout)["total"]["service_level"] == 66.67

    nothing = json.loads(empty_interval.stdout)
    assert empty_interval.returncode == 0 and nothing["total"]["contacts"] == 0 and nothing["groups"] == []
    assert nothing["total"]["service_level"] is None
    assert no_db.returncode == 1 and "no contact records yet" in no_db.stderr
    assert bad_until.returncode == 2 and "argument --until: cannot read '13:00 tomorrow'" in bad_until.stderr


@pytest.fixture
def berlin(monkeypatch):
    monkeypatch.setenv("TZ", ZONE)
    time.tzset()
    yield timezone(timedelta(hours=1))
    monkeypatch.undo()
    time.tzset()


def test_time_arguments(berlin):
    cet, cest = berlin, timezone(timedelta(hours=2))
    now = datetime(2025, 12, 3, 15, 30, tzinfo=cet).timestamp()
    assert parse_time("now", now) == now
    assert parse_time("today", now) == datetime(2025, 12, 3, tzinfo=cet).timestamp()
    assert parse_time("Yesterday", now) == datetime(2025, 12, 2, tzinfo=cet).timestamp()
    assert parse_time("-7d", now) == now - 7 * 86400
    assert parse_time("-2h", now) == parse_time("-120m", now) == parse_time("-7200s", now) == now - 7200
    assert parse_time("-1.5h", now) == now - 5400 and parse_time("-1w", now) == now - 7 * 86400
    assert parse_time("2025-12-01") == datetime(2025, 12, 1, tzinfo=cet).timestamp()          # naive: local
    assert parse_time("2025-12-01 09:30:15") == datetime(2025, 12, 1, 9, 30, 15, tzinfo=cet).timestamp()
    assert parse_time("2025-12-01T09:30Z") == datetime(2025, 12, 1, 9, 30, tzinfo=timezone.utc).timestamp()
    assert parse_time("2025-07-01T12:00") == datetime(2025, 7, 1, 12, tzinfo=cest).timestamp()   # summer time
    assert parse_time("@1764579600") == 1764579600.0
    # the day after the spring change is 23 hours after the day before's midnight
    after_change = datetime(2025, 3, 31, 10, tzinfo=cest).timestamp()
    assert parse_time("yesterday", after_change) == datetime(2025, 3, 30, tzinfo=cet).timestamp()
    for bad in ("", "7d", "-7y", "2025-13-01", "@x", "last week"):
        with pytest.raises(ValueError, match="cannot read .* as a time"):
            parse_time(bad, now)
