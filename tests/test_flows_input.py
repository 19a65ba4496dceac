"""Store customer input (GetParticipantInput with StoreInput "True"), phone-number validation and the
voice blocks, against a caller whose keys are pressed at set times on a ManualClock (no sleeping)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from gateway.clock import ManualClock
from gateway.flows.blocks.prompts import KeyEntry, StoreSettings
from gateway.flows.blocks.voice import espeak_voice, language_voice
from gateway.flows.interpreter import run_flow
from gateway.flows.phone import to_e164
from gateway.flows.simulate import rehearse
from gateway.flows.validate import validate_flow_text
from gateway.media.prompts import PromptCache

REAL = Path(__file__).parents[2] / "shared" / "flows" / "real"
SAMPLES_PER_CHAR = 800  # FakePrompts: 0.1 s of speech per character


class TimedCaller:
    """A call whose caller presses keys at given seconds after the flow starts, as the daemon's
    ContactSession presents it: a key pressed while nothing reads keys waits in the buffer (type-ahead);
    an interruptible prompt stops at the first key; get_digit waits at most its timeout."""

    def __init__(self, clock: ManualClock, presses=(), channel="VOICE"):
        self.clock, self.start = clock, clock.monotonic()
        self.presses = sorted(presses, key=lambda p: p[0])
        self.contact_id, self.attributes = "c-input", {}
        self.customer_number, self.system_number, self.queue_name = "+15550100", "+15550199", None
        self.channel = channel
        self.played: list[tuple[float, bool]] = []  # (seconds of audio, interruptible)
        self.waits: list[float] = []
        self.texts: list[str] = []

    def _take(self, until: float) -> str | None:
        if self.presses and self.start + self.presses[0][0] <= until:
            at, key = self.presses.pop(0)
            self.clock.advance(max(0.0, self.start + at - self.clock.monotonic()))
            return key
        return None

    def elapsed(self) -> float:
        return self.clock.monotonic() - self.start

    async def play(self, samples, *, interruptible):
        seconds = len(samples) / 8000
        self.played.append((seconds, interruptible))
        end = self.clock.monotonic() + seconds
        if interruptible and (key := self._take(end)) is not None:
            return key
        self.clock.advance(end - self.clock.monotonic())
        return None

    async def get_digit(self, timeout):
        self.waits.append(timeout)
        key = self._take(self.clock.monotonic() + timeout)
        if key is None:
            self.clock.advance(timeout)
        return key

    async def send_text(self, text):
        self.texts.append(text)

    def set_queue(self, queue_ref):
        return False

    async def transfer_to_queue(self):
        return "no_queue"

    async def disconnect(self):
        pass


class VoicePrompts:
    """Speech as 0.1 s per character; remembers each text with the voice it was asked for."""

    def __init__(self):
        self.spoken: list[tuple[str, str]] = []

    async def text(self, text, voice="en-us"):
        self.spoken.append((voice, text))
        return np.zeros(SAMPLES_PER_CHAR * len(text), dtype=np.int16)

    def file(self, path):
        return np.zeros(8000, dtype=np.int16)


def presses(keys: str, start=1.0, gap=1.0):
    """Keys pressed one after another from `start` seconds, `gap` apart."""
    return [(start + i * gap, k) for i, k in enumerate(keys)]


def store(identifier="ask", next_action="said", validation=None, dtmf=None, errors=("NoMatchingError",),
          text="Enter", **params) -> dict:
    parameters = {"Text": text, "StoreInput": "True", "InputTimeLimitSeconds": "5",
                  "InputValidation": validation or {"CustomValidation": {"MaximumLength": "4"}}, **params}
    if dtmf is not None:
        parameters["DTMFConfiguration"] = dtmf
    return {"Identifier": identifier, "Type": "GetParticipantInput", "Parameters": parameters,
            "Transitions": {"NextAction": next_action,
                            "Errors": [{"NextAction": "bye", "ErrorType": e} for e in errors]}}


def say(identifier, text, next_action="bye"):
    return {"Identifier": identifier, "Type": "MessageParticipant", "Parameters": {"Text": text},
            "Transitions": {"NextAction": next_action}}


BYE = {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
SAID = say("said", "You typed $.StoredCustomerInput")


def flow_of(*actions):
    flow, issues = validate_flow_text(document(*actions), "test.json")
    assert flow is not None, [str(i) for i in issues]
    return flow


def document(*actions) -> str:
    return json.dumps({"Version": "2019-10-30", "StartAction": actions[0]["Identifier"], "Actions": list(actions)},
                      indent=2)


def run(flow, caller, prompts=None):
    prompts = prompts or VoicePrompts()
    result = asyncio.run(asyncio.wait_for(run_flow(flow, caller, prompts, clock=caller.clock), 10))
    return result, prompts


def store_run(action, keys=None, timed=None, **caller):
    clock = ManualClock()
    contact = TimedCaller(clock, timed if timed is not None else presses(keys or ""), **caller)
    result, prompts = run(flow_of(action, SAID, BYE), contact)
    return result, contact, prompts


# -- how an entry ends


def test_entry_ends_when_the_maximum_digits_are_typed():
    result, caller, prompts = store_run(store(), "12345")
    ask = result.path[0]
    assert (ask.branch, ask.detail) == ("next", "stored '1234' (4 digits, the maximum)")
    assert prompts.spoken[-1] == ("en-us", "You typed 1234")
    assert caller.waits == [5.0, 5.0, 5.0, 5.0]  # first key, then three keys at the inter-digit limit
    assert caller.presses == [(5.0, "5")]  # the fifth key is not part of the entry


def test_terminator_ends_the_entry_and_is_not_stored():
    result, caller, prompts = store_run(store(), "12#")
    assert result.path[0].detail == "stored '12' (ended by #)"
    assert prompts.spoken[-1][1] == "You typed 12"
    assert caller.elapsed() == pytest.approx(3.0 + 0.1 * len("You typed 12"))  # ended at the # (3 s), no wait


def test_custom_terminator_of_several_keys():
    action = store(dtmf={"InputTerminationSequence": "##", "DisableCancelKey": "True"})
    result, _, _ = store_run(action, "1#2##")
    assert result.path[0].detail == "stored '1#2' (ended by ##)"


def test_star_clears_what_was_typed_and_starts_again():
    result, _, prompts = store_run(store(), "12*34#")
    assert result.path[0].detail == "stored '34' (ended by #)"
    assert prompts.spoken[-1][1] == "You typed 34"


def test_star_is_an_ordinary_key_when_the_cancel_key_is_disabled():
    result, _, _ = store_run(store(dtmf={"DisableCancelKey": "True"}), "1*2#")
    assert result.path[0].detail == "stored '1*2' (ended by #)"


def test_no_key_goes_on_along_next_action_with_timeout_as_the_value():
    result, caller, prompts = store_run(store(), "")
    ask = result.path[0]
    assert (ask.branch, ask.detail) == ("next", 'no key within 5 s: $.StoredCustomerInput is "Timeout"')
    assert prompts.spoken[-1][1] == "You typed Timeout"
    assert caller.waits == [5.0]
    assert caller.played[0] == (pytest.approx(0.1 * len("Enter")), True)


def test_no_key_takes_the_input_time_limit_branch_when_the_flow_has_one():
    action = store(errors=("InputTimeLimitExceeded", "NoMatchingError"), InputTimeLimitSeconds="8")
    result, caller, _ = store_run(action, "")
    assert [(s.identifier, s.branch) for s in result.path] == [("ask", "InputTimeLimitExceeded"),
                                                               ("bye", "disconnected")]
    assert caller.waits == [8.0]


def test_partial_entry_is_stored_after_the_inter_digit_limit():
    action = store(dtmf={"InterdigitTimeLimitSeconds": "2"})
    result, caller, _ = store_run(action, timed=[(1.0, "1"), (2.5, "2")])
    assert result.path[0].detail == "stored '12' (no key for 2 s)"
    assert caller.waits == [5.0, 2.0, 2.0]
    # 0.5 s prompt, the first key 1 s in, the second at 2.5 s, then 2 s of silence
    assert result.path[1].at - result.path[0].at == pytest.approx(4.5)


def test_default_inter_digit_limit_is_five_seconds():
    result, caller, _ = store_run(store(), timed=[(1.0, "7"), (6.0, "8"), (11.5, "9")])
    assert result.path[0].detail == "stored '78' (no key for 5 s)"
    assert caller.presses == [(11.5, "9")]


def test_an_entry_that_never_ends_stops_at_its_longest():
    action = store(validation={"CustomValidation": {"MaximumLength": "2"}})
    result, caller, _ = store_run(action, timed=[(1.0 + 4 * i, k) for i, k in enumerate("1*" * 50)])
    # 5 s between keys x (2 digits + terminator + 1) x 3 tries, from the first key (1 s in)
    assert result.path[0].detail == "stored '' (entry took its longest, 60 s)"
    assert result.path[1].at - result.path[0].at == pytest.approx(1.0 + 60.0)


def test_keys_typed_before_the_block_are_its_first_keys():
    flow = flow_of(say("intro", "Welcome to the line", "ask"), store(), SAID, BYE)
    caller = TimedCaller(ManualClock(), [(0.5, "1"), (1.0, "2"), (4.0, "3"), (5.0, "#")])
    result, prompts = run(flow, caller)
    assert result.path[1].detail == "stored '123' (ended by #)"
    assert caller.played[0] == (pytest.approx(0.1 * len("Welcome to the line")), False)
    assert caller.played[1][1] is True  # the buffered key interrupted the entry prompt at once
    assert caller.waits == [5.0, 5.0, 5.0]  # the 2 was waiting too: no time passes for it
    assert result.path[2].at - result.path[1].at == pytest.approx(5.0 - 1.9)  # the entry ended at the # (5 s)


def test_key_during_the_prompt_stops_it_and_starts_the_entry():
    result, caller, _ = store_run(store(text="Please enter your four digit code now"), timed=presses("4321", 0.5))
    assert result.path[0].detail == "stored '4321' (4 digits, the maximum)"
    assert result.path[1].at - result.path[0].at == pytest.approx(3.5)  # not the 3.7 s prompt + keys


def test_keys_given_together_count_one_by_one():
    result, _, _ = store_run(store(), timed=[(1.0, "98#")])
    assert result.path[0].detail == "stored '98' (ended by #)"


def test_store_input_on_a_text_channel_takes_the_error_branch():
    result, caller, _ = store_run(store(), "12#", channel="SMS")
    assert result.path[0].branch == "NoMatchingError"
    assert result.path[0].detail == "Store customer input takes keys on voice calls only, not on the SMS channel"


def test_key_entry_alone():
    entry = KeyEntry(StoreSettings(max_digits=4, terminator="0", cancel_key=None))
    assert not entry.press("1*") and entry.press("20") and (entry.typed, entry.ended) == ("1*2", "ended by 0")
    assert not KeyEntry(StoreSettings()).press("")
    entry = KeyEntry(StoreSettings(max_digits=3, terminator="##"))
    assert not entry.press("12#") and entry.press("5") and (entry.typed, entry.ended) == ("12#", "3 digits, the maximum")


# -- phone numbers


US_LOCAL = {"PhoneNumberValidation": {"NumberFormat": "Local", "CountryCode": "US"}}
E164 = {"PhoneNumberValidation": {"NumberFormat": "E164"}}


@pytest.mark.parametrize("validation, keys, branch, detail", [
    (US_LOCAL, "9095550142#", "next", "stored '+19095550142' from '9095550142' (ended by #)"),
    (US_LOCAL, "19095550142#", "next", "stored '+19095550142' from '19095550142' (ended by #)"),
    (US_LOCAL, "1095550142#", "InvalidPhoneNumber", "'1095550142' is not a valid Local number for US (ended by #)"),
    (US_LOCAL, "12345#", "InvalidPhoneNumber", "'12345' is not a valid Local number for US (ended by #)"),
    ({"PhoneNumberValidation": {"NumberFormat": "Local", "CountryCode": "de"}}, "0301234567#", "next",
     "stored '+49301234567' from '0301234567' (ended by #)"),
    (E164, "4930123456#", "next", "stored '+4930123456' from '4930123456' (ended by #)"),
    (E164, "0049301234#", "InvalidPhoneNumber", "'0049301234' is not a valid E164 number (ended by #)"),
    (E164, "1*2#", "InvalidPhoneNumber", "'2' is not a valid E164 number (ended by #)"),
])
def test_phone_number_validation(validation, keys, branch, detail):
    action = store(validation=validation, errors=("InvalidPhoneNumber", "NoMatchingError"))
    result, _, prompts = store_run(action, keys)
    assert (result.path[0].branch, result.path[0].detail) == (branch, detail)
    if branch == "next":
        assert prompts.spoken[-1][1] == f"You typed {detail.split(chr(39))[1]}"


def test_phone_number_entry_stops_at_fifteen_digits():
    result, _, _ = store_run(store(validation=E164), "4930123456789012")
    assert result.path[0].detail == "stored '+493012345678901' from '493012345678901' (15 digits, the maximum)"


@pytest.mark.parametrize("digits, number_format, country, expected", [
    ("0612345678", "Local", "FR", "+33612345678"), ("061234567", "Local", "FR", None),
    ("0612345678", "Local", "IT", "+390612345678"), ("89161234567", "Local", "RU", "+79161234567"),
    ("2079460000", "Local", "GB", "+442079460000"), ("2991234567", "E164", None, "+2991234567"),
    ("49030123456", "E164", None, None), ("123456", "E164", None, None), ("9095550142", "Local", "XX", None),
    ("", "Local", "US", None), ("9095550142", "National", "US", None),
])
def test_to_e164(digits, number_format, country, expected):
    assert to_e164(digits, number_format, country) == expected


def test_real_callback_number_block_runs():
    """File 19's "enter your 10 digit phone" block, as published, with its transitions pointed here."""
    doc = json.loads((REAL / "19-callbackmgmt-set-callback.json").read_text())
    [action] = [a for a in doc["Actions"] if a["Type"] == "GetParticipantInput" and a["Parameters"]["StoreInput"] == "True"]
    action = {**action, "Identifier": "ask", "Transitions": {
        "NextAction": "said", "Errors": [{"NextAction": "bye", "ErrorType": e["ErrorType"]}
                                         for e in action["Transitions"]["Errors"]]}}
    flow = flow_of(action, SAID, BYE)
    caller = TimedCaller(ManualClock(), presses("9095550142", 0.5, 0.3) + [(20.0, "#")])
    result, prompts = run(flow, caller)
    assert result.path[0].detail == "stored '+19095550142' from '9095550142' (no key for 5 s)"
    assert prompts.spoken == [("en-us", "Please enter your 10 digit phone beginning with the area code."),
                              ("en-us", "You typed +19095550142")]
    assert caller.waits == [5.0] * 10  # the first key interrupted the prompt; 9 more keys, then 5 s of silence
    assert caller.presses == [(20.0, "#")]


