"""Bad input gets a clear error and loses nothing: a malformed flow, malformed agent commands."""

from __future__ import annotations

import json
import time

import pytest

from hil.sim7600 import Sim7600Emulator
from tests.stack import DEMO_FLOW, AgentClient, Stack, free_port, start_daemon, stop_daemon, wait_ready, write_config

BROKEN_FLOW = {
    "Version": "2019-10-30",
    "StartAction": "menu",
    "Actions": [
        {"Identifier": "menu", "Type": "GetParticipantInput", "Parameters": {"Text": "Press 1"},
         "Transitions": {"NextAction": "nowhere", "Errors": []}},
        {"Identifier": "bot", "Type": "ConnectParticipantWithLexBot", "Parameters": {}, "Transitions": {}},
    ],
}


def test_flow_validate_cli_names_identifier_and_path(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(BROKEN_FLOW, indent=2))
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "gateway", "flow", "validate", str(bad), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["valid"] is False
    by_path = {i["path"]: i for i in report["issues"] if i["severity"] == "error"}
    missing = next(i for i in report["issues"] if "nowhere" in i["message"])
    assert missing["identifier"] == "menu" and missing["path"] == "$.Actions[0].Transitions.NextAction"
    assert any("not supported here: ConnectParticipantWithLexBot" in i["message"] and i["identifier"] == "bot"
               for i in by_path.values())
    assert any(i["identifier"] == "menu" and "InputTimeLimitExceeded" in i["message"] for i in by_path.values())

    res = subprocess.run([sys.executable, "-m", "gateway", "flow", "validate", str(DEMO_FLOW)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in res.stdout

    syntax = tmp_path / "syntax.json"
    syntax.write_text('{\n  "Version": "2019-10-30",\n  "Actions": [,]\n}\n')
    res = subprocess.run([sys.executable, "-m", "gateway", "flow", "validate", str(syntax)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert f"{syntax}:3:" in res.stdout and "invalid JSON" in res.stdout


@pytest.fixture
def two_line_stack(tmp_path):
    good, broken = Sim7600Emulator(ring_interval=2.0), Sim7600Emulator(ring_interval=2.0, imei="867584030000002")
    good.start()
    broken.start()
    bad_flow = tmp_path / "broken.json"
    bad_flow.write_text(json.dumps(BROKEN_FLOW))
    data_dir, config, log_path = tmp_path / "data", tmp_path / "callgate.toml", tmp_path / "daemon.log"
    write_config(config, gateway_id="bad-input", data_dir=data_dir, broker=None, web_port=free_port(), lines=[
        {"id": "broken", "profile": "simcom_sim7600", "at_port": broken.at_port, "audio_port": broken.audio_port,
         "flow": str(bad_flow)},
        {"id": "good", "profile": "simcom_sim7600", "at_port": good.at_port, "audio_port": good.audio_port,
         "flow": str(DEMO_FLOW)}])
    proc = start_daemon(config, data_dir, log_path)
    state = wait_ready(data_dir, proc, log_path)
    stack = Stack(emulator=good, gateway_id="bad-input", data_dir=data_dir, config=config, proc=proc,
                  mqtt_host=state["mqtt_host"], mqtt_port=state["mqtt_port"], ws_url=state["ws_url"],
                  dashboard_url=state["dashboard"], log_path=log_path)
    yield stack, broken
    code = stop_daemon(proc)
    good.stop()
    broken.stop()
    assert code == 0, stack.log()[-3000:]


def test_malformed_flow_and_commands_do_not_stop_the_daemon(two_line_stack):
    stack, broken_emu = two_line_stack
    agent = AgentClient(stack, "alice")
    try:
        # the line with the malformed flow is reported failed, naming the flow's problem
        line = agent.wait_for(lambda t, o: t.endswith("/line/broken") and o.get("state") == "failed", 10, "broken line")
        assert "nowhere" in line["error"] and "menu" in line["error"]
        # and it does not answer calls
        broken_emu.ring("+15550009999")
        time.sleep(1.0)
        assert broken_emu.state == "ringing"
        broken_emu.hangup()

        base = f"callgate/{stack.gateway_id}"
        cmd = f"{base}/agent/alice/cmd"
        for payload, needle in [(b"not json", "not JSON"), (b"[1, 2]", "JSON object"),
                                (b'{"id": "x1", "action": "dance"}', "$.action"),
                                (b'{"id": "x2", "action": "accept"}', "$.contact_id"),
                                (b"\xff\xfe", "UTF-8")]:
            agent.client.publish(cmd, payload, qos=1)
            reply = agent.wait_for(lambda t, o, n=needle: t.endswith("/agent/alice/reply") and n in o.get("error", ""),
                                   10, f"bad_request reply mentioning {needle}")
            assert reply["ok"] is False and reply["code"] == "bad_request"
            assert cmd in reply["error"]
        agent.client.publish(f"{base}/agent/mallory/cmd", b'{"id": "m1", "action": "login", "password": "x"}', qos=1)
        err = agent.wait_for(lambda t, o: t.endswith("/errors") and o.get("id") == "m1", 10, "unknown agent error")
        assert err["code"] == "unknown_agent" and "mallory" in err["error"]
        denied = agent.command("available")
        assert denied["ok"] is False and denied["code"] == "not_logged_in"
        wrong = agent.command("login", password="nope")
        assert wrong["ok"] is False and wrong["code"] == "bad_credentials"

        # the daemon keeps serving: the good line answers and queues a call, the agent takes it
        assert agent.command("login", password="alice-pass")["ok"]
        assert agent.command("available")["ok"]
        stack.emulator.ring("+15551230002")
        assert stack.emulator.wait_for_state("active", 10)
        time.sleep(1.0)
        stack.emulator.send_dtmf("1")
        offer = agent.wait_for(lambda t, o: t.endswith("/agent/alice/offer"), 20, "offer")
        assert offer["caller"] == "+15551230002" and offer["line"] == "good"
        assert agent.command("accept", contact_id=offer["contact_id"])["ok"]
        assert agent.command("hangup")["ok"]
        assert stack.emulator.wait_for_state("idle", 5)
        agent.agent_state("AfterCallWork")
    finally:
        agent.close()
    assert stack.proc.poll() is None
