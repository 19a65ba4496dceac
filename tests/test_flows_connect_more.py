"""Flow attributes, contact tags, Wait, moving a waiting caller to another queue, and flow modules
(gateway/flows/blocks/connect_more.py): each block on each of its branches on a ManualClock, the scope of
flow attributes, modules called, returning, failing and guarded against recursion, tags in a real contact
record, and the real flows that use these blocks."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from gateway.center.queues import QueueConfig
from gateway.center.records import COLUMNS, SCHEMA_VERSION, ContactStore
from gateway.center.router import Center
from gateway.clock import SYSTEM_CLOCK, ManualClock
from gateway.contact import ContactSession
from gateway.flows.blocks.connect_more import MAX_MODULE_DEPTH, module_key
from gateway.flows.interpreter import run_flow
from gateway.flows.library import FlowLibrary
from gateway.flows.simulate import Setting, rehearse
from gateway.flows.validate import validate_flow_text
from gateway.modem.line import Call
from tests.test_flows_queue_flow import AGENTS, PhoneLine, ToneSpeech

REAL = Path(__file__).parents[2] / "shared" / "flows" / "real"
SETTINGS = {"InputParameters": [], "OutputParameters": [],
            "Transitions": [{"DisplayName": "Success", "ReferenceName": "Success", "Description": ""},
                            {"DisplayName": "Error", "ReferenceName": "Error", "Description": ""}]}
MODULE_ARN = "arn:aws:connect:us-east-1:123456789012:instance/5368a448-63ff-59f7-8af0-72879fba52f5/flow-module/"
UUID = "f7ad220d-dae2-5c5c-9c66-7cc26af52ef7"


def act(ident, type_, params=None, next_action=None, errors=(), conditions=(), operator="Equals"):
    transitions = {"Errors": [{"ErrorType": e, "NextAction": t} for e, t in errors],
                   "Conditions": [{"NextAction": t, "Condition": {"Operator": operator, "Operands": [k]}}
                                  for k, t in conditions]}
    if next_action:
        transitions["NextAction"] = next_action
    return {"Identifier": ident, "Type": type_, "Parameters": params or {}, "Transitions": transitions}


def doc(*actions, **top):
    return {"Version": "2019-10-30", "StartAction": actions[0]["Identifier"], "Actions": list(actions), **top}


def module(*actions):
    return doc(*actions, Settings=SETTINGS)


def say(ident, text, then="bye"):
    return act(ident, "MessageParticipant", {"Text": text}, then, [("NoMatchingError", then)])


def invoke(ident, module_id, then, error=None, conditions=(), **params):
    return act(ident, "InvokeFlowModule", {"FlowModuleId": module_id, **params}, then,
               [("NoMatchingError", error)] if error else (), conditions)


RETURN = act("return", "EndFlowModuleExecution")
BYE = act("bye", "DisconnectParticipant")


def flow_of(document):
    flow, issues = validate_flow_text(json.dumps(document))
    assert flow is not None, [str(i) for i in issues]
    return flow


def issues_of(document, source="<flow>"):
    _, issues = validate_flow_text(json.dumps(document), source)
    return [(i.severity, i.path, i.message) for i in issues]


def library_of(folder: Path, **documents):
    """Flow files in `folder` (each name.json), read the way the gateway reads its flow folders."""
    folder.mkdir(exist_ok=True)
    for name, document in documents.items():
        (folder / f"{name}.json").write_text(json.dumps(document))
    library = FlowLibrary([folder])
    library.refresh()
    for entry in library.files.values():
        assert entry.valid, [str(i) for i in entry.errors]
    return library.current


class Phone:
    """The caller's side of a call: keys to press, and the queue it waits in (or not)."""

    def __init__(self, keys=(), queues=("support", "sales"), transfer="queued", in_queue=False):
        self.contact_id, self.attributes = "c-1", {"name": "Ann"}
        self.customer_number, self.system_number = "+15550100", "+15550199"
        self.queue_id = self.queue_name = None
        self.keys, self.queues, self.transfer = list(keys), set(queues), transfer
        self.in_queue = in_queue
        self.tags: dict[str, str] = {}
        self.disconnected = False

    async def play(self, samples, *, interruptible):
        return None

    async def get_digit(self, timeout):
        return self.keys.pop(0) if self.keys else None

    def set_queue(self, queue_ref):
        if queue_ref not in self.queues:
            return False
        self.queue_id, self.queue_name = queue_ref, queue_ref.title()
        return True

    async def transfer_to_queue(self):
        return self.transfer

    def add_tags(self, tags):
        self.tags.update(tags)

    async def disconnect(self):
        self.disconnected = True


class Speech:
    def __init__(self):
        self.spoken: list[str] = []

    async def text(self, text, voice="en-us"):
        self.spoken.append(text)
        return np.zeros(80, dtype=np.int16)

    def file(self, path):
        return np.zeros(80, dtype=np.int16)