# -- validation


def issues_of(*actions):
    _, issues = validate_flow_text(document(*actions, SAID, BYE), "test.json")
    return [(i.severity, i.path, i.message) for i in issues]


P = "$.Actions[0].Parameters"


@pytest.mark.parametrize("change, expected", [
    ({"InputValidation": None},
     ("error", P, 'StoreInput "True" needs InputValidation: {"CustomValidation": {"MaximumLength": "N"}} or '
                  '{"PhoneNumberValidation": {"NumberFormat": "Local", "CountryCode": "US"}}')),
    ({"InputValidation": {"CustomValidation": {"MaximumLength": "4"}, **US_LOCAL}},
     ("error", f"{P}.InputValidation", "give CustomValidation or PhoneNumberValidation, not both")),
    ({"InputValidation": {}}, ("error", f"{P}.InputValidation", "InputValidation needs CustomValidation "
                                                                 "{MaximumLength} or PhoneNumberValidation "
                                                                 "{NumberFormat, CountryCode}")),
    ({"InputValidation": {"CustomValidation": {"MaximumLength": "0"}}},
     ("error", f"{P}.InputValidation.CustomValidation.MaximumLength",
      'MaximumLength must be a whole number of digits above 0, found "0"')),
    ({"InputValidation": {"CustomValidation": {"MaximumLength": "4.5"}}},
     ("error", f"{P}.InputValidation.CustomValidation.MaximumLength",
      'MaximumLength must be a whole number of digits above 0, found "4.5"')),
    ({"InputValidation": {"CustomValidation": {}}},
     ("error", f"{P}.InputValidation.CustomValidation",
      'missing MaximumLength (the most digits the caller may type, e.g. "4")')),
    ({"InputValidation": {"CustomValidation": {"MaximumLength": "25"}}},
     ("warning", f"{P}.InputValidation.CustomValidation.MaximumLength",
      "MaximumLength 25 is above the 20 digits Connect allows (callgate takes that many)")),
    ({"InputValidation": {"PhoneNumberValidation": {"NumberFormat": "International"}}},
     ("error", f"{P}.InputValidation.PhoneNumberValidation.NumberFormat",
      'NumberFormat must be "Local" (a national number of CountryCode) or "E164" (the caller types the country '
      'code), found "International"')),
    ({"InputValidation": {"PhoneNumberValidation": {"NumberFormat": "Local"}}},
     ("error", f"{P}.InputValidation.PhoneNumberValidation",
      'NumberFormat "Local" needs CountryCode (ISO 3166 letters such as "US")')),
    ({"DTMFConfiguration": {"InputTerminationSequence": "123456"}},
     ("error", f"{P}.DTMFConfiguration.InputTerminationSequence",
      'InputTerminationSequence must be 1 to 5 phone keys (0-9, *, #), found "123456"')),
    ({"DTMFConfiguration": {"InputTerminationSequence": "A"}},
     ("error", f"{P}.DTMFConfiguration.InputTerminationSequence",
      'InputTerminationSequence must be 1 to 5 phone keys (0-9, *, #), found "A"')),
    ({"DTMFConfiguration": {"InputTerminationSequence": "*#"}},
     ("error", f"{P}.DTMFConfiguration.InputTerminationSequence",
      "InputTerminationSequence \"*#\" contains the cancel key '*', which clears the input; set "
      'DTMFConfiguration.DisableCancelKey "True" or choose another terminator')),
    ({"DTMFConfiguration": {"InterdigitTimeLimitSeconds": "30"}},
     ("error", f"{P}.DTMFConfiguration.InterdigitTimeLimitSeconds",
      'InterdigitTimeLimitSeconds must be a whole number of seconds from 1 to 20, found "30"')),
    ({"DTMFConfiguration": {"DisableCancelKey": "maybe"}},
     ("error", f"{P}.DTMFConfiguration.DisableCancelKey", 'DisableCancelKey must be "True" or "False", found "maybe"')),
    ({"DTMFConfiguration": {"MaxDigits": 4}},
     ("warning", f"{P}.DTMFConfiguration.MaxDigits", "MaxDigits is not a DTMFConfiguration setting Connect defines; "
                                                     "ignored (InputTerminationSequence, InterdigitTimeLimitSeconds, "
                                                     "DisableCancelKey)")),
    ({"DTMFConfiguration": "#"}, ("error", f"{P}.DTMFConfiguration",
                                  'DTMFConfiguration must be an object, found string "#"')),
    ({"InputEncryption": {"EncryptionKeyId": "k", "Key": "..."}},
     ("error", f"{P}.InputEncryption", f"not supported here: InputEncryption at {P}.InputEncryption (callgate keeps "
                                       "stored input in the clear; it has no encryption key)")),
    ({"StoreInput": "Yes"}, ("error", f"{P}.StoreInput",
                             'StoreInput must be "True" (Store customer input) or "False" (one key), found "Yes"')),
    ({"InputTimeLimitSeconds": "0"}, ("error", f"{P}.InputTimeLimitSeconds",
                                      'InputTimeLimitSeconds must be above 0, found "0"')),
])
def test_store_input_parameter_errors_name_their_path(change, expected):
    phone = "PhoneNumberValidation" in json.dumps(change)
    action = store(errors=("InvalidPhoneNumber", "NoMatchingError") if phone else ("NoMatchingError",))
    for key, value in change.items():
        if value is None:
            del action["Parameters"][key]
        else:
            action["Parameters"][key] = value
    assert issues_of(action) == [expected]


