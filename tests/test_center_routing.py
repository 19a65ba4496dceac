"""The routing engine: routing profiles (queue priority and delay), contact priority and age, longest-idle
agents, missed offers, break states, per-queue after-call work and real-time metrics, on a hand-advanced
clock. Expected orders are worked out by hand in each test's comments."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.api.commands import CommandHandler
from gateway.api.publisher import StatePublisher
from gateway.api.topics import Topics
from gateway.center.agents import AgentConfig
from gateway.center.events import ContactOffered, OfferWithdrawn
from gateway.center.passwords import hash_password
from gateway.center.queues import QueueConfig, WaitingContact
from gateway.center.router import Center, CenterError
from gateway.center.routing_profiles import RoutingProfile, RoutingQueue, default_routing_profile
from gateway.cli.status import metrics_table
from gateway.clock import ManualClock
from gateway.config import ConfigError, load_config

HASH = hash_password("pw", iterations=1000)
BREAKS = ("Lunch", "Training")


class Rig:
    """Two queues: support (offer 20 s, ACW 10 s) and sales (offer 15 s, ACW 5 s). Times are seconds
    after the rig was built (`at`)."""

    def __init__(self, profiles: dict[str, str] | None = None, routing: dict[str, RoutingProfile] | None = None,
                 agents=("alice", "bob", "carol")) -> None:
        self.clock = ManualClock()
        self.t0 = self.clock.monotonic()
        queues = [QueueConfig("support", "Support", max_contacts=20, acw_timeout=10.0, offer_timeout=20.0),
                  QueueConfig("sales", "Sales", max_contacts=20, acw_timeout=5.0, offer_timeout=15.0)]
        routing = routing or {"default": default_routing_profile(["support", "sales"])}
        profiles = profiles or {}
        self.center = Center(queues, [AgentConfig(a, a.title(), HASH, routing_profile=profiles.get(a, "default"))
                                      for a in agents],
                             clock=self.clock, routing_profiles=routing, break_states=BREAKS)
        self.events: list[object] = []
        self.center.subscribe(self.events.append)
        for a in agents:
            self.center.login(a, "pw")

    @property
    def now(self) -> float:
        return self.clock.monotonic() - self.t0

    def at(self, t: float) -> None:
        """Move the clock to `t` and tick."""
        assert t >= self.now - 1e-9, f"time goes forward: {t} < {self.now}"
        self.clock.advance(t - self.now)
        self.center.tick()

    def call(self, contact_id: str, queue: str, **routing) -> None:
        contact = WaitingContact(contact_id, "+15550100", "gsm1", queue, self.clock.monotonic(), self.clock.time(),
                                 **routing)
        assert self.center.enqueue(contact) == "queued"

    def offer(self, agent_id: str) -> str | None:
        view = self.center.offer_view(agent_id)
        return view and view["contact_id"]

    def state(self, agent_id: str) -> str:
        return self.center.agent_view(agent_id)["state"]

    def offers(self) -> list[tuple[str, str]]:
        return [(e.agent_id, e.contact_id) for e in self.events if isinstance(e, ContactOffered)]

    def serve(self, agent_id: str) -> str:
        """Accept the pending offer."""
        contact_id = self.offer(agent_id)
        assert contact_id is not None, f"{agent_id} has no offer"
        self.center.accept(agent_id, contact_id)
        return contact_id


def three_profiles() -> dict[str, RoutingProfile]:
    return {
        # alice: support first, sales only while support has nothing for her
        "front": RoutingProfile("front", "Front", (RoutingQueue("support", 1, 0), RoutingQueue("sales", 2, 0))),
        # bob: sales first; support at priority 2 and only after 30 s
        "sales_first": RoutingProfile("sales_first", "Sales first",
                                      (RoutingQueue("sales", 1, 0), RoutingQueue("support", 2, 30))),
        # carol: overflow for both, support after 30 s, sales after 60 s
        "overflow": RoutingProfile("overflow", "Overflow",
                                   (RoutingQueue("support", 1, 30), RoutingQueue("sales", 1, 60))),
    }


def routing_rig() -> Rig:
    return Rig({"alice": "front", "bob": "sales_first", "carol": "overflow"}, three_profiles())


# ---- routing order --------------------------------------------------------------------------------------------


def test_routing_order_with_priorities_and_delays_across_two_queues_and_three_profiles():
    rig = routing_rig()
    rig.call("S1", "support")                                   # t=0
    rig.at(1)
    rig.call("A1", "sales")
    rig.at(2)
    rig.call("S2", "support")
    rig.at(3)
    rig.call("A2", "sales", priority=1)  # (a flow's QueuePriority 1)
    rig.at(4)
    rig.call("S3", "support", age_adjustment=10)  # (routing age 4 - 10 = -6: oldest)

    rig.at(5)
    rig.center.set_available("carol")
    assert rig.offer("carol") is None       # support needs 30 s (S1 has 5), sales 60 s

    rig.at(6)
    rig.center.set_available("alice")
    # support is alice's priority 1: its best is S3 (adjusted age); A2's contact priority 1 does not
    # beat the queue priority of her profile (sales is her priority 2)
    assert rig.offer("alice") == "S3"

    rig.at(7)
    rig.center.set_available("bob")
    assert rig.offer("bob") == "A2"         # sales first: contact priority 1 before the older A1
    rig.at(8)
    rig.serve("alice")
    rig.serve("bob")

    rig.at(29.9)
    assert rig.offer("carol") is None       # S1 has waited 29.9 s of carol's 30
    rig.at(30)
    assert rig.offer("carol") == "S1"       # support delay met; sales (60 s) still not
    rig.at(31)
    rig.serve("carol")

    rig.at(35)
    rig.center.contact_ended("S3", "customer_hung_up")  # alice: support ACW 10 s
    rig.at(36)
    rig.center.contact_ended("A2", "customer_hung_up")  # bob: sales ACW 5 s
    rig.at(40.9)
    assert rig.state("bob") == "AfterCallWork" and rig.state("alice") == "AfterCallWork"
    rig.at(41)
    assert rig.state("bob") == "Available" and rig.offer("bob") == "A1"   # sales, no delay
    rig.at(42)
    rig.serve("bob")
    rig.at(45)
    assert rig.offer("alice") == "S2"
    rig.serve("alice")

    rig.at(50)
    rig.call("S4", "support")  # nobody is free
    rig.at(51)
    rig.center.contact_ended("A1", "agent_hung_up")
    rig.at(56)
    assert rig.state("bob") == "Available" and rig.offer("bob") is None   # S4 has waited 6 of his 30 s
    rig.at(79.9)
    assert rig.offer("bob") is None
    rig.at(80)
    assert rig.offer("bob") == "S4"

    assert rig.offers() == [("alice", "S3"), ("bob", "A2"), ("carol", "S1"), ("bob", "A1"), ("alice", "S2"),
                            ("bob", "S4")]


def test_a_lower_priority_queue_is_served_only_when_the_higher_has_nothing_for_the_agent():
    rig = routing_rig()
    rig.call("A1", "sales", priority=1)
    rig.at(100)
    rig.call("S1", "support", priority=9)
    rig.center.set_available("alice")
    assert rig.offer("alice") == "S1"        # A1 waited 100 s with priority 1, but sales is her priority 2
    rig.at(101)
    rig.center.reject("alice", "S1")
    assert rig.offer("alice") == "S1"        # no one else may take S1 now, so she gets it again
    rig.center.set_offline("alice")
    rig.center.dequeue("S1")
    rig.center.set_available("alice")
    assert rig.offer("alice") == "A1"        # support empty: her priority-2 queue


def test_a_delay_gates_one_profile_while_another_takes_the_contact_at_once():
    rig = routing_rig()
    rig.center.set_available("carol")        # idle longest, but support reaches her only after 30 s
    rig.at(1)
    rig.center.set_available("alice")
    rig.at(2)
    rig.call("S1", "support")
    assert rig.offer("alice") == "S1" and rig.offer("carol") is None
    rig.serve("alice")
    rig.call("S2", "support")
    rig.at(31)
    assert rig.offer("carol") is None        # S2 has waited 29 s
    rig.at(32)
    assert rig.offer("carol") == "S2"


def test_an_agent_serves_only_the_queues_of_its_profile():
    profiles = {"support_only": RoutingProfile("support_only", "Support", (RoutingQueue("support"),))}
    rig = Rig({"alice": "support_only"}, profiles, agents=("alice",))
    rig.center.set_available("alice")
    rig.call("A1", "sales")
    rig.at(600)
    assert rig.offer("alice") is None
    assert rig.center.queue_metrics("sales")["NumberOfAgentsAvailable"] == 0
    assert rig.center.queue_metrics("support")["NumberOfAgentsAvailable"] == 1


# ---- longest idle ---------------------------------------------------------------------------------------------


def test_the_longest_idle_agent_gets_the_offer_counting_from_when_it_became_available():
    rig = Rig()
    rig.center.set_available("bob")          # t=0
    rig.at(1)
    rig.center.set_available("carol")
    rig.at(2)
    rig.center.set_available("alice")
    rig.at(3)
    rig.call("C1", "support")
    assert rig.offer("bob") == "C1"
    rig.serve("bob")
    rig.at(4)
    rig.center.contact_ended("C1", "customer_hung_up")  # bob free again at 14
    rig.at(14)
    assert rig.state("bob") == "Available"
    # idle since: carol 1, alice 2, bob 14 (after-call work ended): carol, alice, then bob
    for n in (2, 3, 4):
        rig.call(f"C{n}", "support")
    assert [rig.offer(a) for a in ("carol", "alice", "bob")] == ["C2", "C3", "C4"]


def test_coming_back_from_a_break_puts_the_agent_last_in_line():
    rig = Rig()
    rig.center.set_available("alice")
    rig.at(1)
    rig.center.set_available("bob")
    rig.at(2)
    rig.center.set_break("alice", "Lunch")
    rig.at(3)
    rig.center.set_available("alice")
    rig.call("C1", "support")
    assert rig.offer("bob") == "C1" and rig.offer("alice") is None


# ---- missed offers --------------------------------------------------------------------------------------------


def test_a_missed_offer_puts_the_agent_in_missed_and_reoffers_the_same_contact_to_another_at_once():
    rig = Rig()
    rig.center.set_available("alice")
    rig.at(1)
    rig.center.set_available("bob")
    rig.at(2)
    rig.call("C1", "sales")  # sales: 15 s to accept
    assert rig.offer("alice") == "C1"
    rig.at(16.9)
    assert rig.offer("alice") == "C1"
    rig.events.clear()
    rig.at(17)
    assert OfferWithdrawn("alice", "C1", "expired") in rig.events
    assert rig.offers() == [("bob", "C1")]
    view = rig.center.agent_view("alice")
    assert (view["state"], view["missed"], view["offer"]) == ("Missed", True, None)
    assert rig.center.realtime_metrics()["total"]["agents_missed"] == 1


def test_the_missed_contact_keeps_the_head_of_its_queue_and_the_missed_agent_gets_nothing_until_available():
    rig = Rig()
    rig.center.set_available("alice")
    rig.call("C1", "support")
    rig.at(1)
    rig.call("C2", "support")
    rig.at(20)
    assert rig.state("alice") == "Missed"
    view = rig.center.queue_view("support")
    assert [(c["contact_id"], c["wait"]) for c in view["contacts"]] == [("C1", 20.0), ("C2", 19.0)]
    rig.at(21)
    rig.call("C3", "support")
    rig.at(60)
    assert rig.offer("alice") is None           # Missed: not routable, however long contacts wait
    rig.center.set_available("bob")
    assert rig.offer("bob") == "C1"             # the missed one first, with its original wait
    rig.center.set_available("alice")
    assert rig.state("alice") == "Available" and rig.center.agent_view("alice")["missed"] is False
    assert rig.offer("alice") == "C2"


def test_missed_agent_may_go_offline_or_on_a_break_and_sign_out():
    rig = Rig()
    rig.center.set_available("alice")
    rig.call("C1", "support")
    rig.at(20)
    assert rig.state("alice") == "Missed"
    rig.center.set_break("alice", "Training")
    assert rig.state("alice") == "Break"
    rig.center.set_available("alice")
    rig.at(40)
    assert rig.state("alice") == "Missed"
    rig.center.logout("alice")
    assert rig.state("alice") == "Offline" and rig.center.agent_view("alice")["missed"] is False


# ---- break states ---------------------------------------------------------------------------------------------


def test_an_agent_on_a_break_gets_no_offers_and_metrics_count_each_break_state():
    rig = Rig()
    rig.center.set_available("alice")
    rig.center.set_available("bob")
    rig.center.set_available("carol")
    assert rig.center.set_break("alice", "lunch") == "Lunch"      # any case; the configured spelling back
    rig.center.set_break("bob", "Lunch")
    view = rig.center.agent_view("alice")
    assert (view["state"], view["break_state"], view["break_states"]) == ("Break", "Lunch", ["Lunch", "Training"])
    rig.call("C1", "support")
    rig.call("C2", "sales")
    assert rig.offer("carol") == "C1"
    rig.serve("carol")
    rig.at(600)
    assert rig.offer("alice") is None and rig.offer("bob") is None
    total = rig.center.realtime_metrics()["total"]
    assert total["agents_break"] == {"Lunch": 2, "Training": 0}
    assert (total["agents_online"], total["agents_staffed"], total["agents_on_contact"]) == (3, 1, 1)
    rig.center.set_break("bob", "Training")                       # one break to another
    assert rig.center.realtime_metrics()["total"]["agents_break"] == {"Lunch": 1, "Training": 1}
    assert rig.center.agent_view("bob")["break_state"] == "Training"
    rig.center.set_available("bob")
    assert rig.offer("bob") == "C2" and rig.center.agent_view("bob")["break_state"] is None


def test_break_refused_for_an_unknown_state_and_while_on_call():
    rig = Rig()
    with pytest.raises(CenterError) as info:
        rig.center.set_break("alice", "Lnch")
    assert info.value.code == "unknown_state"
    assert info.value.message == 'no break state "Lnch" (did you mean "Lunch"?); break states: Lunch, Training'
    rig.center.set_available("alice")
    rig.call("C1", "support")
    rig.serve("alice")
    with pytest.raises(CenterError) as info:
        rig.center.set_break("alice", "Lunch")
    assert info.value.code == "bad_state" and "C1" in info.value.message
    rig.center.contact_ended("C1", "customer_hung_up")
    rig.center.set_break("alice", "Lunch")                         # ends after-call work
    rig.at(30)
    assert rig.state("alice") == "Break" and rig.center.agent_view("alice")["contact_id"] is None


def test_going_on_a_break_with_an_offer_pending_declines_it():
    rig = Rig()
    rig.center.set_available("alice")
    rig.at(1)
    rig.center.set_available("bob")
    rig.call("C1", "support")
    rig.events.clear()
    rig.center.set_break("alice", "Training")
    assert OfferWithdrawn("alice", "C1", "rejected") in rig.events
    assert rig.offer("bob") == "C1"


def test_a_center_without_break_states_says_so_and_bad_names_are_refused():
    center = Center([QueueConfig("q", "Q")], [AgentConfig("a", "A", HASH)], clock=ManualClock())
    center.login("a", "pw")
    with pytest.raises(CenterError, match=r"has none \(configure them as \[gateway\] break_states\)"):
        center.set_break("a", "Lunch")
    with pytest.raises(ValueError, match=r'break_states\[1\]: "lunch" is listed twice'):
        Center([QueueConfig("q", "Q")], [], break_states=["Lunch", "lunch"])


@pytest.mark.parametrize("value,place,message", [
    ('["Lunch", "lunch"]', "break_states[1]", '"lunch" is listed twice (also break_states[0])'),
    ('["Available"]', "break_states[0]", '"Available" is the name of the built-in state Available'),
    ('["missed"]', "break_states[0]", "built-in state Missed"),
    ('["Lunch", ""]', "break_states[1]", "'' is not a break state name"),
    ('["Lunch/Dinner"]', "break_states[0]", "is not a break state name: 1-32 letters, digits"),
    ('["x" ]', None, None),
    ('"Lunch"', "break_states", "expected"),
    ('["Lunch", 3]', "break_states", "expected a list of strings"),
])
def test_break_states_in_the_config(tmp_path, value, place, message):
    path = tmp_path / "callgate.toml"
    path.write_text(f'[gateway]\nbreak_states = {value}\n\n[[queues]]\nid = "support"\n')
    if place is None:
        assert load_config(path).break_states == ("x",)
        return
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"callgate.toml: gateway.{place}: " in str(info.value) and message in str(info.value)


# ---- after-call work --------------------------------------------------------------------------------------------


def test_after_call_work_lasts_the_timeout_of_the_contacts_queue():
    rig = Rig()
    rig.center.set_available("alice")
    rig.at(1)
    rig.center.set_available("bob")
    rig.call("S1", "support")                        # alice (idle longest)
    rig.call("A1", "sales")                          # bob
    rig.serve("alice")
    rig.serve("bob")
    rig.at(10)
    rig.center.contact_ended("S1", "customer_hung_up")
    rig.center.contact_ended("A1", "customer_hung_up")
    rig.at(14.9)
    assert (rig.state("alice"), rig.state("bob")) == ("AfterCallWork", "AfterCallWork")
    rig.at(15)
    assert (rig.state("alice"), rig.state("bob")) == ("AfterCallWork", "Available")   # sales: 5 s
    rig.at(19.9)
    assert rig.state("alice") == "AfterCallWork"
    rig.at(20)
    assert rig.state("alice") == "Available"                                          # support: 10 s
    assert rig.center.realtime_metrics()["total"]["agents_acw"] == 0


# ---- real-time metrics ------------------------------------------------------------------------------------------


def test_realtime_metrics_per_queue_count_the_agents_serving_it_and_the_total_counts_each_once():
    profiles = {"support_only": RoutingProfile("support_only", "S", (RoutingQueue("support"),)),
                "sales_only": RoutingProfile("sales_only", "A", (RoutingQueue("sales"),)),
                "default": default_routing_profile(["support", "sales"])}
    rig = Rig({"alice": "support_only", "bob": "sales_only"}, profiles)     # carol serves both
    rig.center.set_available("alice")
    rig.center.set_available("bob")
    rig.center.set_break("carol", "Training")
    rig.call("S1", "support")                # alice
    rig.serve("alice")
    rig.at(2)
    rig.call("A1", "sales")  # bob has the offer
    rig.at(3)
    rig.call("A2", "sales")
    rig.at(10)
    m = rig.center.realtime_metrics()
    assert m["queues"]["support"] == {        # alice on S1, carol on a break
        "agents_online": 2, "agents_staffed": 1, "agents_available": 0, "agents_on_contact": 1, "agents_acw": 0,
        "agents_missed": 0, "agents_break": {"Lunch": 0, "Training": 1}, "contacts_in_queue": 0, "oldest_wait": 0.0}
    assert m["queues"]["sales"] == {          # bob offered A1, carol on a break; A1 and A2 wait
        "agents_online": 2, "agents_staffed": 1, "agents_available": 0, "agents_on_contact": 0, "agents_acw": 0,
        "agents_missed": 0, "agents_break": {"Lunch": 0, "Training": 1}, "contacts_in_queue": 2, "oldest_wait": 8.0}
    assert m["total"] == {
        "agents_online": 3, "agents_staffed": 2, "agents_available": 0, "agents_on_contact": 1, "agents_acw": 0,
        "agents_missed": 0, "agents_break": {"Lunch": 0, "Training": 1}, "contacts_in_queue": 2, "oldest_wait": 8.0}
    rig.at(17)                               # bob's sales offer (15 s) expired at 17
    total = rig.center.realtime_metrics()["total"]
    assert (total["agents_missed"], total["agents_online"], total["oldest_wait"]) == (1, 3, 15.0)
    rig.center.logout("bob")
    m = rig.center.realtime_metrics()
    assert (m["queues"]["sales"]["agents_online"], m["queues"]["support"]["agents_online"]) == (1, 2)


def test_metrics_are_published_retained_when_a_count_changes_and_shown_by_status():
    rig = Rig()
    sent: list[tuple[str, dict, dict]] = []
    publisher = StatePublisher(lambda topic, payload, **kw: sent.append((topic, json.loads(payload), kw)) or True,
                               Topics("gw"), rig.center, clock=rig.clock)

    def metrics() -> list[dict]:
        return [p for t, p, kw in sent if t == "callgate/gw/metrics" and kw == {"qos": 1, "retain": True}]

    publisher.publish_all()
    assert metrics()[-1]["total"]["agents_online"] == 0 and metrics()[-1]["at"] == rig.clock.time()
    rig.center.set_available("alice")
    assert metrics()[-1]["total"]["agents_available"] == 1
    count = len(metrics())
    rig.at(1)
    rig.center.login("alice", "pw")          # an AgentChanged with no count changed: nothing new
    assert len(metrics()) == count
    rig.center.set_break("bob", "Lunch")
    last = metrics()[-1]
    assert last["total"]["agents_break"] == {"Lunch": 1, "Training": 0}
    assert last["queues"]["sales"]["agents_break"]["Lunch"] == 1

    text = metrics_table(last)
    lines = text.splitlines()
    assert lines[0].split() == ["QUEUE", "ONLINE", "AVAILABLE", "ON", "CONTACT", "ACW", "MISSED", "LUNCH",
                                "TRAINING", "WAITING", "OLDEST", "WAIT"]
    assert lines[2].split() == ["TOTAL", "2", "1", "0", "0", "0", "1", "0", "0", "0s"]
    assert [line.split()[0] for line in lines[3:]] == ["sales", "support"]


# ---- the agent command -------------------------------------------------------------------------------------------


def test_the_break_command_over_the_api(tmp_path):
    rig = Rig(agents=("alice", "bob"))
    sent: list[tuple[str, dict]] = []
    handler = CommandHandler(lambda t, p: sent.append((t, json.loads(p))), Topics("gw"), rig.center,
                             on_hangup=lambda a, c: None)

    def send(agent_id: str, **command) -> dict:
        handler.handle(f"callgate/gw/agent/{agent_id}/cmd", json.dumps(command).encode())
        assert sent[-1][0] == f"callgate/gw/agent/{agent_id}/reply"
        return sent[-1][1]

    assert send("alice", id=1, action="break", state="training") == {
        "id": 1, "ok": True, "action": "break", "state": "Break", "break_state": "Training"}
    reply = send("alice", id=2, action="break", state="Dinner")
    assert reply["code"] == "unknown_state" and reply["error"].endswith("break states: Lunch, Training")
    reply = send("alice", id=3, action="break")
    assert reply["code"] == "bad_request" and "$.state is required for 'break'" in reply["error"]
    reply = send("alice", id=4, action="break", state="Lunch", agent="bob")   # the agent profile: no manage_agents
    assert reply["code"] == "forbidden" and reply["missing_permission"] == "manage_agents"
    assert rig.center.agent_view("alice")["break_state"] == "Training"


def test_metrics_are_published_once_per_command_on_the_event_loop():
    rig = Rig()
    sent: list[dict] = []
    StatePublisher(lambda topic, payload, **kw: topic.endswith("/metrics") and sent.append(json.loads(payload)),
                   Topics("gw"), rig.center, clock=rig.clock)

    async def scenario() -> None:
        rig.center.set_available("alice")
        rig.center.set_available("bob")
        rig.center.set_break("carol", "Lunch")
        assert sent == []                    # the events of these commands are all in: one publish follows
        await asyncio.sleep(0)
        assert len(sent) == 1
        assert (sent[0]["total"]["agents_available"], sent[0]["total"]["agents_break"]["Lunch"]) == (2, 1)
        rig.center.login("alice", "pw")      # nothing counted changed
        await asyncio.sleep(0)
        assert len(sent) == 1

    asyncio.run(scenario())


# ---- the dashboard's break picker (headless Chromium, mosquitto, the test as the gateway) --------------------


def test_the_dashboard_picks_a_break_state(tmp_path):
    from gateway.web.server import DashboardServer
    from tests.web_helpers import MqttProbe, chromium_page, make_tone_wav, run_mosquitto

    base = "callgate/gwtest/"

    def state(gw, state: str, **extra) -> None:
        gw.publish(f"{base}agent/alice/state", {"agent": "alice", "name": "Alice", "state": state, "since": 0,
                                                "contact_id": None, "offer": None, **extra}, retain=True)

    with run_mosquitto(tmp_path) as broker:
        gw = MqttProbe(broker.tcp_port, client_id="fake-gateway")
        gw.subscribe(base + "agent/+/cmd")
        gw.publish(base + "status", {"online": True}, retain=True)
        state(gw, "Available", break_states=[], break_state=None)
        wav = make_tone_wav(tmp_path / "mic.wav")
        with DashboardServer("127.0.0.1", 0, ws_url=broker.ws_url, gateway_id="gwtest") as srv, \
                chromium_page(wav) as page:
            page.goto(srv.url)
            page.wait_for_function("document.querySelector('#gateway-id').value === 'gwtest'", timeout=5000)
            page.fill("#agent-id", "alice")
            page.fill("#password", "pw")
            page.click("#login")
            cmd = gw.expect_json(base + "agent/alice/cmd")
            gw.publish(base + "agent/alice/reply", {"id": cmd["id"], "ok": True, "action": "login"})
            page.wait_for_function("window.__cg.state === 'Available'", timeout=5000)
            assert page.is_hidden("#break-select")              # a gateway without break states: no picker

            state(gw, "Available", break_states=list(BREAKS), break_state=None)
            page.wait_for_selector("#break-select:not([hidden])", timeout=5000)
            options = page.eval_on_selector_all("#break-select option", "os => os.map(o => o.textContent)")
            assert options == ["Break…", "Lunch", "Training"]
            page.select_option("#break-select", "Training")
            cmd = gw.expect_json(base + "agent/alice/cmd")
            assert cmd == {"id": cmd["id"], "action": "break", "state": "Training"}
            gw.publish(base + "agent/alice/reply", {"id": cmd["id"], "ok": True, "action": "break",
                                                    "state": "Break", "break_state": "Training"})
            state(gw, "Break", break_states=list(BREAKS), break_state="Training")
            page.wait_for_function("document.querySelector('#state').textContent === 'Break: Training'",
                                   timeout=5000)
            assert page.input_value("#break-select") == "Training"

            state(gw, "Missed", break_states=list(BREAKS), break_state=None, missed=True)
            page.wait_for_function("window.__cg.state === 'Missed'", timeout=5000)
            assert page.input_value("#break-select") == "" and "Missed" in page.inner_text("#state")
        gw.close()


# ---- the daemon: break states from its config, metrics on MQTT, callgate status ------------------------------


def test_the_daemon_takes_break_states_from_its_config_and_callgate_status_shows_the_metrics(tmp_path):
    from tests.stack import AgentClient, Stack, free_port, start_daemon, stop_daemon, wait_ready, write_config

    data_dir, config, log_path = tmp_path / "data", tmp_path / "callgate.toml", tmp_path / "daemon.log"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=data_dir, broker=None, web_port=free_port(),
                 lines=[])
    text = config.read_text()
    config.write_text(text.replace("[mqtt]\n", 'break_states = ["Lunch", "Training"]\n[mqtt]\n', 1))
    proc = start_daemon(config, data_dir, log_path)
    try:
        state = wait_ready(data_dir, proc, log_path)
        stack = Stack(emulator=None, gateway_id=state["gateway_id"], data_dir=data_dir, config=config, proc=proc,
                      mqtt_host=state["mqtt_host"], mqtt_port=state["mqtt_port"], ws_url=state["ws_url"],
                      dashboard_url=state.get("dashboard", ""), log_path=log_path)
        alice, bob = AgentClient(stack, "alice"), AgentClient(stack, "bob")
        try:
            assert alice.command("login", password="alice-pass")["ok"]
            assert bob.command("login", password="bob-pass")["ok"]
            reply = alice.command("break", state="lunch")
            assert (reply["ok"], reply["state"], reply["break_state"]) == (True, "Break", "Lunch"), reply
            assert bob.command("available")["ok"]
            view = alice.wait_for(lambda t, o: t.endswith("/agent/alice/state") and o.get("break_state") == "Lunch")
            assert view["break_states"] == ["Lunch", "Training"]
            metrics = alice.wait_for(lambda t, o: t.endswith("/metrics") and o["total"]["agents_available"] == 1)
            assert metrics["total"]["agents_break"] == {"Lunch": 1, "Training": 0}
            assert metrics["queues"]["support"]["agents_online"] == 2
        finally:
            alice.close()
            bob.close()

        out = stack.cli("status", "--json")
        status = json.loads(out.stdout)
        assert status["metrics"]["total"]["agents_break"] == {"Lunch": 1, "Training": 0}, out.stderr
        assert status["agents"]["alice"]["break_state"] == "Lunch"
        lines = stack.cli("status").stdout.splitlines()
        heading = lines.index("REAL-TIME METRICS")
        assert lines[heading + 1].split()[-5:] == ["LUNCH", "TRAINING", "WAITING", "OLDEST", "WAIT"]
        assert lines[heading + 3].split()[:8] == ["TOTAL", "2", "1", "0", "0", "0", "1", "0"]
        assert any(line.startswith("alice") and "Break (Lunch)" in line for line in lines), lines
    finally:
        stop_daemon(proc)