def run(flow, phone=None, library=None):
    phone, speech, clock = phone or Phone(), Speech(), ManualClock()
    started = clock.monotonic()
    result = asyncio.run(asyncio.wait_for(run_flow(flow, phone, speech, clock=clock, library=library), 5))
    assert clock.monotonic() == started  # none of these blocks waits for the clock
    return result, speech.spoken


def path_of(result):
    return [(s.flow, s.identifier, s.branch) for s in result.path]


# ----------------------------------------------------------------------------- UpdateFlowAttributes

def test_flow_attributes_are_read_in_their_flow_and_left_behind_by_a_transfer_to_another(tmp_path):
    library = library_of(
        tmp_path,
        main=doc(act("set", "UpdateFlowAttributes", {"FlowAttributes": {
                     "greeting": {"Value": "Hello $.Attributes.name"}, "$.Attributes.name": {"Value": "x"}}},
                     "hi", [("NoMatchingError", "bye")]),
                 say("hi", "$.FlowAttributes.greeting / $.FlowAttributes.Ann", "go"),
                 act("go", "TransferToFlow", {"ContactFlowId": "other"}, None, [("NoMatchingError", "bye")]), BYE),
        other=doc(say("there", "[$.FlowAttributes.greeting]"), BYE))
    phone = Phone()
    result, spoken = run(library.get("main"), phone, library)
    assert spoken == ["Hello Ann / x", "[]"]
    assert result.path[0].detail == "Ann, greeting"
    assert phone.attributes == {"name": "Ann"}  # flow attributes are not contact attributes


def test_a_flow_attribute_whose_name_is_empty_takes_the_error_branch():
    set_empty = act("set", "UpdateFlowAttributes", {"FlowAttributes": {"$.Attributes.none": {"Value": "1"},
                                                                       "ok": {"Value": "2"}}},
                    "hi", [("NoMatchingError", "sorry")])
    result, spoken = run(flow_of(doc(set_empty, say("hi", "[$.FlowAttributes.ok]"), say("sorry", "[$.FlowAttributes.ok]"),
                                     BYE)))
    assert [s.branch for s in result.path] == ["NoMatchingError", "next", "disconnected"]
    assert spoken == ["[]"]  # all or none
    assert "flow attribute name \"$.Attributes.none\" is empty" in result.path[0].detail
    del set_empty["Transitions"]["Errors"][0]
    result, _ = run(flow_of(doc(set_empty, say("hi", "hi"), BYE)))
    assert result.outcome == "error" and "has no NoMatchingError branch" in result.error


def test_update_flow_attributes_is_validated():
    def issues(params):
        return [i for i in issues_of(doc(act("set", "UpdateFlowAttributes", params, "bye"), BYE)) if i[0] == "error"]

    assert issues({}) == [("error", "$.Actions[0].Parameters", 'missing FlowAttributes ({"name": {"Value": "text"}})')]
    assert issues({"FlowAttributes": []})[0][1] == "$.Actions[0].Parameters.FlowAttributes"
    assert issues({"FlowAttributes": {"a": "text"}}) == [
        ("error", "$.Actions[0].Parameters.FlowAttributes.a", 'a flow attribute is {"Value": "text"}, found string "text"')]
    assert issues({"FlowAttributes": {"a": {"Value": 5}}}) == [
        ("error", "$.Actions[0].Parameters.FlowAttributes.a.Value", "Value must be text, found number 5")]
    assert issues({"FlowAttributes": {" ": {"Value": "x"}}})[0][2] == "empty flow attribute name"
    found = issues_of(doc(act("set", "UpdateFlowAttributes", {"FlowAttributes": {"a": {"Value": "$.Lex.IntentName",
                                                                                       "Secret": "1"}}}, "hi"),
                          say("hi", "$.FlowAttributes.a $.Modules.Result $.Modules.ResultData.x"), BYE))
    assert ("warning", "$.Actions[0].Parameters.FlowAttributes.a.Secret",
            "'Secret' of a flow attribute is ignored (only Value is read)") in found
    unknown = [m for s, _, m in found if "is not set by callgate" in m]
    assert len(unknown) == 1 and unknown[0].startswith("$.Lex")  # $.FlowAttributes and $.Modules are known


# ----------------------------------------------------------------------------- TagContact

