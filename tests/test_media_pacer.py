"""The media clock: an hour of 20 ms ticks on a manual clock with random late wake-ups ends exactly on
schedule; late ticks and resyncs are counted; the inbound buffer absorbs bursty arrival and counts
underruns on a stall and overruns on a flood."""

from __future__ import annotations

import asyncio
import random

import pytest

from gateway.clock import ManualClock
from gateway.media.pacer import CAPACITY, PREFILL, FramePacer, InboundBuffer

PERIOD = 0.02
HOUR_TICKS = 180_000


async def _tick(clock: ManualClock, pacer: FramePacer, lateness: float) -> float:
    """Run one wait(): let the pacer go to sleep, wake it `lateness` after its tick was due."""
    waiter = asyncio.ensure_future(pacer.wait())
    await asyncio.sleep(0)
    target = max(pacer.due + lateness, clock.monotonic())
    clock.advance(target - clock.monotonic())
    await waiter
    return clock.monotonic()


def test_an_hour_of_ticks_with_jittery_wakeups_does_not_drift():
    async def main():
        clock = ManualClock()
        rng = random.Random(5)
        origin = clock.monotonic()
        pacer = FramePacer(clock, PERIOD)
        woke = origin
        for n in range(1, HOUR_TICKS + 1):
            woke = await _tick(clock, pacer, rng.uniform(0, 0.015))
            if n % 45_000 == 0:      # every quarter hour the schedule is still exactly on the grid
                assert pacer.due == origin + n * PERIOD
        return clock, pacer, origin, woke

    clock, pacer, origin, woke = asyncio.run(main())
    assert pacer.ticks == HOUR_TICKS
    assert pacer.due == origin + 3600.0 == origin + HOUR_TICKS * PERIOD
    assert 3600.0 <= woke - origin <= 3600.0 + 0.015 + 1e-9
    assert pacer.late_ticks == 0 and pacer.resyncs == 0
    # every sleep asked for less than a period: the pacer made up each late wake-up on the next tick
    assert max(clock.slept) <= PERIOD + 1e-9


def test_late_wakeups_are_counted_and_a_long_stall_restarts_the_schedule():
    async def main():
        clock = ManualClock()
        origin = clock.monotonic()
        pacer = FramePacer(clock, PERIOD)
        for _ in range(10):
            await _tick(clock, pacer, 0.005)
        assert (pacer.late_ticks, pacer.resyncs) == (0, 0)

        await _tick(clock, pacer, 0.015)            # under one period late: not late
        assert pacer.late_ticks == 0
        await _tick(clock, pacer, 0.050)            # 50 ms late: late, but the schedule keeps
        assert (pacer.late_ticks, pacer.resyncs) == (1, 0)
        await _tick(clock, pacer, 0)                # due 30 ms ago: 30 ms late, runs at once
        assert (pacer.late_ticks, pacer.resyncs) == (2, 0)
        await _tick(clock, pacer, 0)                # due 10 ms ago: caught up
        assert (pacer.late_ticks, pacer.resyncs) == (2, 0)
        assert pacer.due == origin + 14 * PERIOD

        stalled = await _tick(clock, pacer, 0.5)    # the loop was blocked for half a second
        assert (pacer.late_ticks, pacer.resyncs) == (3, 0)
        sent_at = await _tick(clock, pacer, 0)      # 480 ms behind: restart instead of 24 frames at once
        assert (pacer.late_ticks, pacer.resyncs) == (4, 1)
        assert sent_at == stalled and pacer.due == stalled
        restart = pacer.due
        for k in range(1, 6):
            await _tick(clock, pacer, 0.001)
            assert pacer.due == restart + k * PERIOD
        assert (pacer.late_ticks, pacer.resyncs) == (4, 1)
        return pacer

    pacer = asyncio.run(main())
    assert pacer.ticks == 21


