"""Blocks that ask the gateway about the world: hours of operation, queue metrics, routing priority and
age, webhooks (InvokeLambdaFunction against a real local HTTP server) and Callgate.SendSms.

Calls are real ContactSessions on a real Center and ContactStore; only the modem line under them is a
stand-in (it records the SMS it is asked to send). Time is a ManualClock."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from gateway.center.agents import AgentConfig
from gateway.center.hours import HoursOfOperation, Override
from gateway.center.passwords import hash_password
from gateway.center.queues import QueueConfig, WaitingContact
from gateway.center.records import ContactStore
from gateway.center.router import Center
from gateway.clock import ManualClock
from gateway.config import ConfigError, load_config
from gateway.contact import ContactSession
from gateway.flows.blocks import external
from gateway.flows.blocks.routing_checks import METRIC_REFERENCES
from gateway.flows.interpreter import run_flow
from gateway.flows.model import METRICS_REFERENCES
from gateway.flows.services import FlowServices
from gateway.flows.validate import validate_flow_text
from gateway.flows.webhook import Webhooks
from gateway.modem.line import Call
from gateway.sms_contact import SmsContact
from gateway.transport.http_client import post_json

OFFICE = HoursOfOperation("office", "Europe/Berlin", {d: ["08:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                          [Override(date(2026, 12, 24), date(2026, 12, 24), (), "Christmas Eve")])
NIGHT = HoursOfOperation("night", "Europe/Berlin", {d: ["20:00-06:00"] for d in ("mon", "tue", "wed", "thu", "fri")})
PASSWORD = "pw"
HASH = hash_password(PASSWORD, iterations=1000)
TEST_TIMEOUT = 10.0


# --- flows written in the test -----------------------------------------------------------------------
def act(ident, type_, params=None, next_action=None, conditions=(), errors=None):
    transitions = {}
    if next_action:
        transitions["NextAction"] = next_action
    if conditions:
        transitions["Conditions"] = [{"NextAction": target, "Condition": {"Operator": op, "Operands": [value]}}
                                     for op, value, target in conditions]
    if errors:
        transitions["Errors"] = [{"NextAction": target, "ErrorType": kind} for kind, target in errors.items()]
    return {"Identifier": ident, "Type": type_, "Parameters": params or {}, "Transitions": transitions}


def ends():
    """Terminal actions every test flow can branch to."""
    return [act(name, "EndFlowExecution") for name in ("open", "closed", "error", "done", "nomatch")]


def check(*actions, start=None):
    doc = {"Version": "2019-10-30", "StartAction": start or actions[0]["Identifier"],
           "Actions": [*actions, *ends()]}
    flow, issues = validate_flow_text(json.dumps(doc), "<test>")
    return flow, [i for i in issues if not i.message.startswith("unreachable")]  # the unused end actions


def build(*actions, start=None):
    flow, issues = check(*actions, start=start)
    assert flow is not None, [str(i) for i in issues]
    return flow


def hours_check(ref=None):
    params = {"HoursOfOperationId": ref} if ref else {}
    return act("hours", "CheckHoursOfOperation", params, conditions=[("Equals", "True", "open"),
                                                                     ("Equals", "False", "closed")],
               errors={"NoMatchingError": "error"})


class Prompts:
    def __init__(self):
        self.spoken: list[str] = []

    async def text(self, text, voice="en-us"):
        self.spoken.append(text)
        return np.zeros(80, dtype=np.int16)

    def file(self, path):
        raise AssertionError("no prompt files here")


class Caller:
    """A call with nothing but a number, what it was told, and the gateway's services (hours, webhooks)."""

    def __init__(self, services=None, queue=None):
        self.contact_id, self.attributes = "c-1", {}
        self.customer_number, self.system_number = "+15550100", "+15550199"
        self.queue_name, self.queue_id, self.services = queue, queue, services

    async def play(self, samples, *, interruptible):
        return None

    async def get_digit(self, timeout):
        return None

    def set_queue(self, queue_ref):
        self.queue_name = self.queue_id = queue_ref
        return True

    async def transfer_to_queue(self):
        return "queued"

    async def disconnect(self):
        pass


def run(flow, contact, *, at=None, clock=None, prompts=None):
    clock = clock or ManualClock(start=at if at is not None else 1_764_614_400.0)
    coro = run_flow(flow, contact, prompts or Prompts(), clock=clock)
    return asyncio.run(asyncio.wait_for(coro, TEST_TIMEOUT))


