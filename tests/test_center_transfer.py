"""Agents' transfers and outbound calls in the Center (requeue, directed offers, start_outbound), the line an
outbound call or a callback goes out on, the queue's outbound_line in the config, and queued callbacks'
schedule, place in the queue and restart; a real Center on a hand-advanced clock throughout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.agent_calls import AgentCalls
from gateway.callbacks import FULL_QUEUE_RETRY, Callbacks
from gateway.center.agents import AgentConfig
from gateway.center.events import OfferWithdrawn
from gateway.center.passwords import hash_password
from gateway.center.queues import QueueConfig, WaitingContact
from gateway.center.records import ContactStore
from gateway.center.router import Center, CenterError
from gateway.clock import ManualClock
from gateway.config import ConfigError, load_config
from gateway.modem.line import Line, LineState
from gateway.modem.profile import load_profile
from gateway.third_party_leg import TransferLines

PASSWORDS = {"alice": "a", "bob": "b", "carol": "c"}
HASHES = {a: hash_password(pw, iterations=1000) for a, pw in PASSWORDS.items()}


class Rig:
    def __init__(self, max_sales: int = 3) -> None:
        self.clock = ManualClock()
        self.center = Center([QueueConfig("support", "Support", acw_timeout=10.0, offer_timeout=20.0),
                              QueueConfig("sales", "Sales", max_contacts=max_sales, acw_timeout=30.0)],
                             [AgentConfig(a, a.title(), HASHES[a]) for a in PASSWORDS], clock=self.clock)
        self.events: list[object] = []
        self.center.subscribe(self.events.append)
        self.n = 0

    def ready(self, *agents: str) -> None:
        for agent in agents:
            self.center.login(agent, PASSWORDS[agent])
            self.center.set_available(agent)
            self.clock.advance(1.0)

    def contact(self, contact_id: str, queue: str = "support", **kw) -> WaitingContact:
        return WaitingContact(contact_id, "+15550001", "gsm1", queue, self.clock.monotonic(), self.clock.time(), **kw)

    def on_call(self, agent: str, contact_id: str = "c-1") -> None:
        """`agent` (the only one Available) takes `contact_id` from support."""
        assert self.center.enqueue(self.contact(contact_id)) == "queued"
        assert self.center.offer_view(agent)["contact_id"] == contact_id
        self.center.accept(agent, contact_id)

    def state(self, agent: str) -> str:
        return self.center.agent_view(agent)["state"]

    def waiting(self, queue: str) -> list[str]:
        return [c["contact_id"] for c in self.center.queue_view(queue)["contacts"]]

    def offer(self, agent: str) -> dict | None:
        return self.center.offer_view(agent)


def refused(code: str, fn, *args, **kw) -> str:
    with pytest.raises(CenterError) as info:
        fn(*args, **kw)
    assert info.value.code == code
    return info.value.message


# ---- transfer to a queue ------------------------------------------------------------------------------


def test_a_transfer_to_a_queue_ends_the_agents_leg_and_waits_there_as_a_new_contact():
    rig = Rig()
    rig.ready("alice")
    rig.on_call("alice")
    rig.center.requeue("c-1", rig.contact("t-1", "sales", initiation_method="TRANSFER", previous_contact_id="c-1"))
    assert rig.state("alice") == "AfterCallWork"
    assert rig.center.contact_info("c-1") is None
    assert rig.waiting("sales") == ["t-1"]
    rig.clock.advance(9.9)
    rig.center.tick()
    assert rig.state("alice") == "AfterCallWork"        # the ACW of support, the queue of alice's leg: 10 s
    rig.ready("bob")
    offer = rig.offer("bob")
    assert offer["contact_id"] == "t-1" and offer["queue"] == "sales"
    assert offer["initiation_method"] == "TRANSFER" and offer["previous_contact_id"] == "c-1"
    rig.center.accept("bob", "t-1")
    assert rig.state("bob") == "OnCall" and rig.center.contact_agent("t-1") == "bob"
    assert rig.waiting("sales") == []


def test_refused_transfers_name_the_problem_and_change_nothing():
    rig = Rig(max_sales=1)
    rig.ready("alice")
    rig.on_call("alice")
    assert "no queue 'nowhere'" in refused("unknown_queue", rig.center.requeue, "c-1", rig.contact("t-1", "nowhere"))
    assert rig.center.enqueue(rig.contact("s-1", "sales")) == "queued"
    assert "sales is full" in refused("queue_full", rig.center.requeue, "c-1", rig.contact("t-1", "sales"))
    assert "is not connected" in refused("not_on_call", rig.center.requeue, "s-1", rig.contact("t-1", "support"))
    assert "no agent 'zed'" in refused("unknown_agent", rig.center.requeue, "c-1", rig.contact("t-1"), to_agent="zed")
    assert "bob is offline" in refused("agent_offline", rig.center.requeue, "c-1", rig.contact("t-1"), to_agent="bob")
    rig.center.login("bob", PASSWORDS["bob"])
    assert "bob is offline" in refused("agent_offline", rig.center.requeue, "c-1", rig.contact("t-1"), to_agent="bob")
    assert "already agent alice's call" in refused("bad_state", rig.center.requeue, "c-1", rig.contact("t-1"),
                                                   to_agent="alice")
    assert rig.state("alice") == "OnCall" and rig.center.contact_agent("c-1") == "alice"
    assert rig.waiting("support") == [] and rig.waiting("sales") == ["s-1"]


def test_a_busy_agent_cannot_be_the_target():
    rig = Rig()
    rig.ready("alice", "bob")
    rig.on_call("alice")                  # alice was idle longest: she took it
    assert rig.center.enqueue(rig.contact("c-2")) == "queued"
    assert rig.offer("bob")["contact_id"] == "c-2"
    assert "has contact c-2 on offer" in refused("agent_busy", rig.center.requeue, "c-1", rig.contact("t-1"),
                                                 to_agent="bob")
    rig.center.accept("bob", "c-2")
    assert "is OnCall" in refused("agent_busy", rig.center.requeue, "c-1", rig.contact("t-1"), to_agent="bob")


# ---- transfer to an agent -----------------------------------------------------------------------------


def test_a_transfer_to_an_agent_is_offered_to_that_agent_alone():
    rig = Rig()
    rig.ready("alice")
    rig.on_call("alice")
    rig.ready("bob", "carol")                            # bob idle longest: routing would pick him
    rig.center.requeue("c-1", rig.contact("t-1", initiation_method="TRANSFER", previous_contact_id="c-1"),
                       to_agent="carol")
    assert rig.offer("carol")["contact_id"] == "t-1" and rig.offer("bob") is None
    assert rig.state("alice") == "AfterCallWork"
    rig.center.accept("carol", "t-1")
    assert rig.state("carol") == "OnCall"


def test_a_rejected_directed_transfer_waits_in_the_queue_for_anyone():
    rig = Rig()
    rig.ready("alice")
    rig.on_call("alice")
    rig.ready("bob", "carol")
    rig.center.requeue("c-1", rig.contact("t-1"), to_agent="carol")
    assert rig.offer("bob") is None
    rig.center.reject("carol", "t-1")
    assert rig.offer("bob")["contact_id"] == "t-1"       # the next free agent who serves the queue
    assert rig.offer("carol") is None


def test_a_directed_transfer_not_taken_in_time_goes_to_the_queue_and_the_agent_is_missed():
    rig = Rig()
    rig.ready("alice")
    rig.on_call("alice")
    rig.ready("carol")
    rig.center.requeue("c-1", rig.contact("t-1"), to_agent="carol")
    rig.center.set_offline("alice")                      # out of after-call work, away
    rig.ready("bob")
    assert rig.offer("bob") is None
    rig.events.clear()
    rig.clock.advance(20.1)
    rig.center.tick()
    assert OfferWithdrawn("carol", "t-1", "expired") in rig.events
    assert rig.state("carol") == "Missed" and rig.waiting("support") == ["t-1"]
    assert rig.offer("bob")["contact_id"] == "t-1"       # at once, in the same tick


# ---- an agent's outbound call -------------------------------------------------------------------------


def test_an_outbound_call_is_oncall_from_the_first_ring_and_ends_in_the_outbound_queues_acw():
    rig = Rig()
    rig.center.login("alice", PASSWORDS["alice"])        # Offline: outbound calls are allowed anyway
    rig.center.start_outbound("alice", rig.contact("o-1", "sales", initiation_method="OUTBOUND"))
    view = rig.center.agent_view("alice")
    assert view["state"] == "OnCall" and view["contact_id"] == "o-1"
    assert rig.center.contact_info("o-1") == {"queue": "sales", "agent": "alice", "connected": True}
    assert rig.waiting("sales") == []
    assert rig.center.enqueue(rig.contact("c-9")) == "queued"
    assert rig.offer("alice") is None                    # no offer while the number rings
    assert rig.center.hangup("alice") == "o-1"
    rig.center.contact_ended("o-1", "customer_hung_up")
    assert rig.state("alice") == "AfterCallWork"
    rig.clock.advance(29.0)
    rig.center.tick()
    assert rig.state("alice") == "AfterCallWork"         # sales' ACW is 30 s
    rig.clock.advance(1.1)
    rig.center.tick()
    assert rig.state("alice") == "Available" and rig.offer("alice")["contact_id"] == "c-9"


def test_an_outbound_call_is_refused_on_a_call_with_an_offer_or_an_unknown_queue():
    rig = Rig()
    rig.ready("alice")
    rig.on_call("alice")
    assert "hang up before you place a call" in refused("bad_state", rig.center.start_outbound, "alice",
                                                        rig.contact("o-1"))
    rig.ready("bob")
    assert rig.center.enqueue(rig.contact("c-2")) == "queued"
    assert "accept or reject it" in refused("bad_state", rig.center.start_outbound, "bob", rig.contact("o-2"))
    rig.center.login("carol", PASSWORDS["carol"])
    refused("unknown_queue", rig.center.start_outbound, "carol", rig.contact("o-3", "nowhere"))
    rig.center.logout("carol")
    refused("not_logged_in", rig.center.start_outbound, "carol", rig.contact("o-4"))
    assert rig.state("carol") == "Offline" and rig.center.contact_info("o-3") is None


def test_after_call_work_ends_when_the_agent_dials_again():
    rig = Rig()
    rig.ready("alice")
    rig.on_call("alice")
    rig.center.contact_ended("c-1", "customer_hung_up")
    assert rig.state("alice") == "AfterCallWork"
    rig.center.start_outbound("alice", rig.contact("o-1"))
    rig.clock.advance(15.0)
    rig.center.tick()                                    # the old ACW deadline has passed: still on the call
    assert rig.center.agent_view("alice")["contact_id"] == "o-1" and rig.state("alice") == "OnCall"


# ---- which line dials -----------------------------------------------------------------------------------


class Lines:
    """Real Line objects of the SIM7600 profile, never started: their state is set as a running line's would be."""

    def __init__(self, *ids: str) -> None:
        profile = load_profile("simcom_sim7600")
        self.lines = {i: Line(i, profile, f"/dev/null-{i}", None, None) for i in ids}
        for line in self.lines.values():
            line.state = LineState.IDLE
        self.transfers = TransferLines(self.lines, None)


