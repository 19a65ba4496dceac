"""`callgate metrics`: historical metrics over an interval from the contact records, in total and per
queue, agent or hour (table or JSON with the same numbers).

Exit 0 computed (also for an interval with no contacts), 1 no contact store or it cannot be read, 2 usage.
"""

from __future__ import annotations

import sys
import time

from gateway.cli.contacts import EXIT_OK, EXIT_USAGE, TIME_HELP, add_store_args, open_store, parse_time, time_arg

_COLUMNS = [("contacts", "CONTACTS"), ("handled", "HANDLED"), ("abandoned", "ABANDONED"),
            ("voicemails", "VOICEMAIL"), ("outbound", "OUTBOUND"), ("callbacks", "CALLBACKS"),
            ("avg_handle_seconds", "AHT s"), ("avg_answer_seconds", "ASA s"), ("avg_abandon_seconds", "ABANDON s"),
            ("service_level", "SL %"), ("longest_wait_seconds", "LONGEST WAIT s")]


GROUPINGS = ("queue", "agent", "hour")   # gateway.center.metrics.GROUPINGS, without importing SQLite here
DEFAULT_SL_SECONDS = 20.0


def add_parser(sub, config_arg) -> None:
    p = sub.add_parser(
        "metrics", help="historical metrics (handled, abandoned, AHT, ASA, service level) over an interval",
        description="Metrics of the contacts started in [--since, --until) (default: today so far). Times: "
                    + TIME_HELP + ". Definitions: docs/contacts-and-metrics.md. "
                      "Exit 0 computed, 1 no contact store, 2 usage.")
    config_arg(p)
    add_store_args(p)
    p.add_argument("--since", type=time_arg, metavar="T", help="start of the interval (default: today)")
    p.add_argument("--until", type=time_arg, metavar="T", help="end of the interval, exclusive (default: now)")
    p.add_argument("--by", choices=GROUPINGS, help="one row per queue, agent or hour, then the total")
    p.add_argument("--sl", type=float, default=DEFAULT_SL_SECONDS, metavar="SECONDS",
                   help=f"service level threshold in seconds (default {DEFAULT_SL_SECONDS:g})")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args, load_config) -> int:
    from gateway.center.metrics import metrics_between
    since = args.since if args.since is not None else parse_time("today")
    until = args.until if args.until is not None else time.time()
    if since >= until:
        print("callgate metrics: --since must be before --until", file=sys.stderr)
        return EXIT_USAGE
    if args.sl < 0:
        print(f"callgate metrics: --sl must be >= 0, got {args.sl:g}", file=sys.stderr)
        return EXIT_USAGE
    store, code = open_store(args, load_config, "metrics")
    if store is None:
        return code
    try:
        result = metrics_between(store, since, until, by=args.by, sl_seconds=args.sl)
    finally:
        store.close()
    if args.json:
        from gateway.cli.output import emit_json
        emit_json(result)
    else:
        print_metrics(result)
    return EXIT_OK


def print_metrics(result: dict) -> None:
    from gateway.cli.output import table, when
    print(f"contacts started {when(result['since'])} to {when(result['until'])} (local time); "
          f"service level within {result['sl_seconds']:g} s")
    by = result["by"]
    rows = []
    for group in result["groups"]:
        rows.append({**group, "key": "(none)" if group["key"] is None else group["key"]})
    rows.append({**result["total"], "key": "TOTAL"})
    heading = {"queue": "QUEUE", "agent": "AGENT", "hour": "HOUR"}.get(by, "")
    print(table(rows, [("key", heading), *_COLUMNS]))
