"""Pieces the device links (serial_port.py, sound_card.py) share: tasks parked in read() or drain()
until the link wakes them, and opening a device in a daemon thread the caller may give up on."""

from __future__ import annotations

import asyncio
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


class Waiters:
    """Tasks parked in a link's read() or drain(); wake_all() releases every one of them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: list[asyncio.Future[None]] = []

    def __bool__(self) -> bool:
        return bool(self._waiters)

    async def wait(self) -> None:
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def wake_all(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()


async def open_in_thread(open_device: Callable[[], T], release: Callable[[T], None], name: str,
                         timeout: float) -> T:
    """Run the blocking open_device() in a daemon thread named `name` (not the default executor: a
    thread stuck in a driver must not block shutdown) and return what it opened. Raises what
    open_device raised, or TimeoutError after `timeout` seconds; a device that opens after the
    caller gave up, or after the loop closed, is handed to release() (which must not block)."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[T] = loop.create_future()

    def deliver(device: T | None, exc: BaseException | None) -> None:
        if opened.done():  # the caller gave up waiting: nobody will ever close this device
            if device is not None:
                release(device)
        elif exc is not None:
            opened.set_exception(exc)
        else:
            opened.set_result(device)

    def run() -> None:
        device, failure = None, None
        try:
            device = open_device()
        except BaseException as exc:  # handed to the waiting caller
            failure = exc
        try:
            loop.call_soon_threadsafe(deliver, device, failure)
        except RuntimeError:  # the loop is closed
            if device is not None:
                release(device)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await asyncio.wait_for(opened, timeout)
