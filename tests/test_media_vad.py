"""VAD endpointer on espeak-ng speech with silences of known length, clean and in white noise;
live start/end events, start delay and hangover; `callgate media vad`."""

from __future__ import annotations

import argparse
import json
import subprocess

import numpy as np
import pytest

from gateway.cli import media_vad
from gateway.media.frames import FRAME_BYTES, SAMPLE_RATE, pcm_to_frames
from gateway.media.vad import Endpointer, Segment, segments_of, segments_of_file
from gateway.media.wavfile import read_wav, write_wav

CLEAN_TOLERANCE = 0.15
NOISY_TOLERANCE = 0.25
PHRASES = ("Hello there, this is the gateway.", "Please leave a message.")


def _speech(tmp_path, text: str, name: str) -> np.ndarray:
    """espeak-ng speech at 8 kHz, cut to its first and last audible sample so its bounds are exact."""
    path = tmp_path / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True, timeout=30)
    pcm = read_wav(path)
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
    return pcm[loud[0] : loud[-1] + 1]


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16)


@pytest.fixture(scope="module")
def phrases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vad")
    return [_speech(tmp, text, f"p{i}") for i, text in enumerate(PHRASES)]


@pytest.fixture(scope="module")
def call(phrases):
    """0.5 s silence, phrase 1, 1.5 s silence, phrase 2, 0.8 s silence; and the true segments."""
    a, b = phrases
    parts = [_silence(0.5), a, _silence(1.5), b, _silence(0.8)]
    t1 = 0.5 + a.size / SAMPLE_RATE
    t2 = t1 + 1.5
    truth = [Segment(0.5, t1), Segment(t2, t2 + b.size / SAMPLE_RATE)]
    return np.concatenate(parts), truth, np.concatenate([a, b])


def _with_noise(samples: np.ndarray, speech: np.ndarray, snr_db: float, seed: int = 7) -> np.ndarray:
    speech_power = np.mean(speech.astype(np.float64) ** 2)
    sigma = np.sqrt(speech_power / 10 ** (snr_db / 10))
    noisy = samples + np.random.default_rng(seed).normal(0.0, sigma, samples.size)
    return np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)


def _assert_matches(found: list[Segment], truth: list[Segment], tolerance: float) -> None:
    assert len(found) == len(truth), f"found {found}, expected {truth}"
    for got, want in zip(found, truth):
        assert abs(got.start - want.start) <= tolerance, (got, want)
        assert abs(got.end - want.end) <= tolerance, (got, want)


def test_clean_speech_segments_match_known_positions(call):
    samples, truth, _ = call
    assert truth[0].duration > 1.0 and truth[1].duration > 1.0
    _assert_matches(segments_of(samples), truth, CLEAN_TOLERANCE)


@pytest.mark.parametrize("snr_db", [20, 10])
def test_speech_in_white_noise(call, snr_db):
    samples, truth, speech = call
    _assert_matches(segments_of(_with_noise(samples, speech, snr_db)), truth, NOISY_TOLERANCE)


@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
def test_silence_and_low_noise_have_no_speech(aggressiveness):
    rng = np.random.default_rng(3)
    hiss = np.rint(rng.normal(0.0, 100.0, 3 * SAMPLE_RATE)).astype(np.int16)  # about -50 dBFS
    assert segments_of(_silence(3.0), aggressiveness=aggressiveness) == []
    assert segments_of(hiss, aggressiveness=aggressiveness) == []


def test_hangover_bridges_a_short_pause_only(phrases):
    a, b = phrases
    samples = np.concatenate([_silence(0.5), a, _silence(0.25), b, _silence(0.8)])
    assert len(segments_of(samples, hangover_ms=400)) == 1
    assert len(segments_of(samples, hangover_ms=100)) == 2