def test_pacer_counts_into_a_shared_counters_dict_and_refuses_bad_periods():
    counters = {"frames_out": 7, "late_ticks": 2}
    pacer = FramePacer(ManualClock(), PERIOD, counters=counters)
    assert counters == {"frames_out": 7, "late_ticks": 2, "resyncs": 0}
    assert pacer.late_ticks == 2
    with pytest.raises(ValueError, match="period"):
        FramePacer(ManualClock(), 0)
    with pytest.raises(ValueError, match="resync_after"):
        FramePacer(ManualClock(), 0.3)


def _simulate(arrivals: dict[int, int], ticks: int, buf: InboundBuffer) -> list:
    """Millisecond-step run: arrivals[t] frames land at t ms (numbered in order), a tick pops every
    20 ms at 20k+7 ms. Returns what each tick played."""
    sent, played = 0, []
    for t in range(ticks * 20):
        for _ in range(arrivals.get(t, 0)):
            buf.push(sent)
            sent += 1
        if t % 20 == 7:
            played.append(buf.pop())
    return played


def test_buffer_absorbs_bursts_of_three_every_60_ms():
    buf = InboundBuffer()
    arrivals = {60 * b + 40: 3 for b in range(500)}       # frames 3b..3b+2 land together, 40 ms late at most
    played = _simulate(arrivals, 1500, buf)
    first = next(i for i, f in enumerate(played) if f is not None)
    assert played[first:] == list(range(len(played) - first))
    assert first <= 3        # the prefill costs at most a couple of ticks
    assert buf.underruns == 0 and buf.overruns == 0
    assert len(buf) <= CAPACITY


def test_buffer_absorbs_random_arrival_jitter_under_one_period():
    rng = random.Random(11)
    arrivals: dict[int, int] = {}
    last = 0
    for k in range(3000):           # frame k leaves at 20k ms and is 0..19 ms late, in order
        last = max(last, 20 * k + rng.randrange(20))
        arrivals[last] = arrivals.get(last, 0) + 1
    buf = InboundBuffer()
    played = _simulate(arrivals, 2990, buf)
    assert buf.underruns == 0 and buf.overruns == 0
    assert [f for f in played if f is not None] == list(range(len([f for f in played if f is not None])))
    assert sum(f is None for f in played) <= PREFILL + 1


def test_buffer_counts_underruns_on_a_stall_and_overruns_on_a_flood():
    buf = InboundBuffer()
    assert buf.pop() is None and buf.underruns == 0           # before audio starts nothing is missed
    arrivals = {20 * k + 3: 1 for k in range(50)}              # 1 s of steady frames
    arrivals.update({20 * k + 3: 1 for k in range(60, 100)})   # then a 200 ms stall, then steady again
    played = _simulate(arrivals, 100, buf)
    gap = [i for i, f in enumerate(played) if f is None]
    assert buf.overruns == 0
    # 200 ms without frames: the one-frame cushion covers the first tick, 9 go silent, and the refill
    # of the prefill after the stall costs one more
    assert buf.underruns == 10
    assert len([i for i in gap if i > 5]) == buf.underruns
    heard = [f for f in played if f is not None]
    assert heard == list(range(len(heard))) and len(heard) >= 88      # nothing lost, nothing reordered

    flood = InboundBuffer()
    for frame in range(20):                                    # a burst far beyond the cap
        flood.push(frame)
    assert flood.overruns == 20 - CAPACITY and len(flood) == CAPACITY
    assert [flood.pop() for _ in range(CAPACITY)] == list(range(20 - CAPACITY, 20))   # newest kept
    assert flood.pop() is None and flood.underruns == 1


def test_buffer_refuses_a_prefill_larger_than_its_capacity():
    with pytest.raises(ValueError, match="capacity"):
        InboundBuffer(prefill=4, capacity=3)
    with pytest.raises(ValueError, match="prefill"):
        InboundBuffer(prefill=0)
