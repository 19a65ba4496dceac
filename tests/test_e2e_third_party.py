"""Transfer to a phone number through the real daemon with two emulated SIM7600s: a call on line 1 runs a
flow whose TransferParticipantToThirdParty dials out on line 2. The second modem sees the ATD and
answers, gets the DTMF digits (with the comma's pause), each side hears the other's tone, and when it
hangs up the flow resumes with its goodbye; a busy number takes CallFailed; a caller who hangs up during
the conversation takes the third party down with them. Contact records and the stereo recording are
checked, and the audio latency through the bridge is measured."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import wave

import numpy as np
import paho.mqtt.client as paho
import pytest

from gateway.media.tones import dominant_frequency, rms_dbfs
from hil.sim7600 import Sim7600Emulator
from tests.stack import free_port, start_daemon, stop_daemon, wait_ready, write_config

DESK = "+15557654321"
CALLER_TONE, DESK_TONE = 700.0, 1300.0
FLOW = {
    "Version": "2019-10-30",
    "StartAction": "set-desk",
    "Actions": [
        {"Identifier": "set-desk", "Type": "UpdateContactAttributes",
         "Parameters": {"Attributes": {"desk": DESK}, "TargetContact": "Current"},
         "Transitions": {"NextAction": "hello", "Errors": []}},
        {"Identifier": "hello", "Type": "MessageParticipant", "Parameters": {"Text": "Connecting."},
         "Transitions": {"NextAction": "xfer"}},
        {"Identifier": "xfer", "Type": "TransferParticipantToThirdParty",
         "Parameters": {"ThirdPartyPhoneNumber": "$.Attributes.desk", "ThirdPartyConnectionTimeLimitSeconds": "20",
                        "ContinueFlowExecution": "True", "ThirdPartyDTMFDigits": "12,#"},
         "Transitions": {"NextAction": "goodbye", "Errors": [
             {"ErrorType": "CallFailed", "NextAction": "failed"},
             {"ErrorType": "ConnectionTimeLimitExceeded", "NextAction": "failed"},
             {"ErrorType": "NoMatchingError", "NextAction": "failed"}]}},
        {"Identifier": "goodbye", "Type": "MessageParticipant", "Parameters": {"Text": "Goodbye."},
         "Transitions": {"NextAction": "bye"}},
        {"Identifier": "failed", "Type": "MessageParticipant", "Parameters": {"Text": "Sorry, the line is busy."},
         "Transitions": {"NextAction": "bye"}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
    ],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("third-party")
    caller_modem = Sim7600Emulator(ring_interval=2.0)
    desk_modem = Sim7600Emulator(ring_interval=2.0, imei="867584030000002")
    caller_modem.start()
    desk_modem.start()
    flow = tmp / "flow.json"
    flow.write_text(json.dumps(FLOW))
    data_dir, config, log = tmp / "data", tmp / "callgate.toml", tmp / "daemon.log"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=data_dir, broker=None, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": caller_modem.at_port,
                         "audio_port": caller_modem.audio_port, "flow": str(flow), "number": "+15550000001"},
                        {"id": "gsm2", "profile": "simcom_sim7600", "at_port": desk_modem.at_port,
                         "audio_port": desk_modem.audio_port, "flow": str(flow), "number": "+15550000002"}])
    proc = start_daemon(config, data_dir, log)
    state = {"caller": caller_modem, "desk": desk_modem, "data_dir": data_dir, "log": log}
    try:
        _wait_lines_idle(wait_ready(data_dir, proc, log))
        yield state
    finally:
        stop_daemon(proc)
        caller_modem.stop()
        desk_modem.stop()


def _log(stack) -> str:
    return stack["log"].read_text(errors="replace")[-4000:]


def _wait_lines_idle(daemon: dict, timeout: float = 20.0) -> None:
    """Both lines are up (line 2 must be idle to dial out), as the daemon publishes them."""
    idle: set[str] = set()
    done = threading.Event()

    def on_message(client, userdata, msg):
        state = json.loads(msg.payload)
        if state.get("state") == "idle":
            idle.add(state.get("line"))
        if {"gsm1", "gsm2"} <= idle:
            done.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.on_message = on_message
    client.connect(daemon["mqtt_host"], daemon["mqtt_port"], keepalive=30)
    client.subscribe(f"callgate/{daemon['gateway_id']}/line/+", 1)
    client.loop_start()
    try:
        assert done.wait(timeout), f"lines not idle: {sorted(idle)}"
    finally:
        client.loop_stop()
        client.disconnect()


def _records(stack) -> list[dict]:
    db = stack["data_dir"] / "contacts.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM contacts")]
    for row in rows:
        for key in ("attributes", "flow_path", "media"):
            row[key] = json.loads(row[key]) if row[key] else None
    return rows


def _finished(stack, caller: str, timeout: float = 15.0) -> tuple[dict, dict | None]:
    """The caller's record once it has ended, and its transfer leg's record (None if no call was placed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _records(stack)
        inbound = next((r for r in rows if r["caller"] == caller and r["initiation_method"] == "INBOUND"), None)
        if inbound is not None and inbound["ended_at"] is not None:
            leg = next((r for r in rows if r["initiation_method"] == "TRANSFER" and
                        (r["attributes"] or {}).get("transferred_from") == inbound["contact_id"]), None)
            if leg is not None and leg["ended_at"] is not None:
                return inbound, leg
        time.sleep(0.1)
    raise AssertionError(f"no finished records for {caller}:\n{_log(stack)}")


def _wait(predicate, timeout: float, what: str, stack) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}:\n{_log(stack)}")


