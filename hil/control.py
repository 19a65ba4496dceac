"""Scripting a running emulator from outside its process: a one-line-per-command TCP protocol.

Each request is one text line (words split like a shell: quote paths with spaces), each reply is
one JSON line: {"ok": true, ...} or {"ok": false, "error": "..."}. Commands:

    ring <number> [<type>]   incoming call starts ringing
    dtmf <digits> [<gap>]    caller presses keys (active call only)
    play <wav>               queue a WAV into the caller's audio (path as the server sees it)
    hangup                   the far end hangs up
    answer                   the far end answers an outgoing call
    capture <wav>            save what the gateway sent during calls as an 8 kHz WAV
    clear                    forget the captured audio
    state                    {"state": ..., "pcm": ...}
    freeze [on|off]          stop (or resume) answering AT commands
    inject <text>            raw text on the AT port (backslash escapes such as \\r\\n work)
    vanish                   the modem is unplugged
    transcript [<n>]         the last n AT transcript lines (default 50)
    quit                     stop the emulator process

Commands of the multi-family emulator (`python -m hil modem`):

    tone <hz> <seconds> [<amplitude>]   a sine into the caller's audio
    outcome <what> [<after> [<alert_after> [<talk>]]]
                             next ATD calls end as answer|busy|no_answer|reject|no_carrier
                             (manual: stay alerting until `answer` or `hangup`)
    sms <sender> <text>      the network delivers an SMS (long text: concatenated parts)
    sent [joined]            the SMS the host sent with AT+CMGS
    smsfail [<code>]         the next AT+CMGS fails with +CMS ERROR <code> (default 500)
    noanswer [on|off]        commands get no reply (same as freeze)
    garbage <text>           raw bytes on the AT port (backslash escapes work)
    slow <seconds>           every reply comes this late (0: normal)
    urcinside <line>         the next response carries this URC between its lines
    wedge                    the command interpreter hangs until unplug/replug
    unplug | replug | reset  USB: ports vanish / come back under new names / AT+CFUN=1,1
    losereg [<stat>] | regainreg     network registration lost (+CREG URCs) / back
    simmissing [on|off] | pin <pin>  SIM pulled / PIN required
    signal <rssi>            +CSQ value
    ims on|off               (Quectel) the network grants IMS registration (VoLTE)
    ports                    the tty names and the USB port inventory
    call                     the call in progress
"""

from __future__ import annotations

import json
import shlex
import socket
import socketserver
import threading
from typing import Any

# Seconds a client waits to connect and for the one-line reply.
CONTROL_TIMEOUT = 10.0
# Longest request line the server accepts.
MAX_REQUEST = 65536
# How often the server thread checks for a shutdown request (seconds).
SHUTDOWN_POLL = 0.1


def parse_addr(addr: str | tuple[str, int]) -> tuple[str, int]:
    """'host:port' (or a (host, port) tuple) as a tuple; a precise ValueError otherwise."""
    if isinstance(addr, tuple):
        return addr[0], int(addr[1])
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"control address {addr!r}: expected HOST:PORT")
    return host or "127.0.0.1", int(port)


def send(addr: str | tuple[str, int], command: str, timeout: float = CONTROL_TIMEOUT) -> dict[str, Any]:
    """Send one command to a control server and return its decoded JSON reply."""
    with socket.create_connection(parse_addr(addr), timeout=timeout) as sock:
        sock.sendall(command.strip().encode() + b"\n")
        reply = bytearray()
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    if not reply.strip():
        raise ConnectionError(f"{addr}: control server closed the connection without a reply")
    return json.loads(reply)


