"""read_wav/write_wav/resample on WAV files made by sox in every common layout, and on broken ones."""

from __future__ import annotations

import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.media.tones import dominant_frequency, rms_dbfs, sine
from gateway.media.wavfile import WavError, read_wav, resample, write_wav

EDGE = 400  # samples skipped at each end at 8 kHz: the filter's ramp-in around the sox tone's hard edges


def sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True)


def sox_wav(path: Path, fmt: list[str], *synth: str) -> Path:
    sox("-n", *fmt, str(path), "synth", *synth)
    return path


def tone_level_db(x: np.ndarray, freq: float, rate: int = 8000) -> float:
    """Level of one frequency component, in dB relative to full-scale amplitude."""
    t = np.arange(x.size) / rate
    amplitude = 2.0 * abs(np.sum(x * np.exp(-2j * np.pi * freq * t))) / x.size
    return 20 * np.log10(amplitude / 32768.0)


def middle(x: np.ndarray) -> np.ndarray:
    return x[EDGE:-EDGE]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("pcm16_22050", ["-r", "22050", "-b", "16", "-e", "signed-integer", "-c", "1"]),
        ("pcm8_unsigned", ["-r", "8000", "-b", "8", "-e", "unsigned-integer", "-c", "1"]),
        ("pcm24_48000", ["-r", "48000", "-b", "24", "-e", "signed-integer", "-c", "1"]),
        ("pcm32_11025", ["-r", "11025", "-b", "32", "-e", "signed-integer", "-c", "1"]),
        ("float32_16000", ["-r", "16000", "-b", "32", "-e", "floating-point", "-c", "1"]),
        ("float64_8000", ["-r", "8000", "-b", "64", "-e", "floating-point", "-c", "1"]),
        ("ulaw_8000", ["-r", "8000", "-e", "mu-law", "-c", "1"]),
        ("alaw_16000", ["-r", "16000", "-e", "a-law", "-c", "1"]),
    ],
)
def test_formats_come_out_8khz_int16_with_the_right_tone(tmp_path: Path, name: str, fmt: list[str]) -> None:
    path = sox_wav(tmp_path / f"{name}.wav", fmt, "1", "sine", "1000", "gain", "-6")
    x = read_wav(path)
    assert x.dtype == np.int16 and x.ndim == 1 and x.size == 8000
    assert abs(dominant_frequency(x) - 1000.0) < 2.0
    assert rms_dbfs(middle(x)) == pytest.approx(-9.0, abs=0.5)  # full-scale sine -3 dB, minus 6


def test_stereo_44100_is_mixed_to_mono(tmp_path: Path) -> None:
    # sox puts one synth tone per channel: 600 Hz left, 1209 Hz right
    path = sox_wav(tmp_path / "st.wav", ["-r", "44100", "-b", "16", "-c", "2"], "1", "sine", "600", "sine", "1209")
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 44100)
        channels = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    left_db = tone_level_db(channels[:, 0].astype(np.float64), 600.0, rate=44100)
    right_db = tone_level_db(channels[:, 1].astype(np.float64), 1209.0, rate=44100)
    x = middle(read_wav(path).astype(np.float64))
    assert x.size == 8000 - 2 * EDGE
    # averaging the two channels halves each tone: 6 dB below its channel
    assert tone_level_db(x, 600.0) == pytest.approx(left_db - 6.02, abs=0.3)
    assert tone_level_db(x, 1209.0) == pytest.approx(right_db - 6.02, abs=0.3)


def test_6khz_tone_at_44100_does_not_alias(tmp_path: Path) -> None:
    ref = read_wav(sox_wav(tmp_path / "ref.wav", ["-r", "44100", "-b", "16", "-c", "1"], "1", "sine", "1000", "gain", "-6"))
    high = read_wav(sox_wav(tmp_path / "high.wav", ["-r", "44100", "-b", "16", "-c", "1"], "1", "sine", "6000", "gain", "-6"))
    relative = rms_dbfs(middle(high)) - rms_dbfs(middle(ref))
    assert relative < -60.0  # a decimator without a low-pass leaves the 2 kHz fold at about 0 dB
    assert tone_level_db(middle(high).astype(np.float64), 2000.0) < -90.0


def test_passband_is_flat_to_3400_hz(tmp_path: Path) -> None:
    for freq in (300, 3000, 3400):
        x = read_wav(sox_wav(tmp_path / f"p{freq}.wav", ["-r", "44100", "-b", "16", "-c", "1"], "1", "sine", str(freq), "gain", "-6"))
        assert rms_dbfs(middle(x)) == pytest.approx(-9.0, abs=0.3), freq


def test_other_target_rate(tmp_path: Path) -> None:
    path = sox_wav(tmp_path / "a.wav", ["-r", "8000", "-b", "16", "-c", "1"], "0.5", "sine", "1000")
    x = read_wav(path, rate=16000)
    assert x.size == 8000 and abs(dominant_frequency(x, rate=16000) - 1000.0) < 2.0


def test_8khz_16bit_mono_is_read_unchanged(tmp_path: Path) -> None:
    tone = sine(697.0, 0.3)
    write_wav(tmp_path / "t.wav", tone)
    assert np.array_equal(read_wav(tmp_path / "t.wav"), tone)


def test_streamed_wav_with_overstated_size(tmp_path: Path) -> None:
    # written to a pipe, sox cannot seek back, so the header claims about 2 GB of data
    proc = subprocess.run(
        ["sox", "-n", "-r", "8000", "-b", "16", "-c", "1", "-t", "wav", "-", "synth", "0.5", "sine", "1000"],
        check=True, capture_output=True,
    )
    path = tmp_path / "piped.wav"
    path.write_bytes(proc.stdout)
    assert struct.unpack_from("<I", proc.stdout, 40)[0] > 1 << 30
    x = read_wav(path)
    assert x.size == 4000 and abs(dominant_frequency(x) - 1000.0) < 2.0


