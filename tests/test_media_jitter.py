"""The agent-side jitter buffer: prefill, order, duplicates, restarts, and no creeping delay."""

from __future__ import annotations

from gateway.media.jitter import MAX_DEPTH, PREFILL, SHED_WINDOW, JitterBuffer


def test_prefill_then_in_order_playout():
    jb = JitterBuffer()
    jb.push(0, "a")
    assert jb.pop() is None                       # still prefilling
    jb.push(2, "c")
    jb.push(1, "b")                               # reordered on arrival
    assert [jb.pop() for _ in range(3)] == ["a", "b", "c"]
    assert jb.pop() is None and jb.stats["underruns"] == 1
    jb.push(3, "d")
    assert jb.pop() is None                       # prefill again after an underrun
    jb.push(4, "e")
    assert jb.pop() == "d"


def test_late_duplicate_and_restarted_streams():
    jb = JitterBuffer()
    for seq in range(3):
        jb.push(seq, seq)
    assert jb.pop() == 0 and jb.pop() == 1
    jb.push(1, "again")                           # already played
    jb.push(2, "dup")                             # already buffered
    assert jb.stats["late"] == 2
    assert jb.pop() == 2
    jb.push(5000, "new")                          # the sender reconnected with new numbers
    jb.push(5001, "new2")
    assert jb.pop() == "new" and jb.pop() == "new2"


def test_burst_is_capped():
    jb = JitterBuffer()
    for seq in range(MAX_DEPTH + 5):
        jb.push(seq, seq)
    assert len(jb) == MAX_DEPTH and jb.stats["dropped"] == 5
    assert jb.pop() == 5


def run_steady(jb: JitterBuffer, start: int, ticks: int) -> int:
    """One frame out and one in per tick, as the 20 ms pump and a steady sender do."""
    for i in range(ticks):
        jb.pop()
        jb.push(start + i, start + i)
    return start + ticks


def test_surplus_delay_is_shed_but_a_steady_stream_is_left_alone():
    steady = JitterBuffer()
    for seq in range(PREFILL):
        steady.push(seq, seq)
    run_steady(steady, PREFILL, 10 * SHED_WINDOW)
    assert steady.stats["dropped"] == 0 and steady.stats["underruns"] == 0

    deep = JitterBuffer()
    for seq in range(PREFILL + 3):                # a burst left 3 frames more than needed
        deep.push(seq, seq)
    run_steady(deep, PREFILL + 3, 5 * SHED_WINDOW)
    assert deep.stats["dropped"] == 3             # one frame per window until the surplus is gone
    assert len(deep) == PREFILL
    assert deep.stats["underruns"] == 0
