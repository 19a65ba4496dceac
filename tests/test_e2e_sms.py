"""SMS through the running daemon on the emulated SIM7600: a received message (Japanese, so UCS-2)
becomes an MQTT event and a contact record; `callgate sms send` sends a long text in concatenated parts;
a network refusal comes back as a clear error."""

from __future__ import annotations

import json

from tests.stack import AgentClient

LONG = "Your technician visit is confirmed for Tuesday 10:00-12:00 at 5 Main St. Reply to this number if " \
       "the time does not suit; costs are €40 per hour [parts extra]. Thank you for choosing us!"


def _records(stack) -> list[dict]:
    out = stack.cli("contacts", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_received_sms_is_published_and_recorded(embedded_stack):
    stack, emu = embedded_stack, embedded_stack.emulator
    watcher = AgentClient(stack, "alice")
    try:
        emu.receive_sms("+819012345678", "こんにちは。明日の予約を確認します。")
        event = watcher.wait_for(lambda t, o: t.endswith("/line/gsm1/sms"), 15, "SMS event")
    finally:
        watcher.close()
    assert event["from"] == "+819012345678" and event["text"] == "こんにちは。明日の予約を確認します。"
    assert event["parts"] == 1 and event["missing"] == []
    rec = next(r for r in _records(stack) if r["contact_id"] == event["contact_id"])
    assert rec["initiation_method"] == "INBOUND" and rec["attributes"]["channel"] == "SMS"
    assert rec["attributes"]["text"] == event["text"]
    assert emu.stored_sms() == []            # taken in, then deleted from the SIM


def test_sms_send_splits_a_long_text_and_reports_a_refusal(embedded_stack):
    stack, emu = embedded_stack, embedded_stack.emulator
    out = stack.cli("sms", "send", "gsm1", "+15551230009", LONG, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)["result"]
    assert result["parts"] == 2 and result["encoding"] == "gsm7" and len(result["references"]) == 2
    sent = emu.sent_sms(joined=True)
    assert len(sent) == 1 and sent[0]["text"] == LONG and sent[0]["complete"] and sent[0]["number"] == "+15551230009"
    assert any(r["initiation_method"] == "OUTBOUND" and r["attributes"]["channel"] == "SMS"
               and r["caller"] == "+15551230009" for r in _records(stack))

    human = stack.cli("sms", "send", "gsm1", "+15551230009", "short one")
    assert human.returncode == 0 and "1 part(s), gsm7" in human.stdout

    emu.fail_next_sms(350)
    refused = stack.cli("sms", "send", "gsm1", "+15551230009", "will be refused")
    assert refused.returncode == 1
    assert "sms_failed" in refused.stderr and "350" in refused.stderr
