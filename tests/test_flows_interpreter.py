"""The flow interpreter against a fake call (standing in for the daemon's) and fake or real prompts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
from gateway.flows.interpreter import MAX_STEPS, CallerHungUp, FlowResult, run_flow, ssml_parts
from gateway.flows.model import Action, Flow
from gateway.flows.validate import load_flow, validate_flow_text
from gateway.media.prompts import PromptCache

DEMO_FLOW = Path(__file__).parents[1] / "deploy" / "demo" / "flow-main.json"
HANGUP = "hangup"  # in a FakeContact script: the caller hangs up at this point
SLOW = "slow"  # in a FakeContact script: this play never finishes
TEST_TIMEOUT = 10.0  # seconds one flow run may take in a test


class FakeContact:
    """One call as the daemon would present it, driven by a script of what the caller does.

    `during_prompts[i]` is what happens during the i-th prompt: None, a key, HANGUP or SLOW. A key pressed
    during a prompt that cannot be interrupted is buffered for the next get_digit.
    `keys[i]` answers the i-th get_digit: a key, None (timeout) or HANGUP.
    """

    def __init__(self, during_prompts=(), keys=(), queues=("support",), transfer="queued"):
        self.contact_id = "c-1"
        self.attributes: dict[str, str] = {}
        self.customer_number = "+15550100"
        self.system_number = "+15550199"
        self.queue_name: str | None = None
        self.during_prompts = list(during_prompts)
        self.keys = list(keys)
        self.queues = set(queues)
        self.transfer = transfer
        self.buffer: list[str] = []
        self.played: list[tuple[int, bool]] = []
        self.digit_timeouts: list[float] = []
        self.queue_refs: list[str] = []
        self.disconnected = False

    async def play(self, samples, *, interruptible):
        assert isinstance(samples, np.ndarray) and samples.dtype == np.int16
        self.played.append((len(samples), interruptible))
        event = self.during_prompts.pop(0) if self.during_prompts else None
        if event == HANGUP:
            raise CallerHungUp()
        if event == SLOW:
            await asyncio.Event().wait()
        if event is not None:
            if interruptible:
                return event
            self.buffer.append(event)
        return None

    async def get_digit(self, timeout):
        self.digit_timeouts.append(timeout)
        if self.buffer:
            return self.buffer.pop(0)
        event = self.keys.pop(0) if self.keys else None
        if event == HANGUP:
            raise CallerHungUp()
        return event

    def set_queue(self, queue_ref):
        self.queue_refs.append(queue_ref)
        if queue_ref in self.queues:
            self.queue_name = queue_ref
            return True
        return False

    async def transfer_to_queue(self):
        return self.transfer if self.queue_name else "no_queue"

    async def disconnect(self):
        self.disconnected = True


class FakePrompts:
    """Speech as 10 samples per character; text containing a `fail` word raises like a broken espeak."""

    def __init__(self, fail=()):
        self.spoken: list[str] = []
        self.files: list[Path] = []
        self.fail = fail

    async def text(self, text, voice="en-us"):
        if any(word in text for word in self.fail):
            raise RuntimeError(f"cannot render {text!r}")
        self.spoken.append(text)
        return np.ones(10 * len(text), dtype=np.int16)

    def file(self, path):
        self.files.append(Path(path))
        return np.zeros(800, dtype=np.int16)


class StepClock:
    """Wall time that advances one second each time it is read."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def time(self):
        self.now += 1
        return self.now

    async def sleep(self, seconds):
        self.now += seconds


def run(flow: Flow, contact, prompts, **options) -> FlowResult:
    return asyncio.run(asyncio.wait_for(run_flow(flow, contact, prompts, **options), TEST_TIMEOUT))


def demo() -> Flow:
    return load_flow(DEMO_FLOW)


def flow_of(*actions, base_dir=None) -> Flow:
    text = json.dumps({"Version": "2019-10-30", "StartAction": actions[0]["Identifier"], "Actions": list(actions)})
    flow, issues = validate_flow_text(text, "test.json", base_dir=base_dir)
    assert flow is not None, [str(i) for i in issues]
    return flow


def say(identifier, text, next_action="bye", **params):
    return {"Identifier": identifier, "Type": "MessageParticipant", "Parameters": {"Text": text, **params},
            "Transitions": {"NextAction": next_action}}


BYE = {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}


def branches(result: FlowResult) -> list[tuple[str, str]]:
    return [(s.identifier, s.branch) for s in result.path]


def test_key_1_queues_the_caller_for_support():
    contact, prompts = FakeContact(keys=["1"]), FakePrompts()
    result = run(demo(), contact, prompts)
    assert result.outcome == "queued" and result.error is None
    assert branches(result) == [("greeting", "condition:1"), ("set-support-queue", "next"),
                                ("hold-message", "next"), ("transfer", "queued")]
    assert contact.queue_refs == ["support"] and not contact.disconnected
    assert prompts.spoken == ["Thank you for calling the callgate demo. For support, press 1. To leave, press 2.",
                              "Please hold while we connect you to an agent."]
    assert contact.played[0] == (10 * len(prompts.spoken[0]), True)  # the menu prompt can be interrupted
    assert contact.played[1][1] is False