def test_unknown_country_code_lists_the_known_ones():
    action = store(validation={"PhoneNumberValidation": {"NumberFormat": "Local", "CountryCode": "XX"}},
                   errors=("InvalidPhoneNumber", "NoMatchingError"))
    [(severity, path, message)] = issues_of(action)
    assert (severity, path) == ("error", f"{P}.InputValidation.PhoneNumberValidation.CountryCode")
    assert message.startswith('CountryCode "XX" is not a country callgate has numbering rules for (it has AE AR AT ')


def test_store_input_transition_rules():
    action = store(errors=("NoMatchingCondition", "InvalidPhoneNumber", "NoMatchingError"))
    action["Transitions"]["Conditions"] = [{"NextAction": "said", "Condition": {"Operator": "Equals",
                                                                               "Operands": ["1"]}}]
    del action["Transitions"]["NextAction"]
    assert issues_of(action) == [
        ("error", "$.Actions[0].Transitions", 'missing Transitions.NextAction (where a Store customer input goes on, '
                                              'also when the caller types nothing: $.StoredCustomerInput is "Timeout")'),
        ("warning", "$.Actions[0].Transitions.Errors[0]", 'NoMatchingCondition is never taken with StoreInput "True"'),
        ("warning", "$.Actions[0].Transitions.Errors[1]", "InvalidPhoneNumber is taken only with "
                                                          "PhoneNumberValidation; this branch is never taken"),
        ("error", "$.Actions[0].Transitions.Conditions", 'Conditions are not used with StoreInput "True" (the keys go '
                                                         "to $.StoredCustomerInput); route on them with a Compare "
                                                         "action"),
    ]
    phone = store(validation=US_LOCAL)
    assert issues_of(phone) == [("warning", "$.Actions[0].Transitions.Errors", "no InvalidPhoneNumber branch: a number "
                                 "that fails PhoneNumberValidation ends the flow with an error")]


