"""Agents' outbound calls, transfers and queued callbacks through the real daemon, two emulated SIM7600 lines
and MQTT agents.

Outbound: the line is chosen per queue (the agent's default outbound queue "sales" has gsm2, "billing" has
gsm1, or the command names one): only that modem sees the ATD, and the caller ID is its SIM; progress on
…/agent/<id>/call, audio both ways, either side hangs up, after-contact work, OUTBOUND records. Transfer: a
caller alice took from "support" is transferred to "sales" and bob takes it, with audio, as a new TRANSFER
contact linked to alice's leg. Callback: a waiting caller presses 1 in the customer queue flow and hangs
up; the callback waits in "sales", alice accepts, gsm2 dials the caller's number (busy: tried again 2 s
later; then answered), audio both ways, a CALLBACK record linked to the call.
"""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pytest

from gateway.api import audio_frames
from gateway.media.g711 import ulaw_decode
from gateway.media.tones import dominant_frequency, rms_dbfs
from hil.sim7600 import Sim7600Emulator
from tests.stack import AgentClient, Stack, free_port, start_daemon, stop_daemon, wait_ready, write_config
from tests.test_e2e_call import _send_tone
from tests.test_e2e_third_party import _hears, _wait_lines_idle

GSM1, GSM2 = "+15550000001", "+15550000002"
MAIN_FLOW = {"Version": "2019-10-30", "StartAction": "queue-set", "Actions": [
    {"Identifier": "queue-set", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "support"},
     "Transitions": {"NextAction": "hooks", "Errors": [{"ErrorType": "NoMatchingError", "NextAction": "bye"}]}},
    {"Identifier": "hooks", "Type": "UpdateContactEventHooks", "Parameters": {"EventHooks": {"CustomerQueue": "waiting"}},
     "Transitions": {"NextAction": "queue", "Errors": [{"ErrorType": "NoMatchingError", "NextAction": "bye"}]}},
    {"Identifier": "queue", "Type": "TransferContactToQueue", "Parameters": {},
     "Transitions": {"Errors": [{"ErrorType": "QueueAtCapacity", "NextAction": "bye"},
                                {"ErrorType": "NoMatchingError", "NextAction": "bye"}]}},
    {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}
QUEUE_FLOW = {"Version": "2019-10-30", "StartAction": "offer", "Actions": [
    {"Identifier": "offer", "Type": "GetParticipantInput",
     "Parameters": {"Text": "Press 1 to be called back.", "InputTimeLimitSeconds": "8", "StoreInput": "False"},
     "Transitions": {"Conditions": [{"NextAction": "callback", "Condition": {"Operator": "Equals", "Operands": ["1"]}}],
                     "Errors": [{"ErrorType": "InputTimeLimitExceeded", "NextAction": "wait"},
                                {"ErrorType": "NoMatchingCondition", "NextAction": "wait"},
                                {"ErrorType": "NoMatchingError", "NextAction": "wait"}]}},
    {"Identifier": "callback", "Type": "CreateCallbackContact",
     "Parameters": {"QueueId": "sales", "InitialCallDelaySeconds": "1", "MaximumConnectionAttempts": "1",
                    "RetryDelaySeconds": "2"},
     "Transitions": {"NextAction": "thanks", "Errors": [{"ErrorType": "NoMatchingError", "NextAction": "wait"}]}},
    {"Identifier": "thanks", "Type": "MessageParticipant", "Parameters": {"Text": "We will call you back."},
     "Transitions": {"NextAction": "bye"}},
    {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
    {"Identifier": "wait", "Type": "EndFlowExecution", "Parameters": {}, "Transitions": {}}]}
EXTRA = """
[[queues]]
id = "sales"
name = "Sales"
outbound_line = "gsm2"
acw_timeout = 30

[[queues]]
id = "billing"
name = "Billing"
outbound_line = "gsm1"

[[routing_profiles]]
id = "default"
default_outbound_queue = "sales"
queues = [{queue = "support"}, {queue = "sales"}, {queue = "billing"}]
"""


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("agent-calls")
    gsm1 = Sim7600Emulator(ring_interval=2.0)
    gsm2 = Sim7600Emulator(ring_interval=2.0, imei="867584030000002")
    gsm1.start()
    gsm2.start()
    (tmp / "main.json").write_text(json.dumps(MAIN_FLOW))
    (tmp / "waiting.json").write_text(json.dumps(QUEUE_FLOW))
    data_dir, config, log = tmp / "data", tmp / "callgate.toml", tmp / "daemon.log"
    gateway_id = f"gw{free_port()}"
    write_config(config, gateway_id=gateway_id, data_dir=data_dir, broker=None, web_port=free_port(), extra=EXTRA,
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": gsm1.at_port,
                         "audio_port": gsm1.audio_port, "flow": str(tmp / "main.json"), "number": GSM1},
                        {"id": "gsm2", "profile": "simcom_sim7600", "at_port": gsm2.at_port,
                         "audio_port": gsm2.audio_port, "flow": str(tmp / "main.json"), "number": GSM2}])
    proc = start_daemon(config, data_dir, log)
    try:
        daemon = wait_ready(data_dir, proc, log)
        _wait_lines_idle(daemon)
        stack = Stack(gsm1, gateway_id, data_dir, config, proc, daemon["mqtt_host"], daemon["mqtt_port"],
                      daemon["ws_url"] or "", daemon["dashboard"] or "", log_path=log)
        agents = []
        for agent_id in ("alice", "bob"):     # one after the other: amqtt trips over two connections at once
            agent = AgentClient(stack, agent_id)
            agent.wait_for(lambda t, o: t.endswith("/status") and o.get("online") is True, what="gateway online")
            assert agent.command("login", password=stack.agents[agent_id])["ok"]
            agents.append(agent)
        alice, bob = agents
        yield {"stack": stack, "gsm1": gsm1, "gsm2": gsm2, "alice": alice, "bob": bob}
        alice.close()
        bob.close()
    finally:
        stop_daemon(proc)
        gsm1.stop()
        gsm2.stop()


