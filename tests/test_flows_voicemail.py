"""The Callgate.RecordVoicemail flow block: its validation (each error with its JSON path) and its run in
the interpreter against the fake call of test_flows_interpreter (greeting, beep, branches, hang-up)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from gateway.flows.interpreter import CallerHungUp
from gateway.flows.validate import validate_flow_text, voicemail_options
from gateway.media.tones import beep, dominant_frequency
from gateway.media.voicemail import HUNG_UP, KEY, NO_INPUT, NO_SPEECH, RECORDED, SILENCE, VoicemailResult
from tests.test_flows_interpreter import BYE, FakeContact, FakePrompts, branches, flow_of, run, say

VM = "Callgate.RecordVoicemail"


def kept(ended_by=SILENCE, status=RECORDED) -> VoicemailResult:
    return VoicemailResult(status, ended_by, Path("/vm/c-1.wav"), 4.5, 3.9, 6.0, 0.3)


def discarded(ended_by=NO_INPUT) -> VoicemailResult:
    return VoicemailResult(NO_SPEECH, ended_by, None, 0.0, 0.0, 5.0)


class VoicemailContact(FakeContact):
    """The fake call, able to take a message: `outcome` is what the recording ends with (a result,
    HUNG_UP after keeping it, or "never" for a recording that does not end)."""

    def __init__(self, outcome, **script):
        super().__init__(**script)
        self.outcome = outcome
        self.recordings: list[dict] = []
        self.samples: list[np.ndarray] = []

    async def play(self, samples, *, interruptible):
        self.samples.append(samples)
        return await super().play(samples, interruptible=interruptible)

    async def record_voicemail(self, *, max_seconds, silence_seconds, stop_keys):
        self.recordings.append({"max_seconds": max_seconds, "silence_seconds": silence_seconds, "stop_keys": stop_keys})
        if self.outcome == "never":
            await asyncio.Event().wait()
        if self.outcome == HUNG_UP:
            raise CallerHungUp("customer_hung_up")
        return self.outcome


def vm(next_action=None, errors=None, **params):
    transitions = {} if next_action is None else {"NextAction": next_action}
    if errors:
        transitions["Errors"] = [{"ErrorType": k, "NextAction": v} for k, v in errors.items()]
    return {"Identifier": "vm", "Type": VM, "Parameters": params, "Transitions": transitions}


def issues_of(*actions) -> list[str]:
    text = json.dumps({"Version": "2019-10-30", "StartAction": actions[0]["Identifier"], "Actions": list(actions)},
                      indent=1)
    flow, issues = validate_flow_text(text, "vm.json", base_dir=Path("."))
    return [f"{i.severity} {i.path}: {i.message}" for i in issues]


# -- validation

def test_a_bare_block_is_valid_and_takes_the_defaults():
    assert issues_of(vm()) == []
    options = voicemail_options({})
    assert (options.max_seconds, options.silence_seconds, options.stop_keys, options.beep) == (120.0, 5.0, "#", True)
    options = voicemail_options({"MaxLengthSeconds": "3600", "SilenceSeconds": 2.5, "StopKeys": "*#", "Beep": "False"})
    assert (options.max_seconds, options.silence_seconds, options.stop_keys, options.beep) == (3600.0, 2.5, "*#", False)


@pytest.mark.parametrize("params, expected", [
    ({"MaxLengthSeconds": 3601}, "error $.Actions[0].Parameters.MaxLengthSeconds: MaxLengthSeconds must be between "
                                 "1 and 3600 seconds, found 3601"),
    ({"MaxLengthSeconds": "long"}, 'error $.Actions[0].Parameters.MaxLengthSeconds: MaxLengthSeconds must be a number '
                                   'of seconds, found string "long"'),
    ({"SilenceSeconds": 0.2}, "error $.Actions[0].Parameters.SilenceSeconds: SilenceSeconds must be between 0.5 and "
                              "60 seconds, found 0.2"),
    ({"StopKeys": "#A"}, "error $.Actions[0].Parameters.StopKeys: StopKeys \"#A\" holds 'A', not phone keys "
                         "(0-9, *, #)"),
    ({"StopKeys": 5}, 'error $.Actions[0].Parameters.StopKeys: StopKeys must be a string of phone keys such as "#", '
                      "found number 5"),
    ({"Beep": "loud"}, 'error $.Actions[0].Parameters.Beep: Beep must be true or false, found string "loud"'),
    ({"Text": ""}, "error $.Actions[0].Parameters.Text: Text is empty"),
    ({"Text": "Hi", "SSML": "<speak>Hi</speak>"}, "error $.Actions[0].Parameters: give only one prompt parameter, "
                                                  "found Text, SSML"),
    ({"MaxLength": 30}, "warning $.Actions[0].Parameters.MaxLength: Callgate.RecordVoicemail has no parameter "
                        "'MaxLength'; it is ignored (known: MaxLengthSeconds, SilenceSeconds, StopKeys, Beep, Text, "
                        "SSML, PromptId)"),
])
def test_each_bad_parameter_is_named_by_its_path(params, expected):
    assert issues_of(vm(**params)) == [expected]


def test_branches_it_never_takes_are_flagged_and_connect_names_are_not_taken():
    found = issues_of(vm(errors={"InputTimeLimitExceeded": "bye"}), BYE)
    assert found == ["warning $.Actions[0].Transitions.Errors[0]: Callgate.RecordVoicemail never raises "
                     "InputTimeLimitExceeded; this branch is never taken"]
    plain = {"Identifier": "vm", "Type": "RecordVoicemail", "Parameters": {}, "Transitions": {}}
    assert issues_of(plain) == ["error $.Actions[0]: not supported here: RecordVoicemail at $.Actions[0]"]


# -- running it

def test_greeting_beep_and_a_kept_message_end_the_call():
    contact, prompts = VoicemailContact(kept()), FakePrompts()
    result = run(flow_of(vm(Text="Please leave a message.")), contact, prompts)
    assert result.outcome == "voicemail" and result.error is None
    assert branches(result) == [("vm", "voicemail")]
    assert result.path[0].detail == kept().describe()
    assert prompts.spoken == ["Please leave a message."]
    assert contact.played == [(10 * len("Please leave a message."), True), (beep().size, False)]
    assert abs(dominant_frequency(contact.samples[1]) - 1000) < 5
    assert contact.recordings == [{"max_seconds": 120.0, "silence_seconds": 5.0, "stop_keys": "#"}]
    assert not contact.disconnected  # the daemon hangs up after the flow ends


def test_a_kept_message_goes_on_to_next_action_with_the_block_settings():
    flow = flow_of(vm("thanks", MaxLengthSeconds="30", SilenceSeconds=1.5, StopKeys="*#", Beep=False),
                   say("thanks", "Thank you."), BYE)
    contact = VoicemailContact(kept(KEY))
    result = run(flow, contact, FakePrompts())
    assert branches(result) == [("vm", "next"), ("thanks", "next"), ("bye", "disconnected")]
    assert contact.played == [(10 * len("Thank you."), False)]  # no greeting, no beep
    assert contact.recordings == [{"max_seconds": 30.0, "silence_seconds": 1.5, "stop_keys": "*#"}]


def test_no_speech_takes_the_no_speech_branch_or_ends_the_flow():
    flow = flow_of(vm("thanks", errors={"NoSpeech": "sorry"}), say("thanks", "Thank you."),
                   say("sorry", "We did not hear you."), BYE)
    result = run(flow, VoicemailContact(discarded()), FakePrompts())
    assert branches(result) == [("vm", "NoSpeech"), ("sorry", "next"), ("bye", "disconnected")]
    assert result.path[0].detail.startswith("no_speech, ended by no_input")

    flow = flow_of(vm("thanks"), say("thanks", "Thank you."), BYE)
    result = run(flow, VoicemailContact(discarded(KEY)), FakePrompts())
    assert result.outcome == "voicemail" and branches(result) == [("vm", "voicemail")]


def test_hang_up_during_the_message_ends_the_flow_cleanly():
    result = run(flow_of(vm("thanks"), say("thanks", "Thank you."), BYE), VoicemailContact(HUNG_UP), FakePrompts())
    assert result.outcome == "hung_up" and branches(result) == [("vm", "hung_up")]


def test_a_key_skips_the_greeting_and_the_beep_still_plays():
    contact = VoicemailContact(kept(), during_prompts=["5"])
    run(flow_of(vm(Text="A long greeting.")), contact, FakePrompts())
    assert [p[1] for p in contact.played] == [True, False] and contact.recordings


def test_text_channel_and_a_call_without_voicemail_take_the_error_branch():
    flow = flow_of(vm("thanks", errors={"NoMatchingError": "sorry"}), say("thanks", "Thank you."),
                   say("sorry", "Sorry."), BYE)
    sms = VoicemailContact(kept())
    sms.channel = "SMS"
    sms.sent = []

    async def send_text(text):
        sms.sent.append(text)
    sms.send_text = send_text
    result = run(flow, sms, FakePrompts())
    assert branches(result)[0] == ("vm", "NoMatchingError")
    assert result.path[0].detail == "no voicemail on the SMS channel" and sms.recordings == []

    result = run(flow, FakeContact(), FakePrompts())
    assert branches(result)[0] == ("vm", "NoMatchingError")


def test_the_time_limit_grows_with_the_maximum_length():
    flow = flow_of(vm("thanks", errors={"NoMatchingError": "thanks"}, MaxLengthSeconds=1, Beep=False),
                   say("thanks", "Thank you."), BYE)
    result = run(flow, VoicemailContact("never"), FakePrompts(), action_timeout=0.1)
    assert branches(result)[0] == ("vm", "NoMatchingError")
    assert result.path[0].detail == "timed out after 1.1 s"
