"""Hot reload and flows calling flows through the real daemon on an emulated SIM7600.

The line's flow hands the call to a menu flow in the same folder (TransferToFlow) and sets a disconnect
flow. Call A presses a key while the welcome plays, before the transfer: the menu, in the other file,
takes it. Then the line's flow is edited (a new version) and broken (an invalid one): the retained
`…/flows/gsm1` status shows each, and call B runs the edited version while the broken one is on disk.
During call B the disconnect flow's file is changed too; B hangs up mid-prompt and its disconnect flow
runs in the version the call started with.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from tests.stack import AgentClient, Stack, free_port, launch, stop_daemon, wait_until, write_config

WELCOME = "Welcome to the flow reload test line, version {n}. One moment please."
WELCOME_SECONDS = 5.0  # at most, as espeak-ng says it
HOLD = ("Please hold while we find someone for you. This message is long on purpose, so that the caller can "
        "hang up in the middle of it and the disconnect flow can run after the call. It goes on for a while "
        "longer, with nothing much to say, until the caller has had enough and puts the phone down.")


def _doc(*actions, **top):
    return {"Version": "2019-10-30", "StartAction": actions[0]["Identifier"], "Actions": list(actions), **top}


def _act(ident, type_, params, next_action=None, errors=(), conditions=()):
    transitions = {"Errors": [{"ErrorType": e, "NextAction": t} for e, t in errors],
                   "Conditions": [{"NextAction": t, "Condition": {"Operator": "Equals", "Operands": [k]}}
                                  for k, t in conditions]}
    if next_action:
        transitions["NextAction"] = next_action
    return {"Identifier": ident, "Type": type_, "Parameters": params, "Transitions": transitions}


BYE = _act("bye", "DisconnectParticipant", {})


def main_flow(n: int) -> dict:
    extra = [_act("v2-only", "UpdateContactAttributes", {"Attributes": {"edited": "yes"}}, "go")] if n == 2 else []
    return _doc(
        _act("hooks", "UpdateContactEventHooks", {"EventHooks": {"CustomerRemaining": "After call"}}, "welcome",
             [("NoMatchingError", "welcome")]),
        _act("welcome", "MessageParticipant", {"Text": WELCOME.format(n=n)}, "version"),
        _act("version", "UpdateContactAttributes", {"Attributes": {"version": str(n)}}, "v2-only" if extra else "go"),
        *extra,
        _act("go", "TransferToFlow", {"ContactFlowId": "menu"}, None, [("NoMatchingError", "bye")]), BYE)


MENU = _doc(
    _act("choose", "GetParticipantInput", {"Text": "Press 1 or 2.", "InputTimeLimitSeconds": "3"}, None,
         [("InputTimeLimitExceeded", "bye"), ("NoMatchingCondition", "bye")], [("1", "one"), ("2", "hold")]),
    _act("one", "UpdateContactAttributes", {"Attributes": {"choice": "one"}}, "bye"),
    _act("hold", "MessageParticipant", {"Text": HOLD}, "bye"), BYE)


def after_call(n: int) -> dict:
    return _doc(_act("mark", "UpdateContactAttributes", {"Attributes": {"cleaned": f"v{n}"}}, "thanks"),
                _act("thanks", "MessageParticipant", {"Text": "Thanks for calling."}, "bye"), BYE,
                Metadata={"name": "After call"})


def _write(path: Path, document: dict | str) -> float:
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2))
    return path.stat().st_mtime



def _record(stack: Stack, caller: str) -> dict:
    def finished():
        out = stack.cli("contacts", "--json")
        rows = json.loads(out.stdout) if out.returncode == 0 else []
        return next((r for r in rows if r["caller"] == caller and r.get("ended_at")), None)
    return wait_until(finished, 20, f"the finished contact record of {caller}", stack, poll=0.02)


def _answered_and_speaking(stack: Stack, caller: str) -> None:
    emu = stack.emulator
    emu.clear_capture()
    emu.ring(caller)
    assert emu.wait_for_state("active", 10), f"call not answered; log:\n{stack.log()[-3000:]}"
    wait_until(lambda: np.abs(emu.capture()).max(initial=0) > 2000, 10, "the welcome prompt", stack, poll=0.02)


def _start(tmp_path: Path, flows: Path, extra: str = "") -> Stack:
    return launch(tmp_path, flows / "main.json", extra=extra)


def test_flows_reload_for_new_calls_and_a_broken_file_is_rejected(tmp_path):
    flows, shared = tmp_path / "flows", tmp_path / "shared-flows"   # the line's folder, and [flows] dirs
    flows.mkdir()
    shared.mkdir()
    main = flows / "main.json"
    v1 = _write(main, main_flow(1))
    _write(flows / "menu.json", MENU)
    _write(shared / "after-call.json", after_call(1))
    stack = _start(tmp_path, flows, '\n[flows]\ndirs = ["shared-flows"]\n')
    emu = stack.emulator
    watcher = AgentClient(stack, "alice")
    base = watcher.base
    try:
        status = watcher.wait_for(lambda t, o: t == f"{base}/flows/gsm1", 10, "the line's flow status")
        assert status["valid"] is True and status["serving"] == v1 and status["errors"] == []
        assert status["file"] == str(main) and "main" in status["names"]

        # call A: a key typed during the welcome, before the transfer, is the menu's answer
        _answered_and_speaking(stack, "+15551230101")
        emu.send_dtmf("1")
        assert emu.wait_for_state("idle", 15), f"call A did not end; log:\n{stack.log()[-3000:]}"
        record = _record(stack, "+15551230101")
        assert record["attributes"] == {"version": "1", "choice": "one"}
        path = [(s["id"], s["branch"], s.get("flow")) for s in record["flow_path"]]
        assert path == [("hooks", "next", None), ("welcome", "next", None), ("version", "next", None),
                        ("go", "transferred", None), ("choose", "condition:1", "menu"), ("one", "next", "menu"),
                        ("bye", "disconnected", "menu")]

        # a new version, then a broken one: each shows on the status topic
        time.sleep(0.05)
        v2 = _write(main, main_flow(2))
        status = watcher.wait_for(lambda t, o: t == f"{base}/flows/gsm1" and o["serving"] == v2, 10, "version 2")
        assert status["valid"] is True and status["errors"] == []
        time.sleep(0.05)
        _write(main, json.dumps(main_flow(3)).replace('"go"}', '"nowhere"}', 1))
        status = watcher.wait_for(lambda t, o: t == f"{base}/flows/gsm1" and o["valid"] is False, 10, "rejection")
        assert status["serving"] == v2 and status["file"] == str(main)
        assert any("transition to missing action 'nowhere'" in e and "(action 'version')" in e
                   for e in status["errors"]), status["errors"]
        assert "rejected" in stack.log() and "nowhere" in stack.log()

        # call B runs version 2 while the broken file is on disk; its disconnect flow changes mid-call
        _answered_and_speaking(stack, "+15551230102")
        speaking = time.monotonic()
        emu.send_dtmf("2")
        time.sleep(0.5)
        v_after = _write(shared / "after-call.json", after_call(2))
        library = watcher.wait_for(
            lambda t, o: t == f"{base}/flows" and any(f["file"].endswith("after-call.json") and f["serving"] == v_after
                                                      for f in o["files"]), 10, "the new disconnect flow")
        assert {f["file"] for f in library["files"]} == {str(main), str(flows / "menu.json"), str(shared / "after-call.json")}
        assert library["dirs"] == [str(flows), str(shared)]
        time.sleep(max(0.0, speaking + WELCOME_SECONDS + 3.0 - time.monotonic()))   # well into the hold message
        assert emu.state == "active", "call B ended before the caller hung up"
        emu.hangup()
        record = _record(stack, "+15551230102")
    finally:
        watcher.close()
        code = stop_daemon(stack.proc)
        emu.stop()
    assert code == 0, f"daemon exited with {code}:\n{stack.log()[-3000:]}"

    assert record["attributes"] == {"version": "2", "edited": "yes", "cleaned": "v1"}
    path = [(s["id"], s["branch"], s.get("flow"), s.get("hook")) for s in record["flow_path"]]
    assert path == [("hooks", "next", None, None), ("welcome", "next", None, None), ("version", "next", None, None),
                    ("v2-only", "next", None, None), ("go", "transferred", None, None),
                    ("choose", "condition:2", "menu", None), ("hold", "hung_up", "menu", None),
                    ("mark", "next", None, "CustomerRemaining"), ("thanks", "next", None, "CustomerRemaining"),
                    ("bye", "disconnected", None, "CustomerRemaining")]
    assert record["disconnect_reason"] == "customer_hung_up"


def test_flow_dirs_in_the_config(tmp_path):
    from gateway.config import ConfigError, load_config
    config = tmp_path / "callgate.toml"
    (tmp_path / "more").mkdir()
    write_config(config, gateway_id="gw", data_dir=tmp_path / "data", broker=None, web_port=free_port(), lines=[],
                 extra='\n[flows]\ndirs = ["more"]\n')
    assert load_config(config).flow_dirs == [tmp_path / "more"]
    write_config(config, gateway_id="gw", data_dir=tmp_path / "data", broker=None, web_port=free_port(), lines=[],
                 extra='\n[flows]\ndirs = ["more", "missing"]\n')
    try:
        load_config(config)
    except ConfigError as exc:
        assert str(exc) == f"{config}: flows.dirs[1]: no such folder: {tmp_path / 'missing'}"
    else:
        raise AssertionError("a missing flow folder was accepted")
