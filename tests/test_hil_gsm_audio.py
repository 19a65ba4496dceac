"""Call audio of the emulated families: a tone each way through the pty audio side (SIM7600 USB audio,
Quectel serial PCM on the NMEA tty, Huawei voice tty) checked by FFT, each family's switch-on timing
rule, and a sound-card style AudioSide for the analog SIM800 and Quectel UAC mode."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import serial

from gateway.media.tones import dominant_frequency, sine
from hil.gsm.audio import AudioSide
from tests.test_hil_gsm_at import make  # noqa: F401  (fixture)

FRAME = 320


class MemorySide:
    """An AudioSide kept in memory, standing in for a USB sound card wired to the module."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down: list[bytes] = []
        self.up = bytearray()
        self.opened = self.closed = 0

    def open(self) -> None:
        self.opened += 1

    def close(self) -> None:
        self.closed += 1

    def write_downlink(self, pcm: bytes) -> None:
        with self.lock:
            self.down.append(pcm)

    def read_uplink(self) -> bytes:
        with self.lock:
            data, self.up = bytes(self.up), bytearray()
        return data

    def describe(self) -> dict:
        return {"audio_device": "memory card"}

    def say(self, samples: np.ndarray) -> None:
        with self.lock:
            self.up += samples.astype("<i2").tobytes()

    def heard(self) -> np.ndarray:
        with self.lock:
            frames = list(self.down)
        assert all(len(frame) == FRAME for frame in frames)
        return np.frombuffer(b"".join(frames), "<i2")

    def forget(self) -> None:
        with self.lock:
            self.down.clear()


