"""Call flows of each emulated family compared with shared/docs/modems.md transcripts (T1, T3, T4, T5,
T6, T7), outbound outcomes with each family's progress URCs, and DTMF both ways."""

from __future__ import annotations

import re
import time

import pytest

from tests.test_hil_gsm_at import FINALS, make  # noqa: F401  (make is a fixture)


def test_t1_sim7600_incoming_answered_audio_on_caller_hangs_up(make):
    emu = make("simcom_sim7600", incoming_index=4, end_order=("clcc", "voice_call_end"))
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT+CLCC=1") == ["OK"]
    assert at.command("AT+CPCMREG?") == ["+CPCMREG: 0", "OK"]
    emu.ring("08020866256", 128)
    assert at.until("RING") == ["RING"]
    assert at.expect(lambda line: True) == ['+CLCC: 4,1,4,0,0,"08020866256",128']
    assert at.until("RING") == ["RING"]                                        # rings again, CLCC once
    assert at.command("ATA") == ["VOICE CALL: BEGIN", "OK"]
    assert at.expect(lambda line: True) == ['+CLCC: 4,1,0,0,0,"08020866256",128']
    assert at.command("AT+CPCMREG=1") == ["OK"]
    emu.send_dtmf("1")
    assert at.expect(lambda line: True) == ["+RXDTMF: 1"]
    assert b"\r\r\n+RXDTMF: 1\r\r\n" in at.raw                                # doubled-CR framing (T7)
    emu.hangup()
    assert at.until("VOICE CALL") == ['+CLCC: 4,1,6,0,0,"08020866256",128', "VOICE CALL: END: 000000"]
    assert at.command("AT+CPCMREG=0") == ["OK"]
    assert at.quiet_for(0.4) == []                                             # no more RINGs


