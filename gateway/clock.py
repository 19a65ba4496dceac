"""Injected time: the daemon asks a Clock instead of the time module, so tests can drive it."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def time(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall and monotonic time from the operating system."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when advance() is called; sleepers wake when their deadline is passed.

    For tests and simulations: a 30-second back-off completes the moment the test advances the
    clock by 30 seconds, without waiting for real time.
    """

    def __init__(self, start: float = 1_764_614_400.0) -> None:
        self.mono = 1000.0
        self.wall = start
        self.slept: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._n = 0

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds
        due = [s for s in self._sleepers if s[0] <= self.mono]
        self._sleepers = [s for s in self._sleepers if s[0] > self.mono]
        for _, _, fut in sorted(due):
            if not fut.done():
                fut.set_result(None)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        self._n += 1
        self._sleepers.append((self.mono + seconds, self._n, fut))
        await fut