def last(result):
    return result.path[-2] if len(result.path) > 1 else result.path[-1]


# --- CheckHoursOfOperation ----------------------------------------------------------------------------
SERVICES = FlowServices({"office": OFFICE, "night": NIGHT}, {"support": "office"})


@pytest.mark.parametrize("when, branch, target", [
    ("2026-12-17T10:00", "condition:True", "open"),          # a Thursday, in hours
    ("2026-12-17T07:59", "condition:False", "closed"),       # before opening
    ("2026-12-17T17:00", "condition:False", "closed"),       # the end is not in hours
    ("2026-12-19T10:00", "condition:False", "closed"),       # Saturday
])
def test_hours_by_name_at_injected_times(when, branch, target):
    result = run(build(hours_check("office")), Caller(SERVICES), at=OFFICE.epoch(when))
    step = result.path[0]
    assert (step.branch, result.path[1].identifier) == (branch, target)
    assert "Europe/Berlin" in step.detail and when[11:] in step.detail


def test_holiday_override_is_out_of_hours_and_named():
    result = run(build(hours_check("office")), Caller(SERVICES), at=OFFICE.epoch("2026-12-24T10:00"))
    assert result.path[0].branch == "condition:False" and result.path[1].identifier == "closed"
    assert "closed (Christmas Eve)" in result.path[0].detail and "opens" in result.path[0].detail


def test_overnight_hours_and_an_arn_naming_the_schedule():
    arn = "arn:aws:connect:us-east-1:123456789012:instance/abc/operating-hours/night"
    flow = build(hours_check(arn))
    assert run(flow, Caller(SERVICES), at=NIGHT.epoch("2026-12-18T02:00")).path[0].branch == "condition:True"
    assert run(flow, Caller(SERVICES), at=NIGHT.epoch("2026-12-18T12:00")).path[0].branch == "condition:False"


def test_without_an_id_the_working_queues_hours_decide():
    flow = build(act("q", "UpdateContactTargetQueue", {"QueueId": "support"}, "hours"), hours_check())
    result = run(flow, Caller(SERVICES), at=OFFICE.epoch("2026-12-17T10:00"))
    assert [s.branch for s in result.path[:2]] == ["next", "condition:True"]
    assert 'hours "office"' in result.path[1].detail


@pytest.mark.parametrize("ref, queue, services, why", [
    ("ofice", None, SERVICES, 'no [[hours]] named "ofice" (hours: "night", "office")'),
    (None, None, SERVICES, "no HoursOfOperationId and no working queue"),
    (None, "sales", SERVICES, 'queue "sales" has no hours of operation'),
    ("office", None, None, "hours of operation are not known on this contact"),
])
def test_no_schedule_takes_the_error_branch_saying_why(ref, queue, services, why):
    result = run(build(hours_check(ref)), Caller(services, queue=queue))
    step = result.path[0]
    assert step.branch == "NoMatchingError" and result.path[1].identifier == "error"
    assert why in step.detail


def test_hours_conditions_are_checked():
    bad = act("hours", "CheckHoursOfOperation", {}, conditions=[("Equals", "Yes", "open"),
                                                                ("NumberGreaterThan", "1", "closed")],
              errors={"NoMatchingError": "error"})
    flow, issues = check(bad)
    assert flow is None
    messages = [i.message for i in issues if i.severity == "error"]
    assert any('operand must be "True"' in m and '"Yes"' in m for m in messages)
    assert any("only Equals True / Equals False" in m for m in messages)
    one_sided = act("hours", "CheckHoursOfOperation", {}, conditions=[("Equals", "True", "open")])
    flow, issues = check(one_sided)
    assert flow is not None
    assert {i.message for i in issues} >= {'no Equals "False" condition: a contact out of hours ends the flow '
                                           "with an error"}


# --- a real Center under real ContactSessions -----------------------------------------------------------
class Line:
    """The modem under a call: records the SMS it is asked to send, or fails like a modem without SMS."""

    id = "gsm1"

    def __init__(self, sms=True):
        self.sms, self.sent, self.counters = sms, [], {}

    async def send_sms(self, number, text):
        if not self.sms:
            raise RuntimeError("line gsm1: cannot send SMS: this modem profile has no SMS")
        self.sent.append((number, text))
        return [len(self.sent)]

    async def hangup(self, reason="hung_up"):
        pass


