"""Recording through the whole stack: a real daemon on an emulated SIM7600 with its embedded broker.

One daemon, two calls: the queue records in mono, the agent pauses and resumes while the caller plays
tones (the paused tone is not in the WAV, the pause is in the record); a flow that turns recording off
leaves no file. The retention policy notes on the record that it removed an old recording.
"""

from __future__ import annotations

import json
import os
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.center.records import ContactStore
from gateway.media.tones import rms_dbfs
from hil.sim7600 import Sim7600Emulator
from tests.stack import AgentClient, Stack, free_port, start_daemon, stop_daemon, wait_ready, write_config

DAY = 86400
FLOW = {
    "Version": "2019-10-30", "StartAction": "menu",
    "Actions": [
        {"Identifier": "menu", "Type": "GetParticipantInput",
         "Parameters": {"Text": "Press 1 or 2.", "InputTimeLimitSeconds": "8", "StoreInput": "False"},
         "Transitions": {"NextAction": "bye",
                         "Conditions": [
                             {"NextAction": "record-all", "Condition": {"Operator": "Equals", "Operands": ["1"]}},
                             {"NextAction": "record-none", "Condition": {"Operator": "Equals", "Operands": ["2"]}}],
                         "Errors": [{"NextAction": "bye", "ErrorType": "InputTimeLimitExceeded"},
                                    {"NextAction": "bye", "ErrorType": "NoMatchingCondition"}]}},
        {"Identifier": "record-all", "Type": "UpdateContactRecordingBehavior",
         "Parameters": {"RecordingBehavior": {"RecordedParticipants": ["Agent", "Customer"]}},
         "Transitions": {"NextAction": "queue"}},
        {"Identifier": "record-none", "Type": "UpdateContactRecordingBehavior",
         "Parameters": {"RecordingBehavior": {"RecordedParticipants": []}},
         "Transitions": {"NextAction": "queue"}},
        {"Identifier": "queue", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "support"},
         "Transitions": {"NextAction": "transfer"}},
        {"Identifier": "transfer", "Type": "TransferContactToQueue", "Parameters": {},
         "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}]}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
    ],
}


@pytest.fixture
def stack(tmp_path):
    data_dir = tmp_path / "data"
    # an old recording and its record, for the retention policy to remove at start
    old = data_dir / "recordings" / "2020-01-01" / "c-old.wav"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"RIFF")
    os.utime(old, (time.time() - 90 * DAY, time.time() - 90 * DAY))
    store = ContactStore(data_dir / "contacts.db")
    store.upsert("c-old", initiated_at=time.time() - 90 * DAY, ended_at=time.time() - 90 * DAY,
                 recording_path=str(old), recording_seconds=60.0, recording_mode="stereo")
    store.close()

    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(FLOW))
    emu = Sim7600Emulator(ring_interval=1.0)
    emu.start()
    config = tmp_path / "callgate.toml"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=data_dir, broker=None, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": emu.at_port,
                         "audio_port": emu.audio_port, "flow": str(flow), "number": "+15550000000"}])
    text = config.read_text().replace("[gateway]\n", "[gateway]\nrecording_keep_days = 30\n", 1)
    text = text.replace('name = "Support"\n', 'name = "Support"\nrecording = "mono"\n', 1)
    config.write_text(text)
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(config, data_dir, log_path)
    try:
        state = wait_ready(data_dir, proc, log_path)
        yield Stack(emulator=emu, gateway_id=state["gateway_id"], data_dir=data_dir, config=config, proc=proc,
                    mqtt_host=state["mqtt_host"], mqtt_port=state["mqtt_port"], ws_url=state["ws_url"],
                    dashboard_url=state["dashboard"], log_path=log_path)
    finally:
        code = stop_daemon(proc)
        emu.stop()
    assert code == 0, log_path.read_text()[-3000:]


def records(stack: Stack) -> dict[str, dict]:
    out = stack.cli("contacts", "--json")
    assert out.returncode == 0, out.stderr
    return {r["contact_id"]: r for r in json.loads(out.stdout)}


