"""CallRecorder: channel layout, header kept valid while recording, survival of kill -9, repair()."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.media.frames import pcm_to_frames
from gateway.media.recorder import CallRecorder
from gateway.media.tones import dominant_frequency, rms_dbfs, sine
from gateway.media.wavfile import WavError, read_wav

REPO = Path(__file__).resolve().parents[1]


def read_channels(path: Path) -> tuple[Any, np.ndarray]:
    with wave.open(str(path)) as w:
        params = w.getparams()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return params, data.reshape(-1, params.nchannels)


def tone_frames(freq: float, seconds: float) -> list[bytes]:
    return pcm_to_frames(sine(freq, seconds, amplitude=0.3))


def test_stereo_puts_caller_left_and_agent_right(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    rec = CallRecorder(path)
    for caller, agent in zip(tone_frames(600.0, 1.5), tone_frames(1000.0, 1.5)):
        rec.write(caller, agent)
    assert rec.duration == pytest.approx(1.5)
    assert rec.close() == pytest.approx(1.5)
    params, audio = read_channels(path)
    assert (params.nchannels, params.sampwidth, params.framerate, params.nframes) == (2, 2, 8000, 12000)
    assert abs(dominant_frequency(audio[:, 0]) - 600.0) < 2.0
    assert abs(dominant_frequency(audio[:, 1]) - 1000.0) < 2.0
    assert np.array_equal(audio[:, 0], sine(600.0, 1.5, amplitude=0.3))


def test_none_is_silence_on_that_side(tmp_path: Path) -> None:
    path = tmp_path / "half.wav"
    with CallRecorder(path) as rec:
        for frame in tone_frames(600.0, 0.5):
            rec.write(frame, None)
        rec.write(None, None)
    _, audio = read_channels(path)
    assert audio.shape == (4160, 2)
    assert rms_dbfs(audio[:, 1]) == -np.inf and rms_dbfs(audio[-160:, 0]) == -np.inf
    assert rms_dbfs(audio[:4000, 0]) > -20.0


def test_mono_mixes_both_sides(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    rec = CallRecorder(path, stereo=False)
    for caller, agent in zip(tone_frames(600.0, 1.0), tone_frames(1000.0, 1.0)):
        rec.write(caller, agent)
    rec.close()
    params, audio = read_channels(path)
    assert (params.nchannels, params.nframes) == (1, 8000)
    expected = sine(600.0, 1.0, amplitude=0.3).astype(np.int32) + sine(1000.0, 1.0, amplitude=0.3)
    assert np.array_equal(audio[:, 0], expected)
    loud = CallRecorder(tmp_path / "clip.wav", stereo=False)
    full = np.full(160, 30000, dtype="<i2").tobytes()
    loud.write(full, full)
    loud.close()
    assert read_channels(tmp_path / "clip.wav")[1].max() == 32767


def test_file_is_a_valid_wav_while_recording(tmp_path: Path) -> None:
    path = tmp_path / "live.wav"
    rec = CallRecorder(path)
    assert read_channels(path)[0].nframes == 0  # header written at open
    for i, frame in enumerate(tone_frames(600.0, 2.5)):
        rec.write(frame, frame)
        if i == 74:  # 1.5 s in: the first second has been appended and declared
            params, audio = read_channels(path)
            assert params.nframes == 8000 and audio.shape == (8000, 2)
    assert read_channels(path)[0].nframes == 16000  # 2.5 s written, 2 s on disk
    rec.close()
    assert read_channels(path)[0].nframes == 20000
    assert rec.close() == 2.5  # closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        rec.write(None, None)


def test_rejects_wrong_frame_size(tmp_path: Path) -> None:
    with CallRecorder(tmp_path / "x.wav") as rec, pytest.raises(ValueError, match="agent frame is 160 bytes"):
        rec.write(None, bytes(160))


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from gateway.media.frames import pcm_to_frames
    from gateway.media.recorder import CallRecorder
    from gateway.media.tones import sine
    rec = CallRecorder(Path(sys.argv[1]))
    for caller, agent in zip(pcm_to_frames(sine(600.0, 2.5)), pcm_to_frames(sine(1000.0, 2.5))):
        rec.write(caller, agent)
    print("recorded", flush=True)
    sys.stdin.read()  # wait here until killed
""")


def test_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "recorded"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdin.close()
        child.stdout.close()
    params, audio = read_channels(path)
    assert params.nframes / params.framerate >= 1.4
    assert abs(dominant_frequency(audio[:, 0]) - 600.0) < 2.0
    assert abs(dominant_frequency(audio[:, 1]) - 1000.0) < 2.0
    assert CallRecorder.repair(path) == params.nframes / 8000  # nothing more reached the disk


def test_repair_fixes_zeroed_sizes_and_drops_partial_frame(tmp_path: Path) -> None:
    path = tmp_path / "crashed.wav"
    rec = CallRecorder(path)
    for frame in tone_frames(1000.0, 1.3):
        rec.write(frame, None)
    rec.close()
    with open(path, "r+b") as f:
        f.seek(4)
        f.write(bytes(4))
        f.seek(40)
        f.write(bytes(4))
        f.seek(0, os.SEEK_END)
        f.write(b"\x01\x02\x03")  # half of a stereo sample frame, as a kill mid-write could leave
    with pytest.raises(wave.Error):  # a zero RIFF size makes the wave module give up
        read_channels(path)
    assert CallRecorder.repair(path) == pytest.approx(1.3)
    assert path.stat().st_size == 44 + 10400 * 4
    params, audio = read_channels(path)
    assert params.nframes == 10400 and abs(dominant_frequency(audio[:, 0]) - 1000.0) < 2.0
    riff_size = struct.unpack("<I", path.read_bytes()[4:8])[0]
    assert riff_size == path.stat().st_size - 8


def test_repair_walks_other_chunk_layouts(tmp_path: Path) -> None:
    # sox writes 32-bit float with an 18-byte fmt and a fact chunk before data
    path = tmp_path / "float.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-b", "32", "-e", "floating-point", "-c", "1", str(path),
                    "synth", "0.5", "sine", "1000"], check=True)
    raw = bytearray(path.read_bytes())
    data_at = raw.index(b"data")
    raw[4:8] = bytes(4)
    raw[data_at + 4 : data_at + 8] = bytes(4)
    path.write_bytes(bytes(raw))
    assert CallRecorder.repair(path) == pytest.approx(0.5)
    x = read_wav(path)
    assert x.size == 4000 and abs(dominant_frequency(x) - 1000.0) < 2.0


def test_repair_rejects_non_wav(tmp_path: Path) -> None:
    path = tmp_path / "log.wav"
    path.write_text("not audio at all")
    with pytest.raises(WavError, match=r"log\.wav: not a RIFF/WAVE file"):
        CallRecorder.repair(path)