class Gateway:
    def __init__(self, tmp_path: Path, clock: ManualClock):
        self.clock = clock
        queues = [QueueConfig("support", "Support", max_contacts=5), QueueConfig("sales", "Sales")]
        self.center = Center(queues, [AgentConfig(a, a.title(), HASH) for a in ("alice", "bob")], clock=clock)
        self.store = ContactStore(tmp_path / "contacts.db")
        self.n = 0

    def session(self, caller="+15550100", line=None) -> ContactSession:
        self.n += 1
        call = Call(f"call-{self.n}", "gsm1", "inbound", caller, self.clock.time())
        return ContactSession(line or Line(), call, flow=None, prompts=None, center=self.center, store=self.store,
                              recording_dir=None, system_number="+15550199", clock=self.clock, services=SERVICES)

    def agent(self, agent_id):
        self.center.login(agent_id, PASSWORD)
        self.center.set_available(agent_id)

    def wait_in(self, queue, contact_id):
        now = (self.clock.monotonic(), self.clock.time())
        assert self.center.enqueue(WaitingContact(contact_id, "+15559999", "gsm1", queue, *now)) == "queued"


@pytest.fixture
def gateway(tmp_path):
    return Gateway(tmp_path, ManualClock(start=OFFICE.epoch("2026-12-17T10:00")))


def metric_check(metric, conditions, queue=None):
    params = {"MetricType": metric, **({"QueueId": queue} if queue else {})}
    return act("metric", "CheckMetricData", params, conditions=conditions,
               errors={"NoMatchingError": "error", "NoMatchingCondition": "nomatch"})


def with_queue(*actions, queue="support"):
    return build(act("q", "UpdateContactTargetQueue", {"QueueId": queue}, actions[0]["Identifier"]), *actions)


def test_staffing_checks_follow_the_agents(gateway):
    flows = {m: with_queue(metric_check(m, [("NumberGreaterThan", "0", "done")]))
             for m in ("NumberOfAgentsAvailable", "NumberOfAgentsStaffed", "NumberOfAgentsOnline")}

    def branches():
        return {m: run(f, gateway.session(), clock=gateway.clock).path[1].branch for m, f in flows.items()}

    assert set(branches().values()) == {"NoMatchingCondition"}          # nobody logged in
    gateway.agent("alice")
    assert set(branches().values()) == {"condition:NumberGreaterThan 0"}
    gateway.wait_in("sales", "w-1")                                     # alice is offered a contact
    assert branches() == {"NumberOfAgentsAvailable": "NoMatchingCondition",
                          "NumberOfAgentsStaffed": "condition:NumberGreaterThan 0",
                          "NumberOfAgentsOnline": "condition:NumberGreaterThan 0"}
    gateway.center.set_offline("alice")
    assert set(branches().values()) == {"NoMatchingCondition"}


def test_queue_status_compares_contacts_waiting_and_the_oldest_wait_in_milliseconds(gateway):
    oldest = with_queue(metric_check("OldestContactInQueueAgeSeconds", [("NumberLessThan", "300000", "done")]))
    depth = with_queue(metric_check("NumberOfContactsInQueue", [("NumberGreaterOrEqualTo", "2", "done"),
                                                                ("Equals", "1", "open")]))
    gateway.wait_in("support", "w-1")
    gateway.clock.advance(100)
    step = run(oldest, gateway.session(), clock=gateway.clock).path[1]
    assert step.branch == "condition:NumberLessThan 300000" and "is 100 s (100000 ms)" in step.detail
    gateway.clock.advance(250)
    assert run(oldest, gateway.session(), clock=gateway.clock).path[1].branch == "NoMatchingCondition"
    assert run(depth, gateway.session(), clock=gateway.clock).path[1].branch == "condition:Equals 1"
    gateway.wait_in("support", "w-2")
    assert run(depth, gateway.session(), clock=gateway.clock).path[1].branch == "condition:NumberGreaterOrEqualTo 2"