def test_tags_go_on_the_contact_and_into_its_contact_record(tmp_path):
    flow = flow_of(doc(act("tag", "TagContact", {"Tags": {"function": "vmx3", "caller": "$.CustomerEndpoint.Address"}},
                           "again", [("NoMatchingError", "bye")]),
                       act("again", "TagContact", {"Tags": {"function": "voicemail"}}, "bye"), BYE))

    async def call():
        store = ContactStore(tmp_path / "contacts.db")
        line = PhoneLine()
        session = ContactSession(line, Call("c-tags", "gsm1", "inbound", "+15551230002", time.time()), flow=flow,
                                 prompts=ToneSpeech(), center=Center([QueueConfig("support", "Support")], AGENTS),
                                 store=store, recording_dir=None, clock=SYSTEM_CLOCK)
        line.session = session
        await asyncio.wait_for(session.run(), 5)
        return session, store

    session, store = asyncio.run(call())
    assert session.tags == {"function": "voicemail", "caller": "+15551230002"}
    assert store.get("c-tags")["tags"] == {"function": "voicemail", "caller": "+15551230002"}
    steps = store.get("c-tags")["flow_path"]
    assert [(s["id"], s["branch"]) for s in steps] == [("tag", "next"), ("again", "next"), ("bye", "disconnected")]
    store.close()
    reopened = ContactStore(tmp_path / "contacts.db")  # the tags are in the file, not in memory
    assert reopened.get("c-tags")["tags"]["function"] == "voicemail"
    reopened.close()


def test_tags_out_of_connects_limits_once_filled_in_take_the_error_branch_and_set_none():
    phone = Phone()
    phone.attributes.update(team="aws:sales", long="x" * 257)
    for tags in ({"ok": "1", "$.Attributes.team": "x"}, {"ok": "1", "note": "$.Attributes.long"},
                 {"ok": "1", "$.Attributes.none": "x"}):
        result, _ = run(flow_of(doc(act("tag", "TagContact", {"Tags": tags}, "bye", [("NoMatchingError", "bye")]),
                                    BYE)), phone)
        assert result.path[0].branch == "NoMatchingError" and result.path[0].detail.startswith("no tag set: ")
        assert phone.tags == {}
    result, _ = run(flow_of(doc(act("tag", "TagContact", {"Tags": {"team": "$.Attributes.name"}}, "bye"), BYE)), phone)
    assert phone.tags == {"team": "Ann"} and result.path[0].detail == "team=Ann"


def test_tags_on_a_contact_that_keeps_none_go_on_and_say_so():
    class Texting(Phone):
        channel = "SMS"
        add_tags = None

        async def send_text(self, text):
            pass

    result, _ = run(flow_of(doc(act("tag", "TagContact", {"Tags": {"a": "b"}}, "bye"), BYE)), Texting())
    assert result.path[0].branch == "next"
    assert result.path[0].detail == "a=b (tags are not kept on the SMS channel)"


def test_tag_contact_is_validated():
    def errors(tags):
        return [(p, m) for s, p, m in issues_of(doc(act("tag", "TagContact", {"Tags": tags}, "bye"), BYE))
                if s == "error"]

    where = "$.Actions[0].Parameters.Tags"
    assert errors({f"k{i}": "v" for i in range(7)}) == [(where, "7 tags; one TagContact sets at most 6")]
    assert errors({"aws:team": "x"}) == [(f'{where}["aws:team"]',
                                          "tag keys starting 'aws:' are system tags; a flow cannot set them")]
    assert errors({"k" * 129: "x"})[0][1] == "a tag key is 1-128 characters, found 129"
    assert errors({"k": "v" * 257}) == [(f"{where}.k", "a tag value is at most 256 characters, found 257")]
    assert errors({"k": 1}) == [(f"{where}.k", "a tag value must be text, found number 1")]
    assert errors({}) == [(where, 'Tags must be an object such as {"department": "sales"}, found an empty object')]
    assert errors({f"k{i}": "v" for i in range(6)} | {"$.Attributes.k": "$.Attributes.v" * 30}) == [
        (where, "7 tags; one TagContact sets at most 6")]  # filled-in keys and values are checked as the flow runs


def test_a_version_3_store_from_before_tags_gains_the_column(tmp_path):
    path = tmp_path / "v3.db"
    db = sqlite3.connect(str(path))
    columns = [c for c in COLUMNS if c not in ("contact_id", "tags")]
    db.executescript(f"CREATE TABLE contacts (contact_id TEXT PRIMARY KEY, {', '.join(c + ' TEXT' for c in columns)});"
                     "INSERT INTO contacts (contact_id, caller) VALUES ('old', '+4930'); PRAGMA user_version=3;")
    db.close()
    store = ContactStore(path)
    store.upsert("old", tags={"function": "vmx3"})
    assert store.get("old")["caller"] == "+4930" and store.get("old")["tags"] == {"function": "vmx3"}
    store.close()
    assert sqlite3.connect(str(path)).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


# ----------------------------------------------------------------------------- Wait

WAIT = act("wait", "Wait", {"TimeLimitSeconds": "900", "Events": ["CustomerReturned"]}, "bye",
           [("NoMatchingError", "error")], [("WaitCompleted", "expired"), ("CustomerReturned", "back")])


