"""A call the gateway places on a line for an agent: the agent's own outbound call, or the dial of a
queued callback the agent accepted. The line dials; the agent hears the progress; once the far end
answers, the agent's browser audio (MQTT, AudioRelay) is bridged with the line until either side hangs
up. An agent may transfer it: the customer then waits with hold music under a new contact id until
another agent's relay is bridged (the daemon routes the line's audio and call end here, as for a
ThirdPartyLeg, through TransferLines.legs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.line_dial import dial_until, ringing_call
from gateway.media.frames import SILENCE_FRAME

if TYPE_CHECKING:
    from gateway.api.audio_relay import AudioRelay
    from gateway.modem.line import Call, Line

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0         # seconds between two looks at a call besides the line's events
MAX_CALL_SECONDS = 4 * 3600.0
ANSWERED = "answered"
# What dial() reports besides ANSWERED: the line's end reason, named for people.
_OUTCOMES = {"busy": "busy", "no_answer": "no_answer", "timeout": "no_answer", "no_carrier": "no_carrier",
             "rejected": "rejected", "unreachable": "unreachable"}


class AgentLeg:
    def __init__(self, line: "Line", number: str, contact_id: str, *, agent_id: str, queue_id: str,
                 kind: str = "OUTBOUND", notify: Callable[[str, dict], None] | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.line, self.number = line, number
        self.contact_id, self.agent_id, self.queue_id, self.kind = contact_id, agent_id, queue_id, kind
        self.customer_number = number
        self._notify = notify or (lambda agent_id, message: None)
        self._clock = clock
        self.call: "Call | None" = None
        self.state = "idle"                    # dialing | bridged | holding | ended
        self.relay: "AudioRelay | None" = None
        self.relay_summary: dict = {}          # the last relay's counters, for the record
        self._hold: list[bytes] | None = None
        self._hold_pos = 0
        self._stop = asyncio.Event()
        self.stop_reason: str | None = None
        self._changed = asyncio.Event()
        self.details: dict = {}                # more fields for every progress message (a callback's attempt)
        self._told: str | None = None          # the last stage told, so a stage the line repeats is told once

    # --- the line's side: the daemon routes its audio and call end here --------------------------------------
    def next_frame(self) -> bytes:
        if self.relay is not None:
            return self.relay.next_frame() or SILENCE_FRAME
        if self._hold:
            frame = self._hold[self._hold_pos % len(self._hold)]
            self._hold_pos += 1
            return frame
        return SILENCE_FRAME

    def audio_in(self, frame: bytes) -> None:
        if self.relay is not None:
            self.relay.send(frame, read_at=time.perf_counter())

    def line_call_ended(self, call: "Call") -> None:
        self._changed.set()

    def progress(self, stage: str) -> None:
        """The line's dial progress ("dialing", "ringing"); answered and the end are reported by run()."""
        if self.state == "dialing" and stage in ("dialing", "ringing") and stage != self._told:
            self.tell(stage)

    # --- the agent's side -----------------------------------------------------------------------------------
    def tell(self, stage: str, **extra) -> None:
        """A progress message to the agent on the call (docs/mqtt-api.md, "Calls an agent places")."""
        if self.agent_id is None:
            return
        self._told = stage
        message = {"contact_id": self.contact_id, "kind": self.kind, "number": self.number, "line": self.line.id,
                   "stage": stage, "at": self._clock.time(), **self.details, **extra}
        try:
            self._notify(self.agent_id, message)
        except Exception:   # noqa: BLE001 - a publish failure must not end the call
            log.exception("contact %s: progress %s not sent", self.contact_id, stage)

    def bridge(self, relay: "AudioRelay", agent_id: str) -> None:
        """The agent's audio and the line's, both ways, from now on (a new agent after a transfer too)."""
        self._drop_relay()
        self.relay, self.agent_id = relay, agent_id
        self._hold = None
        self.state = "bridged"
        relay.start()

    def hold(self, frames: list[bytes] | None, queue_id: str) -> None:
        """No agent for now (transferred): the customer hears `frames` looped until the next bridge()."""
        self._drop_relay()
        self.agent_id, self.queue_id = None, queue_id
        self._hold, self._hold_pos = frames, 0
        self.state = "holding"

    def hangup(self, reason: str) -> None:
        """End the call (the agent hung up, the gateway stops): dialing stops, a bridged call is hung up."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    def _drop_relay(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay_summary = self.relay.summary()
            self.relay = None

    # --- the call ---------------------------------------------------------------------------------------------
    async def dial(self, ring_seconds: float) -> str:
        """Dial and follow the progress until answered (ANSWERED) or not: "busy", "no_answer",
        "no_carrier", "rejected", "unreachable", "cancelled" (hangup() before the answer) or
        "failed: <why>". The line's audio source is this leg from now until finish()."""
        self.state = "dialing"
        self.line.set_audio_source(self.next_frame)
        self.tell("dialing")
        dialled = await dial_until(self.line, self.number, ring_seconds, self._stop, self._clock,
                                   lambda: self.stop_reason or "hung_up")
        self.call = dialled.call
        if dialled.failure is not None:
            return "cancelled" if dialled.stopped else f"failed: {dialled.failure}"
        call = dialled.call
        if call.answered_at is not None and not call.ended:
            if self._stop.is_set():
                await self.line.hangup(self.stop_reason or "hung_up")
                return "cancelled"
            return ANSWERED
        if self._stop.is_set():
            return "cancelled"
        return _OUTCOMES.get(call.end_reason or "", f"failed: {call.end_reason or 'unknown'}")

    async def talk(self) -> str:
        """Until either side hangs up (or MAX_CALL_SECONDS): the call's end reason ("customer_hung_up",
        "agent_hung_up", ...)."""
        deadline = self._clock.monotonic() + MAX_CALL_SECONDS
        while True:
            call = self.call
            if call is None or call.ended:
                return (call.end_reason if call is not None else None) or "ended"
            if self._stop.is_set():
                await self.line.hangup(self.stop_reason or "hung_up")
                return call.end_reason or self.stop_reason or "hung_up"
            left = deadline - self._clock.monotonic()
            if left <= 0:
                await self.line.hangup("max_duration")
                continue
            self._changed.clear()
            waiters = (asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(self._changed.wait()),
                       asyncio.ensure_future(self._clock.sleep(min(left, CHECK_INTERVAL))))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def finish(self) -> None:
        """The call is over for the gateway: hung up if it is not, the agent's audio stopped, the line's
        audio source released."""
        self.state = "ended"
        call = self.call or ringing_call(self.line)
        if call is not None and not call.ended:
            await self.line.hangup(self.stop_reason or "hung_up")
        self._drop_relay()
        self.line.set_audio_source(None)

    def media(self) -> dict:
        return {**self.line.counters, **self.relay_summary}