def test_metrics_of_a_named_queue_and_of_no_queue(gateway):
    gateway.wait_in("sales", "w-1")
    named = build(metric_check("NumberOfContactsInQueue", [("Equals", "1", "done")], queue="Sales"))
    assert run(named, gateway.session(), clock=gateway.clock).path[0].branch == "condition:Equals 1"
    unset = build(metric_check("NumberOfContactsInQueue", [("Equals", "1", "done")], queue="$.Attributes.q"))
    step = run(unset, gateway.session(), clock=gateway.clock).path[0]
    assert (step.branch, step.detail) == ("NoMatchingError", "QueueId '$.Attributes.q' is empty")
    step = run(build(metric_check("NumberOfContactsInQueue", [("Equals", "1", "done")], queue="nope")),
               gateway.session(), clock=gateway.clock).path[0]
    assert (step.branch, step.detail) == ("NoMatchingError", "no queue 'nope' is configured")
    step = run(build(metric_check("NumberOfContactsInQueue", [("Equals", "0", "done")])), gateway.session(),
               clock=gateway.clock).path[0]
    assert step.branch == "NoMatchingError" and "no working queue" in step.detail


def test_get_metric_data_loads_metrics_references(gateway):
    gateway.agent("alice")
    gateway.agent("bob")
    gateway.wait_in("support", "w-1")          # offered to alice, still waiting
    gateway.clock.advance(42)
    copy = {"size": "$.Metrics.Queue.Size", "oldest": "$.Metrics.Queue.OldestContactAge",
            "available": "$.Metrics.Agents.Available.Count", "staffed": "$.Metrics.Agents.Staffed.Count",
            "name": "$.Metrics.Queue.Name", "arn": "$.Metrics.Queue.ARN", "busy": "$.Metrics.Agents.Busy.Count"}
    flow = with_queue(act("m", "GetMetricData", {}, "copy", errors={"NoMatchingError": "error"}),
                      act("copy", "UpdateContactAttributes", {"Attributes": copy}, "done"))
    session = gateway.session()
    result = run(flow, session, clock=gateway.clock)
    assert [s.branch for s in result.path[:3]] == ["next", "next", "next"]
    assert session.attributes == {"size": "1", "oldest": "42", "available": "1", "staffed": "2", "name": "Support",
                                  "arn": "support", "busy": "0"}


def test_get_metric_data_references_are_the_ones_the_validator_knows():
    extra = {"$.Metrics.Queue.Name", "$.Metrics.Queue.ARN", "$.Metrics.Agents.NonProductive.Count"}
    assert set(METRIC_REFERENCES) | extra == METRICS_REFERENCES
    flow, issues = check(act("s", "MessageParticipant", {"Text": "$.Metrics.Queue.Size waiting"}, "done"))
    assert flow is not None and issues == []


def test_metric_checks_are_checked():
    flow, issues = check(act("m", "CheckMetricData", {"MetricType": "AgentsAvailable", "AgentId": "x"},
                             conditions=[("TextContains", "1", "done"), ("NumberGreaterThan", "many", "done")],
                             errors={"NoMatchingCondition": "nomatch"}))
    assert flow is None
    errors = sorted(i.message for i in issues if i.severity == "error")
    assert any(m.startswith("MetricType must be one of NumberOfAgentsAvailable") for m in errors)
    assert any("agent queues (AgentId) are not supported" in m for m in errors)
    assert any("operator must be one of" in m and "TextContains" in m for m in errors)
    assert any(m == 'one number expected, found ["many"]' for m in errors)
    flow, issues = check(metric_check("OldestContactInQueueAgeSeconds", [("NumberGreaterThan", "120", "done")]))
    assert flow is not None and [i.message for i in issues] == [
        "the time-in-queue threshold is in milliseconds, as the Connect designer writes it (300 s is 300000): "
        "120 means 0.12 s"]


# --- UpdateContactRoutingBehavior and the real router -------------------------------------------------------
def queued_with(gateway, params=None) -> ContactSession:
    actions = [act("route", "UpdateContactRoutingBehavior", params, "go")] if params else []
    actions.append(act("go", "TransferContactToQueue", {}, errors={"QueueAtCapacity": "error",
                                                                   "NoMatchingError": "error"}))
    session = gateway.session()
    result = run(with_queue(*actions), session, clock=gateway.clock)
    assert result.outcome == "queued", result
    gateway.clock.advance(10)
    return session


def offered(gateway) -> str:
    gateway.agent("alice")
    return gateway.center.offer_view("alice")["contact_id"]


