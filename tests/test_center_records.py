"""Contact records in SQLite: merge-on-upsert, listing, validation, WAL, and surviving kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.center.records import COLUMNS, ContactStore

REPO = Path(__file__).resolve().parents[1]
T0 = 1_764_614_400.0


@pytest.fixture
def store(tmp_path):
    s = ContactStore(tmp_path / "contacts.db")
    yield s
    s.close()


def test_upsert_merges_fields_and_get_decodes(store):
    store.upsert("c-1", line_id="gsm1", caller="+15551230001", initiation_method="INBOUND", initiated_at=T0)
    store.upsert("c-1", queue_id="support", enqueued_at=T0 + 3, flow_path='["entry", "menu", "queue"]')
    store.upsert(
        "c-1",
        agent_id="alice",
        connected_to_agent_at=T0 + 9,
        ended_at=T0 + 70.5,
        disconnect_reason="CUSTOMER_DISCONNECT",
        attributes={"lang": "en", "tier": "gold"},
        media={"frames_in": 3000, "frames_lost": 2},
        recording_path="/var/lib/callgate/rec/c-1.wav",
        recording_seconds=61.5,
    )
    rec = store.get("c-1")
    assert set(rec) == set(COLUMNS) | {"duration"}
    assert rec["caller"] == "+15551230001" and rec["line_id"] == "gsm1"  # kept from the first upsert
    assert rec["queue_id"] == "support" and rec["agent_id"] == "alice"
    assert rec["flow_path"] == ["entry", "menu", "queue"]  # JSON text in, decoded out
    assert rec["attributes"] == {"lang": "en", "tier": "gold"}
    assert rec["media"] == {"frames_in": 3000, "frames_lost": 2}
    assert rec["duration"] == pytest.approx(70.5)
    assert rec["after_contact_work_end_at"] is None
    assert store.get("c-missing") is None


def test_duration_is_none_until_the_contact_ends(store):
    store.upsert("c-1", initiated_at=T0)
    assert store.get("c-1")["duration"] is None
    store.upsert("c-2")
    assert store.get("c-2")["contact_id"] == "c-2"


def test_list_is_newest_first_with_limit_and_since(store):
    for i, offset in enumerate([10, 30, 20, 40]):
        store.upsert(f"c-{i}", initiated_at=T0 + offset)
    assert [r["contact_id"] for r in store.list()] == ["c-3", "c-1", "c-2", "c-0"]
    assert [r["contact_id"] for r in store.list(limit=2)] == ["c-3", "c-1"]
    assert [r["contact_id"] for r in store.list(since=T0 + 20)] == ["c-3", "c-1", "c-2"]
    assert store.list(limit=0) == []


def test_bad_fields_are_named(store):
    with pytest.raises(ValueError, match="'colour'"):
        store.upsert("c-1", colour="blue")
    with pytest.raises(ValueError, match="'initiated_at'"):
        store.upsert("c-1", initiated_at="yesterday")
    with pytest.raises(ValueError, match="'initiation_method'"):
        store.upsert("c-1", initiation_method="SIDEWAYS")
    with pytest.raises(ValueError, match="'attributes'"):
        store.upsert("c-1", attributes={"x": object()})
    with pytest.raises(ValueError, match="'media'"):
        store.upsert("c-1", media="{not json")
    assert store.get("c-1") is None  # nothing half-written


def test_wal_mode_is_on(tmp_path):
    path = tmp_path / "contacts.db"
    store = ContactStore(path)
    store.upsert("c-1", initiated_at=T0)
    other = sqlite3.connect(path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("SELECT contact_id FROM contacts").fetchall() == [("c-1",)]
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: survives power loss
    finally:
        other.close()
        store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.get("c-1")


def test_record_survives_kill_9_right_after_upsert(tmp_path):
    path = tmp_path / "contacts.db"
    child = (
        "import sys, time\n"
        "from gateway.center.records import ContactStore\n"
        "s = ContactStore(sys.argv[1])\n"
        "s.upsert('c-kill', caller='+15551230001', initiated_at=1764614400.0, attributes={'k': 'v'})\n"
        "print('written', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "written"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert Path(f"{path}-wal").exists()  # the row was in the log, not yet checkpointed
    reopened = ContactStore(path)
    try:
        rec = reopened.get("c-kill")
        assert rec is not None
        assert rec["caller"] == "+15551230001" and rec["attributes"] == {"k": "v"}
    finally:
        reopened.close()


def test_version_1_store_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(str(path))
    db.executescript("""CREATE TABLE contacts (contact_id TEXT PRIMARY KEY, line_id TEXT, caller TEXT,
        initiation_method TEXT, initiated_at REAL, enqueued_at REAL, connected_to_agent_at REAL, ended_at REAL,
        after_contact_work_end_at REAL, queue_id TEXT, agent_id TEXT, recording_path TEXT, recording_seconds REAL,
        disconnect_reason TEXT, flow_path TEXT, attributes TEXT, media TEXT);
        INSERT INTO contacts (contact_id, caller, recording_path) VALUES ('old-1', '+4930', '/r/old-1.wav');
        PRAGMA user_version=1;""")
    db.close()
    store = ContactStore(path)
    assert store.get("old-1")["caller"] == "+4930"
    store.upsert("old-1", voicemail_status="recorded", voicemail_seconds=3.5, recording_pauses=[{"at": 1.0, "seconds": 2.0}])
    assert store.recording_removed("/r/old-1.wav", 1234.0) == 1
    rec = store.get("old-1")
    assert rec["recording_removed_at"] == 1234.0 and rec["voicemail_seconds"] == 3.5
    assert rec["recording_pauses"] == [{"at": 1.0, "seconds": 2.0}]
    store.close()
    assert sqlite3.connect(str(path)).execute("PRAGMA user_version").fetchone()[0] == 3


def test_version_2_store_gains_the_transfer_and_interaction_columns_in_place(tmp_path):
    path = tmp_path / "v2.db"
    store = ContactStore(path)
    store.close()
    db = sqlite3.connect(str(path))       # what a schema-2 gateway left: no previous_contact_id / interaction end
    db.executescript("""ALTER TABLE contacts DROP COLUMN previous_contact_id;
        ALTER TABLE contacts DROP COLUMN agent_interaction_end_at;
        INSERT INTO contacts (contact_id, caller, initiation_method, initiated_at, connected_to_agent_at, ended_at)
            VALUES ('v2-1', '+4930', 'INBOUND', 100.0, 110.0, 200.0);
        PRAGMA user_version=2;""")
    db.close()
    store = ContactStore(path)
    old = store.get("v2-1")
    assert old["caller"] == "+4930" and old["previous_contact_id"] is None and old["agent_interaction_end_at"] is None
    store.upsert("t-1", initiation_method="TRANSFER", previous_contact_id="v2-1", agent_interaction_end_at=250.5)
    assert store.get("t-1")["previous_contact_id"] == "v2-1" and store.get("t-1")["agent_interaction_end_at"] == 250.5
    with pytest.raises(ValueError, match="agent_interaction_end_at"):
        store.upsert("t-1", agent_interaction_end_at="soon")
    store.close()
    assert sqlite3.connect(str(path)).execute("PRAGMA user_version").fetchone()[0] == 3
    reopened = ContactStore(path)                  # opening a version-3 store again changes nothing
    assert reopened.get("t-1")["previous_contact_id"] == "v2-1"
    reopened.close()
