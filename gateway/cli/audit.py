"""`callgate audit`: read the audit log (every agent command, accepted or refused, and every technician
operation), oldest first, across its rotated files; filters by time, agent, action and result.

Exit 0 listed, 1 no audit log yet, 2 usage.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from gateway.cli.contacts import TIME_HELP, time_arg

EXIT_OK, EXIT_TROUBLE = 0, 1
DEFAULT_TABLE_LIMIT = 50


def add_parser(sub, config_arg) -> None:
    p = sub.add_parser(
        "audit", help="who did what: agent commands and technician operations",
        description="List audit log entries, oldest first (the newest --limit of the matches). Times: " + TIME_HELP
                    + ". Exit 0 listed, 1 no audit log yet, 2 usage.")
    config_arg(p)
    if hasattr(p, "_negative_number_matcher"):  # let `--since -7d` be a value, as in `callgate contacts`
        p._negative_number_matcher = re.compile(r"^-\d+(?:\.\d+)?[smhdw]?$|^-\d*\.\d+$")
    p.add_argument("--file", metavar="FILE",
                   help="read this audit.log (and its rotated files) instead of the config's data_dir one")
    p.add_argument("--since", type=time_arg, metavar="T", help="entries at or after T")
    p.add_argument("--until", type=time_arg, metavar="T", help="entries before T")
    p.add_argument("--agent", metavar="A", help="entries sent by agent A or acting on it")
    p.add_argument("--action", metavar="ACTION", help="one action or operation (accept, pause_recording, line_test, ...)")
    p.add_argument("--refused", action="store_true", help="only refused or failed entries")
    p.add_argument("--limit", type=int, metavar="N",
                   help=f"the newest N matches (default {DEFAULT_TABLE_LIMIT} for the table, all for --json)")
    p.add_argument("--json", action="store_true", help="a JSON list of the entries as written")


def matches(entry: dict, args) -> bool:
    from gateway.center.audit import entry_time
    if args.agent is not None and args.agent not in (entry.get("actor"), entry.get("agent")):
        return False
    if args.action is not None and entry.get("action") != args.action:
        return False
    if args.refused and entry.get("result") == "ok":
        return False
    if args.since is not None or args.until is not None:
        at = entry_time(entry)
        if at is None or (args.since is not None and at < args.since) or (args.until is not None and at >= args.until):
            return False
    return True


def run(args, load_config) -> int:
    from gateway.center.audit import audit_files, read_audit
    path = Path(args.file) if args.file else load_config(args.config).data_dir / "audit.log"
    if not audit_files(path):
        print(f"callgate audit: no audit log yet ({path} does not exist)", file=sys.stderr)
        return EXIT_TROUBLE
    if args.limit is not None and args.limit < 0:
        print("callgate audit: --limit must be 0 or more", file=sys.stderr)
        return 2
    entries, unreadable = [], 0
    for entry in read_audit(path):
        if entry is None:
            unreadable += 1
        elif matches(entry, args):
            entries.append(entry)
    limit = args.limit if args.limit is not None else (None if args.json else DEFAULT_TABLE_LIMIT)
    if limit is not None:
        entries = entries[len(entries) - limit:] if limit else []
    if unreadable:
        print(f"callgate audit: {unreadable} line(s) are not JSON entries (cut short by a crash?); skipped",
              file=sys.stderr)
    if args.json:
        from gateway.cli.output import emit_json
        emit_json(entries)
        return EXIT_OK
    from gateway.cli.output import table
    rows = []
    for e in entries:
        target = e.get("contact_id") or e.get("number") or e.get("line") or ""
        if e.get("queue"):
            target = f"{target} ({e['queue']})" if target else e["queue"]
        who = e.get("actor") or "-"
        if e.get("agent") and e.get("agent") != e.get("actor"):
            who = f"{who} -> {e['agent']}"
        why = e.get("reason") or ""
        if e.get("missing_permission"):
            why = f"missing {e['missing_permission']}: {why}"
        rows.append({"time": str(e.get("time", ""))[:23].replace("T", " "), "who": who, "action": e.get("action"),
                     "target": target or None, "result": e.get("code") if e.get("result") != "ok" else "ok",
                     "why": why[:100] or None})
    print(table(rows, [("time", "TIME"), ("who", "WHO"), ("action", "ACTION"), ("target", "TARGET"),
                       ("result", "RESULT"), ("why", "WHY")]))
    return EXIT_OK