def test_queue_priority_is_served_before_earlier_callers(gateway):
    queued_with(gateway)
    queued_with(gateway)
    urgent = queued_with(gateway, {"QueuePriority": "1"})
    assert offered(gateway) == urgent.contact_id


def test_routing_age_moves_a_caller_ahead_or_back(gateway):
    first = queued_with(gateway, {"QueueTimeAdjustmentSeconds": "-600"})   # behind anyone who waited less
    second = queued_with(gateway)
    third = queued_with(gateway, {"QueueTimeAdjustmentSeconds": "600"})    # ahead of both
    assert offered(gateway) == third.contact_id
    gateway.agent("bob")
    assert gateway.center.offer_view("bob")["contact_id"] == second.contact_id
    assert first.contact_id in [c["contact_id"] for c in gateway.center.queue_view("support")["contacts"]]


def test_a_waiting_callers_new_priority_applies_at_once(gateway):
    older = queued_with(gateway)
    waiting = queued_with(gateway)
    waiting.set_routing(priority=2)
    assert offered(gateway) == waiting.contact_id and older.routing == {}


def test_routing_behavior_is_checked_and_does_nothing_on_an_sms():
    for params, fragment in [({}, "missing QueuePriority"),
                             ({"QueuePriority": "1", "QueueTimeAdjustmentSeconds": "5"}, "not both"),
                             ({"QueuePriority": "0"}, "QueuePriority must be from 1"),
                             ({"QueuePriority": "$.Attributes.p"}, "whole number written in the flow"),
                             ({"QueueTimeAdjustmentSeconds": "1.5"}, "whole number"),
                             ({"RoutingCriteria": {}}, "RoutingCriteria is not supported")]:
        flow, issues = check(act("r", "UpdateContactRoutingBehavior", params, "done"))
        assert flow is None and any(fragment in i.message for i in issues), (params, issues)
    flow = build(act("r", "UpdateContactRoutingBehavior", {"QueuePriority": 1}, "done"))
    result = run(flow, SmsContact("sms-1", "+15550100", "hi", "+15550199"))
    assert result.path[0].branch == "next" and result.path[0].detail == "routing does not apply to this contact"


# --- InvokeLambdaFunction against a real HTTP server ---------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.seen.append((self.path, body))
        if self.path == "/slow":
            time.sleep(1.5)
        replies = {
            "/lookup": (200, json.dumps({"name": "Ada", "vip": True, "visits": 3})),
            "/profile": (200, json.dumps({"customer": {"name": "Ada", "tier": {"level": 2}}, "tags": ["a", "b"]})),
            "/slow": (200, "{}"),
            "/boom": (500, "database down"),
            "/notjson": (200, "<html>hi</html>"),
        }
        status, text = replies.get(self.path, (404, "no such hook"))
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def hooks():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    names = ("lookup", "profile", "slow", "boom", "notjson")
    yield FlowServices(webhooks=Webhooks({n: f"{base}/{n}" for n in names}, post_json))
    httpd.shutdown()
    httpd.server_close()


def invoke(ref, **params):
    return act("hook", "InvokeLambdaFunction", {"LambdaFunctionARN": ref, **params}, "hello",
               errors={"NoMatchingError": "error"})


HELLO = act("hello", "MessageParticipant", {"Text": "Hello $.External.name, visit $.External.visits"}, "done")


def test_webhook_reply_is_external_for_the_next_blocks_and_gets_the_contact_as_lambda_does(hooks):
    _Handler.seen.clear()
    flow = build(act("attr", "UpdateContactAttributes", {"Attributes": {"lang": "de"}}, "hook"),
                 invoke("arn:aws:lambda:us-east-1:123456789012:function:lookup", InvocationTimeLimitSeconds="3",
                        LambdaInvocationAttributes={"caller": "$.CustomerEndpoint.Address", "mode": "full"}),
                 HELLO)
    prompts = Prompts()
    result = run(flow, Caller(hooks, queue="support"), prompts=prompts)
    assert [s.branch for s in result.path[:3]] == ["next", "next", "next"]
    assert result.path[1].detail == "webhook 'lookup' replied: name, vip, visits"
    assert prompts.spoken == ["Hello Ada, visit 3"]
    path, event = _Handler.seen[-1]
    assert path == "/lookup" and event["Name"] == "ContactFlowEvent"
    assert event["Details"]["Parameters"] == {"caller": "+15550100", "mode": "full"}
    data = event["Details"]["ContactData"]
    assert data["ContactId"] == "c-1" and data["Channel"] == "VOICE" and data["InitiationMethod"] == "INBOUND"
    assert data["CustomerEndpoint"] == {"Address": "+15550100", "Type": "TELEPHONE_NUMBER"}
    assert data["SystemEndpoint"] == {"Address": "+15550199", "Type": "TELEPHONE_NUMBER"}
    assert data["Attributes"] == {"lang": "de"} and data["Queue"] == {"Name": "support", "ARN": "support"}


