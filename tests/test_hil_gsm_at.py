"""The multi-family modem emulator's AT side through real pseudo-terminals: identification per family,
V.250 line discipline (echo, ATV0, quiet, S3/S4/S5, A/, case), +CMEE, ';' lines, registration URCs
and network queries. The `make` fixture (and FINALS, AtLink from tests/pty_helpers.py through this
module) are reused by the other test_hil_gsm_* files."""

from __future__ import annotations

import time

import pytest

from hil.gsm import FAMILIES, FAMILY_IDS, create
from tests.pty_helpers import FINALS, AtLink


@pytest.fixture
def make():
    """make(family, **options) -> started emulator; make.link(emulator) -> AtLink on its AT tty."""
    started: list = []
    links: list[AtLink] = []

    def build(family: str, **options):
        options.setdefault("ring_interval", 0.3)
        emulator = create(family, **options)
        emulator.start()
        started.append(emulator)
        return emulator

    def link(emulator, port: str | None = None) -> AtLink:
        at = AtLink(port or emulator.at_port)
        links.append(at)
        return at

    build.link = link
    yield build
    for at in links:
        try:
            at.close()
        except Exception:
            pass
    for emulator in started:
        emulator.stop()


IDENTITY = {
    "simcom_sim7600": {
        "ATI": ["Manufacturer: SIMCOM INCORPORATED", "Model: SIMCOM_SIM7600G-H", "Revision: LE20B04SIM7600G22",
                "IMEI: 867584030000001", "+GCAP: +CGSM"],
        "AT+CGMI": ["SIMCOM INCORPORATED"], "AT+CGMM": ["SIMCOM_SIM7600G-H"],
        "AT+CGMR": ["+CGMR: LE20B04SIM7600G22"], "AT+CGSN": ["867584030000001"], "AT+GCAP": ["+GCAP: +CGSM"],
    },
    "quectel_ec25": {
        "ATI": ["Quectel", "EC25", "Revision: EC25EFAR06A03M4G"],
        "AT+CGMI": ["Quectel"], "AT+CGMM": ["EC25"], "AT+CGMR": ["EC25EFAR06A03M4G"],
        "AT+QGMR": ["EC25EFAR06A03M4G_01.001.01.001"], "AT+CGSN": ["866758040000002"],
        "AT+GCAP": ["+GCAP: +CGSM"],
    },
    "huawei_e1752": {
        "ATI": ["Manufacturer: huawei", "Model: E1752", "Revision: 11.126.13.00.00", "IMEI: 351234050000003",
                "+GCAP: +CGSM,+DS,+ES"],
        "AT+CGMI": ["huawei"], "AT+CGMM": ["E1752"], "AT+CGMR": ["11.126.13.00.00"],
        "AT+CGSN": ["351234050000003"], "AT+GCAP": ["+GCAP: +CGSM,+DS,+ES"],
    },
    "huawei_e3531": {
        "ATI": ["Manufacturer: huawei", "Model: E3531", "Revision: 21.318.01.00.00", "IMEI: 861234020000005",
                "+GCAP: +CGSM,+DS,+ES"],
        "AT+CGMI": ["huawei"], "AT+CGMM": ["E3531"], "AT+CGMR": ["21.318.01.00.00"],
    },
    "simcom_sim800": {
        "ATI": ["SIM800 R14.18"], "AT+CGMI": ["SIMCOM_Ltd"], "AT+CGMM": ["SIMCOM_SIM800L"],
        "AT+CGMR": ["Revision:1418B04SIM800L24"], "AT+CGSN": ["865067020000004"], "AT+GCAP": ["+GCAP: +CGSM"],
    },
}


def test_family_ids_match_the_classes():
    assert tuple(FAMILIES) == FAMILY_IDS
    with pytest.raises(ValueError, match="known: simcom_sim7600"):
        create("nokia_3310")


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_identification_transcript_with_power_up_echo(make, family):
    emu = make(family)
    at = make.link(emu)
    assert at.command("ATI") == ["ATI"] + IDENTITY[family]["ATI"] + ["OK"]    # echo is on at power-up
    assert at.command("ATE0") == ["ATE0", "OK"]                                # echoed one last time
    for command, lines in IDENTITY[family].items():
        assert at.command(command) == lines + ["OK"], command
    assert at.command("AT+CIMI") == ["001010123456789", "OK"]
    assert at.command("at+gmm") == [emu.model, "OK"]                          # case-insensitive
    assert at.command("AT+CGMM=?") == ["OK"]
    assert at.command("ATE1") == ["OK"]
    assert at.command("AT") == ["AT", "OK"]


