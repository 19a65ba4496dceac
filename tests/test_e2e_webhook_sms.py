"""End to end through the real daemon on an emulated SIM7600: a call's flow asks a local webhook who the
caller is, greets them by the name it returns, and sends them an SMS from the same line."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gateway.media.tones import rms_dbfs
from hil.sim7600 import Sim7600Emulator
from tests.stack import free_port, start_daemon, stop_daemon, wait_ready, write_config

CALLER = "+15551230042"
GREETING = "Hello Ada, thanks for calling."
FLOW = {
    "Version": "2019-10-30", "StartAction": "lookup",
    "Actions": [
        {"Identifier": "lookup", "Type": "InvokeLambdaFunction",
         "Parameters": {"LambdaFunctionARN": "arn:aws:lambda:eu-central-1:123456789012:function:crm",
                        "InvocationTimeLimitSeconds": "3",
                        "LambdaInvocationAttributes": {"number": "$.CustomerEndpoint.Address"}},
         "Transitions": {"NextAction": "hello", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "hello", "Type": "MessageParticipant",
         "Parameters": {"Text": "Hello $.External.name, thanks for calling."}, "Transitions": {"NextAction": "sms"}},
        {"Identifier": "sms", "Type": "Callgate.SendSms",
         "Parameters": {"Text": "Hi $.External.name, your $.External.plan plan renews soon."},
         "Transitions": {"NextAction": "keep", "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "keep", "Type": "UpdateContactAttributes",
         "Parameters": {"Attributes": {"customer": "$.External.name"}}, "Transitions": {"NextAction": "bye"}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
    ],
}


class _Crm(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        _Crm.seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        body = json.dumps({"name": "Ada", "plan": "family"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_flow_greets_by_the_webhooks_name_and_sends_an_sms(tmp_path):
    crm = ThreadingHTTPServer(("127.0.0.1", 0), _Crm)
    threading.Thread(target=crm.serve_forever, daemon=True).start()
    emu = Sim7600Emulator(ring_interval=2.0)
    emu.start()
    (tmp_path / "flow.json").write_text(json.dumps(FLOW))
    data_dir, config, log = tmp_path / "data", tmp_path / "callgate.toml", tmp_path / "daemon.log"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=data_dir, broker=None, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": emu.at_port,
                         "audio_port": emu.audio_port, "flow": str(tmp_path / "flow.json"), "number": "+15550000000"}],
                 extra=f'\n[webhooks]\ncrm = "http://127.0.0.1:{crm.server_address[1]}/contact"\n')
    proc = start_daemon(config, data_dir, log)
    try:
        wait_ready(data_dir, proc, log)
        time.sleep(1.0)                                    # the line finishes its init
        emu.clear_capture()
        emu.ring(CALLER)
        assert emu.wait_for_state("active", 10), log.read_text()[-3000:]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not emu.sent_sms():
            time.sleep(0.1)
        sent = emu.sent_sms(joined=True)
        assert emu.wait_for_state("idle", 15), log.read_text()[-3000:]
        heard = emu.capture()
    finally:
        stop_daemon(proc)
        emu.stop()
        crm.shutdown()
        crm.server_close()

    assert [(m["number"], m["text"]) for m in sent] == [(CALLER, "Hi Ada, your family plan renews soon.")]
    [event] = _Crm.seen
    assert event["Details"]["Parameters"] == {"number": CALLER}
    data = event["Details"]["ContactData"]
    assert data["CustomerEndpoint"]["Address"] == CALLER and data["SystemEndpoint"]["Address"] == "+15550000000"
    assert data["Channel"] == "VOICE" and data["ContactId"]
    # the greeting was rendered with the name (the prompt cache keeps it under its text) and played
    key = hashlib.sha256(json.dumps(["en-us", 160, GREETING]).encode()).hexdigest()
    assert (data_dir / "prompts" / f"{key}.wav").is_file()
    assert heard.size > 8000 and rms_dbfs(heard) > -40
    with sqlite3.connect(data_dir / "contacts.db") as db:
        path, attributes = db.execute("SELECT flow_path, attributes FROM contacts WHERE caller = ?",
                                      (CALLER,)).fetchone()
    assert [(s["id"], s["branch"]) for s in json.loads(path)] == [
        ("lookup", "next"), ("hello", "next"), ("sms", "next"), ("keep", "next"), ("bye", "disconnected")]
    assert json.loads(attributes) == {"customer": "Ada"}