def test_json_reply_nests_and_a_later_webhook_replaces_external(hooks):
    flow = build(invoke("profile", ResponseValidation={"ResponseType": "JSON"}),
                 act("hello", "UpdateContactAttributes", {"Attributes": {
                     "name": "$.External.customer.name", "level": "$.External.customer.tier.level",
                     "tags": "$.External.tags"}}, "again"),
                 act("again", "InvokeLambdaFunction", {"LambdaFunctionARN": "lookup"}, "copy",
                     errors={"NoMatchingError": "error"}),
                 act("copy", "UpdateContactAttributes", {"Attributes": {"after": "$.External.customer.name|"
                                                                                 "$.External.vip"}}, "done"))
    caller = Caller(hooks)
    result = run(flow, caller)
    assert result.outcome == "ended"
    assert caller.attributes == {"name": "Ada", "level": "2", "tags": '["a","b"]', "after": "|true"}


def test_string_map_refuses_a_nested_reply(hooks):
    result = run(build(invoke("profile"), HELLO), Caller(hooks))
    step = result.path[0]
    assert step.branch == "NoMatchingError" and result.path[1].identifier == "error"
    assert "STRING_MAP reply has a nested value at $.customer" in step.detail


@pytest.mark.parametrize("ref, limit, fragment", [
    ("slow", "1", "no reply within 1 s"),
    ("boom", "3", "replied HTTP 500: database down"),
    ("notjson", "3", "reply is not JSON"),
    ("nobody", "3", "no webhook configured for 'nobody' (webhooks: boom, lookup, notjson, profile, slow)"),
])
def test_webhook_failures_take_the_error_branch_with_the_reason(hooks, ref, limit, fragment):
    started = time.monotonic()
    result = run(build(invoke(ref, InvocationTimeLimitSeconds=limit), HELLO), Caller(hooks))
    step = result.path[0]
    assert step.branch == "NoMatchingError" and result.path[1].identifier == "error"
    assert fragment in step.detail
    assert time.monotonic() - started < 1.4          # the slow one is cut at its 1 s limit


def test_asynchronous_webhook_does_not_wait_and_loads_nothing(hooks):
    _Handler.seen.clear()
    flow = build(invoke("lookup", InvocationType="ASYNCHRONOUS"), HELLO)
    prompts = Prompts()

    async def scenario():
        result = await run_flow(flow, Caller(hooks), prompts, clock=ManualClock())
        pending = set(external._background)
        await asyncio.wait_for(asyncio.gather(*pending), TEST_TIMEOUT)
        return result, pending

    result, pending = asyncio.run(scenario())
    assert [s.branch for s in result.path[:2]] == ["next", "next"] and len(pending) == 1
    assert prompts.spoken == ["Hello , visit"]
    assert [p for p, _ in _Handler.seen] == ["/lookup"]


def test_without_webhooks_the_block_says_so():
    step = run(build(invoke("lookup"), HELLO), Caller(FlowServices())).path[0]
    assert (step.branch, step.detail) == ("NoMatchingError", "webhooks are not set up here ([webhooks] in "
                                                             "callgate.toml)")


