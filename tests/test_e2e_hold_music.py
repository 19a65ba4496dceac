"""Hold music from a file: a caller waiting in a queue with `hold_music` hears that file, looped;
a hold_music that is not a playable WAV is a config error naming the key."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from gateway.config import ConfigError, load_config
from gateway.media.tones import dominant_frequency, rms_dbfs
from hil.sim7600 import Sim7600Emulator
from tests.stack import free_port, start_daemon, stop_daemon, wait_ready, write_config

FLOW = {
    "Version": "2019-10-30", "StartAction": "queue",
    "Actions": [
        {"Identifier": "queue", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "music"},
         "Transitions": {"NextAction": "transfer"}},
        {"Identifier": "transfer", "Type": "TransferContactToQueue", "Parameters": {},
         "Transitions": {"Errors": [{"NextAction": "bye", "ErrorType": "QueueAtCapacity"}]}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
    ],
}


def _config(tmp_path, emu, music: str):
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(FLOW))
    config = tmp_path / "callgate.toml"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=tmp_path / "data", broker=None, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": emu.at_port if emu else "/dev/null",
                         "audio_port": emu.audio_port if emu else "/dev/null", "flow": str(flow)}],
                 extra=f'[[queues]]\nid = "music"\nname = "Music"\nhold_music = "{music}"\n')
    return config


def test_waiting_caller_hears_the_queues_hold_music_file(tmp_path):
    music = tmp_path / "music.wav"   # 16 kHz, so it is converted on the way in
    subprocess.run(["sox", "-n", "-r", "16000", "-b", "16", str(music), "synth", "1.5", "sine", "440"], check=True)
    emu = Sim7600Emulator(ring_interval=1.0)
    emu.start()
    config = _config(tmp_path, emu, str(music))
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(config, tmp_path / "data", log_path)
    try:
        wait_ready(tmp_path / "data", proc, log_path)
        emu.ring("+15551230777")
        assert emu.wait_for_state("active", 10), log_path.read_text()[-3000:]
        time.sleep(1.0)
        emu.clear_capture()                 # drop what came before the caller was queued
        time.sleep(4.0)                     # longer than the file: it loops
        heard = emu.capture()
        assert heard.size > 8000 * 3, heard.size
        assert rms_dbfs(heard) > -30.0
        assert abs(dominant_frequency(heard) - 440.0) < 3.0
        emu.hangup()
    finally:
        code = stop_daemon(proc)
        emu.stop()
    assert code == 0, log_path.read_text()[-3000:]


def test_hold_music_that_is_not_a_wav_is_a_config_error(tmp_path):
    bad = tmp_path / "music.wav"
    bad.write_text("not audio")
    config = _config(tmp_path, None, str(bad))
    with pytest.raises(ConfigError, match=r"queues\[1\]\.hold_music.*music\.wav"):
        load_config(config)
