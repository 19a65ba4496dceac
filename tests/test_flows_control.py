"""Flow control and flows calling flows: Compare, Loop, DistributeByPercentage, TransferToFlow through a
FlowLibrary, UpdateContactEventHooks with the disconnect flow, UpdateContactCallbackNumber, and the
validator's checks of each (against a fake call, as in test_flows_interpreter)."""

from __future__ import annotations

import asyncio
import json
import os
import random

import pytest

from gateway.flows.blocks.control import callback_number, compare
from gateway.flows.hooks import DISCONNECT_FLOW_SECONDS, hook_records, run_disconnect_flow
from gateway.flows.interpreter import MAX_STEPS, run_flow
from gateway.flows.library import FlowLibrary, FlowSet, flow_key
from gateway.flows.validate import FlowInvalid, validate_flow_text
from tests.test_flows_interpreter import BYE, HANGUP, FakeContact, FakePrompts, branches, say

ARN = "arn:aws:connect:us-east-1:123456789012:instance/5368a448-63ff-59f7-8af0-72879fba52f5/contact-flow/"
MENU_ID = "d9372876-1cf6-5379-b005-97b5f82ad00f"


class HookedContact(FakeContact):
    """A FakeContact that keeps event hooks, as ContactSession does."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.event_hooks: dict[str, str] = {}
        self.callback_number = None

    def set_event_hook(self, kind, flow_ref):
        self.event_hooks[kind] = flow_ref


class Draw:
    """DistributeByPercentage's random source, fixed: randrange(100) returns the given numbers in turn."""

    def __init__(self, *draws):
        self.draws = list(draws)

    def randrange(self, n):
        assert n == 100
        return self.draws.pop(0)


def doc(*actions, **top) -> dict:
    return {"Version": "2019-10-30", "StartAction": actions[0]["Identifier"], "Actions": list(actions), **top}


def check(document, **options):
    return validate_flow_text(json.dumps(document, indent=2), "flow.json", **options)


def flow_of(*actions):
    flow, issues = check(doc(*actions))
    assert flow is not None, [str(i) for i in issues]
    return flow


def run(flow, contact=None, prompts=None, **options):
    contact = contact if contact is not None else HookedContact()
    return asyncio.run(asyncio.wait_for(run_flow(flow, contact, prompts or FakePrompts(), **options), 10))


def cond(operator, operand, target):
    return {"NextAction": target, "Condition": {"Operator": operator, "Operands": [operand]}}


def error(error_type, target):
    return {"ErrorType": error_type, "NextAction": target}


def action(ident, type_, params=None, next_action=None, conditions=(), errors=()):
    transitions = {"Conditions": list(conditions), "Errors": list(errors)}
    if next_action is not None:
        transitions["NextAction"] = next_action
    return {"Identifier": ident, "Type": type_, "Parameters": params or {}, "Transitions": transitions}


def attrs(ident, next_action, **values):
    return action(ident, "UpdateContactAttributes", {"Attributes": values}, next_action)


def menu(ident, conditions, timeout="bye", nomatch="bye", text="Choose."):
    return action(ident, "GetParticipantInput", {"Text": text, "InputTimeLimitSeconds": "5"}, None,
                  conditions, [error("InputTimeLimitExceeded", timeout), error("NoMatchingCondition", nomatch)])


def issues_of(document, **options):
    _, issues = check(document, **options)
    return [(i.severity, i.path, i.identifier, i.message) for i in issues]


# --- Compare --------------------------------------------------------------------------------------

@pytest.mark.parametrize("operator, value, operand, expected", [
    ("Equals", "gold", "gold", True), ("Equals", "Gold", "gold", False), ("Equals", "1.0", "1", True),
    ("Equals", "", "", True), ("Equals", "01x", "1x", False),
    ("NumberGreaterThan", "10", "9", True), ("NumberGreaterThan", "9", "10", False),
    ("NumberGreaterThan", "abc", "1", False), ("NumberGreaterThan", "", "0", False),
    ("NumberGreaterOrEqualTo", "5", "5", True), ("NumberLessThan", "-2.5", "0", True),
    ("NumberLessThan", "3", "3", False), ("NumberLessOrEqualTo", "3", "3.0", True),
    ("TextStartsWith", "+4930123", "+49", True), ("TextStartsWith", "04930", "+49", False),
    ("TextContains", "12#34", "#", True), ("TextContains", "Agent", "agent", False),
])
def test_compare_operators(operator, value, operand, expected):
    assert compare(operator, value, operand) is expected