def test_wait_takes_its_error_branch_at_once_on_a_call_and_on_sms():
    flow = flow_of(doc(WAIT, say("error", "error"), say("expired", "expired"), say("back", "back"), BYE))
    result, spoken = run(flow)
    assert path_of(result)[0] == (None, "wait", "NoMatchingError") and spoken == ["error"]
    assert "Amazon Connect takes a voice contact to Wait's Error branch" in result.path[0].detail

    class Texting(Phone):
        channel = "SMS"

        async def send_text(self, text):
            self.sent.append(text)

    texting = Texting()
    texting.sent = []
    result, _ = run(flow, texting)
    assert result.path[0].branch == "NoMatchingError" and texting.sent == ["error"]
    no_branch = json.loads(json.dumps(WAIT))
    no_branch["Transitions"]["Errors"] = []
    result, _ = run(flow_of(doc(no_branch, say("expired", "expired"), say("back", "back"), BYE)))
    assert result.outcome == "error" and "'wait' (Wait) has no NoMatchingError branch" in result.error


def test_wait_is_validated_as_connect_defines_it():
    def found(params, conditions=("WaitCompleted", "CustomerReturned"), operator="Equals"):
        action = act("wait", "Wait", params, None, [("NoMatchingError", "bye")], [(c, "bye") for c in conditions],
                     operator)
        return [(s, p, m) for s, p, m in issues_of(doc(action, BYE))]

    ok = {"TimeoutSeconds": "$.Attributes.seconds", "Events": ["CustomerReturned"]}
    assert [s for s, _, _ in found(ok)] == ["warning"]  # it never waits here
    assert found(ok)[0][2].endswith("(for its voice calls and SMS): it never waits here")
    P = "$.Actions[0].Parameters"
    assert ("error", P, "give TimeoutSeconds or TimeLimitSeconds, not both") in found(
        {"TimeoutSeconds": "5", "TimeLimitSeconds": "5"})
    assert ("error", P, "missing TimeoutSeconds (how long to wait, at most 604800 s; the designer writes "
                        "TimeLimitSeconds)") in found({})
    for bad in ("0", "604801", "1.5", "soon"):
        assert ("error", f"{P}.TimeoutSeconds", f"TimeoutSeconds must be a whole number of seconds 1-604800, found "
                                                f"string {json.dumps(bad)}") in found({"TimeoutSeconds": bad})
    assert ("error", f"{P}.Events[0]", "no Wait event 'CustomerLeft' (Connect's are CustomerReturned, "
                                       "BotParticipantDisconnected)") in found({"TimeoutSeconds": "5",
                                                                                "Events": ["CustomerLeft"]})
    assert ("error", "$.Actions[0].Transitions.Conditions", "Wait needs a condition Equals CustomerReturned") in found(
        {"TimeoutSeconds": "5", "Events": ["CustomerReturned"]}, conditions=("WaitCompleted",))
    assert ("error", "$.Actions[0].Transitions.Conditions", "Wait needs a condition Equals WaitCompleted") in found(
        {"TimeoutSeconds": "5"}, conditions=())
    assert any(p == "$.Actions[0].Transitions.Conditions[0].Condition" for _, p, _ in found(
        {"TimeoutSeconds": "5"}, conditions=("WaitCompleted",), operator="TextContains"))


# ----------------------------------------------------------------------------- DequeueContactAndTransferToQueue

def dequeue(queue="sales", errors=(("QueueAtCapacity", "full"), ("NoMatchingError", "sorry"))):
    return act("move", "DequeueContactAndTransferToQueue", {"QueueId": queue}, None, errors)