def test_menu_warns_about_store_only_settings():
    menu = {"Identifier": "menu", "Type": "GetParticipantInput",
            "Parameters": {"Text": "Press 1", "StoreInput": "False", "InputValidation": US_LOCAL},
            "Transitions": {"Conditions": [{"NextAction": "said", "Condition": {"Operator": "Equals",
                                                                                "Operands": ["1"]}}],
                            "Errors": [{"NextAction": "bye", "ErrorType": t} for t in
                                       ("InputTimeLimitExceeded", "NoMatchingCondition", "InvalidPhoneNumber")]}}
    assert issues_of(menu) == [
        ("warning", f"{P}.InputValidation", 'InputValidation is used only with StoreInput "True"; ignored for a '
                                            "one-key menu"),
        ("warning", "$.Actions[0].Transitions.Errors[2]", 'InvalidPhoneNumber is taken only with StoreInput "True" '
                                                          "and PhoneNumberValidation; this branch is never taken"),
    ]


def test_every_real_input_and_voice_block_validates():
    """In the real flows every GetParticipantInput and voice block is accepted; the only errors on them are
    Connect prompt-library ARNs (PromptId), which are refused for what they are."""
    checked = 0
    for path in sorted(REAL.glob("[0-2]*.json")):
        doc = json.loads(path.read_text())
        if "Actions" not in doc:
            continue
        ours = {f"$.Actions[{i}]" for i, a in enumerate(doc["Actions"])
                if a.get("Type") in ("GetParticipantInput", "UpdateContactTextToSpeechVoice")}
        checked += len(ours)
        _, issues = validate_flow_text(path.read_text(), str(path))
        for issue in issues:
            action = issue.path.split(".Parameters")[0].split(".Transitions")[0]
            if action in ours and issue.severity == "error":
                assert issue.path.endswith(".PromptId") and "prompt-library ARNs" in issue.message, str(issue)
    assert checked == 31


