"""The media clock of a call: a frame pacer on an absolute monotonic schedule, and the small buffer
that lets bursty transport reads meet its steady ticks.

Tick n of a FramePacer is due at origin + n * period, computed from the integer tick count, so an
hour of 20 ms ticks ends exactly 3600 s after it began however late single wake-ups were. A pacer
that falls far behind (the loop was blocked) restarts its schedule instead of sending the missed
frames in one burst.
"""

from __future__ import annotations

from collections import deque
from collections.abc import MutableMapping

from gateway.clock import Clock

RESYNC_AFTER = 0.2      # seconds behind schedule beyond which the schedule restarts
PREFILL = 2             # caller frames held before the first one is taken (40 ms at 20 ms frames)
CAPACITY = 6            # frames held at most; beyond this the oldest is dropped (120 ms)


class FramePacer:
    """Wakes a frame pump once per `period` on the injected clock.

    Tick 0 is due when the pacer is made; each `await wait()` sleeps until the next tick is due.
    Counts into `counters` (its own dict unless one is given):
      late_ticks: the pump woke more than one period after a tick was due;
      resyncs:    it was more than `resync_after` behind, so the schedule restarted from now
                  (such a tick is also a late tick).
    """

    def __init__(self, clock: Clock, period: float, *, resync_after: float = RESYNC_AFTER,
                 counters: MutableMapping[str, int] | None = None) -> None:
        if not period > 0:
            raise ValueError(f"frame period must be > 0 seconds, got {period!r}")
        if not resync_after > period:
            raise ValueError(f"resync_after ({resync_after!r} s) must be longer than the period ({period} s)")
        self.clock = clock
        self.period = float(period)
        self.resync_after = float(resync_after)
        self.counters = counters if counters is not None else {}
        for key in ("late_ticks", "resyncs"):
            self.counters.setdefault(key, 0)
        self.ticks = 0                      # ticks waited for since the pacer was made
        self._origin = clock.monotonic()    # when tick _base was due
        self._base = 0

    @property
    def due(self) -> float:
        """Monotonic time the current tick was (or is) due."""
        return self._origin + (self.ticks - self._base) * self.period

    @property
    def late_ticks(self) -> int:
        return self.counters["late_ticks"]

    @property
    def resyncs(self) -> int:
        return self.counters["resyncs"]

    async def wait(self) -> None:
        """Sleep until the next tick is due (at once if it already is)."""
        self.ticks += 1
        now = self.clock.monotonic()
        if now - self.due > self.resync_after:
            self._count_late(now)
            self.counters["resyncs"] += 1
            self._origin, self._base = now, self.ticks
        delay = self.due - now
        await self.clock.sleep(delay if delay > 0 else 0)
        self._count_late(self.clock.monotonic())

    def _count_late(self, now: float) -> None:
        if now - self.due > self.period:
            self.counters["late_ticks"] += 1


class InboundBuffer:
    """A short FIFO between a transport that delivers frames in bursts and a tick that takes one.

    Nothing is taken until `prefill` frames are waiting (again after every underrun), so a burst
    arriving up to prefill-1 periods late still plays in time. At most `capacity` frames are held.
      underruns: ticks that got no frame once audio had started (a gap in the stream, or the
                 refill after one); each is one frame of silence in its place;
      overruns:  frames dropped, oldest first, because `capacity` frames were already waiting.
    """

    def __init__(self, prefill: int = PREFILL, capacity: int = CAPACITY) -> None:
        if isinstance(prefill, bool) or not isinstance(prefill, int) or prefill < 1:
            raise ValueError(f"prefill must be an integer >= 1, got {prefill!r}")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < prefill:
            raise ValueError(f"capacity must be an integer >= prefill ({prefill}), got {capacity!r}")
        self.prefill, self.capacity = prefill, capacity
        self._frames: deque = deque()
        self._playing = False
        self.started = False
        self.underruns = 0
        self.overruns = 0

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frame) -> None:
        if len(self._frames) >= self.capacity:
            self._frames.popleft()
            self.overruns += 1
        self._frames.append(frame)

    def pop(self):
        """The frame for this tick, or None (play or record silence)."""
        frames = self._frames
        if not self._playing:
            if len(frames) < self.prefill:
                if self.started:
                    self.underruns += 1
                return None
            self._playing = self.started = True
        if not frames:
            self._playing = False
            self.underruns += 1
            return None
        return frames.popleft()