def test_webhook_parameters_are_checked():
    for params, fragment in [({}, "missing LambdaFunctionARN"),
                             ({"LambdaFunctionARN": "x", "InvocationTimeLimitSeconds": "9"}, "must be 1 to 8"),
                             ({"LambdaFunctionARN": "x", "InvocationTimeLimitSeconds": "0"}, "must be 1 to 8"),
                             ({"LambdaFunctionARN": "x", "InvocationTimeLimitSeconds": "2.5"}, "whole number"),
                             ({"LambdaFunctionARN": "x", "InvocationType": "EVENTUALLY"}, "InvocationType must be"),
                             ({"LambdaFunctionARN": "x", "LambdaInvocationAttributes": {"n": 5}}, "must be a string"),
                             ({"LambdaFunctionARN": "x", "ResponseValidation": {"ResponseType": "XML"}},
                              'ResponseType must be "STRING_MAP" or "JSON"')]:
        flow, issues = check(act("hook", "InvokeLambdaFunction", params, "done", errors={"NoMatchingError": "error"}))
        assert flow is None and any(fragment in i.message for i in issues), (params, [str(i) for i in issues])
    flow, issues = check(act("hook", "InvokeLambdaFunction", {"LambdaFunctionARN": "x",
                                                              "InvocationTimeLimitSeconds": 8}, "done"))
    assert flow is not None and [i.message for i in issues] == [
        "no NoMatchingError branch: a webhook that fails ends the flow with an error"]


# --- Callgate.SendSms ---------------------------------------------------------------------------------
def send_sms(**params):
    return act("sms", "Callgate.SendSms", params, "done", errors={"NoMatchingError": "error"})


def test_send_sms_from_a_call_goes_out_on_its_line(gateway):
    line = Line()
    session = gateway.session(line=line)
    session.attributes.update({"code": "42", "mobile": "+49 (170) 555-0101"})
    flow = build(send_sms(Text="Your code is $.Attributes.code"),
                 start="sms")
    assert run(flow, session, clock=gateway.clock).path[0].detail == "SMS to +15550100: 15 characters"
    run(build(send_sms(Text="Code $.Attributes.code", To="$.Attributes.mobile")), session, clock=gateway.clock)
    assert line.sent == [("+15550100", "Your code is 42"), ("+491705550101", "Code 42")]


@pytest.mark.parametrize("caller, line, params, why", [
    ("+15550100", Line(sms=False), {"Text": "hi"}, "SMS to +15550100 not sent: line gsm1: cannot send SMS: this "
                                                   "modem profile has no SMS"),
    ("", Line(), {"Text": "hi"}, "no number to send to (the caller's number is withheld)"),
    ("+15550100", Line(), {"Text": "$.Attributes.nothing"}, "the text is empty"),
    ("+15550100", Line(), {"Text": "hi", "To": "$.Attributes.name"}, "'Ada' is not a phone number"),
])
def test_send_sms_failures_take_the_error_branch(gateway, caller, line, params, why):
    session = gateway.session(caller=caller, line=line)
    session.attributes["name"] = "Ada"
    step = run(build(send_sms(**params)), session, clock=gateway.clock).path[0]
    assert (step.branch, step.detail) == ("NoMatchingError", why)


def test_send_sms_on_an_sms_contact_replies_in_the_thread():
    flow = build(act("thanks", "MessageParticipant", {"Text": "Thanks."}, "sms"),
                 send_sms(Text="Your code: 42"),
                 act("other", "Callgate.SendSms", {"Text": "x", "To": "+15559999"}, "done",
                     errors={"NoMatchingError": "error"}), start="thanks")
    contact = SmsContact("sms-1", "+15551230005", "hi", "+15550199")
    result = run(flow, contact)
    assert contact.reply() == "Thanks.\nYour code: 42"
    forwarded = []

    async def send(number, text):
        forwarded.append((number, text))

    run(build(act("other", "Callgate.SendSms", {"Text": "New message", "To": "+15559999"}, "done",
                  errors={"NoMatchingError": "error"})), SmsContact("sms-2", "+1555", "hi", "+1", send=send))
    assert result.outcome == "ended" and forwarded == [("+15559999", "New message")]
    lone = run(build(act("other", "Callgate.SendSms", {"Text": "x", "To": "+15559999"}, "done",
                         errors={"NoMatchingError": "error"})), SmsContact("sms-3", "+1555", "hi", "+1"))
    assert lone.path[0].detail == "SMS to +15559999 not sent: an SMS flow here can only reply to its sender"


def test_send_sms_parameters_are_checked():
    for params, fragment in [({}, "missing Text"), ({"Text": " "}, "Text must be non-empty text"),
                             ({"Text": "hi", "To": "call me"}, 'To "call me" is not a phone number'),
                             ({"Text": "x" * 1601}, "Text is 1601 characters; at most 1600")]:
        flow, issues = check(send_sms(**params))
        assert flow is None and any(fragment in i.message for i in issues), (params, [str(i) for i in issues])