@pytest.mark.parametrize("family", ["quectel_ec25", "simcom_sim800"])
def test_numeric_results_after_atv0(make, family):
    emu = make(family)
    at = make.link(emu)
    at.command("ATE0")
    at.ser.write(b"ATV0\r")
    time.sleep(0.1)
    at.ser.write(b"AT+CGMM\r")
    time.sleep(0.1)
    at.ser.write(b"AT+NOPE\r")
    time.sleep(0.1)
    at.quiet_for(0.05)
    assert at.raw.endswith(b"0\r" + f"{emu.model}\r\n0\r".encode() + b"4\r")
    emu.ring("+15551230001")
    at.quiet_for(0.1)
    assert at.raw.endswith(b"0\r4\r2\r")          # RING as its numeric code
    emu.hangup()
    at.quiet_for(0.1)
    assert at.raw.endswith(b"2\r3\r")              # NO CARRIER: the ringing caller gave up
    at.ser.write(b"ATV1\r")
    at.expect(lambda line: line == "OK")
    at.ser.write(b"ATQ1\r")
    assert at.quiet_for(0.2) == []                 # quiet: no result code at all
    at.ser.write(b"AT+CGMM\r")
    assert at.quiet_for(0.2) == [emu.model]
    assert at.command("ATQ0") == ["OK"]


def test_v250_repeat_backspace_and_s_registers(make):
    emu = make("simcom_sim7600")
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("at+cgmi") == ["SIMCOM INCORPORATED", "OK"]
    at.ser.write(b"A/")                            # repeats the last line, no CR needed
    assert at.expect(FINALS.match) == ["SIMCOM INCORPORATED", "OK"]
    assert at.command("AT+CGMX\x08M") == ["SIMCOM_SIM7600G-H", "OK"]          # S5 backspace
    assert at.command("ATS3?") == ["013", "OK"]
    assert at.command("noise before AT") == ["OK"]                             # text before AT ignored
    at.ser.write(b"ATS4=64\r")                     # S4: response formatting character
    at.quiet_for(0.1)
    assert at.raw.endswith(b"\r@OK\r@")
    at.ser.write(b"ATS4=10;S3=35\r")               # S3: '#' now ends command lines
    at.quiet_for(0.1)
    at.ser.write(b"AT+CGMM#")
    at.quiet_for(0.1)
    assert at.raw.endswith(b"#\nSIMCOM_SIM7600G-H#\n#\nOK#\n")
    at.ser.write(b"ATS3=13#")
    at.quiet_for(0.1)
    assert at.command("ATE0V1&C1&D2X4") == ["OK"]                              # basic commands back to back
    assert at.command("AT+CGMI;+NOPE;+CGMM") == ["SIMCOM INCORPORATED", "ERROR"]
    assert at.command("AT+CGMI; +CGMM ;+CSQ") == ["SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H", "+CSQ: 21,99", "OK"]


@pytest.mark.parametrize("family", ["simcom_sim7600", "quectel_ec25", "huawei_e1752", "simcom_sim800"])
def test_cmee_modes_with_the_sim_missing(make, family):
    emu = make(family)
    at = make.link(emu)
    at.command("ATE0")
    emu.sim_missing()
    if family == "simcom_sim800":
        assert at.until("+CPIN") == ["+CPIN: NOT INSERTED"]                   # SIM800 reports it
    assert at.command("AT+CPIN?") == ["ERROR"]
    assert at.command("AT+CMEE=1") == ["OK"]
    assert at.command("AT+CPIN?") == ["+CME ERROR: 10"]
    assert at.command("AT+CIMI") == ["+CME ERROR: 10"]
    assert at.command("AT+CMEE=2") == ["OK"]
    assert at.command("AT+CPIN?") == ["+CME ERROR: SIM not inserted"]            # T11 b
    assert at.command("AT+CMEE?") == ["+CMEE: 2", "OK"]
    assert at.command("AT+CMEE=7")[-1] == "+CME ERROR: Incorrect parameters"
    assert at.command("AT+COPS?") == ["+COPS: 0", "OK"]
    with pytest.raises(RuntimeError, match="not registered"):
        emu.ring()
    emu.sim_missing(False)
    assert at.until("+CPIN: READY")
    assert at.command("AT+CPIN?") == ["+CPIN: READY", "OK"]


