"""Modem info: the technician's queries against the SIM7600 emulator and scripted modems, and the parsers."""

from __future__ import annotations

import asyncio

from gateway.modem.detect import open_at_port
from gateway.modem.info import (best_registration, modem_info, parse_cesq, parse_cops, parse_cpin,
                                parse_csq, parse_registration, rssi_to_bars, rssi_to_dbm, sim_from_error)
from gateway.modem.profile import load_profile
from hil.sim7600 import Sim7600Emulator
from tests.test_modem_detect import ScriptedModem

SIM7600 = load_profile("simcom_sim7600")


def info_of(port: str, profile, timeout: float | None = None):
    async def go():
        at = await open_at_port(port, profile.urc_prefixes if profile else (), open_timeout=2.0)
        try:
            return await modem_info(at.session, profile, timeout=timeout)
        finally:
            await at.close()
    return asyncio.run(go())


def test_info_from_the_sim7600_emulator():
    with Sim7600Emulator(operator="HIL Telecom") as emu:
        info = info_of(emu.at_port, SIM7600)
        sent = [text for _, d, text in emu.transcript if d == ">"]
    assert (info.manufacturer, info.model, info.firmware) == ("SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H",
                                                              "LE20B04SIM7600G22")
    assert info.imei == "867584030000001" and info.imsi == "001010123456789"
    assert info.sim == "ready" and info.operator == "HIL Telecom"
    assert info.registration == "home" and info.registration_cs == "home" and info.registration_eps == "home"
    assert info.act == 7 and info.access_technology == "E-UTRAN (LTE)"
    assert (info.rssi, info.signal_dbm, info.signal_bars, info.ber) == (21, -71, 5, None)
    assert info.ims == "registered"                      # profile's ims_query AT+CNSMOD? -> +CNSMOD: 0,8
    assert "AT+CESQ" in info.errors                      # the emulator has no CESQ: recorded, not fatal
    assert info.profile_id == "simcom_sim7600"
    assert sent.index("AT+COPS=3,2") < sent.index("AT+COPS=3,0")


def test_sim_absent_roaming_numeric_operator_and_weak_signal():
    replies = {
        "AT+CGMI": ["Quectel", "OK"], "AT+CGMM": ["EC25", "OK"], "AT+CGMR": ["EC25EFAR06A03M4G", "OK"],
        "AT+CGSN": ["861234567890123", "OK"], "AT+CIMI": ["+CME ERROR: 10"],
        "AT+CPIN?": ["+CME ERROR: SIM not inserted"],
        "AT+COPS=3,2": ["OK"], "AT+COPS=3,0": ["OK"],
        "AT+CREG?": ["+CREG: 2,5,\"1A2B\",\"01C3D4E\",2", "OK"], "AT+CGREG?": ["+CGREG: 0,3", "OK"],
        "AT+CEREG?": ["+CEREG: 0,2", "OK"], "AT+CSQ": ["+CSQ: 3,99", "OK"],
        "AT+CESQ": ["+CESQ: 99,99,255,255,20,40", "OK"],
    }
    with ScriptedModem(replies) as modem:
        info = info_of(modem.port, None, timeout=1.0)
    assert info.sim == "absent" and info.imsi is None and info.errors["AT+CIMI"] == "+CME ERROR: 10"
    assert info.errors["AT+CPIN?"] == "+CME ERROR: SIM not inserted"
    assert info.errors["AT+COPS?"] == "ERROR" and info.operator is None
    assert info.registration == "roaming"
    assert (info.registration_cs, info.registration_ps, info.registration_eps) == ("roaming", "denied", "searching")
    assert info.act == 2 and info.access_technology == "UTRAN (3G)"     # from +CREG's AcT when COPS said nothing
    assert (info.signal_dbm, info.signal_bars) == (-107, 1)
    assert (info.rsrq_db, info.rsrp_dbm) == (-10.0, -100.0)
    assert info.ims is None


def test_operator_numeric_and_alpha_and_a_silent_query():
    fmt = ["0"]

    def reply(cmd: str) -> list[str] | None:
        """AT+COPS? answers in the format last selected, like a real modem; AT+CSQ never answers."""
        if cmd.startswith("AT+COPS=3,"):
            fmt[0] = cmd[-1]
            return ["OK"]
        if cmd == "AT+COPS?":
            return [f'+COPS: 0,{fmt[0]},"{"26201" if fmt[0] == "2" else "Telekom.de"}",7', "OK"]
        if cmd == "AT+CSQ":
            return None
        raise KeyError(cmd)

    with ScriptedModem(reply) as modem:
        info = info_of(modem.port, None, timeout=0.5)
    assert (info.operator, info.operator_numeric, info.act) == ("Telekom.de", "26201", 7)
    assert info.errors["AT+CSQ"] == "no answer within 0.5 s" and info.signal_dbm is None
    assert info.errors["AT+CGMI"] == "ERROR" and info.manufacturer is None


def test_parsers():
    assert parse_cpin("+CPIN: READY") == "ready"
    assert parse_cpin("+CPIN: SIM PIN") == "pin_required"
    assert parse_cpin("+CPIN: SIM PUK") == "puk_required"
    assert parse_cpin("+CPIN: PH-SIM PIN") == "phone_locked"
    assert parse_cpin(None) is None
    assert sim_from_error(10) == "absent" and sim_from_error("SIM not inserted") == "absent"
    assert sim_from_error(11) == "pin_required" and sim_from_error(30) is None
    assert parse_cops('+COPS: 0,0,"SGP-M1",7') == (0, 0, "SGP-M1", 7)
    assert parse_cops("+COPS: 0") == (0, None, None, None)
    assert parse_cops('+COPS: 1,0,"A, B",2') == (1, 0, "A, B", 2)
    assert parse_registration("+CREG: 0,1") == (1, None)
    assert parse_registration('+CEREG: 2,5,"00C3","0A1B2C3",7') == (5, 7)
    assert parse_registration("+CREG: 1") is None
    assert best_registration(["denied", "home"]) == "home"
    assert best_registration(["searching", "not_registered"]) == "searching"
    assert best_registration([None]) is None
    assert parse_csq("+CSQ: 99,99") == (None, None) and parse_csq("+CSQ: 31,0") == (31, 0)
    assert [rssi_to_dbm(r) for r in (0, 1, 21, 31, None)] == [-113, -111, -71, -51, None]
    assert [rssi_to_bars(r) for r in (0, 1, 4, 5, 10, 15, 19, 20, 31, None)] == [0, 1, 1, 2, 3, 4, 4, 5, 5, None]
    assert parse_cesq("+CESQ: 99,99,255,255,255,255") == (None, None)
    assert parse_cesq("+CESQ: 99,99,255,255,34,97") == (-3.0, -43.0)
