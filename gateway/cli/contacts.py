"""`callgate contacts`: list, filter and export contact records (table, CSV, JSON); also the time
arguments (`--since today`, `-7d`, ISO 8601) that `callgate metrics` shares.

Exit 0 listed, 1 no contact store or it cannot be read or the export cannot be written, 2 usage.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

EXIT_OK, EXIT_TROUBLE, EXIT_USAGE = 0, 1, 2
DEFAULT_TABLE_LIMIT = 20
TIME_HELP = ("ISO 8601 date or time (2025-12-01, 2025-12-01T09:30, 2025-12-01 09:30+01:00; without an offset "
             "it is local time), now, today, yesterday, -7d, -2h, -30m, -90s, -1w (before now), or @EPOCH")

_RELATIVE = re.compile(r"-(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

# CSV: every store column, then the derived ones; times as local ISO 8601 with the offset, JSON-valued
# columns (flow_path, attributes, media, recording_pauses) as compact JSON text in one cell.
_TIME_COLUMNS = ("initiated_at", "enqueued_at", "connected_to_agent_at", "agent_interaction_end_at", "ended_at",
                 "after_contact_work_end_at", "recording_removed_at")
_JSON_COLUMNS = ("flow_path", "attributes", "media", "recording_pauses", "tags")


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds for a time argument (TIME_HELP); ValueError naming the text when it is none of them."""
    now = time.time() if now is None else now
    value = text.strip()
    lowered = value.lower()
    if lowered == "now":
        return now
    if lowered in ("today", "yesterday"):
        midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
        if lowered == "yesterday":
            # one calendar day back, then midnight again: right across a DST change as well
            midnight = (midnight - timedelta(hours=12)).replace(hour=0)
        return midnight.timestamp()
    match = _RELATIVE.fullmatch(lowered)
    if match:
        return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if value.startswith("@"):
        try:
            return float(value[1:])
        except ValueError:
            pass
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return moment.timestamp()  # a naive datetime is taken as local time
    raise ValueError(f"cannot read {text!r} as a time; use {TIME_HELP}")