def _hears(modem, freq: float, since: int) -> bool:
    """The last 40 ms the modem received (after sample `since`) are a loud tone at `freq`."""
    heard = modem.capture()[since:]
    tail = heard[-320:]
    return tail.size == 320 and rms_dbfs(tail) > -30 and abs(dominant_frequency(tail) - freq) < 40


def _tone_seconds(samples: np.ndarray, freq: float) -> float:
    """How long `samples` hold a loud tone at `freq`, counted in 50 ms blocks."""
    blocks = samples[: samples.size - samples.size % 400].reshape(-1, 400)
    return sum(rms_dbfs(b) > -30 and abs(dominant_frequency(b) - freq) < 40 for b in blocks) * 0.05


def test_answered_transfer_sends_dtmf_bridges_both_ways_and_resumes_the_flow(stack):
    caller, desk = stack["caller"], stack["desk"]
    desk.set_outbound_outcome("answer", alert_after=0.2, after=1.0)
    caller.clear_capture()
    desk.clear_capture()
    desk.dtmf_sent.clear()
    caller.ring("+15551230001")
    assert caller.wait_for_state("active", 10), _log(stack)
    assert desk.wait_for_state("active", 20), _log(stack)
    assert desk.call_info()["number"] == DESK and desk.call_info()["direction"] == "out"

    second = _wait(lambda: len(desk.dtmf_sent) >= 2, 5, "the first DTMF digits", stack)
    third = _wait(lambda: len(desk.dtmf_sent) >= 3, 5, "the digit after the comma", stack)
    assert desk.dtmf_sent == ["1", "2", "#"]
    assert third - second >= 0.7, f"the comma paused only {third - second:.3f} s"
    time.sleep(0.5)                                  # the bridge is up once the digits are sent

    mark = desk.capture().size
    started = time.monotonic()
    caller.play_tone(CALLER_TONE, 1.5)
    to_desk = _wait(lambda: _hears(desk, CALLER_TONE, mark), 5, "the caller's tone at the third party", stack)
    mark = caller.capture().size
    started_back = time.monotonic()
    desk.play_tone(DESK_TONE, 1.5)
    to_caller = _wait(lambda: _hears(caller, DESK_TONE, mark), 5, "the third party's tone at the caller", stack)
    latency = (to_desk - started, to_caller - started_back)
    print(f"\nbridge latency, tone start to heard (incl. both emulators' 20 ms clocks): caller->third party "
          f"{latency[0] * 1000:.0f} ms, third party->caller {latency[1] * 1000:.0f} ms")
    assert max(latency) < 0.5, latency
    time.sleep(1.6)
    assert _tone_seconds(desk.capture(), CALLER_TONE) >= 1.2
    assert _tone_seconds(caller.capture(), DESK_TONE) >= 1.2

    desk.hangup()                                    # the third party hangs up first: the flow goes on
    assert caller.wait_for_state("idle", 15), _log(stack)
    inbound, leg = _finished(stack, "+15551230001")
    steps = [(s["id"], s["branch"]) for s in inbound["flow_path"]]
    assert steps == [("set-desk", "next"), ("hello", "next"), ("xfer", "next"), ("goodbye", "next"),
                     ("bye", "disconnected")]
    assert inbound["disconnect_reason"] == "flow_disconnect"
    attrs = inbound["attributes"]
    assert attrs["transferred_to"] == DESK and attrs["transfer_outcome"] == "connected_then_far_end_hung_up"
    assert attrs["transfer_line"] == "gsm2" and attrs["transfer_contact_id"] == leg["contact_id"]
    assert leg["line_id"] == "gsm2" and leg["caller"] == DESK and leg["disconnect_reason"] == "third_party_hung_up"
    assert leg["attributes"]["dtmf_sent"] == "12#"
    assert [s["stage"] for s in leg["flow_path"]][-2:] == ["answered", "ended"]
    media = leg["media"]
    print(f"bridge buffering: to caller {media['to_caller_buffered_ms']} ms, to third party "
          f"{media['to_far_end_buffered_ms']} ms (underruns {media['to_caller_underruns']}/"
          f"{media['to_far_end_underruns']})")
    assert media["to_caller_buffered_ms"] is not None and media["to_caller_buffered_ms"] < 120

    with wave.open(inbound["recording_path"]) as w:            # caller left, third party right
        assert w.getnchannels() == 2
        stereo = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert _tone_seconds(stereo[:, 0].copy(), CALLER_TONE) >= 1.2
    assert _tone_seconds(stereo[:, 1].copy(), DESK_TONE) >= 1.2
    assert _tone_seconds(stereo[:, 0].copy(), DESK_TONE) < 0.2


