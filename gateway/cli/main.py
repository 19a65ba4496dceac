"""The `callgate` command: run the daemon, validate flows and config, show status and contacts."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DEFAULT_CONFIG = os.environ.get("CALLGATE_CONFIG", "/etc/callgate/callgate.toml")


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG,
                   help=f"gateway config file (default: $CALLGATE_CONFIG or {DEFAULT_CONFIG})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callgate", description="Edge call gateway for USB voice modems.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the gateway daemon")
    _config_arg(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    p = sub.add_parser("flow", help="contact flows")
    fsub = p.add_subparsers(dest="flow_command", required=True, metavar="SUBCOMMAND")
    v = fsub.add_parser("validate", help="validate a flow file (exit 0 valid, 1 invalid)")
    v.add_argument("file")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    from gateway.cli import flow_simulate
    flow_simulate.add_parser(fsub)
    from gateway.cli import flow_render
    flow_render.add_parser(fsub)

    p = sub.add_parser("config", help="gateway configuration")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    v = csub.add_parser("check", help="validate the config, its profiles and flows (exit 0 valid, 1 invalid)")
    _config_arg(v)
    v.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="gateway, lines, queues and agents as the running daemon publishes them")
    _config_arg(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the broker (default 2)")

    from gateway.cli import audit, contacts, metrics
    contacts.add_parser(sub, _config_arg)
    metrics.add_parser(sub, _config_arg)
    audit.add_parser(sub, _config_arg)

    p = sub.add_parser("hash-password", help="print a salted hash for an agent's password_hash")
    p.add_argument("password", nargs="?", help="the password (read from stdin when absent)")

    p = sub.add_parser("web", help="serve the agent dashboard on its own")
    p.add_argument("--ws", required=True, help="broker WebSocket URL the page connects to")
    p.add_argument("--gateway", default="callgate", help="gateway id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("-c", "--config", help="gateway config: the dashboard then also shows each line's flow")

    from gateway.cli.modem import add_parser as add_modem_parser
    add_modem_parser(sub)
    from gateway.cli.line import add_parser as add_line_parser
    add_line_parser(sub)
    p = sub.add_parser("media", help="audio files: speech segments (VAD), DTMF digits")
    msub = p.add_subparsers(dest="media_command", required=True, metavar="SUBCOMMAND")
    from gateway.cli import media_dtmf, media_vad
    media_vad.add_parser(msub)
    media_dtmf.add_parser(msub)
    from gateway.cli.hil import add_parser as add_hil_parser
    add_hil_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "flow": cmd_flow, "config": cmd_config, "status": cmd_status,
               "contacts": cmd_contacts, "metrics": cmd_metrics, "audit": cmd_audit, "hash-password": cmd_hash, "web": cmd_web,
               "modem": cmd_modem, "line": cmd_line, "sms": cmd_sms, "media": cmd_media, "hil": cmd_hil}[args.command]
    try:
        return handler(args) or 0
    except KeyboardInterrupt:
        return 130


def _load_config(path: str):
    from gateway.config import ConfigError, load_config
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"callgate: config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args) -> int:
    import asyncio

    from gateway.daemon import Daemon
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _load_config(args.config)
    asyncio.run(Daemon(cfg).run_until_stopped())
    return 0


def cmd_flow(args) -> int:
    if args.flow_command == "simulate":
        from gateway.cli import flow_simulate
        return flow_simulate.run(args)
    if args.flow_command == "render":
        from gateway.cli import flow_render
        return flow_render.run(args)
    from gateway.flows.validate import validate_flow_text
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"callgate: {path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    flow, issues = validate_flow_text(text, str(path))
    errors = [i for i in issues if i.severity == "error"]
    if args.json:
        from gateway.cli.output import emit_json
        emit_json({"file": str(path), "valid": not errors,
                   "actions": len(flow.actions) if flow else None,
                   "issues": [{"severity": i.severity, "path": i.path, "identifier": i.identifier,
                               "message": i.message, "line": i.line, "column": i.column} for i in issues]})
    else:
        for issue in issues:
            print(f"{issue.severity}: {issue}")
        if errors:
            print(f"{path}: INVALID ({len(errors)} error(s))")
        else:
            print(f"{path}: valid ({len(flow.actions)} actions)")
    return 1 if errors else 0


def cmd_config(args) -> int:
    from gateway.config import ConfigError, load_config
    from gateway.flows.validate import FlowInvalid, load_flow
    from gateway.modem.profile import ProfileError, load_profile
    problems: list[str] = []
    cfg = None
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        problems.append(str(exc))
    if cfg is not None:
        for lc in cfg.lines:
            try:
                load_profile(lc.profile)
            except ProfileError as exc:
                problems.append(f"line {lc.id}: {exc}")
            for flow_path in filter(None, (lc.flow, lc.sms_flow)):
                try:
                    load_flow(flow_path)
                except FlowInvalid as exc:
                    problems.extend(f"line {lc.id}: {i}" for i in exc.issues if i.severity == "error")
    if args.json:
        from gateway.cli.output import emit_json
        emit_json({"config": args.config, "valid": not problems, "problems": problems,
                   "lines": [lc.id for lc in cfg.lines] if cfg else [],
                   "queues": [q.id for q in cfg.queues] if cfg else [],
                   "agents": [a.id for a in cfg.agents] if cfg else [],
                   "routing_profiles": sorted(cfg.routing_profiles) if cfg else [],
                   "security_profiles": sorted(cfg.security_profiles) if cfg else []})
    else:
        for p in problems:
            print(f"error: {p}")
        if cfg and not problems:
            print(f"{args.config}: valid ({len(cfg.lines)} line(s), {len(cfg.queues)} queue(s), {len(cfg.agents)} agent(s))")
    return 1 if problems else 0


def cmd_status(args) -> int:
    from gateway.cli.status import collect_status, print_status
    cfg = _load_config(args.config)
    status = collect_status(cfg, timeout=args.timeout)
    if args.json:
        from gateway.cli.output import emit_json
        emit_json(status)
    else:
        print_status(status)
    return 0 if status.get("reachable") else 1


def cmd_contacts(args) -> int:
    from gateway.cli.contacts import run
    return run(args, _load_config)


def cmd_metrics(args) -> int:
    from gateway.cli.metrics import run
    return run(args, _load_config)


def cmd_audit(args) -> int:
    from gateway.cli.audit import run
    return run(args, _load_config)


def cmd_hash(args) -> int:
    from gateway.center.passwords import hash_password
    password = args.password if args.password is not None else sys.stdin.readline().rstrip("\n")
    if not password:
        print("callgate: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def cmd_modem(args) -> int:
    from gateway.cli.modem import run
    return run(args)


def cmd_web(args) -> int:
    from gateway.web.server import main as web_main
    return web_main(["--ws", args.ws, "--gateway", args.gateway, "--host", args.host, "--port", str(args.port)]
                    + (["--config", args.config] if args.config else []))




def cmd_line(args) -> int:
    from gateway.cli.line import cmd_line as run
    return run(args)


def cmd_sms(args) -> int:
    from gateway.cli.line import cmd_sms as run
    return run(args)


def cmd_hil(args) -> int:
    from gateway.cli.hil import run
    return run(args)


def cmd_media(args) -> int:
    from gateway.cli import media_dtmf, media_vad
    return {"vad": media_vad.run, "dtmf": media_dtmf.run}[args.media_command](args)


if __name__ == "__main__":
    sys.exit(main())