def test_write_wav_mono_and_stereo_are_read_by_sox(tmp_path: Path) -> None:
    write_wav(tmp_path / "m.wav", sine(1000.0, 0.5))
    left, right = sine(600.0, 0.25), sine(1000.0, 0.25)
    write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1).reshape(-1), rate=8000, channels=2)
    info = subprocess.run(["soxi", str(tmp_path / "s.wav")], check=True, capture_output=True, text=True).stdout
    assert "Channels       : 2" in info and "Sample Rate    : 8000" in info and "16-bit" in info
    sox(str(tmp_path / "s.wav"), str(tmp_path / "left.wav"), "remix", "1")
    assert abs(dominant_frequency(read_wav(tmp_path / "left.wav")) - 600.0) < 2.0
    with wave.open(str(tmp_path / "m.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 8000, 4000)
    with pytest.raises(ValueError, match="whole frames"):
        write_wav(tmp_path / "odd.wav", np.zeros(3, dtype=np.int16), channels=2)


def test_resample_api() -> None:
    tone = sine(1000.0, 1.0)
    up = resample(tone, 8000, 44100)
    assert up.dtype == np.int16 and up.size == 44100
    assert abs(dominant_frequency(up, rate=44100) - 1000.0) < 2.0
    back = resample(up, 44100, 8000)
    err = back[EDGE:-EDGE].astype(np.float64) - tone[EDGE:-EDGE]
    assert rms_dbfs(err) < rms_dbfs(tone) - 60.0  # round trip through 44.1 kHz is nearly transparent
    floats = resample(np.array([0.5] * 800), 8000, 16000)
    assert floats.dtype == np.float64 and np.allclose(floats[100:-100], 0.5)  # unity gain at DC
    assert resample(tone, 8000, 8000) is not tone and np.array_equal(resample(tone, 8000, 8000), tone)
    with pytest.raises(ValueError):
        resample(tone, 0, 8000)


@pytest.mark.parametrize("src,dst", [(8000, 16000), (8000, 48000), (16000, 8000), (48000, 8000), (16000, 48000), (48000, 16000)])
def test_browser_rates_keep_speech_band_and_reject_aliases(src: int, dst: int) -> None:
    """The agent side runs at 16 or 48 kHz: 300-3400 Hz passes within 0.5 dB; on the way down,
    what the lower rate cannot hold is removed instead of folding back into the speech band."""
    edge = src // 20
    for freq in (300.0, 1000.0, 3400.0):
        tone = sine(freq, 1.0, rate=src)
        out = resample(tone, src, dst)
        assert out.size == dst
        trimmed = out[dst // 20 : -dst // 20]
        assert abs(dominant_frequency(trimmed, rate=dst) - freq) < 2.0
        assert abs(rms_dbfs(trimmed) - rms_dbfs(tone[edge:-edge])) < 0.5
    if dst < src:
        above = sine(dst / 2 + 700.0, 1.0, rate=src)   # would alias to dst/2 - 700 Hz
        leaked = resample(above, src, dst)[dst // 20 : -dst // 20]
        assert rms_dbfs(leaked) < rms_dbfs(above) - 50.0


def test_integer_ratio_round_trip_at_browser_rates_is_transparent() -> None:
    speechband = sum(sine(f, 1.0, amplitude=0.15) for f in (440.0, 1250.0, 2900.0)).astype(np.int16)
    for rate in (16000, 48000):
        back = resample(resample(speechband, 8000, rate), rate, 8000)
        err = back[EDGE:-EDGE].astype(np.float64) - speechband[EDGE:-EDGE]
        assert back.size == speechband.size
        assert rms_dbfs(err) < rms_dbfs(speechband) - 55.0


# --- broken files ----------------------------------------------------------------------------


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 10)
    with pytest.raises(WavError, match=r"notes\.wav: not a RIFF/WAVE file"):
        read_wav(path)


def test_truncated_header(tmp_path: Path) -> None:
    good = sox_wav(tmp_path / "good.wav", ["-r", "8000", "-b", "16", "-c", "1"], "0.1", "sine", "1000")
    for cut in (8, 30):
        path = tmp_path / f"cut{cut}.wav"
        path.write_bytes(good.read_bytes()[:cut])
        with pytest.raises(WavError, match=rf"cut{cut}\.wav: truncated header"):
            read_wav(path)


def test_zero_length_data(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sox("-n", "-r", "8000", "-b", "16", "-c", "1", str(path), "trim", "0", "0")
    assert path.stat().st_size == 44
    with pytest.raises(WavError, match=r"empty\.wav: zero-length data chunk at byte 36"):
        read_wav(path)


def test_unsupported_width_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "f24.wav"
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 24000, 3, 24)  # 24-bit float does not exist
    path.write_bytes(b"RIFF" + struct.pack("<I", 40) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", 6) + bytes(6))
    with pytest.raises(WavError, match=r"f24\.wav: 24-bit float\? unsupported sample width 3 at byte 34"):
        read_wav(path)


def test_unknown_format_tag_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gsm.wav"
    sox("-n", "-r", "8000", "-c", "1", "-e", "gsm-full-rate", str(path), "synth", "0.1", "sine", "1000")
    with pytest.raises(WavError, match=r"gsm\.wav: unsupported format tag 0x0031 at byte 20"):
        read_wav(path)
    with pytest.raises(WavError, match=r"absent\.wav: cannot read"):
        read_wav(tmp_path / "absent.wav")
    assert issubclass(WavError, ValueError)
