"""Contact records (a local CTR): one SQLite row per contact, written as the call goes along.

The database runs in WAL mode with ``synchronous=FULL``. WAL alone already survives the gateway
process being killed at any point; FULL also fsyncs the log on every commit, so a record survives
the board losing power, which on a Pi-class device with an SD card is the common way to stop. A
contact produces a handful of writes, so the extra fsync costs nothing that matters.

Timestamps are epoch seconds (float). ``flow_path``, ``attributes`` and ``media`` take JSON text
(a str, checked and stored as given) or any other JSON-serialisable value, and come back decoded. ``get`` and ``list`` add ``duration``
(``ended_at - initiated_at``, or None while either is missing).

``query`` and ``count`` filter by interval, queue, agent, line, caller, initiation method, outcome and
attached media; ``outcome_of`` classifies one record the same way the ``outcome`` filter does in SQL
(OUTCOMES, rules in docs/contacts-and-metrics.md).

One ContactStore belongs to one thread (the asyncio loop); each upsert is committed at once.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

SCHEMA_VERSION = 3  # 2 added the recording_* and voicemail_* columns, 3 previous_contact_id,
# agent_interaction_end_at and tags (each added in place to an older store)

_TIMESTAMPS = (
    "initiated_at",
    "enqueued_at",
    "connected_to_agent_at",
    "agent_interaction_end_at",
    "ended_at",
    "after_contact_work_end_at",
)
_JSON = ("flow_path", "attributes", "media", "recording_pauses", "tags")
_NUMBERS = ("recording_seconds", "recording_removed_at", "voicemail_seconds", "voicemail_speech_seconds")
INITIATION_METHODS = frozenset(
    {"INBOUND", "OUTBOUND", "TRANSFER", "CALLBACK", "API", "QUEUE_TRANSFER", "MONITOR", "DISCONNECT"}
)

COLUMNS = (
    "contact_id",
    "line_id",
    "caller",
    "initiation_method",
    "initiated_at",
    "enqueued_at",
    "connected_to_agent_at",
    "ended_at",
    "after_contact_work_end_at",
    "queue_id",
    "agent_id",
    "recording_path",
    "recording_seconds",
    "disconnect_reason",
    "flow_path",
    "attributes",
    "media",
    "recording_mode",          # "stereo" (caller left, agent right) | "mono" (mixed)
    "recording_pauses",        # [{"at": seconds into the recording, "seconds": length of the pause}]
    "recording_removed_at",    # when the retention policy deleted the recording file
    "voicemail_path",
    "voicemail_seconds",       # length of the kept message after trimming
    "voicemail_speech_seconds",
    "voicemail_status",        # "recording" (in progress) | "recorded" | "hung_up" | "no_speech" (discarded) | "error"
    "previous_contact_id",     # the contact this one continues (TRANSFER: the agent's leg before; CALLBACK: the call)
    "agent_interaction_end_at",  # when the conversation with the agent ended (after-contact work starts)
    "tags",                    # the flow's TagContact tags {key: value}
)
_ADDED_IN_2 = {"recording_mode": "TEXT", "recording_pauses": "TEXT", "recording_removed_at": "REAL",
               "voicemail_path": "TEXT", "voicemail_seconds": "REAL", "voicemail_speech_seconds": "REAL",
               "voicemail_status": "TEXT"}
_ADDED_IN_3 = {"previous_contact_id": "TEXT", "agent_interaction_end_at": "REAL", "tags": "TEXT"}
_FIELDS = frozenset(COLUMNS) - {"contact_id"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    contact_id TEXT PRIMARY KEY,
    line_id TEXT,
    caller TEXT,
    initiation_method TEXT,
    initiated_at REAL,
    enqueued_at REAL,
    connected_to_agent_at REAL,
    ended_at REAL,
    after_contact_work_end_at REAL,
    queue_id TEXT,
    agent_id TEXT,
    recording_path TEXT,
    recording_seconds REAL,
    disconnect_reason TEXT,
    flow_path TEXT,
    attributes TEXT,
    media TEXT,
    recording_mode TEXT,
    recording_pauses TEXT,
    recording_removed_at REAL,
    voicemail_path TEXT,
    voicemail_seconds REAL,
    voicemail_speech_seconds REAL,
    voicemail_status TEXT,
    previous_contact_id TEXT,
    agent_interaction_end_at REAL,
    tags TEXT
);
CREATE INDEX IF NOT EXISTS contacts_initiated_at ON contacts (initiated_at);
CREATE INDEX IF NOT EXISTS contacts_queue_initiated ON contacts (queue_id, initiated_at);
CREATE INDEX IF NOT EXISTS contacts_agent_initiated ON contacts (agent_id, initiated_at);
"""

