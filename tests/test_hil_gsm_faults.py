"""Injected faults on the emulated modems: silence, garbage, slow replies, a URC inside a response,
unplug/replug under new names with by-id links following, reset by AT command, registration loss
during a call, a wedged Huawei; and the same faults through `python -m hil modem` and its control
port."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from hil import control
from tests.test_hil_gsm_at import AtLink, make  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]


def wait_for(predicate, timeout: float = 3.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_no_answer_then_recovers(make):
    emu = make("simcom_sim7600")
    at = make.link(emu)
    at.command("ATE0")
    emu.no_answer()
    at.ser.write(b"AT+CGMM\r")
    assert at.quiet_for(0.3) == []
    emu.ring()
    assert at.until("RING") == ["RING"]                 # URCs still come
    emu.hangup()
    emu.no_answer(False)
    assert [line for line in at.command("AT+CGMI") if line.startswith("SIMCOM") or line == "OK"] == [
        "SIMCOM INCORPORATED", "OK"]
    assert ("<", "AT+CGMM") not in [entry[1:] for entry in emu.transcript] and \
        (">", "AT+CGMM") in [entry[1:] for entry in emu.transcript]


def test_garbage_then_commands_still_work(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    at.command("ATE0")
    emu.garbage(b"\x00\xff\xfe~~\r\nNOISE\r\n")
    assert at.until("NOISE")[-1] == "NOISE"
    assert b"\x00\xff\xfe~~" in at.raw
    assert at.command("AT+CGMM") == ["EC25", "OK"]


def test_slow_replies_queue_commands_in_order(make):
    emu = make("simcom_sim800")
    at = make.link(emu)
    at.command("ATE0")
    emu.slow(0.3)
    started = time.monotonic()
    at.ser.write(b"AT+CGMI\rAT+CGMM\r")
    assert at.expect(lambda line: line == "OK", timeout=2) == ["SIMCOM_Ltd", "OK"]
    first = time.monotonic() - started
    assert at.expect(lambda line: line == "OK", timeout=2) == ["SIMCOM_SIM800L", "OK"]
    second = time.monotonic() - started
    assert 0.28 < first < 0.5 and 0.58 < second < 0.9
    emu.slow(0)
    started = time.monotonic()
    assert at.command("AT") == ["OK"] and time.monotonic() - started < 0.2


def test_urc_inside_response_like_the_e1550_trace(make):
    emu = make("huawei_e1752", chatter_interval=60)
    at = make.link(emu)
    at.command("ATE0")
    emu.urc_inside_response("^RSSI:15")
    assert at.command("AT+CGMI;+CGMM") == ["huawei", "^RSSI:15", "E1752", "OK"]
    assert b"\r\nhuawei\r\n\r\n^RSSI:15\r\nE1752\r\n\r\nOK\r\n" in at.raw
    emu.urc_inside_response("^RSSI:14")
    assert at.command("AT") == ["^RSSI:14", "OK"]
    assert at.command("AT") == ["OK"]


def test_unplug_and_replug_under_new_names_with_links_following(make, tmp_path):
    links = tmp_path / "by-id"
    emu = make("quectel_ec25", by_id_dir=str(links))
    at = make.link(emu)
    at.command("ATE0")
    before = {row["role"]: row for row in emu.port_inventory()}
    assert [(r["interface"], r["role"]) for r in emu.port_inventory()] == [(0, "diag"), (1, "nmea"), (2, "at"),
                                                                        (3, "modem")]
    at_link = before["at"]["by_id"]
    assert at_link == str(links / "usb-Quectel_EC25_8040000002-if02-port0")
    assert os.path.realpath(at_link) == emu.at_port == before["at"]["device"]
    assert before["at"]["location"] == "1-1.2:1.2" and (before["at"]["vid"], before["at"]["pid"]) == ("2c7c", "0125")
    emu.ring()
    at.until("RING")
    old_port = emu.at_port
    emu.unplug()
    assert emu.state == "gone" and emu.port_inventory() == []
    assert not os.path.exists(at_link) and not os.path.exists(old_port)
    with pytest.raises(serial.SerialException):
        for _ in range(10):
            at.ser.read(1)
    emu.replug()
    after = {row["role"]: row for row in emu.port_inventory()}
    assert emu.state == "idle"
    assert all(after[role]["device"] != before[role]["device"] for role in before)
    assert os.path.realpath(at_link) == emu.at_port != old_port
    assert {(r["serial_number"], r["by_id"]) for r in after.values()} == {(r["serial_number"], r["by_id"])
                                                                         for r in before.values()}
    fresh = make.link(emu, at_link)                       # opened through the by-id link
    assert fresh.until("+QIND: PB DONE")[0] == "RDY"       # boot URCs after the replug
    assert fresh.command("AT+CGSN") == ["AT+CGSN", emu.imei, "OK"]    # echo is on again: powered up
    inventory = tmp_path / "inventory.json"
    emu.write_inventory(str(inventory))
    assert json.loads(inventory.read_text()) == emu.port_inventory()


@pytest.mark.parametrize("family,command,boot", [
    ("quectel_ec25", "AT+CFUN=1,1", ["RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE",
                                     "+QIND: PB DONE"]),
    ("simcom_sim7600", "AT+CRESET", ["RDY", "+CPIN: READY", "SMS DONE", "PB DONE"]),
    ("simcom_sim800", "AT+CFUN=1,1", ["RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"]),
])
def test_reset_command_re_enumerates_and_boots(make, family, command, boot):
    emu = make(family, reset_seconds=0.2, boot_delay=0.2)
    at = make.link(emu)
    at.command("ATE0;+CLIP=1")
    old = emu.at_port
    assert at.command(command) == ["OK"]
    assert emu.wait_for_state("gone", 1)
    wait_for(lambda: emu.state == "idle", 2, "replug")
    assert emu.at_port != old
    fresh = make.link(emu)
    assert fresh.expect(lambda line: line == boot[-1]) == boot
    assert fresh.command("AT+CLIP?") == ["AT+CLIP?", "+CLIP: 0,1", "OK"]      # settings back to power-up


def test_quectel_ims_setting_takes_effect_after_reset(make):
    emu = make("quectel_ec25", reset_seconds=0.1, boot_delay=0.05)
    at = make.link(emu)
    at.command("ATE0")
    assert at.command('AT+QCFG="ims",2;+CFUN=1,1') == ["OK"]
    wait_for(lambda: emu.state == "gone", 1, "unplug")
    wait_for(lambda: emu.state == "idle", 2, "replug")
    fresh = make.link(emu)
    fresh.command("ATE0")
    assert fresh.command('AT+QCFG="ims"') == ['+QCFG: "ims",2,0', "OK"]


def test_registration_loss_drops_the_call(make):
    emu = make("simcom_sim7600")
    at = make.link(emu)
    at.command("ATE0;+CREG=1;+CLCC=1")
    emu.ring()
    at.until("RING")
    assert at.command("ATA")[-1] == "OK"
    emu.lose_registration()
    assert at.until("NO CARRIER") == ['+CLCC: 1,1,0,0,0,"+15551230001",145', "+CREG: 2",
                                      '+CLCC: 1,1,6,0,0,"+15551230001",145', "VOICE CALL: END: 000000",
                                      "NO CARRIER"]
    assert emu.state == "idle"
    emu.regain_registration(roaming=True)
    assert at.until("+CREG") == ["+CREG: 5"]


def test_wedged_huawei_keeps_chattering_until_replugged(make):
    emu = make("huawei_e1752", chatter_interval=0.1, boot_delay=0.05)
    at = make.link(emu)
    at.command("ATE0")
    emu.wedge()
    assert emu.wedged
    at.ser.write(b"AT\r")
    at.ser.write(b"AT+CFUN=1,1\r")
    lines = at.quiet_for(0.5)
    assert lines and set(lines) == {"^RSSI:21"}                          # no echo, no OK, chatter on
    assert emu.state == "idle"                                           # the reset was never taken
    emu.unplug()
    emu.replug()
    assert not emu.wedged
    fresh = make.link(emu)
    fresh.command("ATE0")
    assert [line for line in fresh.command("AT+CGMM") if not line.startswith("^RSSI")] == ["E1752", "OK"]


def _read_json_line(proc: subprocess.Popen, timeout: float) -> dict:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "emulator process printed nothing"
    return json.loads(proc.stdout.readline())


def test_modem_command_and_control_verbs(tmp_path):
    ports_file, inventory_file, links = tmp_path / "ports.json", tmp_path / "inv.json", tmp_path / "by-id"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "hil", "modem", "--family", "huawei_e1752",
                             "--json-ports", str(ports_file), "--inventory", str(inventory_file),
                             "--by-id-dir", str(links), "--ring-interval", "0.3"],
                            stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        info = _read_json_line(proc, 10)
        assert json.loads(ports_file.read_text()) == info
        assert info["family"] == "huawei_e1752" and info["by_id_dir"] == str(links)
        assert [row["role"] for row in info["ports"]] == ["modem", "audio", "at"]
        assert json.loads(inventory_file.read_text()) == info["ports"]
        addr = info["control"]
        at = AtLink(info["at_port"])
        at.command("ATE0;^CURC=0")
        assert control.send(addr, "outcome busy 0.1 0.05")["ok"]
        assert at.command("ATD+15550001;") == ["OK"]
        assert at.until("^CEND") == ["^ORIG:1,0", "^CEND:1,0,104,17"]
        reply = control.send(addr, "sms +15551112222 'hello there'")
        assert reply["ok"] and reply["indexes"] == [1]
        assert at.until("+CMTI") == ['+CMTI: "SM",1']
        assert control.send(addr, "urcinside ^RSSI:9")["ok"]
        assert at.command("AT+CGMM") == ["E1752", "^RSSI:9", "OK"]
        assert control.send(addr, "call") == {"ok": True, "state": "idle", "pcm": False, "call": None}
        assert control.send(addr, "ims on")["ok"] is False
        assert control.send(addr, "losereg 3")["ok"]
        assert control.send(addr, "regainreg")["ok"]
        old_at = info["at_port"]
        assert control.send(addr, "unplug")["state"] == "gone"
        at.ser.close()
        reply = control.send(addr, "replug")
        assert reply["state"] == "idle" and reply["ports"]["at_port"] != old_at
        wait_for(lambda: json.loads(ports_file.read_text())["at_port"] == reply["ports"]["at_port"], 2,
                 "the port file to follow the replug")
        new_inventory = json.loads(inventory_file.read_text())
        assert [row["device"] for row in new_inventory if row["role"] == "at"] == [reply["ports"]["at_port"]]
        assert os.path.realpath(new_inventory[2]["by_id"]) == reply["ports"]["at_port"]
        bad = control.send(addr, "outcome voicemail")
        assert bad["ok"] is False and "outcome" in bad["error"]
        assert control.send(addr, "quit") == {"ok": True, "quit": True}
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
