"""The 20 ms frame model and the tone helpers, checked against sox-generated tones."""

from __future__ import annotations

import math
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.media.frames import (
    FRAME_BYTES,
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SILENCE_FRAME,
    frame_to_array,
    pcm_to_frames,
)
from gateway.media.tones import beep, dominant_frequency, progress_tone, rms_dbfs, sine


def sox_tone(tmp_path: Path, freq: float, seconds: float, gain_db: float = -6.0) -> np.ndarray:
    out = tmp_path / f"tone_{freq:g}.wav"
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-b", "16", "-c", "1", str(out),
         "synth", str(seconds), "sine", str(freq), "gain", str(gain_db)],
        check=True, capture_output=True,
    )
    with wave.open(str(out)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def test_frame_constants() -> None:
    assert (SAMPLE_RATE, FRAME_MS, FRAME_SAMPLES, FRAME_BYTES) == (8000, 20, 160, 320)
    assert SILENCE_FRAME == bytes(320)


def test_pcm_to_frames_pads_last_frame_with_silence() -> None:
    samples = np.arange(1, 162, dtype=np.int16)  # 161 samples: one full frame and one sample
    frames = pcm_to_frames(samples)
    assert [len(f) for f in frames] == [320, 320]
    assert frame_to_array(frames[0]).tolist() == list(range(1, 161))
    assert frames[1][:2] == (161).to_bytes(2, "little") and frames[1][2:] == bytes(318)


def test_pcm_to_frames_exact_multiple_and_empty() -> None:
    assert len(pcm_to_frames(np.ones(320, dtype=np.int16))) == 2
    assert pcm_to_frames(np.zeros(0, dtype=np.int16)) == []


def test_frames_are_little_endian_signed() -> None:
    (frame,) = pcm_to_frames(np.array([0x0102, -2], dtype=np.int16))
    assert frame[:4] == b"\x02\x01\xfe\xff"
    assert frame_to_array(frame)[:2].tolist() == [0x0102, -2]


def test_frame_round_trip_and_writable_copy() -> None:
    tone = sine(1000.0, 0.1)
    frames = pcm_to_frames(tone)
    assert np.array_equal(np.concatenate([frame_to_array(f) for f in frames]), tone)
    arr = frame_to_array(frames[0])
    arr[0] = 7  # callers may edit the array they get
    assert arr.dtype == np.int16 and arr.shape == (160,)


def test_frame_to_array_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="319 bytes"):
        frame_to_array(bytes(319))


def test_pcm_to_frames_type_handling() -> None:
    (frame,) = pcm_to_frames(np.array([70000, -70000], dtype=np.int32))
    assert frame_to_array(frame)[:2].tolist() == [32767, -32768]
    with pytest.raises(TypeError, match="float"):
        pcm_to_frames(np.array([0.1, 0.2]))


@pytest.mark.parametrize("freq", [600.0, 1000.0, 1209.0])
def test_dominant_frequency_of_sox_tones(tmp_path: Path, freq: float) -> None:
    tone = sox_tone(tmp_path, freq, 0.5)
    assert abs(dominant_frequency(tone) - freq) < 2.0
    assert abs(dominant_frequency(tone[:FRAME_SAMPLES]) - freq) < 2.0  # one 20 ms frame is enough


def test_dominant_frequency_picks_the_stronger_tone_and_handles_silence() -> None:
    mix = sine(697.0, 0.2, 0.2).astype(np.int32) + sine(1477.0, 0.2, 0.4)
    assert abs(dominant_frequency(mix) - 1477.0) < 2.0
    assert abs(dominant_frequency(sine(440.0, 0.2, rate=16000), rate=16000) - 440.0) < 2.0
    assert dominant_frequency(np.zeros(800, dtype=np.int16)) == 0.0


def test_sine_length_amplitude_and_frequency() -> None:
    tone = sine(1000.0, 0.5, amplitude=0.25)
    assert tone.dtype == np.int16 and tone.size == 4000
    assert 8000 <= np.abs(tone).max() <= 8192
    assert abs(dominant_frequency(tone) - 1000.0) < 0.5


def test_rms_dbfs_levels(tmp_path: Path) -> None:
    assert rms_dbfs(sine(1000.0, 1.0, amplitude=1.0)) == pytest.approx(-3.01, abs=0.02)
    assert rms_dbfs(sine(1000.0, 1.0, amplitude=0.5)) == pytest.approx(-9.03, abs=0.02)
    assert rms_dbfs(sox_tone(tmp_path, 1000.0, 0.5, gain_db=-20.0)) == pytest.approx(-23.0, abs=0.2)
    assert rms_dbfs(np.zeros(160, dtype=np.int16)) == -math.inf
    assert rms_dbfs(np.zeros(0, dtype=np.int16)) == -math.inf


def test_beep_is_a_faded_1khz_tone() -> None:
    b = beep()
    assert b.dtype == np.int16 and b.size == 2000
    assert abs(dominant_frequency(b) - 1000.0) < 2.0
    assert abs(int(b[0])) < 100 and abs(int(b[-1])) < 100  # ramps, no click
    assert rms_dbfs(b[400:1600]) == pytest.approx(-9.03, abs=0.1)
    assert beep(0.1, 600.0).size == 800 and abs(dominant_frequency(beep(0.1, 600.0)) - 600.0) < 2.0


@pytest.mark.parametrize("region,kind,freqs,on,off", [
    ("eu", "ringback", (425.0,), 1.0, 4.0), ("eu", "busy", (425.0,), 0.5, 0.5),
    ("us", "ringback", (440.0, 480.0), 2.0, 4.0), ("us", "busy", (480.0, 620.0), 0.5, 0.5),
])
def test_progress_tones_have_their_frequencies_and_cadence(region, kind, freqs, on, off) -> None:
    period = progress_tone(kind, region)
    assert period.dtype == np.int16 and period.size == round((on + off) * 8000)
    tone, gap = period[: round(on * 8000)], period[round(on * 8000):]
    assert not gap.any()
    assert -26.0 < rms_dbfs(tone) < -16.0
    spectrum = np.abs(np.fft.rfft(tone.astype(np.float64)))
    bins = np.fft.rfftfreq(tone.size, 1 / 8000)
    peaks = sorted(bins[np.argsort(spectrum)[-len(freqs):]])
    assert np.allclose(peaks, freqs, atol=1.5)


def test_unknown_progress_tone_is_named() -> None:
    with pytest.raises(ValueError, match="'howler'.*'eu'"):
        progress_tone("howler", "eu")