# What became of a contact: exactly one of these, the first rule that holds (see outcome_of).
OUTCOMES = ("sms", "in_progress", "handled", "voicemail", "callback_queued", "abandoned", "not_connected",
            "ended_in_flow")
CALLBACK_QUEUED_REASON = "callback_queued"  # disconnect_reason of a call that hung up leaving a queued callback

_OUTCOME_SQL = f"""(CASE
    WHEN (CASE WHEN json_valid(attributes) THEN json_extract(attributes, '$.channel') END) = 'SMS' THEN 'sms'
    WHEN ended_at IS NULL THEN 'in_progress'
    WHEN connected_to_agent_at IS NOT NULL THEN 'handled'
    WHEN voicemail_status = 'recorded' THEN 'voicemail'
    WHEN disconnect_reason = '{CALLBACK_QUEUED_REASON}' THEN 'callback_queued'
    WHEN enqueued_at IS NOT NULL AND coalesce(initiation_method, '') <> 'CALLBACK' THEN 'abandoned'
    WHEN initiation_method IN ('OUTBOUND', 'CALLBACK') THEN 'not_connected'
    ELSE 'ended_in_flow' END)"""


class ContactStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # isolation_level=None: every statement commits by itself, so an upsert is durable on return.
        self._db: sqlite3.Connection | None = sqlite3.connect(str(self.path), isolation_level=None)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version in (1, 2, 3):  # a version-3 store from before tags joined version 3 gains it too
            present = {row[1] for row in self._db.execute("PRAGMA table_info(contacts)")}
            added = {**(_ADDED_IN_2 if version == 1 else {}), **_ADDED_IN_3}
            for name, kind in added.items():
                if name not in present:
                    self._db.execute(f"ALTER TABLE contacts ADD COLUMN {name} {kind}")
            version = 0
        if version == 0:
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path}: contact store schema version {version}, this gateway reads {SCHEMA_VERSION}"
            )

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"{self.path}: contact store is closed")
        return self._db

    def upsert(self, contact_id: str, **fields: object) -> None:
        """Create the record or update the named fields of it; other fields keep their values."""
        if not isinstance(contact_id, str) or not contact_id:
            raise ValueError("contact_id must be a non-empty string")
        values = {name: _encode(name, value) for name, value in fields.items()}
        names = ["contact_id", *values]
        placeholders = ", ".join("?" for _ in names)
        if values:
            updates = ", ".join(f"{n} = excluded.{n}" for n in values)
            conflict = f"DO UPDATE SET {updates}"
        else:
            conflict = "DO NOTHING"
        self._conn().execute(
            f"INSERT INTO contacts ({', '.join(names)}) VALUES ({placeholders}) "
            f"ON CONFLICT (contact_id) {conflict}",
            [contact_id, *values.values()],
        )

    def get(self, contact_id: str) -> dict | None:
        row = self._conn().execute("SELECT * FROM contacts WHERE contact_id = ?", (contact_id,)).fetchone()
        return None if row is None else _decode(row)

    def list(self, *, limit: int = 100, since: float | None = None) -> list[dict]:
        """Records newest first (by initiated_at; records without it last), at most ``limit``."""
        return self.query(limit=limit, since=since)

    def query(self, *, since: float | None = None, until: float | None = None, queue: str | None = None,
              agent: str | None = None, line: str | None = None, caller: str | None = None,
              method: str | None = None, outcome: str | None = None, with_voicemail: bool | None = None,
              with_recording: bool | None = None, limit: int | None = 100, offset: int = 0) -> list[dict]:
        """Records matching every filter given, newest first (by initiated_at; records without it last).

        since <= initiated_at < until; queue, agent, line and method match exactly, caller is a part of the
        caller's number; outcome is one of OUTCOMES; with_voicemail / with_recording True keeps only records
        with a kept voicemail / a recording file not yet removed, False only those without. ``limit`` None
        returns every match."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        where, args = _where(since=since, until=until, queue=queue, agent=agent, line=line, caller=caller,
                             method=method, outcome=outcome, with_voicemail=with_voicemail,
                             with_recording=with_recording)
        rows = self._conn().execute(
            f"SELECT * FROM contacts {where} ORDER BY initiated_at DESC NULLS LAST, rowid DESC LIMIT ? OFFSET ?",
            [*args, -1 if limit is None else limit, offset],
        )
        return [_decode(row) for row in rows]

    def count(self, *, since: float | None = None, until: float | None = None, queue: str | None = None,
              agent: str | None = None, line: str | None = None, caller: str | None = None,
              method: str | None = None, outcome: str | None = None, with_voicemail: bool | None = None,
              with_recording: bool | None = None) -> int:
        """How many records ``query`` with the same filters would return without a limit."""
        where, args = _where(since=since, until=until, queue=queue, agent=agent, line=line, caller=caller,
                             method=method, outcome=outcome, with_voicemail=with_voicemail,
                             with_recording=with_recording)
        return self._conn().execute(f"SELECT count(*) FROM contacts {where}", args).fetchone()[0]

    def recording_removed(self, path: str, at: float) -> int:
        """Note on the records holding ``path`` (recording or voicemail) that the file was deleted at
        ``at``; returns how many records were marked."""
        cur = self._conn().execute(
            "UPDATE contacts SET recording_removed_at = ? WHERE recording_path = ? OR voicemail_path = ?",
            (float(at), str(path), str(path)))
        return cur.rowcount

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def outcome_of(record: dict) -> str:
    """The record's outcome (one of OUTCOMES), by the same rules as the ``outcome`` filter of ``query``."""
    attributes = record.get("attributes")
    method = record.get("initiation_method")
    if isinstance(attributes, dict) and attributes.get("channel") == "SMS":
        return "sms"
    if record.get("ended_at") is None:
        return "in_progress"
    if record.get("connected_to_agent_at") is not None:
        return "handled"
    if record.get("voicemail_status") == "recorded":
        return "voicemail"
    if record.get("disconnect_reason") == CALLBACK_QUEUED_REASON:
        return "callback_queued"
    if record.get("enqueued_at") is not None and method != "CALLBACK":
        return "abandoned"
    if method in ("OUTBOUND", "CALLBACK"):
        return "not_connected"
    return "ended_in_flow"


