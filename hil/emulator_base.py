"""What every modem emulator shares: its own thread running its own asyncio loop, scripting calls
handed to that loop thread-safely, waits on its state, the AT transcript, replug callbacks and the
port inventory file. The GSM families (hil/gsm/base.py) and the V.253 modem (hil/v253.py) build on it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
import time
from typing import Callable

_LOGGER = logging.getLogger("hil")

# How long a scripting call waits for the emulator's loop to run it.
CALL_TIMEOUT = 5.0
START_TIMEOUT = 5.0


class ThreadedEmulator:
    """An emulator on its own thread and loop. Subclasses give `state`, `port_inventory()` and the
    hooks _thread_name, _loop_started, _loop_stopping and _release."""

    def __init__(self) -> None:
        self.transcript: list[tuple[float, str, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._state_cond = threading.Condition()
        self._replug_callbacks: list[Callable[[], None]] = []

    # ---------------------------------------------------------------- hooks

    def _thread_name(self) -> str:
        return "emulator"

    def _loop_started(self) -> None:
        """On the new loop, before start() returns: attach the tty readers, boot."""

    def _loop_stopping(self) -> None:
        """On the loop, as stop() ends it: cancel tasks, detach readers."""

    def _release(self) -> None:
        """After the loop has ended (or never ran): close the ttys, remove links."""

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._thread = threading.Thread(target=self._run, name=self._thread_name(), daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("emulator loop did not start")

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._shutdown)
            thread.join(CALL_TIMEOUT)
        self._release()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._loop_started()
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _shutdown(self) -> None:
        self._loop_stopping()
        assert self._loop is not None
        self._loop.stop()

    def _call_in_loop(self, fn: Callable, *args, after_stop: bool = False):
        """Run fn(*args) on the emulator's loop and return its result (exceptions propagate).

        after_stop: once the loop has ended, run fn here instead (for reading what was recorded).
        """
        loop = self._loop
        if after_stop and self._thread is not None and not self._thread.is_alive():
            return fn(*args)
        if loop is None or not self._ready.is_set() or loop.is_closed():
            raise RuntimeError("emulator is not running (call start() first)")
        if threading.current_thread() is self._thread:
            return fn(*args)
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the calling thread
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(CALL_TIMEOUT)

    # ---------------------------------------------------------------- state

    def _notify(self) -> None:
        with self._state_cond:
            self._state_cond.notify_all()

    def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._state_cond:
            return self._state_cond.wait_for(predicate, timeout)

    def wait_for_state(self, state: str, timeout: float) -> bool:
        return self._wait_for(lambda: self.state == state, timeout)

    def _record(self, direction: str, text: str) -> None:
        """One transcript entry: direction ">" host to modem, "<" modem to host."""
        self.transcript.append((time.time(), direction, text))

    # ---------------------------------------------------------------- USB

    def on_replug(self, callback: Callable[[], None]) -> None:
        """Call callback (on the emulator's thread) each time the device comes back."""
        self._replug_callbacks.append(callback)

    def _run_replug_callbacks(self) -> None:
        for callback in self._replug_callbacks:
            try:
                callback()
            except Exception:
                _LOGGER.exception("replug callback failed")

    def port_inventory(self) -> list[dict]:
        """One dict per emulated tty, as a USB serial port scan would list it (empty while unplugged)."""
        raise NotImplementedError

    def write_inventory(self, path: str) -> None:
        """port_inventory() as a JSON file for $CALLGATE_PORT_INVENTORY (replaced atomically)."""
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.port_inventory(), handle, indent=1)
        os.replace(tmp, path)