def test_key_2_says_goodbye_and_hangs_up():
    contact, prompts = FakeContact(keys=["2"]), FakePrompts()
    result = run(demo(), contact, prompts)
    assert result.outcome == "disconnected"
    assert branches(result) == [("greeting", "condition:2"), ("goodbye", "next"), ("hang-up", "disconnected")]
    assert contact.disconnected and prompts.spoken[-1] == "Thank you for calling. Goodbye."


def test_no_key_takes_the_timeout_branch_after_the_input_limit():
    contact = FakeContact(keys=[None])
    result = run(demo(), contact, FakePrompts())
    assert branches(result)[0] == ("greeting", "InputTimeLimitExceeded")
    assert contact.digit_timeouts == [5.0]
    assert result.outcome == "disconnected"


def test_other_key_takes_the_no_match_branch():
    result = run(demo(), FakeContact(keys=["7"]), FakePrompts())
    assert branches(result)[:2] == [("greeting", "NoMatchingCondition"), ("goodbye", "next")]
    assert result.path[0].detail == "key '7'"


def test_key_during_the_prompt_is_the_input():
    contact = FakeContact(during_prompts=["1"])
    result = run(demo(), contact, FakePrompts())
    assert result.outcome == "queued"
    assert contact.digit_timeouts == []  # no wait after an interrupted prompt


def test_key_pressed_during_a_message_reaches_the_next_menu():
    flow = flow_of(say("intro", "Welcome.", "menu"), {
        "Identifier": "menu", "Type": "GetParticipantInput",
        "Parameters": {"Text": "Press 3.", "InputTimeLimitSeconds": 8},
        "Transitions": {"Conditions": [{"NextAction": "bye", "Condition": {"Operator": "Equals", "Operands": ["3"]}}],
                        "Errors": [{"NextAction": "bye", "ErrorType": "InputTimeLimitExceeded"},
                                   {"NextAction": "bye", "ErrorType": "NoMatchingCondition"}]}}, BYE)
    contact = FakeContact(during_prompts=["3", None])
    result = run(flow, contact, FakePrompts())
    assert branches(result) == [("intro", "next"), ("menu", "condition:3"), ("bye", "disconnected")]
    assert contact.digit_timeouts == [8.0]


def test_hang_up_mid_prompt_ends_the_flow_cleanly():
    contact = FakeContact(during_prompts=[HANGUP])
    result = run(demo(), contact, FakePrompts())
    assert result.outcome == "hung_up" and result.error is None
    assert branches(result) == [("greeting", "hung_up")]
    assert not contact.disconnected


def test_hang_up_while_waiting_for_a_key():
    result = run(demo(), FakeContact(keys=[HANGUP]), FakePrompts())
    assert result.outcome == "hung_up" and branches(result) == [("greeting", "hung_up")]


def test_queue_at_capacity_branch():
    contact, prompts = FakeContact(keys=["1"], transfer="at_capacity"), FakePrompts()
    result = run(demo(), contact, prompts)
    assert result.outcome == "disconnected"
    assert branches(result)[3:] == [("transfer", "QueueAtCapacity"), ("queue-unavailable", "next"),
                                    ("hang-up", "disconnected")]
    assert prompts.spoken[-1].startswith("Sorry, all our agents are busy")


def test_unknown_queue_takes_the_error_branch():
    contact = FakeContact(keys=["1"], queues=())
    result = run(demo(), contact, FakePrompts())
    assert branches(result)[1] == ("set-support-queue", "NoMatchingError")
    assert result.path[1].detail == "unknown queue 'support'"
    assert result.outcome == "disconnected"


def test_prompt_failure_takes_the_error_branch():
    result = run(demo(), FakeContact(keys=["1"]), FakePrompts(fail=["Please hold"]))
    assert branches(result)[2] == ("hold-message", "NoMatchingError")
    assert "RuntimeError: cannot render" in result.path[2].detail
    assert result.outcome == "queued"


def test_prompt_failure_without_error_branch_ends_with_error():
    flow = flow_of(say("hello", "broken words"), BYE)
    result = run(flow, FakeContact(), FakePrompts(fail=["broken"]))
    assert result.outcome == "error"
    assert result.error.startswith("action 'hello' (MessageParticipant) has no NoMatchingError branch: RuntimeError")
    assert branches(result) == [("hello", "error")]


def test_action_timeout_is_an_error():
    flow = flow_of(say("hello", "slow words"), BYE)
    result = run(flow, FakeContact(during_prompts=[SLOW]), FakePrompts(), action_timeout=0.02)
    assert result.outcome == "error" and "timed out after 0.02 s" in result.error