def _where(*, since, until, queue, agent, line, caller, method, outcome, with_voicemail, with_recording):
    clauses: list[str] = []
    args: list[object] = []
    for column, op, value in (("initiated_at", ">=", since), ("initiated_at", "<", until)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{'since' if op == '>=' else 'until'} must be a finite number, got {value!r}")
            clauses.append(f"{column} {op} ?")
            args.append(float(value))
    for column, value in (("queue_id", queue), ("agent_id", agent), ("line_id", line)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(str(value))
    if caller is not None:
        clauses.append("instr(caller, ?) > 0")
        args.append(str(caller))
    if method is not None:
        if method not in INITIATION_METHODS:
            raise ValueError(f"method must be one of {', '.join(sorted(INITIATION_METHODS))}, got {method!r}")
        clauses.append("initiation_method = ?")
        args.append(method)
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        clauses.append(f"{_OUTCOME_SQL} = ?")
        args.append(outcome)
    if with_voicemail is not None:
        has = "(voicemail_status = 'recorded' AND voicemail_path IS NOT NULL)"
        clauses.append(has if with_voicemail else f"NOT coalesce({has}, 0)")
    if with_recording is not None:
        has = "(recording_path IS NOT NULL AND recording_removed_at IS NULL)"
        clauses.append(has if with_recording else f"NOT {has}")
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def _encode(name: str, value: object) -> object:
    if name not in _FIELDS:
        known = ", ".join(sorted(_FIELDS))
        raise ValueError(f"unknown contact record field {name!r} (known: {known})")
    if value is None:
        return None
    if name in _JSON:
        if isinstance(value, str):  # already JSON text: check it, store it as it is
            try:
                json.loads(value)
            except ValueError as exc:
                raise ValueError(f"contact record field {name!r} is not valid JSON text: {exc}") from None
            return value
        try:
            return json.dumps(value, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"contact record field {name!r} is not JSON-serialisable: {exc}") from None
    if name in _TIMESTAMPS or name in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"contact record field {name!r} must be a finite number, got {value!r}")
        return float(value)
    if name == "initiation_method":
        if value not in INITIATION_METHODS:
            raise ValueError(
                f"contact record field 'initiation_method' must be one of "
                f"{', '.join(sorted(INITIATION_METHODS))}, got {value!r}"
            )
        return value
    if not isinstance(value, str):
        raise ValueError(f"contact record field {name!r} must be a string, got {value!r}")
    return value


def _decode(row: sqlite3.Row) -> dict:
    record = {name: row[name] for name in COLUMNS}
    for name in _JSON:
        if record[name] is not None:
            record[name] = json.loads(record[name])
    start, end = record["initiated_at"], record["ended_at"]
    record["duration"] = None if start is None or end is None else end - start
    return record
