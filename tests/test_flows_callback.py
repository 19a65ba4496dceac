"""The CreateCallbackContact flow block: its validation (each mistake with its JSON path), how it reads the
designer's parameters, and its run in the interpreter against the fake call of test_flows_interpreter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.flows.blocks.callback import callback_options
from gateway.flows.validate import validate_flow_text
from tests.test_flows_interpreter import BYE, FakeContact, FakePrompts, branches, flow_of, run, say

REAL = Path("/work/shared/flows/real")
PARAMS = {"InitialCallDelaySeconds": "5", "MaximumConnectionAttempts": "1", "RetryDelaySeconds": "600"}


def cb(next_action="thanks", errors=None, **params):
    transitions = {} if next_action is None else {"NextAction": next_action}
    transitions["Errors"] = [{"ErrorType": k, "NextAction": v} for k, v in (errors or {}).items()]
    return {"Identifier": "cb", "Type": "CreateCallbackContact", "Parameters": params, "Transitions": transitions}


def issues_of(action) -> list[str]:
    text = json.dumps({"Version": "2019-10-30", "StartAction": "cb", "Actions": [
        action, say("thanks", "Thanks.", "bye"), BYE]}, indent=1)
    _, issues = validate_flow_text(text, "cb.json", base_dir=Path("."))
    return [f"{i.severity} {i.path}: {i.message}" for i in issues]


class CallbackContact(FakeContact):
    """The fake call, able to leave callbacks: `refuse` is the LookupError text when it cannot."""

    def __init__(self, refuse: str | None = None, **script):
        super().__init__(**script)
        self.refuse = refuse
        self.created: list[dict] = []

    def create_callback(self, **options):
        if self.refuse:
            raise LookupError(self.refuse)
        self.created.append(options)
        return f"cb-{len(self.created)}"


# -- validation

def test_the_designers_parameters_are_valid_and_read_as_retries():
    assert issues_of(cb(**PARAMS, QueueId="arn:aws:connect:eu:1:instance/x/queue/support")) == []
    options = callback_options(PARAMS)
    assert (options.initial_delay, options.retries, options.retry_delay) == (5.0, 1, 600.0)
    assert callback_options({**PARAMS, "MaximumConnectionAttempts": "0"}).retries == 0   # one attempt


@pytest.mark.parametrize("change, expected", [
    ({"InitialCallDelaySeconds": "0"}, "error $.Actions[0].Parameters.InitialCallDelaySeconds: InitialCallDelaySeconds "
                                       'must be a whole number 1-259200, found "0"'),
    ({"RetryDelaySeconds": "1.5"}, "error $.Actions[0].Parameters.RetryDelaySeconds: RetryDelaySeconds must be a whole "
                                   'number 1-259200, found "1.5"'),
    ({"MaximumConnectionAttempts": 21}, "error $.Actions[0].Parameters.MaximumConnectionAttempts: "
                                        "MaximumConnectionAttempts must be a whole number 0-20, found 21"),
    ({"MaximumConnectionAttempts": "$.Attributes.tries"}, "error $.Actions[0].Parameters.MaximumConnectionAttempts: "
                                                          "MaximumConnectionAttempts must be given statically"),
    ({"AgentId": "alice"}, "error $.Actions[0].Parameters.AgentId: agent queues (AgentId) are not supported here"),
    ({"QueueId": ""}, "error $.Actions[0].Parameters.QueueId: QueueId must be a queue id, name, ARN or one reference, "
                      "found an empty string"),
    ({"ContactFlowId": "whisper"}, "warning $.Actions[0].Parameters.ContactFlowId: outbound whisper flows are not run"),
    ({"Colour": "blue"}, "warning $.Actions[0].Parameters.Colour: CreateCallbackContact has no parameter 'Colour'"),
])
def test_each_mistake_is_placed(change, expected):
    found = issues_of(cb(**{**PARAMS, **change}))
    assert any(i.startswith(expected) for i in found), found


def test_missing_parameters_and_next_action_are_errors():
    found = issues_of(cb(next_action=None, InitialCallDelaySeconds="5"))
    assert "error $.Actions[0].Transitions: missing Transitions.NextAction (CreateCallbackContact continues to it)" \
        in found
    assert any(i.startswith("error $.Actions[0].Parameters: missing MaximumConnectionAttempts") for i in found)
    assert any(i.startswith("error $.Actions[0].Parameters: missing RetryDelaySeconds") for i in found)


@pytest.mark.parametrize("name", ["07-sample-queue-configurations-callback.json", "12-gts-callback-module.json",
                                  "19-callbackmgmt-set-callback.json"])
def test_the_real_callback_flows_validate(name):
    flow, issues = validate_flow_text((REAL / name).read_text(encoding="utf-8"), name)
    assert flow is not None and not [i for i in issues if i.severity == "error"]
    assert any(a.type == "CreateCallbackContact" for a in flow.actions.values())


# -- running

def test_a_callback_is_left_and_the_flow_goes_on():
    flow = flow_of(cb(errors={"NoMatchingError": "sorry"}, **PARAMS, QueueId="$.Attributes.q"),
                   say("thanks", "We will call you back.", "bye"), say("sorry", "Sorry.", "bye"), BYE)
    contact = CallbackContact()
    contact.attributes["q"] = "sales"
    result = run(flow, contact, FakePrompts())
    assert branches(result) == [("cb", "next"), ("thanks", "next"), ("bye", "disconnected")]
    assert result.path[0].detail == "callback cb-1"
    assert contact.created == [{"queue_ref": "sales", "initial_delay": 5.0, "retries": 1, "retry_delay": 600.0}]


def test_a_callback_that_cannot_be_left_takes_no_matching_error_with_why():
    flow = flow_of(cb(errors={"NoMatchingError": "sorry"}, **PARAMS), say("thanks", "Thanks.", "bye"),
                   say("sorry", "Sorry.", "bye"), BYE)
    result = run(flow, CallbackContact(refuse="no working queue"), FakePrompts())
    assert branches(result)[0] == ("cb", "NoMatchingError") and result.path[0].detail == "no working queue"
    result = run(flow, FakeContact(), FakePrompts())          # a contact without callbacks (an SMS, a rehearsal)
    assert branches(result)[0] == ("cb", "NoMatchingError")