def test_path_records_the_time_of_each_step():
    result = run(demo(), FakeContact(keys=["2"]), FakePrompts(), clock=StepClock())
    assert [s.at for s in result.path] == [1001.0, 1002.0, 1003.0]
    assert [s.type for s in result.path] == ["GetParticipantInput", "MessageParticipant", "DisconnectParticipant"]


def test_loop_guard_stops_a_runaway_flow():
    flow = flow_of(say("again", "and again", "again"))
    result = run(flow, FakeContact(), FakePrompts())
    assert result.outcome == "error" and "loop guard" in result.error
    assert len(result.path) == MAX_STEPS


def test_references_in_attributes_and_text():
    attrs = {"Identifier": "attrs", "Type": "UpdateContactAttributes",
             "Parameters": {"Attributes": {"caller": "$.CustomerEndpoint.Address", "greeting": "hi",
                                           "key_$.StoredCustomerInput": "x"}},
             "Transitions": {"NextAction": "menu"}}
    menu = {"Identifier": "menu", "Type": "GetParticipantInput", "Parameters": {"Text": "Press a key."},
            "Transitions": {"Conditions": [{"NextAction": "queue", "Condition": {"Operator": "Equals",
                                                                                "Operands": ["4"]}}],
                            "Errors": [{"NextAction": "bye", "ErrorType": "InputTimeLimitExceeded"}]}}
    queue = {"Identifier": "queue", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "$.Attributes.q"},
             "Transitions": {"NextAction": "tell"}}
    tell = say("tell", "$.Attributes.greeting $.Attributes.caller, you pressed $.StoredCustomerInput on "
                       "$.SystemEndpoint.Address for $.Queue.Name.$.External.nothing", "end")
    end = {"Identifier": "end", "Type": "EndFlowExecution", "Parameters": {}}
    contact, prompts = FakeContact(keys=["4"], queues=["sales"]), FakePrompts()
    contact.attributes["q"] = "sales"
    result = run(flow_of(attrs, menu, queue, tell, end, BYE), contact, prompts)
    assert result.outcome == "ended" and not contact.disconnected
    assert contact.attributes == {"q": "sales", "caller": "+15550100", "greeting": "hi", "key_": "x"}
    assert contact.queue_refs == ["sales"]
    assert prompts.spoken[-1] == "hi +15550100, you pressed 4 on +15550199 for sales."


def test_transfer_without_working_queue_takes_the_error_branch():
    transfer = {"Identifier": "t", "Type": "TransferContactToQueue",
                "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"},
                                           {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}}
    result = run(flow_of(transfer, BYE), FakeContact(), FakePrompts())
    assert branches(result) == [("t", "NoMatchingError"), ("bye", "disconnected")]
    assert result.path[0].detail == "no working queue set"


def test_ssml_pauses_become_silence_and_text_is_spoken():
    ssml = ('<speak>Your code is <say-as interpret-as="digits">$.Attributes.code</say-as>.'
            '<break time="500ms"/>Bye</speak>')
    flow = flow_of({"Identifier": "s", "Type": "MessageParticipant", "Parameters": {"SSML": ssml},
                    "Transitions": {"NextAction": "bye"}}, BYE)
    contact, prompts = FakeContact(), FakePrompts()
    contact.attributes["code"] = "42<&"
    run(flow, contact, prompts)
    assert prompts.spoken == ["Your code is 4 2 < &.", "Bye"]
    assert contact.played[0][0] == 10 * len("Your code is 4 2 < &.") + 4000 + 10 * len("Bye")


def test_ssml_parts_and_breaks():
    assert ssml_parts('<speak><p>One</p><p>Two<break strength="strong"/></p><break time="30s"/></speak>') == [
        "One Two", 0.75, " ", 10.0]


def test_prompt_file_is_relative_to_the_flow_folder(tmp_path):
    (tmp_path / "hello.wav").write_bytes(b"RIFF")
    flow = flow_of({"Identifier": "p", "Type": "MessageParticipant", "Parameters": {"PromptId": "hello.wav"},
                    "Transitions": {"NextAction": "bye"}}, BYE, base_dir=tmp_path)
    prompts = FakePrompts()
    result = run(flow, FakeContact(), prompts)
    assert prompts.files == [tmp_path / "hello.wav"] and result.outcome == "disconnected"


def test_action_the_interpreter_cannot_run_is_an_error():
    flow = Flow("2019-10-30", "x", {"x": Action("x", "CreateTask", {}, "x")}, "hand.json", Path("."))
    result = run(flow, FakeContact(), FakePrompts())
    assert result.outcome == "error" and "not supported here: CreateTask" in result.error


def test_demo_flow_with_real_prompt_cache(tmp_path):
    cache = PromptCache(tmp_path / "cache")
    contact = FakeContact(keys=["1"])
    result = run(demo(), contact, cache)
    assert result.outcome == "queued"
    greeting_samples, interruptible = contact.played[0]
    assert interruptible and greeting_samples > 8000 * 3  # several seconds of 8 kHz speech
    assert len(list((tmp_path / "cache").glob("*.wav"))) == 2
