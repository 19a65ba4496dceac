"""The AT command session: one command at a time over a byte link, unsolicited lines routed apart.

A reader task turns the link's bytes into lines (LineFramer) and classifies each line by its
content, never by whether a command happens to be pending:
  - an echo of the command is dropped;
  - a final result code ends the pending command (OK, ERROR, +CME/+CMS ERROR, COMMAND NOT
    SUPPORT; for call control also CONNECT, NO CARRIER, BUSY, NO ANSWER, NO DIALTONE);
  - a line carrying the command's own prefix (+CLCC: for AT+CLCC) belongs to the response;
  - a line starting with a URC prefix goes to the URC listeners, even inside a response;
  - anything else is response text if a command is pending, else an unknown unsolicited line.
A final result code that arrives after its command timed out is discarded, as long as it comes
before the next command is written (AT has no sequence numbers to tell later ones apart).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.at.errors import AtCommandError, AtLinkClosed, AtTimeout, CmeError, CmsError
from gateway.at.framer import LineFramer
from gateway.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

# close() waits this long for the reader task to see the link closed before cancelling it; a
# serial link wakes its reader at once, so this only bounds a misbehaving link.
CLOSE_TIMEOUT = 1.0

_FINALS = ("OK", "ERROR", "COMMAND NOT SUPPORT")       # exact lines
_FINAL_PREFIXES = ("+CME ERROR:", "+CMS ERROR:")
_CALL_FAILURES = ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
# The extended command names in a command line: AT+CPIN? -> +CPIN, AT+QPCMV=0;+QPCMV=1,0;A -> +QPCMV
_COMMAND_NAME = re.compile(r"(?:^|;)\s*([+^$%#*][A-Z0-9_]+)")


class AtLink(Protocol):
    """What the session needs of a byte pipe (gateway.transport.serial_port.SerialLink is one)."""

    async def read(self) -> bytes: ...      # b"" once the link is gone
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


@dataclass
class AtResponse:
    """A command that ended well: its response lines and the final result code (OK, CONNECT)."""

    command: str
    lines: list[str]
    final: str


@dataclass
class _Pending:
    command: str
    call_control: bool
    own_prefixes: tuple[str, ...]
    future: asyncio.Future[AtResponse]
    lines: list[str] = field(default_factory=list)


class AtSession:
    """Runs AT commands on one port and hands everything unsolicited to listeners."""

    def __init__(self, link: AtLink, urc_prefixes: Sequence[str], *,
                 clock: Clock = SYSTEM_CLOCK, history: int = 200) -> None:
        self.history: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=history)
        self._link = link
        self._name = str(getattr(link, "path", link))
        self._urc_prefixes = tuple(urc_prefixes)
        self._clock = clock
        self._framer = LineFramer(on_overflow=self._on_overflow)
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._echo: str | None = None  # the last command as its echo would read
        self._stale_finals = 0       # commands that timed out and may still send a final
        self._urc_listeners: list[Callable[[str], None]] = []
        self._close_listeners: list[Callable[[], None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self) -> None:
        """Start reading the link."""
        if self._reader is not None:
            raise RuntimeError(f"AT session on {self._name} already started")
        if self._closed:
            raise AtLinkClosed(f"AT link {self._name} is closed")
        self._reader = asyncio.get_running_loop().create_task(
            self._read_loop(), name=f"at-reader {self._name}")

    async def command(self, cmd: str, timeout: float, *, call_control: bool = False) -> AtResponse:
        """Send `cmd` and wait up to `timeout` s for its final result code.

        call_control=True for ATA/ATD...: then CONNECT ends it well and NO CARRIER, BUSY,
        NO ANSWER, NO DIALTONE end it badly; otherwise those lines are unsolicited.
        Raises AtCommandError (CmeError, CmsError), AtTimeout or AtLinkClosed.
        """
        data = _encode(cmd)
        if self._reader is None:
            raise RuntimeError(f"AT session on {self._name}: start() was not called")
        if self._closed:
            raise AtLinkClosed(f"{cmd}: AT link {self._name} is closed")
        async with self._lock:
            if self._closed:
                raise AtLinkClosed(f"{cmd}: AT link {self._name} is closed")
            loop = asyncio.get_running_loop()
            pending = _Pending(cmd, call_control, _own_prefixes(cmd), loop.create_future())
            self._pending = pending
            self._echo = cmd.strip().upper()
            self._stale_finals = 0
            self.history.append((self._clock.monotonic(), ">", cmd))
            log.debug("%s > %s", self._name, cmd)
            timer = loop.create_task(self._clock.sleep(timeout), name=f"at-timeout {cmd}")
            try:
                try:
                    self._link.write(data)
                except OSError as exc:  # a link that raises instead of going quiet
                    self._link_gone(f"write failed: {exc}")
                await asyncio.wait((pending.future, timer), return_when=asyncio.FIRST_COMPLETED)
                if pending.future.done():
                    return pending.future.result()
                raise AtTimeout(cmd, pending.lines, timeout)
            finally:
                timer.cancel()
                if self._pending is pending:
                    self._pending = None
                if not pending.future.done():
                    pending.future.cancel()
                    self._stale_finals += 1
                elif not pending.future.cancelled():
                    pending.future.exception()  # retrieved, even when we were cancelled

    def add_urc_listener(self, cb: Callable[[str], None]) -> Callable[[], None]:
        """Call `cb(line)` for every unsolicited line; returns a function that unsubscribes."""
        self._urc_listeners.append(cb)

        def remove() -> None:  # by identity: two listeners may compare equal
            for i, listener in enumerate(self._urc_listeners):
                if listener is cb:
                    del self._urc_listeners[i]
                    return

        return remove

    def add_close_listener(self, cb: Callable[[], None]) -> None:
        """Call `cb()` once when the link is gone (at once if it already is)."""
        if self._closed:
            self._call(cb)
        else:
            self._close_listeners.append(cb)

    async def close(self) -> None:
        """Close the link and stop reading; pending and later commands fail with AtLinkClosed."""
        self._closing = True
        self._link.close()
        reader = self._reader
        if reader is not None and not reader.done() and reader is not asyncio.current_task():
            done, _ = await asyncio.wait((reader,), timeout=CLOSE_TIMEOUT)
            if not done:
                reader.cancel()
                await asyncio.wait((reader,))
        self._link_gone("closed by the gateway")

    def format_history(self, last: int = 20) -> str:
        """The last exchanges as text, oldest first, to attach to an error report."""
        rows = list(self.history)[-last:]
        return "\n".join(f"{t:.3f} {d} {line}" for t, d, line in rows)

    # -- reading -------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason = "port gone (no more data)"
        try:
            while True:
                try:
                    data = await self._link.read()
                except Exception as exc:  # a link that raises instead of returning b""
                    reason = f"read failed: {exc!r}"
                    break
                if not data:
                    break
                for line in self._framer.feed(data):
                    try:
                        self._on_line(line)
                    except Exception:
                        log.exception("%s: handling line %r failed", self._name, line)
        finally:
            self._link_gone(reason)

    def _on_line(self, line: str) -> None:
        self.history.append((self._clock.monotonic(), "<", line))
        log.debug("%s < %s", self._name, line)
        pending = self._pending
        if line.upper() == self._echo:
            log.debug("%s: echo of %r dropped", self._name, line)
            return
        if pending is not None:
            ok = _final(line, pending.call_control)
            if ok is not None:
                self._finish(pending, line, ok)
            elif line.startswith(pending.own_prefixes):
                pending.lines.append(line)
            elif self._is_urc(line):
                self._dispatch(line)
            else:
                pending.lines.append(line)
            return
        if _final(line, call_control=False) is not None:
            if self._stale_finals:
                self._stale_finals -= 1
                log.debug("%s: late %r of a timed-out command discarded", self._name, line)
            else:
                log.info("%s: %r with no command pending, ignored", self._name, line)
            return
        if not self._is_urc(line):
            log.debug("%s: unknown unsolicited line %r", self._name, line)
        self._dispatch(line)

    def _finish(self, pending: _Pending, final: str, ok: bool) -> None:
        self._pending = None
        if pending.future.done():
            return
        if ok:
            pending.future.set_result(AtResponse(pending.command, list(pending.lines), final))
        else:
            pending.future.set_exception(_failure(pending.command, final, pending.lines))

    def _is_urc(self, line: str) -> bool:
        return any(_has_prefix(line, p) for p in self._urc_prefixes)

    def _dispatch(self, line: str) -> None:
        for cb in list(self._urc_listeners):
            try:
                cb(line)
            except Exception:
                log.exception("%s: URC listener %r failed on %r", self._name, cb, line)

    # -- the end -------------------------------------------------------------------------------

    def _link_gone(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self._closing:
            log.debug("AT link %s closed", self._name)
        else:
            log.warning("AT link %s gone: %s", self._name, reason)
            self._link.close()
        pending, self._pending = self._pending, None
        if pending is not None and not pending.future.done():
            pending.future.set_exception(
                AtLinkClosed(f"{pending.command}: AT link {self._name} closed ({reason})"))
        listeners, self._close_listeners = self._close_listeners, []
        for cb in listeners:
            self._call(cb)

    def _call(self, cb: Callable[[], None]) -> None:
        try:
            cb()
        except Exception:
            log.exception("%s: close listener %r failed", self._name, cb)

    def _on_overflow(self, kept: int) -> None:
        log.warning("%s: line without a break longer than %d bytes was cut", self._name, kept)


def _encode(cmd: str) -> bytes:
    if not cmd or "\r" in cmd or "\n" in cmd:
        raise ValueError(f"AT command {cmd!r} must be one non-empty line")
    try:
        return (cmd + "\r").encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"AT command {cmd!r} is not ASCII") from None


def _own_prefixes(cmd: str) -> tuple[str, ...]:
    """The response prefixes a command asks for: AT+CLCC -> ("+CLCC:",)."""
    body = cmd.strip().upper()
    if body.startswith("AT"):
        body = body[2:]
    return tuple(dict.fromkeys(name + ":" for name in _COMMAND_NAME.findall(body)))


def _final(line: str, call_control: bool) -> bool | None:
    """True for a successful final result code, False for a failing one, None otherwise."""
    if line == "OK":
        return True
    if line in _FINALS or line.startswith(_FINAL_PREFIXES):
        return False
    if call_control:
        if line == "CONNECT" or line.startswith("CONNECT "):
            return True
        if line in _CALL_FAILURES:
            return False
    return None


def _failure(command: str, final: str, lines: list[str]) -> AtCommandError:
    if final.startswith("+CME ERROR:"):
        return CmeError(command, final, lines)
    if final.startswith("+CMS ERROR:"):
        return CmsError(command, final, lines)
    return AtCommandError(command, final, lines)


def _has_prefix(line: str, prefix: str) -> bool:
    """'RING' matches 'RING' and 'RING 2' but not 'RINGBACK'; 'X:' matches any 'X:...'."""
    if not line.startswith(prefix):
        return False
    rest = line[len(prefix):]
    return not (rest and prefix[-1:].isalnum() and rest[0].isalnum())