def calls_for(rig: Rig, lines: Lines, queue_lines=None, line_queues=None, store=None) -> AgentCalls:
    return AgentCalls(rig.center, lines.lines, lines.transfers, store, numbers={"gsm1": "+4930111", "gsm2": "+4930222"},
                      queue_lines=queue_lines or {}, line_queues=line_queues or {}, relay=None,
                      notify=lambda a, m: None, spawn=None, session_of=lambda c: None, hold_music=lambda q: None,
                      clock=rig.clock)


def test_the_line_comes_from_the_command_then_the_queue_then_any_idle_line():
    rig, lines = Rig(), Lines("gsm1", "gsm2")
    calls = calls_for(rig, lines, queue_lines={"sales": "gsm2"}, line_queues={"gsm1": "support"})
    assert calls.line_for(queue_id="sales").id == "gsm2"           # the queue's outbound_line
    assert calls.line_for(queue_id="support").id == "gsm1"         # the line whose outbound_queue it is
    assert calls.line_for(line_ref="gsm1", queue_id="sales").id == "gsm1"
    assert calls.caller_id("gsm2") == "+4930222"
    lines.lines["gsm2"].state = LineState.IN_CALL
    assert "line gsm2 (queue sales's outbound line) cannot dial now: in_call" in refused(
        "line_busy", calls.line_for, queue_id="sales")
    assert calls.line_for(queue_id="sales", strict=False).id == "gsm1"   # a callback takes any idle line
    lines.transfers.legs["gsm1"] = object()                         # a transfer leg holds gsm1
    refused("no_free_line", calls.line_for, queue_id="sales", strict=False)
    assert "no running line 'gsm9'" in refused("unknown_line", calls.line_for, line_ref="gsm9")
    lines.lines["gsm2"].state = LineState.IDLE
    lines.lines["gsm2"].health.registration = "searching"
    assert "not registered" in refused("line_busy", calls.line_for, line_ref="gsm2")


