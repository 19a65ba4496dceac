"""DTMF generator and in-band detector against the exchange acceptance limits (ITU-T Q.24 / Bellcore),
each limit on both sides, talk-off on espeak-ng speech, and the `callgate media dtmf` command."""

from __future__ import annotations

import argparse
import json
import subprocess

import numpy as np
import pytest

from gateway.cli import media_dtmf
from gateway.media.dtmf import (DIGITS, DigitEvent, DigitPress, DtmfDetector, detect, detect_file, dtmf_sequence,
                                dtmf_tone)
from gateway.media.tones import dominant_frequency, rms_dbfs
from gateway.media.wavfile import read_wav, write_wav

PAD = np.zeros(400, dtype=np.int16)  # 50 ms of silence around every case


def digits_in(*parts: np.ndarray) -> str:
    return "".join(e.digit for e in detect(np.concatenate([PAD, *parts, PAD])))


def test_generator_levels_and_frequencies():
    tone = dtmf_tone("1", ms=200, amplitude_dbfs=-20)
    assert tone.dtype == np.int16 and tone.size == 1600
    assert abs(rms_dbfs(tone) - (-20 + 10 * np.log10(2))) < 0.1  # two tones at -20 dBFS each
    assert abs(dominant_frequency(dtmf_tone("1", 200, twist_db=-10)) - 697) < 2
    assert abs(dominant_frequency(dtmf_tone("1", 200, twist_db=10)) - 1209) < 2
    seq = dtmf_sequence("12", on_ms=100, off_ms=60)
    assert seq.size == 800 + 480 + 800 and not seq[800:1280].any()
    with pytest.raises(ValueError, match="not a DTMF digit"):
        dtmf_tone("E")


def test_all_sixteen_digits_with_times():
    events = detect(np.concatenate([PAD, dtmf_sequence(DIGITS, on_ms=100, off_ms=60), PAD]))
    assert "".join(e.digit for e in events) == DIGITS
    for i, e in enumerate(events):
        assert abs(e.start - (0.05 + 0.16 * i)) <= 0.006
        assert abs(e.end - (0.15 + 0.16 * i)) <= 0.006


@pytest.mark.parametrize("offset", [0, 13, 27, 39])
def test_duration_40ms_accepted_23ms_rejected(offset):
    lead = np.zeros(offset, dtype=np.int16)
    for d in DIGITS:
        assert digits_in(lead, dtmf_tone(d, ms=40)) == d
        assert digits_in(lead, dtmf_tone(d, ms=23)) == ""


@pytest.mark.parametrize("sign", [1, -1])
def test_frequency_deviation_1_5_accepted_3_5_rejected(sign):
    for d in DIGITS:
        assert digits_in(dtmf_tone(d, 60, row_deviation=sign * 0.015)) == d
        assert digits_in(dtmf_tone(d, 60, col_deviation=sign * 0.015)) == d
        assert digits_in(dtmf_tone(d, 60, row_deviation=sign * 0.035)) == ""
        assert digits_in(dtmf_tone(d, 60, col_deviation=sign * 0.035)) == ""


def test_twist_limits():
    for d in DIGITS:
        assert digits_in(dtmf_tone(d, 60, -12, twist_db=4)) == d  # reverse twist: column louder
        assert digits_in(dtmf_tone(d, 60, -4, twist_db=-8)) == d  # normal twist: row louder
        assert digits_in(dtmf_tone(d, 60, -12, twist_db=6)) == ""
        assert digits_in(dtmf_tone(d, 60, -4, twist_db=-10)) == ""


def test_minus_30_dbfs_per_tone_accepted_and_low_level_rejected():
    for d in DIGITS:
        assert digits_in(dtmf_tone(d, 60, amplitude_dbfs=-30)) == d
        assert digits_in(dtmf_tone(d, 60, amplitude_dbfs=-45)) == ""


def test_white_noise_at_15_db_snr():
    signal = dtmf_sequence(DIGITS, on_ms=50, off_ms=50, amplitude_dbfs=-20).astype(np.float64)
    tone_power = np.mean(dtmf_tone("5", 1000, -20).astype(np.float64) ** 2)
    sig = np.concatenate([np.zeros(400), signal, np.zeros(400)])
    for seed in range(3):
        noise = np.random.default_rng(seed).normal(0.0, np.sqrt(tone_power / 10**1.5), sig.size)
        noisy = np.clip(np.rint(sig + noise), -32768, 32767).astype(np.int16)
        assert "".join(e.digit for e in detect(noisy)) == DIGITS
    only_noise = np.random.default_rng(9).normal(0.0, 3000.0, 8000 * 5)
    assert detect(only_noise.astype(np.int16)) == []


