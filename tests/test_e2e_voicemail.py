"""Voicemail through the real daemon on an emulated SIM7600: a caller leaves a message ended by silence,
one ended by `#`, one says nothing, and the daemon is killed (-9) in the middle of a fourth; each contact
record and message file is checked against the speech the emulator played as the caller."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
import wave

import numpy as np
import pytest

from gateway.media.frames import SAMPLE_RATE
from gateway.media.tones import dominant_frequency, rms_dbfs
from gateway.media.vad import segments_of
from gateway.media.voicemail import MARGIN_SECONDS, partial_path
from gateway.media.wavfile import read_wav
from hil.sim7600 import Sim7600Emulator
from tests.stack import free_port, start_daemon, stop_daemon, wait_ready, write_config

SILENCE_SECONDS = 1.0
FLOW = {
    "Version": "2019-10-30",
    "StartAction": "voicemail",
    "Actions": [
        {"Identifier": "voicemail", "Type": "Callgate.RecordVoicemail",
         "Parameters": {"Text": "Message.", "SilenceSeconds": str(SILENCE_SECONDS), "MaxLengthSeconds": 20},
         "Transitions": {"Errors": [{"ErrorType": "NoSpeech", "NextAction": "nothing-heard"}]}},
        {"Identifier": "nothing-heard", "Type": "MessageParticipant", "Parameters": {"Text": "Bye."},
         "Transitions": {"NextAction": "bye"}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
    ],
}
# kept length vs true speech: margins on both sides, plus where the VAD puts the edges in line audio
LENGTH_TOLERANCE = 0.3


def _speech(folder, text: str) -> np.ndarray:
    path = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True, timeout=30)
    pcm = read_wav(path)
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
    return pcm[loud[0] : loud[-1] + 1]


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return _speech(tmp_path_factory.mktemp("vm-speech"), "Hi, this is Tom. Call me back about the boiler, please.")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vm-stack")
    emulator = Sim7600Emulator(ring_interval=2.0)
    emulator.start()
    flow = tmp / "flow.json"
    flow.write_text(json.dumps(FLOW))
    data_dir, config = tmp / "data", tmp / "callgate.toml"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=data_dir, broker=None, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": emulator.at_port,
                         "audio_port": emulator.audio_port, "flow": str(flow), "number": "+15550000000"}])
    log = tmp / "daemon.log"
    proc = start_daemon(config, data_dir, log)
    state = {"emulator": emulator, "proc": proc, "data_dir": data_dir, "config": config, "log": log, "tmp": tmp}
    try:
        wait_ready(data_dir, proc, log)
        yield state
    finally:
        stop_daemon(state["proc"])
        emulator.stop()


def _log(stack) -> str:
    return stack["log"].read_text(errors="replace")[-3000:]


def _record(stack, caller: str, timeout: float = 10.0) -> dict:
    """The caller's contact record once it is finished (ended, voicemail no longer being recorded)."""
    db = stack["data_dir"] / "contacts.db"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM contacts WHERE caller = ?", (caller,)).fetchone()
        if row is not None and row["ended_at"] is not None and row["voicemail_status"] not in (None, "recording"):
            return dict(row)
        time.sleep(0.1)
    raise AssertionError(f"no finished record for {caller}; daemon log:\n{_log(stack)}")


def _answer_and_wait_for_beep(stack, caller: str) -> None:
    emu = stack["emulator"]
    emu.clear_capture()
    emu.ring(caller)
    assert emu.wait_for_state("active", 10), f"call not answered:\n{_log(stack)}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        heard = emu.capture()
        blocks = heard[: heard.size - heard.size % 400].reshape(-1, 400)
        if any(rms_dbfs(b) > -20 and abs(dominant_frequency(b) - 1000) < 20 for b in blocks):
            time.sleep(0.3)  # the rest of the 0.25 s beep
            return
        time.sleep(0.05)
    raise AssertionError(f"no beep heard after the greeting:\n{_log(stack)}")


def _hung_up_by_gateway(stack, timeout: float) -> float:
    emu = stack["emulator"]
    assert emu.wait_for_state("idle", timeout), f"gateway did not hang up:\n{_log(stack)}"
    return time.monotonic()