def records(rig) -> dict[str, dict]:
    db = rig["stack"].data_dir / "contacts.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM contacts")]
    for row in rows:
        for key in ("attributes", "flow_path", "media"):
            row[key] = json.loads(row[key]) if row[key] else None
    return {r["contact_id"]: r for r in rows}


def ended(rig, contact_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = records(rig).get(contact_id)
        if rec is not None and rec["ended_at"] is not None:
            return rec
        time.sleep(0.1)
    raise AssertionError(f"contact {contact_id} has not ended:\n{rig['stack'].log()[-4000:]}")


def dials(modem, since: int) -> list[str]:
    return [text for _, direction, text in modem.transcript[since:] if direction == ">" and text.startswith("ATD")]


def progress(agent: AgentClient, contact_id: str, stage: str, timeout: float = 15.0, **match) -> dict:
    return agent.wait_for(lambda t, o: t.endswith(f"/agent/{agent.agent_id}/call") and o.get("contact_id") == contact_id
                          and o.get("stage") == stage and all(o.get(k) == v for k, v in match.items()),
                          timeout, f"{stage} of {contact_id}")


def after(agent: AgentClient, mark: int, predicate, timeout: float, what: str) -> dict:
    """The first JSON message after the agent's first `mark` messages for which predicate(topic, obj) holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, topic, payload, _ in list(agent.messages[mark:]):
            try:
                obj = json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                continue
            if predicate(topic, obj):
                return obj
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{agent.stack.log()[-4000:]}")


def in_state(agent: AgentClient, state: str, contact_id: str, timeout: float = 10.0) -> dict:
    return agent.wait_for(lambda t, o: t.endswith(f"/agent/{agent.agent_id}/state") and o.get("state") == state
                          and o.get("contact_id") == contact_id, timeout, f"{agent.agent_id} {state} with {contact_id}")


def heard_by_agent(agent: AgentClient, contact_id: str, since: float, freq: float) -> bool:
    frames = agent.audio_frames(contact_id, since)
    if len(frames) < 25:
        return False
    pcm = np.concatenate([ulaw_decode(audio_frames.unpack(f)[2]) for f in frames])[-4000:]
    return rms_dbfs(pcm) > -30 and abs(dominant_frequency(pcm) - freq) < 20


def wait(predicate, timeout: float, what: str, rig) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{rig['stack'].log()[-4000:]}")


def both_ways(rig, agent: AgentClient, modem, contact_id: str) -> None:
    """A tone from the far end reaches the agent over MQTT, and one from the agent reaches the far end."""
    since = time.monotonic()
    modem.play_tone(900.0, 1.5)
    wait(lambda: heard_by_agent(agent, contact_id, since, 900.0), 5, "the far end's tone at the agent", rig)
    mark = modem.capture().size
    _send_tone(agent, contact_id, 600.0, 1.0)
    wait(lambda: _hears(modem, 600.0, mark), 3, "the agent's tone at the far end", rig)


def test_outbound_calls_go_out_on_the_line_of_their_queue(rig):
    alice, gsm1, gsm2 = rig["alice"], rig["gsm1"], rig["gsm2"]
    # 1. no queue named: alice's routing profile's default outbound queue "sales", whose line is gsm2
    gsm2.set_outbound_outcome("answer", alert_after=0.3, after=1.0)
    marks = len(gsm1.transcript), len(gsm2.transcript)
    reply = alice.command("dial", number="+49 30 1234-5678")
    assert reply["ok"], reply
    cid = reply["contact_id"]
    assert (reply["line"], reply["queue"], reply["caller_id"], reply["number"], reply["state"]) == \
        ("gsm2", "sales", GSM2, "+493012345678", "OnCall")
    progress(alice, cid, "answered")
    stages = [json.loads(p)["stage"] for _, t, p, _ in list(alice.messages) if t.endswith("/agent/alice/call")
              and json.loads(p)["contact_id"] == cid]
    assert stages == ["dialing", "ringing", "answered"]
    assert dials(gsm2, marks[1]) == ["ATD+493012345678;"] and dials(gsm1, marks[0]) == []
    assert gsm2.call_info()["direction"] == "out"
    both_ways(rig, alice, gsm2, cid)
    gsm2.hangup()                                                   # the far end hangs up
    done = progress(alice, cid, "ended")
    assert (done["outcome"], done["reason"]) == ("answered", "customer_hung_up")
    in_state(alice, "AfterCallWork", cid)
    rec = ended(rig, cid)
    assert (rec["initiation_method"], rec["queue_id"], rec["agent_id"], rec["line_id"], rec["caller"]) == \
        ("OUTBOUND", "sales", "alice", "gsm2", "+493012345678")
    assert rec["disconnect_reason"] == "customer_hung_up" and rec["attributes"]["caller_id"] == GSM2
    assert rec["initiated_at"] < rec["connected_to_agent_at"] < rec["agent_interaction_end_at"] <= rec["ended_at"] + 0.01
    assert rec["media"]["frames_to_agent"] > 50

    # 2. queue "billing": its line gsm1; the agent hangs up
    assert alice.command("available")["ok"]
    gsm1.set_outbound_outcome("answer", alert_after=0.2, after=0.6)
    marks = len(gsm1.transcript), len(gsm2.transcript)
    reply = alice.command("dial", number="+15557770002", queue="billing")
    assert (reply["line"], reply["caller_id"]) == ("gsm1", GSM1), reply
    progress(alice, reply["contact_id"], "answered")
    assert dials(gsm1, marks[0]) == ["ATD+15557770002;"] and dials(gsm2, marks[1]) == []
    assert alice.command("hangup")["ok"]
    assert gsm1.wait_for_state("idle", 5)
    done = progress(alice, reply["contact_id"], "ended")
    assert (done["outcome"], done["reason"]) == ("answered", "agent_hung_up")
    assert ended(rig, reply["contact_id"])["disconnect_reason"] == "agent_hung_up"

    # 3. the command names the line; busy
    assert alice.command("available")["ok"]
    gsm2.set_outbound_outcome("busy", alert_after=0.2, after=0.5)
    marks = len(gsm1.transcript), len(gsm2.transcript)
    reply = alice.command("dial", number="+15557770003", queue="billing", line="gsm2")
    assert (reply["line"], reply["caller_id"]) == ("gsm2", GSM2), reply
    done = progress(alice, reply["contact_id"], "ended")
    assert (done["outcome"], done["reason"]) == ("busy", "busy")
    assert dials(gsm2, marks[1]) == ["ATD+15557770003;"] and dials(gsm1, marks[0]) == []
    rec = ended(rig, reply["contact_id"])
    assert rec["disconnect_reason"] == "busy" and rec["connected_to_agent_at"] is None
    in_state(alice, "AfterCallWork", reply["contact_id"])

    # refused: a named line that is unknown, a number that is not one
    assert alice.command("dial", number="+15557770004", line="gsm9")["code"] == "unknown_line"
    assert alice.command("dial", number="12")["code"] == "bad_number"
    assert alice.command("available")["ok"]


def test_a_transfer_to_another_queue_is_taken_by_a_second_agent(rig):
    alice, bob, gsm1 = rig["alice"], rig["bob"], rig["gsm1"]
    assert bob.command("offline")["ok"]
    assert alice.command("available")["ok"]
    gsm1.ring("+15551230002")
    offer = alice.wait_for(lambda t, o: t.endswith("/agent/alice/offer") and o.get("caller") == "+15551230002", 20,
                           "the offer to alice")
    first = offer["contact_id"]
    assert alice.command("accept", contact_id=first)["ok"]
    in_state(alice, "OnCall", first)

    bad = alice.command("transfer", contact_id=first, to_agent="bob")
    assert (bad["ok"], bad["code"]) == (False, "agent_offline") and "bob is offline" in bad["error"]
    bad = alice.command("transfer", contact_id=first, to_queue="nowhere")
    assert bad["code"] == "unknown_queue" and "nowhere" in bad["error"]
    assert bob.command("available")["ok"]
    reply = alice.command("transfer", contact_id=first, to_queue="Sales")
    assert reply["ok"] and reply["queue"] == "sales" and reply["state"] == "AfterCallWork", reply
    second = reply["new_contact_id"]
    offer = bob.wait_for(lambda t, o: t.endswith("/agent/bob/offer") and o.get("contact_id") == second, 10,
                         "the transferred call's offer to bob")
    assert (offer["queue"], offer["initiation_method"], offer["previous_contact_id"]) == ("sales", "TRANSFER", first)
    assert bob.command("accept", contact_id=second)["ok"]
    in_state(bob, "OnCall", second)
    both_ways(rig, bob, gsm1, second)

    gsm1.hangup()
    in_state(bob, "AfterCallWork", second)
    leg1, leg2 = ended(rig, first), ended(rig, second)
    assert (leg1["initiation_method"], leg1["agent_id"], leg1["disconnect_reason"]) == ("INBOUND", "alice", "transferred")
    assert leg1["connected_to_agent_at"] < leg1["agent_interaction_end_at"] == leg1["ended_at"]
    assert (leg2["initiation_method"], leg2["previous_contact_id"], leg2["queue_id"], leg2["agent_id"]) == \
        ("TRANSFER", first, "sales", "bob")
    assert leg2["caller"] == "+15551230002" and leg2["disconnect_reason"] == "customer_hung_up"
    assert leg1["ended_at"] <= leg2["enqueued_at"] < leg2["connected_to_agent_at"] < leg2["agent_interaction_end_at"]
    for agent in (alice, bob):
        assert agent.command("offline")["ok"]


def test_a_queued_callback_end_to_end(rig):
    alice, gsm1, gsm2 = rig["alice"], rig["gsm1"], rig["gsm2"]
    caller = "+15551230003"
    assert alice.command("offline")["ok"]
    gsm1.ring(caller)
    assert gsm1.wait_for_state("active", 10)
    time.sleep(1.0)                                         # the customer queue flow asks
    gsm1.send_dtmf("1")
    assert gsm1.wait_for_state("idle", 15), "the flow did not hang up after leaving the callback"
    inbound = next(r for r in records(rig).values() if r["caller"] == caller and r["initiation_method"] == "INBOUND")
    inbound = ended(rig, inbound["contact_id"])
    assert inbound["disconnect_reason"] == "callback_queued" and inbound["queue_id"] == "support"
    callback = next(r for r in records(rig).values() if r["initiation_method"] == "CALLBACK")
    assert (callback["previous_contact_id"], callback["caller"], callback["queue_id"]) == \
        (inbound["contact_id"], caller, "sales")
    cid = callback["contact_id"]

    # first attempt: busy; the callback comes back 2 s later
    gsm2.set_outbound_outcome("busy", alert_after=0.2, after=0.4)
    mark = len(gsm2.transcript)
    assert alice.command("available")["ok"]
    offer = alice.wait_for(lambda t, o: t.endswith("/agent/alice/offer") and o.get("contact_id") == cid, 10,
                           "the callback's offer")
    assert (offer["initiation_method"], offer["callback_number"], offer["queue"]) == ("CALLBACK", caller, "sales")
    assert alice.command("accept", contact_id=cid)["ok"]
    done = progress(alice, cid, "ended", attempt=1)
    assert done["outcome"] == "busy" and done["attempts"] == 2 and done["retry_at"] > done["at"]
    assert dials(gsm2, mark) == [f"ATD{caller};"]
    assert records(rig)[cid]["ended_at"] is None

    # second attempt: answered
    gsm2.set_outbound_outcome("answer", alert_after=0.2, after=0.6)
    mark = len(alice.messages)
    assert alice.command("available")["ok"]
    after(alice, mark, lambda t, o: t.endswith("/agent/alice/offer") and o.get("contact_id") == cid, 10,
          "the callback offered again")
    mark = len(gsm2.transcript)
    assert alice.command("accept", contact_id=cid)["ok"]
    progress(alice, cid, "answered", attempt=2)
    assert dials(gsm2, mark) == [f"ATD{caller};"] and gsm2.call_info()["number"] == caller
    both_ways(rig, alice, gsm2, cid)
    gsm2.hangup()
    progress(alice, cid, "ended", attempt=2)
    rec = ended(rig, cid)
    assert (rec["agent_id"], rec["line_id"], rec["disconnect_reason"]) == ("alice", "gsm2", "customer_hung_up")
    assert rec["previous_contact_id"] == inbound["contact_id"] and rec["enqueued_at"] >= inbound["ended_at"]
    assert rec["connected_to_agent_at"] < rec["agent_interaction_end_at"]
    assert [a["outcome"] for a in rec["attributes"]["callback"]["attempts"]] == ["busy", "answered"]
    assert alice.command("offline")["ok"]