def test_a_busy_number_takes_call_failed(stack):
    caller, desk = stack["caller"], stack["desk"]
    desk.set_outbound_outcome("busy", alert_after=0.2, after=0.5)
    caller.ring("+15551230002")
    assert caller.wait_for_state("active", 10), _log(stack)
    assert caller.wait_for_state("idle", 20), _log(stack)
    inbound, leg = _finished(stack, "+15551230002")
    steps = [(s["id"], s["branch"]) for s in inbound["flow_path"]]
    assert steps[2:] == [("xfer", "CallFailed"), ("failed", "next"), ("bye", "disconnected")]
    assert inbound["attributes"]["transfer_outcome"] == "busy"
    assert leg["disconnect_reason"] == "busy" and leg["attributes"]["dtmf_sent"] == ""
    assert desk.state == "idle"


def test_a_caller_hanging_up_during_the_conversation_hangs_up_the_third_party(stack):
    caller, desk = stack["caller"], stack["desk"]
    desk.set_outbound_outcome("answer", alert_after=0.2, after=0.5)
    desk.dtmf_sent.clear()
    caller.ring("+15551230003")
    assert desk.wait_for_state("active", 20), _log(stack)
    _wait(lambda: len(desk.dtmf_sent) >= 3, 5, "the DTMF digits", stack)
    caller.hangup()
    assert desk.wait_for_state("idle", 5), _log(stack)
    inbound, leg = _finished(stack, "+15551230003")
    assert [(s["id"], s["branch"]) for s in inbound["flow_path"]][-1] == ("xfer", "hung_up")
    assert inbound["attributes"]["transfer_outcome"] == "connected_then_caller_hung_up"
    assert leg["disconnect_reason"] == "caller_hung_up"
