"""The AT command session: one command at a time over a byte link, unsolicited lines routed apart.

A reader task turns the link's bytes into lines (LineFramer) and classifies each line by its
content, never by whether a command happens to be pending:
  - an echo of the command is dropped;
  - a final result code ends the pending command (OK, ERROR, +CME/+CMS ERROR, COMMAND NOT
    SUPPORT; for call control also CONNECT, NO CARRIER, BUSY, NO ANSWER, NO DIALTONE);
  - a line carrying the command's own prefix (+CLCC: for AT+CLCC) belongs to the response;
  - a line starting with a URC prefix goes to the URC listeners, even inside a response;
  - anything else is response text if a command is pending, else an unknown unsolicited line.

Resync. AT has no sequence numbers: a final result code that comes after its command timed out
looks exactly like the answer to the next command. So after a timeout the session is out of
step; before it writes anything else it resynchronises (resync()): it waits for the port to go
quiet, sends a probe ("AT") until some final result comes, then waits for a quiet gap again,
discarding every stale final and response line on the way (URCs still reach the listeners).
A stale final that comes more than RESYNC_QUIET after the probe's own answer cannot be told
apart; modems answer in order, so in practice it comes before. When resync fails `unhealthy_after`
times in a row the session turns unhealthy (`healthy`, `last_error`, add_unhealthy_listener):
the owner's next rung is to reopen the port or reset the modem.

Body after a prompt (AT+CMGS, AT+CMGW): command(cmd, timeout, body=...) writes cmd, waits for
the modem's "> " prompt, then writes body followed by Ctrl-Z (0x1A); the response (+CMGS: <mr>)
and the final come as usual. If the prompt does not come in time, ESC (0x1B) cancels the input.

Data mode (V.253 voice, AT+VTX/+VRX/+VTR): start_data() sends a command and, on CONNECT, hands
every following byte raw to a consumer until the consumer says where the stream ended; then the
rest is framed as lines again, so the OK after <DLE><ETX> ends the exchange (end_data()).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.at.errors import (AtCommandError, AtDataModeError, AtLinkClosed, AtTimeout, CmeError,
                               CmsError)
from gateway.at.framer import PROMPT, LineFramer
from gateway.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

# close() waits this long for the reader task to see the link closed before cancelling it; a
# serial link wakes its reader at once, so this only bounds a misbehaving link.
CLOSE_TIMEOUT = 1.0
# Resync: the port must stay this long without a final or a response line (URCs do not count)
# before the probe is sent and again after its answer. USB modems answer AT within ~10 ms.
RESYNC_QUIET = 0.1
# A probe with no answer after this long is sent again (a busy modem may have dropped it).
RESYNC_PROBE_INTERVAL = 0.5
RESYNC_TIMEOUT = 2.0         # the most a command spends resynchronising before it is sent
RESYNC_PROBE = "AT"
UNHEALTHY_AFTER = 2          # failed resyncs in a row before the session calls itself unhealthy

_FINALS = ("OK", "ERROR", "COMMAND NOT SUPPORT")       # exact lines
_FINAL_PREFIXES = ("+CME ERROR:", "+CMS ERROR:")
_CALL_FAILURES = ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
# The extended command names in a command line: AT+CPIN? -> +CPIN, AT+QPCMV=0;+QPCMV=1,0;A -> +QPCMV
_COMMAND_NAME = re.compile(r"(?:^|;)\s*([+^$%#*][A-Z0-9_]+)")
_CTRL_Z = b"\x1a"
_ESC = b"\x1b"

DataConsumer = Callable[[bytes], "int | None"]


class AtLink(Protocol):
    """What the session needs of a byte pipe (gateway.transport.serial_port.SerialLink is one).

    An optional `async drain()` (wait until queued output is small) is used by drain().
    """

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
    future: asyncio.Future[AtResponse | None]   # None when the timeout ran out first
    lines: list[str] = field(default_factory=list)
    answered: bool = True                # False once the command timed out
    body: bytes | None = None            # written after the "> " prompt
    body_sent: bool = False
    body_echo: str | None = None         # the first line after the body, if it reads so, is echo
    connect: tuple[str, ...] | None = None   # start_data(): these finals enter data mode
    on_data: DataConsumer | None = None


@dataclass
class _DataMode:
    command: str
    on_data: DataConsumer
    ended: asyncio.Future[None]          # done when the stream ended (bytes are lines again)
    raw: bool = True
    ending: bool = False                 # end_data() is running
    final: _Pending | None = None        # waits for the final result after the stream


class _Resync:
    """What the reader tells a running resync: finals seen, and a wake-up on any stale line."""

    def __init__(self) -> None:
        self.finals = 0
        self.wake: asyncio.Future[None] | None = None

    def poke(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)


class AtSession:
    """Runs AT commands on one port and hands everything unsolicited to listeners."""

    def __init__(self, link: AtLink, urc_prefixes: Sequence[str], *,
                 clock: Clock = SYSTEM_CLOCK, history: int = 200,
                 resync_probe: str = RESYNC_PROBE, resync_timeout: float = RESYNC_TIMEOUT,
                 unhealthy_after: int = UNHEALTHY_AFTER) -> None:
        self.history: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=history)
        self._link = link
        self._name = str(getattr(link, "path", link))
        self._urc_prefixes = tuple(urc_prefixes)
        self._clock = clock
        self._probe = _encode(resync_probe)
        self._probe_echo = resync_probe.strip().upper()
        self._resync_timeout = resync_timeout
        self._unhealthy_after = max(1, unhealthy_after)
        self._framer = LineFramer(on_overflow=self._on_overflow)
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._echo: str | None = None  # the last command as its echo would read
        self._synced = True            # False from a timeout until a resync succeeds
        self._escape_first = False     # a prompt may still be open: lead the probe with ESC
        self._resync: _Resync | None = None
        self._resync_failures = 0
        self._healthy = True
        self._last_error: str | None = None
        self._data: _DataMode | None = None
        self._skip_lf = False          # the CONNECT line ended with the chunk's CR; LF may follow
        self._urc_listeners: list[Callable[[str], None]] = []
        self._close_listeners: list[Callable[[], None]] = []
        self._unhealthy_listeners: list[Callable[[str], None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def healthy(self) -> bool:
        """False once resync failed `unhealthy_after` times in a row; True again after a success."""
        return self._healthy

    @property
    def last_error(self) -> str | None:
        """The last timeout or resync failure, as text (None if there was none)."""
        return self._last_error

    @property
    def in_sync(self) -> bool:
        """False after a timeout until the next successful resync."""
        return self._synced

    @property
    def in_data_mode(self) -> bool:
        """True from start_data()'s CONNECT until end_data() returns (or the link closes)."""
        return self._data is not None

    async def start(self) -> None:
        """Start reading the link."""
        if self._reader is not None:
            raise RuntimeError(f"AT session on {self._name} already started")
        if self._closed:
            raise AtLinkClosed(f"AT link {self._name} is closed")
        self._reader = asyncio.get_running_loop().create_task(
            self._read_loop(), name=f"at-reader {self._name}")

    async def command(self, cmd: str, timeout: float, *, call_control: bool = False,
                      body: bytes | None = None) -> AtResponse:
        """Send `cmd` and wait up to `timeout` s for its final result code.

        call_control=True for ATA/ATD...: then CONNECT ends it well and NO CARRIER, BUSY,
        NO ANSWER, NO DIALTONE end it badly; otherwise those lines are unsolicited.
        body: for commands that prompt with "> " (AT+CMGS=<len>, AT+CMGW): written after the
        prompt, followed by Ctrl-Z; it must not hold Ctrl-Z or ESC itself. With echo on, the
        echoed body is dropped when it is the first line after the prompt.
        The timeout counts from the moment the command has the port (one command runs at a
        time) and includes a resync after an earlier timeout.
        Raises AtCommandError (CmeError, CmsError), AtTimeout (resync_failed=True when the
        command was not sent at all), AtLinkClosed, or AtDataModeError while in data mode.
        """
        data = _encode(cmd)
        if body is not None:
            body = _check_body(cmd, body)
        self._check_usable(cmd)
        async with self._lock:
            self._check_usable(cmd)
            return await self._exchange(cmd, data, timeout, call_control=call_control, body=body)

    async def resync(self, timeout: float) -> bool:
        """Get back in step with the modem within `timeout` s; True if it answered a probe.

        Waits for RESYNC_QUIET without response lines, sends the probe ("AT") until a final
        result comes (again every RESYNC_PROBE_INTERVAL), then waits for RESYNC_QUIET again;
        stale finals and response lines are discarded, URCs still reach the listeners.
        A failure counts towards `healthy`. Raises AtLinkClosed, or AtDataModeError in data mode.
        """
        self._check_usable("resync")
        async with self._lock:
            self._check_usable("resync")
            return await self._resync_locked(timeout)

    async def start_data(self, cmd: str, on_data: DataConsumer, timeout: float,
                         connect: tuple[str, ...] = ("CONNECT",)) -> None:
        """Send `cmd` and enter data mode when one of `connect` is its final result.

        From then on every byte read goes raw to on_data(chunk) (no line framing). on_data
        returns None to stay in data mode, or n: the stream ended after byte n of that chunk;
        the rest of the chunk and what follows is framed as lines again (so the OK after
        <DLE><ETX> is seen). Any other final result (ERROR, NO CARRIER, OK, ...) raises as
        command() does, and so does a timeout. A consumer that raises is logged and ignored.
        Commands are refused with AtDataModeError until end_data() returns.
        """
        data = _encode(cmd)
        if not callable(on_data):
            raise TypeError(f"{cmd}: on_data must be callable")
        if isinstance(connect, str):
            connect = (connect,)
        if not connect or not all(isinstance(c, str) and c.strip() for c in connect):
            raise ValueError(f"{cmd}: connect must name at least one result code, not {connect!r}")
        self._check_usable(cmd)
        async with self._lock:
            self._check_usable(cmd)
            await self._exchange(cmd, data, timeout, call_control=True,
                                 connect=tuple(c.strip() for c in connect), on_data=on_data)

    def write_data(self, data: bytes) -> None:
        """Write raw bytes while in data mode (before the stream has ended)."""
        mode = self._data
        if self._closed:
            raise AtLinkClosed(f"write_data: AT link {self._name} is closed")
        if mode is None:
            raise AtDataModeError(f"write_data: AT link {self._name} is not in data mode")
        if not mode.raw:
            raise AtDataModeError(f"write_data: the data stream of {mode.command} has ended")
        self._write(bytes(data))

    async def drain(self) -> None:
        """Wait until the link's queued output is small again (if the link can tell)."""
        drain = getattr(self._link, "drain", None)
        if drain is not None and not self._closed:
            await drain()

    async def end_data(self, terminator: bytes, timeout: float, *,
                       modem_ends_stream: bool) -> AtResponse:
        """Leave data mode and return the final result of the data command (usually OK).

        Writes `terminator` (e.g. <DLE><ETX> after AT+VTX, <DLE>! during AT+VRX) unless the
        stream has already ended. modem_ends_stream=True: keep feeding on_data until it returns
        an end index (the modem's own <DLE><ETX>), then wait for the final in line mode;
        False: switch to line mode at once and wait for the final. All within `timeout`;
        on AtTimeout the session leaves data mode anyway and resyncs before the next command.
        """
        mode = self._data
        if mode is None:
            if self._closed:
                raise AtLinkClosed(f"end_data: AT link {self._name} is closed")
            raise AtDataModeError(f"end_data: AT link {self._name} is not in data mode")
        if mode.ending:
            raise AtDataModeError(f"end_data: already ending the data mode of {mode.command}")
        mode.ending = True
        loop = asyncio.get_running_loop()
        timer = loop.create_task(self._clock.sleep(timeout), name=f"at-timeout end {mode.command}")
        try:
            if mode.raw:
                if terminator:
                    self.history.append((self._clock.monotonic(), ">", _show(terminator)))
                    self._write(bytes(terminator))
                if not modem_ends_stream and mode.raw and not self._closed:
                    self._stream_ended(mode)
            if not mode.ended.done():
                await asyncio.wait((mode.ended, timer), return_when=asyncio.FIRST_COMPLETED)
                if not mode.ended.done():
                    raise self._timed_out(AtTimeout(mode.command, [], timeout))
            mode.ended.result()                        # AtLinkClosed if the link went away
            final = mode.final
            assert final is not None
            if not final.future.done():
                await asyncio.wait((final.future, timer), return_when=asyncio.FIRST_COMPLETED)
                if not final.future.done():
                    raise self._timed_out(AtTimeout(mode.command, final.lines, timeout))
            return final.future.result()
        finally:
            timer.cancel()
            self._leave_data(mode)

    def add_urc_listener(self, cb: Callable[[str], None]) -> Callable[[], None]:
        """Call `cb(line)` for every unsolicited line; returns a function that unsubscribes."""
        return _subscribe(self._urc_listeners, cb)

    def add_unhealthy_listener(self, cb: Callable[[str], None]) -> Callable[[], None]:
        """Call `cb(reason)` each time the session turns unhealthy; returns an unsubscriber."""
        return _subscribe(self._unhealthy_listeners, cb)

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

    # -- commands ------------------------------------------------------------------------------

    def _check_usable(self, what: str) -> None:
        if self._reader is None:
            raise RuntimeError(f"AT session on {self._name}: start() was not called")
        if self._closed:
            raise AtLinkClosed(f"{what}: AT link {self._name} is closed")
        if self._data is not None:
            raise AtDataModeError(f"{what}: AT link {self._name} is in data mode for "
                                  f"{self._data.command}; call end_data() first")

    async def _exchange(self, cmd: str, data: bytes, timeout: float, *, call_control: bool,
                        body: bytes | None = None, connect: tuple[str, ...] | None = None,
                        on_data: DataConsumer | None = None) -> AtResponse:
        """Write one command and wait for its final; the caller holds the lock."""
        loop = asyncio.get_running_loop()
        remaining = timeout
        if not self._synced:
            started = self._clock.monotonic()
            if not await self._resync_locked(min(self._resync_timeout, timeout / 2)):
                raise AtTimeout(cmd, [], timeout, resync_failed=True)
            remaining = timeout - (self._clock.monotonic() - started)
            if remaining <= 0:
                raise AtTimeout(cmd, [], timeout)
        pending = _Pending(cmd, call_control, _own_prefixes(cmd), loop.create_future(),
                           body=body, connect=connect, on_data=on_data)
        self._pending = pending
        self._echo = cmd.strip().upper()
        self.history.append((self._clock.monotonic(), ">", cmd))
        log.debug("%s > %s", self._name, cmd)
        timer = loop.create_task(self._clock.sleep(remaining), name=f"at-timeout {cmd}")
        timer.add_done_callback(lambda _: pending.future.done() or pending.future.set_result(None))
        try:
            self._framer.prompt = body is not None
            self._write(data)
            response = await pending.future          # None: the timer ran out first
            if response is not None:
                return response
            pending.answered = False
            if body is not None and not pending.body_sent:
                self._write(_ESC)                     # leave the "> " input state
                self._escape_first = True
            raise self._timed_out(AtTimeout(cmd, pending.lines, timeout))
        finally:
            timer.cancel()
            self._framer.prompt = False
            if self._pending is pending:
                self._pending = None
            if not pending.answered or not pending.future.done() or pending.future.cancelled():
                pending.future.cancel()               # timed out, or the caller gave up:
                self._synced = False                  # its final may still come
            else:
                pending.future.exception()  # retrieved, even when we were cancelled

    def _timed_out(self, exc: AtTimeout) -> AtTimeout:
        self._synced = False
        self._last_error = str(exc)
        log.info("%s: %s", self._name, exc)
        return exc

    def _write(self, data: bytes) -> None:
        try:
            self._link.write(data)
        except OSError as exc:  # a link that raises instead of going quiet
            self._link_gone(f"write failed: {exc}")

    # -- resync --------------------------------------------------------------------------------

    async def _resync_locked(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        state = _Resync()
        self._resync = state
        budget = loop.create_task(self._clock.sleep(timeout), name=f"at-resync {self._name}")
        self.history.append((self._clock.monotonic(), "*", "resync"))
        try:
            ok = (await self._quiet(state, budget)
                  and await self._probe_until_final(state, budget)
                  and await self._quiet(state, budget))
        finally:
            budget.cancel()
            self._resync = None
        if self._closed:
            raise AtLinkClosed(f"resync: AT link {self._name} closed")
        if ok:
            self._synced = True
            self._escape_first = False
            self._resync_failures = 0
            if not self._healthy:
                log.warning("%s: modem answers again, session healthy", self._name)
            self._healthy = True
            return True
        self._synced = False
        self._resync_failures += 1
        self._last_error = (f"resync: no answer to {self._probe_echo} within {timeout:g} s "
                            f"({self._resync_failures} failed in a row)")
        log.warning("%s: %s", self._name, self._last_error)
        if self._healthy and self._resync_failures >= self._unhealthy_after:
            self._healthy = False
            for cb in list(self._unhealthy_listeners):
                try:
                    cb(self._last_error)
                except Exception:
                    log.exception("%s: unhealthy listener %r failed", self._name, cb)
        return False

    async def _quiet(self, state: _Resync, budget: asyncio.Task[None]) -> bool:
        """Wait for RESYNC_QUIET without a stale line; False when the budget ran out first."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            state.wake = loop.create_future()
            gap = loop.create_task(self._clock.sleep(RESYNC_QUIET))
            try:
                await asyncio.wait((state.wake, gap, budget), return_when=asyncio.FIRST_COMPLETED)
            finally:
                gap.cancel()
            if state.wake.done():
                continue
            return gap.done() and not gap.cancelled()
        return False

    async def _probe_until_final(self, state: _Resync, budget: asyncio.Task[None]) -> bool:
        loop = asyncio.get_running_loop()
        state.finals = 0
        while not self._closed:
            self._echo = self._probe_echo
            self.history.append((self._clock.monotonic(), ">", self._probe_echo))
            self._write((_ESC if self._escape_first else b"") + self._probe)
            interval = loop.create_task(self._clock.sleep(RESYNC_PROBE_INTERVAL))
            try:
                while not state.finals and not self._closed:
                    state.wake = loop.create_future()
                    await asyncio.wait((state.wake, interval, budget),
                                       return_when=asyncio.FIRST_COMPLETED)
                    if state.finals:
                        return True
                    if budget.done():
                        return False
                    if interval.done():
                        break
            finally:
                interval.cancel()
            if state.finals:
                return True
        return False

    # -- data mode -----------------------------------------------------------------------------

    def _enter_data(self, pending: _Pending, final: str) -> None:
        assert pending.on_data is not None
        self._pending = None
        self._echo = None
        self._data = _DataMode(pending.command, pending.on_data,
                               asyncio.get_running_loop().create_future())
        if not pending.future.done():
            pending.future.set_result(AtResponse(pending.command, list(pending.lines), final))
        self.history.append((self._clock.monotonic(), "*", "data mode"))

    def _stream_ended(self, mode: _DataMode) -> None:
        """Bytes are lines again; the data command's final result is awaited from now on."""
        mode.raw = False
        self._skip_lf = False
        mode.final = _Pending(mode.command, True, (), asyncio.get_running_loop().create_future())
        self._pending = mode.final
        self.history.append((self._clock.monotonic(), "*", "line mode"))
        if not mode.ended.done():
            mode.ended.set_result(None)

    def _leave_data(self, mode: _DataMode) -> None:
        if self._data is mode:
            self._data = None
        if mode.raw:               # gave up waiting for the modem's end of stream
            mode.raw = False
            self._framer.reset()
            self._synced = False
        final = mode.final
        if final is not None:
            if self._pending is final:
                self._pending = None
            if not final.future.done():
                final.future.cancel()
                self._synced = False
            elif not final.future.cancelled():
                final.future.exception()
        if not mode.ended.done():
            mode.ended.cancel()
        elif not mode.ended.cancelled():
            mode.ended.exception()

    def _feed_raw(self, mode: _DataMode, data: bytes) -> int | None:
        try:
            end = mode.on_data(data)
        except Exception:
            log.exception("%s: data consumer of %s failed", self._name, mode.command)
            return None
        if end is None:
            return None
        if isinstance(end, bool) or not isinstance(end, int) or not 0 <= end <= len(data):
            log.error("%s: data consumer of %s returned %r for a %d-byte chunk; taken as the "
                      "end of the chunk", self._name, mode.command, end, len(data))
            return len(data)
        return end

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
                self._on_bytes(data)
        finally:
            self._link_gone(reason)

    def _on_bytes(self, data: bytes) -> None:
        while data:
            mode = self._data
            if mode is not None and mode.raw:
                if self._skip_lf:
                    self._skip_lf = False
                    if data[0] == 0x0A:
                        data = data[1:]
                        continue
                end = self._feed_raw(mode, data)
                if end is None:
                    return
                if mode.raw:
                    self._stream_ended(mode)
                data = data[end:]
                continue
            rest = b""
            for line, end in self._framer.lines_with_ends(data):
                try:
                    self._on_line(line)
                except Exception:
                    log.exception("%s: handling line %r failed", self._name, line)
                if self._data is not None and self._data.raw:    # that line was the CONNECT
                    rest = data[end:]
                    self._skip_lf = not rest and data[end - 1] == 0x0D
                    break
            data = rest

    def _on_line(self, line: str) -> None:
        self.history.append((self._clock.monotonic(), "<", line))
        log.debug("%s < %s", self._name, line)
        if line == PROMPT:
            self._on_prompt()
            return
        pending = self._pending
        if self._echo is not None and line.upper() == self._echo:
            log.debug("%s: echo of %r dropped", self._name, line)
            return
        if pending is not None:
            self._on_response_line(pending, line)
            return
        resync = self._resync
        if resync is not None:
            if _final(line, call_control=False) is not None:
                resync.finals += 1
                resync.poke()
            elif self._is_urc(line):
                self._dispatch(line)
            else:
                log.debug("%s: stale line %r discarded while resyncing", self._name, line)
                resync.poke()
            return
        if _final(line, call_control=False) is not None:
            if not self._synced:
                log.debug("%s: late %r of a timed-out command discarded", self._name, line)
            else:
                log.info("%s: %r with no command pending, ignored", self._name, line)
            return
        if not self._is_urc(line):
            if not self._synced:
                log.debug("%s: stale line %r of a timed-out command discarded", self._name, line)
                return
            log.debug("%s: unknown unsolicited line %r", self._name, line)
        self._dispatch(line)

    def _on_response_line(self, pending: _Pending, line: str) -> None:
        if pending.body_echo is not None:
            echo, pending.body_echo = pending.body_echo, None
            if line == echo:
                log.debug("%s: echo of the body of %s dropped", self._name, pending.command)
                return
        if pending.connect is not None:
            if any(_has_result(line, c) for c in pending.connect):
                self._enter_data(pending, line)
                return
            if _final(line, call_control=True) is not None:
                self._finish(pending, line, False)
                return
        else:
            ok = _final(line, pending.call_control)
            if ok is not None:
                self._finish(pending, line, ok)
                return
        if line.startswith(pending.own_prefixes):
            pending.lines.append(line)
        elif self._is_urc(line):
            self._dispatch(line)
        else:
            pending.lines.append(line)

    def _on_prompt(self) -> None:
        pending = self._pending
        self._framer.prompt = False
        if pending is None or pending.body is None or pending.body_sent:
            log.debug("%s: '> ' prompt with no body to send, ignored", self._name)
            return
        pending.body_sent = True
        text = pending.body.decode("ascii", "replace")
        pending.body_echo = text.strip() or None
        self.history.append((self._clock.monotonic(), ">", text + "<Ctrl-Z>"))
        self._write(pending.body + _CTRL_Z)

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
        gone = f"AT link {self._name} closed ({reason})"
        pending, self._pending = self._pending, None
        if pending is not None and not pending.future.done():
            pending.future.set_exception(AtLinkClosed(f"{pending.command}: {gone}"))
        mode, self._data = self._data, None
        if mode is not None:
            if not mode.ended.done():
                mode.ended.set_exception(AtLinkClosed(f"{mode.command}: {gone}"))
            if not mode.ending:            # nobody will call end_data() to collect these
                if mode.ended.done() and not mode.ended.cancelled():
                    mode.ended.exception()
                if mode.final is not None and mode.final.future.done():
                    mode.final.future.exception()
        if self._resync is not None:
            self._resync.poke()
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


def _subscribe(listeners: list, cb: Callable) -> Callable[[], None]:
    listeners.append(cb)

    def remove() -> None:  # by identity: two listeners may compare equal
        for i, listener in enumerate(listeners):
            if listener is cb:
                del listeners[i]
                return

    return remove


def _encode(cmd: str) -> bytes:
    if not cmd or "\r" in cmd or "\n" in cmd:
        raise ValueError(f"AT command {cmd!r} must be one non-empty line")
    try:
        return (cmd + "\r").encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"AT command {cmd!r} is not ASCII") from None


def _check_body(cmd: str, body: bytes) -> bytes:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"{cmd}: body must be bytes, not {type(body).__name__}")
    body = bytes(body)
    for i, byte in enumerate(body):
        if byte in (0x1A, 0x1B):
            name = "Ctrl-Z (0x1a)" if byte == 0x1A else "ESC (0x1b)"
            raise ValueError(f"{cmd}: body byte {i} is {name}, which would end the input early")
    return body


def _show(data: bytes) -> str:
    """Raw bytes for the history: printable ASCII as is, the rest as <xx>."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"<{b:02x}>" for b in data[:64])


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
        if _has_result(line, "CONNECT"):
            return True
        if line in _CALL_FAILURES:
            return False
    return None


def _has_result(line: str, code: str) -> bool:
    """'CONNECT' and 'CONNECT 9600' are CONNECT; 'CONNECTED' is not."""
    return line == code or line.startswith(code + " ")


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
