"""Helpers for tests that talk AT over pseudo-terminals: the host's AtLink (pyserial, lines split on
CR/LF runs), a raw pty pair for a test that plays the modem, and bounded asyncio `run` / `until`."""

from __future__ import annotations

import asyncio
import os
import re
import time
import tty

import serial

# Final result lines of 27.007/V.250 modems (and Huawei's COMMAND NOT SUPPORT).
FINALS = re.compile(r"^(OK|ERROR|NO CARRIER|BUSY|NO ANSWER|NO DIALTONE|COMMAND NOT SUPPORT|"
                    r"\+CME ERROR: .*|\+CMS ERROR: .*)$")


class AtLink:
    """Host side of an AT tty: raw bytes kept for framing checks, lines split on CR/LF runs;
    command() reads up to the first line `finals` matches."""

    def __init__(self, port: str, finals: re.Pattern = FINALS) -> None:
        self.ser = serial.Serial(port, timeout=0.02)
        self.finals = finals
        self.raw = bytearray()
        self._pending = ""
        self.lines: list[str] = []

    def _pump(self) -> None:
        data = self.ser.read(4096)
        self.raw += data
        self._pending += data.decode("latin-1")
        *complete, self._pending = re.split(r"[\r\n]+", self._pending)
        self.lines += [line for line in complete if line]

    def expect(self, predicate, timeout: float = 2.0) -> list[str]:
        """Read until a line satisfies predicate; return the lines read up to and including it."""
        deadline = time.monotonic() + timeout
        taken: list[str] = []
        while True:
            while self.lines:
                line = self.lines.pop(0)
                taken.append(line)
                if predicate(line):
                    return taken
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; lines so far: {taken}")
            self._pump()

    def until(self, text: str, timeout: float = 2.0) -> list[str]:
        return self.expect(lambda line: line.startswith(text), timeout)

    def command(self, text: str, timeout: float = 2.0) -> list[str]:
        self.ser.write(text.encode("latin-1") + b"\r")
        return self.expect(self.finals.match, timeout)

    def quiet_for(self, seconds: float) -> list[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump()
        taken, self.lines = self.lines, []
        return taken

    def close(self) -> None:
        self.ser.close()


def open_raw_pty() -> tuple[int, int, str]:
    """A pty pair for a test that plays the modem: (non-blocking master, raw slave, slave path)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def run(scenario, seconds: float = 10.0):
    """Run an async scenario with a hard bound, so a hang fails fast instead of timing out pytest."""
    async def bounded():
        return await asyncio.wait_for(scenario(), seconds)
    return asyncio.run(bounded())


async def until(predicate, what: str, wait: float = 2.0) -> None:
    """Wait (polling real I/O, bounded by `wait` seconds) until predicate() is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