def _vip_flow(*conditions):
    return flow_of(action("check", "Compare", {"ComparisonValue": "$.Attributes.level"}, "bye", conditions,
                          [error("NoMatchingCondition", "other")]),
                   say("gold", "Gold."), say("big", "Big."), say("other", "Other."), BYE)


@pytest.mark.parametrize("level, first", [("gold", "gold"), ("12", "big"), ("3", "other"), ("", "other")])
def test_compare_takes_the_first_matching_condition_or_no_match(level, first):
    flow = _vip_flow(cond("Equals", "gold", "gold"), cond("NumberGreaterThan", "10", "big"),
                     cond("TextContains", "1", "gold"))
    contact = HookedContact()
    contact.attributes["level"] = level
    result = run(flow, contact)
    assert result.path[1].identifier == first
    step = result.path[0]
    if first == "other":
        assert (step.branch, step.detail) == ("NoMatchingCondition", f"value {json.dumps(level)}")
    else:
        assert step.branch.startswith("condition:")


def test_compare_reads_system_references_and_stored_input():
    flow = flow_of(menu("m", [cond("Equals", "4", "check")]),
                   action("check", "Compare", {"ComparisonValue": "$.StoredCustomerInput"}, "bye",
                          [cond("Equals", "4", "caller")], [error("NoMatchingCondition", "bye")]),
                   action("caller", "Compare", {"ComparisonValue": "$.CustomerEndpoint.Address"}, "bye",
                          [cond("TextStartsWith", "+1555", "yes")], [error("NoMatchingCondition", "bye")]),
                   say("yes", "Local caller."), BYE)
    result = run(flow, HookedContact(keys=["4"]))
    assert branches(result) == [("m", "condition:4"), ("check", "condition:4"), ("caller", "condition:+1555"),
                                ("yes", "next"), ("bye", "disconnected")]
    assert result.path[2].detail == '"+15550100" TextStartsWith "+1555"'


def test_compare_validation():
    found = issues_of(doc(
        action("a", "Compare", {"ComparisonValue": "$.Attributes.x"}, "bye",
               [cond("GreaterThan", "1", "bye"), cond("NumberLessThan", "ten", "bye"), cond("TextEndsWith", "x", "bye")]),
        action("b", "Compare", {}, "bye", [cond("Equals", "1", "bye")], [error("NoMatchingCondition", "bye")]),
        action("c", "Compare", {"ComparisonValue": "gold"}, "bye", [cond("Equals", "gold", "bye")],
               [error("NoMatchingCondition", "bye")]), BYE))
    assert ("error", "$.Actions[0].Transitions.Conditions[0].Condition.Operator", "a",
            "Compare has no operator 'GreaterThan' (it has Equals, NumberGreaterThan, NumberGreaterOrEqualTo, "
            "NumberLessThan, NumberLessOrEqualTo, TextStartsWith, TextContains); did you mean NumberGreaterThan?") in found
    assert ("error", "$.Actions[0].Transitions.Conditions[1].Condition.Operands[0]", "a",
            'NumberLessThan needs a number, found "ten"') in found
    assert any(p == "$.Actions[0].Transitions.Conditions[2].Condition.Operator" and "TextEndsWith" in m
               for _, p, _, m in found)
    assert ("warning", "$.Actions[0].Transitions.Errors", "a", "no NoMatchingCondition branch: a value that "
            "matches no condition ends the flow with an error") in found
    assert ("error", "$.Actions[1].Parameters", "b", "missing ComparisonValue (the reference to compare, such as "
            "$.Attributes.vip)") in found
    assert any(s == "warning" and p == "$.Actions[2].Parameters.ComparisonValue" and "not one reference" in m
               for s, p, _, m in found)
    assert not any("ignores Conditions" in m for *_, m in found)


# --- Loop -----------------------------------------------------------------------------------------

def loop(ident, count, again, done, done_first=True):
    conditions = [cond("Equals", "DoneLooping", done), cond("Equals", "ContinueLooping", again)]
    return action(ident, "Loop", {"LoopCount": count}, done, conditions if done_first else conditions[::-1])