def test_t3_quectel_incoming_lte_clcc_answer_with_serial_pcm(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    at.command("ATE0;+CLIP=1;+QTONEDET=1")
    assert at.command('AT+QGPSCFG="outport","none"') == ["OK"]
    emu.ring("02154450290", 129)
    assert at.until("+CLIP") == ["RING", '+CLIP: "02154450290",129,"",0,"",0']
    assert at.command("AT+CLCC") == ['+CLCC: 1,0,0,1,0,"",128', '+CLCC: 2,1,4,0,0,"02154450290",129', "OK"]
    assert at.command("AT+QPCMV=0;+QPCMV=1,0;A") == ["OK"]
    assert emu.state == "active" and emu.pcm_enabled
    emu.send_dtmf("1#")
    assert at.until("+QTONEDET: 35") == ["+QTONEDET: 49", "+QTONEDET: 35"]    # ASCII codes
    emu.hangup()
    assert at.expect(FINALS.match) == ["NO CARRIER"]
    assert at.command("AT+QPCMV=0") == ["OK"]
    assert at.command("AT+CLCC") == ['+CLCC: 1,0,0,1,0,"",128', "OK"]       # the packet bearer stays


def test_quectel_ccinfo_and_dsci_transitions(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    at.command('ATE0;+QINDCFG="ccinfo",1,0;^DSCI=1;+QINDCFG="ring",0')
    emu.ring("02154450290", 129)
    assert at.until("^DSCI") == ['+QIND: "ccinfo",2,1,4,0,0,"02154450290",129', "^DSCI: 2,1,4,0,02154450290,129"]
    assert at.quiet_for(0.4) == []                                             # RING turned off
    assert at.command("ATA") == ["OK"]
    assert at.until("^DSCI") == ['+QIND: "ccinfo",2,1,0,0,0,"02154450290",129', "^DSCI: 2,1,3,0,02154450290,129"]
    emu.hangup()
    assert at.until("NO CARRIER") == ['+QIND: "ccinfo",2,1,-1,0,0,"02154450290",129',
                                      "^DSCI: 2,1,6,0,02154450290,129", "NO CARRIER"]
    emu.set_outbound_outcome(None, alert_after=0.05)
    assert at.command("ATD+4812345678;") == ["OK"]
    assert at.until("^DSCI: 2,0,7") == ['+QIND: "ccinfo",2,0,2,0,0,"+4812345678",145',
                                        "^DSCI: 2,0,2,0,+4812345678,145",
                                        '+QIND: "ccinfo",2,0,3,0,0,"+4812345678",145',
                                        "^DSCI: 2,0,7,0,+4812345678,145"]         # 7 = alerting on ^DSCI


def test_t4_quectel_boot_registration_outgoing_ended_by_far_end(make):
    from hil.gsm import create

    emu = create("quectel_ec25")
    at = make.link(emu)                         # the host has the tty open before the module boots
    emu.start()
    try:
        assert at.until("+QIND: PB DONE") == ["RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1",
                                              "+QIND: SMS DONE", "+QIND: PB DONE"]
        at.command("ATE0")
        assert at.command("AT+CREG?") == ["+CREG: 0,1", "OK"]
        assert at.command("AT+COPS?") == ['+COPS: 0,0,"HIL Network",7', "OK"]
        assert at.command("AT+QDAI?") == ["+QDAI: 1,1,0,1,0,0,1,1", "OK"]
        emu.set_outbound_outcome("no_carrier", after=0.1)
        assert at.command("ATD+1234567890;") == ["OK"]
        assert at.expect(FINALS.match) == ["NO CARRIER"]
        assert at.command("ATH") == ["OK"]
        assert emu.state == "idle"
    finally:
        emu.stop()


def _no_rssi(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("^RSSI")]


def test_t5_huawei_outgoing_with_voice_far_end_hangs_up(make):
    emu = make("huawei_e1752", chatter_interval=0.15)
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT^CVOICE=?") == ["^CVOICE:(0)", "OK"]
    assert at.command("AT^CVOICE?") == ["^CVOICE:0,8000,16,20", "OK"]
    assert at.command("AT^DDSETEX=2") == ["OK"]                                # before ATD: no effect
    assert at.command("ATD+380972763224;") == ["OK"]
    assert not emu.pcm_enabled
    assert _no_rssi(at.until("^CONF")) == ["^ORIG:1,0", "^CONF:1"]
    assert _no_rssi(at.command("AT^DDSETEX=2")) == ["OK"]
    emu.remote_answer()
    assert _no_rssi(at.until("^CONN")) == ["^CONN:1,0"]
    assert emu.pcm_enabled
    emu.hangup()
    lines = at.until("^CEND")
    assert re.fullmatch(r"\^CEND:1,0,104,16", lines[-1])
    assert [line for line in at.quiet_for(0.4) if line.startswith("^RSSI")]   # chatter goes on
    assert at.command("AT^CURC=0") == ["OK"]
    at.quiet_for(0.2)
    assert at.quiet_for(0.4) == []                                             # ^CURC=0 silences it


def test_t6_huawei_incoming_answered_caller_hangs_up(make):
    emu = make("huawei_e1752", chatter_interval=60)
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT+CLIP=1") == ["OK"]
    assert at.command("AT+CRC=1") == ["OK"]
    emu.ring("+27820000001")
    assert at.until("+CLIP") == ["+CRING: VOICE", '+CLIP: "+27820000001",145,,,,0']
    assert at.command("ATA") == ["OK"]
    assert at.command("AT^DDSETEX=2") == ["^CONN:1,0", "OK"]
    assert emu.pcm_enabled
    assert at.command("AT^DTMF=1,5") == ["OK"]
    assert at.command("AT+CMEE=1;^DTMF=1,A") == ["+CME ERROR: 50"]               # Huawei sends no A-D
    assert emu.dtmf_sent == ["5"]
    at.command("AT^DDTMFCFG=0,1")
    emu.send_dtmf("8")
    assert at.until("^DDTMF") == ["^DDTMF: 8"]
    time.sleep(1.05)
    emu.hangup()
    assert at.until("^CEND") == ["^CEND:1,1,104,16"]
    assert not emu.pcm_enabled


def test_huawei_e3531_has_no_voice(make):
    emu = make("huawei_e3531")
    at = make.link(emu)
    at.command("ATE0;+CLIP=1")
    assert at.command("AT^CVOICE?") == ["^CVOICE: 0, 8000, 16, 20", "OK"]      # answers like voice firmware
    assert at.command("AT^DDSETEX=2") == ["OK"]
    assert at.command("ATDT01627067640;") == ["NO CARRIER"]                    # gammu#316
    assert emu.state == "idle"
    emu.ring("+27820000001")
    assert at.until("+CLIP") == ["RING", '+CLIP: "+27820000001",145,,,,0']
    assert at.command("ATA") == ["NO CARRIER"]
    assert at.until("^CEND")[-1].startswith("^CEND:1,0,104,")
    assert emu.state == "idle" and not emu.pcm_enabled


def test_sim800_incoming_and_outgoing_progress(make):
    emu = make("simcom_sim800")
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT+CLIP=1;+CLCC=1;+DDET=1;+MORING=1;+CDRIND=1") == ["OK"]
    emu.ring("+15551230001")
    assert at.until("+CLCC") == ["RING", '+CLIP: "+15551230001",145,"",0,"",0',
                                 '+CLCC: 1,1,4,0,0,"+15551230001",145']
    assert at.command("ATA") == ["OK"]
    assert at.until("+CLCC") == ['+CLCC: 1,1,0,0,0,"+15551230001",145']
    emu.send_dtmf("5")
    assert at.until("+DTMF") == ["+DTMF: 5"]                                   # T7 SIM800
    emu.hangup()
    assert at.until("+CDRIND") == ['+CLCC: 1,1,6,0,0,"+15551230001",145', "NO CARRIER", "+CDRIND: 0"]
    emu.set_outbound_outcome("answer", alert_after=0.05, after=0.1)
    assert at.command("ATD0612345678;") == ["OK"]
    assert at.until("+CLCC: 1,0,0") == ['+CLCC: 1,0,2,0,0,"0612345678",129', "MO RING",
                                        '+CLCC: 1,0,3,0,0,"0612345678",129', "MO CONNECTED",
                                        '+CLCC: 1,0,0,0,0,"0612345678",129']
    assert at.command("AT+VTS=7") == ["OK"]
    assert at.command("ATH") == ["OK"]
    assert at.until("+CDRIND") == ['+CLCC: 1,0,6,0,0,"0612345678",129', "+CDRIND: 0"]
    assert emu.dtmf_sent == ["7"]


def _setup(family: str) -> str:
    return {"simcom_sim7600": "ATE0;+CLCC=1", "quectel_ec25": 'ATE0;+QINDCFG="ccinfo",1',
            "huawei_e1752": "ATE0;^CURC=0", "simcom_sim800": "ATE0;+MORING=1"}[family]


OUTCOME_LINES = {
    "simcom_sim7600": {
        "answer": ['+CLCC: 1,0,2,0,0,"+15557654321",145', '+CLCC: 1,0,3,0,0,"+15557654321",145',
                   "VOICE CALL: BEGIN", '+CLCC: 1,0,0,0,0,"+15557654321",145'],
        "busy": ['+CLCC: 1,0,2,0,0,"+15557654321",145', '+CLCC: 1,0,6,0,0,"+15557654321",145',
                 "VOICE CALL: END", "BUSY"],
        "no_answer": ['+CLCC: 1,0,2,0,0,"+15557654321",145', '+CLCC: 1,0,3,0,0,"+15557654321",145',
                      '+CLCC: 1,0,6,0,0,"+15557654321",145', "VOICE CALL: END", "NO ANSWER"],
        "reject": ['+CLCC: 1,0,2,0,0,"+15557654321",145', '+CLCC: 1,0,3,0,0,"+15557654321",145',
                   '+CLCC: 1,0,6,0,0,"+15557654321",145', "VOICE CALL: END", "NO CARRIER"],
        "no_carrier": ['+CLCC: 1,0,2,0,0,"+15557654321",145', '+CLCC: 1,0,6,0,0,"+15557654321",145',
                       "VOICE CALL: END", "NO CARRIER"],
    },
    "quectel_ec25": {
        "answer": ['+QIND: "ccinfo",2,0,2,0,0,"+15557654321",145', '+QIND: "ccinfo",2,0,3,0,0,"+15557654321",145',
                   '+QIND: "ccinfo",2,0,0,0,0,"+15557654321",145'],
        "busy": ['+QIND: "ccinfo",2,0,2,0,0,"+15557654321",145', '+QIND: "ccinfo",2,0,-1,0,0,"+15557654321",145',
                 "BUSY"],
        "no_answer": ['+QIND: "ccinfo",2,0,2,0,0,"+15557654321",145',
                      '+QIND: "ccinfo",2,0,3,0,0,"+15557654321",145',
                      '+QIND: "ccinfo",2,0,-1,0,0,"+15557654321",145', "NO ANSWER"],
        "reject": ['+QIND: "ccinfo",2,0,2,0,0,"+15557654321",145', '+QIND: "ccinfo",2,0,3,0,0,"+15557654321",145',
                   '+QIND: "ccinfo",2,0,-1,0,0,"+15557654321",145', "NO CARRIER"],
        "no_carrier": ['+QIND: "ccinfo",2,0,2,0,0,"+15557654321",145',
                       '+QIND: "ccinfo",2,0,-1,0,0,"+15557654321",145', "NO CARRIER"],
    },
    "huawei_e1752": {
        "answer": ["^ORIG:1,0", "^CONF:1", "^CONN:1,0"],
        "busy": ["^ORIG:1,0", "^CEND:1,0,104,17"],
        "no_answer": ["^ORIG:1,0", "^CONF:1", "^CEND:1,0,104,19"],
        "reject": ["^ORIG:1,0", "^CONF:1", "^CEND:1,0,104,21"],
        "no_carrier": ["^ORIG:1,0", "^CEND:1,0,104,31"],
    },
    "simcom_sim800": {
        "answer": ["MO RING", "MO CONNECTED"],
        "busy": ["BUSY"],
        "no_answer": ["MO RING", "NO ANSWER"],
        "reject": ["MO RING", "NO CARRIER"],
        "no_carrier": ["NO CARRIER"],
    },
}


@pytest.mark.parametrize("outcome", ["answer", "busy", "no_answer", "reject", "no_carrier"])
@pytest.mark.parametrize("family", list(OUTCOME_LINES))
def test_outbound_outcomes(make, family, outcome):
    emu = make(family)
    at = make.link(emu)
    assert at.command(_setup(family))[-1] == "OK"
    emu.set_outbound_outcome(outcome, alert_after=0.05, after=0.1)
    assert at.command("ATD+15557654321;") == ["OK"]
    expected = OUTCOME_LINES[family][outcome]
    assert at.expect(lambda line: line == expected[-1]) == expected
    assert emu.state == ("active" if outcome == "answer" else "idle")
    info = emu.call_info()
    assert (info is not None) == (outcome == "answer")
    assert at.quiet_for(0.2) == []


def test_answered_call_ends_after_talk_seconds_and_cause_is_kept(make):
    emu = make("simcom_sim7600")
    at = make.link(emu)
    at.command("ATE0")
    emu.set_outbound_outcome("answer", alert_after=0.0, after=0.05, talk_seconds=0.2)
    assert at.command("ATD+15557654321;") == ["OK"]
    assert emu.wait_for_state("active", 1)
    assert at.until("NO CARRIER")[-2:] == ["VOICE CALL: END: 000000", "NO CARRIER"]
    assert at.command("AT+CEER") == ["+CEER: Normal call clearing", "OK"]
    with pytest.raises(ValueError, match="outcome"):
        emu.set_outbound_outcome("voicemail")


def test_host_dtmf_commands_per_family(make):
    for family, commands, digits in [("quectel_ec25", ['AT+QVTS="7"', 'AT+VTS="12"'], ["7", "1", "2"]),
                                     ("simcom_sim7600", ["AT+VTS=#", "AT+VTS=A"], ["#", "A"])]:
        emu = make(family)
        at = make.link(emu)
        at.command("ATE0;+CMEE=1")
        assert at.command(commands[0]) == ["+CME ERROR: 3"]                 # T11 g: no call
        emu.set_outbound_outcome("answer", alert_after=0, after=0.05)
        assert at.command("ATD123;") == ["OK"]
        assert emu.wait_for_state("active", 1)
        for command in commands:
            assert at.command(command)[-1] == "OK"
        assert emu.dtmf_sent == digits


def test_one_call_per_modem_and_remote_answer_rules(make):
    emu = make("huawei_e1752")
    at = make.link(emu)
    at.command("ATE0;+CMEE=1")
    assert at.command("ATA") == ["NO CARRIER"]
    with pytest.raises(RuntimeError, match="outgoing"):
        emu.remote_answer()
    assert at.command("ATD555;") == ["OK"]
    assert at.until("^ORIG") == ["^ORIG:1,0"]
    with pytest.raises(RuntimeError, match="already"):
        emu.ring()
    assert at.command("ATD556;") == ["+CME ERROR: 3"]
    assert at.command("ATD557") == ["+CME ERROR: 4"]                             # no ';': data call
    assert at.command("AT+CHUP") == ["OK"]
    assert at.until("^CEND") == ["^CEND:1,0,104,16"]
