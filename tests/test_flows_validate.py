"""Validation of flow documents: each rule on a small hand-written flow, with path, action and message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.flows.validate import SUPPORTED_TYPES, FlowInvalid, FlowIssue, load_flow, validate_flow_text

DEMO_FLOW = Path(__file__).parents[1] / "deploy" / "demo" / "flow-main.json"


def menu(identifier="menu", **overrides) -> dict:
    action = {
        "Identifier": identifier,
        "Type": "GetParticipantInput",
        "Parameters": {"Text": "Press 1 for sales.", "InputTimeLimitSeconds": "5", "StoreInput": "False"},
        "Transitions": {
            "NextAction": "bye",
            "Conditions": [{"NextAction": "bye", "Condition": {"Operator": "Equals", "Operands": ["1"]}}],
            "Errors": [
                {"NextAction": "bye", "ErrorType": "InputTimeLimitExceeded"},
                {"NextAction": "bye", "ErrorType": "NoMatchingCondition"},
                {"NextAction": "bye", "ErrorType": "NoMatchingError"},
            ],
        },
    }
    action.update(overrides)
    return action


def bye(identifier="bye") -> dict:
    return {"Identifier": identifier, "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}


def say(identifier, text, next_action="bye") -> dict:
    return {"Identifier": identifier, "Type": "MessageParticipant", "Parameters": {"Text": text},
            "Transitions": {"NextAction": next_action}}


def doc(*actions, start=None) -> dict:
    actions = list(actions) or [menu(), bye()]
    return {"Version": "2019-10-30", "StartAction": start or actions[0]["Identifier"], "Actions": actions}


def check(document, source="flow.json"):
    text = document if isinstance(document, str) else json.dumps(document, indent=2)
    return validate_flow_text(text, source)


def errors(issues: list[FlowIssue]) -> list[FlowIssue]:
    return [i for i in issues if i.severity == "error"]


def only_error(document) -> FlowIssue:
    flow, issues = check(document)
    assert flow is None
    found = errors(issues)
    assert len(found) == 1, [str(i) for i in found]
    return found[0]


def test_minimal_menu_is_valid_and_modelled():
    flow, issues = check(doc())
    assert issues == []
    assert flow.version == "2019-10-30" and flow.start_action == "menu"
    action = flow.actions["menu"]
    assert action.type == "GetParticipantInput" and action.next_action == "bye"
    assert [(c.operator, c.operands, c.next_action) for c in action.conditions] == [("Equals", ["1"], "bye")]
    assert action.errors == {"InputTimeLimitExceeded": "bye", "NoMatchingCondition": "bye", "NoMatchingError": "bye"}
    assert flow.actions["bye"].next_action is None and flow.source == "flow.json"


def test_supported_types_are_the_ones_the_interpreter_runs():
    assert {"MessageParticipant", "GetParticipantInput", "UpdateContactTargetQueue", "TransferContactToQueue",
            "UpdateContactAttributes", "DisconnectParticipant", "EndFlowExecution"} <= SUPPORTED_TYPES
    assert "CreateTask" not in SUPPORTED_TYPES and "ConnectParticipantWithLexBot" not in SUPPORTED_TYPES


def test_json_syntax_error_has_line_and_column():
    text = '{\n  "Version": "2019-10-30",\n  "StartAction": "a"\n  "Actions": []\n}\n'
    flow, issues = check(text)
    assert flow is None and len(issues) == 1
    issue = issues[0]
    assert (issue.line, issue.column) == (4, 3)
    assert issue.message == "invalid JSON: Expecting ',' delimiter"
    assert str(issue) == "flow.json:4:3: $: invalid JSON: Expecting ',' delimiter"


def test_empty_text_is_a_json_error_at_line_one():
    issue = only_error("")
    assert (issue.line, issue.column) == (1, 1) and issue.message.startswith("invalid JSON")


def test_top_level_must_be_an_object():
    issue = only_error("[1, 2]")
    assert issue.path == "$" and "top level must be a JSON object" in issue.message and "a list" in issue.message


def test_missing_version_start_and_actions_are_all_reported():
    flow, issues = check({"Metadata": {}})
    messages = [i.message for i in errors(issues)]
    assert flow is None and len(messages) == 3
    assert any(m.startswith("missing Version") for m in messages)
    assert any(m.startswith("missing StartAction") for m in messages)
    assert any(m.startswith("missing Actions") for m in messages)


def test_wrong_version_and_non_list_actions():
    document = {"Version": "2020-01-01", "StartAction": "a", "Actions": {"a": 1}}
    flow, issues = check(document)
    by_path = {i.path: i.message for i in errors(issues)}
    assert by_path["$.Version"] == 'Version must be "2019-10-30", found "2020-01-01"'
    assert by_path["$.Actions"] == "Actions must be a list, found an object"


def test_start_action_pointing_nowhere():
    issue = only_error(doc(menu(), bye(), start="nowhere"))
    assert issue.path == "$.StartAction"
    assert issue.message == "StartAction 'nowhere' names no action (no action has this Identifier)"


def test_duplicate_identifier_names_both_places():
    issue = only_error(doc(menu(), bye(), bye()))
    assert issue.path == "$.Actions[2].Identifier" and issue.identifier == "bye"
    assert issue.message == "duplicate Identifier 'bye' (first used at $.Actions[1])"


def test_identifier_longer_than_50_characters():
    long = "x" * 51
    issue = only_error(doc(say("hello", "hi", long), bye(long)))
    assert issue.path == "$.Actions[1].Identifier" and issue.identifier == long
    assert "51 characters long (at most 50)" in issue.message


def test_identifier_with_forbidden_characters_and_reserved_names():
    flow, issues = check(doc(say("a:b", "hi", "constructor"), bye("constructor")))
    found = {(i.path, i.message) for i in errors(issues)}
    assert ("$.Actions[0].Identifier", "Identifier contains forbidden characters: :") in found
    assert ("$.Actions[1].Identifier", "Identifier 'constructor' is a reserved name") in found


@pytest.mark.parametrize("type_", ["UnTagContact", "ConnectParticipantWithLexBot", "CreateTask", "NoSuchBlock"])
def test_unsupported_types_are_named_with_their_path(type_):
    other = {"Identifier": "x", "Type": type_, "Parameters": {}, "Transitions": {"NextAction": "bye"}}
    issue = only_error(doc(say("hello", "hi", "x"), other, bye()))
    assert issue.message == f"not supported here: {type_} at $.Actions[1]"
    assert issue.identifier == "x" and issue.path == "$.Actions[1]"


def test_transitions_to_missing_actions_in_next_conditions_and_errors():
    action = menu()
    action["Transitions"]["NextAction"] = "nope1"
    action["Transitions"]["Conditions"].append(
        {"NextAction": "nope2", "Condition": {"Operator": "Equals", "Operands": ["2"]}})
    action["Transitions"]["Errors"][1]["NextAction"] = "nope3"
    flow, issues = check(doc(action, bye()))
    found = {(i.path, i.identifier, i.message) for i in errors(issues)}
    assert found == {
        ("$.Actions[0].Transitions.NextAction", "menu", "transition to missing action 'nope1'"),
        ("$.Actions[0].Transitions.Conditions[1].NextAction", "menu", "transition to missing action 'nope2'"),
        ("$.Actions[0].Transitions.Errors[1].NextAction", "menu", "transition to missing action 'nope3'"),
    }


def test_issue_text_and_line_of_a_path_based_issue():
    action = menu()
    action["Transitions"]["NextAction"] = "nope"
    text = json.dumps(doc(say("hello", "hi", "menu"), action, bye()), indent=2)
    flow, issues = check(text)
    issue = only_error(text)
    lines = text.splitlines()
    want_line = next(n for n, line in enumerate(lines, 1) if '"NextAction": "nope"' in line)
    assert issue.line == want_line
    assert issue.column == lines[want_line - 1].index('"nope"') + 1
    assert str(issue) == (f"flow.json:{want_line}:{issue.column}: $.Actions[1].Transitions.NextAction "
                          "(action 'menu'): transition to missing action 'nope'")


def test_get_input_without_prompt():
    action = menu()
    del action["Parameters"]["Text"]
    issue = only_error(doc(action, bye()))
    assert issue.path == "$.Actions[0].Parameters" and issue.identifier == "menu"
    assert issue.message == "missing prompt: give one of Text, SSML or PromptId"


@pytest.mark.parametrize("value", ["soon", True, [], None])
def test_input_time_limit_must_be_a_number(value):
    action = menu()
    action["Parameters"]["InputTimeLimitSeconds"] = value
    issue = only_error(doc(action, bye()))
    assert issue.path == "$.Actions[0].Parameters.InputTimeLimitSeconds"
    assert issue.message.startswith("InputTimeLimitSeconds must be a number of seconds")


@pytest.mark.parametrize("value", [8, "8", 2.5])
def test_input_time_limit_number_or_string_accepted(value):
    action = menu()
    action["Parameters"]["InputTimeLimitSeconds"] = value
    flow, issues = check(doc(action, bye()))
    assert flow is not None and issues == []


def test_input_time_limit_above_connect_limit_is_a_warning():
    action = menu()
    action["Parameters"]["InputTimeLimitSeconds"] = "300"
    flow, issues = check(doc(action, bye()))
    assert flow is not None
    assert [i.severity for i in issues] == ["warning"] and "above the 179 s" in issues[0].message


def test_condition_without_operands():
    action = menu()
    del action["Transitions"]["Conditions"][0]["Condition"]["Operands"]
    issue = only_error(doc(action, bye()))
    assert issue.path == "$.Actions[0].Transitions.Conditions[0].Condition"
    assert issue.message == "Condition without Operands"


def test_condition_operands_must_be_strings():
    action = menu()
    action["Transitions"]["Conditions"][0]["Condition"]["Operands"] = [1]
    issue = only_error(doc(action, bye()))
    assert issue.path == "$.Actions[0].Transitions.Conditions[0].Condition.Operands"
    assert issue.message == "Operands must be strings, found [1]"


def test_menu_conditions_must_be_single_keys_with_equals():
    action = menu()
    action["Transitions"]["Conditions"] = [
        {"NextAction": "bye", "Condition": {"Operator": "TextContains", "Operands": ["1"]}},
        {"NextAction": "bye", "Condition": {"Operator": "Equals", "Operands": ["12"]}},
    ]
    flow, issues = check(doc(action, bye()))
    found = {(i.path, i.message) for i in errors(issues)}
    assert found == {
        ("$.Actions[0].Transitions.Conditions[0].Condition.Operator",
         "GetParticipantInput supports only the Equals operator, found 'TextContains'"),
        ("$.Actions[0].Transitions.Conditions[1].Condition.Operands[0]",
         'operand "12" is not one phone key (0-9, *, #)'),
    }


def test_get_input_needs_a_timeout_branch():
    action = menu()
    action["Transitions"]["Errors"] = action["Transitions"]["Errors"][1:]
    issue = only_error(doc(action, bye()))
    assert issue.path == "$.Actions[0].Transitions.Errors" and issue.identifier == "menu"
    assert issue.message.startswith("GetParticipantInput needs an InputTimeLimitExceeded error branch")


def test_store_input_true_refuses_menu_conditions():  # the rest of StoreInput: tests/test_flows_input.py
    action = menu()
    action["Parameters"].update(StoreInput="True", InputValidation={"CustomValidation": {"MaximumLength": "4"}})
    issue = only_error(doc(action, bye()))
    assert issue.path == "$.Actions[0].Transitions.Conditions"
    assert issue.message == ('Conditions are not used with StoreInput "True" (the keys go to $.StoredCustomerInput); '
                             "route on them with a Compare action")


def test_message_prompt_rules():
    two = say("two", "hi", "media")
    two["Parameters"]["SSML"] = "<speak>hi</speak>"
    media = {"Identifier": "media", "Type": "MessageParticipant",
             "Parameters": {"Media": {"Uri": "s3://bucket/x.wav"}}, "Transitions": {"NextAction": "arn"}}
    arn = {"Identifier": "arn", "Type": "MessageParticipant",
           "Parameters": {"PromptId": "arn:aws:connect:us-east-1:1:instance/i/prompt/p"},
           "Transitions": {"NextAction": "broken"}}
    broken = {"Identifier": "broken", "Type": "MessageParticipant",
              "Parameters": {"SSML": "<speak>unclosed"}, "Transitions": {"NextAction": "bye"}}
    flow, issues = check(doc(two, media, arn, broken, bye()))
    found = {i.identifier: (i.path, i.message) for i in errors(issues)}
    assert found["two"] == ("$.Actions[0].Parameters", "give only one prompt parameter, found Text, SSML")
    assert found["media"][0] == "$.Actions[1].Parameters.Media" and "not supported" in found["media"][1]
    assert found["arn"][0] == "$.Actions[2].Parameters.PromptId" and "local WAV file" in found["arn"][1]
    assert found["broken"][0] == "$.Actions[3].Parameters.SSML"
    assert found["broken"][1].startswith("SSML is not well-formed XML")


def test_ssml_without_speak_is_a_warning():
    action = {"Identifier": "s", "Type": "MessageParticipant", "Parameters": {"SSML": "Welcome"},
              "Transitions": {"NextAction": "bye"}}
    flow, issues = check(doc(action, bye()))
    assert flow is not None and [i.severity for i in issues] == ["warning"]
    assert "no <speak> element" in issues[0].message


def test_message_needs_next_action():
    action = say("s", "hi")
    action["Transitions"] = {}
    issue = only_error(doc(action, bye("bye")))
    assert issue.path == "$.Actions[0].Transitions" and "missing Transitions.NextAction" in issue.message


def test_prompt_file_checked_relative_to_flow_folder(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "hello.wav").write_bytes(b"RIFF")
    good = {"Identifier": "good", "Type": "MessageParticipant", "Parameters": {"PromptId": "prompts/hello.wav"},
            "Transitions": {"NextAction": "bad"}}
    bad = {"Identifier": "bad", "Type": "MessageParticipant", "Parameters": {"PromptId": "prompts/missing.wav"},
           "Transitions": {"NextAction": "bye"}}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(doc(good, bad, bye()), indent=2))
    with pytest.raises(FlowInvalid) as caught:
        load_flow(path)
    [issue] = caught.value.issues
    assert issue.identifier == "bad" and issue.path == "$.Actions[1].Parameters.PromptId"
    assert issue.message == f"prompt file not found: {tmp_path / 'prompts' / 'missing.wav'}"
    good["Transitions"]["NextAction"] = "bye"
    path.write_text(json.dumps(doc(good, bye()), indent=2))
    flow = load_flow(path)
    assert flow.base_dir == tmp_path.resolve()


def test_queue_and_attribute_parameters():
    no_queue = {"Identifier": "q", "Type": "UpdateContactTargetQueue", "Parameters": {"AgentId": "a"},
                "Transitions": {"NextAction": "attrs"}}
    attrs = {"Identifier": "attrs", "Type": "UpdateContactAttributes",
             "Parameters": {"Attributes": {"n": 5}, "TargetContact": "Related"},
             "Transitions": {"NextAction": "bye"}}
    flow, issues = check(doc(no_queue, attrs, bye()))
    found = {(i.path, i.message) for i in errors(issues)}
    assert found == {
        ("$.Actions[0].Parameters", "missing QueueId (agent queues via AgentId are not supported here)"),
        ("$.Actions[1].Parameters.TargetContact", 'TargetContact "Related" is not supported here; only "Current"'),
        ("$.Actions[1].Parameters.Attributes.n", "attribute value must be a string, found number 5"),
    }


def test_unreachable_action_is_only_a_warning():
    flow, issues = check(doc(menu(), bye(), say("orphan", "never")))
    assert flow is not None and "orphan" in flow.actions
    [issue] = issues
    assert (issue.severity, issue.path, issue.identifier) == ("warning", "$.Actions[2]", "orphan")
    assert issue.message == "unreachable from StartAction 'menu' (never runs)"
    assert str(issue).startswith(f"flow.json:{issue.line}:{issue.column}: warning: $.Actions[2] (action 'orphan')")


def test_unknown_references_warn_once_per_namespace():
    action = say("s", "Hi $.Attributes.name from $.CustomerEndpoint.Address, $.Customer.a $.Customer.b $.Lex.X")
    flow, issues = check(doc(action, bye()))
    assert flow is not None
    assert sorted(i.message for i in issues) == [
        "$.Customer is not set by callgate (2 uses, first $.Customer.a); it resolves to empty text",
        "$.Lex is not set by callgate ($.Lex.X); it resolves to empty text",
    ]


def test_legacy_console_export_is_named():
    legacy = {"modules": [{"id": "a", "type": "PlayPrompt", "branches": [], "parameters": []},
                          {"id": "b", "type": "Disconnect", "branches": [], "parameters": []}],
              "version": "1", "type": "contactFlow", "start": "a", "metadata": {"name": "Old menu"}}
    issue = only_error(legacy)
    assert issue.path == "$"
    assert issue.message.startswith("legacy Amazon Connect console export format of flow 'Old menu'")
    assert "not supported" in issue.message and "Disconnect, PlayPrompt" in issue.message


def test_describe_contact_flow_wrapper_is_explained():
    issue = only_error({"ContactFlow": {"Name": "x", "Content": "{}"}})
    assert "$.ContactFlow.Content" in issue.message and "not a flow" in issue.message


def test_all_issues_are_collected_and_raised_together(tmp_path):
    action = menu()
    del action["Parameters"]["Text"]
    action["Transitions"]["NextAction"] = "nope"
    lam = {"Identifier": "lam", "Type": "CreateTask", "Parameters": {}, "Transitions": {"NextAction": "bye"}}
    path = tmp_path / "many.json"
    path.write_text(json.dumps(doc(action, lam, bye(), bye()), indent=2))
    with pytest.raises(FlowInvalid) as caught:
        load_flow(path)
    exc = caught.value
    assert exc.source == str(path) and isinstance(exc, ValueError)
    assert len(errors(exc.issues)) == 4
    text = str(exc)
    assert text.startswith(f"{path}: invalid flow (4 errors)")
    for fragment in ("missing prompt", "transition to missing action 'nope'",
                     "not supported here: CreateTask at $.Actions[1]", "duplicate Identifier 'bye'"):
        assert fragment in text
    assert all(i.line is not None for i in exc.issues)


def test_load_flow_reports_unreadable_files(tmp_path):
    with pytest.raises(FlowInvalid) as caught:
        load_flow(tmp_path / "absent.json")
    assert "cannot read file" in caught.value.issues[0].message
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"Version": "\xe9"}')
    with pytest.raises(FlowInvalid) as caught:
        load_flow(bad)
    assert "not UTF-8" in caught.value.issues[0].message


def test_more_than_250_actions_is_an_error():
    actions = [say(f"a{i}", "hi", f"a{i + 1}") for i in range(249)] + [bye("a249")]
    flow, issues = check(doc(*actions))
    assert flow is not None and issues == []
    actions = [say(f"a{i}", "hi", f"a{i + 1}") for i in range(250)] + [bye("a250")]
    flow, issues = check(doc(*actions))
    assert flow is None
    assert [(i.path, i.severity, i.line) for i in issues] == [("$.Actions", "error", 4)]
    assert issues[0].message.startswith("251 actions; a flow has at most 250")


def test_demo_flow_is_valid_without_warnings():
    flow, issues = validate_flow_text(DEMO_FLOW.read_text(), str(DEMO_FLOW))
    assert issues == []
    assert flow.start_action == "greeting"
    assert flow.actions["greeting"].parameters["Text"] == (
        "Thank you for calling the callgate demo. For support, press 1. To leave, press 2.")
    assert flow.actions["set-support-queue"].parameters["QueueId"] == "support"
    assert flow.actions["transfer"].errors["QueueAtCapacity"] == "queue-unavailable"
    assert load_flow(DEMO_FLOW).actions.keys() == flow.actions.keys()