def read_for(port: serial.Serial, seconds: float) -> np.ndarray:
    data = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data += port.read(4096)
    return np.frombuffer(bytes(data[: len(data) // 2 * 2]), "<i2")


def wait_capture(emu, count: int, timeout: float = 2.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while len(emu.capture()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return emu.capture()


def answer_with_audio(family: str, emu, at) -> str:
    """Answer an incoming call the family's way; returns the tty that carries the PCM."""
    if family == "quectel_ec25":
        at.command("ATE0")
        emu.ring()
        at.until("RING")
        assert at.command("AT+QPCMV=0;+QPCMV=1,0;A") == ["OK"]       # PCM before ATA
        return emu.ports()["nmea_port"]
    at.command("ATE0")
    emu.ring()
    at.until("RING")
    assert at.command("ATA")[-1] == "OK"
    enable = {"simcom_sim7600": "AT+CPCMREG=1", "huawei_e1752": "AT^DDSETEX=2"}[family]
    assert at.command(enable)[-1] == "OK"                            # after ATA
    return emu.audio_port


@pytest.mark.parametrize("family", ["simcom_sim7600", "quectel_ec25", "huawei_e1752"])
def test_tone_each_way_through_the_pty_audio_side(make, family):
    emu = make(family)
    at = make.link(emu)
    port = answer_with_audio(family, emu, at)
    assert emu.pcm_enabled
    audio = serial.Serial(port, timeout=0.02)
    try:
        audio.reset_input_buffer()
        idle = read_for(audio, 0.2)
        assert len(idle) and not np.any(idle)                        # silence frames keep the pace
        emu.play_tone(1000, 0.8)
        downlink = read_for(audio, 0.6)
        sounding = downlink[np.flatnonzero(np.abs(downlink) > 100)[0]:][:3200]
        assert len(sounding) == 3200
        assert abs(dominant_frequency(sounding) - 1000) < 5

        emu.clear_capture()
        audio.write(sine(600, 0.4, amplitude=0.4).astype("<i2").tobytes())
        uplink = wait_capture(emu, 3200)
        assert len(uplink) == 3200
        assert abs(dominant_frequency(uplink) - 600) < 5
    finally:
        audio.close()
    emu.hangup()
    assert emu.wait_for_state("idle", 1) and not emu.pcm_enabled


def test_quectel_pcm_switched_on_after_ata_gives_no_audio(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    at.command("ATE0")
    emu.ring()
    at.until("RING")
    assert at.command("ATA") == ["OK"]
    assert at.command("AT+QPCMV=1,0") == ["OK"]                      # too late for this call
    assert at.command("AT+QPCMV?") == ["+QPCMV: 1,0", "OK"]
    assert not emu.pcm_enabled
    nmea = serial.Serial(emu.ports()["nmea_port"], timeout=0.02)
    try:
        nmea.reset_input_buffer()
        emu.play_tone(1000, 0.3)
        assert len(read_for(nmea, 0.2)) == 0
    finally:
        nmea.close()
    assert at.command("ATH") == ["OK"]
    emu.set_outbound_outcome("answer", alert_after=0, after=0.05)
    assert at.command("ATD+15550001;") == ["OK"]                     # QPCMV still on: this call has audio
    assert emu.wait_for_state("active", 1)
    assert emu.pcm_enabled


def test_quectel_gnss_sentences_share_the_nmea_tty(make):
    emu = make("quectel_ec25")
    at = make.link(emu)
    at.command("ATE0")
    nmea = serial.Serial(emu.ports()["nmea_port"], timeout=0.05)
    try:
        assert at.command("AT+QGPS=1") == ["OK"]
        text = bytes(read_for(nmea, 1.2).tobytes()).decode("latin-1")
        assert "$GPGSV,1,1,00*79\r\n" in text
        assert at.command('AT+QGPSCFG="outport","none"') == ["OK"]
        nmea.reset_input_buffer()
        time.sleep(0.05)
        assert len(read_for(nmea, 1.1)) == 0
    finally:
        nmea.close()


def test_huawei_ddsetex_before_the_call_only_does_nothing(make):
    emu = make("huawei_e1752", chatter_interval=60)
    at = make.link(emu)
    at.command("ATE0")
    assert at.command("AT^DDSETEX=2") == ["OK"]
    emu.ring()
    at.until("RING")
    assert at.command("AT^DDSETEX=2") == ["OK"]                      # while ringing: not yet
    assert at.command("ATA") == ["OK"]
    assert not emu.pcm_enabled
    assert at.command("AT^DDSETEX=2") == ["^CONN:1,0", "OK"]
    assert emu.pcm_enabled


def test_sim800_analog_audio_through_a_sound_card_side(make):
    card = MemorySide()
    assert isinstance(card, AudioSide)
    emu = make("simcom_sim800", audio_side=card)
    at = make.link(emu)
    at.command("ATE0")
    time.sleep(0.15)
    assert len(card.heard()) == 0                                     # nothing sent down between calls
    assert emu.ports()["audio_device"] == "memory card" and "audio_port" not in emu.ports()
    card.say(sine(900, 0.2))                                          # nobody on the line: not captured
    emu.ring()
    at.until("RING")
    assert at.command("ATA") == ["OK"]
    assert emu.pcm_enabled                                            # analog: no switch-on command
    card.forget()
    emu.play_tone(1000, 0.6)
    time.sleep(0.5)
    heard = card.heard()
    sounding = heard[np.flatnonzero(np.abs(heard) > 100)[0]:][:2400]
    assert abs(dominant_frequency(sounding) - 1000) < 5
    emu.clear_capture()
    card.say(sine(600, 0.3))
    captured = wait_capture(emu, 2400)
    assert len(captured) == 2400 and abs(dominant_frequency(captured) - 600) < 5
    emu.unplug()
    emu.replug()
    assert (card.opened, card.closed) == (2, 1)


def test_sim800_without_a_sound_card_has_no_reachable_audio(make):
    emu = make("simcom_sim800")
    at = make.link(emu)
    at.command("ATE0")
    emu.ring()
    at.until("RING")
    assert at.command("ATA") == ["OK"]
    assert emu.state == "active" and not emu.pcm_enabled
    assert "audio_port" not in emu.ports() and "audio_device" not in emu.ports()
    assert [row["role"] for row in emu.port_inventory()] == ["at"]


def test_quectel_uac_mode_uses_the_sound_card_side(make):
    card = MemorySide()
    emu = make("quectel_ec25", audio_side=card)
    at = make.link(emu)
    at.command("ATE0")
    assert at.command('AT+QCFG="usbcfg"') == ['+QCFG: "usbcfg",0x2C7C,0x0125,1,1,1,1,1,0,1', "OK"]
    emu.ring()
    at.until("RING")
    assert at.command("AT+QPCMV=1,2;A") == ["OK"]
    assert emu.pcm_enabled
    card.forget()
    emu.play_tone(700, 0.5)
    time.sleep(0.4)
    heard = card.heard()
    assert abs(dominant_frequency(heard[np.flatnonzero(np.abs(heard) > 100)[0]:][:1600]) - 700) < 5


def test_inband_dtmf_reaches_the_downlink(make):
    emu = make("simcom_sim7600")
    at = make.link(emu)
    answer_with_audio("simcom_sim7600", emu, at)
    audio = serial.Serial(emu.audio_port, timeout=0.02)
    try:
        audio.reset_input_buffer()
        emu.send_dtmf("5")
        samples = read_for(audio, 0.3)
        tone = samples[np.flatnonzero(np.abs(samples) > 100)[0]:][:800].astype(float)
        spectrum = np.abs(np.fft.rfft(tone * np.hanning(len(tone))))
        freqs = np.fft.rfftfreq(len(tone), 1 / 8000)
        peaks = sorted(freqs[np.argsort(spectrum)[-2:]])
        assert abs(peaks[0] - 770) < 20 and abs(peaks[1] - 1336) < 20
    finally:
        audio.close()
    assert at.until("+RXDTMF") == ["+RXDTMF: 5"]
