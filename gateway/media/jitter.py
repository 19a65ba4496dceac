"""A small jitter buffer for frames arriving over the network (agent microphone → caller).

Frames carry a sequence number. The buffer waits for a short prefill before playing, drops
duplicates and frames older than the last one played, restarts on a large sequence jump (a
reconnect), and watches the margin it keeps after each pop over a window: when even the lowest
margin was a whole prefill, that much is pure delay (left by a burst or an underrun) and one frame
is dropped, so latency does not creep back up.
"""

from __future__ import annotations

from collections import deque
from typing import Any

PREFILL = 2          # frames held before playback starts (40 ms at 20 ms frames)
MAX_DEPTH = 8        # above this the oldest frames are dropped at once
SHED_WINDOW = 50     # ticks (1 s) over which the lowest depth is watched
RESTART_GAP = 100    # a sequence jump this large (either way) means the sender restarted


class JitterBuffer:
    def __init__(self) -> None:
        self._frames: deque[tuple[int, Any]] = deque()
        self._last_played: int | None = None
        self._playing = False
        self._window_ticks = 0
        self._window_min = MAX_DEPTH
        self.stats = {"received": 0, "played": 0, "late": 0, "dropped": 0, "underruns": 0}

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, seq: int, frame: Any) -> None:
        self.stats["received"] += 1
        last = self._last_played
        if last is not None and abs(seq - last) > RESTART_GAP:
            self._frames.clear()
            self._last_played, self._playing = None, False
        elif last is not None and seq <= last:
            self.stats["late"] += 1
            return
        if any(s == seq for s, _ in self._frames):
            self.stats["late"] += 1
            return
        if self._frames and seq < self._frames[-1][0]:
            self._frames = deque(sorted([*self._frames, (seq, frame)], key=lambda item: item[0]))
        else:
            self._frames.append((seq, frame))
        while len(self._frames) > MAX_DEPTH:
            self._frames.popleft()
            self.stats["dropped"] += 1

    def pop(self) -> Any | None:
        """The frame to play this tick, or None (play silence)."""
        if not self._playing:
            if len(self._frames) < PREFILL:
                return None
            self._playing = True
            self._reset_window()
        if not self._frames:
            self._playing = False
            self.stats["underruns"] += 1
            return None
        self._window_min = min(self._window_min, len(self._frames) - 1)   # margin left after this pop
        self._window_ticks += 1
        if self._window_ticks >= SHED_WINDOW:
            if self._window_min >= PREFILL:
                self._frames.popleft()
                self.stats["dropped"] += 1
            self._reset_window()
        seq, frame = self._frames.popleft()
        self._last_played = seq
        self.stats["played"] += 1
        return frame

    def _reset_window(self) -> None:
        self._window_ticks, self._window_min = 0, MAX_DEPTH