# -- voice


def voice_action(identifier, voice, next_action, **params):
    return {"Identifier": identifier, "Type": "UpdateContactTextToSpeechVoice",
            "Parameters": {"TextToSpeechVoice": voice, **params}, "Transitions": {"NextAction": next_action}}


def test_later_prompts_speak_with_the_voice_set():
    flow = flow_of(say("one", "Hello", "voice"), voice_action("voice", "Hans", "two", TextToSpeechEngine="Neural"),
                   say("two", "Guten Tag", "espeak"), voice_action("espeak", "fr-fr+f3", "three"),
                   say("three", "Bonjour", "dynamic"), voice_action("dynamic", "$.Attributes.voice", "four"),
                   say("four", "Hi", "unknown"), voice_action("unknown", "$.Attributes.none", "five"),
                   say("five", "Still", "language"),
                   {"Identifier": "language", "Type": "UpdateContactData", "Parameters": {"LanguageCode": "ja-JP"},
                    "Transitions": {"NextAction": "six"}}, say("six", "Konnichiwa"), BYE)
    caller = TimedCaller(ManualClock())
    caller.attributes["voice"] = "amy"
    result, prompts = run(flow, caller)
    assert prompts.spoken == [("en-us", "Hello"), ("de", "Guten Tag"), ("fr-fr+f3", "Bonjour"), ("en-gb", "Hi"),
                              ("en-gb", "Still"), ("ja", "Konnichiwa")]
    details = {s.identifier: s.detail for s in result.path}
    assert details["voice"] == "voice Hans: espeak-ng de"
    assert details["unknown"] == 'unknown voice "": prompts keep en-gb'
    assert details["language"] == "language ja-JP: espeak-ng ja"