def test_a_dial_command_is_refused_before_anything_happens(tmp_path):
    rig, lines = Rig(), Lines("gsm1")
    store = ContactStore(tmp_path / "c.db")
    calls = calls_for(rig, lines, store=store)
    rig.center.login("alice", PASSWORDS["alice"])
    assert "at least 5 digits" in refused("bad_number", calls.dial, "alice", {"number": "112"})
    assert "not a number" in refused("bad_number", calls.dial, "alice", {"number": "call me"})
    assert "queues: support, sales" in refused("unknown_queue", calls.dial, "alice", {"number": "+4930123", "queue": "x"})
    lines.lines["gsm1"].state = LineState.RINGING
    refused("no_free_line", calls.dial, "alice", {"number": "+4930123"})
    assert rig.state("alice") == "Offline" and store.count() == 0
    store.close()


# ---- the config ---------------------------------------------------------------------------------------


def test_a_queue_names_its_outbound_line_and_a_wrong_one_is_placed(tmp_path):
    text = ('[[queues]]\nid = "support"\noutbound_line = "gsm2"\n[[queues]]\nid = "sales"\n'
            '[[lines]]\nid = "gsm1"\nprofile = "simcom_sim7600"\nat_port = "/dev/x"\nflow = "f.json"\n')
    path = tmp_path / "callgate.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: queues[0].outbound_line: no line 'gsm2' (lines: gsm1)"
    path.write_text(text.replace('"gsm2"', '"gsm1"'))
    cfg = load_config(path)
    assert [q.outbound_line for q in cfg.queues] == ["gsm1", None]
    path.write_text(text.replace('outbound_line = "gsm2"', "outbound_line = 2"))
    with pytest.raises(ConfigError, match=r"queues\[0\]\.outbound_line: expected str"):
        load_config(path)