def test_dequeue_moves_the_waiting_caller_to_another_queue_keeping_its_wait(tmp_path):
    waiting_flow = doc(act("which", "Compare", {"ComparisonValue": "$.Queue.Name"}, None,
                           [("NoMatchingCondition", "move")], [("Sales", "done")]),
                       dequeue(), say("full", "full", "done"), say("sorry", "sorry", "done"),
                       act("done", "EndFlowExecution"))
    main = doc(act("queue", "UpdateContactTargetQueue", {"QueueId": "support"}, "hook"),
               act("hook", "UpdateContactEventHooks", {"EventHooks": {"CustomerQueue": "waiting"}}, "go"),
               act("go", "TransferContactToQueue", {}, None, [("QueueAtCapacity", "bye")]), BYE)
    library = library_of(tmp_path / "flows", main=main, waiting=waiting_flow)
    center = Center([QueueConfig("support", "Support"), QueueConfig("sales", "Sales")], AGENTS, clock=SYSTEM_CLOCK)
    store = ContactStore(tmp_path / "contacts.db")

    async def call():
        line = PhoneLine()
        session = ContactSession(line, Call("c-me", "gsm1", "inbound", "+15551230002", time.time()),
                                 flow=library.get("main"), prompts=ToneSpeech(), center=center, store=store,
                                 recording_dir=None, clock=SYSTEM_CLOCK, library=library)
        line.session = session
        task = asyncio.create_task(session.run())
        deadline = time.monotonic() + 5
        while session._queue_task is None or not session._queue_task.done():
            assert time.monotonic() < deadline, "the customer queue flow did not end"
            await asyncio.sleep(0.01)
        sales = center.queue_view("sales")["contacts"]
        session.ended("customer_hung_up")
        await asyncio.wait_for(task, 5)
        return session, sales

    session, sales = asyncio.run(call())
    record = store.get("c-me")
    assert [c["contact_id"] for c in sales] == ["c-me"] and center.queue_view("support")["depth"] == 0
    assert sales[0]["waiting_since"] == record["enqueued_at"]  # the wait began in support and goes on
    assert record["queue_id"] == "sales" and session.queue_name == "Sales"
    queue_steps = [(s["id"], s["branch"]) for s in record["flow_path"] if s.get("hook") == "CustomerQueue"]
    assert queue_steps == [("which", "NoMatchingCondition"), ("move", "queued"),      # sales' queue flow starts
                           ("which", "condition:Sales"), ("done", "ended")]
    store.close()


def test_dequeue_at_capacity_keeps_the_caller_and_its_working_queue_where_they_were():
    flow = flow_of(doc(dequeue(), say("full", "full"), say("sorry", "sorry"), BYE))
    phone = Phone(transfer="at_capacity", in_queue=True)
    phone.set_queue("support")
    result, spoken = run(flow, phone)
    assert path_of(result)[0] == (None, "move", "QueueAtCapacity") and spoken == ["full"]
    assert (phone.queue_id, phone.queue_name) == ("support", "Support")
    assert result.path[0].detail == "queue Sales is at capacity"


@pytest.mark.parametrize("queue, in_queue, transfer, why", [
    ("sales", False, "queued", "the caller is not waiting in a queue (this block runs in a customer queue flow)"),
    ("nowhere", True, "queued", "unknown queue 'nowhere'"),
    ("$.Attributes.none", True, "queued", 'QueueId "$.Attributes.none" is empty'),
    ("sales", True, "no_queue", "the caller no longer waits in a queue (an agent is taking the call)"),
])
def test_dequeue_takes_its_error_branch(queue, in_queue, transfer, why):
    phone = Phone(transfer=transfer, in_queue=in_queue)
    result, spoken = run(flow_of(doc(dequeue(queue), say("full", "full"), say("sorry", "sorry"), BYE)), phone)
    assert path_of(result)[0] == (None, "move", "NoMatchingError") and spoken == ["sorry"]
    assert result.path[0].detail == why


def test_dequeue_is_validated():
    def found(params, errors=(("QueueAtCapacity", "bye"),)):
        return issues_of(doc(act("move", "DequeueContactAndTransferToQueue", params, None, errors), BYE))

    P = "$.Actions[0].Parameters"
    assert found({}) == [("error", P, "missing QueueId (the queue to move the waiting caller to)")]
    assert found({"AgentId": "a1"}) == [("error", f"{P}.AgentId",
                                         "agent queues (AgentId) are not supported here; use QueueId")]
    assert found({"QueueId": "$.Attributes.a-$.Attributes.b"}) == [
        ("error", f"{P}.QueueId", 'QueueId must be static or one reference, found "$.Attributes.a-$.Attributes.b"')]
    assert found({"QueueId": "sales"}, errors=(("NoMatchingError", "bye"),)) == [
        ("warning", "$.Actions[0].Transitions.Errors", "no QueueAtCapacity branch: a full queue ends the flow with "
                                                       "an error")]


# ----------------------------------------------------------------------------- flow modules

def test_a_module_runs_for_the_call_and_returns_to_the_next_action(tmp_path):
    library = library_of(
        tmp_path,
        main=doc(invoke("call", "greet", "after", "sorry", Input={"who": "$.Attributes.name", "n": 2}),
                 say("after", "back [$.Modules.Result] [$.Modules.Input.who] $.Attributes.seen"),
                 say("sorry", "sorry"), BYE),
        greet=module(say("hi", "Hi $.Modules.Input.who, $.Modules.Input.n", "mark"),
                     act("mark", "UpdateContactAttributes", {"Attributes": {"seen": "yes"}}, "return"), RETURN))
    phone = Phone()
    result, spoken = run(library.get("main"), phone, library)
    assert spoken == ["Hi Ann, 2", "back [] [] yes"]
    assert path_of(result) == [(None, "call", "invoked"), ("greet", "hi", "next"), ("greet", "mark", "next"),
                               ("greet", "return", "returned"), (None, "after", "next"), (None, "bye", "disconnected")]
    assert result.path[0].detail == "module greet with n, who"
    assert result.path[3].detail == "back in main at 'call'"
    assert phone.attributes["seen"] == "yes"  # the contact is shared