@pytest.mark.parametrize("count, says", [("3", 3), ("0", 0), (1, 1), ("100", 100)])
def test_loop_takes_continue_looping_count_times_then_done(count, says):
    flow = flow_of(loop("again", count, "msg", "bye"), say("msg", "Still there?", "again"), BYE)
    prompts = FakePrompts()
    result = run(flow, prompts=prompts)
    assert len(prompts.spoken) == says
    loops = [s for s in result.path if s.identifier == "again"]
    assert [s.branch for s in loops] == ["condition:ContinueLooping"] * says + ["condition:DoneLooping"]
    assert result.outcome == "disconnected"


def test_loop_counter_resets_when_done_so_a_nested_loop_runs_again():
    flow = flow_of(loop("outer", "2", "inner", "bye", done_first=False), loop("inner", "3", "msg", "outer"),
                   say("msg", "Hello.", "inner"), BYE)
    prompts = FakePrompts()
    run(flow, prompts=prompts)
    assert len(prompts.spoken) == 6


def test_loop_counter_is_per_run_and_per_loop_action():
    flow = flow_of(loop("first", "2", "ask", "second"), menu("ask", [cond("Equals", "1", "first")], "first", "first"),
                   loop("second", "1", "ask2", "bye"), menu("ask2", [], "second", "second"), BYE)
    contact = HookedContact(keys=["1", HANGUP])
    result = run(flow, contact)
    assert result.outcome == "hung_up"
    assert [s.branch for s in result.path if s.identifier == "first"] == ["condition:ContinueLooping"] * 2
    result = run(flow, HookedContact(keys=[None, None, None]))   # a new call: its own counters
    assert [(s.identifier, s.branch) for s in result.path if s.type == "Loop"] == [
        ("first", "condition:ContinueLooping"), ("first", "condition:ContinueLooping"),
        ("first", "condition:DoneLooping"), ("second", "condition:ContinueLooping"),
        ("second", "condition:DoneLooping")]


def test_dynamic_loop_count_and_its_error_branch():
    flow = flow_of(loop("again", "$.Attributes.tries", "msg", "bye") | {
        "Transitions": {"Conditions": [cond("Equals", "ContinueLooping", "msg"), cond("Equals", "DoneLooping", "bye")],
                        "Errors": [error("NoMatchingError", "oops")]}},
        say("msg", "Again.", "again"), say("oops", "Sorry."), BYE)
    contact = HookedContact()
    contact.attributes["tries"] = "2"
    prompts = FakePrompts()
    run(flow, contact, prompts)
    assert prompts.spoken == ["Again.", "Again."]
    contact.attributes["tries"] = "lots"
    result = run(flow, contact)
    assert (result.path[0].branch, result.path[1].identifier) == ("NoMatchingError", "oops")
    assert result.path[0].detail == 'LoopCount "$.Attributes.tries" is "lots", not a whole number 0-100'


def test_real_loop_encodings_validate():
    real = {"LoopCount": "5"}
    for done_first in (True, False):
        flow, issues = check(doc(action("l", "Loop", real, "bye", loop("l", "5", "m", "bye", done_first)
                                        ["Transitions"]["Conditions"]), say("m", "Hi.", "l"), BYE))
        assert flow is not None and issues == []


def test_loop_validation():
    found = issues_of(doc(
        action("a", "Loop", {"LoopCount": "101"}, "bye", [cond("Equals", "ContinueLooping", "bye")]),
        action("b", "Loop", {"LoopCount": "x $.Attributes.n"}, "bye",
               [cond("Equals", "ContinueLooping", "bye"), cond("Equals", "DoneLooping", "bye"),
                cond("Equals", "Looping", "bye")]),
        action("c", "Loop", {}, "bye", [cond("Equals", "ContinueLooping", "bye"), cond("Equals", "DoneLooping", "bye")]),
        BYE, start="a"))
    assert ("error", "$.Actions[0].Parameters.LoopCount", "a",
            'LoopCount must be a whole number 0-100, found string "101"') in found
    assert ("error", "$.Actions[0].Transitions.Conditions", "a",
            "Loop needs a condition Equals DoneLooping (where to go when the loop is done)") in found
    assert ("error", "$.Actions[1].Parameters.LoopCount", "b",
            'LoopCount must be static or one reference, found "x $.Attributes.n"') in found
    assert ("error", "$.Actions[1].Transitions.Conditions[2].Condition", "b",
            'a Loop condition is Equals ContinueLooping or Equals DoneLooping, found Equals ["Looping"]') in found
    assert ("error", "$.Actions[2].Parameters", "c",
            "missing LoopCount (how many times to take ContinueLooping)") in found