# ---- queued callbacks: schedule, place, restart -----------------------------------------------------------


def test_a_callback_waits_its_delay_then_keeps_the_callers_place_in_the_queue(tmp_path):
    rig = Rig()
    store = ContactStore(tmp_path / "c.db")
    callbacks = Callbacks(rig.center, store, notify=lambda a, m: None, spawn=None, clock=rig.clock)
    assert rig.center.enqueue(rig.contact("c-early")) == "queued"
    rig.clock.advance(10.0)
    waited_since = rig.clock.time()                      # the caller joined support now ...
    rig.clock.advance(20.0)
    assert rig.center.enqueue(rig.contact("c-later")) == "queued"
    rig.clock.advance(10.0)                              # ... and asks for a callback 30 s later
    cb = callbacks.create(previous_contact_id="c-in", number="+4930555", queue_id="support", initial_delay=5,
                          retries=1, retry_delay=60, waited_since=waited_since)
    record = store.get(cb)
    assert record["initiation_method"] == "CALLBACK" and record["previous_contact_id"] == "c-in"
    assert record["caller"] == "+4930555" and record["queue_id"] == "support" and record["ended_at"] is None
    assert record["attributes"]["callback"]["state"] == "scheduled"
    rig.clock.advance(4.9)
    callbacks.tick()
    assert rig.waiting("support") == ["c-early", "c-later"]
    rig.clock.advance(0.2)
    callbacks.tick()
    assert rig.waiting("support") == ["c-early", "c-later"]   # due, but the caller has not hung up yet
    callbacks.release(cb)
    callbacks.tick()
    assert rig.center.contact_position(cb)["PositionInQueue"] == 2   # the caller's wait counts, not the delay
    assert rig.center.contact_position("c-later")["PositionInQueue"] == 3
    assert store.get(cb)["enqueued_at"] == rig.clock.time()
    rig.ready("alice")
    offer = rig.offer("alice")
    assert offer["contact_id"] == "c-early"
    rig.center.accept("alice", "c-early")
    rig.ready("bob")
    offer = rig.offer("bob")
    assert offer["contact_id"] == cb and offer["initiation_method"] == "CALLBACK"
    assert offer["callback_number"] == "+4930555" and offer["previous_contact_id"] == "c-in"
    store.close()


