"""Center routing, agent commands, events and views, driven by a hand-advanced clock."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from gateway.center.agents import AgentConfig, AgentState
from gateway.center.events import (
    AfterContactWorkEnded,
    AgentChanged,
    ContactConnected,
    ContactOffered,
    OfferWithdrawn,
    QueueChanged,
)
from gateway.center.passwords import hash_password, verify_password
from gateway.center.queues import QueueConfig, WaitingContact
from gateway.center.router import Center, CenterError
from gateway.clock import ManualClock

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "mqtt-api.md"
FAST = 1000  # PBKDF2 iterations for test agents: logins stay cheap
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
HASHES = {a: hash_password(pw, iterations=FAST) for a, pw in PASSWORDS.items()}


class Rig:
    def __init__(self, max_contacts: int = 3) -> None:
        self.clock = ManualClock()
        queues = [
            QueueConfig("support", "Support", max_contacts=max_contacts, acw_timeout=10.0, offer_timeout=20.0),
            QueueConfig("sales", "Sales"),
        ]
        agents = [AgentConfig(a, a.title(), HASHES[a]) for a in PASSWORDS]
        self.center = Center(queues, agents, clock=self.clock)
        self.events: list[object] = []
        self.center.subscribe(self.events.append)
        self.n = 0

    def ready(self, *agent_ids: str, gap: float = 1.0) -> None:
        """Log in and make Available in this order, ``gap`` seconds apart (first = idle longest)."""
        for agent_id in agent_ids:
            self.center.login(agent_id, PASSWORDS[agent_id])
            self.center.set_available(agent_id)
            self.clock.advance(gap)

    def call(self, queue: str = "support", caller: str | None = None) -> str:
        self.n += 1
        cid = f"c-{self.n}"
        contact = WaitingContact(
            cid, caller or f"+1555000{self.n:04d}", "gsm1", queue, self.clock.monotonic(), self.clock.time()
        )
        assert self.center.enqueue(contact) == "queued"
        self.clock.advance(1.0)
        return cid

    def offer_of(self, agent_id: str) -> str | None:
        offer = self.center.offer_view(agent_id)
        return None if offer is None else offer["contact_id"]

    def state(self, agent_id: str) -> str:
        return self.center.agent_view(agent_id)["state"]

    def queue_ids(self, queue: str = "support") -> list[str]:
        return [c["contact_id"] for c in self.center.queue_view(queue)["contacts"]]

    def take_events(self) -> list[object]:
        out, self.events[:] = list(self.events), []
        return out


def raises(code: str, fn, *args):
    with pytest.raises(CenterError) as info:
        fn(*args)
    assert info.value.code == code
    assert info.value.message
    return info.value


# ---- routing ------------------------------------------------------------------------------------


def test_longest_idle_agent_gets_the_offer_among_three():
    rig = Rig()
    rig.ready("bob", "carol", "alice")  # bob idle longest, alice shortest
    rig.take_events()
    first = rig.call()
    assert rig.offer_of("bob") == first
    assert rig.offer_of("carol") is None and rig.offer_of("alice") is None
    assert ContactOffered("bob", first) in rig.take_events()
    second = rig.call()
    assert rig.offer_of("carol") == second
    assert rig.offer_of("alice") is None


def test_oldest_contact_goes_first_across_queues():
    rig = Rig()
    c1 = rig.call("support")
    s1 = rig.call("sales")
    c2 = rig.call("support")
    assert rig.queue_ids("support") == [c1, c2]
    rig.ready("carol")
    assert rig.offer_of("carol") == c1
    rig.ready("alice")
    assert rig.offer_of("alice") == s1
    rig.ready("bob")
    assert rig.offer_of("bob") == c2


def test_offer_expiry_puts_agent_in_missed_and_reoffers_from_the_head():
    rig = Rig()
    rig.ready("alice")
    c1, c2 = rig.call(), rig.call()
    assert rig.offer_of("alice") == c1
    rig.clock.advance(17.9)  # offered 2 s ago by the clock of the two calls; 20 s offer timeout
    rig.center.tick()
    assert rig.offer_of("alice") == c1
    assert rig.center.offer_view("alice")["expires_in"] == pytest.approx(0.1)
    rig.take_events()
    rig.clock.advance(0.2)
    rig.center.tick()
    events = rig.take_events()
    assert OfferWithdrawn("alice", c1, "expired") in events
    view = rig.center.agent_view("alice")
    assert view["state"] == "Missed" and view["offer"] is None and view["missed"] is True
    assert rig.queue_ids() == [c1, c2]
    rig.ready("bob")
    assert rig.offer_of("bob") == c1  # the missed contact keeps its place at the head
    rig.center.set_available("alice")
    assert rig.center.agent_view("alice")["missed"] is False
    assert rig.offer_of("alice") == c2


def test_expired_offer_goes_straight_to_the_next_available_agent():
    rig = Rig()
    rig.ready("alice", "bob")
    c1 = rig.call()
    assert rig.offer_of("alice") == c1
    rig.clock.advance(20.0)
    rig.center.tick()
    assert rig.state("alice") == "Missed"
    assert rig.offer_of("bob") == c1


def test_reject_puts_the_contact_back_and_prefers_another_agent():
    rig = Rig()
    rig.ready("alice", "bob")
    c1 = rig.call()
    assert rig.offer_of("alice") == c1
    raises("no_offer", rig.center.reject, "alice", "c-999")
    rig.take_events()
    rig.center.reject("alice", c1)
    events = rig.take_events()
    assert events.index(OfferWithdrawn("alice", c1, "rejected")) < events.index(ContactOffered("bob", c1))
    assert rig.state("alice") == "Available" and rig.offer_of("alice") is None
    assert rig.offer_of("bob") == c1
    c2 = rig.call()
    assert rig.offer_of("alice") == c2  # still routable for other contacts


def test_reject_by_the_only_free_agent_offers_again():
    rig = Rig()
    rig.ready("alice")
    c1 = rig.call()
    rig.center.reject("alice", c1)
    assert rig.offer_of("alice") == c1


def test_set_offline_withdraws_the_offer_and_reroutes():
    rig = Rig()
    rig.ready("alice", "bob")
    c1 = rig.call()
    rig.take_events()
    rig.center.set_offline("alice")
    assert OfferWithdrawn("alice", c1, "rejected") in rig.take_events()
    assert rig.state("alice") == "Offline" and rig.center.agent_view("alice")["missed"] is False
    assert rig.offer_of("bob") == c1


def test_accept_connects_and_emits_contact_connected():
    rig = Rig()
    rig.ready("alice")
    c1 = rig.call(caller="+15551230001")
    rig.take_events()
    raises("no_offer", rig.center.accept, "alice", "c-other")
    contact = rig.center.accept("alice", c1)
    assert contact.contact_id == c1 and contact.caller == "+15551230001" and contact.queue_id == "support"
    events = rig.take_events()
    assert ContactConnected(c1, "alice") in events
    assert AgentChanged("alice") in events and QueueChanged("support") in events
    view = rig.center.agent_view("alice")
    assert view["state"] == "OnCall" and view["contact_id"] == c1 and view["offer"] is None
    assert rig.center.queue_view("support")["depth"] == 0
    assert rig.center.contact_agent(c1) == "alice"
    raises("bad_state", rig.center.set_offline, "alice")
    raises("bad_state", rig.center.set_available, "alice")
    raises("bad_state", rig.center.logout, "alice")
    assert rig.center.hangup("alice") == c1
    assert rig.state("alice") == "OnCall"  # the daemon ends the call and reports contact_ended


def test_accept_by_an_agent_without_that_offer_is_no_offer():
    rig = Rig()
    rig.ready("alice", "bob")
    c1 = rig.call()
    e = raises("no_offer", rig.center.accept, "bob", c1)
    assert c1 in e.message
    assert rig.offer_of("alice") == c1


def test_contact_ended_while_connected_runs_after_call_work():
    rig = Rig()
    rig.ready("alice", "bob")
    c1 = rig.call()
    rig.center.accept("alice", c1)
    rig.take_events()
    rig.center.contact_ended(c1, "CUSTOMER_DISCONNECT")
    assert AgentChanged("alice") in rig.take_events()
    view = rig.center.agent_view("alice")
    assert view["state"] == "AfterCallWork" and view["contact_id"] == c1
    assert rig.center.contact_agent(c1) is None
    raises("not_on_call", rig.center.hangup, "alice")
    rig.clock.advance(9.9)
    rig.center.tick()
    assert rig.state("alice") == "AfterCallWork"
    c2 = rig.call()  # advances 1 s: ACW is over, but bob has been idle longer
    assert rig.offer_of("bob") == c2
    rig.center.tick()
    view = rig.center.agent_view("alice")
    assert view["state"] == "Available" and view["contact_id"] is None
    c3 = rig.call()
    assert rig.offer_of("alice") == c3


def test_set_available_ends_after_call_work_early():
    rig = Rig()
    rig.ready("alice")
    c1 = rig.call()
    rig.center.accept("alice", c1)
    rig.center.contact_ended(c1, "AGENT_DISCONNECT")
    c2 = rig.call()
    assert rig.offer_of("alice") is None
    rig.center.set_available("alice")
    assert rig.state("alice") == "Available"
    assert rig.offer_of("alice") == c2


def test_offline_during_after_call_work_stays_offline():
    rig = Rig()
    rig.ready("alice")
    c1 = rig.call()
    rig.center.accept("alice", c1)
    rig.center.contact_ended(c1, "CUSTOMER_DISCONNECT")
    rig.center.set_offline("alice")
    rig.clock.advance(30)
    rig.center.tick()
    assert rig.state("alice") == "Offline"
    assert rig.center.agent_view("alice")["contact_id"] is None


def test_the_end_of_after_call_work_is_announced_once_per_contact():
    rig = Rig()
    rig.ready("alice", "bob")
    c1, c2 = rig.call(), rig.call()
    rig.center.accept("alice", c1)
    rig.center.accept("bob", c2)
    rig.center.contact_ended(c1, "CUSTOMER_DISCONNECT")
    rig.center.contact_ended(c2, "CUSTOMER_DISCONNECT")
    rig.take_events()
    rig.clock.advance(5)
    rig.center.tick()
    rig.center.set_available("bob")            # ends ACW early
    assert [e for e in rig.take_events() if isinstance(e, AfterContactWorkEnded)] == [AfterContactWorkEnded(c2, "bob")]
    rig.clock.advance(6)
    rig.center.tick()                          # alice's 10 s timer
    rig.center.set_offline("bob")
    rig.center.set_available("bob")            # no contact: nothing to announce
    assert [e for e in rig.take_events() if isinstance(e, AfterContactWorkEnded)] == [AfterContactWorkEnded(c1, "alice")]


def test_caller_hangs_up_while_waiting():
    rig = Rig()
    c1, c2 = rig.call(), rig.call()
    rig.take_events()
    rig.center.contact_ended(c1, "CUSTOMER_DISCONNECT")
    assert rig.take_events() == [QueueChanged("support")]
    assert rig.queue_ids() == [c2]
    rig.center.contact_ended(c1, "CUSTOMER_DISCONNECT")  # already gone
    rig.center.contact_ended("never-seen", "CUSTOMER_DISCONNECT")
    assert rig.take_events() == []


def test_caller_hangs_up_while_offered():
    rig = Rig()
    rig.ready("alice")
    c1, c2 = rig.call(), rig.call()
    rig.take_events()
    rig.center.contact_ended(c1, "CUSTOMER_DISCONNECT")
    events = rig.take_events()
    assert OfferWithdrawn("alice", c1, "caller_hung_up") in events
    assert QueueChanged("support") in events
    assert rig.queue_ids() == [c2]
    assert rig.state("alice") == "Available" and rig.offer_of("alice") == c2
    raises("no_offer", rig.center.accept, "alice", c1)


def test_enqueue_at_capacity_no_queue_and_queue_references():
    rig = Rig(max_contacts=3)
    for _ in range(3):
        rig.call()
    extra = WaitingContact("c-x", "+1", "gsm1", "support", rig.clock.monotonic(), rig.clock.time())
    assert rig.center.enqueue(extra) == "at_capacity"
    assert rig.center.queue_view("support")["depth"] == 3
    lost = WaitingContact("c-y", "+1", "gsm1", "billing", rig.clock.monotonic(), rig.clock.time())
    assert rig.center.enqueue(lost) == "no_queue"
    arn = "arn:aws:connect:eu-west-1:123456789012:instance/abc/queue/sales"
    assert rig.center.resolve_queue(arn) == "sales"
    assert rig.center.resolve_queue("SALES") == "sales" and rig.center.resolve_queue("Support") == "support"
    assert rig.center.has_queue("support") and not rig.center.has_queue("billing")
    by_name = WaitingContact("c-z", "+1", "gsm1", "sales", rig.clock.monotonic(), rig.clock.time())
    by_name.queue_id = "Sales"
    assert rig.center.enqueue(by_name) == "queued"
    assert rig.queue_ids("sales") == ["c-z"]
    assert rig.center.queue_ids == ["support", "sales"]
    assert rig.center.agent_ids == ["alice", "bob", "carol"]


# ---- agent commands -----------------------------------------------------------------------------


def test_login_checks_the_password():
    rig = Rig()
    raises("bad_credentials", rig.center.login, "alice", "bob-pw")
    raises("not_logged_in", rig.center.set_available, "alice")
    raises("unknown_agent", rig.center.login, "mallory", "x")
    raises("unknown_agent", rig.center.agent_view, "mallory")
    rig.center.login("alice", "alice-pw")
    assert rig.state("alice") == "Offline"
    rig.center.set_available("alice")
    rig.center.login("alice", "alice-pw")  # logging in again keeps the state
    assert rig.state("alice") == "Available"


@pytest.mark.parametrize(
    "command,args",
    [
        ("logout", ()),
        ("set_available", ()),
        ("set_offline", ()),
        ("accept", ("c-1",)),
        ("reject", ("c-1",)),
        ("hangup", ()),
    ],
)
def test_commands_without_login_are_refused(command, args):
    rig = Rig()
    e = raises("not_logged_in", getattr(rig.center, command), "bob", *args)
    assert "bob" in e.message


def test_logout_forgets_the_login_and_withdraws_the_offer():
    rig = Rig()
    rig.ready("alice", "bob")
    c1 = rig.call()
    rig.center.logout("alice")
    assert rig.state("alice") == "Offline" and rig.offer_of("bob") == c1
    raises("not_logged_in", rig.center.set_available, "alice")


# ---- events and views ---------------------------------------------------------------------------


def _documented_payloads() -> dict[str, dict]:
    """The JSON examples of docs/mqtt-api.md, keyed by what they describe."""
    found = {}
    for block in re.findall(r"```json\n(.*?)```", API_DOC.read_text(encoding="utf-8"), re.S):
        try:
            obj = json.loads(block)
        except json.JSONDecodeError:
            continue
        if "depth" in obj:
            found["queue"] = obj
        elif "agent" in obj and "state" in obj:
            found["agent"] = obj
        elif "expires_in" in obj:
            found["offer"] = obj
    assert set(found) == {"queue", "agent", "offer"}, f"{API_DOC}: examples not found"
    return found


def test_views_match_the_documented_payloads():
    doc = _documented_payloads()
    rig = Rig()
    rig.ready("alice")
    c1 = rig.call(caller="+15551230001")
    c2 = rig.call()
    rig.clock.advance(3.0)

    agent = rig.center.agent_view("alice")
    assert set(agent) == set(doc["agent"]) | {"missed"}
    offer = rig.center.offer_view("alice")
    assert set(offer) == set(doc["offer"])
    assert agent["offer"] == offer
    assert offer == {
        "contact_id": c1,
        "call_id": c1,
        "caller": "+15551230001",
        "queue": "support",
        "line": "gsm1",
        "expires_in": 15.0,
        "initiation_method": "INBOUND",
        "callback_number": None,
        "previous_contact_id": None,
    }
    queue = rig.center.queue_view("support")
    assert set(queue) == set(doc["queue"])
    assert set(queue["contacts"][0]) == set(doc["queue"]["contacts"][0])
    assert queue["depth"] == 2 and queue["oldest_wait"] == 5.0 and queue["name"] == "Support"
    assert [c["contact_id"] for c in queue["contacts"]] == [c1, c2]
    assert queue["contacts"][1]["wait"] == 4.0
    assert queue["contacts"][0]["waiting_since"] == pytest.approx(1_764_614_400.0 + 1.0)
    assert rig.center.offer_view("bob") is None
    assert rig.center.queue_view("sales") == {"queue": "sales", "name": "Sales", "depth": 0, "oldest_wait": 0.0, "contacts": []}
    json.dumps([agent, offer, queue])  # published as-is


def test_state_changes_emit_events_and_since_moves():
    rig = Rig()
    rig.center.login("carol", "carol-pw")
    before = rig.center.agent_view("carol")["since"]
    rig.clock.advance(5)
    rig.take_events()
    rig.center.set_available("carol")
    assert rig.take_events() == [AgentChanged("carol")]
    assert rig.center.agent_view("carol")["since"] == before + 5
    assert rig.center.agent_view("carol")["state"] == AgentState.AVAILABLE.value


def test_subscribers_see_the_final_state_and_a_failing_one_is_contained():
    rig = Rig()
    seen = []

    def broken(event):
        raise RuntimeError("subscriber bug")

    def reader(event):
        if isinstance(event, AgentChanged):
            seen.append((rig.center.agent_view(event.agent_id)["state"], rig.offer_of(event.agent_id)))

    rig.center.subscribe(broken)
    rig.center.subscribe(reader)
    rig.ready("alice")
    c1 = rig.call()
    assert seen[-1] == ("Available", c1)
    rig.center.accept("alice", c1)
    assert seen[-1] == ("OnCall", None)


def test_a_subscriber_may_run_commands_and_events_stay_in_order():
    rig = Rig()
    rig.ready("alice")
    later = []

    def auto_accept(event):
        if isinstance(event, ContactOffered):
            rig.center.accept(event.agent_id, event.contact_id)

    rig.center.subscribe(auto_accept)
    rig.center.subscribe(later.append)  # sees events after auto_accept has acted on each
    c1 = rig.call()
    kinds = [type(e).__name__ for e in later]
    assert kinds.index("ContactOffered") < kinds.index("ContactConnected")
    assert rig.events[-len(later):] == later  # every subscriber got the same sequence
    assert rig.state("alice") == "OnCall" and rig.center.contact_agent(c1) == "alice"


def test_run_ticks_on_the_injected_clock():
    rig = Rig()
    rig.ready("alice")
    c1 = rig.call()
    rig.center.accept("alice", c1)
    rig.center.contact_ended(c1, "CUSTOMER_DISCONNECT")

    async def scenario() -> float:
        task = asyncio.create_task(rig.center.run(interval=1.0))
        t0 = rig.clock.monotonic()
        for _ in range(100):
            for _ in range(5):
                await asyncio.sleep(0)
            if rig.state("alice") == "Available":
                break
            rig.clock.advance(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return rig.clock.monotonic() - t0

    waited = asyncio.run(scenario())
    assert rig.state("alice") == "Available"
    assert 9.0 <= waited <= 11.0  # about one ACW timeout (10 s) went by on the injected clock


# ---- passwords ----------------------------------------------------------------------------------


def test_password_hash_round_trip_and_fresh_salt():
    first = hash_password("s3cret")
    second = hash_password("s3cret")
    assert first != second
    scheme, iterations, salt, digest = first.split("$")
    assert scheme == "pbkdf2_sha256" and iterations == "120000"
    assert salt != second.split("$")[2]
    assert verify_password("s3cret", first) and verify_password("s3cret", second)
    assert not verify_password("s3cret ", first)
    assert not verify_password("", first)
    assert verify_password("pässwörd", hash_password("pässwörd", iterations=10))


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "pbkdf2_sha256$1000$abc",
        "md5$1000$c2FsdA==$aGFzaA==",
        "pbkdf2_sha256$many$c2FsdA==$aGFzaA==",
        "pbkdf2_sha256$0$c2FsdA==$aGFzaA==",
        "pbkdf2_sha256$-5$c2FsdA==$aGFzaA==",
        "pbkdf2_sha256$99999999999$c2FsdA==$aGFzaA==",
        "pbkdf2_sha256$1000$not base64!$aGFzaA==",
        "pbkdf2_sha256$1000$c2FsdA==$",
        "pbkdf2_sha256$1000$c2FsdA==$aGFzaA==$extra",
        None,
        42,
    ],
)
def test_malformed_stored_hash_is_false(stored):
    assert verify_password("anything", stored) is False


def test_non_string_password_is_false():
    assert verify_password(None, hash_password("x", iterations=10)) is False


# ---- routing priority and age (a flow's UpdateContactRoutingBehavior) -----------------------------------------


def test_lower_priority_number_is_served_first_across_queues_then_the_longest_wait():
    rig = Rig(max_contacts=5)
    plain = rig.call("support")
    urgent = WaitingContact("c-urgent", "+15550009", "gsm1", "sales", rig.clock.monotonic(), rig.clock.time(), priority=1)
    assert rig.center.enqueue(urgent) == "queued"
    rig.clock.advance(1.0)
    later = rig.call("support")
    rig.ready("alice", "bob", "carol")
    assert [rig.offer_of(a) for a in ("alice", "bob", "carol")] == ["c-urgent", plain, later]


def test_routing_age_counts_as_time_waited():
    rig = Rig(max_contacts=5)
    first = rig.call()
    rig.clock.advance(30)
    aged = WaitingContact("c-aged", "+15550009", "gsm1", "support", rig.clock.monotonic(), rig.clock.time(),
                          age_adjustment=60)
    behind = WaitingContact("c-behind", "+15550008", "gsm1", "support", rig.clock.monotonic() - 100,
                            rig.clock.time(), age_adjustment=-200)
    assert rig.center.enqueue(aged) == rig.center.enqueue(behind) == "queued"
    rig.ready("alice", "bob", "carol")
    assert [rig.offer_of(a) for a in ("alice", "bob", "carol")] == ["c-aged", first, "c-behind"]


def test_set_routing_reorders_a_waiting_contact_and_not_a_connected_one():
    rig = Rig(max_contacts=5)
    first, second = rig.call(), rig.call()
    assert rig.center.set_routing(second, priority=1)
    assert not rig.center.set_routing("c-unknown", priority=1)
    rig.ready("alice")
    assert rig.offer_of("alice") == second
    rig.center.accept("alice", second)
    assert not rig.center.set_routing(second, priority=9)
    assert rig.queue_ids() == [first]


def test_queue_metrics_count_agents_and_waiting_contacts():
    rig = Rig(max_contacts=5)
    empty = rig.center.queue_metrics("Support")
    assert empty == {"QueueId": "support", "QueueName": "Support", "NumberOfContactsInQueue": 0,
                     "OldestContactInQueueAgeSeconds": 0.0, "NumberOfAgentsAvailable": 0,
                     "NumberOfAgentsStaffed": 0, "NumberOfAgentsOnline": 0, "NumberOfAgentsOnContact": 0,
                     "NumberOfAgentsAfterContactWork": 0, "NumberOfAgentsMissed": 0}
    rig.ready("alice", "bob")
    first = rig.call()
    rig.call()
    rig.center.accept("alice", first)   # bob holds the second one's offer
    rig.clock.advance(5)
    m = rig.center.queue_metrics("support")
    assert (m["NumberOfContactsInQueue"], m["OldestContactInQueueAgeSeconds"]) == (1, 6.0)
    assert (m["NumberOfAgentsAvailable"], m["NumberOfAgentsStaffed"], m["NumberOfAgentsOnContact"]) == (0, 2, 1)
    rig.clock.advance(25)                 # bob's offer expires: he is Missed, still online
    rig.center.tick()
    m = rig.center.queue_metrics("support")
    assert (m["NumberOfAgentsOnline"], m["NumberOfAgentsMissed"], m["NumberOfAgentsAvailable"]) == (2, 1, 0)
    with pytest.raises(ValueError):
        rig.center.queue_metrics("nope")