def test_language_code_of_the_voice_in_use_keeps_the_voice():
    flow = flow_of(voice_action("voice", "Amy", "language"),
                   {"Identifier": "language", "Type": "UpdateContactData", "Parameters": {"LanguageCode": "en-US"},
                    "Transitions": {"NextAction": "one"}}, say("one", "Hello"), BYE)
    result, prompts = run(flow, TimedCaller(ManualClock()))
    assert prompts.spoken == [("en-gb", "Hello")]
    assert result.path[1].detail == "language en-US: prompts keep en-gb"


def test_voice_reaches_espeak(tmp_path):
    """The voice set is the one espeak-ng speaks with: the same text sounds different in German."""
    flow = flow_of(say("one", "Hallo Welt", "voice"), voice_action("voice", "Marlene", "two"),
                   say("two", "Hallo Welt"), BYE)
    cache = PromptCache(tmp_path)
    played = []

    class Recorder(TimedCaller):
        async def play(self, samples, *, interruptible):
            played.append(np.array(samples))
            return None

    run(flow, Recorder(ManualClock()), cache)
    english, german = played
    assert english.size > 1000 and german.size > 1000
    assert english.size != german.size or not np.array_equal(english, german)


def test_rehearsal_shows_the_voice():
    flow = flow_of(voice_action("voice", "Lucia", "hola"), say("hola", "Hola"), BYE)
    rehearsal = asyncio.run(rehearse(flow))
    prompts = [e.text for _, events in rehearsal.steps for e in events if e.kind == "prompt"]
    assert prompts == ["says (es): Hola"]