# --- configuration and rehearsal ----------------------------------------------------------------------
CONFIG = """
[[hours]]
name = "office"
time_zone = "Europe/Berlin"
[hours.weekly]
thu = ["08:00-17:00"]
[[hours.overrides]]
date = "2026-12-24"
closed = true
name = "Christmas Eve"

[[queues]]
id = "support"
name = "Support"
hours = "office"

[webhooks]
{webhooks}
"""


def test_webhooks_table_in_the_config(tmp_path):
    path = tmp_path / "callgate.toml"
    path.write_text(CONFIG.format(webhooks='lookup = "http://127.0.0.1:8000/lookup"\ncrm-2 = "https://crm.local/x"'))
    assert load_config(path).webhooks == {"lookup": "http://127.0.0.1:8000/lookup", "crm-2": "https://crm.local/x"}
    for line, message in [('lookup = "ftp://x/y"', "webhooks.lookup: must be an http:// or https:// URL, found "
                                                   "'ftp://x/y'"),
                          ('lookup = 5', "webhooks.lookup: expected str, got int 5"),
                          ('"my hook" = "http://x/"', "webhooks.my hook: a webhook name must be 1-64 letters")]:
        path.write_text(CONFIG.format(webhooks=line))
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert f"{path}: {message}" in str(caught.value)


def _simulate(tmp_path, *args):
    """The working queue's hours, then a webhook greeting, a staffing check and an SMS."""
    doc = {"Version": "2019-10-30", "StartAction": "q", "Actions": [
        act("q", "UpdateContactTargetQueue", {"QueueId": "Support"}, "hours"),
        act("hours", "CheckHoursOfOperation", {}, conditions=[("Equals", "True", "hook"),
                                                              ("Equals", "False", "closed")],
            errors={"NoMatchingError": "error"}),
        invoke("lookup"),
        {**HELLO, "Transitions": {"NextAction": "staff"}},
        act("staff", "CheckMetricData", {"MetricType": "NumberOfAgentsAvailable"},
            conditions=[("NumberGreaterThan", "0", "sms")],
            errors={"NoMatchingCondition": "done", "NoMatchingError": "error"}),
        send_sms(Text="Hi $.External.name"), *ends()]}
    (tmp_path / "flow.json").write_text(json.dumps(doc))
    (tmp_path / "callgate.toml").write_text(CONFIG.format(webhooks='lookup = "http://127.0.0.1:9/lookup"'))
    (tmp_path / "reply.json").write_text('{"name": "Ada"}')
    out = subprocess.run([sys.executable, "-m", "gateway", "flow", "simulate", str(tmp_path / "flow.json"),
                          "--config", str(tmp_path / "callgate.toml"), *args], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).parents[1])
    return out


def test_simulate_with_config_hours_webhook_reply_and_metrics(tmp_path):
    out = _simulate(tmp_path, "--at", "2026-12-17T10:00", "--webhook-reply", str(tmp_path / "reply.json"),
                    "--metric", "NumberOfAgentsAvailable=2")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("time: Thu 2026-12-17 10:00 Europe/Berlin")
    assert "-> condition:True  (hours \"office\" at Thu 2026-12-17 10:00 Europe/Berlin: open" in text
    assert 'POST http://127.0.0.1:9/lookup with {}: canned reply' in text
    assert "says (en-us): Hello Ada, visit" in text
    assert "metrics of queue Support: NumberOfAgentsAvailable=2" in text
    assert "SMS to +15555550100: Hi Ada" in text


def test_simulate_on_a_holiday_and_without_a_webhook_reply(tmp_path):
    out = _simulate(tmp_path, "--at", "2026-12-24T10:00", "--json")
    steps = json.loads(out.stdout)["steps"]
    assert steps[1]["branch"] == "condition:False" and "closed (Christmas Eve)" in steps[1]["detail"]
    out = _simulate(tmp_path, "--at", "2026-12-17T10:00", "--json")
    steps = json.loads(out.stdout)["steps"]
    assert steps[2]["branch"] == "NoMatchingError" and "rehearsals do not call webhooks" in steps[2]["detail"]
    bad = _simulate(tmp_path, "--metric", "AgentsAvailable=2")
    assert bad.returncode == 2 and "--metric 'AgentsAvailable=2': expected NAME=VALUE" in bad.stderr
