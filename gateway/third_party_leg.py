"""The outbound leg of a transfer to a phone number (the flow's TransferParticipantToThirdParty): a free
line dials the third party, sends the flow's DTMF digits once it answers, then carries audio between
it and the caller until one side hangs up.

The two modems are paced by their own FramePacers, so each direction goes through a small
InboundBuffer: the caller's frames wait there for the third party's line to take one per tick, and
the other way round. While the number rings the caller hears a ringback tone. The leg writes its own
contact record (initiation_method TRANSFER, the attribute `transferred_from` naming the caller's
contact) with the buffering each direction added, the bridge's share of the audio latency.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING

import numpy as np

from gateway.at.errors import AtError
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.line_dial import dial_until, ringing_call
from gateway.flows.blocks.third_party import (BUSY, CONNECTED_CALLER_LEFT, CONNECTED_FAR_END_LEFT, FAILED,
                                              MAX_BRIDGE_SECONDS, NO_ANSWER, dtmf_steps)
from gateway.media.frames import SAMPLE_RATE, SILENCE_FRAME, pcm_to_frames
from gateway.media.pacer import InboundBuffer
from gateway.media.tones import sine
from gateway.modem.line import LineState

if TYPE_CHECKING:
    from gateway.center.records import ContactStore
    from gateway.modem.line import Call, Line

log = logging.getLogger(__name__)

CALLER_GONE = "caller_gone"       # run()'s outcome when the caller hung up before the third party answered
RINGBACK_HZ = 425.0               # the European ringing tone: 1 s on, 4 s off
RINGBACK_CADENCE = (1.0, 4.0)
CHECK_INTERVAL = 1.0              # seconds between two looks at a bridged call besides the line's events
UNREGISTERED = frozenset({"searching", "denied", "unregistered"})


@functools.cache
def ringback() -> list[bytes]:
    on, off = RINGBACK_CADENCE
    tone = sine(RINGBACK_HZ, on, amplitude=0.1)
    return pcm_to_frames(np.concatenate([tone, np.zeros(int(off * SAMPLE_RATE), dtype=np.int16)]))


class TransferLines:
    """The lines a call may be transferred out on, and the legs in progress on them (the daemon hands
    their audio and call ends to the leg on that line)."""

    def __init__(self, lines: dict[str, "Line"], store: "ContactStore", *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.lines, self.store, self.clock = lines, store, clock
        self.legs: dict[str, ThirdPartyLeg] = {}

    def free_line(self, caller_line: "Line") -> "Line | None":
        """An idle, registered line other than the caller's, with the same audio timing, not already used."""
        audio = caller_line.profile.audio
        for line in self.lines.values():
            if (line is caller_line or line.id in self.legs or line.state != LineState.IDLE or line.error
                    or line.health.registration in UNREGISTERED):
                continue
            if (line.profile.audio.frame_ms, line.profile.audio.sample_rate) != (audio.frame_ms, audio.sample_rate):
                continue
            return line
        return None

    def start(self, caller_line: "Line", contact_id: str, number: str) -> "ThirdPartyLeg | None":
        """A leg to `number` on a free line, reserved until done(); None when no line is free."""
        line = self.free_line(caller_line)
        if line is None:
            return None
        leg = ThirdPartyLeg(line, number, transferred_from=contact_id, store=self.store, clock=self.clock)
        self.legs[line.id] = leg
        return leg

    def done(self, leg: "ThirdPartyLeg") -> None:
        if self.legs.get(leg.line.id) is leg:
            del self.legs[leg.line.id]

    def leg(self, line_id: str) -> "ThirdPartyLeg | None":
        return self.legs.get(line_id)


