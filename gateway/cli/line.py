"""`callgate line test LINE NUMBER` and `callgate sms send LINE NUMBER TEXT`: ask the running daemon to
place a test call or send an SMS on one of its lines, show progress, print the outcome."""

from __future__ import annotations

import sys

from gateway.cli.output import emit_json


def add_parser(sub) -> None:
    from gateway.cli.main import _config_arg
    p = sub.add_parser("line", help="phone lines of the running gateway")
    lsub = p.add_subparsers(dest="line_command", required=True, metavar="SUBCOMMAND")
    t = lsub.add_parser("test", help="place a test call, play a tone, listen, report each direction")
    _config_arg(t)
    t.add_argument("line", help="line id from the config")
    t.add_argument("number", help="number to call (e.g. your mobile, or the other line of a loop test)")
    t.add_argument("--seconds", type=float, default=3.0, help="seconds of test tone once answered (default 3)")
    t.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the whole test (default 90)")
    t.add_argument("--json", action="store_true")

    p = sub.add_parser("sms", help="SMS on a GSM line of the running gateway")
    ssub = p.add_subparsers(dest="sms_command", required=True, metavar="SUBCOMMAND")
    s = ssub.add_parser("send", help="send an SMS (long and non-Latin text are split and encoded as needed)")
    _config_arg(s)
    s.add_argument("line")
    s.add_argument("number")
    s.add_argument("text")
    s.add_argument("--timeout", type=float, default=60.0)
    s.add_argument("--json", action="store_true")


def _request(args, op: str, fields: dict) -> int:
    from gateway.cli.main import _load_config
    from gateway.cli.remote import RemoteError, admin_request
    cfg = _load_config(args.config)

    def progress(stage: str) -> None:
        if not args.json:
            print(f"  … {stage}", file=sys.stderr, flush=True)
    try:
        reply = admin_request(cfg, op, fields, timeout=args.timeout, on_progress=progress)
    except RemoteError as exc:
        if args.json:
            emit_json({"ok": False, "error": str(exc)})
        else:
            print(f"callgate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        emit_json(reply)
    elif not reply.get("ok"):
        print(f"callgate: {op} failed ({reply.get('code')}): {reply.get('error')}", file=sys.stderr)
    elif op == "line_test":
        print_line_test(reply["result"])
    else:
        result = reply["result"]
        print(f"sent to {result['number']} on line {result['line']}: {result['parts']} part(s), "
              f"{result['encoding']}, message reference(s) {', '.join(map(str, result['references']))}")
    if op == "line_test" and reply.get("ok") and reply["result"]["verdict"] != "audio both ways":
        return 1
    return 0 if reply.get("ok") else 1


def cmd_line(args) -> int:
    return _request(args, "line_test", {"line": args.line, "number": args.number, "seconds": args.seconds})


def print_line_test(r: dict) -> None:
    sent, got = r["sent"], r["received"]
    print(f"line {r['line']} → {r['number']}: {r['outcome']}  ({' → '.join(r['progress'])})")
    if r["answered"]:
        print(f"  to the far end:   {sent['seconds']:.1f} s of {sent['tone_hz']:.0f} Hz, "
              f"{sent['frames_written']} frames written  [{'ok' if sent['audio'] else 'NONE'}]")
        level = "-" if got["level_dbfs"] is None else f"{got['level_dbfs']:.1f} dBFS"
        hz = "-" if got["dominant_hz"] is None else f"{got['dominant_hz']:.0f} Hz"
        print(f"  from the far end: {got['seconds']:.1f} s, level {level}, dominant {hz}  "
              f"[{'ok' if got['audio'] else 'SILENT'}]")
    print(f"  verdict: {r['verdict']}")


def cmd_sms(args) -> int:
    return _request(args, "sms_send", {"line": args.line, "number": args.number, "text": args.text})
