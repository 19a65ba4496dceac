"""Command line: run an emulated modem (`python -m hil sim7600`), script one (`python -m hil ctl`),
or start the end-to-end demo (`python -m hil demo`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading

from hil import control

# Commands whose argument is a file path; the client sends it absolute so the server finds it.
_PATH_COMMANDS = {"play", "capture"}


def _run_sim7600(args: argparse.Namespace) -> int:
    from hil.sim7600 import Sim7600Emulator

    end_order = tuple(item.strip() for item in args.end_order.split(",") if item.strip())
    emulator = Sim7600Emulator(imei=args.imei, model=args.model, revision=args.revision,
                               ring_interval=args.ring_interval,
                               pcm_accept_after=args.pcm_accept_after, end_order=end_order)
    host, port = control.parse_addr(args.control)
    server = control.ControlServer(emulator, host, port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    emulator.start()
    server.start()
    info = {"at_port": emulator.at_port, "audio_port": emulator.audio_port, "control": server.address}
    if args.json_ports:
        tmp = f"{args.json_ports}.tmp"
        with open(tmp, "w") as handle:
            json.dump(info, handle)
        os.replace(tmp, args.json_ports)
    print(json.dumps(info), flush=True)
    try:
        while not stop.is_set() and not server.quit_requested.is_set():
            stop.wait(0.2)
    finally:
        server.stop()
        emulator.stop()
    return 0


def _run_ctl(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words and words[0].lower() in _PATH_COMMANDS and len(words) == 2:
        words[1] = os.path.abspath(words[1])
    command = " ".join(shlex.quote(word) for word in words)
    try:
        reply = control.send(args.address, command, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        print(json.dumps({"ok": False, "error": f"{args.address}: {exc}"}))
        return 1
    print(json.dumps(reply))
    return 0 if reply.get("ok") else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        from hil import demo     # the end-to-end demo keeps its own options

        return demo.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m hil", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log AT traffic to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("sim7600", help="run an emulated SIM7600 on two pseudo-terminals")
    sim.add_argument("--control", default="127.0.0.1:0", help="HOST:PORT of the control server")
    sim.add_argument("--json-ports", help="also write the port JSON line to this file")
    sim.add_argument("--ring-interval", type=float, default=3.0)
    sim.add_argument("--pcm-accept-after", type=float, default=0.0)
    sim.add_argument("--end-order", default="clcc,voice_call_end,no_carrier",
                     help="order of the end-of-call lines when the caller hangs up")
    sim.add_argument("--imei", default="867584030000001")
    sim.add_argument("--model", default="SIMCOM_SIM7600G-H")
    sim.add_argument("--revision", default="LE20B04SIM7600G22")

    sub.add_parser("demo", help="emulator + gateway + dashboard demo (see python -m hil demo -h)")
    ctl = sub.add_parser("ctl", help="send one command to a running emulator")
    ctl.add_argument("address", help="HOST:PORT printed by `python -m hil sim7600`")
    ctl.add_argument("words", nargs="+", help="the command, e.g. ring +15551230001")
    ctl.add_argument("--timeout", type=float, default=control.CONTROL_TIMEOUT)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if args.command == "sim7600":
        try:
            return _run_sim7600(args)
        except ValueError as exc:
            parser.error(str(exc))
    return _run_ctl(args)


if __name__ == "__main__":
    sys.exit(main())
