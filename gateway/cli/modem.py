"""`callgate modem scan|info|at`: find modems, check one, talk AT to it (one-shot or a console).

Exit codes: 0 done; 1 the modem answered a command with an error or not at all (`modem at`);
2 bad argument, missing port or bad inventory/profile; 3 the port is in use; 4 not a modem (no
answer to AT in time). Ports may be named by /dev path or by their /dev/serial/by-id name.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading

HISTORY_FILE = "~/.callgate_at_history"
HISTORY_LENGTH = 1000
DEFAULT_AT_TIMEOUT = 5.0
CALL_TIMEOUT = 40.0          # ATD/ATA wait for the network unless --timeout says otherwise
URC_MARK = "[urc] "
EXIT_FAILED, EXIT_USAGE, EXIT_BUSY, EXIT_NOT_MODEM = 1, 2, 3, 4
_CALL_CONTROL = re.compile(r"^AT\s*(A\s*$|D)", re.I)


class CliFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_parser(sub) -> None:
    """Register `modem` and its subcommands on the top-level subparsers."""
    from gateway.cli.main import DEFAULT_CONFIG

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG,
                       help="gateway config; ports its running daemon uses are never opened "
                            f"(default: $CALLGATE_CONFIG or {DEFAULT_CONFIG})")

    p = sub.add_parser("modem", help="find modems, check one, talk AT to it")
    msub = p.add_subparsers(dest="modem_command", required=True, metavar="SUBCOMMAND")
    s = msub.add_parser("scan", help="probe serial ports, identify modems, pick profiles, pair audio ports")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds a port gets to answer AT, and each identify command (default 2)")
    s.add_argument("--port", action="append", default=[], metavar="P",
                   help="only the modem owning this port (repeatable)")
    s.add_argument("--all", action="store_true",
                   help="also probe ports that are not USB (ttyS*, ttyAMA*: consoles, Bluetooth, HAT UARTs)")
    config_arg(s)
    i = msub.add_parser("info", help="identity, SIM, operator, registration, signal and IMS of one modem")
    i.add_argument("port", metavar="PORT")
    i.add_argument("--profile", metavar="ID", help="modem profile (default: identified from the modem)")
    i.add_argument("--timeout", type=float, default=None, metavar="S", help="seconds per query (default 3)")
    i.add_argument("--json", action="store_true")
    config_arg(i)
    a = msub.add_parser("at", help="send AT commands (one-shot), or an interactive console without COMMAND")
    a.add_argument("port", metavar="PORT")
    a.add_argument("commands", nargs="*", metavar="COMMAND", help="e.g. 'AT+CSQ' (the AT may be left out)")
    a.add_argument("--timeout", type=float, default=None, metavar="S",
                   help=f"seconds to wait for a final result (default {DEFAULT_AT_TIMEOUT:g}, ATD/ATA {CALL_TIMEOUT:g})")
    a.add_argument("--json", action="store_true")
    config_arg(a)


def run(args) -> int:
    import logging
    # The report says what went wrong on each port; the AT layer's own warnings would repeat it.
    logging.getLogger("gateway").setLevel(logging.ERROR)
    try:
        return {"scan": _scan, "info": _info, "at": _at}[args.modem_command](args)
    except CliFailure as exc:
        print(f"callgate: {exc}", file=sys.stderr)
        return exc.code


# -- scan ----------------------------------------------------------------------------------------

def _scan(args) -> int:
    import asyncio

    from gateway.cli.output import emit_json, table
    from gateway.modem.detect import PROBE_TIMEOUT, scan
    ports = _list_ports()
    if args.port:
        chosen = [_find(name, ports) for name in args.port]
        keys = {p.device_key for p in chosen}
        listed = [p for p in ports if p.device_key in keys]
        ports = listed + [p for p in chosen if p not in listed]
        skipped = []
    else:
        skipped = [p for p in ports if p.vid is None and p.role is None and not args.all]
        ports = [p for p in ports if p not in skipped]
    profiles = _profiles()
    findings = asyncio.run(scan(ports, profiles, probe_timeout=args.timeout or PROBE_TIMEOUT,
                                busy=daemon_ports(args.config)))
    if args.json:
        emit_json({"findings": [f.to_dict() for f in findings], "not_probed": [p.device for p in skipped]})
        return 0
    note = (f"not probed (not USB; name them with --port or use --all): {', '.join(p.device for p in skipped)}"
            if skipped else "")
    if not findings:
        print("no USB serial ports found (is the modem plugged in and powered? `ls /dev/ttyUSB* /dev/ttyACM*`)")
        if note:
            print(note)
        return 0
    rows = [{"port": f.device, "usb": f.usb, "model": f.model, "firmware": f.firmware, "profile": f.profile_id,
             "audio": f.audio_port, "status": f.status} for f in findings]
    print(table(rows, [("port", "PORT"), ("usb", "USB"), ("model", "MODEL"), ("firmware", "FIRMWARE"),
                       ("profile", "PROFILE"), ("audio", "AUDIO PORT"), ("status", "STATUS")]))
    for f in findings:
        print()
        ids = [x for x in (f.by_id, f.serial_number and f"serial {f.serial_number}", f.imei and f"IMEI {f.imei}") if x]
        print(f"{f.device}: {f.status}" + (f" ({', '.join(ids)})" if ids else ""))
        print(f"  {f.advice}")
        if f.status not in ("ready", "in_use") and f.answers:
            print("  answers:")
            for command, reply in f.answers:
                print(f"    {command} -> {' / '.join(reply) if reply else '(nothing)'}")
    if note:
        print()
        print(note)
    return 0


# -- info ----------------------------------------------------------------------------------------

def _info(args) -> int:
    import asyncio

    from gateway.cli.output import emit_json
    from gateway.modem.info import modem_info

    async def go():
        port, info_port, profile = await _connect(args.port, args.config, args.timeout, args.profile, identify=True)
        try:
            return info_port, await modem_info(port.session, profile, timeout=args.timeout)
        finally:
            await port.close()

    info_port, info = asyncio.run(go())
    if args.json:
        emit_json({"port": info_port.device, "by_id": info_port.by_id, **info.to_dict()})
        return 0
    sig = None
    if info.signal_dbm is not None:
        sig = f"{info.signal_dbm} dBm, {info.signal_bars}/5 bars (CSQ {info.rssi})"
        if info.rsrp_dbm is not None:
            sig += f"; LTE RSRP {info.rsrp_dbm:g} dBm"
        if info.rsrq_db is not None:
            sig += f", RSRQ {info.rsrq_db:g} dB"
    domains = [f"{name} {value}" for name, value in (("CS", info.registration_cs), ("PS", info.registration_ps),
                                                     ("LTE", info.registration_eps)) if value]
    operator = " ".join(x for x in (info.operator, info.operator_numeric and f"({info.operator_numeric})") if x)
    rows = [("port", info_port.device + (f" ({info_port.by_id})" if info_port.by_id else "")),
            ("profile", info.profile_id or "none matched"), ("manufacturer", info.manufacturer),
            ("model", info.model), ("firmware", info.firmware), ("IMEI", info.imei), ("IMSI", info.imsi),
            ("SIM", info.sim), ("operator", operator or None),
            ("registration", info.registration and f"{info.registration} ({', '.join(domains)})"),
            ("technology", info.access_technology), ("signal", sig),
            ("VoLTE/IMS", info.ims or ("no query in the profile" if info.profile_id else None))]
    for label, value in rows:
        print(f"{label + ':':<14}{'-' if value is None else value}")
    if info.errors:
        print("queries that failed:")
        for command, error in info.errors.items():
            print(f"  {command}: {error}")
    return 0


# -- at ------------------------------------------------------------------------------------------

def _at(args) -> int:
    if args.commands:
        return _one_shot(args)
    return _console(args)


def _one_shot(args) -> int:
    import asyncio

    from gateway.cli.output import emit_json
    commands = [_normalise(c) for c in args.commands]
    results: list[dict] = []
    urcs: list[str] = []

    async def go() -> int:
        port, _, _ = await _connect(args.port, args.config, args.timeout, None)
        port.session.add_urc_listener(urcs.append if args.json else lambda line: print(URC_MARK + line, flush=True))
        try:
            for cmd in commands:
                result = await _run_command(port.session, cmd, args.timeout)
                results.append(result)
                if not args.json:
                    _print_result(result)
                if not result["ok"]:
                    return EXIT_FAILED
            return 0
        finally:
            await port.close()

    code = asyncio.run(go())
    if args.json:
        emit_json({"results": results, "unsolicited": urcs})
    return code


async def _run_command(session, cmd: str, timeout: float | None) -> dict:
    from gateway.at.errors import AtCommandError, AtError, AtTimeout, CmeError
    from gateway.modem.info import CME_MEANING
    call = bool(_CALL_CONTROL.match(cmd))
    wait = timeout or (CALL_TIMEOUT if call else DEFAULT_AT_TIMEOUT)
    try:
        response = await session.command(cmd, wait, call_control=call)
    except AtTimeout as exc:
        return {"command": cmd, "lines": exc.partial, "final": None, "ok": False,
                "error": f"no final result within {wait:g} s"}
    except AtCommandError as exc:
        meaning = CME_MEANING.get(exc.code) if isinstance(exc, CmeError) and isinstance(exc.code, int) else None
        return {"command": cmd, "lines": exc.lines, "final": exc.final, "ok": False,
                "error": exc.final + (f" ({meaning})" if meaning else "")}
    except AtError as exc:
        return {"command": cmd, "lines": [], "final": None, "ok": False, "error": str(exc)}
    return {"command": cmd, "lines": response.lines, "final": response.final, "ok": True, "error": None}


def _print_result(result: dict, out=None) -> None:
    out = out or sys.stdout
    for line in result["lines"]:
        out.write(line + "\n")
    if result["final"] is not None:
        out.write(result["final"] + "\n")
    out.flush()
    if not result["ok"]:
        print(f"callgate: {result['command']}: {result['error']}", file=sys.stderr, flush=True)


def _console(args) -> int:
    """Read commands from stdin (readline with history on a terminal); URCs print as they come."""
    import asyncio
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="at-console", daemon=True)
    thread.start()

    def call(coro, wait: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(wait)

    tty = sys.stdin.isatty() and sys.stdout.isatty()
    readline = _readline() if tty else None
    history = os.path.expanduser(HISTORY_FILE)
    if readline is not None:
        try:
            readline.read_history_file(history)
        except OSError:
            pass
        readline.set_history_length(HISTORY_LENGTH)
    out_lock = threading.Lock()
    state = {"at_prompt": False, "gone": False, "closing": False}
    try:
        port, info_port, _ = call(_connect(args.port, args.config, args.timeout, None))
    except CliFailure:
        loop.call_soon_threadsafe(loop.stop)
        raise
    prompt = f"{info_port.device.removeprefix('/dev/')}> " if tty else ""

    def show(text: str) -> None:          # runs on the loop thread
        with out_lock:
            if state["at_prompt"] and readline is not None:
                sys.stdout.write("\r\x1b[K" + text + "\n" + prompt + readline.get_line_buffer())
            else:
                sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def gone() -> None:
        if state["closing"]:
            return
        state["gone"] = True
        show("[port closed: the modem went away]")
        if state["at_prompt"]:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    port.session.add_urc_listener(lambda line: show(URC_MARK + line))
    port.session.add_close_listener(lambda: loop.call_soon(gone))
    if tty:
        print(f"AT console on {info_port.device}: type commands, Ctrl-D to leave. Unsolicited lines show as "
              f"'{URC_MARK.strip()} ...'.")
    code = 0
    try:
        while not state["gone"]:
            try:
                state["at_prompt"] = True
                line = input(prompt)
            except EOFError:
                if tty:
                    print()
                break
            except KeyboardInterrupt:
                if not state["gone"]:
                    print("^C")
                continue
            finally:
                state["at_prompt"] = False
            cmd = line.strip()
            if not cmd:
                continue
            if cmd.lower() in ("exit", "quit"):
                break
            future = asyncio.run_coroutine_threadsafe(_run_command(port.session, _normalise(cmd), args.timeout), loop)
            try:
                result = future.result()
            except KeyboardInterrupt:
                future.cancel()
                print("^C (stopped waiting for the answer)")
                continue
            with out_lock:
                _print_result(result)
        if state["gone"]:
            code = EXIT_FAILED
    finally:
        if readline is not None:
            try:
                readline.write_history_file(history)
            except OSError as exc:
                print(f"callgate: cannot save history to {history}: {exc.strerror}", file=sys.stderr)
        state["closing"] = True
        call(port.close(), 5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    return code


def _readline():
    try:
        import readline
    except ImportError:
        return None
    return readline


# -- shared --------------------------------------------------------------------------------------

async def _connect(name: str, config: str, timeout: float | None, profile_id: str | None, *, identify: bool = False):
    """Resolve, check, open and wake the port; (AtPort, PortInfo, Profile | None) or CliFailure."""
    from gateway.modem.detect import (PROBE_TIMEOUT, PROBE_URC_PREFIXES, busy_owner, choose_profile,
                                      identify as ask_identity, identify_commands, open_at_port, port_is_busy,
                                      urc_prefixes, wake)
    from gateway.modem.profile import ProfileError, load_profile
    from gateway.transport.serial_port import SerialOpenError
    ports = _list_ports()
    port_info = _find(name, ports)
    owner = busy_owner(port_info, daemon_ports(config))
    if owner is not None:
        raise CliFailure(EXIT_BUSY, f"{port_info.device} is in use by {owner}; not touched")
    profile = None
    if profile_id:
        try:
            profile = load_profile(profile_id)
        except ProfileError as exc:
            raise CliFailure(EXIT_USAGE, str(exc)) from None
        profiles = [profile]
    else:
        try:
            profiles = _profiles()
        except CliFailure as exc:
            if identify:
                raise
            print(f"callgate: warning: {exc}", file=sys.stderr)
            profiles = []
    prefixes = urc_prefixes(profiles) if profiles else PROBE_URC_PREFIXES
    wait = timeout or PROBE_TIMEOUT
    try:
        port = await open_at_port(port_info.device, prefixes, open_timeout=max(wait, 2.0))
    except SerialOpenError as exc:
        if port_is_busy(exc):
            raise CliFailure(EXIT_BUSY, f"{port_info.device} is in use by another program ({exc.reason}); "
                                        "stop it (ModemManager, minicom, a callgate daemon) first") from None
        raise CliFailure(EXIT_USAGE, str(exc)) from None
    try:
        ok, answers = await wake(port, wait)
        if not ok:
            heard = [line for _, reply in answers for line in reply if not line.startswith("(")]
            raise CliFailure(EXIT_NOT_MODEM, f"{port_info.device} is not a modem's AT port: no OK to AT within "
                                             f"{wait:g} s" + (f" (it sent {heard[:5]!r})" if heard else
                                                              " (it stayed silent)"))
        if identify and profile is None:
            usb_profiles = [p for p in profiles if any(u.vid == port_info.vid and u.pid == port_info.pid
                                                       for u in p.usb)]
            ident, answers = await ask_identity(port.session, identify_commands(usb_profiles or profiles), wait)
            profile = choose_profile(ident, answers, profiles, usb_profiles)
    except BaseException:
        await port.close()
        raise
    return port, port_info, profile


def daemon_ports(config: str | None) -> dict[str, str]:
    """{port: "line X of the running callgate daemon (pid N)"} for a daemon running with `config`."""
    if not config or not os.path.exists(config):
        return {}
    from gateway.config import ConfigError, load_config
    try:
        cfg = load_config(config)
        state = json.loads((cfg.data_dir / "daemon.json").read_text())
        pid = int(state["pid"])
    except (ConfigError, OSError, ValueError, KeyError, TypeError):
        return {}
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return {}
    except PermissionError:
        pass
    out = {}
    for lc in cfg.lines:
        for path in (lc.at_port, lc.audio_port):
            if path:
                out[path] = f"line {lc.id} of the running callgate daemon (pid {pid})"
    return out


def _list_ports():
    from gateway.modem.ports import InventoryError, list_ports
    try:
        return list_ports()
    except InventoryError as exc:
        raise CliFailure(EXIT_USAGE, str(exc)) from None


def _find(name: str, ports):
    from gateway.modem.ports import find_port
    port = find_port(name, ports)
    if port is None:
        raise CliFailure(EXIT_USAGE, f"{name}: no such port (not a device path nor a /dev/serial/by-id name; "
                                     "`callgate modem scan` lists the ports)")
    return port


def _profiles():
    from gateway.modem.profile import ProfileError, load_profiles
    try:
        return load_profiles()
    except ProfileError as exc:
        raise CliFailure(EXIT_USAGE, str(exc)) from None


def _normalise(cmd: str) -> str:
    cmd = cmd.strip()
    return cmd if cmd[:2].upper() == "AT" else "AT" + cmd
