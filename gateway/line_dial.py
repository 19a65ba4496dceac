"""Placing a call on a line for a leg (an agent's outbound call, a callback, a transfer to a number)
that can be called off while it rings: the dial is bounded by its ringing time plus a grace, and a
stop (the agent or the caller gone) hangs up the ringing call and waits for the dial to unwind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.at.errors import AtError
from gateway.clock import Clock

if TYPE_CHECKING:
    from gateway.modem.line import Call, Line

log = logging.getLogger(__name__)

DIAL_GRACE = 15.0   # seconds a dial may run past its ringing time (ATD, releasing the call)


@dataclass
class Dialled:
    call: "Call | None"      # the call the dial returned (answered or not), or the one hung up while ringing
    stopped: bool            # the stop event fired before the dial returned
    failure: str | None      # why no call came back: the dial raised, or did not end


def ringing_call(line: "Line") -> "Call | None":
    """The line's outbound call the dial has not returned yet (the line is reserved for one leg)."""
    call = line.call
    return call if call is not None and call.direction == "outbound" and not call.ended else None


async def dial_until(line: "Line", number: str, ring_seconds: float, stop: asyncio.Event, clock: Clock,
                     stop_reason: Callable[[], str]) -> Dialled:
    """Dial `number` until the far end answers, refuses, or `stop` is set (the ringing call is then
    hung up with stop_reason(); "timeout" when the dial overran)."""
    dial = asyncio.ensure_future(line.dial(number, timeout=ring_seconds))
    stopper = asyncio.ensure_future(stop.wait())
    sleeper = asyncio.ensure_future(clock.sleep(ring_seconds + DIAL_GRACE))
    ringing = None
    try:
        await asyncio.wait((dial, stopper, sleeper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        sleeper.cancel()
        if not dial.done():
            if (ringing := ringing_call(line)) is not None:
                await line.hangup(stop_reason() if stop.is_set() else "timeout")
            await asyncio.wait((dial,), timeout=DIAL_GRACE)
            if not dial.done():
                dial.cancel()
    if not dial.done() or dial.cancelled():
        return Dialled(ringing, stop.is_set(), "the dial did not end")
    try:
        call = dial.result()
    except (RuntimeError, ValueError, AtError) as exc:
        log.warning("line %s: call to %s not placed: %s", line.id, number, exc)
        return Dialled(ringing, stop.is_set(), str(exc))
    return Dialled(call, stop.is_set(), None)