def wait_record(stack: Stack, contact_id: str, predicate, what: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = records(stack).get(contact_id)
        if rec is not None and predicate(rec):
            return rec
        time.sleep(0.2)
    raise AssertionError(f"{what}: {records(stack).get(contact_id)}\n{stack.log()[-3000:]}")


def take_call(stack: Stack, agent: AgentClient, caller: str, key: str) -> str:
    emu = stack.emulator
    emu.ring(caller)
    assert emu.wait_for_state("active", 10), stack.log()[-3000:]
    deadline = time.monotonic() + 10
    while not emu.pcm_enabled and time.monotonic() < deadline:
        time.sleep(0.05)
    emu.send_dtmf(key)
    offer = agent.wait_for(lambda t, o: t.endswith("/agent/alice/offer") and o.get("caller") == caller, 15, "offer")
    assert agent.command("accept", contact_id=offer["contact_id"])["ok"]
    agent.agent_state("OnCall")
    return offer["contact_id"]


def magnitude(samples: np.ndarray, freq: float) -> float:
    """Spectral magnitude of the whole signal at freq (a pure tone stands far above speech there)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    bins = np.fft.rfftfreq(len(samples), 1 / 8000)
    return float(spectrum[np.abs(bins - freq) < 5].max())


def test_mono_queue_pause_resume_and_recording_off(stack):
    emu = stack.emulator
    old = records(stack)["c-old"]
    assert old["recording_removed_at"] is not None and old["recording_removed_at"] > time.time() - 60
    assert not Path(old["recording_path"]).exists()

    alice, bob = AgentClient(stack, "alice"), AgentClient(stack, "bob")
    try:
        for agent in (alice, bob):
            assert agent.command("login", password=stack.agents[agent.agent_id])["ok"]
        assert alice.command("available")["ok"]

        # call 1: recorded (flow: Agent + Customer; queue: mono); paused while the caller says "1500 Hz"
        contact = take_call(stack, alice, "+15551230101", "1")
        time.sleep(0.3)
        emu.play_tone(700, 1.0, amplitude=0.4)
        time.sleep(1.6)
        paused_at = time.monotonic()
        reply = alice.command("pause_recording", contact_id=contact)
        assert {k: reply.get(k) for k in ("ok", "action", "contact_id", "recording")} == {
            "ok": True, "action": "pause_recording", "contact_id": contact, "recording": "paused"}
        refused = bob.command("resume_recording", contact_id=contact)
        assert refused["ok"] is False and refused["code"] == "not_your_contact", refused
        emu.play_tone(1500, 1.5, amplitude=0.4)
        time.sleep(2.0)
        assert alice.command("resume_recording", contact_id=contact)["recording"] == "recording"
        pause_seconds = time.monotonic() - paused_at
        emu.play_tone(700, 1.0, amplitude=0.4)
        time.sleep(1.3)
        emu.hangup()
        assert emu.wait_for_state("idle", 5)
        alice.agent_state("AfterCallWork")

        # call 2: the flow turns recording off
        assert alice.command("available")["ok"]
        unrecorded = take_call(stack, alice, "+15551230102", "2")
        off = alice.command("pause_recording", contact_id=unrecorded)
        assert off["code"] == "not_recording", off
        emu.play_tone(700, 0.5, amplitude=0.4)
        time.sleep(0.7)
        emu.hangup()
        assert emu.wait_for_state("idle", 5)
    finally:
        alice.close()
        bob.close()

    rec = wait_record(stack, contact, lambda r: r.get("recording_seconds") and r["recording_path"]
                      and wave.open(r["recording_path"]).getnchannels() == 1, "no mono recording")
    assert rec["recording_mode"] == "mono" and rec["queue_id"] == "support" and rec["agent_id"] == "alice"
    [pause] = rec["recording_pauses"]
    assert abs(pause["seconds"] - pause_seconds) < 0.4, (pause, pause_seconds)
    call_seconds = rec["ended_at"] - rec["initiated_at"]
    assert abs(rec["recording_seconds"] + pause["seconds"] - call_seconds) < 1.5, (rec, call_seconds)
    with wave.open(rec["recording_path"]) as w:
        assert (w.getnchannels(), w.getframerate()) == (1, 8000)
        assert abs(w.getnframes() / 8000 - rec["recording_seconds"]) < 0.05
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert magnitude(audio, 700) > 1e6
    assert magnitude(audio, 1500) < 0.02 * magnitude(audio, 700), "the paused tone is in the recording"
    at = int(pause["at"] * 8000)
    assert rms_dbfs(audio[at - 1000:at]) < -50            # the caller was quiet when the agent paused
    assert rms_dbfs(audio[at + 4000:at + 8000]) > -20      # and spoke right after the resume

    off_rec = wait_record(stack, unrecorded, lambda r: r.get("ended_at"), "call 2 never ended")
    assert off_rec["recording_mode"] == "off" and off_rec["recording_path"] is None
    assert off_rec["recording_seconds"] is None
    assert not list((stack.data_dir / "recordings").rglob(f"{unrecorded}.wav"))


def test_dashboard_buttons_pause_and_resume_the_recording(stack, tmp_path):
    from tests.web_helpers import chromium_page, make_tone_wav

    emu = stack.emulator
    with chromium_page(make_tone_wav(tmp_path / "mic.wav", seconds=30)) as page:
        page.goto(stack.dashboard_url)
        page.wait_for_function(f"document.querySelector('#gateway-id').value === '{stack.gateway_id}'", timeout=5000)
        page.fill("#agent-id", "alice")
        page.fill("#password", stack.agents["alice"])
        page.click("#login")
        page.wait_for_function("window.__cg.state === 'Offline'", timeout=10000)
        page.click("#btn-available")
        page.wait_for_function("window.__cg.state === 'Available'", timeout=5000)
        emu.ring("+15551230103")
        assert emu.wait_for_state("active", 10), stack.log()[-3000:]
        time.sleep(0.5)
        emu.send_dtmf("1")
        page.wait_for_selector("#offer:not([hidden])", timeout=15000)
        page.click("#accept")
        page.wait_for_function("window.__cg.state === 'OnCall' && window.__cg.callId", timeout=5000)
        contact = page.evaluate("window.__cg.callId")
        assert page.inner_text("#rec-toggle") == "Pause recording" and page.inner_text("#rec-state") == ""

        page.click("#rec-toggle")
        page.wait_for_function("window.__cg.recording === 'paused'", timeout=5000)
        assert page.inner_text("#rec-state") == "Recording paused"
        assert page.inner_text("#rec-toggle") == "Resume recording"
        time.sleep(1.0)
        page.click("#rec-toggle")
        page.wait_for_function("window.__cg.recording === 'recording'", timeout=5000)
        assert page.inner_text("#rec-state") == "Recording" and page.inner_text("#rec-toggle") == "Pause recording"
        page.click("#hangup")
        page.wait_for_selector("#acw:not([hidden])", timeout=5000)
        assert page.cg_errors == []
    rec = wait_record(stack, contact, lambda r: r.get("ended_at") and r.get("recording_pauses"), "no pause recorded")
    [pause] = rec["recording_pauses"]
    assert 0.9 < pause["seconds"] < 2.0 and rec["recording_mode"] == "mono"
