"""Emulator machinery shared by every family: on top of hil/emulator_base.py's thread and loop, the USB
device's ttys (plug, unplug, replug under new names, by-id links, port inventory), and the V.250 line
discipline of each AT tty (echo, S3/S4/S5, `A/`, verbose or numeric result codes, quiet mode,
`;`-joined command lines, prompts for SMS text) with the hooks the fault injectors need."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from typing import Callable

from hil.emulator_base import ThreadedEmulator
from hil.gsm.audio import AudioSide, PtyAudioSide
from hil.gsm.ports import ByIdLinks, PortSpec, Pty, UsbIdentity, by_id_name, inventory_row
from hil.v250 import clean_line, frame_code

_LOGGER = logging.getLogger("hil.gsm")

# AT bytes kept for a host that does not read the AT tty; older bytes are dropped beyond this.
AT_OUT_BACKLOG = 65536
# A command line longer than this without S3 is discarded (the module's line buffer limit).
AT_LINE_LIMIT = 1024

CTRL_Z = 0x1A
ESC = 0x1B

# 27.007 §9.2 texts for AT+CMEE=2.
CME_TEXT = {
    3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
    11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy",
    16: "incorrect password", 21: "invalid index", 22: "not found", 30: "no network service",
    50: "Incorrect parameters", 100: "unknown",
}
# 27.005 §3.2.5 texts.
CMS_TEXT = {
    302: "operation not allowed", 303: "operation not supported", 304: "invalid PDU mode parameter",
    305: "invalid text mode parameter", 310: "SIM not inserted", 311: "SIM PIN required",
    321: "invalid memory index", 331: "no network service", 350: "network rejected request",
    322: "memory full", 330: "SMSC address unknown", 500: "unknown error",
}
CME_NOT_ALLOWED = 3
CME_NOT_SUPPORTED = 4
CME_INVALID_PARAMS = 50
CME_UNKNOWN = 100


class CmdError(Exception):
    """A command failed with +CME ERROR <code>; code None means a plain ERROR whatever AT+CMEE says."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


class CmsError(CmdError):
    """An SMS command failed: +CMS ERROR <code>."""


class Unsupported(Exception):
    """The command does not exist on this family; answered the family's way."""


@dataclasses.dataclass
class Result:
    lines: list[str] = dataclasses.field(default_factory=list)   # information text before the final
    final: str = "OK"
    after: list[str] = dataclasses.field(default_factory=list)   # URCs that follow the final result
    crcr_lines: bool = False      # information lines end with <CR><CR><LF> (Huawei +CLAC)


@dataclasses.dataclass
class Prompt:
    """The command wants text after a `> ` prompt, ended by Ctrl-Z (ESC cancels)."""

    complete: Callable[[str], Result]
    text_mode: bool = True        # a CR inside the text gives a new prompt


class AtChannel:
    """One AT tty with its own V.250 settings (echo, verbose, quiet, S registers, CMEE)."""

    def __init__(self, spec: PortSpec, primary: bool) -> None:
        self.spec = spec
        self.primary = primary
        self.pty = Pty()
        self.rx = bytearray()
        self.out = bytearray()
        self.busy = False
        self.prompt: Prompt | None = None
        self.prompt_text = bytearray()
        self.last_line = ""
        self.generation = 0         # bumped on each replug: late replies for the old ports are dropped
        self.reset_settings()

    def reset_settings(self) -> None:
        self.echo = True
        self.verbose = True
        self.quiet = False
        self.cmee = 0
        self.sregs: dict[int, int] = {0: 0, 3: 13, 4: 10, 5: 8, 7: 60}

    @property
    def crlf(self) -> str:
        return chr(self.sregs[3]) + chr(self.sregs[4])


class _Sink:
    """A tty nobody speaks AT on here (QCDM diag, idle NMEA): input is read and discarded."""

    def __init__(self, spec: PortSpec) -> None:
        self.spec = spec
        self.pty = Pty()