# --- DistributeByPercentage -----------------------------------------------------------------------

def split(*bounds, default="c"):
    targets = "ab"
    return flow_of(action("split", "DistributeByPercentage", {}, None,
                          [cond("NumberLessThan", str(b), targets[i]) for i, b in enumerate(bounds)],
                          [error("NoMatchingCondition", default)]),
                   say("a", "A."), say("b", "B."), say("c", "C."), BYE)


@pytest.mark.parametrize("draw, target", [(0, "a"), (19, "a"), (20, "b"), (59, "b"), (60, "c"), (99, "c")])
def test_percentage_slices_are_cumulative_and_exact(draw, target):
    result = run(split(20, 60), rng=Draw(draw))       # 20 % a, 40 % b, the remaining 40 % c
    assert result.path[1].identifier == target
    assert result.path[0].detail == f"draw {draw}"
    assert result.path[0].branch == {"a": "condition:20", "b": "condition:60", "c": "NoMatchingCondition"}[target]


def test_percentages_with_a_seeded_draw():
    flow = split(30, 80)

    async def many():
        rng, seen = random.Random(6), {"a": 0, "b": 0, "c": 0}
        for _ in range(3000):
            result = await run_flow(flow, HookedContact(), FakePrompts(), rng=rng)
            seen[result.path[1].identifier] += 1
        return seen

    seen = asyncio.run(many())
    assert abs(seen["a"] / 3000 - 0.30) < 0.03 and abs(seen["b"] / 3000 - 0.50) < 0.03
    assert abs(seen["c"] / 3000 - 0.20) < 0.03
    again = asyncio.run(many())
    assert again == seen   # the same seed, the same calls


def test_percentage_validation():
    found = issues_of(doc(action("s", "DistributeByPercentage", {}, None,
                                 [cond("NumberLessThan", "50", "bye"), cond("NumberLessThan", "40", "bye"),
                                  cond("NumberGreaterThan", "60", "bye"), cond("NumberLessThan", "120", "bye")]), BYE))
    assert ("warning", "$.Actions[0].Transitions.Conditions[1].Condition.Operands[0]", "s",
            "40 is not above the previous slice's 50: this slice is never taken (operands are cumulative)") in found
    assert ("error", "$.Actions[0].Transitions.Conditions[2].Condition.Operator", "s",
            "DistributeByPercentage conditions are NumberLessThan (cumulative percentages), found 'NumberGreaterThan'") in found
    assert ("error", "$.Actions[0].Transitions.Conditions[3].Condition.Operands", "s",
            'a slice ends at one whole percentage 1-100, found ["120"]') in found
    assert ("warning", "$.Actions[0].Transitions.Errors", "s", "no NoMatchingCondition branch (the default, 50 % "
            "of calls): those calls end the flow with an error") in found


# --- the flow library and TransferToFlow ----------------------------------------------------------

def write(folder, name, document):
    path = folder / name
    path.write_text(json.dumps(document, indent=2))
    return path


def transfer(ident, ref, on_error="bye"):
    return action(ident, "TransferToFlow", {"ContactFlowId": ref}, None, (), [error("NoMatchingError", on_error)])


def library_in(folder) -> FlowLibrary:
    library = FlowLibrary([folder])
    library.refresh()
    return library


@pytest.fixture
def flows(tmp_path):
    write(tmp_path, "main.json", doc(attrs("hello", "welcome", lang="de"), say("welcome", "Welcome.", "go"),
                                     transfer("go", "Support menu", "failed"), say("failed", "No menu."), BYE))
    write(tmp_path, f"{MENU_ID}.json", doc(
        menu("choose", [cond("Equals", "2", "two")], text="Language $.Attributes.lang. Press 2."),
        action("two", "Compare", {"ComparisonValue": "$.StoredCustomerInput"}, "bye", [cond("Equals", "2", "queue")],
               [error("NoMatchingCondition", "bye")]),
        action("queue", "UpdateContactTargetQueue", {"QueueId": "support"}, "send"),
        action("send", "TransferContactToQueue", {}, None, (), [error("QueueAtCapacity", "bye")]), BYE,
        Metadata={"name": "Support menu"}))
    write(tmp_path, "broken.json", doc(say("x", "Hi.", "nowhere")))
    write(tmp_path, "notes.json", ["not", "a", "flow"])
    return tmp_path


