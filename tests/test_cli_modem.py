"""`callgate modem scan|info|at` as a technician runs them: real subprocesses, ptys, the SIM7600 emulator."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import tty

import pytest
import serial

from tests.stack import DEMO_FLOW, free_port, write_config
from tests.test_modem_detect import BY_ID_AT, emulator, sim7600_inventory, write_inventory  # noqa: F401 (fixture)


@pytest.fixture
def env(emulator, tmp_path):
    inventory = write_inventory(tmp_path / "inv.json", sim7600_inventory(emulator))
    return dict(os.environ, CALLGATE_PORT_INVENTORY=inventory, HOME=str(tmp_path), TERM="dumb",
                CALLGATE_CONFIG=str(tmp_path / "none.toml"))


def cli(env, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", "modem", *args], capture_output=True, text=True,
                          timeout=60, env=env, input=stdin)


def test_scan_json_and_human(env, emulator):
    out = cli(env, "scan", "--json", "--timeout", "1", "--port", BY_ID_AT)
    assert out.returncode == 0, out.stderr
    [finding] = json.loads(out.stdout)["findings"]
    assert finding["status"] == "ready" and finding["profile_id"] == "simcom_sim7600"
    assert (finding["at_port"], finding["audio_port"]) == (emulator.at_port, emulator.audio_port)
    assert {"command": "AT+CGMM", "reply": ["SIMCOM_SIM7600G-H", "OK"]} in finding["answers"]

    human = cli(env, "scan", "--timeout", "1")
    assert human.returncode == 0, human.stderr
    row = next(line for line in human.stdout.splitlines() if line.startswith(emulator.at_port))
    assert "1e0e:9001" in row and "simcom_sim7600" in row and emulator.audio_port in row and row.endswith("ready")
    assert f'at_port = "/dev/serial/by-id/{BY_ID_AT}"' in human.stdout


def test_info_json(env, emulator):
    out = cli(env, "info", BY_ID_AT, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["port"] == emulator.at_port and info["profile_id"] == "simcom_sim7600"
    assert info["imei"] == "867584030000001" and info["sim"] == "ready" and info["registration"] == "home"
    assert (info["signal_dbm"], info["signal_bars"], info["access_technology"]) == (-71, 5, "E-UTRAN (LTE)")
    human = cli(env, "info", emulator.at_port)
    assert human.returncode == 0
    assert "-71 dBm, 5/5 bars" in human.stdout and "HIL Network" in human.stdout
    assert "AT+CESQ: ERROR" in human.stdout           # a failed query is shown, not fatal


def test_at_one_shot(env, emulator):
    ok = cli(env, "at", emulator.at_port, "AT+CSQ", "+CGMM")
    assert ok.returncode == 0, ok.stderr
    lines = [line for line in ok.stdout.splitlines() if not line.startswith("[urc] ")]
    assert lines == ["+CSQ: 21,99", "OK", "SIMCOM_SIM7600G-H", "OK"]

    bad = cli(env, "at", BY_ID_AT, "AT+CSQ", "AT+NOPE", "AT+CGMM")
    assert bad.returncode == 1
    assert "ERROR" in bad.stdout.splitlines() and "SIMCOM_SIM7600G-H" not in bad.stdout
    assert "AT+NOPE: ERROR" in bad.stderr

    cme = cli(env, "at", emulator.at_port, "AT+CMEE=1;+CPIN=1234", "--json")
    assert cme.returncode == 1
    [result] = json.loads(cme.stdout)["results"]
    assert result["final"] == "+CME ERROR: 3" and result["error"] == "+CME ERROR: 3 (operation not allowed)"


def test_port_errors_have_their_own_exit_codes(env, emulator, tmp_path):
    missing = cli(env, "at", "/dev/ttyUSB99", "AT")
    assert missing.returncode == 2 and "no such port" in missing.stderr

    holder = serial.Serial(emulator.at_port, exclusive=True)
    try:
        busy = cli(env, "at", emulator.at_port, "AT")
    finally:
        holder.close()
    assert busy.returncode == 3 and "in use" in busy.stderr

    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        start = time.monotonic()
        silent = cli(env, "at", os.ttyname(slave), "AT", "--timeout", "1")
        elapsed = time.monotonic() - start
    finally:
        os.close(master)
        os.close(slave)
    assert silent.returncode == 4 and "not a modem" in silent.stderr and elapsed < 10

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"device": "/dev/pts/1", "vid": 7680}, {"device": "/dev/pts/2", "vid": "x"}]))
    broken = cli(dict(env, CALLGATE_PORT_INVENTORY=str(bad)), "scan")
    assert broken.returncode == 2 and f"{bad}: $[1].vid" in broken.stderr


def test_ports_of_the_running_daemon_are_refused(env, emulator, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "callgate.toml"
    write_config(config, gateway_id="gw", data_dir=data, broker=None, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": emulator.at_port,
                         "audio_port": emulator.audio_port, "flow": str(DEMO_FLOW), "number": "+15550000000"}])
    (data / "daemon.json").write_text(json.dumps({"pid": os.getpid(), "config": str(config)}))
    out = cli(env, "at", BY_ID_AT, "AT", "-c", str(config))
    assert out.returncode == 3 and "line gsm1 of the running callgate daemon" in out.stderr
    scan = cli(env, "scan", "--json", "--port", emulator.at_port, "-c", str(config))
    assert json.loads(scan.stdout)["findings"][0]["status"] == "in_use"
    assert [t for _, d, t in emulator.transcript if d == ">"] == []


def read_until(fd: int, needle: bytes, seen: bytearray, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not seen in {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return bytes(seen)


def test_interactive_console_on_a_terminal(env, emulator, tmp_path):
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "modem", "at", BY_ID_AT], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    seen = bytearray()
    try:
        prompt = f"{emulator.at_port.removeprefix('/dev/')}> ".encode()
        read_until(master, prompt, seen)
        # Each command is typed once the prompt is back, as a person would (keys typed while the
        # console waits for the modem are echoed by the terminal, not lost).
        os.write(master, b"AT+CSQ\r")
        read_until(master, b"+CSQ: 21,99\r\nOK\r\n" + prompt, seen)
        os.write(master, b"AT+CLIP=1\r")
        read_until(master, b"AT+CLIP=1\r\nOK\r\n" + prompt, seen)
        emulator.ring("+15551230001")
        read_until(master, b'[urc] +CLIP: "+15551230001"', seen)
        assert b"[urc] RING" in seen
        os.write(master, b"ATA\r")
        read_until(master, b"[urc] VOICE CALL: BEGIN\r\nOK\r\n" + prompt, seen)
        os.write(master, b"\x04")                        # Ctrl-D on an empty line leaves
        assert proc.wait(10) == 0, bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    history = (tmp_path / ".callgate_at_history").read_text()
    assert "AT+CSQ" in history and "ATA" in history
    assert emulator.state == "active"


def test_console_reads_a_pipe_and_stops_when_the_modem_vanishes(env, emulator):
    piped = cli(env, "at", emulator.at_port, stdin="AT+CGMM\nAT+NOPE\n")
    assert piped.returncode == 0, piped.stderr
    assert "SIMCOM_SIM7600G-H" in piped.stdout and "ERROR" in piped.stdout

    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "modem", "at", emulator.at_port], stdin=slave,
                            stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    seen = bytearray()
    try:
        read_until(master, b"> ", seen)
        emulator.vanish()
        read_until(master, b"port closed", seen)
        assert proc.wait(10) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