class EmulatorBase(ThreadedEmulator):
    """Ttys and line discipline. Families subclass GsmEmulator (core.py), not this."""

    FAMILY = ""
    PORTS: tuple[PortSpec, ...] = ()
    USB_VID = ""
    USB_PID = ""
    USB_MANUFACTURER = ""
    USB_PRODUCT = ""
    # The tty (by role) that carries PCM when no audio_side is given; None: no audio tty.
    AUDIO_TTY_ROLE: str | None = None

    def __init__(self, *, audio_side: AudioSide | None, usb_serial: str, usb_path: str,
                 by_id_dir: str | None) -> None:
        super().__init__()
        self.usb = UsbIdentity(self.USB_VID, self.USB_PID, self.USB_MANUFACTURER, self.USB_PRODUCT,
                               usb_serial, usb_path)
        self._stopped = False
        self._plugged = False
        # fault switches (faults.py sets them)
        self._no_answer = False
        self._wedged = False
        self._slow = 0.0
        self._urc_inside: list[str] = []
        self._held_urcs: list[tuple[str, bool]] | None = None
        self._own_by_id_dir = by_id_dir is None
        self._links = ByIdLinks(by_id_dir or tempfile.mkdtemp(prefix="hil-by-id-"))
        self._channels: list[AtChannel] = []
        self._sinks: list[_Sink] = []
        self._pty_audio: PtyAudioSide | None = None
        self._audio_tty_spec: PortSpec | None = None
        self.external_audio = audio_side
        primary_done = False
        for spec in self.PORTS:
            if spec.role in ("at", "modem"):
                channel = AtChannel(spec, primary=spec.role == "at" and not primary_done)
                primary_done = primary_done or channel.primary
                self._channels.append(channel)
            elif spec.role == self.AUDIO_TTY_ROLE and self._wants_pty_audio(audio_side):
                self._pty_audio = PtyAudioSide("audio_port" if spec.role == "audio" else f"{spec.role}_port")
                self._audio_tty_spec = spec
            else:
                self._sinks.append(_Sink(spec))
        self._primary = next(ch for ch in self._channels if ch.primary)
        self._open_ptys()

    def _wants_pty_audio(self, audio_side: AudioSide | None) -> bool:
        return audio_side is None

    # ---------------------------------------------------------------- lifecycle

    def _thread_name(self) -> str:
        return f"{self.FAMILY}-emulator"

    def _loop_started(self) -> None:
        if self._plugged:
            self._attach_readers()
        self._on_loop_start()

    def _loop_stopping(self) -> None:
        self._on_shutdown()
        self._detach_readers()
        self._close_ptys()

    def _release(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._close_ptys()
            if self._own_by_id_dir:
                shutil.rmtree(self._links.directory, ignore_errors=True)

    def _on_loop_start(self) -> None:
        """Subclasses: boot URCs, background tasks."""

    def _on_shutdown(self) -> None:
        """Subclasses: cancel their tasks."""

    # ---------------------------------------------------------------- ttys

    @property
    def at_port(self) -> str | None:
        """The AT tty's /dev/pts name (after an unplug: the name it had, which no longer exists)."""
        return self._primary.pty.name

    @property
    def audio_port(self) -> str | None:
        return self._pty_audio.pty.name if self._pty_audio is not None else None

    def _all_ptys(self) -> list[tuple[PortSpec, Pty]]:
        entries: list[tuple[PortSpec, Pty]] = [(ch.spec, ch.pty) for ch in self._channels]
        entries += [(sink.spec, sink.pty) for sink in self._sinks]
        if self._pty_audio is not None and self._audio_tty_spec is not None:
            entries.append((self._audio_tty_spec, self._pty_audio.pty))
        return sorted(entries, key=lambda entry: entry[0].interface)

    def _open_ptys(self) -> None:
        for channel in self._channels:
            channel.pty.open()
            channel.rx.clear()
            channel.out.clear()
            channel.busy = False
            channel.prompt = None
            channel.generation += 1
            channel.reset_settings()
        for sink in self._sinks:
            sink.pty.open()
        if self._pty_audio is not None:
            self._pty_audio.open()
        self._plugged = True
        for spec, pty in self._all_ptys():
            self._links.point(by_id_name(self.usb, spec.interface), pty.name or "")

    def _close_ptys(self) -> None:
        for spec, pty in self._all_ptys():
            self._links.remove(by_id_name(self.usb, spec.interface))
            pty.close()
        if self._pty_audio is not None:
            self._pty_audio.close()
        self._plugged = False

    def _attach_readers(self) -> None:
        loop = self._loop
        assert loop is not None
        for channel in self._channels:
            loop.add_reader(channel.pty.master, self._on_at_readable, channel)
        for sink in self._sinks:
            loop.add_reader(sink.pty.master, sink.pty.read)

    def _detach_readers(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for spec, pty in self._all_ptys():
            if pty.master is not None:
                loop.remove_reader(pty.master)
                loop.remove_writer(pty.master)

    def port_inventory(self) -> list[dict]:
        """One dict per emulated tty, as a port scanner would see it (current /dev names)."""
        if not self._plugged:
            return []
        return [inventory_row(self.usb, spec, pty.name, self._links.path(by_id_name(self.usb, spec.interface)))
                for spec, pty in self._all_ptys()]

    @property
    def by_id_dir(self) -> str:
        return self._links.directory

    # ---------------------------------------------------------------- output

    def _log(self, channel: AtChannel, direction: str, line: str) -> None:
        if channel.primary:
            self._record(direction, line)
        _LOGGER.debug("%s %s%s %s", self.FAMILY, channel.spec.role, direction, line)

    def _write(self, channel: AtChannel, data: bytes) -> None:
        if not self._plugged or not channel.pty.is_open:
            return
        channel.out += data
        if len(channel.out) > AT_OUT_BACKLOG:
            _LOGGER.warning("host is not reading %s; dropping %d bytes", channel.pty.name,
                            len(channel.out) - AT_OUT_BACKLOG)
            del channel.out[: len(channel.out) - AT_OUT_BACKLOG]
        self._flush(channel)

    def _flush(self, channel: AtChannel) -> None:
        loop = self._loop
        del channel.out[: channel.pty.write(bytes(channel.out))]
        if loop is None or channel.pty.master is None:
            return
        if channel.out:
            loop.add_writer(channel.pty.master, self._flush, channel)
        else:
            loop.remove_writer(channel.pty.master)

    def _urc(self, line: str, crcr: bool = False) -> None:
        """An unsolicited line on the URC tty; crcr: SIMCom's <CR><CR><LF> framing."""
        channel = self._urc_channel()
        if not self._plugged:
            return
        if self._held_urcs is not None:
            self._held_urcs.append((line, crcr))     # a command is running: its response goes first
            return
        self._log(channel, "<", line)
        if channel.verbose and crcr:
            sep = chr(channel.sregs[3]) + channel.crlf
            text = f"{sep}{line}{sep}"
        else:
            text = frame_code(line, channel.verbose, channel.crlf)
        self._write(channel, text.encode("latin-1", "replace"))

    def _urc_channel(self) -> AtChannel:
        return self._primary

    def _urc_block(self, lines: list[str]) -> None:
        """A multi-line URC (+CMT header and its text) framed as one block."""
        channel = self._urc_channel()
        if not self._plugged:
            return
        for line in lines:
            self._log(channel, "<", line)
        crlf = channel.crlf
        text = crlf + crlf.join(lines) + crlf if channel.verbose else "".join(line + crlf for line in lines)
        self._write(channel, text.encode("latin-1", "replace"))

    def _inject(self, data: bytes) -> None:
        self._log(self._primary, "<", data.decode("latin-1"))
        self._write(self._primary, data)

    def _respond(self, channel: AtChannel, result: Result) -> None:
        crlf = channel.crlf
        s3 = chr(channel.sregs[3])
        units: list[tuple[str, str]] = []        # (transcript line, framed text)
        for i, line in enumerate(result.lines):
            end = s3 + crlf if result.crcr_lines else crlf
            if channel.verbose:
                units.append((line, (crlf if i == 0 else "") + line + end))
            else:
                units.append((line, line + end))
        if not channel.quiet:
            units.append((result.final, frame_code(result.final, channel.verbose, crlf)))
        if channel.primary and self._urc_inside and units:
            line = self._urc_inside.pop(0)
            framed = f"{crlf}{line}{crlf}" if channel.verbose else f"{line}{crlf}"
            units.insert(1 if len(units) > 1 else 0, (line, framed))
        for line, _ in units:
            self._log(channel, "<", line)
        self._write(channel, "".join(text for _, text in units).encode("latin-1", "replace"))
        for item in result.after:
            if isinstance(item, tuple):
                self._urc(*item)
            else:
                self._urc(item)

    # ---------------------------------------------------------------- input

    def _ignoring_commands(self) -> bool:
        return self._no_answer or self._wedged

    def _on_at_readable(self, channel: AtChannel) -> None:
        data = channel.pty.read(4096)
        if not data:
            return
        if self._ignoring_commands():
            self._swallow(channel, data)
            return
        if channel.echo:
            self._write(channel, data)
        channel.rx += data
        self._process(channel)

    def _swallow(self, channel: AtChannel, data: bytes) -> None:
        """A module that does not answer still takes the bytes; the lines go to the transcript."""
        channel.rx += data
        s3 = bytes([channel.sregs[3]])
        while s3 in channel.rx:
            raw, _, rest = bytes(channel.rx).partition(s3)
            channel.rx[:] = rest
            text = self._clean(channel, raw)
            if text:
                self._log(channel, ">", text)
        if len(channel.rx) > AT_LINE_LIMIT:
            channel.rx.clear()

    def _process(self, channel: AtChannel) -> None:
        while not channel.busy and self._plugged:
            if channel.prompt is not None:
                if not self._prompt_input(channel):
                    return
                continue
            s3 = channel.sregs[3]
            end = channel.rx.find(bytes([s3]))
            slash = channel.rx.find(b"/")
            if slash >= 0 and (end < 0 or slash < end) and \
                    bytes(channel.rx[:slash]).strip(b" \t\r\n\x00").upper() == b"A":
                del channel.rx[: slash + 1]
                self._log(channel, ">", "A/")
                self._command_text(channel, channel.last_line)
                continue
            if end < 0:
                if len(channel.rx) > AT_LINE_LIMIT:
                    _LOGGER.warning("discarding %d bytes without S3 on %s", len(channel.rx), channel.pty.name)
                    channel.rx.clear()
                    self._finish(channel, Result(final="ERROR"))
                return
            raw = bytes(channel.rx[:end])
            del channel.rx[: end + 1]
            text = self._clean(channel, raw)
            if text:
                self._log(channel, ">", text)
                self._command_text(channel, text)

    @staticmethod
    def _clean(channel: AtChannel, raw: bytes) -> str:
        return clean_line(raw, chr(channel.sregs[5]))

    def _command_text(self, channel: AtChannel, text: str) -> None:
        start = text.upper().find("AT")
        if start < 0:
            return      # V.250: characters before the "AT" prefix are ignored, and so is a line without it
        channel.last_line = text[start:]
        self._held_urcs = []
        try:
            outcome = self._execute(channel, text[start + 2:])
        except Exception:  # the module must survive anything the host sends
            _LOGGER.exception("emulator fault on command line %r", text)
            outcome = Result(final="ERROR")
        finally:
            held, self._held_urcs = self._held_urcs, None
        if isinstance(outcome, Result):
            outcome.after = list(outcome.after) + held
        else:
            for item in held:
                self._urc(*item)
        self._finish(channel, outcome)

    def _finish(self, channel: AtChannel, outcome: Result | Prompt) -> None:
        def deliver() -> None:
            channel.busy = False
            if isinstance(outcome, Prompt):
                channel.prompt = outcome
                channel.prompt_text.clear()
                self._write(channel, f"{channel.crlf}> ".encode())
            else:
                self._respond(channel, outcome)

        generation = channel.generation

        def deliver_late() -> None:
            if channel.busy and channel.generation == generation:
                deliver()
                self._process(channel)

        if self._slow > 0 and self._loop is not None:
            channel.busy = True
            self._loop.call_later(self._slow, deliver_late)
        else:
            deliver()

    def _prompt_input(self, channel: AtChannel) -> bool:
        """Consume SMS text after `> `; True when the prompt finished."""
        prompt = channel.prompt
        assert prompt is not None
        for i, byte in enumerate(channel.rx):
            if byte in (CTRL_Z, ESC):
                channel.prompt_text += channel.rx[:i]
                del channel.rx[: i + 1]
                text = channel.prompt_text.decode("latin-1")
                channel.prompt = None
                self._log(channel, ">", text.replace("\r", "\\r") + ("<ESC>" if byte == ESC else "<SUB>"))
                if byte == ESC:
                    self._finish(channel, Result())
                else:
                    try:
                        result = prompt.complete(text)
                    except CmdError as exc:
                        result = Result(final=self._error_text(channel, exc))
                    self._finish(channel, result)
                return True
            if byte == channel.sregs[3] and prompt.text_mode:
                channel.prompt_text += channel.rx[: i + 1]
                del channel.rx[: i + 1]
                self._write(channel, f"{channel.crlf}> ".encode())
                return False if not channel.rx else self._prompt_input(channel)
        if len(channel.prompt_text) + len(channel.rx) > 4 * AT_LINE_LIMIT:
            channel.rx.clear()
            channel.prompt = None
            self._finish(channel, Result(final="ERROR"))
            return True
        return False

    # ---------------------------------------------------------------- command lines

    def _execute(self, channel: AtChannel, body: str) -> Result | Prompt:
        raise NotImplementedError

    def _error_text(self, channel: AtChannel, exc: CmdError) -> str:
        if isinstance(exc, CmsError):
            if channel.cmee == 2:
                return f"+CMS ERROR: {CMS_TEXT.get(exc.code or 500, 'unknown error')}"
            return f"+CMS ERROR: {exc.code}"
        if exc.code is None or channel.cmee == 0:
            return "ERROR"
        if channel.cmee == 1:
            return f"+CME ERROR: {exc.code}"
        return f"+CME ERROR: {CME_TEXT.get(exc.code, 'unknown')}"
