"""SMS through the emulated modems (27.005): text and PDU mode both ways, GSM-7 and UCS-2 (Japanese),
multipart, storage commands, +CNMI routing, failures, and python-gsmmodem driving the emulator
unchanged as a third-party AT program."""

from __future__ import annotations

import threading
import time

import pytest

from gateway.modem import sms_pdu
from tests.test_hil_gsm_at import FINALS, make  # noqa: F401  (fixture)

JAPANESE = "こんにちは、世界。ゲートウェイのテストです。"


def ucs2(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def send_after_prompt(at, command: str, body: bytes) -> list[str]:
    at.ser.write(command.encode() + b"\r")
    deadline = time.monotonic() + 2
    while not at.raw.endswith(b"> ") and time.monotonic() < deadline:
        at._pump()
    assert at.raw.endswith(b"\r\n> "), bytes(at.raw[-20:])
    at._pending = ""                   # the prompt is not a line
    at.ser.write(body)
    return at.expect(FINALS.match)


def test_text_mode_send_escape_cancel_and_failure(make):
    emu = make("simcom_sim800")
    at = make.link(emu)
    at.command("ATE0;+CMEE=1")
    assert at.command("AT+CMGF=1;+CSCS=\"GSM\"") == ["OK"]
    assert at.command("AT+CSCA?") == ['+CSCA: "+15550000000",145', "OK"]
    assert send_after_prompt(at, 'AT+CMGS="+15559990000"', b"hello from the gateway\x1a") == ["+CMGS: 1", "OK"]
    assert send_after_prompt(at, 'AT+CMGS="+15559990000"', b"never mind\x1b") == ["OK"]
    emu.fail_next_sms(350)
    assert send_after_prompt(at, 'AT+CMGS="+15559990000"', b"rejected\x1a") == ["+CMS ERROR: 350"]  # T11 l
    sent = emu.sent_sms()
    assert [(m["number"], m["text"], m["encoding"], m["mode"]) for m in sent] == [
        ("+15559990000", "hello from the gateway", "gsm7", "text")]
    decoded = sms_pdu.decode_submit(sent[0]["pdu"])
    assert (decoded.number, decoded.text) == ("+15559990000", "hello from the gateway")


def test_text_mode_ucs2_japanese_send(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    at.command("ATE0")
    assert at.command('AT+CMGF=1;+CSCS="UCS2";+CSMP=17,167,0,8') == ["OK"]
    body = ucs2(JAPANESE[:20]).encode() + b"\x1a"
    assert send_after_prompt(at, f'AT+CMGS="{ucs2("+819012345678")}"', body) == ["+CMGS: 1", "OK"]
    [message] = emu.sent_sms()
    assert (message["number"], message["text"], message["encoding"]) == ("+819012345678", JAPANESE[:20], "ucs2")


def test_pdu_mode_multipart_send_and_bad_length(make):
    emu = make("simcom_sim7600")
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT+CMGF=0") == ["OK"]
    text = "Your appointment is confirmed. " * 8
    parts = sms_pdu.encode_submit("+447700900123", text, reference=42)
    assert len(parts) == 2
    for i, part in enumerate(parts, 1):
        assert send_after_prompt(at, f"AT+CMGS={part.tpdu_length}", part.hex.encode() + b"\x1a") == [
            f"+CMGS: {i}", "OK"]
    [whole] = emu.sent_sms(joined=True)
    assert (whole["number"], whole["text"], whole["complete"], whole["concat"][:2]) == (
        "+447700900123", text, True, (42, 2))
    assert send_after_prompt(at, f"AT+CMGS={parts[0].tpdu_length + 3}", parts[0].hex.encode() + b"\x1a") == [
        "+CMS ERROR: 304"]
    assert send_after_prompt(at, "AT+CMGS=20", b"ZZZZ\x1a") == ["+CMS ERROR: 304"]


def test_receive_text_mode_cmti_read_list_delete(make):
    emu = make("simcom_sim7600")
    at = make.link(emu)
    at.command("ATE0")
    assert at.command('AT+CMGF=1;+CSCS="IRA";+CNMI=2,1,0,0,0') == ["OK"]
    [index] = emu.receive_sms("+15551112222", "Meet at 10?")
    assert at.until("+CMTI") == [f'+CMTI: "SM",{index}']
    lines = at.command(f"AT+CMGR={index}")
    assert lines[0].startswith('+CMGR: "REC UNREAD","+15551112222","","') and lines[1:] == ["Meet at 10?", "OK"]
    assert at.command(f"AT+CMGR={index}")[0].startswith('+CMGR: "REC READ"')
    assert at.command(f"AT+CSDH=1;+CMGR={index}")[0].endswith(',145,4,0,0,"+15550000000",145,11')
    assert at.command('AT+CMGL="REC UNREAD"') == ["OK"]
    listed = at.command('AT+CMGL="ALL"')
    assert listed[0].startswith(f'+CMGL: {index},"REC READ","+15551112222"') and listed[1] == "Meet at 10?"
    assert at.command("AT+CPMS?") == ['+CPMS: "SM",1,50,"SM",1,50,"SM",1,50', "OK"]
    assert at.command(f"AT+CMGD={index}") == ["OK"]
    assert at.command(f"AT+CMGR={index}") == ["+CMS ERROR: 321"]


def test_receive_pdu_mode_japanese_multipart(make):
    emu = make("huawei_e1752", chatter_interval=60)
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT+CMGF=0;+CNMI=2,1,0,2,0") == ["OK"]
    long_text = JAPANESE * 7
    indexes = emu.receive_sms("+819012345678", long_text, reference=9)
    assert len(indexes) == 3
    assert at.expect(lambda line: line == f'+CMTI: "SM",{indexes[-1]}') == [f'+CMTI: "SM",{i}' for i in indexes]
    lines = at.command("AT+CMGL=4")
    assert lines[-1] == "OK" and len(lines) == 7
    parts = []
    for header, pdu in zip(lines[0:-1:2], lines[1:-1:2]):
        length = int(header.rsplit(",", 1)[1])
        assert length == len(pdu) // 2 - 1 - int(pdu[:2], 16)
        parts.append(sms_pdu.decode_deliver(pdu))
    assert {p.sender for p in parts} == {"+819012345678"} and {p.encoding for p in parts} == {"ucs2"}
    assert "".join(p.text for p in sorted(parts, key=lambda p: p.concat.seq)) == long_text
    assert parts[0].smsc == "+15550000000"
    assert at.command("AT+CMGD=1,4") == ["OK"]
    assert at.command("AT+CMGL=4") == ["OK"]


def test_receive_ucs2_in_text_mode_and_direct_cmt(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    at.command("ATE0")
    assert at.command('AT+CMGF=1;+CSCS="UCS2"') == ["OK"]
    [index] = emu.receive_sms("+819012345678", JAPANESE)
    at.until("+CMTI")
    lines = at.command(f"AT+CMGR={index}")
    assert lines[0].startswith(f'+CMGR: "REC UNREAD","{ucs2("+819012345678")}",,"')
    assert bytes.fromhex(lines[1]).decode("utf-16-be") == JAPANESE
    assert at.command('AT+CSCS="GSM";+CNMI=2,2,0,0,0') == ["OK"]
    assert emu.receive_sms("+15551112222", "direct @ once") == []             # routed, not stored
    head, text = at.until("+CMT")[-1], at.expect(lambda line: True)[0]
    assert head.startswith('+CMT: "+15551112222",,"')
    assert text.encode("latin-1") == bytes(sms_pdu.gsm7_septets("direct @ once"))   # GSM alphabet bytes
    assert at.command("AT+CMGF=0") == ["OK"]
    emu.receive_sms("+15551112222", "pdu direct")
    head, pdu = at.until("+CMT")[-1], at.expect(lambda line: True)[0]
    assert head == f"+CMT: ,{len(pdu) // 2 - 1 - int(pdu[:2], 16)}"
    assert sms_pdu.decode_deliver(pdu).text == "pdu direct"


def test_indications_wait_while_cnmi_mode_is_zero(make):
    emu = make("simcom_sim800")
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT+CNMI=0,1,0,0,0") == ["OK"]
    [index] = emu.receive_sms("+15551112222", "buffered")
    assert at.quiet_for(0.2) == []
    assert at.command("AT+CNMI=2,1,0,0,0") == ["OK"]
    assert at.until("+CMTI") == [f'+CMTI: "SM",{index}']


@pytest.mark.parametrize("family", ["simcom_sim800", "huawei_e1752"])
def test_python_gsmmodem_drives_the_emulator_unchanged(make, family):
    from gsmmodem.modem import GsmModem

    emu = make(family, chatter_interval=0.2) if family.startswith("huawei") else make(family)
    received = []
    got = threading.Event()

    def on_sms(sms):
        received.append((sms.number, sms.text))
        got.set()

    modem = GsmModem(emu.at_port, 115200, smsReceivedCallbackFunc=on_sms)
    modem.connect()
    try:
        assert (modem.manufacturer, modem.model) == (emu.MANUFACTURER, emu.model)
        assert modem.imei == emu.imei and modem.networkName == "HIL Network" and modem.signalStrength == 21
        modem.sendSms("+15559990000", "hello from python-gsmmodem")
        assert [(m["number"], m["text"]) for m in emu.sent_sms()] == [("+15559990000", "hello from python-gsmmodem")]
        emu.receive_sms("+15551112222", "inbound 日本")
        assert got.wait(3), "python-gsmmodem never saw the SMS"
        assert received == [("+15551112222", "inbound 日本")]
        deadline = time.monotonic() + 3
        while emu.stored_sms() and time.monotonic() < deadline:     # it deletes what it has read
            time.sleep(0.02)
        assert emu.stored_sms() == []
    finally:
        modem.close()