def test_a_modules_result_picks_the_invoking_blocks_branch_and_its_result_data_reaches_the_caller(tmp_path):
    def returning(result):
        return module(act("return", "EndFlowModuleExecution", {"Result": result,
                                                              "ResultData": {"tier": "gold", "n": 3}}))

    main = doc(invoke("call", "check", "plain", "sorry", conditions=[("vip", "vip")]),
               say("vip", "$.Modules.Result $.Modules.ResultData.tier $.Modules.ResultData.n"),
               say("plain", "plain"), say("sorry", "sorry"), BYE)
    library = library_of(tmp_path / "a", main=main, check=returning("vip"))
    result, spoken = run(library.get("main"), Phone(), library)
    assert spoken == ["vip gold 3"] and result.path[1].branch == "condition:vip"
    library = library_of(tmp_path / "b", main=main, check=returning("$.Attributes.name"))
    result, spoken = run(library.get("main"), Phone(), library)
    assert result.outcome == "error" and spoken == []
    assert result.path[1].detail == ("action 'return' (EndFlowModuleExecution) has no NoMatchingCondition branch: back "
                                     "in main at 'call': it has no condition for Result \"Ann\" and no "
                                     "NoMatchingCondition branch")
    main["Actions"][0]["Transitions"]["Errors"].append({"ErrorType": "NoMatchingCondition", "NextAction": "plain"})
    library = library_of(tmp_path / "c", main=main, check=returning("other"))
    result, spoken = run(library.get("main"), Phone(), library)
    assert spoken == ["plain"] and result.path[1].branch == "NoMatchingCondition"


def test_a_module_has_flow_local_data_of_its_own(tmp_path):
    library = library_of(
        tmp_path,
        main=doc(act("set", "UpdateFlowAttributes", {"FlowAttributes": {"x": {"Value": "caller's"}}}, "call"),
                 invoke("call", "inner", "after", "bye", Input={"y": "$.FlowAttributes.x"}),
                 say("after", "$.FlowAttributes.x / [$.Modules.Input.y]"), BYE),
        inner=module(say("look", "[$.FlowAttributes.x] $.Modules.Input.y", "set"),
                     act("set", "UpdateFlowAttributes", {"FlowAttributes": {"x": {"Value": "module's"}}}, "show"),
                     say("show", "$.FlowAttributes.x", "return"), RETURN))
    _, spoken = run(library.get("main"), Phone(), library)
    assert spoken == ["[] caller's", "module's", "caller's / []"]


def test_a_failing_module_takes_the_invoking_blocks_error_branch(tmp_path):
    failing = module(act("cmp", "Compare", {"ComparisonValue": "$.Attributes.name"}, None, (), [("Bob", "return")]),
                     RETURN)
    library = library_of(tmp_path / "a", main=doc(invoke("call", "failing", "bye", "sorry"), say("sorry", "sorry"),
                                                  BYE), failing=failing)
    result, spoken = run(library.get("main"), Phone(), library)
    assert spoken == ["sorry"] and result.outcome == "disconnected"
    assert path_of(result)[:3] == [(None, "call", "invoked"), ("failing", "cmp", "error"),
                                   (None, "call", "NoMatchingError")]
    assert result.path[2].detail == ("module failing failed: action 'cmp' (Compare) has no NoMatchingCondition "
                                     "branch: value \"Ann\"")
    library = library_of(tmp_path / "b", main=doc(invoke("call", "failing", "bye"), BYE), failing=failing)
    result, _ = run(library.get("main"), Phone(), library)
    assert result.outcome == "error" and path_of(result)[-1] == (None, "call", "error")
    assert result.error.startswith("action 'call' (InvokeFlowModule) has no NoMatchingError branch: module failing "
                                   "failed: action 'cmp' (Compare)")


def test_a_missing_module_or_a_flow_in_its_place_takes_the_error_branch(tmp_path):
    library = library_of(tmp_path, main=doc(invoke("a", "nope", "b", "b"), invoke("b", "plain", "bye", "bye"), BYE),
                         plain=doc(BYE))
    result, _ = run(library.get("main"), Phone(), library)
    assert [(s.branch, s.detail) for s in result.path[:2]] == [
        ("NoMatchingError", "no flow module 'nope'"),
        ("NoMatchingError", "'plain' is a flow, not a flow module (a module has a top-level Settings object); a flow "
                            "is run with TransferToFlow")]
    result, _ = run(library.get("main"), Phone(), None)  # no flow folder at all
    assert result.path[0].branch == "NoMatchingError"