class ThirdPartyLeg:
    def __init__(self, line: "Line", number: str, *, transferred_from: str, store: "ContactStore",
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.line, self.number = line, number
        self.transferred_from = transferred_from
        self._store, self._clock = store, clock
        self.state = "idle"          # dialing | dtmf | bridged | ended
        self.call: "Call | None" = None
        self.to_caller = InboundBuffer()      # the third party's frames, taken by the caller's ticks
        self.to_far_end = InboundBuffer()     # the caller's frames, taken by the third party's line
        self._waiting = {"to_caller": [0, 0], "to_far_end": [0, 0]}   # frames found waiting, ticks
        self._ring = 0
        self._changed = asyncio.Event()
        self.dtmf_sent = ""
        self.dtmf_error: str | None = None

    # --- audio: the caller's side (the ContactSession's ticks) and the third party's line ------------------
    def from_caller(self, frame: bytes) -> None:
        if self.state == "bridged":
            self.to_far_end.push(frame)

    def for_caller(self) -> bytes:
        """What the caller hears this tick: ringback while dialing, then the third party."""
        if self.state == "dialing":
            frames = ringback()
            self._ring += 1
            return frames[(self._ring - 1) % len(frames)]
        if self.state != "bridged":
            return SILENCE_FRAME
        return self._take(self.to_caller, "to_caller")

    def next_frame(self) -> bytes:
        """The third party's line's audio source."""
        if self.state != "bridged":
            return SILENCE_FRAME
        return self._take(self.to_far_end, "to_far_end")

    def audio_in(self, frame: bytes) -> None:
        """A frame from the third party (the daemon routes the line's audio here)."""
        if self.state == "bridged":
            self.to_caller.push(frame)

    def line_call_ended(self, call: "Call") -> None:
        self._changed.set()

    def _take(self, buffer: InboundBuffer, direction: str) -> bytes:
        waiting = self._waiting[direction]
        waiting[0] += len(buffer)
        waiting[1] += 1
        return buffer.pop() or SILENCE_FRAME

    # --- the leg ------------------------------------------------------------------------------------------
    async def run(self, *, timeout: float, dtmf: str, caller_gone: asyncio.Event) -> str:
        """Dial, send `dtmf`, bridge. Returns CONNECTED_FAR_END_LEFT | CONNECTED_CALLER_LEFT | BUSY |
        NO_ANSWER | "failed: <why>" | CALLER_GONE (the caller hung up before the third party answered).
        The third party's call is always hung up on return (or cancellation) and the record written."""
        outcome = f"{FAILED}: cancelled"
        self.line.set_audio_source(self.next_frame)
        try:
            outcome = await self._dial(timeout, caller_gone)
            if outcome != "answered":
                return outcome
            log.info("line %s: %s answered the transfer from contact %s", self.line.id, self.number,
                     self.transferred_from)
            await self._send_dtmf(dtmf, caller_gone)
            outcome = await self._bridge(caller_gone)
            return outcome
        finally:
            self.state = "ended"
            call = self.call or ringing_call(self.line)
            if call is not None and not call.ended:
                await self.line.hangup("caller_hung_up" if caller_gone.is_set() else "transfer_ended")
            self.line.set_audio_source(None)
            self.call = call
            self._record(outcome)

    async def _dial(self, timeout: float, caller_gone: asyncio.Event) -> str:
        self.state = "dialing"
        dialled = await dial_until(self.line, self.number, timeout, caller_gone, self._clock, lambda: "caller_hung_up")
        self.call = dialled.call
        if caller_gone.is_set():
            return CALLER_GONE
        if dialled.failure is not None:
            return f"{FAILED}: {dialled.failure}"
        call = dialled.call
        if call.answered_at is not None and not call.ended:
            return "answered"
        reason = call.end_reason or "failed"
        if reason == "busy":
            return BUSY
        if reason in ("no_answer", "timeout"):
            return NO_ANSWER
        return f"{FAILED}: {reason}"

    async def _send_dtmf(self, dtmf: str, caller_gone: asyncio.Event) -> None:
        """The flow's digits to the third party before the caller is connected; a comma waits 750 ms."""
        self.state = "dtmf"
        for step in dtmf_steps(dtmf):
            if caller_gone.is_set() or self.call is None or self.call.ended:
                return
            if isinstance(step, float):
                await self._clock.sleep(step)
                continue
            try:
                await self.line.send_dtmf(step)
            except (AtError, RuntimeError, ValueError) as exc:
                self.dtmf_error = str(exc)
                log.warning("line %s: DTMF %r to %s not sent: %s", self.line.id, step, self.number, exc)
                return
            self.dtmf_sent += step

    async def _bridge(self, caller_gone: asyncio.Event) -> str:
        self.state = "bridged"
        deadline = self._clock.monotonic() + MAX_BRIDGE_SECONDS
        while True:
            if caller_gone.is_set():
                await self.line.hangup("caller_hung_up")
                return CONNECTED_CALLER_LEFT
            if self.call is None or self.call.ended:
                return CONNECTED_FAR_END_LEFT
            left = deadline - self._clock.monotonic()
            if left <= 0:
                await self.line.hangup("max_duration")
                return CONNECTED_FAR_END_LEFT
            self._changed.clear()
            waiters = (asyncio.ensure_future(caller_gone.wait()), asyncio.ensure_future(self._changed.wait()),
                       asyncio.ensure_future(self._clock.sleep(min(left, CHECK_INTERVAL))))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    # --- the record ---------------------------------------------------------------------------------------
    def summary(self) -> dict:
        """Frames each direction found waiting (mean, as ms of audio: the bridge's added latency) and gaps."""
        period_ms = self.line.profile.audio.frame_ms
        out: dict = {}
        for direction, buffer in (("to_caller", self.to_caller), ("to_far_end", self.to_far_end)):
            total, ticks = self._waiting[direction]
            out[f"{direction}_buffered_ms"] = round(total / ticks * period_ms, 1) if ticks else None
            out[f"{direction}_underruns"] = buffer.underruns
            out[f"{direction}_overruns"] = buffer.overruns
        return out

    def _record(self, outcome: str) -> None:
        call = self.call
        if call is None:
            return
        reason = call.end_reason or "unknown"
        if reason == "customer_hung_up":     # the line's word for "the far end hung up"
            reason = "third_party_hung_up"
        attributes = {"transferred_from": self.transferred_from, "outcome": outcome, "dtmf_sent": self.dtmf_sent}
        if self.dtmf_error:
            attributes["dtmf_error"] = self.dtmf_error
        self._store.upsert(call.call_id, line_id=self.line.id, caller=self.number, initiation_method="TRANSFER",
                           initiated_at=call.ringing_at, ended_at=call.ended_at or self._clock.time(),
                           disconnect_reason=reason, attributes=attributes,
                           flow_path=[{"stage": stage, "at": at} for stage, at in call.progress],
                           media={**self.line.counters, **self.summary()})
        log.info("line %s: transfer leg %s to %s ended: %s (%s)", self.line.id, call.call_id, self.number, outcome,
                 reason)