def test_a_full_queue_delays_a_callback_and_a_restart_takes_it_up(tmp_path):
    rig = Rig(max_sales=1)
    store = ContactStore(tmp_path / "c.db")
    callbacks = Callbacks(rig.center, store, notify=lambda a, m: None, spawn=None, clock=rig.clock)
    assert rig.center.enqueue(rig.contact("s-1", "sales")) == "queued"
    cb = callbacks.create(previous_contact_id="c-in", number="+4930555", queue_id="sales", initial_delay=1,
                          retries=0, retry_delay=1)
    callbacks.release(cb)
    rig.clock.advance(1.0)
    callbacks.tick()
    assert rig.waiting("sales") == ["s-1"]
    assert store.get(cb)["attributes"]["callback"]["due"] == pytest.approx(rig.clock.time() + FULL_QUEUE_RETRY)
    gone = store.get(cb)

    # the daemon restarts: a new Center, the callback comes back from its record
    rig2 = Rig()
    again = Callbacks(rig2.center, store, notify=lambda a, m: None, spawn=None, clock=rig.clock)
    assert again.restore() == {cb}
    assert again.pending[cb].number == "+4930555" and again.pending[cb].queue_id == "sales"
    again.tick()
    assert rig2.waiting("sales") == []                   # not due yet
    rig.clock.advance(FULL_QUEUE_RETRY)
    again.tick()
    assert rig2.waiting("sales") == [cb]
    assert gone["ended_at"] is None and store.get(cb)["ended_at"] is None
    store.close()


def test_a_callback_to_a_queue_that_is_gone_ends_its_record(tmp_path):
    rig = Rig()
    store = ContactStore(tmp_path / "c.db")
    callbacks = Callbacks(rig.center, store, notify=lambda a, m: None, spawn=None, clock=rig.clock)
    cb = callbacks.create(previous_contact_id="c-in", number="+4930555", queue_id="billing", initial_delay=1,
                          retries=0, retry_delay=1)
    callbacks.release(cb)
    rig.clock.advance(1.0)
    callbacks.tick()
    record = store.get(cb)
    assert record["disconnect_reason"] == "no_queue" and record["ended_at"] is not None
    assert cb not in callbacks.pending
    store.close()


def test_the_callback_loop_runs_on_the_injected_clock(tmp_path):
    rig = Rig()
    store = ContactStore(tmp_path / "c.db")
    callbacks = Callbacks(rig.center, store, notify=lambda a, m: None, spawn=None, clock=rig.clock)
    cb = callbacks.create(previous_contact_id="c-in", number="+4930555", queue_id="support", initial_delay=3,
                          retries=0, retry_delay=1)
    callbacks.release(cb)

    async def main():
        task = asyncio.create_task(callbacks.run())
        for _ in range(4):
            await asyncio.sleep(0)
            rig.clock.advance(1.0)
            await asyncio.sleep(0)
        task.cancel()
    asyncio.run(main())
    assert rig.waiting("support") == [cb]
    store.close()