def test_library_finds_flows_by_file_name_metadata_name_and_arn_id(flows, tmp_path):
    library = library_in(flows)
    menu_flow = library.get("Support menu")
    assert menu_flow is not None and menu_flow.start_action == "choose"
    for ref in (MENU_ID, ARN + MENU_ID, f"{MENU_ID}.json", f"some/dir/{MENU_ID}.json"):
        assert library.get(ref) is menu_flow, ref
    assert library.get("main").start_action == "hello"
    assert library.get("nothing") is None and library.current.problem("nothing") is None
    assert library.get("broken") is None
    assert library.current.problem("broken").startswith("flow 'broken' (broken.json) is invalid: ")
    assert "transition to missing action 'nowhere'" in library.current.problem("broken")
    assert sorted(library.current.names()) == sorted(["main", MENU_ID, "Support menu", "broken", "notes"])
    assert flow_key(ARN + MENU_ID) == MENU_ID and flow_key("menu.json") == "menu" and flow_key(" x ") == "x"
    with pytest.raises(FlowInvalid):
        library.load(flows / "broken.json")
    assert library.load(flows / "main.json") is library.get("main")
    arn_named = write(tmp_path, "other.json", doc(BYE, Metadata={"arn": ARN + "aaaa-1111"}))
    library.refresh()
    assert library.get(ARN + "aaaa-1111") is library.load(arn_named)


def test_transfer_runs_the_other_flow_keeping_attributes_input_and_typed_keys(flows):
    library = library_in(flows)
    contact = HookedContact(during_prompts=["2"])   # pressed during "Welcome." (not interruptible), before the transfer
    prompts = FakePrompts()
    result = run(library.get("main"), contact, prompts, library=library.current)
    assert result.outcome == "queued", result
    assert branches(result) == [("hello", "next"), ("welcome", "next"), ("go", "transferred"),
                                ("choose", "condition:2"), ("two", "condition:2"), ("queue", "next"),
                                ("send", "queued")]
    assert result.path[2].detail == f"to flow {flows / (MENU_ID + '.json')}"
    assert [s.flow for s in result.path] == [None] * 3 + [MENU_ID] * 4
    assert [r.get("flow") for r in result.path_records()][3] == MENU_ID
    assert prompts.spoken == ["Welcome.", "Language de. Press 2."]   # the attribute set before the transfer
    assert contact.digit_timeouts == [5.0] and contact.buffer == []   # the key was read from the buffer


def test_transfer_by_reference_and_its_error_branch(flows):
    library = library_in(flows)
    flow = flow_of(transfer("go", "$.Attributes.next", "failed"), say("failed", "No such flow."), BYE)
    contact = HookedContact(keys=[None])
    contact.attributes["next"] = ARN + MENU_ID
    result = run(flow, contact, library=library.current)
    assert [s.identifier for s in result.path][:2] == ["go", "choose"]
    for ref, detail in [(ARN + "0000", f"no flow '0000' (ContactFlowId \"{ARN}0000\")"),
                        ("broken", library.current.problem("broken")), ("", 'ContactFlowId "$.Attributes.next" is empty')]:
        contact.attributes["next"] = ref
        result = run(flow, contact, library=library.current)
        assert branches(result)[:2] == [("go", "NoMatchingError"), ("failed", "next")]
        assert result.path[0].detail == detail
    result = run(flow, contact)   # no library at all
    assert branches(result)[0] == ("go", "NoMatchingError")


def test_loop_guard_holds_across_flows(tmp_path):
    write(tmp_path, "ping.json", doc(transfer("to-pong", "pong", "to-pong")))
    write(tmp_path, "pong.json", doc(transfer("to-ping", "ping", "to-ping")))
    library = library_in(tmp_path)
    result = run(library.get("ping"), library=library.current)
    assert result.outcome == "error" and result.error == f"stopped after {MAX_STEPS} steps (loop guard)"
    assert {s.flow for s in result.path} == {None, "pong"}   # back in the first flow: no label