def test_repeat_after_40ms_pause_counts_twice_and_short_break_bridged():
    assert digits_in(dtmf_sequence("55", on_ms=50, off_ms=40)) == "55"
    assert digits_in(dtmf_sequence("7#7", on_ms=40, off_ms=40)) == "7#7"
    assert digits_in(dtmf_sequence("55", on_ms=60, off_ms=10)) == "5"  # an interruption, not a new digit
    assert digits_in(dtmf_sequence("12", on_ms=40, off_ms=0)) == "12"


def test_streaming_matches_whole_signal_for_any_chunking():
    x = np.concatenate([PAD, dtmf_sequence("159#*0D", 70, 50), PAD])
    whole = detect(x)
    for chunk in (160, 37, 1):
        det = DtmfDetector()
        got: list[DigitEvent] = []
        for i in range(0, x.size, chunk):
            got += det.feed(x[i : i + chunk])
        assert got + det.flush() == whole
    assert "".join(e.digit for e in whole) == "159#*0D"


TALK = [
    ("en-us", [], "Thank you for calling. Please hold while we connect you to the next available agent. "
                  "Press one for sales, two for support. Zero, one, two, three, four, five, six, seven, eight, nine."),
    ("en-us", ["-p", "85", "-s", "230"], "Hello? Hello! Can you hear me? Beep, eeeee, ooooh, the quick brown fox."),
    ("de", ["-p", "20", "-s", "130"], "Guten Tag. Bitte warten Sie, Sie werden gleich verbunden. Eins zwei drei vier fünf."),
    ("fr", ["-p", "70"], "Bonjour. Veuillez patienter, nous allons vous mettre en relation. Un deux trois quatre cinq."),
    ("es", ["-s", "200"], "Buenos días. Por favor espere, su llamada es muy importante. Seis siete ocho nueve cero."),
    ("ja", [], "こんにちは。少々お待ちください。いち に さん よん ご ろく なな はち きゅう。"),
    ("cmn", ["-p", "90"], "你好。请稍等，我们正在为您转接。一 二 三 四 五 六 七 八 九 零。"),
]


def test_talk_off_espeak_speech_in_several_languages(tmp_path):
    total = 0.0
    for i, (voice, opts, text) in enumerate(TALK):
        wav = tmp_path / f"talk{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, *opts, "-w", str(wav), text], check=True, timeout=30)
        speech = read_wav(wav)
        total += speech.size / 8000
        assert speech.size > 8000 and rms_dbfs(speech) > -35
        for gain in (1.0, 3.0, 0.3):
            loud = np.clip(speech.astype(np.float64) * gain, -32768, 32767).astype(np.int16)
            assert detect(loud) == [], f"talk-off in {voice} {opts} gain {gain}"
    assert total > 30.0
    # the detector is not simply deaf on these files: a digit mixed into speech is still found
    mixed = speech.astype(np.float64)
    tone = dtmf_tone("9", 80, -6)
    quiet = int(np.argmin(np.convolve(np.abs(mixed), np.ones(tone.size), "valid")))
    mixed[quiet : quiet + tone.size] += tone
    assert [e.digit for e in detect(np.clip(mixed, -32768, 32767).astype(np.int16))] == ["9"]


def test_detect_file_any_format(tmp_path):
    x = np.concatenate([PAD, dtmf_sequence("42", 80, 60), PAD])
    path = tmp_path / "d.wav"
    from gateway.media.wavfile import resample

    write_wav(path, resample(x, 8000, 16000), rate=16000)
    assert [e.digit for e in detect_file(path)] == ["4", "2"]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    media_dtmf.add_parser(parser.add_subparsers(dest="media_command"))
    return media_dtmf.run(parser.parse_args(argv))