def _tone_burst(seconds: float) -> np.ndarray:
    """A voiced-like harmonic tone of `seconds` between 0.5 s of silence on each side."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((200, 400, 600, 800), 1))
    return np.concatenate([_silence(0.5), np.rint(tone * 5000).astype(np.int16), _silence(1.0)])


def _events(samples: np.ndarray, **options) -> list[tuple[str, float, float, bool]]:
    """(kind, reported time, stream time when reported, speaking after) for every event."""
    ep = Endpointer(**options)
    out = []
    for frame in pcm_to_frames(samples):
        for event in ep.feed(frame):
            out.append((event.kind, event.time, ep.time, ep.speaking))
    return out


def test_start_delay_is_back_dated_and_rejects_short_bursts():
    burst = _tone_burst(0.16)
    for start_ms in (60, 200):
        events = _events(burst, start_ms=start_ms)
        assert [e[0] for e in events] == ["start", "end"]
        kind, start, reported_at, speaking = events[0]
        assert start == pytest.approx(0.5) and speaking
        assert reported_at == pytest.approx(start + start_ms / 1000)
    assert segments_of(burst, start_ms=600) == []


def test_end_is_reported_after_the_hangover_at_the_last_voiced_frame():
    burst = _tone_burst(0.3)
    for hangover_ms in (100, 400):
        events = _events(burst, hangover_ms=hangover_ms)
        kind, end, reported_at, speaking = events[-1]
        assert kind == "end" and not speaking
        assert 0.8 <= end <= 1.0  # the tone stops at 0.8 s; webrtcvad trails by a few frames
        assert reported_at == pytest.approx(end + hangover_ms / 1000)


def test_live_state_speech_seconds_and_flush():
    ep = Endpointer()
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = np.rint(sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((200, 400, 600), 1)) * 5000)
    frames = pcm_to_frames(np.concatenate([_silence(0.4), tone.astype(np.int16)]))
    events = [e for f in frames for e in ep.feed(f)]
    assert [e.kind for e in events] == ["start"] and ep.speaking
    assert ep.speech_seconds == pytest.approx(1.0, abs=0.05)
    closing = ep.flush()
    assert [e.kind for e in closing] == ["end"] and not ep.speaking
    assert closing[0].segment.start == pytest.approx(0.4) and closing[0].segment.end == pytest.approx(1.4)
    assert ep.flush() == []
    assert ep.speech_seconds == pytest.approx(1.0)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="aggressiveness"):
        Endpointer(aggressiveness=4)
    with pytest.raises(ValueError, match="aggressiveness"):
        Endpointer(aggressiveness="2")
    with pytest.raises(ValueError, match="hangover_ms"):
        Endpointer(hangover_ms=-1)
    with pytest.raises(ValueError, match="frame_ms"):
        Endpointer(frame_ms=25)
    with pytest.raises(ValueError, match=f"expected {FRAME_BYTES}"):
        Endpointer().feed(bytes(100))


def test_file_at_another_rate_gives_the_same_segments(call, tmp_path):
    samples, truth, _ = call
    path = tmp_path / "call16k.wav"
    from gateway.media.wavfile import resample
    write_wav(path, resample(samples, SAMPLE_RATE, 16000), rate=16000)
    _assert_matches(segments_of_file(path), truth, CLEAN_TOLERANCE)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="callgate media")
    media_vad.add_parser(parser.add_subparsers(dest="media_command", required=True))
    return media_vad.run(parser.parse_args(argv))


def test_cli_json_and_table(call, tmp_path, capsys):
    samples, truth, _ = call
    path = tmp_path / "call.wav"
    write_wav(path, samples)
    assert _cli(["vad", str(path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [sorted(item) for item in found] == [["end", "start"]] * 2
    _assert_matches([Segment(s["start"], s["end"]) for s in found], truth, CLEAN_TOLERANCE)
    assert _cli(["vad", str(path), "--hangover-ms", "100", "--start-ms", "40", "--aggressiveness", "3"]) == 0
    out = capsys.readouterr().out
    assert "START s" in out and "2 segment(s)" in out
    write_wav(path, _silence(1.0))
    assert _cli(["vad", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_cli_bad_files_and_options(tmp_path, capsys):
    missing = tmp_path / "nope.wav"
    assert _cli(["vad", str(missing)]) == 2
    assert "nope.wav" in capsys.readouterr().err
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    assert _cli(["vad", str(junk), "--json"]) == 2
    err = capsys.readouterr().err
    assert "junk.wav" in err and "fmt" in err
    good = tmp_path / "good.wav"
    write_wav(good, _silence(0.5))
    assert _cli(["vad", str(good), "--aggressiveness", "9"]) == 2
    assert "aggressiveness" in capsys.readouterr().err
