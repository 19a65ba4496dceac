"""A caller hanging up at any moment ends the flow cleanly: every example flow and every real flow that
runs here is rehearsed once per interaction, with the caller gone at that one, and must end as
"hung_up" (or have ended before it, or be lost while waiting in its customer queue flow) with no
action failing. (The disconnect flow after a hang-up is tested in test_flows_control.py.)"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.config import load_config
from gateway.flows.library import FlowLibrary
from gateway.flows.simulate import Setting, rehearse
from gateway.flows.validate import validate_flow_text

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
REAL = REPO.parent / "shared" / "flows" / "real"
DIGIT_SCRIPTS = ([], ["1"], ["2"], ["3"], ["1", "1"])
BERLIN = ZoneInfo("Europe/Berlin")
TIMES = (datetime(2026, 12, 2, 10, 0, tzinfo=BERLIN).timestamp(),   # a Wednesday: the office is open
         datetime(2026, 12, 2, 22, 0, tzinfo=BERLIN).timestamp())   # closed: voicemail
INTERACTIONS_TRIED = 12


def _setting() -> Setting:
    """The example gateway around the flows: its hours and queues; every webhook answers Ada."""
    cfg = load_config(EXAMPLES / "callgate.toml")
    return Setting(hours=cfg.hours, queue_hours=cfg.queue_hours, webhooks=cfg.webhooks,
                   webhook_reply=b'{"name": "Ada", "known": "true"}')


def _flows():
    found = [p for p in sorted((EXAMPLES / "flows").glob("*.json"))]
    if REAL.is_dir():
        found += sorted(REAL.glob("*.json"))
    return found


def _sweep(path: Path, library, setting) -> tuple[set[str], int]:
    flow, _ = validate_flow_text(path.read_text(encoding="utf-8-sig"), str(path))
    if flow is None:
        return set(), 0
    where: set[str] = set()
    runs = 0
    for at, digits in ((at, digits) for at in TIMES for digits in DIGIT_SCRIPTS):
        for n in range(1, INTERACTIONS_TRIED + 1):
            rehearsal = asyncio.run(rehearse(flow, digits=list(digits), setting=setting, library=library,
                                             at=at, hang_up_after=n))
            runs += 1
            result = rehearsal.result
            failed = [s for s, _ in rehearsal.steps if s.detail and "Error" in s.detail and "CallerHungUp" in s.detail]
            assert not failed, f"{path.name} n={n}: a hang-up was taken as an action failure: {failed}"
            hung = [(i, s) for i, (s, _) in enumerate(rehearsal.steps) if s.branch == "hung_up"]
            if result.outcome != "hung_up":
                in_hooks = [s for i, s in hung if i in rehearsal.hooks]   # lost while waiting in the queue flow
                assert len(in_hooks) == len(hung), f"{path.name} n={n}: steps hung up but the flow ended {result.outcome}"
                if not hung:
                    break   # the flow ended before the caller's nth interaction: later n end the same way
            else:
                assert result.error is None, f"{path.name} n={n}: {result.error}"
            where.add(hung[0][1].type)
    return where, runs


def test_a_hang_up_at_any_interaction_ends_every_runnable_flow_cleanly():
    setting = _setting()
    folders = [EXAMPLES / "flows"] + ([REAL] if REAL.is_dir() else [])
    library = FlowLibrary(folders)
    library.refresh()
    kinds: set[str] = set()
    total = 0
    for path in _flows():
        where, runs = _sweep(path, library.current, setting)
        kinds |= where
        total += runs
    assert total > 100
    # the kinds of action the caller was lost in, across the set: each waits on the caller differently
    for expected in ("MessageParticipant", "GetParticipantInput", "TransferContactToQueue", "Callgate.RecordVoicemail"):
        assert expected in kinds, sorted(kinds)


def test_hang_up_during_a_third_party_transfer_and_loop_prompts(tmp_path):
    flow = {"Version": "2019-10-30", "StartAction": "loop", "Actions": [
        {"Identifier": "loop", "Type": "MessageParticipantIteratively",
         "Parameters": {"Messages": [{"Text": "Please hold."}], "InterruptFrequencySeconds": "1"},
         "Transitions": {"Conditions": [{"NextAction": "dial", "Condition": {"Operator": "Equals",
                                                                             "Operands": ["MessagesInterrupted"]}}],
                         "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "dial", "Type": "TransferParticipantToThirdParty",
         "Parameters": {"ThirdPartyPhoneNumber": "+4930555000", "ThirdPartyConnectionTimeLimitSeconds": "30",
                        "ContinueFlowExecution": "True"},
         "Transitions": {"NextAction": "bye", "Errors": [{"NextAction": "bye", "ErrorType": "CallFailed"},
                                                        {"NextAction": "bye", "ErrorType": "ConnectionTimeLimitExceeded"},
                                                        {"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}
    parsed, issues = validate_flow_text(json.dumps(flow))
    assert parsed is not None, issues
    seen = {}
    for n in range(1, 10):
        rehearsal = asyncio.run(rehearse(parsed, hang_up_after=n))
        if rehearsal.result.outcome != "hung_up":
            break
        seen[n] = rehearsal.steps[-1][0].type
    assert "MessageParticipantIteratively" in seen.values() and "TransferParticipantToThirdParty" in seen.values()
