"""The V.253 emulator (USR 5637, Conexant CX93001) through its real pseudo-terminal with pyserial,
as a host program sees it: T10 identification, the T8 call, T9 underrun, T11k, outbound, faults."""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import time

import numpy as np
import pytest
import serial

from gateway.media.tones import dominant_frequency, sine
from gateway.modem.ports import load_inventory
from gateway.v253 import (
    CallerId,
    CallerIdParser,
    DigitDebouncer,
    DleDecoder,
    DleEncoder,
    EventKind,
    RxStream,
    TxStream,
    sample_format,
)
from hil.v253 import V253Emulator

FINAL = re.compile(rb"\r\n(OK|ERROR|CONNECT|VCON|BUSY|NO ANSWER|NO CARRIER|NO DIALTONE)\r\n")
CID_TIME = datetime.datetime(2027, 1, 17, 14, 52)
ENC = DleEncoder()


class Host:
    """The host end of the modem's tty: raw bytes kept, finals found in the byte stream."""

    def __init__(self, port: str) -> None:
        self.ser = serial.Serial(port, timeout=0.02)
        self.buf = bytearray()
        self.seen = bytearray()            # every byte ever read

    def _pump(self) -> None:
        data = self.ser.read(65536)
        self.buf += data
        self.seen += data

    def until(self, pattern: re.Pattern | bytes, timeout: float = 2.0) -> bytes:
        """Bytes up to and including the first match; what follows stays buffered."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.buf)
            if match:
                taken = bytes(self.buf[: match.end()])
                del self.buf[: match.end()]
                return taken
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {regex.pattern!r}; got {bytes(self.buf)!r}")
            self._pump()

    def take(self, seconds: float) -> bytes:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump()
        taken = bytes(self.buf)
        self.buf.clear()
        return taken

    def send(self, data: bytes) -> None:
        self.ser.write(data)

    def command(self, text: str, timeout: float = 2.0) -> list[str]:
        """Lines of the answer (echo included while echo is on), the final result last."""
        self.send(text.encode() + b"\r")
        raw = DleDecoder(stop_at_etx=False).feed(self.until(FINAL, timeout)).audio
        return [line.decode("latin-1") for line in re.split(rb"[\r\n]+", raw) if line]


@pytest.fixture
def modem():
    started: list[V253Emulator] = []
    hosts: list[Host] = []

    def make(dialect: str = "usr5637", **kwargs) -> tuple[V253Emulator, Host]:
        kwargs.setdefault("ring_interval", 0.3)
        kwargs.setdefault("cid_time", CID_TIME)
        emulator = V253Emulator(dialect, **kwargs)
        emulator.start()
        started.append(emulator)
        host = Host(emulator.port)
        hosts.append(host)
        return emulator, host

    yield make
    for host in hosts:
        host.ser.close()
    for emulator in started:
        emulator.stop()


def voice_call(emulator: V253Emulator, host: Host, vsm: str | None = None) -> None:
    """Quiet the echo, ring, answer in voice mode (callattendant's order)."""
    assert host.command("ATE0")[-1] == "OK"
    assert host.command("AT+FCLASS=8")[-1] == "OK"
    assert host.command("AT+VSD=128,0")[-1] == "OK"
    emulator.ring()
    host.until(b"RING")
    assert host.command("AT+VLS=1") == ["OK"]
    assert emulator.wait_for_state("active", 1.0)
    if vsm:
        assert host.command(f"AT+VSM={vsm}") == ["OK"]


# ---------------------------------------------------------------- identification (T10)

def test_conexant_identification_and_init_as_in_t10(modem):
    emulator, host = modem("cx93001")
    assert host.command("AT") == ["AT", "OK"]                  # echo on at power-up
    assert host.command("ATI0") == ["ATI0", "56000", "OK"]
    assert host.command("ATZ") == ["ATZ", "OK"]
    host.send(b"ATV1\r")
    assert host.until(FINAL) == b"ATV1\r\r\nOK\r\n"
    host.send(b"ATE0\r")
    assert host.until(FINAL) == b"ATE0\r\r\nOK\r\n"            # echoed: E0 takes effect after
    host.send(b"AT-SCID=1;+VCID=1;-STE=3\r")
    assert host.until(FINAL) == b"\r\nOK\r\n"
    assert host.command("AT&W0") == ["OK"]
    assert host.command("ATI3") == ["CX93001-EIS_V0.2002-V92", "OK"]
    assert host.command("AT+VCID?") == ["1", "OK"]
    assert host.command("AT&V")[0] == "ACTIVE PROFILE:"
    assert host.command("AT+FCLASS=?") == ["0,1,1.0,2,2.0,8", "OK"]
    host.send(b"ATV0\r")
    assert host.until(b"0\r") == b"0\r"
    host.send(b"AT+FOO\r")
    assert host.until(b"4\r") == b"4\r"                          # numeric ERROR


def test_usr_identification_and_its_dialect(modem):
    emulator, host = modem("usr5637")
    assert host.command("ATE0") == ["ATE0", "OK"]
    assert host.command("ATI0") == ["5601", "OK"]
    assert host.command("AT+GMI") == ["U.S. Robotics", "OK"]
    assert host.command("AT-SCID=1") == ["ERROR"]               # a Conexant-only command
    assert host.command("AT+FCLASS=8;+VSM=?") == [
        '1,"UNSIGNED PCM",8,0,(7200,8000),(0),(0)', '128,"8-BIT LINEAR",8,0,(7200,8000),(0),(0)',
        '129,"ADPCM",4,0,(7200,8000),(0),(0)', '130,"UNSIGNED PCM",8,0,(7200,8000),(0),(0)',
        '131,"ULAW",8,0,(7200,8000),(0),(0)', '132,"ALAW",8,0,(7200,8000),(0),(0)',
        '133,"LINEAR",16,0,(7200,8000),(0),(0)', "OK"]
    assert host.command("AT+VSM=131,8000") == ["OK"]
    assert host.command("AT+VSM?") == ["+VSM: 131,8000,0,0", "OK"]
    assert host.command("AT+VSD=?") == ["+VSD: (0,127,128,129),(0-255)", "OK"]
    assert host.command("AT+VSM=131,11025") == ["ERROR"]
    assert host.command("AT+FCLASS?") == ["8", "OK"]
    assert host.command("ATZ") == ["OK"]
    assert host.command("AT+FCLASS?") == ["AT+FCLASS?", "0", "OK"]   # ATZ: echo on, data mode


def test_conexant_has_no_mu_law(modem):
    emulator, host = modem("cx93001")
    host.command("ATE0;+FCLASS=8")
    assert host.command("AT+VSM=131,8000") == ["ERROR"]
    assert host.command("AT+VSM=1,8000,0,0") == ["OK"]
    assert host.command("AT+VSM?") == ["1,8000,0,0", "OK"]


@pytest.mark.parametrize("dialect", ["usr5637", "cx93001"])
def test_voice_commands_answer_error_outside_voice_mode(modem, dialect):
    emulator, host = modem(dialect)
    host.command("ATE0")
    voice = ["AT+VSM=1,8000", "AT+VLS=1", "AT+VTX", "AT+VRX", "AT+VTR", "AT+VTS=5",
             "AT+VSD=128,0", "AT+VGT=128", "AT+VGR=128", "AT+VIT=0", "AT+VRA=5", "AT+VRN=0"]
    for cmd in voice:
        assert host.command(cmd) == ["ERROR"], cmd               # T11k
    assert host.command("AT+VCID=1") == ["OK"]                   # caller ID is set in data mode
    assert emulator.state == "idle"
    assert host.command("AT+FCLASS=8") == ["OK"]
    for cmd in ("AT+VSM=1,8000", "AT+VSD=128,0", "AT+VGT=128", "AT+VIT=0", "AT+VRA=5"):
        assert host.command(cmd) == ["OK"], cmd
    assert host.command("AT+VTX") == ["ERROR"]                   # no line or device selected yet


# ---------------------------------------------------------------- inbound call (T8)

def test_t8_caller_id_answer_play_beep_record_busy_hangup(modem):
    emulator, host = modem("usr5637")
    host.command("ATZ")
    host.command("ATV1")
    host.command("ATE0")
    assert host.command("AT+VCID=1") == ["OK"]
    emulator.ring("5551234567", "WIRELESS CALLER")
    idle = host.until(re.compile(rb"RING\r\n.*?RING\r\n", re.S), timeout=2.0)
    lines = [line.decode() for line in re.split(rb"[\r\n]+", idle) if line]
    assert lines == ["RING", "DATE=0117", "TIME=1452", "NMBR=5551234567", "NAME=WIRELESS CALLER",
                     "RING"]
    assert b"DATE=0117\r\n" in idle                               # USR: no spaces
    parser = CallerIdParser()
    records = [r for line in lines if (r := parser.feed(line)) is not None]
    assert records == [CallerId("0117", "1452", "5551234567", "WIRELESS CALLER")]

    assert host.command("AT+FCLASS=8") == ["OK"]
    assert host.command("AT+VSD=128,0") == ["OK"]
    assert host.command("AT+VLS=1") == ["OK"]
    assert emulator.wait_for_state("active", 1.0)
    assert host.command("AT+VSM=128,8000") == ["OK"]

    # Play a greeting full of 0x10 bytes, shielded; the caller presses 1 meanwhile.
    fmt = sample_format(128)
    greeting = bytes(range(256)) * 8                              # 0.256 s, 8 literal 0x10 bytes
    assert host.command("AT+VTX") == ["CONNECT"]
    wire = ENC.escape(greeting)
    host.send(wire[: len(wire) // 2])
    emulator.send_dtmf("1")
    host.send(wire[len(wire) // 2:] + ENC.end_of_stream())
    played = host.until(FINAL, timeout=3.0)
    decoded = DleDecoder(stop_at_etx=False).feed(played)
    assert [e.digit for e in decoded.events if e.kind is EventKind.DTMF] == ["1"]
    assert b"\x101" in played and played.endswith(b"\r\nOK\r\n")
    capture = emulator.capture()
    assert np.array_equal(capture, fmt.decode(greeting))          # every 0x10 arrived once

    # Beep: 900 Hz for 0.2 s; OK comes when the tone is over.
    emulator.clear_capture()
    started = time.monotonic()
    assert host.command("AT+VTS=[900,900,20]") == ["OK"]
    assert time.monotonic() - started >= 0.18
    assert abs(dominant_frequency(emulator.capture()) - 900) < 5

    # Record the caller, who then hangs up: only busy tells.
    assert host.command("AT+VRX") == ["CONNECT"]
    emulator.play_pcm(sine(1000, 0.4))
    rx = RxStream(fmt)
    frames, events = [], []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        chunk = rx.feed(host.take(0.05))
        frames += chunk.frames
        events += chunk.events
    emulator.hangup()
    deadline = time.monotonic() + 1.0
    while EventKind.BUSY not in [e.kind for e in events] and time.monotonic() < deadline:
        chunk = rx.feed(host.take(0.05))
        frames += chunk.frames
        events += chunk.events
    assert EventKind.BUSY in [e.kind for e in events]
    heard = np.frombuffer(b"".join(frames), "<i2")
    loud = heard[np.abs(heard) > 2000]
    assert len(loud) > 1500 and abs(dominant_frequency(heard) - 1000) < 5
    host.send(ENC.abort_receive())
    end = host.until(FINAL)
    chunk = rx.feed(end)
    assert chunk.rest is not None and chunk.rest.endswith(b"\r\nOK\r\n")
    assert host.command("ATH0") == ["OK"]
    assert emulator.state == "idle"
    assert b"NO CARRIER" not in host.seen


def dle_codes(data: bytes) -> list[str]:
    """The codes after every unpaired <DLE> in raw modem bytes (audio in between skipped)."""
    codes, i = [], 0
    while (i := data.find(b"\x10", i)) >= 0 and i + 1 < len(data):
        if data[i + 1] != 0x10:
            codes.append(chr(data[i + 1]))
        i += 2
    return codes


@pytest.mark.parametrize("dialect, repeat, codes", [
    ("cx93001", 1, ["/", "5", "5", "~"]),      # Conexant: shielded, the digit repeated in ~70 ms
    ("usr5637", 1, ["5"]),
    ("usr5637", 2, ["5", "5"]),                # USR sometimes reports one key twice
])
def test_dtmf_from_the_caller_in_each_style(modem, dialect, repeat, codes):
    emulator, host = modem(dialect, dtmf_repeat=repeat)
    voice_call(emulator, host)
    assert host.command("AT+VRX") == ["CONNECT"]
    emulator.send_dtmf("5")
    data = host.take(0.4)
    assert dle_codes(data) == codes
    events = DleDecoder().feed(data).events
    digits = [e.digit for e in events if e.kind is EventKind.DTMF]
    assert digits == ["5"] * repeat
    debouncer = DigitDebouncer()
    assert [d for d in digits if debouncer.accept(d, 0.0)] == ["5"]
    host.send(ENC.abort_receive())
    assert host.until(FINAL).endswith(b"\x10\x03\r\nOK\r\n")


def test_full_duplex_tone_each_way(modem):
    emulator, host = modem("cx93001")
    voice_call(emulator, host, vsm="1,8000")
    fmt = sample_format(1)
    tx, rx = TxStream(fmt), RxStream(fmt)
    emulator.play_pcm(sine(1500, 0.6))
    assert host.command("AT+VTR") == ["CONNECT"]
    ours = sine(1000, 0.6)
    frames = []
    for i in range(0, len(ours), 800):                            # 100 ms at a time, in real time
        host.send(tx.encode_samples(ours[i:i + 800]))
        frames += rx.feed(host.take(0.09)).frames
    host.send(ENC.end_duplex())
    chunk = rx.feed(host.until(FINAL))
    frames += chunk.frames
    assert chunk.rest == b"\r\nOK\r\n"
    heard = np.frombuffer(b"".join(frames), "<i2")
    assert abs(dominant_frequency(heard) - 1500) < 5
    sent = emulator.capture()
    assert len(sent) >= 0.4 * 8000 and abs(dominant_frequency(sent) - 1000) < 5
    assert emulator.stream is None


def test_mu_law_receive_and_16bit_play(modem):
    emulator, host = modem("usr5637")
    voice_call(emulator, host, vsm="131,8000")
    emulator.play_pcm(sine(700, 0.3))
    assert host.command("AT+VRX") == ["CONNECT"]
    rx = RxStream(sample_format(131))
    frames = rx.feed(host.take(0.5)).frames
    host.send(ENC.abort_receive())
    frames += rx.feed(host.until(FINAL)).frames
    heard = np.frombuffer(b"".join(frames), "<i2")
    assert abs(dominant_frequency(heard) - 700) < 5

    assert host.command("AT+VSM=133,8000") == ["OK"]
    emulator.clear_capture()
    samples = np.full(1600, 0x1010, np.int16)                     # both bytes are DLE
    samples[::2] = -4096
    assert host.command("AT+VTX") == ["CONNECT"]
    host.send(TxStream(sample_format(133)).encode_samples(samples) + ENC.end_of_stream())
    assert host.until(FINAL, 3.0).endswith(b"\r\nOK\r\n")
    assert np.array_equal(emulator.capture(), samples)


# ---------------------------------------------------------------- T9 and other stream details

def test_underrun_then_triple_dle_end_as_in_t9(modem):
    emulator, host = modem("cx93001", underrun_grace=0.1)
    host.command("ATZ")
    host.command("AT+FCLASS=8")
    host.command("AT+VLS=1")
    assert host.command("AT+VTX")[-1] == "CONNECT"
    assert host.until(b"\x10u", 1.0) == b"\x10u"
    host.send(DleEncoder(dle_count=3).end_of_stream())            # <DLE><DLE><DLE><ETX>
    assert host.until(FINAL).endswith(b"\r\nOK\r\n")
    assert emulator.capture().tolist() == [(0x10 - 128) * 256]    # the doubled DLE was one sample
    assert host.command("ATH")[-1] == "OK"


def test_flush_discards_what_is_buffered(modem):
    emulator, host = modem("usr5637")
    voice_call(emulator, host, vsm="128,8000")
    assert host.command("AT+VTX") == ["CONNECT"]
    host.send(b"\x90" * 4000)                                     # half a second
    time.sleep(0.1)
    started = time.monotonic()
    host.send(ENC.flush())
    assert host.until(FINAL).endswith(b"\r\nOK\r\n")
    assert time.monotonic() - started < 0.3
    assert 0 < len(emulator.capture()) < 3000


def test_silence_and_quiet_events(modem):
    emulator, host = modem("usr5637")
    voice_call(emulator, host)
    assert host.command("AT+VSD=128,2") == ["OK"]
    assert host.command("AT+VRX") == ["CONNECT"]
    assert host.until(b"\x10s", 1.0).endswith(b"\x10s")           # nobody spoke for 0.2 s
    host.send(ENC.abort_receive())
    host.until(FINAL)
    emulator.play_pcm(sine(500, 0.1))
    assert host.command("AT+VRX") == ["CONNECT"]
    assert host.until(b"\x10q", 1.0).endswith(b"\x10q")           # spoke, then fell quiet
    host.send(ENC.abort_receive())
    host.until(FINAL)


def test_a_command_waits_for_the_tone_before_it(modem):
    emulator, host = modem("cx93001")
    voice_call(emulator, host)
    host.send(b"AT+VTS=[600,0,30]\rATI0\r")
    data = host.until(re.compile(rb"56000\r\n\r\nOK\r\n"), 2.0)
    assert data.index(b"OK") < data.index(b"56000")
    assert emulator.vts_log == ["[600,0,30]"]
    assert host.command("AT+VTS=1,{#,5}") == ["OK"]
    assert emulator.vts_log[-2:] == ["1", "#"]
    assert host.command("AT+VTS=[5000,0,10]") == ["ERROR"]


# ---------------------------------------------------------------- far end hangs up, outbound

def test_remote_hangup_shows_busy_then_dial_tone_and_never_no_carrier(modem):
    emulator, host = modem("cx93001", busy_interval=0.1, busy_count=2)
    voice_call(emulator, host)
    emulator.hangup()
    assert emulator.state == "remote_hangup"
    assert host.until(b"\x10d", 1.0) == b"\x10b\x10b\x10d"
    assert host.command("ATH0") == ["OK"]
    assert emulator.state == "idle"
    assert b"NO CARRIER" not in host.seen


@pytest.mark.parametrize("dialect", ["usr5637", "cx93001"])
def test_outbound_answered_after_ringback(modem, dialect):
    emulator, host = modem(dialect, ring_interval=0.15, dial_delay=0.05)
    host.command("ATE0")
    host.command("AT+FCLASS=8")
    assert host.command("AT+VRA=2") == ["OK"]                    # ringback gone for 0.2 s: answered
    emulator.set_outbound_outcome("answer", rings=2)
    host.send(b"ATDT5551234\r")
    assert emulator.wait_for_state("dialing", 1.0)
    assert host.until(FINAL, 2.0) == b"\x10r\x10r\r\nOK\r\n"
    assert emulator.state == "active" and emulator.dialed == ["5551234"]
    emulator.play_pcm(sine(800, 0.2))
    assert host.command("AT+VRX") == ["CONNECT"]
    heard = RxStream(sample_format(emulator.sample_format[0])).feed(host.take(0.3)).frames
    assert abs(dominant_frequency(np.frombuffer(b"".join(heard), "<i2")) - 800) < 5
    host.send(ENC.abort_receive())
    host.until(FINAL)


def test_outbound_busy_no_answer_no_dialtone_and_abort(modem):
    emulator, host = modem("usr5637", ring_interval=0.1, dial_delay=0.05)
    host.command("ATE0")
    host.command("AT+FCLASS=8")
    emulator.set_outbound_outcome("busy")
    host.send(b"ATD5551234\r")
    assert host.until(FINAL) == b"\x10b\r\nBUSY\r\n"
    assert emulator.state == "idle"

    emulator.set_outbound_outcome("no_answer")
    assert host.command("ATS7=1") == ["OK"]
    host.send(b"ATD5551234\r")
    answer = host.until(FINAL, 3.0)
    assert answer.endswith(b"\r\nNO ANSWER\r\n") and answer.count(b"\x10r") >= 3
    assert emulator.state == "idle"

    emulator.set_outbound_outcome("no_dialtone")
    host.send(b"ATD5551234\r")
    assert host.until(FINAL) == b"\r\nNO DIALTONE\r\n"

    emulator.set_outbound_outcome("answer", rings=50)
    host.send(b"ATD5551234\r")
    host.until(b"\x10r")
    host.send(b"A")                                               # any character aborts
    assert host.until(FINAL).endswith(b"\r\nNO CARRIER\r\n")
    assert emulator.state == "idle"
    assert emulator.dialed == ["5551234"] * 4


# ---------------------------------------------------------------- ring variants

def test_ring_variants(modem):
    emulator, host = modem("cx93001", late_rings=1)
    host.command("ATE0;+VCID=1")
    emulator.ring("P", None, rings_before_cid=0, max_rings=2)
    data = host.until(re.compile(rb"(RING.*){2}", re.S), 2.0)
    lines = [line.decode() for line in re.split(rb"[\r\n]+", data) if line]
    assert lines == ["DATE = 0117", "TIME = 1452", "NMBR = P", "RING", "RING"]
    assert emulator.wait_for_state("idle", 1.0)                    # the caller gave up

    emulator.ring("5550001111", "ANN")
    host.until(b"RING")
    assert host.command("AT+FCLASS=8;+VLS=1") == ["OK"]
    assert host.until(b"RING", 1.0)                               # a late RING after pick-up
    assert emulator.state == "active"
    assert host.command("ATH0") == ["OK"]
    emulator.ring("5550002222", None)
    host.until(b"RING")
    assert host.command("ATA") == ["VCON"]                        # answered in voice mode


# ---------------------------------------------------------------- USB and faults

def test_inventory_by_id_unplug_and_replug(modem, tmp_path):
    emulator, host = modem("usr5637", by_id_dir=tmp_path / "by-id")
    (row,) = emulator.port_inventory()
    assert row == {"device": emulator.port,
                   "by_id": str(tmp_path / "by-id" / "usb-U.S.Robotics_USB_Modem_0000002-if00"),
                   "vid": "0baf", "pid": "0303", "serial_number": "0000002", "interface": 0,
                   "location": "1-1.3:1.0", "manufacturer": "U.S.Robotics", "product": "USB Modem",
                   "role": "modem"}
    assert os.path.realpath(row["by_id"]) == os.path.realpath(emulator.port)
    inventory = tmp_path / "inventory.json"
    emulator.write_inventory(str(inventory))
    assert load_inventory(inventory)[0].usb_id == "0baf:0303"
    host.command("ATE0")
    old = emulator.port
    replugged = []
    emulator.on_replug(lambda: replugged.append(emulator.port))

    emulator.unplug()
    assert emulator.state == "gone" and emulator.port_inventory() == []
    assert not os.path.lexists(row["by_id"])
    with pytest.raises(serial.SerialException):
        for _ in range(50):
            host.ser.read(10)
            time.sleep(0.01)

    new = emulator.replug()
    assert new != old and replugged == [new]
    assert os.path.realpath(emulator.port_inventory()[0]["by_id"]) == os.path.realpath(new)
    fresh = Host(new)
    try:
        assert fresh.command("ATI0") == ["ATI0", "5601", "OK"]   # powered up again: echo on
    finally:
        fresh.ser.close()


def test_conexant_usb_identity(modem):
    emulator, host = modem("cx93001")
    (row,) = emulator.port_inventory()
    assert (row["vid"], row["pid"], row["manufacturer"], row["serial_number"]) == \
        ("0572", "1329", "Conexant", "24680246")
    assert emulator.by_id_name == "usb-Conexant_USB_Modem_24680246-if00" and row["by_id"] is None


def test_no_answer_slow_and_garbage(modem):
    emulator, host = modem("cx93001")
    host.command("ATE0")
    emulator.no_answer()
    host.send(b"AT\r")
    assert host.take(0.3) == b""
    emulator.no_answer(False)
    assert host.command("AT") == ["OK"]
    emulator.slow(0.3)
    started = time.monotonic()
    assert host.command("AT") == ["OK"]
    assert time.monotonic() - started >= 0.28
    emulator.slow(0)
    emulator.garbage(b"\xff\x00ZZ\x10")
    assert host.take(0.2) == b"\xff\x00ZZ\x10"
    assert ("<", "\xff\x00ZZ\x10") in [(d, t) for _, d, t in emulator.transcript]


def test_hanging_up_does_not_stop_a_ringing_line(modem):
    emulator, host = modem("usr5637", ring_interval=0.15)
    host.command("ATE0")
    emulator.ring(max_rings=None)
    host.until(b"RING")
    assert host.command("ATH0") == ["OK"]
    assert host.until(b"RING", 1.0)                               # the phone keeps ringing
    assert emulator.state == "ringing"
    emulator.hangup()                                             # the caller gives up
    assert emulator.state == "idle"
    host.take(0.2)
    assert b"RING" not in host.take(0.4)


def test_usr_plays_at_7200_samples_per_second(modem):
    emulator, host = modem("usr5637")
    voice_call(emulator, host, vsm="128,7200")
    tone = sine(500, 0.3, rate=7200)
    assert host.command("AT+VTX") == ["CONNECT"]
    host.send(ENC.escape(sample_format(128).encode(tone)) + ENC.end_of_stream())
    assert host.until(FINAL, 2.0).endswith(b"\r\nOK\r\n")
    heard = emulator.capture()                                    # resampled to 8 kHz
    assert abs(len(heard) - 2400) <= 160 and abs(dominant_frequency(heard) - 500) < 5


def test_codec_drives_the_at_session_data_mode(modem):
    """The daemon's path: AtSession raw data mode with RxStream/TxStream as consumer and producer."""
    from gateway.at.session import AtSession
    from gateway.transport.serial_port import open_serial

    emulator, host = modem("cx93001")
    host.ser.close()
    fmt = sample_format(1)

    async def run() -> tuple[np.ndarray, list, list[str]]:
        link = await open_serial(emulator.port)
        session = AtSession(link, ["RING"])
        await session.start()
        try:
            for cmd in ("ATE0", "AT+FCLASS=8", "AT+VSM=1,8000,0,0", "AT+VSD=0,0"):
                await session.command(cmd, 2.0)
            emulator.ring()
            await asyncio.sleep(0.1)
            await session.command("AT+VLS=1", 2.0)
            emulator.play_pcm(sine(1200, 0.3))
            rx = RxStream(fmt)
            frames, events = [], []

            def on_data(chunk: bytes) -> int | None:
                got = rx.feed(chunk)
                frames.extend(got.frames)
                events.extend(got.events)
                return got.end

            await session.start_data("AT+VRX", on_data, 2.0)
            await asyncio.sleep(0.15)
            emulator.send_dtmf("7")
            await asyncio.sleep(0.35)
            done = await session.end_data(ENC.abort_receive(), 2.0, modem_ends_stream=True)
            tx = TxStream(fmt)
            await session.start_data("AT+VTX", lambda chunk: None, 2.0)
            for frame_start in range(0, 2400, 160):
                session.write_data(tx.encode_samples(sine(600, 0.3)[frame_start:frame_start + 160]))
            played = await session.end_data(ENC.end_of_stream(), 3.0, modem_ends_stream=False)
            await session.command("ATH0", 2.0)
            heard = np.frombuffer(b"".join(frames), "<i2")
            return heard, events, [done.final, played.final]
        finally:
            await session.close()

    heard, events, finals = asyncio.run(run())
    assert finals == ["OK", "OK"]
    assert abs(dominant_frequency(heard) - 1200) < 5
    assert [e.digit for e in events if e.kind is EventKind.DTMF] == ["7"]
    assert abs(dominant_frequency(emulator.capture()) - 600) < 5
    assert emulator.state == "idle"