def test_sim_pin_then_unlock(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    at.command("ATE0;+CMEE=1")
    emu.require_pin("1234")
    assert at.command("AT+CPIN?") == ["+CPIN: SIM PIN", "OK"]                    # T11 a
    assert at.command("AT+CIMI") == ["+CME ERROR: 11"]
    assert at.command('AT+CPIN="0000"') == ["+CME ERROR: 16"]
    assert at.command('AT+CPIN="1234"') == ["OK"]
    assert at.until("+CPIN: READY") == ["+CPIN: READY"]
    assert at.command("AT+CPIN?") == ["+CPIN: READY", "OK"]


def test_huawei_unsupported_text_clac_framing_and_phonebook_miss(make):
    emu = make("huawei_e1752")
    at = make.link(emu)
    at.command("ATE0;+CMEE=1")
    assert at.command("AT+WIND?") == ["COMMAND NOT SUPPORT"]                   # T11 d
    assert at.command("AT^CPBR=1,50") == ["+CME ERROR: 22"]                   # T11 e
    assert at.command("AT+CEREG?") == ["COMMAND NOT SUPPORT"]                  # 3G dongle: no LTE
    lines = at.command("AT+CLAC")
    assert "^DTMF" in lines and "^DDSETEX" in lines and "+CGMM" in lines
    assert b"\r\n^DTMF\r\r\n" in at.raw                                       # \r\r\n line ends


def test_quectel_rejects_huawei_voice_command(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT^DDSETEX=2") == ["ERROR"]                             # T11 j
    assert at.command("AT+CMEE=1;^CVOICE=?") == ["+CME ERROR: 100"]            # T11 i


@pytest.mark.parametrize("family,creg,cereg", [
    ("simcom_sim7600", '+CREG: 1,"2A2B","0C8D1F3",7', '+CEREG: 1,"00A1","0C8D1F3",7'),
    ("quectel_ec25", '+CREG: 1,"2A2B","0C8D1F3",7', '+CEREG: 1,"00A1","0C8D1F3",7'),
    ("huawei_e1752", '+CREG: 1,"2A2B","0C8D1F3"', None),
    ("simcom_sim800", '+CREG: 1,"2A2B","0C8D1F3"', None),
])
def test_registration_urcs_and_queries(make, family, creg, cereg):
    emu = make(family)
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT+CREG=2") == ["OK"]
    if cereg:
        assert at.command("AT+CEREG=2") == ["OK"]
    assert at.command("AT+CREG?") == ["+CREG: 2," + creg.split(": ")[1], "OK"]
    emu.lose_registration()
    lost = at.expect(lambda line: line.startswith("+CEREG" if cereg else "+CREG"))
    assert lost == (["+CREG: 2", "+CEREG: 2"] if cereg else ["+CREG: 2"])
    assert at.command("AT+COPS?") == ["+COPS: 0", "OK"]
    assert at.command("AT+CREG?") == ["+CREG: 2,2", "OK"]
    emu.regain_registration()
    back = at.expect(lambda line: line.startswith("+CEREG" if cereg else "+CREG"))
    assert back == ([creg, cereg] if cereg else [creg])
    act = {"simcom_sim800": "", "huawei_e1752": ",2"}.get(family, ",7")
    assert at.command("AT+COPS?") == [f'+COPS: 0,0,"HIL Network"{act}', "OK"]
    emu.set_signal(9)
    assert at.command("AT+CSQ") == ["+CSQ: 9,99", "OK"]


def test_simcom_cnsmod_and_cfun(make):
    emu = make("simcom_sim7600")
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT+CNSMOD?") == ["+CNSMOD: 0,8", "OK"]
    assert at.command("AT+CNSMOD=1;+CREG=1") == ["OK"]
    assert at.command("AT+CFUN=0") == ["OK"]                                  # state URCs follow the OK
    assert at.expect(lambda line: line.startswith("+CNSMOD")) == ["+CREG: 0", "+CNSMOD: 0"]
    assert at.command("AT+CFUN?;+CSQ") == ["+CFUN: 0", "+CSQ: 99,99", "OK"]
    assert at.command("ATD+15550001111;") == ["NO CARRIER"]                     # no network
    assert at.command("AT+CFUN=1") == ["OK"]
    assert at.expect(lambda line: line.startswith("+CNSMOD")) == ["+CREG: 1", "+CNSMOD: 8"]


def test_quectel_network_info_and_volte_state(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT+QNWINFO") == ['+QNWINFO: "FDD LTE","00101","LTE BAND 3",1650', "OK"]
    assert at.command('AT+QCFG="ims"') == ['+QCFG: "ims",1,1', "OK"]
    assert at.command('AT+QCFG="ims",2') == ["OK"]                             # persistent: next boot
    assert at.command('AT+QCFG="ims"') == ['+QCFG: "ims",2,1', "OK"]
    emu.set_ims(False)                                                        # the network drops IMS
    assert at.command('AT+QCFG="ims"') == ['+QCFG: "ims",2,0', "OK"]
    assert at.command("ATD+1234567890;") == ["OK"]                            # T4: OK, then NO CARRIER
    assert at.expect(FINALS.match) == ["NO CARRIER"]
    with pytest.raises(RuntimeError, match="IMS"):
        emu.ring()
    emu.lose_registration()
    assert at.command("AT+QNWINFO") == ["+QNWINFO: No Service", "OK"]


def test_secondary_at_tty_and_quectel_urc_port(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    modem_tty = next(row["device"] for row in emu.port_inventory() if row["role"] == "modem")
    second = make.link(emu, modem_tty)
    at.command("ATE0")
    assert second.command("AT+CGMM") == ["AT+CGMM", "EC25", "OK"]              # own echo setting
    assert at.command('AT+QURCCFG="urcport"') == ['+QURCCFG: "urcport","usbat"', "OK"]
    emu.ring()
    assert at.until("RING") == ["RING"] and second.quiet_for(0.1) == []
    emu.hangup()
    at.until("NO CARRIER")
    assert at.command('AT+QURCCFG="urcport","usbmodem"') == ["OK"]
    emu.ring()
    assert second.until("RING") == ["RING"] and at.quiet_for(0.1) == []
    assert second.command("ATA") == ["ATA", "OK"]
    assert emu.state == "active"