def test_transfer_validation_names_unknown_flows_only_when_the_library_is_known(flows):
    document = doc(transfer("a", "Support menu"), transfer("b", ARN + "0000"), transfer("c", "x $.Attributes.f"),
                   action("d", "TransferToFlow", {}, None, (), [error("NoMatchingError", "bye")]), BYE)
    library = library_in(flows)
    found = issues_of(document, flow_refs=library.current)
    assert [m for s, p, i, m in found if i == "a"] == []
    assert ("warning", "$.Actions[1].Parameters.ContactFlowId", "b",
            f"no flow file matches ContactFlowId '{ARN}0000' (flows here: {', '.join(sorted(library.current.names()))}); "
            "the transfer takes its error branch") in found
    assert ("error", "$.Actions[2].Parameters.ContactFlowId", "c",
            'ContactFlowId must be static or one reference, found "x $.Attributes.f"') in found
    assert ("error", "$.Actions[3].Parameters", "d",
            "missing ContactFlowId (the flow to run: its file name, Metadata name, id or ARN)") in found
    assert not any(i == "b" and p.endswith("ContactFlowId") for _, p, i, _ in issues_of(document))   # no library


def test_refresh_takes_valid_versions_and_keeps_serving_the_last_valid_one(flows):
    library = library_in(flows)
    main = flows / "main.json"
    first, snapshot = library.get("main"), library.current
    assert library.refresh() == []   # nothing changed
    write(flows, "main.json", doc(say("hi", "Version two."), BYE))
    os.utime(main, (1_000_000, 1_000_000))
    [entry] = library.refresh()
    assert entry.path == main.resolve() and entry.valid and entry.serving_mtime == 1_000_000
    assert library.get("main").start_action == "hi" and snapshot.get("main") is first   # a call keeps its set
    main.write_text('{"Version": "2019-10-30", "StartAction": "hi", "Actions": [')
    [entry] = library.refresh()
    assert not entry.valid and entry.serving_mtime == 1_000_000
    assert library.get("main").start_action == "hi"
    assert entry.status()["errors"][0].startswith(f"{main.resolve()}:1:") and "invalid JSON" in entry.status()["errors"][0]
    main.unlink()
    [entry] = library.refresh()
    assert entry.status()["errors"] == [f"{main.resolve()}: $: the file is gone; the last valid version keeps serving"]
    assert library.get("main").start_action == "hi"
    write(flows, "new.json", doc(BYE))
    assert [e.path.name for e in library.refresh()] == ["new.json"] and library.get("new") is not None


def test_flowset_without_library_knows_nothing():
    empty = FlowSet()
    assert empty.get("x") is None and not empty.knows("x") and empty.names() == []


# --- UpdateContactEventHooks and the disconnect flow -----------------------------------------------

def hooks(ident, mapping, next_action="next-step", on_error="bye"):
    return action(ident, "UpdateContactEventHooks", {"EventHooks": mapping}, next_action, (),
                  [error("NoMatchingError", on_error)])


@pytest.fixture
def goodbye(tmp_path):
    """A folder with a disconnect flow: sets attributes, skips its prompt, then waits for a key (ends there)."""
    write(tmp_path, "after-call.json", doc(attrs("mark", "thanks", cleaned="yes", caller="$.CustomerEndpoint.Address"),
                                           say("thanks", "Thanks for calling.", "survey"),
                                           menu("survey", [cond("Equals", "1", "bye")]), BYE))
    return library_in(tmp_path)


def _with_disconnect_hook(*rest):
    return flow_of(hooks("set", {"CustomerRemaining": "after-call"}, rest[0]["Identifier"]), *rest)


async def _call(flow, contact, library, prompts):
    result = await run_flow(flow, contact, prompts, library=library)
    return result, await run_disconnect_flow(contact, library, after=result)


