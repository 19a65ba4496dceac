"""A serial port as a narrow asyncio byte pipe: read, write, drain, close.

The port (a /dev/ttyUSB*, /dev/ttyACM* or a pseudo-terminal slave) is opened with pyserial, then
driven directly from the event loop with add_reader/add_writer on its non-blocking descriptor.
A port that goes away (USB unplugged, modem reset, pty master closed) never raises into the
caller: write() logs and drops, read() returns b"" once the bytes already received are consumed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import termios

import serial

from gateway.transport.link_support import Waiters, open_in_thread

log = logging.getLogger(__name__)

# Opening a USB serial node normally takes milliseconds; a wedged modem firmware has been seen
# to block open() in the kernel driver, so the open runs in a thread and is abandoned after this.
OPEN_TIMEOUT = 5.0
# Bytes asked of the kernel per read; a USB full-speed bulk endpoint delivers at most 4 KiB
# per burst on these modems, and 20 ms of 16 kHz audio is 640 bytes.
READ_CHUNK = 4096
# Received bytes nobody has read yet; above this the port stops being polled until read()
# catches up (back-pressure instead of unbounded memory).
READ_BUFFER_LIMIT = 256 * 1024
# drain() waits while more than WRITE_HIGH_WATER bytes are queued, until WRITE_LOW_WATER;
# 64 KiB is ~4 s of 8 kHz audio, more than any sane latency budget.
WRITE_HIGH_WATER = 64 * 1024
WRITE_LOW_WATER = 16 * 1024
# A port that accepts nothing for this much queued data is stalled: further writes are dropped
# (and logged) so a dead modem cannot grow the daemon's memory.
WRITE_BUFFER_LIMIT = 1024 * 1024


class SerialOpenError(OSError):
    """The port could not be opened; the message names the path and the reason."""

    def __init__(self, path: str, reason: str, err: int | None = None) -> None:
        super().__init__(f"cannot open serial port {path}: {reason}")
        self.errno = err
        self.filename = path
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


class SerialLink:
    """An open serial port driven by the event loop. Made by open_serial()."""

    def __init__(self, port: serial.Serial, path: str, loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self._port: serial.Serial | None = port
        self._fd = port.fileno()
        self._loop = loop
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._reader = Waiters(loop)
        self._drainers = Waiters(loop)
        self._reading = False
        self._writing = False
        self._dropped = 0
        self._closed = False
        self._resume_reading()

    @property
    def closed(self) -> bool:
        """True once close() was called or the port went away."""
        return self._closed

    async def read(self) -> bytes:
        """Wait for at least one byte; b"" once the port is gone and everything was read."""
        if self._reader:
            raise RuntimeError(f"read() on {self.path} is already waiting in another task")
        while not self._rbuf:
            if self._closed:
                return b""
            await self._reader.wait()
        data = bytes(self._rbuf)
        self._rbuf.clear()
        if not self._reading and not self._closed:
            self._resume_reading()
        return data

    def write(self, data: bytes) -> None:
        """Queue bytes for the port without blocking; dropped (and logged) if the port is gone."""
        if self._closed:
            log.debug("write of %d bytes to closed port %s dropped", len(data), self.path)
            return
        if not data:
            return
        if not self._wbuf:
            try:
                sent = os.write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._lost(f"write failed: {exc}")
                return
            data = data[sent:]
            if not data:
                return
        if len(self._wbuf) + len(data) > WRITE_BUFFER_LIMIT:
            if not self._dropped:
                log.warning("serial port %s is not accepting data; dropping writes", self.path)
            self._dropped += len(data)
            return
        self._wbuf += data
        if not self._writing:
            self._loop.add_writer(self._fd, self._on_writable)
            self._writing = True

    async def drain(self) -> None:
        """Wait until the queued output is small again (or the port is gone)."""
        if self._closed or len(self._wbuf) <= WRITE_HIGH_WATER:
            return
        await self._drainers.wait()

    def close(self) -> None:
        """Release the port; a pending read() returns what was buffered, then b""."""
        if self._closed:
            return
        log.debug("closing serial port %s", self.path)
        self._shutdown()

    # -- event loop callbacks ------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"read failed: {exc}")
            return
        if not data:
            # With VMIN=1 on a non-blocking tty an empty read means hang-up, not "no data".
            self._lost("end of file (device hung up)")
            return
        self._rbuf += data
        if len(self._rbuf) >= READ_BUFFER_LIMIT:
            self._loop.remove_reader(self._fd)
            self._reading = False
        self._reader.wake_all()

    def _on_writable(self) -> None:
        try:
            sent = os.write(self._fd, self._wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"write failed: {exc}")
            return
        del self._wbuf[:sent]
        if not self._wbuf:
            self._loop.remove_writer(self._fd)
            self._writing = False
            if self._dropped:
                log.warning("serial port %s accepts data again; %d bytes were dropped",
                            self.path, self._dropped)
                self._dropped = 0
        if len(self._wbuf) <= WRITE_LOW_WATER:
            self._drainers.wake_all()

    # -- internals -----------------------------------------------------------------------------

    def _resume_reading(self) -> None:
        self._loop.add_reader(self._fd, self._on_readable)
        self._reading = True

    def _lost(self, reason: str) -> None:
        log.warning("serial port %s lost: %s", self.path, reason)
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        self._wbuf.clear()
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (OSError, serial.SerialException) as exc:
                log.debug("closing %s: %s", self.path, exc)
        self._reader.wake_all()
        self._drainers.wake_all()


async def open_serial(path: str, baudrate: int = 115200, *,
                      open_timeout: float = OPEN_TIMEOUT) -> SerialLink:
    """Open `path` as a raw 8N1 port at `baudrate`; SerialOpenError names the path and reason."""
    loop = asyncio.get_running_loop()
    try:
        port = await open_in_thread(lambda: serial.Serial(path, baudrate, timeout=0, exclusive=True),
                                    serial.Serial.close, f"open {path}", open_timeout)
    except TimeoutError:
        raise SerialOpenError(path, f"open() did not return within {open_timeout} s",
                              errno.ETIMEDOUT) from None
    except Exception as exc:  # everything pyserial raises becomes SerialOpenError
        raise _open_error(path, exc) from exc
    try:
        _make_nonblocking_raw(port)
    except (OSError, termios.error) as exc:
        port.close()
        raise _open_error(path, exc) from exc
    log.debug("opened serial port %s at %d baud", path, baudrate)
    return SerialLink(port, path, loop)


def _make_nonblocking_raw(port: serial.Serial) -> None:
    fd = port.fileno()
    os.set_blocking(fd, False)
    # pyserial leaves VMIN=0, where an empty read can mean "nothing yet"; with VMIN=1 a
    # non-blocking read says EAGAIN for that, and an empty read always means hang-up.
    attrs = termios.tcgetattr(fd)
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _open_error(path: str, exc: BaseException) -> SerialOpenError:
    err = getattr(exc, "errno", None)
    text = str(exc)
    if "lock" in text.lower():
        reason = "port is in use by another process (exclusive lock held)"
    elif isinstance(err, int) and err:
        reason = os.strerror(err)
    elif isinstance(exc, termios.error) and exc.args:
        reason = f"cannot configure the terminal: {exc.args[-1]}"
    else:
        reason = text or type(exc).__name__
    return SerialOpenError(path, reason, err if isinstance(err, int) else None)
