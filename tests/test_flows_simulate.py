"""`callgate flow simulate`: the real interpreter against a scripted caller, through the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.flows.simulate import SILENT_TIMEOUTS, rehearse
from gateway.flows.validate import validate_flow_text

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "deploy" / "demo" / "flow-main.json"
REAL = REPO.parent / "shared" / "flows" / "real"

LOOPING_MENU = {
    "Version": "2019-10-30", "StartAction": "menu",
    "Actions": [
        {"Identifier": "menu", "Type": "GetParticipantInput",
         "Parameters": {"Text": "Press 1 for sales.", "InputTimeLimitSeconds": "4"},
         "Transitions": {"NextAction": "menu",
                         "Conditions": [{"NextAction": "sales", "Condition": {"Operator": "Equals", "Operands": ["1"]}}],
                         "Errors": [{"NextAction": "menu", "ErrorType": "InputTimeLimitExceeded"},
                                    {"NextAction": "menu", "ErrorType": "NoMatchingCondition"}]}},
        {"Identifier": "sales", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "sales"},
         "Transitions": {"NextAction": "go", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "go", "Type": "TransferContactToQueue", "Parameters": {},
         "Transitions": {"NextAction": "bye", "Errors": [{"NextAction": "full", "ErrorType": "QueueAtCapacity"},
                                                         {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "full", "Type": "MessageParticipant", "Parameters": {"Text": "All lines are busy."},
         "Transitions": {"NextAction": "bye"}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
    ],
}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", "flow", "simulate", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_demo_flow_to_the_queue_with_prompts_digits_and_attributes():
    out = _cli(str(DEMO), "--digits", "1", "--attr", "vip=true", "--caller", "+4930123456")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "greeting  [GetParticipantInput]" in text and "caller presses 1 during the prompt" in text
    assert "says (en-us): Thank you for calling" in text
    assert text.strip().splitlines()[-2] == "end: caller waits in queue support for an agent"
    assert "attributes: vip=true" in text


def test_json_output_lists_steps_branches_and_time(tmp_path):
    out = _cli(str(DEMO), "--digits", ",2", "--at", "2026-12-24T18:30+01:00", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    branches = [(s["id"], s["branch"]) for s in data["steps"]]
    assert branches[0] == ("greeting", "InputTimeLimitExceeded")
    first_timeout = next(e for e in data["steps"][0]["events"] if e["kind"] == "timeout")
    assert first_timeout["at"] > data["steps"][0]["at"] + 5  # the prompt's length plus the 5 s limit
    assert data["steps"][0]["at"] == pytest.approx(1798133400.0)  # 2026-12-24 17:30 UTC
    assert data["outcome"] in {"disconnected", "queued", "hung_up"}


def test_silent_caller_in_a_looping_menu_hangs_up_instead_of_looping_forever(tmp_path):
    flow, issues = validate_flow_text(json.dumps(LOOPING_MENU))
    assert flow is not None, issues
    rehearsal = asyncio.run(rehearse(flow, digits=[]))
    assert rehearsal.result.outcome == "hung_up"
    assert [s.branch for s, _ in rehearsal.steps] == ["InputTimeLimitExceeded"] * SILENT_TIMEOUTS + ["hung_up"]


def test_wrong_key_then_sales_and_a_full_queue():
    flow, _ = validate_flow_text(json.dumps(LOOPING_MENU))
    rehearsal = asyncio.run(rehearse(flow, digits=["7", "1"], full_queues={"sales"}))
    assert [(s.identifier, s.branch) for s, _ in rehearsal.steps] == [
        ("menu", "NoMatchingCondition"), ("menu", "condition:1"), ("sales", "next"),
        ("go", "QueueAtCapacity"), ("full", "next"), ("bye", "disconnected")]
    assert rehearsal.steps[0][0].detail == "key '7'"
    texts = [e.text for _, events in rehearsal.steps for e in events]
    assert "says (en-us): All lines are busy." in texts


def test_bad_arguments_and_invalid_flows_exit_non_zero(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"Version": "2019-10-30", "StartAction": "x", "Actions": []}')
    out = _cli(str(bad))
    assert out.returncode == 1 and "not valid" in out.stderr and "x" in out.stderr
    out = _cli(str(DEMO), "--digits", "12")
    assert out.returncode == 2 and "'12' is not a key" in out.stderr
    out = _cli(str(DEMO), "--at", "christmas")
    assert out.returncode == 2 and "ISO 8601" in out.stderr
    out = _cli(str(DEMO), "--attr", "novalue")
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr


def _real_flows():
    if not REAL.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{REAL} is absent (a clone outside the workspace)"))]
    return sorted(REAL.glob("*.json"))


@pytest.mark.parametrize("path", _real_flows(), ids=lambda p: p.name if p else "absent")
def test_real_flows_are_simulated_where_valid(path):
    flow, issues = validate_flow_text(path.read_text(encoding="utf-8-sig"), str(path))
    if flow is None:
        assert any(i.severity == "error" for i in issues)  # refused with reasons, checked in test_flows_real
        return
    for digits in ([], ["1"], ["2", "1"]):
        rehearsal = asyncio.run(rehearse(flow, digits=list(digits)))
        assert rehearsal.steps and rehearsal.steps[0][0].identifier == flow.start_action
        assert rehearsal.result.outcome in {"queued", "disconnected", "hung_up", "ended", "error"}


def test_voicemail_block_is_rehearsed():
    flow_doc = {"Version": "2019-10-30", "StartAction": "vm", "Actions": [
        {"Identifier": "vm", "Type": "Callgate.RecordVoicemail",
         "Parameters": {"Text": "Please leave a message after the tone.", "MaxLengthSeconds": 60, "SilenceSeconds": 3},
         "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "NoSpeech"},
                                    {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}
    flow, issues = validate_flow_text(json.dumps(flow_doc))
    assert flow is not None, issues
    rehearsal = asyncio.run(rehearse(flow))
    assert rehearsal.result.outcome == "voicemail"
    assert rehearsal.ending == "caller left a voicemail; the call is hung up"
    texts = [e.text for _, events in rehearsal.steps for e in events]
    assert "says (en-us): Please leave a message after the tone." in texts
    assert any(t.startswith("caller leaves a 10 s message") and "3 s of silence" in t for t in texts)


def test_webhook_reply_file_answers_a_function_no_config_names(tmp_path):
    flow = {"Version": "2019-10-30", "StartAction": "lookup", "Actions": [
        {"Identifier": "lookup", "Type": "InvokeLambdaFunction",
         "Parameters": {"LambdaFunctionARN": "arn:aws:lambda:us-east-1:123456789012:function:crm-lookup",
                        "InvocationTimeLimitSeconds": "3"},
         "Transitions": {"NextAction": "hello", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "hello", "Type": "MessageParticipant", "Parameters": {"Text": "Hello $.External.name"},
         "Transitions": {"NextAction": "bye"}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}
    path = tmp_path / "lookup.json"
    path.write_text(json.dumps(flow))
    reply = tmp_path / "reply.json"
    reply.write_text('{"name": "Ada"}')
    out = _cli(str(path), "--webhook-reply", str(reply))
    assert out.returncode == 0, out.stderr
    assert "says (en-us): Hello Ada" in out.stdout