@pytest.mark.parametrize("where", ["prompt", "menu", "queue"])
def test_disconnect_flow_runs_after_the_caller_hangs_up(goodbye, where):
    flow = _with_disconnect_hook(
        say("intro", "Welcome.", "ask"), menu("ask", [cond("Equals", "1", "q")]),
        action("q", "UpdateContactTargetQueue", {"QueueId": "support"}, "send"),
        action("send", "TransferContactToQueue", {}, None, (), [error("QueueAtCapacity", "bye")]), BYE)
    contact = HookedContact(during_prompts=[HANGUP] if where == "prompt" else [],
                            keys={"prompt": [], "menu": [HANGUP], "queue": ["1"]}[where])
    prompts = FakePrompts()
    result, hook = asyncio.run(_call(flow, contact, goodbye.current, prompts))
    assert result.outcome == {"prompt": "hung_up", "menu": "hung_up", "queue": "queued"}[where]
    assert contact.event_hooks == {"CustomerRemaining": "after-call"}
    assert branches(hook) == [("mark", "next"), ("thanks", "next"), ("survey", "hung_up")]
    assert hook.outcome == "hung_up"
    assert contact.attributes == {"cleaned": "yes", "caller": "+15550100"}
    assert "Thanks for calling." not in prompts.spoken    # no audio: its prompt is not even synthesised
    records = hook_records(hook)
    assert [r["hook"] for r in records] == ["CustomerRemaining"] * 3 and records[0]["id"] == "mark"


@pytest.mark.parametrize("outcome_keys", [["2"], [None]])
def test_disconnect_flow_does_not_run_when_the_flow_ends_the_call(goodbye, outcome_keys):
    flow = _with_disconnect_hook(menu("ask", [cond("Equals", "2", "bye")], timeout="end"),
                                 action("end", "EndFlowExecution"), BYE)
    contact = HookedContact(keys=outcome_keys)
    result, hook = asyncio.run(_call(flow, contact, goodbye.current, FakePrompts()))
    assert result.outcome in ("disconnected", "ended") and hook is None and "cleaned" not in contact.attributes


def test_event_hooks_errors_and_channels(goodbye):
    flow = flow_of(hooks("set", {"CustomerQueue": "$.Attributes.q"}, "bye", "failed"), say("failed", "No."), BYE)
    contact = HookedContact()
    contact.attributes["q"] = "after-call"
    result = run(flow, contact, library=goodbye.current)
    assert branches(result)[0] == ("set", "next") and contact.event_hooks == {"CustomerQueue": "after-call"}
    contact.attributes["q"] = "no-such-flow"
    result = run(flow, contact, library=goodbye.current)
    assert branches(result)[:2] == [("set", "NoMatchingError"), ("failed", "next")]
    assert result.path[0].detail == "no flow 'no-such-flow' for CustomerQueue"
    contact.attributes["q"] = ""
    assert branches(run(flow, contact, library=goodbye.current))[0] == ("set", "NoMatchingError")
    sms = FakeContact()     # a contact without event hooks (the SMS channel): the action does nothing
    sms.attributes["q"] = "after-call"
    result = run(flow, sms, library=goodbye.current)
    assert branches(result)[0] == ("set", "next")
    assert result.path[0].detail == "event hooks are not kept on the VOICE channel"


def test_disconnect_flow_missing_from_the_library_is_an_error():
    contact = HookedContact()
    contact.event_hooks["CustomerRemaining"] = ARN + "0000"
    hook = asyncio.run(run_disconnect_flow(contact, FlowSet()))
    assert hook.outcome == "error" and hook.error == f"disconnect flow '{ARN}0000' not found"
    assert DISCONNECT_FLOW_SECONDS <= 30


def test_event_hooks_validation(goodbye):
    found = issues_of(doc(hooks("a", {"Disconnect": "after-call"}, "bye"), hooks("b", {"AgentWhisper": "w"}, "bye"),
                          hooks("c", {"CustomerRemaining": "nothing-here", "CustomerQueue": "after-call"}, "bye"),
                          hooks("d", [], "bye"), action("e", "UpdateContactEventHooks", {}, "bye"), BYE),
                      flow_refs=goodbye.current)
    assert any(s == "error" and p == "$.Actions[0].Parameters.EventHooks.Disconnect" and i == "a" and
               m.endswith("; the disconnect flow is CustomerRemaining") for s, p, i, m in found)
    assert ("warning", "$.Actions[1].Parameters.EventHooks.AgentWhisper", "b",
            "the AgentWhisper flow is kept on the contact but callgate does not run it") in found
    assert ("warning", "$.Actions[2].Parameters.EventHooks", "c",
            "2 event hooks in one action (Connect documents one); all are set") in found
    assert any(p == "$.Actions[2].Parameters.EventHooks.CustomerRemaining" and "no flow file matches" in m
               for _, p, _, m in found)
    assert not any(p.endswith("CustomerQueue") for _, p, _, _ in found)
    assert ("error", "$.Actions[3].Parameters.EventHooks", "d",
            "EventHooks must be an object with one event and its flow, found a list") in found
    assert any(p == "$.Actions[4].Parameters" and i == "e" and m.startswith("missing EventHooks") for _, p, i, m in found)