def test_cli_text_json_and_errors(tmp_path, capsys):
    path = tmp_path / "call.wav"
    write_wav(path, np.concatenate([PAD, dtmf_sequence("1#", 80, 60), PAD]))
    assert _cli(["dtmf", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1" in out and "#" in out and "0.050" in out
    assert _cli(["dtmf", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["digit"] for d in data] == ["1", "#"]
    assert set(data[0]) == {"digit", "start", "end"} and abs(data[0]["start"] - 0.05) < 0.006
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    for target in (bad, tmp_path / "missing.wav"):
        assert _cli(["dtmf", str(target)]) == 2
        assert str(target) in capsys.readouterr().err


def _fed_in_frames(x: np.ndarray, det: DtmfDetector, frame: int = 160) -> list[tuple[float, object]]:
    """(seconds of audio fed so far, item) for every press and ended digit, in the order they came out."""
    out: list[tuple[float, object]] = []
    for i in range(0, x.size, frame):
        ended = det.feed(x[i : i + frame])
        fed = min(i + frame, x.size) / det.rate
        out += [(fed, p) for p in det.presses()] + [(fed, e) for e in ended]
    out += [(x.size / det.rate, e) for e in det.flush()] + [(x.size / det.rate, p) for p in det.presses()]
    return out


def test_press_reported_while_the_key_is_still_down():
    # a 600 ms press: the press comes out ~30 ms into the tone (one 20 ms frame later at most);
    # the digit with its end only once the key is let go
    x = np.concatenate([np.zeros(4000, dtype=np.int16), dtmf_tone("7", 600, -20), np.zeros(4000, dtype=np.int16)])
    got = _fed_in_frames(x, DtmfDetector())
    assert [type(item).__name__ for _, item in got] == ["DigitPress", "DigitEvent"]
    (pressed_at, press), (ended_at, event) = got
    assert press == DigitPress("7", event.start, press.accepted)
    assert abs(press.start - 0.5) <= 0.006 and abs(event.end - 1.1) <= 0.006
    assert 0.025 <= press.accepted - press.start <= 0.035
    assert pressed_at - press.start <= 0.055  # the acceptance, plus the rest of the frame it fell in
    assert ended_at >= event.end > pressed_at + 0.5
    assert _fed_in_frames(x, DtmfDetector())[0][1] == press  # nothing left over between detectors


@pytest.mark.parametrize("rate, frame", [(8000, 160), (16000, 320), (8000, 37), (8000, 8000)])
def test_presses_match_digits_for_any_rate_and_feed(rate, frame):
    from gateway.media.wavfile import resample

    base = np.concatenate([PAD, dtmf_sequence("1#9D", 45, 40, -25), PAD, dtmf_sequence("55", 300, 40), PAD])
    x = base if rate == 8000 else resample(base, 8000, rate)
    got = _fed_in_frames(x, DtmfDetector(rate=rate), frame)
    presses = [item for _, item in got if isinstance(item, DigitPress)]
    events = [item for _, item in got if isinstance(item, DigitEvent)]
    assert "".join(p.digit for p in presses) == "".join(e.digit for e in events) == "1#9D55"
    assert [p.start for p in presses] == [e.start for e in events]
    assert all(p.start < p.accepted < e.end for p, e in zip(presses, events))
    if frame * 1000 // rate <= 20:  # fed a call frame at a time: each press before its digit's end
        order = [item.digit + type(item).__name__[5] for _, item in got]
        assert order == ["1P", "1E", "#P", "#E", "9P", "9E", "DP", "DE", "5P", "5E", "5P", "5E"]


def test_no_press_in_speech_noise_or_near_misses(tmp_path):
    wav = tmp_path / "talk.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), TALK[0][2]], check=True, timeout=30)
    speech = read_wav(wav)
    noise = np.random.default_rng(3).normal(0.0, 3000.0, 8000 * 3).astype(np.int16)
    near = np.concatenate([PAD, dtmf_tone("3", 23), PAD, dtmf_tone("3", 60, row_deviation=0.035), PAD,
                           dtmf_tone("3", 60, -4, twist_db=-10), PAD])
    for x in (speech, noise, near):
        det = DtmfDetector()
        assert _fed_in_frames(x, det) == [] and det.presses() == []


def test_mixed_feed_sizes_match_the_whole_signal():
    x = np.concatenate([PAD, dtmf_sequence("3A*8", 55, 45, -18), PAD, dtmf_tone("2", 200, -28), PAD])
    whole = detect(x)
    det = DtmfDetector()
    got: list[DigitEvent] = []
    sizes = [160, 160, 37, 160, 123, 160, 1, 159, 160, 320, 160]
    i = k = 0
    while i < x.size:
        got += det.feed(x[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    assert got + det.flush() == whole and "".join(e.digit for e in whole) == "3A*82"
