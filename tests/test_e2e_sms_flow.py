"""A received SMS runs the line's sms_flow: the flow's prompts become one reply SMS, a menu reads the
message's first character, and the path and reply go into the contact record."""

from __future__ import annotations

import json
import time

from hil.sim7600 import Sim7600Emulator
from tests.stack import DEMO_FLOW, free_port, start_daemon, stop_daemon, wait_ready, write_config

SMS_FLOW = {
    "Version": "2019-10-30", "StartAction": "menu",
    "Actions": [
        {"Identifier": "menu", "Type": "GetParticipantInput",
         "Parameters": {"Text": "Thanks for your message, $.CustomerEndpoint.Address ($.Channel).",
                        "InputTimeLimitSeconds": "5"},
         "Transitions": {"NextAction": "other", "Conditions": [
             {"NextAction": "hours", "Condition": {"Operator": "Equals", "Operands": ["1"]}}],
             "Errors": [{"NextAction": "other", "ErrorType": "InputTimeLimitExceeded"},
                        {"NextAction": "other", "ErrorType": "NoMatchingCondition"}]}},
        {"Identifier": "hours", "Type": "MessageParticipant",
         "Parameters": {"Text": "We are open 9 to 5, Monday to Friday."}, "Transitions": {"NextAction": "bye"}},
        {"Identifier": "other", "Type": "MessageParticipant",
         "Parameters": {"Text": "Reply 1 for our opening hours."}, "Transitions": {"NextAction": "bye"}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
    ],
}


def test_sms_flow_replies_and_records_the_path(tmp_path):
    (tmp_path / "sms.json").write_text(json.dumps(SMS_FLOW))
    emu = Sim7600Emulator()
    emu.start()
    data_dir = tmp_path / "data"
    config = tmp_path / "callgate.toml"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=data_dir, broker=None, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": emu.at_port,
                         "audio_port": emu.audio_port, "flow": str(DEMO_FLOW), "number": "+15550000000",
                         "sms_flow": str(tmp_path / "sms.json")}])
    proc = start_daemon(config, data_dir, tmp_path / "daemon.log")
    try:
        wait_ready(data_dir, proc, tmp_path / "daemon.log")
        time.sleep(1.0)                     # the line finishes its init
        emu.receive_sms("+15551230005", "1 please")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not emu.sent_sms():
            time.sleep(0.2)
        sent = emu.sent_sms(joined=True)
        assert sent and sent[0]["number"] == "+15551230005", (tmp_path / "daemon.log").read_text()[-3000:]
        assert sent[0]["text"] == ("Thanks for your message, +15551230005 (SMS).\n"
                                   "We are open 9 to 5, Monday to Friday.")
        emu.receive_sms("+15551230006", "what time?")
        while time.monotonic() < deadline + 20 and len(emu.sent_sms()) < 2:
            time.sleep(0.2)
        assert emu.sent_sms(joined=True)[-1]["text"].endswith("Reply 1 for our opening hours.")
    finally:
        stop_daemon(proc)
        emu.stop()
    import sqlite3
    rows = sqlite3.connect(data_dir / "contacts.db").execute(
        "SELECT caller, flow_path, attributes FROM contacts WHERE caller = '+15551230005'").fetchall()
    assert len(rows) == 1
    path = [step["id"] for step in json.loads(rows[0][1])]
    attributes = json.loads(rows[0][2])
    assert path == ["menu", "hours", "bye"]
    assert attributes["sms_text"] == "1 please" and attributes["flow_outcome"] == "disconnected"
    assert attributes["reply"].startswith("Thanks") and attributes["reply_references"]