def time_arg(text: str) -> float:
    """argparse type for --since/--until."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_store_args(p: argparse.ArgumentParser) -> None:
    """--db, and values like -7d read as values rather than as unknown options (``--since -7d``)."""
    if hasattr(p, "_negative_number_matcher"):  # argparse's own test for "-5" being a value, widened
        p._negative_number_matcher = re.compile(r"^-\d+(?:\.\d+)?[smhdw]?$|^-\d*\.\d+$")
    p.add_argument("--db", metavar="FILE",
                   help="read this contacts.db instead of the one in the config's data_dir (no config needed)")


def add_parser(sub, config_arg) -> None:
    p = sub.add_parser(
        "contacts", help="list, filter and export contact records",
        description="List contact records newest first. Filters combine (all must hold). Times: " + TIME_HELP
                    + "; --since is inclusive, --until exclusive, both compare the contact's start (initiated_at). "
                      "Exit 0 listed, 1 no contact store or cannot write the export, 2 usage.")
    config_arg(p)
    add_store_args(p)
    p.add_argument("--since", type=time_arg, metavar="T", help="contacts started at or after T")
    p.add_argument("--until", type=time_arg, metavar="T", help="contacts started before T")
    p.add_argument("--queue", metavar="Q", help="queue id")
    p.add_argument("--agent", metavar="A", help="agent id")
    p.add_argument("--line", metavar="L", help="line id")
    p.add_argument("--caller", metavar="N", help="the caller's number contains N")
    p.add_argument("--method", type=str.upper, metavar="METHOD",
                   help="initiation method: INBOUND, OUTBOUND, TRANSFER, CALLBACK, QUEUE_TRANSFER, API, ...")
    p.add_argument("--outcome", metavar="OUTCOME",
                   help="handled, abandoned, voicemail, callback_queued, not_connected, ended_in_flow, "
                        "in_progress or sms")
    p.add_argument("--with-voicemail", action="store_true", help="only contacts with a kept voicemail message")
    p.add_argument("--with-recording", action="store_true", help="only contacts whose recording file is kept")
    p.add_argument("--limit", type=int, metavar="N",
                   help=f"at most N contacts (default {DEFAULT_TABLE_LIMIT} for the table, all for CSV/JSON/export)")
    p.add_argument("--offset", type=int, default=0, metavar="N", help="skip the N newest matches first")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="a JSON list of records (times as epoch seconds)")
    out.add_argument("--csv", action="store_true", help="CSV with a header row, one row per contact")
    out.add_argument("--export", metavar="FILE", help="write the matches to FILE.csv or FILE.json")


def open_store(args, load_config, command: str):
    """The ContactStore the arguments name, or (None, exit code) after printing why there is none."""
    from gateway.center.records import ContactStore
    db = Path(args.db) if args.db else load_config(args.config).data_dir / "contacts.db"
    if not db.exists():
        print(f"callgate {command}: no contact records yet ({db} does not exist)", file=sys.stderr)
        return None, EXIT_TROUBLE
    try:
        return ContactStore(db), EXIT_OK
    except Exception as exc:  # sqlite3.Error, a newer schema, a file that is not a database
        print(f"callgate {command}: cannot read {db}: {exc}", file=sys.stderr)
        return None, EXIT_TROUBLE


def run(args, load_config) -> int:
    from gateway.center.records import INITIATION_METHODS, OUTCOMES
    if args.method is not None and args.method not in INITIATION_METHODS:
        return _usage(f"--method: unknown initiation method {args.method!r} "
                      f"(one of {', '.join(sorted(INITIATION_METHODS))})")
    if args.outcome is not None and args.outcome not in OUTCOMES:
        return _usage(f"--outcome: unknown outcome {args.outcome!r} (one of {', '.join(OUTCOMES)})")
    if args.since is not None and args.until is not None and args.since >= args.until:
        return _usage("--since must be before --until")
    if args.limit is not None and args.limit < 0 or args.offset < 0:
        return _usage("--limit and --offset must be >= 0")
    export_format = None
    if args.export:
        export_format = Path(args.export).suffix.lower().lstrip(".")
        if export_format not in ("csv", "json"):
            return _usage(f"--export: cannot tell the format from {args.export!r}: name it .csv or .json")
    machine = args.json or args.csv or args.export
    limit = args.limit if args.limit is not None else (None if machine else DEFAULT_TABLE_LIMIT)
    filters = dict(since=args.since, until=args.until, queue=args.queue, agent=args.agent, line=args.line,
                   caller=args.caller, method=args.method, outcome=args.outcome,
                   with_voicemail=True if args.with_voicemail else None,
                   with_recording=True if args.with_recording else None)
    store, code = open_store(args, load_config, "contacts")
    if store is None:
        return code
    try:
        rows = store.query(**filters, limit=limit, offset=args.offset)
        total = store.count(**filters) if not machine else len(rows)
    finally:
        store.close()
    if args.json:
        sys.stdout.write(to_json(rows))
    elif args.csv:
        sys.stdout.write(to_csv(rows))
    elif args.export:
        text = to_csv(rows) if export_format == "csv" else to_json(rows)
        try:
            _write_atomically(Path(args.export), text)
        except OSError as exc:
            print(f"callgate contacts: cannot write {args.export}: {exc}", file=sys.stderr)
            return EXIT_TROUBLE
        print(f"wrote {len(rows)} contact(s) to {args.export}")
    else:
        print_table(rows, total, args.offset)
    return EXIT_OK


def json_rows(rows: list[dict]) -> list[dict]:
    """Records as the store gives them (times in epoch seconds), each with its outcome and queue wait."""
    from gateway.center.metrics import queue_wait
    from gateway.center.records import outcome_of
    return [{**r, "outcome": outcome_of(r), "queue_wait": queue_wait(r)} for r in rows]


def to_json(rows: list[dict]) -> str:
    return json.dumps(json_rows(rows), indent=2, default=str) + "\n"


def to_csv(rows: list[dict]) -> str:
    from gateway.center.records import COLUMNS
    buf = io.StringIO()
    records = json_rows(rows)
    extra = [k for r in records for k in r if k not in COLUMNS]  # duration, outcome, queue_wait (+ newer columns)
    header = list(COLUMNS) + list(dict.fromkeys(extra))
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for rec in records:
        writer.writerow([_csv_cell(name, rec.get(name)) for name in header])
    return buf.getvalue()


def _csv_cell(name: str, value) -> str:
    if value is None:
        return ""
    if name in _TIME_COLUMNS:
        return datetime.fromtimestamp(value).astimezone().isoformat(timespec="milliseconds")
    if name in _JSON_COLUMNS or isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def print_table(rows: list[dict], total: int, offset: int) -> None:
    from gateway.cli.output import table, when
    shown = []
    for r in json_rows(rows):
        shown.append({**r, "started": when(r.get("initiated_at")),
                      "wait": _seconds(r.get("queue_wait")), "secs": _seconds(r.get("duration"))})
    print(table(shown, [("contact_id", "CONTACT"), ("started", "STARTED"), ("initiation_method", "METHOD"),
                        ("caller", "CALLER"), ("line_id", "LINE"), ("queue_id", "QUEUE"), ("agent_id", "AGENT"),
                        ("wait", "WAIT"), ("secs", "SECONDS"), ("outcome", "OUTCOME"),
                        ("disconnect_reason", "ENDED BY")]))
    if offset or len(rows) < total:
        print(f"contacts {offset + 1 if rows else offset}-{offset + len(rows)} of {total} matching "
              f"(--limit, --offset for more)")


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _usage(message: str) -> int:
    print(f"callgate contacts: {message}", file=sys.stderr)
    return EXIT_USAGE
