"""Command line: run an emulated modem of any family (`python -m hil modem --family NAME`; the older
`python -m hil sim7600` still works), script one (`python -m hil ctl`), or start the end-to-end demo
(`python -m hil demo`)."""

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
from hil.gsm import FAMILY_IDS

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
        _write_json(args.json_ports, info)
    print(json.dumps(info), flush=True)
    return _serve_until_stopped(emulator, server, stop)


def _serve_until_stopped(emulator, server, stop: threading.Event) -> int:
    try:
        while not stop.is_set() and not server.quit_requested.is_set():
            stop.wait(0.2)
    finally:
        server.stop()
        emulator.stop()
    return 0


def _write_json(path: str, info) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(info, handle)
    os.replace(tmp, path)


def _run_modem(args: argparse.Namespace) -> int:
    from hil.gsm import create

    options = {"ring_interval": args.ring_interval, "reset_seconds": args.reset_seconds,
               "usb_path": args.usb_path, "by_id_dir": args.by_id_dir}
    if args.imei:
        options["imei"] = args.imei
    emulator = create(args.family, **options)
    host, port = control.parse_addr(args.control)
    server = control.ControlServer(emulator, host, port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def info() -> dict:
        return {**emulator.ports(), "control": server.address, "ports": emulator.port_inventory()}

    def publish() -> None:
        if args.json_ports:
            _write_json(args.json_ports, info())
        if args.inventory:
            emulator.write_inventory(args.inventory)

    emulator.on_replug(publish)        # the new /dev/pts names reach whoever watches the files
    emulator.start()
    server.start()
    publish()
    print(json.dumps(info()), flush=True)
    return _serve_until_stopped(emulator, server, stop)


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

    modem = sub.add_parser("modem", help="run an emulated modem of one family on pseudo-terminals")
    modem.add_argument("--family", required=True, choices=FAMILY_IDS)
    modem.add_argument("--control", default="127.0.0.1:0", help="HOST:PORT of the control server")
    modem.add_argument("--json-ports", help="also write the port JSON to this file (rewritten on replug)")
    modem.add_argument("--inventory", help="write the USB port inventory JSON here (rewritten on replug)")
    modem.add_argument("--by-id-dir", help="directory for /dev/serial/by-id style links (default: a temp dir)")
    modem.add_argument("--ring-interval", type=float, default=None)
    modem.add_argument("--reset-seconds", type=float, default=1.0)
    modem.add_argument("--usb-path", default="1-1.2", help="USB bus path reported in the inventory")
    modem.add_argument("--imei")

    sub.add_parser("demo", help="emulator + gateway + dashboard demo (see python -m hil demo -h)")
    ctl = sub.add_parser("ctl", help="send one command to a running emulator")
    ctl.add_argument("address", help="HOST:PORT printed by `python -m hil modem` or `python -m hil sim7600`")
    ctl.add_argument("words", nargs="+", help="the command, e.g. ring +15551230001")
    ctl.add_argument("--timeout", type=float, default=control.CONTROL_TIMEOUT)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if args.command in ("sim7600", "modem"):
        try:
            return _run_sim7600(args) if args.command == "sim7600" else _run_modem(args)
        except ValueError as exc:
            parser.error(str(exc))
    return _run_ctl(args)


if __name__ == "__main__":
    sys.exit(main())
