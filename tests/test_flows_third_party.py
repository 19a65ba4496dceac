"""TransferParticipantToThirdParty (Transfer to phone number): its validation, each error at its JSON
path, and its branches in the interpreter against the fake call of test_flows_interpreter, whose
`transfer_to_number` reports what the phone line would (answered, busy, no answer, no free line...)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.flows.blocks.third_party import MAX_BRIDGE_SECONDS, dialable, dtmf_steps
from gateway.flows.interpreter import CallerHungUp, run_flow
from gateway.flows.validate import validate_flow_text
from gateway.sms_contact import SmsContact
from tests.test_flows_interpreter import BYE, FakeContact, FakePrompts, branches, flow_of, run, say

T = "TransferParticipantToThirdParty"
PATH = "$.Actions[0]"


class DialingContact(FakeContact):
    """The fake call, able to dial out: `outcome` is what the line reports (or "hang_up_while_ringing")."""

    def __init__(self, outcome, **script):
        super().__init__(**script)
        self.outcome = outcome
        self.dialled: list[dict] = []

    async def transfer_to_number(self, number, *, timeout, dtmf, caller_id, resume_after):
        self.dialled.append({"number": number, "timeout": timeout, "dtmf": dtmf, "caller_id": caller_id,
                             "resume_after": resume_after})
        if self.outcome == "hang_up_while_ringing":
            raise CallerHungUp("customer_hung_up")
        if self.outcome == "never":
            await asyncio.Event().wait()
        return self.outcome


def transfer(next_action="after", errors=None, **params):
    params.setdefault("ThirdPartyPhoneNumber", "+4930123456")
    transitions = {} if next_action is None else {"NextAction": next_action}
    transitions["Errors"] = [{"ErrorType": k, "NextAction": v} for k, v in (errors or {}).items()]
    return {"Identifier": "xfer", "Type": T, "Parameters": params, "Transitions": transitions}


ALL_BRANCHES = {"CallFailed": "failed", "ConnectionTimeLimitExceeded": "no-answer", "NoMatchingError": "error"}
AFTER = [say("after", "Welcome back."), say("failed", "Busy."), say("no-answer", "Nobody there."),
         say("error", "Sorry."), BYE]


def issues_of(*actions) -> list[str]:
    text = json.dumps({"Version": "2019-10-30", "StartAction": actions[0]["Identifier"], "Actions": list(actions)},
                      indent=1)
    _, issues = validate_flow_text(text, "t.json", base_dir=Path("."))
    return [f"{i.severity} {i.path}: {i.message}" for i in issues if "unreachable" not in i.message]


def own(issues: list[str]) -> list[str]:
    return [i for i in issues if i.split(" ", 2)[1].startswith(PATH)]


# -- validation

def test_the_real_flow_02_shape_and_a_full_block_are_valid():
    real = transfer("error", {"NoMatchingError": "error"}, ThirdPartyPhoneNumber="$.Attributes.PartyChimeNumber",
                    ThirdPartyConnectionTimeLimitSeconds="60", ContinueFlowExecution="False")
    assert own(issues_of(real, *AFTER)) == []
    full = transfer(errors=ALL_BRANCHES, ThirdPartyConnectionTimeLimitSeconds="30", ContinueFlowExecution="True",
                    ThirdPartyDTMFDigits="123,,#")
    assert own(issues_of(full, *AFTER)) == []


@pytest.mark.parametrize("params, expected", [
    ({"ThirdPartyPhoneNumber": "112"}, f"error {PATH}.Parameters.ThirdPartyPhoneNumber: ThirdPartyPhoneNumber "
                                       '"112" is not a phone number to dial'),
    ({"ThirdPartyPhoneNumber": "call bob"}, f"error {PATH}.Parameters.ThirdPartyPhoneNumber: ThirdPartyPhoneNumber "
                                            '"call bob" is not a phone number'),
    ({"ThirdPartyPhoneNumber": 4930123456}, f"error {PATH}.Parameters.ThirdPartyPhoneNumber: ThirdPartyPhoneNumber "
                                            "must be a phone number or a reference, found number 4930123456"),
    ({"ThirdPartyConnectionTimeLimitSeconds": "601"},
     f"error {PATH}.Parameters.ThirdPartyConnectionTimeLimitSeconds: ThirdPartyConnectionTimeLimitSeconds must be "
     '1 to 600 seconds, found "601"'),
    ({"ThirdPartyConnectionTimeLimitSeconds": "0"},
     f"error {PATH}.Parameters.ThirdPartyConnectionTimeLimitSeconds: ThirdPartyConnectionTimeLimitSeconds must be "
     '1 to 600 seconds, found "0"'),
    ({"ThirdPartyConnectionTimeLimitSeconds": "2.5"},
     f"error {PATH}.Parameters.ThirdPartyConnectionTimeLimitSeconds: ThirdPartyConnectionTimeLimitSeconds must be "
     'a whole number of seconds, found string "2.5"'),
    ({"ThirdPartyConnectionTimeLimitSeconds": "$.Attributes.a sec"},
     f"error {PATH}.Parameters.ThirdPartyConnectionTimeLimitSeconds: ThirdPartyConnectionTimeLimitSeconds must be "
     'static or one reference, found "$.Attributes.a sec"'),
    ({"ContinueFlowExecution": "$.Attributes.resume"},
     f'error {PATH}.Parameters.ContinueFlowExecution: ContinueFlowExecution must be "True" or "False" (static), '
     'found string "$.Attributes.resume"'),
    ({"ThirdPartyDTMFDigits": "12w#"}, f"error {PATH}.Parameters.ThirdPartyDTMFDigits: ThirdPartyDTMFDigits "
                                       "\"12w#\" holds 'w': only 0-9, *, # and commas"),
    ({"ThirdPartyDTMFDigits": "1" * 51}, f"error {PATH}.Parameters.ThirdPartyDTMFDigits: ThirdPartyDTMFDigits is "
                                         "51 characters; at most 50"),
    ({"ThirdPartyDTMFDigits": "1$.Attributes.pin"},
     f"error {PATH}.Parameters.ThirdPartyDTMFDigits: ThirdPartyDTMFDigits must be static or one reference"),
    ({"CallerId": "+4930999"}, f"error {PATH}.Parameters.CallerId: CallerId must be an object"),
    ({"CallerId": {"Number": "office"}}, f'error {PATH}.Parameters.CallerId.Number: CallerId.Number "office" is '
                                         "not a phone number"),
])
def test_bad_parameters_are_errors_at_their_json_path(params, expected):
    found = own(issues_of(transfer(errors=ALL_BRANCHES, **params), *AFTER))
    assert any(i.startswith(expected) for i in found), found


def test_missing_number_missing_next_action_and_branches_connect_rejects():
    bare = {"Identifier": "xfer", "Type": T, "Parameters": {}, "Transitions": {"NextAction": "after"}}
    assert f"error {PATH}.Parameters: missing ThirdPartyPhoneNumber (the number to dial, E.164 such as " \
           "+4930123456, or a reference such as $.Attributes.number)" in own(issues_of(bare, *AFTER))
    found = own(issues_of(transfer(None, {"NoMatchingError": "error"}), *AFTER))
    assert found == [f"error {PATH}.Transitions: missing Transitions.NextAction (with ContinueFlowExecution "
                     "\"True\" the flow goes on there when the third party hangs up)"]
    handed_over = transfer(errors=ALL_BRANCHES, ContinueFlowExecution="False")
    found = own(issues_of(handed_over, *AFTER))
    assert [i.split(":")[0] for i in found] == [f"error {PATH}.Transitions.Errors[0]",
                                                f"error {PATH}.Transitions.Errors[1]"]
    assert "CallFailed needs ContinueFlowExecution \"True\"" in found[0]


def test_warnings_caller_id_national_number_alias_and_no_error_branch():
    found = own(issues_of(transfer(ThirdPartyPhoneNumber="030 123 456", CallerId={"Number": "+4930999", "Name": "Desk"},
                                   ThirdPartyConnectionTimeoutSeconds=20, VoiceConnector={}), *AFTER))
    assert sorted(found) == sorted([
        f"warning {PATH}.Parameters.VoiceConnector: {T} has no parameter 'VoiceConnector'; it is ignored (voice "
        "connectors are not supported here)",
        f'warning {PATH}.Parameters.ThirdPartyPhoneNumber: ThirdPartyPhoneNumber "030 123 456" is not E.164 (+ and '
        "country code): Connect refuses it; a modem line dials it as written",
        f"warning {PATH}.Parameters.ThirdPartyConnectionTimeoutSeconds: read as ThirdPartyConnectionTimeLimitSeconds "
        "(the name Connect's flow language uses)",
        f"warning {PATH}.Parameters.CallerId: a modem line cannot choose the caller ID it presents (the network "
        "shows its SIM's number); CallerId is ignored",
        f"warning {PATH}.Transitions.Errors: no NoMatchingError branch: a transfer that cannot be placed ends the "
        "flow with an error",
    ])


def test_helpers_dialable_numbers_and_dtmf_pauses():
    assert dialable("+49 (30) 1234-5678") == "+493012345678"
    assert dialable("0301234567") == "0301234567"
    assert dialable("112") is None and dialable("+49abc") is None and dialable("") is None
    assert dtmf_steps("12,,#") == ["12", 1.5, "#"]
    assert dtmf_steps(",1") == [0.75, "1"] and dtmf_steps("") == []


# -- branches

def run_transfer(outcome, action, **script):
    contact = DialingContact(outcome, **script)
    result = run(flow_of(action, *AFTER), contact, FakePrompts())
    return contact, result


def test_answered_then_far_end_hangs_up_resumes_at_next_action():
    contact, result = run_transfer("connected_then_far_end_hung_up",
                                   transfer(errors=ALL_BRANCHES, ThirdPartyConnectionTimeLimitSeconds="45"))
    assert branches(result) == [("xfer", "next"), ("after", "next"), ("bye", "disconnected")]
    assert result.path[0].detail == "+4930123456 answered and hung up first"
    assert contact.dialled == [{"number": "+4930123456", "timeout": 45.0, "dtmf": "", "caller_id": None,
                                "resume_after": True}]


def test_references_are_resolved_before_dialling():
    contact = DialingContact("connected_then_far_end_hung_up")
    contact.attributes.update({"desk": "+49 30 555 01", "pin": "42,#"})
    action = transfer(errors=ALL_BRANCHES, ThirdPartyDTMFDigits="$.Attributes.pin",
                      ThirdPartyPhoneNumber="$.Attributes.desk", CallerId={"Number": "+4930999", "Name": "$.ContactId"})
    result = run(flow_of(action, *AFTER), contact, FakePrompts())
    assert contact.dialled == [{"number": "+493055501", "timeout": 30.0, "dtmf": "42,#",
                                "caller_id": {"Number": "+4930999", "Name": "c-1"}, "resume_after": True}]
    assert result.path[0].detail == "+493055501 answered and hung up first"


def test_without_resume_the_call_ends_when_the_third_party_hangs_up():
    contact, result = run_transfer("connected_then_far_end_hung_up",
                                   transfer(errors={"NoMatchingError": "error"}, ContinueFlowExecution="False"))
    assert branches(result) == [("xfer", "transferred")] and result.outcome == "transferred"
    assert contact.dialled[0]["resume_after"] is False


@pytest.mark.parametrize("outcome", ["connected_then_caller_hung_up", "hang_up_while_ringing"])
def test_caller_hanging_up_ends_the_flow(outcome):
    _, result = run_transfer(outcome, transfer(errors=ALL_BRANCHES))
    assert branches(result) == [("xfer", "hung_up")] and result.outcome == "hung_up"


@pytest.mark.parametrize("outcome, branch, detail", [
    ("busy", "CallFailed", "+4930123456 is busy"),
    ("failed: no_carrier", "CallFailed", "the call to +4930123456 failed: no_carrier"),
    ("no_free_line", "CallFailed", "no free line to dial out on"),
    ("no_answer", "ConnectionTimeLimitExceeded", "+4930123456 did not answer within 30 s"),
])
def test_a_call_that_does_not_connect_takes_its_branch(outcome, branch, detail):
    _, result = run_transfer(outcome, transfer(errors=ALL_BRANCHES))
    assert branches(result)[0] == ("xfer", branch) and result.path[0].detail == detail
    assert branches(result)[1][0] == ALL_BRANCHES[branch]


@pytest.mark.parametrize("outcome", ["busy", "no_answer"])
def test_without_resume_or_without_the_branch_failures_take_no_matching_error(outcome):
    _, result = run_transfer(outcome, transfer(errors={"NoMatchingError": "error"}, ContinueFlowExecution="False"))
    assert branches(result)[:2] == [("xfer", "NoMatchingError"), ("error", "next")]
    _, result = run_transfer(outcome, transfer(errors={"NoMatchingError": "error"}))
    assert branches(result)[:2] == [("xfer", "NoMatchingError"), ("error", "next")]


def test_a_reference_that_is_not_a_number_and_a_contact_that_cannot_dial_take_the_error_branch():
    contact = DialingContact("busy")
    contact.attributes["desk"] = "ask Bob"
    result = run(flow_of(transfer(errors=ALL_BRANCHES, ThirdPartyPhoneNumber="$.Attributes.desk"), *AFTER),
                 contact, FakePrompts())
    assert branches(result)[0] == ("xfer", "NoMatchingError") and contact.dialled == []
    assert result.path[0].detail == 'ThirdPartyPhoneNumber "$.Attributes.desk" is "ask Bob", not a number to dial'
    result = run(flow_of(transfer(errors=ALL_BRANCHES), *AFTER), FakeContact(), FakePrompts())
    assert branches(result)[0] == ("xfer", "NoMatchingError") and result.path[0].detail == "this contact cannot dial out"
    sms = SmsContact("sms-1", "+4917000000", "hi", "+4930000")
    result = asyncio.run(run_flow(flow_of(transfer(errors=ALL_BRANCHES), *AFTER), sms, FakePrompts()))
    assert branches(result)[0] == ("xfer", "NoMatchingError")
    assert result.path[0].detail == "no transfer to a phone number on the SMS channel"


def test_an_unknown_outcome_is_an_error_and_the_bridge_may_last_hours():
    _, result = run_transfer("ringing forever", transfer(errors=ALL_BRANCHES))
    assert branches(result)[0] == ("xfer", "NoMatchingError")
    assert result.path[0].detail == "ValueError: transfer_to_number returned 'ringing forever'"
    flow = flow_of(transfer(errors=ALL_BRANCHES), *AFTER)

    async def limit():
        from gateway.flows.interpreter import _Run
        from gateway.clock import ManualClock
        return _Run(flow, DialingContact("busy"), FakePrompts(), ManualClock(), 120.0).time_limit(flow.actions["xfer"])
    assert asyncio.run(limit()) == 120.0 + 30.0 + MAX_BRIDGE_SECONDS


# -- rehearsal (`callgate flow simulate`)

def rehearsal_flow(tmp_path, resume="True"):
    action = transfer(errors=ALL_BRANCHES if resume == "True" else {"NoMatchingError": "error"},
                      ThirdPartyPhoneNumber="+49 30 555 0199", ThirdPartyDTMFDigits="7,#", ContinueFlowExecution=resume)
    path = tmp_path / "transfer.json"
    path.write_text(json.dumps({"Version": "2019-10-30", "StartAction": "xfer", "Actions": [action, *AFTER]}))
    return path


@pytest.mark.parametrize("outcome, branch, said", [
    ("answered", "next", None),
    ("busy", "CallFailed", "+49305550199 is busy"),
    ("no_answer", "ConnectionTimeLimitExceeded", "+49305550199 does not answer within 30 s"),
])
def test_rehearsal_dials_on_a_free_line_and_takes_the_outcome_asked_for(tmp_path, outcome, branch, said):
    from gateway.flows.simulate import rehearse
    from gateway.flows.validate import load_flow
    rehearsal = asyncio.run(rehearse(load_flow(rehearsal_flow(tmp_path)), transfer_outcome=outcome))
    step, events = rehearsal.steps[0]
    assert (step.identifier, step.branch) == ("xfer", branch)
    texts = [e.text for e in events if e.kind == "transfer"]
    assert texts[0] == "dials +49305550199 on a free line (rings up to 30 s)"
    if outcome == "answered":
        assert texts[1] == "+49305550199 answers; sends DTMF 7,# (a comma waits 750 ms); caller and +49305550199 talk"
        assert texts[2] == "+49305550199 hangs up after 60 s; the flow resumes"
        assert events[-1].at - events[0].at == 65.0
    else:
        assert texts[1:] == [said]
    with pytest.raises(ValueError, match="transfer_outcome 'maybe'"):
        asyncio.run(rehearse(load_flow(rehearsal_flow(tmp_path)), transfer_outcome="maybe"))


def test_cli_rehearses_a_handed_over_call_and_a_busy_number(tmp_path):
    import subprocess
    import sys
    path = rehearsal_flow(tmp_path, resume="False")
    out = subprocess.run([sys.executable, "-m", "gateway", "flow", "simulate", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "dials +49305550199 on a free line" in out.stdout and "-> transferred" in out.stdout
    assert "end: caller was transferred to +49305550199; the call ended when that side hung up" in out.stdout
    out = subprocess.run([sys.executable, "-m", "gateway", "flow", "simulate", str(path), "--transfer-outcome",
                          "busy", "--json"], capture_output=True, text=True, timeout=60)
    steps = json.loads(out.stdout)["steps"]
    assert [(s["id"], s["branch"]) for s in steps][:2] == [("xfer", "NoMatchingError"), ("error", "next")]
    assert steps[0]["detail"] == "+49305550199 is busy"
    bad = subprocess.run([sys.executable, "-m", "gateway", "flow", "simulate", str(path), "--transfer-outcome",
                          "maybe"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--transfer-outcome" in bad.stderr