def _message(record: dict) -> np.ndarray:
    with wave.open(record["voicemail_path"]) as w:
        assert (w.getnchannels(), w.getframerate()) == (1, SAMPLE_RATE)
        assert abs(w.getnframes() / SAMPLE_RATE - record["voicemail_seconds"]) < 0.01
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_message_ended_by_silence(stack, speech):
    emu, said = stack["emulator"], speech.size / SAMPLE_RATE
    _answer_and_wait_for_beep(stack, "+15551110001")
    emu.play_pcm(speech)
    speech_done = time.monotonic() + said
    latency = _hung_up_by_gateway(stack, said + 8) - speech_done
    # the message ends SilenceSeconds after the speech, then the call is hung up
    assert SILENCE_SECONDS - 0.1 <= latency <= SILENCE_SECONDS + 1.5, latency
    rec = _record(stack, "+15551110001")
    assert rec["voicemail_status"] == "recorded", rec
    assert abs(rec["voicemail_seconds"] - (said + 2 * MARGIN_SECONDS)) <= LENGTH_TOLERANCE, (rec, said)
    assert abs(rec["voicemail_speech_seconds"] - said) <= LENGTH_TOLERANCE, (rec, said)
    assert rec["voicemail_path"].endswith(f"/voicemail/{time.strftime('%Y-%m-%d', time.gmtime(rec['initiated_at']))}"
                                          f"/{rec['contact_id']}.wav")
    assert not partial_path(rec["voicemail_path"]).exists()
    message = _message(rec)
    found = segments_of(message, aggressiveness=3, hangover_ms=400)
    assert len(found) >= 1 and abs((found[-1].end - found[0].start) - said) <= LENGTH_TOLERANCE, found
    assert found[0].start <= MARGIN_SECONDS + 0.15  # leading silence trimmed
    assert message.size / SAMPLE_RATE - found[-1].end <= MARGIN_SECONDS + 0.15  # trailing silence trimmed
    path = json.loads(rec["flow_path"])
    assert [(s["id"], s["branch"]) for s in path] == [("voicemail", "voicemail")]


def test_message_ended_by_hash(stack, speech):
    emu = stack["emulator"]
    _answer_and_wait_for_beep(stack, "+15551110002")
    talk = np.concatenate([speech, np.zeros(SAMPLE_RATE // 5, np.int16), speech])  # ~6 s, no pause long enough
    emu.play_pcm(talk)
    started = time.monotonic()
    time.sleep(2.5)
    emu.send_dtmf("#")
    hung_up = _hung_up_by_gateway(stack, 5)
    assert hung_up - started < talk.size / SAMPLE_RATE - 1.5  # well before the caller stopped talking
    rec = _record(stack, "+15551110002")
    assert rec["voicemail_status"] == "recorded", rec
    assert 1.8 <= rec["voicemail_seconds"] <= 3.2, rec
    assert rec["voicemail_speech_seconds"] <= rec["voicemail_seconds"]
    message = _message(rec)
    assert rms_dbfs(message) > -30
    # the `#` tone is not in the message: no 941 + 1477 Hz pair at its end
    tail = message[-800:]
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(tail.size)))
    freqs = np.fft.rfftfreq(tail.size, 1 / SAMPLE_RATE)
    dtmf_band = spectrum[(np.abs(freqs - 941) < 15) | (np.abs(freqs - 1477) < 15)].max()
    assert dtmf_band < 0.5 * spectrum.max() or rms_dbfs(tail) < -40


def test_no_speech_is_discarded_and_takes_the_no_speech_branch(stack):
    _answer_and_wait_for_beep(stack, "+15551110003")
    _hung_up_by_gateway(stack, SILENCE_SECONDS + 8)
    rec = _record(stack, "+15551110003")
    assert rec["voicemail_status"] == "no_speech" and rec["voicemail_path"] is None
    assert rec["voicemail_seconds"] == 0.0
    path = json.loads(rec["flow_path"])
    assert [(s["id"], s["branch"]) for s in path] == [("voicemail", "NoSpeech"), ("nothing-heard", "next"),
                                                      ("bye", "disconnected")]
    assert not list((stack["data_dir"] / "voicemail").rglob(f"{rec['contact_id']}*"))


def test_kill_9_mid_message_is_finished_at_the_next_start(stack, speech):
    emu = stack["emulator"]
    _answer_and_wait_for_beep(stack, "+15551110004")
    emu.play_pcm(np.concatenate([speech, speech]))
    time.sleep(2.6)  # two seconds of the message on disk
    stack["proc"].send_signal(signal.SIGKILL)
    stack["proc"].wait(5)
    db = stack["data_dir"] / "contacts.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        status, vm_path = conn.execute("SELECT voicemail_status, voicemail_path FROM contacts WHERE caller = ?",
                                       ("+15551110004",)).fetchone()
    assert status == "recording"
    with wave.open(str(partial_path(vm_path))) as w:  # valid WAV as the crash left it
        assert w.getnframes() / SAMPLE_RATE >= 1.5

    (stack["data_dir"] / "daemon.json").unlink(missing_ok=True)
    stack["log"] = stack["tmp"] / "daemon2.log"
    stack["proc"] = start_daemon(stack["config"], stack["data_dir"], stack["log"])
    wait_ready(stack["data_dir"], stack["proc"], stack["log"])
    rec = _record(stack, "+15551110004")
    assert rec["disconnect_reason"] == "gateway_restart"
    assert rec["voicemail_status"] == "recorded" and rec["voicemail_path"] == vm_path
    assert not partial_path(vm_path).exists()
    message = _message(rec)
    assert 1.2 <= rec["voicemail_seconds"] <= 3.2 and rec["voicemail_speech_seconds"] >= 1.0, rec
    assert rms_dbfs(message) > -30
    assert emu.wait_for_state("idle", 10), "the call the killed daemon left up is hung up after the restart"
