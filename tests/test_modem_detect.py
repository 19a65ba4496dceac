"""Detection: port inventories, grouping by USB device, probing, identification, pairing, verdicts.

Runs against the SIM7600 emulator and small scripted modems on real pseudo-terminals.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import threading
import time
import tty

import pytest
import serial

from gateway.modem.detect import Identity, choose_profile, device_budget, parse_identity, scan
from gateway.modem.ports import InventoryError, PortInfo, by_id_links, find_port, list_ports, load_inventory
from gateway.modem.profile import load_profiles
from hil.sim7600 import Sim7600Emulator

PROFILES = load_profiles()
BY_ID_AT = "usb-SimTech__Incorporated_SimTech__Incorporated_HIL0001-if02-port0"
BY_ID_AUDIO = "usb-SimTech__Incorporated_SimTech__Incorporated_HIL0001-if04-port0"


class ScriptedModem:
    """A pty that answers each command line from a table (unknown commands get ERROR).

    replies: {command: lines}, lines sent framed as a modem would, None for silence; or a function
    of the upper-cased command returning the same (KeyError: the default reply).
    """

    def __init__(self, replies, *, default: list[str] | None = ("ERROR",),
                 chatter: list[str] | None = None) -> None:
        self.replies = replies if callable(replies) else {k.upper(): v for k, v in replies.items()}.__getitem__
        self.default = list(default) if default is not None else None
        self.chatter = chatter
        self.received: list[str] = []
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ScriptedModem":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)

    def _run(self) -> None:
        buf = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if self.chatter:
                os.write(self.master, "".join(f"{line}\r\n" for line in self.chatter).encode())
            if not ready:
                continue
            try:
                buf += os.read(self.master, 1024)
            except OSError:
                return
            while b"\r" in buf:
                raw, _, buf = buf.partition(b"\r")
                cmd = raw.decode(errors="replace").strip()
                if not cmd:
                    continue
                self.received.append(cmd)
                try:
                    lines = self.replies(cmd.upper())
                except KeyError:
                    lines = self.default
                if lines is not None:
                    os.write(self.master, "".join(f"\r\n{line}\r\n" for line in lines).encode())


def sim7600_inventory(emu: Sim7600Emulator) -> list[dict]:
    common = {"vid": "1e0e", "pid": "9001", "serial_number": "HIL0001", "manufacturer": "SimTech, Incorporated",
              "product": "SimTech, Incorporated"}
    return [dict(common, device=emu.at_port, by_id=f"/dev/serial/by-id/{BY_ID_AT}", interface=2,
                 location="9-1.3:1.2", role="at"),
            dict(common, device=emu.audio_port, by_id=f"/dev/serial/by-id/{BY_ID_AUDIO}", interface=4,
                 location="9-1.3:1.4", role="audio")]


def write_inventory(path, rows) -> str:
    path.write_text(json.dumps(rows))
    return str(path)


def host_lines(emu: Sim7600Emulator) -> list[str]:
    return [text for _, direction, text in emu.transcript if direction == ">"]


@pytest.fixture
def emulator():
    emu = Sim7600Emulator()
    emu.start()
    yield emu
    emu.stop()


def test_scan_identifies_the_sim7600_and_pairs_its_audio_port(emulator, tmp_path):
    ports = list_ports(inventories=[write_inventory(tmp_path / "inv.json", sim7600_inventory(emulator))])
    ours = [p for p in ports if p.vid == "1e0e"]
    assert {p.interface for p in ours} == {2, 4}
    [finding] = asyncio.run(scan(ours, PROFILES, probe_timeout=1.0))
    assert finding.status == "ready", finding
    assert finding.profile_id == "simcom_sim7600"
    assert (finding.at_port, finding.audio_port) == (emulator.at_port, emulator.audio_port)
    assert finding.manufacturer == "SIMCOM INCORPORATED" and finding.model == "SIMCOM_SIM7600G-H"
    assert finding.firmware == "LE20B04SIM7600G22" and finding.imei == "867584030000001"
    assert finding.by_id.endswith(BY_ID_AT) and finding.usb == "1e0e:9001" and finding.serial_number == "HIL0001"
    assert f'audio_port = "/dev/serial/by-id/{BY_ID_AUDIO}"' in finding.advice
    sent = host_lines(emulator)
    assert "AT+CGMM" in sent and "AT+CPCMREG?" in sent       # identified, voice probed
    assert ("AT+CPCMREG?", ["+CPCMREG: 0", "OK"]) in finding.answers
    assert not any(s.startswith(("ATD", "ATA", "AT+CPCMREG=", "ATE", "AT+CFUN")) for s in sent)  # read-only


def test_unknown_modem_is_reported_with_its_answers_and_what_to_do():
    replies = {"AT": ["OK"], "AT+CGMI": ["Acme Radio"], "AT+CGMM": ["AX-100"], "AT+CGMR": ["AX100_R1"],
               "AT+CGSN": ["490154203237518"]}
    with ScriptedModem({k: v + ["OK"] if k != "AT" else v for k, v in replies.items()}) as modem:
        [finding] = asyncio.run(scan([PortInfo(device=modem.port)], PROFILES, probe_timeout=1.0))
    assert finding.status == "unknown_modem"
    assert (finding.manufacturer, finding.model, finding.firmware) == ("Acme Radio", "AX-100", "AX100_R1")
    assert finding.imei == "490154203237518" and finding.profile_id is None and finding.at_port == modem.port
    assert ("AT+CGMM", ["AX-100", "OK"]) in finding.answers
    assert ("ATI", ["ERROR"]) in finding.answers
    assert "copy" in finding.advice and "firmware_config" in finding.advice and "AX\\-100" in finding.advice


def test_voiceless_firmware_is_reported_with_the_profile_advice():
    replies = {"AT": ["OK"], "AT+CGMI": ["huawei", "OK"], "AT+CGMM": ["E173", "OK"],
               "AT+CGMR": ["21.017.09.00.314", "OK"], "AT^CVOICE?": ["ERROR"]}
    with ScriptedModem(replies) as modem:
        [finding] = asyncio.run(scan([PortInfo(device=modem.port)], PROFILES, probe_timeout=1.0))
    assert finding.status == "no_voice" and finding.profile_id == "huawei_e17x"
    assert "21.017.09.00.314" in finding.advice and "11.x firmware" in finding.advice
    assert ("AT^CVOICE?", ["ERROR"]) in finding.answers


def test_silent_port_is_no_response_within_the_bound():
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        path = os.ttyname(slave)
        start = time.monotonic()
        [finding] = asyncio.run(scan([PortInfo(device=path)], PROFILES, probe_timeout=1.0))
        elapsed = time.monotonic() - start
    finally:
        os.close(master)
        os.close(slave)
    assert finding.status == "no_response" and finding.at_port is None
    assert "did not answer AT" in finding.advice
    assert elapsed < 3.5, elapsed
    assert elapsed < device_budget(PROFILES, 1.0)


def test_port_that_talks_but_never_says_ok_is_not_a_modem():
    with ScriptedModem({}, default=None, chatter=["$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9"]) as gps:
        [finding] = asyncio.run(scan([PortInfo(device=gps.port)], PROFILES, probe_timeout=1.0))
    assert finding.status == "not_a_modem"
    assert any("$GPGGA" in line for _, reply in finding.answers for line in reply)


def test_port_held_exclusively_is_in_use_and_untouched(emulator, tmp_path):
    ports = load_inventory(write_inventory(tmp_path / "inv.json", sim7600_inventory(emulator)))
    holder = serial.Serial(emulator.at_port, exclusive=True)
    try:
        [finding] = asyncio.run(scan(ports, PROFILES, probe_timeout=1.0))
    finally:
        holder.close()
    assert finding.status == "in_use" and finding.device == emulator.at_port
    assert "not touched" in finding.advice
    assert host_lines(emulator) == []


def test_busy_ports_from_the_daemon_are_never_opened(emulator, tmp_path):
    ports = load_inventory(write_inventory(tmp_path / "inv.json", sim7600_inventory(emulator)))
    [finding] = asyncio.run(scan(ports, PROFILES, probe_timeout=1.0,
                                 busy={f"/dev/serial/by-id/{BY_ID_AT}": "line gsm1 of the running daemon"}))
    assert finding.status == "in_use" and "line gsm1 of the running daemon" in finding.advice
    assert host_lines(emulator) == []


def test_devices_are_probed_in_parallel(tmp_path):
    masters = [os.openpty() for _ in range(3)]
    try:
        ports = [PortInfo(device=os.ttyname(s)) for _, s in masters]
        start = time.monotonic()
        findings = asyncio.run(scan(ports, PROFILES, probe_timeout=1.0))
        elapsed = time.monotonic() - start
    finally:
        for fds in masters:
            for fd in fds:
                os.close(fd)
    assert [f.status for f in findings] == ["no_response"] * 3
    assert elapsed < 3.5, elapsed


def test_identity_from_each_family_dialect():
    quectel = parse_identity([("AT+CGMI", ["ERROR"]), ("ATI", ["Quectel", "EC25", "Revision: EC25EFAR06A03M4G", "OK"])])
    assert (quectel.manufacturer, quectel.model, quectel.firmware) == ("Quectel", "EC25", "EC25EFAR06A03M4G")
    assert choose_profile(quectel, [], PROFILES).id == "quectel_ec25"
    simcom = parse_identity([("AT+CGMR", ["+CGMR: LE20B04SIM7600G22", "OK"]), ("AT+CGSN", ["+CGSN: 867584030000001", "OK"])])
    assert simcom.firmware == "LE20B04SIM7600G22" and simcom.imei == "867584030000001"
    answers = [("AT+CGMI", ["ERROR"]), ("ATI0", ["56000", "OK"]), ("ATI3", ["CX93001-EIS_V0.2002-V92", "OK"])]
    v253 = parse_identity(answers)
    assert v253.manufacturer is None and v253.model == "CX93001-EIS_V0.2002-V92"
    assert choose_profile(v253, answers, PROFILES).id == "v253_conexant"
    assert choose_profile(Identity("SIMCOM_Ltd", "SIMCOM_SIM800L"), [], PROFILES).id == "simcom_sim800"
    assert choose_profile(Identity("Nokia", "3310"), [], PROFILES) is None


def test_inventory_errors_name_the_file_and_json_path(tmp_path):
    good = {"device": "/dev/pts/99", "by_id": None, "vid": "1E0E", "pid": 0x9001, "serial_number": None,
            "interface": 2, "location": None, "manufacturer": None, "product": None, "role": "at"}
    path = tmp_path / "inv.json"
    assert load_inventory(write_inventory(path, [good]))[0] == PortInfo(
        device="/dev/pts/99", vid="1e0e", pid="9001", interface=2, role="at")
    cases = [
        ("[{", "not JSON (line 1"),
        (json.dumps({"device": "x"}), "$: expected a list"),
        (json.dumps([good, dict(good, vid="zz")]), "$[1].vid: expected four hex digits"),
        (json.dumps([dict(good, interface="2")]), "$[0].interface: expected a USB interface number"),
        (json.dumps([dict(good, speed=115200)]), "$[0].speed: unknown key"),
        (json.dumps([dict(good, device="")]), "$[0].device: expected a non-empty string"),
        (json.dumps(["/dev/ttyUSB0"]), "$[0]: expected an object"),
    ]
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(InventoryError) as info:
            load_inventory(path)
        assert str(path) in str(info.value) and message in str(info.value), str(info.value)
    with pytest.raises(InventoryError, match="cannot read port inventory"):
        list_ports(inventories=[str(tmp_path / "missing.json")])


def test_ports_from_the_environment_and_by_id_names(emulator, tmp_path, monkeypatch):
    inv = write_inventory(tmp_path / "inv.json", sim7600_inventory(emulator))
    monkeypatch.setenv("CALLGATE_PORT_INVENTORY", os.pathsep.join(["", inv]))
    ports = list_ports()
    at = find_port(BY_ID_AT, ports)
    assert at is not None and at.device == emulator.at_port and at.role == "at"
    assert find_port(f"/dev/serial/by-id/{BY_ID_AT}", ports) == at
    assert find_port(emulator.audio_port, ports).interface == 4
    assert find_port("/dev/ttyNOPE9", ports) is None
    links = tmp_path / "by-id"
    links.mkdir()
    (links / "usb-Acme_AX-100-if00-port0").symlink_to(emulator.at_port)
    assert by_id_links(links) == {os.path.realpath(emulator.at_port): str(links / "usb-Acme_AX-100-if00-port0")}
    assert find_port("usb-Acme_AX-100-if00-port0", ports, by_id_dir=links) == at


@pytest.mark.parametrize("dialect, profile_id", [("usr5637", "v253_usr5637"), ("cx93001", "v253_conexant")])
def test_scan_identifies_the_v253_emulators(tmp_path, dialect, profile_id):
    from hil.v253 import V253Emulator
    emu = V253Emulator(dialect, by_id_dir=tmp_path / "by-id")
    emu.start()
    try:
        emu.write_inventory(str(tmp_path / "inv.json"))
        ports = list_ports(inventories=[str(tmp_path / "inv.json")])
        [finding] = asyncio.run(scan([p for p in ports if p.device == emu.port], PROFILES, probe_timeout=1.0))
    finally:
        emu.stop()
    assert finding.status == "ready", finding
    assert finding.profile_id == profile_id and finding.at_port == emu.port
    assert finding.audio_port is None                    # in-band audio on the same tty
    assert any(cmd == "AT+FCLASS=?" and reply[-1] == "OK" for cmd, reply in finding.answers)