def test_a_module_is_found_by_its_arn_with_a_version_or_alias(tmp_path):
    assert module_key(f"{MODULE_ARN}{UUID}:$LATEST") == module_key(f"{MODULE_ARN}{UUID}") == f"{MODULE_ARN}{UUID}"
    assert module_key(f"{UUID}:prod") == UUID and module_key("greeting:v2") == "greeting:v2"
    library = library_of(tmp_path, main=doc(invoke("a", f"{MODULE_ARN}{UUID}:$LATEST", "b", "bye"),
                                            invoke("b", f"{UUID}:1", "bye", "bye"), BYE),
                         **{UUID: module(say("hi", "hi", "return"), RETURN)})
    result, spoken = run(library.get("main"), Phone(), library)
    assert spoken == ["hi", "hi"] and [s.branch for s in result.path].count("returned") == 2


def test_modules_do_not_recurse_and_nest_at_most_eight_deep(tmp_path):
    again = module(invoke("again", "again", "return", "refused"), say("refused", "no recursion", "return"), RETURN)
    library = library_of(tmp_path / "a", main=doc(invoke("call", "again", "bye", "bye"), BYE), again=again)
    result, spoken = run(library.get("main"), Phone(), library)
    assert spoken == ["no recursion"] and result.outcome == "disconnected"
    assert result.path[1].detail == "module 'again' is already running (main -> again -> again): modules do not recurse"
    chain = {f"m{i}": module(invoke("next", f"m{i + 1}", "return", "deep"), say("deep", f"too deep at {i}", "return"),
                             RETURN) for i in range(MAX_MODULE_DEPTH + 1)}
    library = library_of(tmp_path / "b", main=doc(invoke("call", "m0", "bye", "bye"), BYE), **chain)
    result, spoken = run(library.get("main"), Phone(), library)
    assert spoken == [f"too deep at {MAX_MODULE_DEPTH - 1}"] and result.outcome == "disconnected"
    assert [s.branch for s in result.path].count("returned") == MAX_MODULE_DEPTH
    refused = next(s for s in result.path if s.branch == "NoMatchingError")
    assert refused.flow == f"m{MAX_MODULE_DEPTH - 1}" and refused.detail.startswith("modules nested 8 deep (main -> m0")


def test_a_module_that_hangs_up_or_transfers_does_not_come_back(tmp_path):
    library = library_of(
        tmp_path,
        main=doc(invoke("call", "$.Attributes.module", "after", "sorry"), say("after", "after"), say("sorry", "sorry"),
                 BYE),
        hangs_up=module(act("bye", "DisconnectParticipant"), RETURN),
        transfers=module(act("go", "TransferToFlow", {"ContactFlowId": "other"}), RETURN),
        other=doc(act("cmp", "Compare", {"ComparisonValue": "$.Attributes.name"}, None, (), [("Bob", "bye")]), BYE))
    phone = Phone()
    phone.attributes["module"] = "hangs_up"
    result, spoken = run(library.get("main"), phone, library)
    assert result.outcome == "disconnected" and phone.disconnected and spoken == []
    assert path_of(result)[-1] == ("hangs_up", "bye", "disconnected")
    phone.attributes["module"] = "transfers"
    result, spoken = run(library.get("main"), phone, library)
    assert result.outcome == "error" and spoken == []  # the failure in 'other' does not go back to main's branch
    assert path_of(result)[-2:] == [("transfers", "go", "transferred"), ("other", "cmp", "error")]


def test_a_module_run_on_its_own_ends_at_its_return():
    result, spoken = run(flow_of(module(say("hi", "hi", "return"), RETURN)))
    assert result.outcome == "ended" and spoken == ["hi"]
    assert result.path[-1].detail == "the module returned; no flow invoked it"