# --- UpdateContactCallbackNumber ------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("+4930123456", ("+4930123456", None)), ("+49 (30) 123-456", ("+4930123456", None)),
    ("004930123456", ("+4930123456", None)), ("030123456", ("030123456", None)),
    ("Timeout", (None, "InvalidCallbackNumber")), ("", (None, "InvalidCallbackNumber")),
    ("+12", (None, "InvalidCallbackNumber")), ("12ab34", (None, "InvalidCallbackNumber")),
    ("112", (None, "CallbackNumberNotDialable")), ("*100#", (None, "InvalidCallbackNumber")),
    ("1180", (None, "CallbackNumberNotDialable")),
])
def test_callback_numbers(text, expected):
    assert callback_number(text) == expected


def test_callback_number_from_stored_input_and_its_error_branches():
    flow = flow_of(action("set", "UpdateContactCallbackNumber", {"CallbackNumber": "$.Attributes.cb"}, "bye", (),
                          [error("InvalidCallbackNumber", "invalid"), error("CallbackNumberNotDialable", "not-dialable")]),
                   say("invalid", "Invalid."), say("not-dialable", "Not dialable."), BYE)
    for value, path in [("+1 555 0100 999", ["set", "bye"]), ("Timeout", ["set", "invalid", "bye"]),
                        ("911", ["set", "not-dialable", "bye"])]:
        contact = HookedContact()
        contact.attributes["cb"] = value
        result = run(flow, contact)
        assert [s.identifier for s in result.path] == path
        assert contact.callback_number == ("+15550100999" if path == ["set", "bye"] else None)
    assert result.path[0].detail == '"911" from $.Attributes.cb'


def test_callback_number_validation():
    found = issues_of(doc(action("a", "UpdateContactCallbackNumber", {"CallbackNumber": "12ab"}, "bye"),
                          action("b", "UpdateContactCallbackNumber", {}, "bye",
                                 errors=[error("InvalidCallbackNumber", "bye"), error("CallbackNumberNotDialable", "bye")]),
                          BYE))
    assert ("error", "$.Actions[0].Parameters.CallbackNumber", "a",
            'CallbackNumber "12ab" is not a number a callback can dial (InvalidCallbackNumber)') in found
    assert ("warning", "$.Actions[0].Transitions.Errors", "a",
            "no CallbackNumberNotDialable branch: such a number ends the flow with an error") in found
    assert any(p == "$.Actions[1].Parameters" and i == "b" and m.startswith("missing CallbackNumber")
               for _, p, i, m in found)


# --- every error names its action and path --------------------------------------------------------

def test_every_action_issue_names_the_action_and_its_json_path():
    broken = doc(
        action("cmp", "Compare", {"ComparisonValue": 5}, None, [cond("Foo", "1", "gone")]),
        action("lp", "Loop", {"LoopCount": -1}, "cmp", [cond("Equals", "Maybe", "cmp")], [error("Bogus", "cmp")]),
        action("pct", "DistributeByPercentage", {"x": 1}, None, [cond("NumberLessThan", "0", "lp")]),
        transfer("tr", 7), hooks("hk", {"Nope": 1}, None), action("cb", "UpdateContactCallbackNumber", {"CallbackNumber": []}),
        action("a" * 51, "NoSuchType"), {"Identifier": "x:y", "Type": "MessageParticipant", "Parameters": []},
        start="cmp")
    flow, issues = check(broken)
    assert flow is None
    ids = [a["Identifier"] for a in broken["Actions"]]
    action_issues = [i for i in issues if i.path.startswith("$.Actions[")]
    assert len(action_issues) >= 15
    for issue in action_issues:
        index = int(issue.path.split("[", 2)[1].split("]")[0])
        assert issue.identifier == ids[index], str(issue)
        assert issue.line is not None and issue.source == "flow.json"
