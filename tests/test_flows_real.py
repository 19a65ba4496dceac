"""Real flows published by others (shared/flows/real, see its MANIFEST.md): every one is processed
without a crash and is either accepted, or refused for exactly the block types callgate does not run
(and the other errors listed for it), so a regression in any block changes the outcome of some file."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gateway.clock import ManualClock
from gateway.flows.interpreter import CallerHungUp, run_flow
from gateway.flows.library import FlowSet
from gateway.flows.validate import SUPPORTED_TYPES, validate_flow_text

REAL = Path(__file__).parents[2] / "shared" / "flows" / "real"
INVENTORY = REAL / "inventory.json"  # per file: format, action types, action count (not a flow itself)
FLOW_FILES = sorted(p for p in REAL.glob("*.json") if p != INVENTORY) if REAL.is_dir() else []
UNSUPPORTED_RE = re.compile(r"^not supported here: (\S+) at \$\.Actions\[\d+\](?:: .+)?$")  # and why, for some

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real flow corpus not found at {REAL}")


def inventory() -> dict:
    return json.loads(INVENTORY.read_text())


def check(name: str):
    path = REAL / name
    return validate_flow_text(path.read_text(encoding="utf-8"), str(path))


def errors(issues):
    return [i for i in issues if i.severity == "error"]


def test_inventory_lists_every_flow_file():
    assert sorted(inventory()) == [p.name for p in FLOW_FILES]
    assert len(FLOW_FILES) == 27


# What each flow-language file is refused for, exactly: {unsupported Type: how many of its actions},
# then {JSON path: what the error there says} for every other error. VALID: no error at all. A block that
# stops being supported, or a check that stops (or starts) refusing something, changes a row.
VALID: tuple[dict[str, int], dict[str, str]] = ({}, {})
PROMPT_LIBRARY = "Connect prompt-library ARNs and references are not supported here"


def library_prompts(*indexes: int) -> dict[str, str]:
    return {f"$.Actions[{i}].Parameters.PromptId": PROMPT_LIBRARY for i in indexes}


EXPECTED: dict[str, tuple[dict[str, int], dict[str, str]]] = {
    "01-gm-patient-main-menu.json": ({}, library_prompts(6, 16, 17, 18, 19, 21, 23)),
    "02-gm-dial-extension.json": ({}, {
        **library_prompts(7, 10, 26),
        "$.Actions[14].Parameters": "missing QueueId (agent queues via AgentId are not supported here)",
        "$.Actions[18].Parameters.AgentId": "agent queues (AgentId) are not supported here"}),
    "03-gm-voicemail.json": ({"UpdateContactMediaStreamingBehavior": 2}, library_prompts(9)),
    "04-gm-customer-queue.json": ({"UpdateContactMediaStreamingBehavior": 2}, {
        **library_prompts(15, 17, 19, 21), "$.Actions[20].Parameters.Messages[0].PromptId": PROMPT_LIBRARY}),
    "05-sample-disconnect-wait.json": VALID,
    "06-sample-recording-behavior.json": VALID,
    "07-sample-queue-configurations-callback.json": VALID,
    "08-scv-rest-example.json": VALID,
    "09-scv-queue-transfer.json": VALID,
    "10-scv-inbound-transcription.json": ({"UpdateContactMediaStreamingBehavior": 1}, {}),
    "11-gts-main-lex-modules.json": ({"ConnectParticipantWithLexBot": 6}, {}),
    "12-gts-callback-module.json": VALID,
    "13-sample-main-flow-modules.json": ({"ConnectParticipantWithLexBot": 1}, {}),
    "14-sample-getservice-module.json": ({"ConnectParticipantWithLexBot": 1}, {}),
    "15-sample-transfer-to-agent-module.json": ({"ConnectParticipantWithLexBot": 1}, {}),
    "16-tf-inbound-lex-hours.json": ({"ConnectParticipantWithLexBot": 1}, {}),
    "17-vmx3-voicemail-core-module.json": VALID,
    "18-vmx3-in-queue-option.json": VALID,
    "19-callbackmgmt-set-callback.json": VALID,
    "20-acme-main-lex-module.json": ({"ConnectParticipantWithLexBot": 1}, {}),
    "21-acme-empty-hold-edge.json": ({}, {"$.StartAction": "names no action (the Actions list is empty)"}),
    "22-contact-survey-module.json": ({"ConnectParticipantWithLexBot": 1}, {}),
    "23-blueprint-multilingual-menu.json": VALID,
    "24-foundry-vanity-ts-literal.json": VALID,
}
FLOW_LANGUAGE_FILES = [p for p in FLOW_FILES if p.name in EXPECTED]


def test_every_flow_language_file_has_an_exact_expectation():
    assert sorted(EXPECTED) == sorted(n for n, e in inventory().items() if e["format"] != "old-export")
    assert len(EXPECTED) == 24
    for refused, _ in EXPECTED.values():
        assert not set(refused) & SUPPORTED_TYPES


@pytest.mark.parametrize("path", FLOW_LANGUAGE_FILES, ids=lambda p: p.name)
def test_real_flow_is_valid_or_refused_for_exactly_its_unsupported_types(path):
    flow, issues = validate_flow_text(path.read_text(encoding="utf-8"), str(path))
    refused, other = EXPECTED[path.name]
    for issue in issues:
        assert issue.source == str(path) and issue.path.startswith("$") and issue.line is not None
    named = Counter(m.group(1) for i in errors(issues) if (m := UNSUPPORTED_RE.match(i.message)))
    assert dict(named) == refused
    rest = [i for i in errors(issues) if not UNSUPPORTED_RE.match(i.message)]
    assert sorted(i.path for i in rest) == sorted(other)
    for issue in rest:
        assert other[issue.path] in issue.message, issue
    # the unsupported types named are those of the inventory that callgate does not run
    assert set(named) == set(inventory()[path.name]["types"]) - SUPPORTED_TYPES
    if (refused, other) == VALID:
        assert flow is not None and len(flow.actions) == inventory()[path.name]["actions"]
    else:
        assert flow is None


def test_old_export_files_are_refused_as_a_whole():
    old = [p for p in FLOW_FILES if p.name not in EXPECTED]
    assert [p.name for p in old] == ["25-old-vm-greeting-did.json", "26-old-sample-queue-configurations.json",
                                     "27-old-remote-control-center.json"]
    for path in old:
        flow, [issue] = validate_flow_text(path.read_text(encoding="utf-8"), str(path))
        assert flow is None and issue.line is not None
        assert issue.message.startswith("legacy Amazon Connect console export format")
        assert f"{inventory()[path.name]['actions']} modules" in issue.message


@pytest.mark.parametrize("path", [p for p in FLOW_LANGUAGE_FILES if EXPECTED[p.name] == VALID],
                         ids=lambda p: p.name)
def test_valid_real_flow_runs_to_an_end_on_its_error_branches(path):
    """No webhooks, flows or queues answer here: each block's own error branch carries the call on. A flow
    module runs as a flow invokes it, and comes back to it (or ends the call itself)."""
    flow, _ = check(path.name)
    library = FlowSet({"the-module": flow}) if flow.settings is not None else None
    start = invoking_flow("the-module") if library is not None else flow
    for keys in ([], ["1"], ["2", "2"]):
        caller, prompts, clock = MenuCaller(keys), SilentPrompts(), ManualClock()
        run = run_flow(start, caller, prompts, library=library, clock=clock)
        result = asyncio.run(asyncio.wait_for(drive(clock, run), 10))
        # a menu asking again and again ends when the caller gives up; a customer queue flow may end (the
        # caller goes on waiting)
        assert result.outcome in {"queued", "disconnected", "ended"} or (result.outcome == "hung_up" and
                                                                         caller.gave_up), (keys, result.error)
        steps = result.path[1:] if library is not None else result.path
        assert steps[0].identifier == flow.start_action
        if library is not None:
            assert result.path[0].branch == "invoked" and steps[0].flow == path.stem


async def drive(clock: ManualClock, coro):
    """Run `coro`, moving the clock on by a second whenever everything else waits (loop prompts' rounds)."""
    task = asyncio.ensure_future(coro)
    while not task.done():
        for _ in range(20):
            await asyncio.sleep(0)
        if not task.done():
            clock.advance(1.0)
    return task.result()


def invoking_flow(module: str):
    """A flow that invokes `module`, then hangs up."""
    flow, issues = validate_flow_text(json.dumps({"Version": "2019-10-30", "StartAction": "call", "Actions": [
        {"Identifier": "call", "Type": "InvokeFlowModule", "Parameters": {"FlowModuleId": module},
         "Transitions": {"NextAction": "bye", "Errors": [{"ErrorType": "NoMatchingError", "NextAction": "bye"}]}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}))
    assert flow is not None, issues
    return flow


def test_legacy_exports_are_reported_as_legacy_with_their_names():
    for name, flow_name in [("25-old-vm-greeting-did.json", "VM-Greeting-DID"),
                            ("26-old-sample-queue-configurations.json", "Sample Queue Configurations Flow"),
                            ("27-old-remote-control-center.json", "remote-Sample")]:
        flow, [issue] = check(name)
        assert flow is None and issue.path == "$"
        assert f"legacy Amazon Connect console export format of flow '{flow_name}'" in issue.message
        assert "not supported" in issue.message and "PlayPrompt" in issue.message


def test_empty_hold_flow_is_refused_for_its_dangling_start_action():
    flow, issues = check("21-acme-empty-hold-edge.json")
    assert flow is None
    [issue] = issues
    assert (issue.path, issue.line) == ("$.StartAction", 3)
    assert issue.message == ("StartAction '1a34ecf3-77ff-46a7-b210-38a1a980127b' names no action "
                             "(the Actions list is empty)")


def test_lex_flow_is_refused_naming_the_bot_block_only():
    flow, issues = check("16-tf-inbound-lex-hours.json")
    named = {m.group(1) for i in issues if (m := UNSUPPORTED_RE.match(i.message))}
    assert flow is None
    assert named == {"ConnectParticipantWithLexBot"}  # its hours check and Lambda (a webhook) run here


def test_unreachable_actions_of_files_04_and_13_are_warnings():
    _, issues = check("13-sample-main-flow-modules.json")
    unreachable = [i for i in issues if i.message.startswith("unreachable")]
    assert [(i.severity, i.identifier) for i in unreachable] == [("warning", "b427faef-0b3f-4137-882c-480f05b1d4f1")]
    _, issues = check("04-gm-customer-queue.json")
    unreachable = {i.identifier for i in issues if i.message.startswith("unreachable")}
    assert "feffb9a6-651f-4732-bed7-30741a365eda" in unreachable  # the one the manifest names


def test_prompt_library_ids_are_refused_as_not_local_files():
    _, issues = check("01-gm-patient-main-menu.json")
    prompt_issues = [i for i in errors(issues) if i.path.endswith(".Parameters.PromptId")]
    assert prompt_issues and all("local WAV file" in i.message for i in prompt_issues)


class MenuCaller:
    """A caller who presses the given keys, one per menu, and hangs up once asked GIVE_UP times more."""

    GIVE_UP = 10

    def __init__(self, keys):
        self.contact_id, self.attributes = "c-real", {}
        self.customer_number, self.system_number, self.queue_name = "+15550100", "+15550199", None
        self.keys, self.queue_refs, self.disconnected = list(keys), [], False
        self.silences, self.gave_up = 0, False

    async def play(self, samples, *, interruptible):
        return None

    async def get_digit(self, timeout):
        if self.keys:
            return self.keys.pop(0)
        self.silences += 1
        if self.silences > self.GIVE_UP:
            self.gave_up = True
            raise CallerHungUp("gave up")
        return None

    def set_queue(self, queue_ref):
        self.queue_refs.append(queue_ref)
        self.queue_name = queue_ref.rsplit("/", 1)[-1]
        return True

    async def transfer_to_queue(self):
        return "queued"

    async def disconnect(self):
        self.disconnected = True


class SilentPrompts:
    def __init__(self):
        self.spoken = []

    async def text(self, text, voice="en-us"):
        self.spoken.append(text)
        return np.zeros(160, dtype=np.int16)

    def file(self, path):
        raise AssertionError("no prompt files in this flow")


def test_multilingual_menu_is_accepted_and_runs():
    flow, issues = check("23-blueprint-multilingual-menu.json")
    assert flow is not None and issues == []
    caller, prompts = MenuCaller(["2", "2"]), SilentPrompts()
    result = asyncio.run(asyncio.wait_for(run_flow(flow, caller, prompts), 10))
    assert result.outcome == "queued"
    assert [s.branch for s in result.path] == ["next", "condition:2", "next", "condition:2", "next", "queued"]
    assert caller.attributes == {"language": "en"}
    assert caller.queue_refs == ["arn:aws:connect:us-east-1:123456789012:instance/5368a448-63ff-59f7-8af0-"
                                 "72879fba52f5/queue/9103d8db-211b-5be5-b398-695d1f42e639"]
    assert prompts.spoken[1] == "For sales inquiries, press 1. For support, press 2."