def test_modules_are_validated(tmp_path):
    assert issues_of(doc(say("hi", "hi", "return"), RETURN)) == [
        ("error", "$.Actions[1]", 'EndFlowModuleExecution (the Return block) is only available in a flow module: a '
                                  'module has a top-level Settings object, such as {"InputParameters": [], '
                                  '"OutputParameters": [], "Transitions": []}')]
    assert ("error", "$.Settings", "Settings (of a flow module) must be an object, found a list") in issues_of(
        doc(RETURN, Settings=[]))
    bad_return = act("return", "EndFlowModuleExecution", {"Result": 7, "ResultData": "x"})
    assert [p for s, p, _ in issues_of(module(bad_return)) if s == "error"] == [
        "$.Actions[0].Parameters.Result", "$.Actions[0].Parameters.ResultData"]
    call = invoke("call", "m", "bye", conditions=[("vip", "bye")], Input=[])
    call["Transitions"]["Conditions"][0]["Condition"]["Operator"] = "TextContains"
    found = issues_of(doc(call, BYE))
    assert sorted((s, p) for s, p, _ in found) == [("error", "$.Actions[0].Parameters.Input"),
                                                   ("error", "$.Actions[0].Transitions.Conditions[0].Condition"),
                                                   ("warning", "$.Actions[0].Transitions.Errors")]
    assert issues_of(doc(act("call", "InvokeFlowModule", {}, "bye", [("NoMatchingError", "bye")]), BYE)) == [
        ("error", "$.Actions[0].Parameters", "missing FlowModuleId (the module to run: its file name, Metadata name, "
                                             "id or ARN)")]
    # a module named statically is looked for among the flow files, as TransferToFlow's flows are
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "main.json").write_text(json.dumps(doc(invoke("a", "greet", "b", "bye"),
                                                     invoke("b", f"{MODULE_ARN}{UUID}:3", "bye", "bye"), BYE)))
    (folder / f"{UUID}.json").write_text(json.dumps(module(RETURN)))
    library = FlowLibrary([folder])
    library.refresh()
    warned = [(i.path, i.message) for i in library.file(folder / "main.json").issues]
    assert warned == [("$.Actions[0].Parameters.FlowModuleId", f"no flow file matches FlowModuleId 'greet' (flows "
                                                               f"here: {UUID}, main); the block takes its error branch")]


def test_media_streaming_is_refused_with_the_reason():
    stream = act("s", "UpdateContactMediaStreamingBehavior", {"MediaStreamingState": "Enabled"}, "bye")
    [(severity, path, message)] = [i for i in issues_of(doc(stream, BYE)) if i[0] == "error"]
    assert (severity, path) == ("error", "$.Actions[0]")
    assert message.startswith("not supported here: UpdateContactMediaStreamingBehavior at $.Actions[0]: it streams "
                              "the caller's audio to Amazon Kinesis Video Streams")
    assert "Callgate.RecordVoicemail" in message


# ----------------------------------------------------------------------------- real flows

def test_voicemail_express_core_module_runs_from_a_flow_in_a_rehearsal(tmp_path):
    """The vmx3 core module (shared/flows/real/17): its flow attribute names the webhook it calls, it tags the
    contact, records, and ends the call."""
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(REAL / "17-vmx3-voicemail-core-module.json", folder / "vmx3-core.json")
    (folder / "main.json").write_text(json.dumps(doc(invoke("vm", "vmx3-core", "bye", "bye"), BYE)))
    library = FlowLibrary([folder])
    library.refresh()
    setting = Setting(webhook_reply=b'{"vmx3_timestamp": "2026-03-10T10:00:00Z"}',
                      webhooks={"VMX3-TimeStamper": "http://127.0.0.1:9/timestamp"})
    rehearsal = asyncio.run(rehearse(library.get("main"), setting=setting, library=library.current))
    data = rehearsal.as_dict()
    assert data["outcome"] == "disconnected" and data["tags"] == {"function": "vmx3"}
    assert data["attributes"]["vmx3_flag"] == "1" and data["attributes"]["vmx3_timestamp"] == "2026-03-10T10:00:00Z"
    steps = {s["id"]: s for s in data["steps"]}
    assert steps["vm"]["branch"] == "invoked" and "flow" not in steps["vm"]
    assert steps["Set Timestamp Function"]["flow"] == "vmx3-core"
    webhook = [e["text"] for s in data["steps"] for e in s["events"] if e["kind"] == "webhook"]
    assert len(webhook) == 1 and webhook[0].startswith("POST http://127.0.0.1:9/timestamp")
    notes = [e["text"] for e in steps["Set vmx3 tag"]["events"]]
    assert notes == ["contact tagged function=vmx3"]
    assert data["steps"][-1]["id"] == "***End Call***" and data["steps"][-1]["flow"] == "vmx3-core"


def test_sample_disconnect_flows_wait_goes_to_its_error_branch():
    """shared/flows/real/05 (Connect's stock sample): its Wait, for chat, runs here and takes the Error branch."""
    flow, issues = validate_flow_text((REAL / "05-sample-disconnect-wait.json").read_text(),
                                      str(REAL / "05-sample-disconnect-wait.json"))
    assert flow is not None
    assert [i.identifier for i in issues if "it never waits here" in i.message] == [
        "cc927fd6-a3fd-437a-81d3-c38a5130468d"]
    wait = flow.actions["cc927fd6-a3fd-437a-81d3-c38a5130468d"]
    single = json.loads((REAL / "05-sample-disconnect-wait.json").read_text())
    single["StartAction"] = wait.identifier
    result, _ = run(flow_of(single))
    assert result.path[0].branch == "NoMatchingError"
    assert result.path[1].identifier == wait.errors["NoMatchingError"]