@pytest.mark.parametrize("name, voice", [("Joanna", "en-us"), ("joanna", "en-us"), ("Vicki", "de"), ("Lea", "fr-fr"),
                                         ("Conchita", "es"), ("Mizuki", "ja"), ("Miguel", "es-419"), ("de", "de"),
                                         ("EN-GB", "en-gb"), ("en-us+f3", "en-us+f3"), ("Zorg", None),
                                         ("de+", None), ("", None)])
def test_voice_names(name, voice):
    assert espeak_voice(name) == voice


def test_language_codes():
    assert [language_voice(c) for c in ("en-US", "de-AT", "pt-BR", "fr", "sv-FI", "xx-YY")] == [
        "en-us", "de", "pt-br", "fr", "sv", None]


V = "$.Actions[0].Parameters"


@pytest.mark.parametrize("action, expected", [
    (voice_action("v", "Zorg", "said"),
     [("warning", f"{V}.TextToSpeechVoice", 'unknown voice "Zorg": neither an Amazon Polly voice callgate maps to '
                                            "espeak-ng nor an espeak-ng voice; prompts keep the voice they had")]),
    ({"Identifier": "v", "Type": "UpdateContactTextToSpeechVoice", "Parameters": {},
      "Transitions": {"NextAction": "said"}},
     [("error", V, 'missing TextToSpeechVoice (a voice such as "Joanna", or an espeak-ng voice such as "en-us")')]),
    (voice_action("v", 7, "said"), [("error", f"{V}.TextToSpeechVoice",
                                     "TextToSpeechVoice must be a voice name, found number 7")]),
    (voice_action("v", "Joanna", "said", TextToSpeechEngine="Turbo", TextToSpeechStyle="Whisper"),
     [("warning", f"{V}.TextToSpeechEngine", 'TextToSpeechEngine "Turbo" is not Standard, Neural, Generative or '
                                             "LongForm; ignored (espeak-ng has one engine)"),
      ("warning", f"{V}.TextToSpeechStyle", 'TextToSpeechStyle "Whisper" is not Conversational or Newscaster; '
                                            "ignored (espeak-ng has no speaking styles)")]),
    ({"Identifier": "v", "Type": "UpdateContactData", "Parameters": {"WisdomSessionArn": "$.Wisdom.SessionArn"},
      "Transitions": {"NextAction": "said"}},
     [("error", f"{V}.WisdomSessionArn", f"not supported here: UpdateContactData WisdomSessionArn at "
                                         f"{V}.WisdomSessionArn (callgate runs only its LanguageCode)")]),
    ({"Identifier": "v", "Type": "UpdateContactData", "Parameters": {"LanguageCode": "xx-YY"},
      "Transitions": {"NextAction": "said"}},
     [("warning", f"{V}.LanguageCode", 'no espeak-ng voice speaks LanguageCode "xx-YY"; prompts keep the voice '
                                       "they had")]),
])
def test_voice_validation(action, expected):
    assert issues_of(action) == expected