def handle_command(emulator, line: str) -> dict[str, Any]:
    """Run one protocol line against an emulator; never raises."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        return {"ok": False, "error": f"cannot parse {line!r}: {exc}"}
    if not words:
        return {"ok": False, "error": "empty command"}
    verb, args = words[0].lower(), words[1:]
    try:
        return _dispatch(emulator, verb, args)
    except (ValueError, RuntimeError, OSError, TimeoutError) as exc:
        return {"ok": False, "error": f"{verb}: {exc}"}


def _need(args: list[str], low: int, high: int, usage: str) -> None:
    if not low <= len(args) <= high:
        raise ValueError(f"usage: {usage}")


def _unescape(text: str) -> bytes:
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


def _on_off(args: list[str], usage: str) -> bool:
    _need(args, 0, 1, usage)
    setting = args[0].lower() if args else "on"
    if setting not in ("on", "off"):
        raise ValueError(f"usage: {usage}")
    return setting == "on"


def _dispatch_gsm(emulator, verb: str, args: list[str]) -> dict[str, Any] | None:
    """The multi-family verbs; None when verb is not one of them."""
    extra: dict[str, Any] = {}
    if verb == "tone":
        _need(args, 2, 3, "tone <hz> <seconds> [<amplitude>]")
        emulator.play_tone(float(args[0]), float(args[1]), *(float(a) for a in args[2:]))
    elif verb == "outcome":
        _need(args, 1, 4, "outcome answer|busy|no_answer|reject|no_carrier|manual [<after> [<alert_after> [<talk>]]]")
        delays = {}
        for key, value in zip(("after", "alert_after", "talk_seconds"), args[1:]):
            delays[key] = float(value)
        emulator.set_outbound_outcome(None if args[0] == "manual" else args[0], **delays)
    elif verb == "sms":
        _need(args, 2, 2, "sms <sender> <text>")
        extra["indexes"] = emulator.receive_sms(args[0], args[1])
    elif verb == "sent":
        _need(args, 0, 1, "sent [joined]")
        extra["sent"] = emulator.sent_sms(joined=bool(args) and args[0] == "joined")
    elif verb == "smsfail":
        _need(args, 0, 1, "smsfail [<code>]")
        emulator.fail_next_sms(int(args[0]) if args else 500)
    elif verb == "noanswer":
        emulator.no_answer(_on_off(args, "noanswer [on|off]"))
    elif verb == "garbage":
        _need(args, 1, 1, "garbage <text>")
        emulator.garbage(_unescape(args[0]))
    elif verb == "slow":
        _need(args, 1, 1, "slow <seconds>")
        emulator.slow(float(args[0]))
    elif verb == "urcinside":
        _need(args, 1, 1, "urcinside <line>")
        emulator.urc_inside_response(args[0])
    elif verb == "wedge":
        emulator.wedge()
    elif verb == "unplug":
        emulator.unplug()
    elif verb == "replug":
        emulator.replug()
        extra["ports"] = emulator.ports()
    elif verb == "reset":
        emulator.reset()
    elif verb == "losereg":
        _need(args, 0, 1, "losereg [<stat>]")
        emulator.lose_registration(int(args[0]) if args else 2)
    elif verb == "regainreg":
        emulator.regain_registration()
    elif verb == "simmissing":
        emulator.sim_missing(_on_off(args, "simmissing [on|off]"))
    elif verb == "pin":
        _need(args, 1, 1, "pin <pin>")
        emulator.require_pin(args[0])
    elif verb == "signal":
        _need(args, 1, 1, "signal <rssi>")
        emulator.set_signal(int(args[0]))
    elif verb == "ims":
        if not hasattr(emulator, "set_ims"):
            raise ValueError(f"ims: the {emulator.family} family has no IMS switch")
        emulator.set_ims(_on_off(args, "ims on|off"))
    elif verb == "ports":
        extra["ports"] = emulator.ports()
        extra["inventory"] = emulator.port_inventory()
    elif verb == "call":
        extra["call"] = emulator.call_info()
    else:
        return None
    return {"ok": True, "state": emulator.state, "pcm": emulator.pcm_enabled, **extra}


def _dispatch(emulator, verb: str, args: list[str]) -> dict[str, Any]:
    if verb == "ring":
        _need(args, 1, 2, "ring <number> [<type>]")
        number_type = int(args[1]) if len(args) > 1 else (145 if args[0].startswith("+") else 129)
        emulator.ring(args[0], number_type)
    elif verb == "dtmf":
        _need(args, 1, 2, "dtmf <digits> [<gap seconds>]")
        emulator.send_dtmf(args[0], float(args[1]) if len(args) > 1 else 0.25)
    elif verb == "play":
        _need(args, 1, 1, "play <wav>")
        emulator.play_wav(args[0])
    elif verb == "hangup":
        _need(args, 0, 0, "hangup")
        emulator.hangup()
    elif verb == "answer":
        _need(args, 0, 0, "answer")
        emulator.remote_answer()
    elif verb == "capture":
        _need(args, 1, 1, "capture <wav>")
        samples = emulator.capture()
        emulator.save_capture(args[0])
        return {"ok": True, "path": args[0], "seconds": round(len(samples) / 8000, 3)}
    elif verb == "clear":
        emulator.clear_capture()
    elif verb == "state":
        pass
    elif verb == "freeze":
        _need(args, 0, 1, "freeze [on|off]")
        setting = (args[0].lower() if args else "on")
        if setting not in ("on", "off"):
            raise ValueError("usage: freeze [on|off]")
        emulator.freeze(setting == "on")
    elif verb == "inject":
        _need(args, 1, 1, "inject <text>")
        emulator.inject(_unescape(args[0]))
    elif verb == "vanish":
        emulator.vanish()
    elif verb == "transcript":
        _need(args, 0, 1, "transcript [<n>]")
        count = int(args[0]) if args else 50
        lines = emulator.transcript[-count:] if count > 0 else []
        return {"ok": True, "transcript": [list(entry) for entry in lines]}
    elif verb == "quit":
        return {"ok": True, "quit": True}
    else:
        reply = _dispatch_gsm(emulator, verb, args)
        if reply is None:
            raise ValueError("unknown command (known: ring dtmf play tone hangup answer outcome capture "
                             "clear state freeze noanswer inject garbage slow urcinside wedge vanish "
                             "unplug replug reset losereg regainreg simmissing pin signal ims sms sent "
                             "smsfail ports call transcript quit)")
        return reply
    return {"ok": True, "state": emulator.state, "pcm": emulator.pcm_enabled}


class ControlServer:
    """Serves the control protocol for one emulator on a TCP port, in background threads."""

    def __init__(self, emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self.quit_requested = threading.Event()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    raw = self.rfile.readline(MAX_REQUEST)
                    if not raw:
                        return
                    reply = handle_command(outer.emulator, raw.decode("utf-8", "replace"))
                    self.wfile.write(json.dumps(reply).encode() + b"\n")
                    self.wfile.flush()
                    if reply.get("quit"):
                        outer.quit_requested.set()
                        return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL,),
                                        name="hil-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
