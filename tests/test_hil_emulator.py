"""The SIM7600 emulator seen through its real pseudo-terminals with pyserial, as the gateway sees it."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import serial

from hil import control
from hil.sim7600 import Sim7600Emulator
from tests.pty_helpers import AtLink

REPO = Path(__file__).resolve().parents[1]
FINALS = re.compile(r"^(OK|ERROR|NO CARRIER|\+CME ERROR: .*)$")
CALLER = "+15551230001"
FRAME = 320


@pytest.fixture
def make_emulator():
    started: list[Sim7600Emulator] = []

    def make(**kwargs) -> Sim7600Emulator:
        kwargs.setdefault("ring_interval", 0.3)
        emulator = Sim7600Emulator(**kwargs)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emu(make_emulator) -> Sim7600Emulator:
    return make_emulator()


@pytest.fixture
def at(emu) -> AtLink:
    link = AtLink(emu.at_port, FINALS)
    yield link
    link.ser.close()


def answered_call(emu: Sim7600Emulator, at: AtLink, pcm: bool = True) -> None:
    assert at.command("ATE0;+CMEE=1;+CLIP=1;+CLCC=1")[-1] == "OK"
    emu.ring(CALLER)
    at.expect(lambda line: line.startswith("+CLCC:"))
    assert at.command("ATA")[-1] == "OK"
    at.expect(lambda line: line.startswith("+CLCC: 1,1,0,"))
    assert emu.state == "active"
    if pcm:
        assert at.command("AT+CPCMREG=1")[-1] == "OK"


def read_audio(port: serial.Serial, nbytes: int, timeout: float = 3.0) -> bytes:
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < nbytes and time.monotonic() < deadline:
        data += port.read(nbytes - len(data))
    return bytes(data)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def sounding(samples: np.ndarray, count: int) -> np.ndarray:
    """count samples starting where the signal starts (silence before it is cut off)."""
    start = np.flatnonzero(np.abs(samples) > 100)
    assert len(start), "no signal at all"
    part = samples[start[0]:start[0] + count]
    assert len(part) == count, f"only {len(part)} samples of signal"
    return part


def tone(hz: float, seconds: float, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


# ------------------------------------------------------------------ AT basics


def test_identification_echo_then_ate0(emu, at):
    lines = at.command("ATI")
    assert lines == ["ATI", "Manufacturer: SIMCOM INCORPORATED", "Model: SIMCOM_SIM7600G-H",
                     "Revision: LE20B04SIM7600G22", "IMEI: 867584030000001", "+GCAP: +CGSM", "OK"]
    assert at.command("ATE0") == ["ATE0", "OK"]          # echoed one last time
    assert at.command("AT+CGMM") == ["SIMCOM_SIM7600G-H", "OK"]
    assert at.command("at+cgmr") == ["+CGMR: LE20B04SIM7600G22", "OK"]
    assert at.command("AT+CGSN;+CGMI") == ["867584030000001", "SIMCOM INCORPORATED", "OK"]
    assert b"\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n" in at.raw
    assert at.command("AT+CPIN?") == ["+CPIN: READY", "OK"]
    assert at.command("AT+CSQ") == ["+CSQ: 21,99", "OK"]
    assert at.command("ATE1") == ["OK"]
    assert at.command("AT") == ["AT", "OK"]


def test_split_and_batched_writes(emu, at):
    at.command("ATE0")
    at.ser.write(b"AT+CS")
    assert at.quiet_for(0.1) == []
    at.ser.write(b"Q\r")
    assert at.expect(FINALS.match) == ["+CSQ: 21,99", "OK"]
    at.ser.write(b"AT\rAT+CPIN?\r")
    assert at.expect(FINALS.match) == ["OK"]
    assert at.expect(FINALS.match) == ["+CPIN: READY", "OK"]
    assert [entry[1:] for entry in emu.transcript[-5:]] == [
        (">", "AT"), ("<", "OK"), (">", "AT+CPIN?"), ("<", "+CPIN: READY"), ("<", "OK")]


def test_error_reporting_follows_cmee(emu, at):
    at.command("ATE0")
    assert at.command("AT+NOSUCH") == ["ERROR"]
    assert at.command("AT+VTS=1") == ["ERROR"]
    assert at.command("AT+CMEE=1") == ["OK"]
    assert at.command("AT+VTS=1") == ["+CME ERROR: 3"]
    assert at.command("AT+CMEE=2") == ["OK"]
    assert at.command("AT+VTS=1") == ["+CME ERROR: operation not allowed"]
    assert at.command("AT+CMEE?") == ["+CMEE: 2", "OK"]
    assert at.command("AT+CMEE=9") == ["+CME ERROR: Incorrect parameters"]


def test_garbage_overlong_lines_and_injection_do_not_break_the_module(emu, at):
    at.command("ATE0")
    at.ser.write(b"\x00\xff\xfe\x1b[2Jgarbage\r\n\r")
    assert at.quiet_for(0.1) == []          # no AT prefix: ignored like the real module
    at.ser.write(b"x" * 3000)
    at.expect(lambda line: line == "ERROR")
    assert at.command("AT") == ["OK"]
    emu.inject(b'\r\n+CMTI: "SM",1\r\npartial')
    assert at.expect(lambda line: line.startswith("+CMTI")) == ['+CMTI: "SM",1']
    assert at.command("AT+CLCC") == ["partial", "OK"]
    assert b'\r\n+CMTI: "SM",1\r\npartial\r\nOK\r\n' in at.raw     # exactly as injected


def test_freeze_stops_answering_until_released(emu, at):
    at.command("ATE0")
    emu.freeze()
    at.ser.write(b"AT\r")
    assert at.quiet_for(0.3) == []
    emu.freeze(False)
    assert at.command("AT+CGMM") == ["SIMCOM_SIM7600G-H", "OK"]


def test_vanish_makes_host_reads_fail(emu, at):
    at.command("ATE0")
    emu.vanish()
    assert emu.state == "gone"
    with pytest.raises(serial.SerialException):
        for _ in range(10):
            at.ser.read(1)


# ------------------------------------------------------------------ calls


def test_cpcmreg_refused_without_a_call(emu, at):
    at.command("ATE0;+CMEE=1")
    assert at.command("AT+CPCMREG?") == ["+CPCMREG: 0", "OK"]
    assert at.command("AT+CPCMREG=1") == ["ERROR"]
    assert emu.pcm_enabled is False
    assert at.command("ATA") == ["NO CARRIER"]


def test_incoming_call_ring_clip_clcc_answer_and_pcm(emu, at):
    at.command("ATE0;+CLIP=1;+CLCC=1")
    emu.ring(CALLER)
    assert emu.wait_for_state("ringing", 1)
    first = at.expect(lambda line: line.startswith("+CLCC:"))
    assert first == ["RING", f'+CLIP: "{CALLER}",145,"",0,"",0', f'+CLCC: 1,1,4,0,0,"{CALLER}",145']
    again = at.expect(lambda line: line.startswith("+CLIP:"), timeout=1)
    assert again == ["RING", f'+CLIP: "{CALLER}",145,"",0,"",0']     # CLCC only once
    assert at.command("AT+CPCMREG=1") == ["ERROR"]                     # still ringing
    assert at.command("ATA") == ["VOICE CALL: BEGIN", "OK"]
    assert at.expect(lambda line: True) == [f'+CLCC: 1,1,0,0,0,"{CALLER}",145']
    assert emu.state == "active"
    assert at.command("AT+CLCC") == [f'+CLCC: 1,1,0,0,0,"{CALLER}",145', "OK"]
    assert at.command("AT+CPCMREG=1") == ["OK"]
    assert emu.pcm_enabled
    assert at.command("AT+CPCMREG?") == ["+CPCMREG: 1", "OK"]
    assert not [line for line in at.quiet_for(0.4) if line == "RING"]  # ringing stopped


def test_pcm_accepted_only_after_the_module_delay(make_emulator):
    emu = make_emulator(pcm_accept_after=0.3)
    at = AtLink(emu.at_port, FINALS)
    answered_call(emu, at, pcm=False)
    assert at.command("AT+CPCMREG=1") == ["ERROR"]
    time.sleep(0.35)
    assert at.command("AT+CPCMREG=1") == ["OK"]
    at.ser.close()


def test_audio_pace_tone_and_capture(emu, at):
    answered_call(emu, at)
    audio = serial.Serial(emu.audio_port, timeout=0.05)
    audio.reset_input_buffer()
    started = time.monotonic()
    received = bytearray()
    while time.monotonic() - started < 0.5:
        received += audio.read(4096)
    frames = len(received) / FRAME
    assert 21 <= frames <= 29, frames
    assert not np.any(np.frombuffer(bytes(received[: len(received) // 2 * 2]), "<i2"))  # silence

    emu.play_pcm(tone(1000, 0.6))
    audio.reset_input_buffer()
    samples = np.frombuffer(read_audio(audio, 3200 * 2), "<i2")
    assert abs(peak_hz(sounding(samples, 1600), 8000) - 1000) < 10

    emu.clear_capture()
    sent = (np.arange(FRAME // 2 * 10) * 37 % 20000 - 10000).astype(np.int16)
    payload = sent.astype("<i2").tobytes()
    audio.write(payload[:100])                 # any chunking is accepted
    audio.write(payload[100:])
    deadline = time.monotonic() + 2
    while len(emu.capture()) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert np.array_equal(emu.capture(), sent)
    audio.close()


def test_wide_band_frames_after_cpcmfrm1(emu, at):
    assert at.command("ATE0;+CPCMFRM=1")[-1] == "OK"
    answered_call(emu, at)
    assert at.command("AT+CPCMFRM=0") == ["+CME ERROR: 3"]   # not while the stream runs
    audio = serial.Serial(emu.audio_port, timeout=0.05)
    emu.play_pcm(tone(1000, 0.6))
    audio.reset_input_buffer()
    started = time.monotonic()
    samples = np.frombuffer(read_audio(audio, 640 * 15), "<i2")
    assert 0.2 < time.monotonic() - started < 0.45           # 15 frames of 640 bytes at 50/s
    assert abs(peak_hz(sounding(samples, 3200), 16000) - 1000) < 10
    emu.clear_capture()
    audio.write(tone(500, 0.4, 16000).astype("<i2").tobytes())
    deadline = time.monotonic() + 2
    while len(emu.capture()) < 3200 and time.monotonic() < deadline:
        time.sleep(0.02)
    captured = emu.capture()
    assert len(captured) == 3200                             # stored at 8 kHz
    assert abs(peak_hz(captured, 8000) - 500) < 10
    audio.close()


def test_play_wav_converts_and_save_capture_writes_8k_wav(emu, at, tmp_path):
    source = tmp_path / "tone16k.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-b", "16", "-c", "2", str(source),
                    "synth", "0.5", "sine", "1000"], check=True)
    answered_call(emu, at)
    audio = serial.Serial(emu.audio_port, timeout=0.05)
    emu.play_wav(str(source))
    audio.reset_input_buffer()
    samples = np.frombuffer(read_audio(audio, 3200 * 2), "<i2")
    assert abs(peak_hz(sounding(samples, 1600), 8000) - 1000) < 10

    not_wav = tmp_path / "notes.txt"
    not_wav.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        emu.play_wav(str(not_wav))

    audio.write(tone(440, 0.2).astype("<i2").tobytes())
    time.sleep(0.2)
    out = tmp_path / "capture.wav"
    emu.save_capture(str(out))
    with wave.open(str(out), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        stored = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert np.array_equal(stored, emu.capture())
    assert len(stored) == 1600
    audio.close()


def test_rxdtmf_uses_doubled_cr_framing(emu, at):
    with pytest.raises(RuntimeError, match="active call"):
        emu.send_dtmf("1")
    answered_call(emu, at, pcm=False)
    emu.send_dtmf("8*#", gap=0.05)
    at.expect(lambda line: line == "+RXDTMF: #")
    assert b"\r\r\n+RXDTMF: 8\r\r\n\r\r\n+RXDTMF: *\r\r\n\r\r\n+RXDTMF: #\r\r\n" in at.raw


@pytest.mark.parametrize("order", [("clcc", "voice_call_end", "no_carrier"),
                                   ("no_carrier", "voice_call_end", "clcc")])
def test_caller_hangup_sends_end_lines_in_configured_order(make_emulator, order):
    emu = make_emulator(end_order=order)
    at = AtLink(emu.at_port, FINALS)
    answered_call(emu, at)
    emu.hangup()
    lines = at.expect(lambda line: line.startswith({"clcc": "+CLCC", "voice_call_end": "VOICE",
                                                     "no_carrier": "NO CARRIER"}[order[-1]]))
    expected = {"clcc": f'+CLCC: 1,1,6,0,0,"{CALLER}",145', "voice_call_end": "VOICE CALL: END: 000000",
                "no_carrier": "NO CARRIER"}
    assert lines == [expected[item] for item in order]
    assert emu.state == "idle" and not emu.pcm_enabled
    audio = serial.Serial(emu.audio_port, timeout=0.05)
    audio.reset_input_buffer()
    assert read_audio(audio, FRAME, timeout=0.2) == b""          # PCM stopped with the call
    assert at.command("AT+CPCMREG?") == ["+CPCMREG: 0", "OK"]
    audio.close()
    at.ser.close()


def test_caller_hangs_up_while_ringing_is_a_missed_call(emu, at):
    at.command("ATE0;+CLIP=1;+CLCC=1")
    emu.ring("07712345678", 129)
    at.expect(lambda line: line.startswith("+CLCC:"))
    emu.hangup()
    lines = at.expect(lambda line: line.startswith("MISSED_CALL"))
    assert [line for line in lines if line not in ("RING",) and not line.startswith("+CLIP")][-3:-1] == [
        '+CLCC: 1,1,6,0,0,"07712345678",129', "VOICE CALL: END"]
    assert re.fullmatch(r"MISSED_CALL: \d\d:\d\d[AP]M 07712345678", lines[-1])
    assert emu.state == "idle"


def test_local_hangup_reports_duration(emu, at):
    answered_call(emu, at, pcm=False)
    with pytest.raises(RuntimeError):
        emu.ring()                                  # one call per module
    time.sleep(1.05)
    assert at.command("AT+CHUP") == [f'+CLCC: 1,1,6,0,0,"{CALLER}",145', "VOICE CALL: END: 000001", "OK"]
    assert emu.wait_for_state("idle", 0.1)
    assert at.command("ATH") == ["OK"]


def test_outgoing_call_dial_alert_remote_answer(emu, at):
    at.command("ATE0;+CMEE=1;+CLCC=1")
    assert at.command("ATD0612345678") == ["+CME ERROR: 4"]       # no ';': data call
    assert at.command("ATD+15559870000;") == ["OK"]
    assert emu.state == "dialing"
    assert at.expect(lambda line: ",3," in line) == ['+CLCC: 1,0,2,0,0,"+15559870000",145',
                                                     '+CLCC: 1,0,3,0,0,"+15559870000",145']
    assert at.command("AT+VTS=5") == ["+CME ERROR: 3"]
    emu.remote_answer()
    assert at.expect(lambda line: line.startswith("+CLCC")) == [
        "VOICE CALL: BEGIN", '+CLCC: 1,0,0,0,0,"+15559870000",145']
    assert emu.state == "active"
    assert at.command("AT+VTS=5") == ["OK"]
    assert emu.vts_digits == ["5"]
    with pytest.raises(RuntimeError):
        emu.remote_answer()
    assert at.command("ATH") == ['+CLCC: 1,0,6,0,0,"+15559870000",145', "VOICE CALL: END: 000000", "OK"]


# ------------------------------------------------------------------ control protocol


def _read_json_line(proc: subprocess.Popen, timeout: float) -> dict:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "emulator process printed nothing"
    return json.loads(proc.stdout.readline())


def test_control_protocol_through_a_subprocess(tmp_path):
    ports_file = tmp_path / "ports.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "hil", "sim7600", "--ring-interval", "0.3",
                             "--json-ports", str(ports_file)],
                            stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        info = _read_json_line(proc, 10)
        assert json.loads(ports_file.read_text()) == info
        addr = info["control"]
        at = AtLink(info["at_port"], FINALS)
        at.command("ATE0;+CLIP=1")
        assert control.send(addr, "state") == {"ok": True, "state": "idle", "pcm": False}
        assert control.send(addr, f"ring {CALLER}")["state"] == "ringing"
        assert at.expect(lambda line: line.startswith("+CLIP")) == ["RING", f'+CLIP: "{CALLER}",145,"",0,"",0']
        reply = control.send(addr, "answer")
        assert reply["ok"] is False and "outgoing" in reply["error"]

        ctl = [sys.executable, "-m", "hil", "ctl", addr]
        bad = subprocess.run(ctl + ["dtmf", "1"], capture_output=True, text=True, env=env)
        assert bad.returncode == 1 and json.loads(bad.stdout)["ok"] is False
        good = subprocess.run(ctl + ["hangup"], capture_output=True, text=True, env=env)
        assert good.returncode == 0 and json.loads(good.stdout) == {"ok": True, "state": "idle", "pcm": False}
        assert at.expect(lambda line: line.startswith("MISSED_CALL"))[-1].endswith(CALLER)

        saved = control.send(addr, f"capture {tmp_path / 'cap.wav'}")
        assert saved == {"ok": True, "path": str(tmp_path / "cap.wav"), "seconds": 0.0}
        assert control.send(addr, "bogus")["ok"] is False
        assert control.send(addr, "quit") == {"ok": True, "quit": True}
        assert proc.wait(5) == 0
        at.ser.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
