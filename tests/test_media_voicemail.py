"""Voicemail engine on espeak-ng speech with silences of known length, clean and in white noise:
end-of-speech stop, pauses that do not end a message, maximum length, no-speech discard, stop key,
hang-up, trimming bounds, and a kill -9 mid-message finished by recover()."""

from __future__ import annotations

import signal
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.media.dtmf import dtmf_tone
from gateway.media.frames import SAMPLE_RATE, pcm_to_frames
from gateway.media.voicemail import (
    HUNG_UP, KEY, MARGIN_SECONDS, MAX_LENGTH, NO_INPUT, NO_SPEECH, RECORDED, RESTART, SILENCE,
    VoicemailRecorder, VoicemailSettings, partial_path, recover,
)
from gateway.media.wavfile import read_wav

PHRASES = ("Hello, this is Anna from the bakery.", "Please call me back about the order.")
EDGE = 0.15        # how far the VAD may put a clean speech edge from the true one
NOISY_EDGE = 0.3
FRAME = 0.02


def _speech(folder: Path, text: str, name: str) -> np.ndarray:
    """espeak-ng speech at 8 kHz, cut to its first and last audible sample so its bounds are exact."""
    path = folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True, timeout=30)
    pcm = read_wav(path)
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
    return pcm[loud[0] : loud[-1] + 1]


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16)


def _noisy(samples: np.ndarray, speech: np.ndarray, snr_db: float) -> np.ndarray:
    sigma = np.sqrt(np.mean(speech.astype(np.float64) ** 2) / 10 ** (snr_db / 10))
    noisy = samples + np.random.default_rng(11).normal(0.0, sigma, samples.size)
    return np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def phrases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voicemail-speech")
    return [_speech(folder, text, f"p{i}") for i, text in enumerate(PHRASES)]


def _record(path: Path, samples: np.ndarray, **settings) -> tuple[VoicemailRecorder, str | None]:
    """Feed `samples` frame by frame until the engine says stop (or the audio runs out: None)."""
    recorder = VoicemailRecorder(path, VoicemailSettings(**settings))
    for frame in pcm_to_frames(samples):
        reason = recorder.feed(frame)
        if reason is not None:
            return recorder, reason
    return recorder, None


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def _assert_kept_slice(result, heard: np.ndarray) -> np.ndarray:
    """The message file is exactly the stretch of what was heard that the result names."""
    kept = _wav(result.path)
    assert kept.size == round(result.seconds * SAMPLE_RATE)
    heard = np.frombuffer(b"".join(pcm_to_frames(heard)), dtype="<i2")  # as fed: last frame padded
    first = round(result.offset * SAMPLE_RATE)
    assert np.array_equal(kept, heard[first : first + kept.size])
    return kept


def test_message_ends_after_the_silence_that_follows_speech_and_is_trimmed(tmp_path, phrases):
    a, b = phrases
    lead, pause = 0.6, 0.5
    samples = np.concatenate([_silence(lead), a, _silence(pause), b, _silence(4.0)])
    speech_end = lead + (a.size + b.size) / SAMPLE_RATE + pause
    recorder, reason = _record(tmp_path / "m.wav", samples, silence_seconds=1.0)
    assert reason == SILENCE
    # stops 1 s after the last voiced frame: never earlier than 1 s after the true end
    latency = recorder.seconds - speech_end
    assert 1.0 - FRAME <= latency <= 1.0 + EDGE, latency
    result = recorder.finish(reason)
    assert result.status == RECORDED and result.ended_by == SILENCE and result.path == tmp_path / "m.wav"
    assert not partial_path(result.path).exists()
    # trimmed to the speech plus the margin on each side; the pause inside is kept
    assert abs(result.offset - (lead - MARGIN_SECONDS)) <= EDGE
    assert abs(result.offset + result.seconds - (speech_end + MARGIN_SECONDS)) <= EDGE
    true_speech = (a.size + b.size) / SAMPLE_RATE
    assert true_speech - EDGE <= result.speech_seconds <= true_speech + pause + EDGE
    assert result.recorded_seconds == pytest.approx(recorder.seconds)
    kept = _assert_kept_slice(result, samples)
    assert np.abs(kept[: round(0.05 * SAMPLE_RATE)].astype(np.int32)).max() < 300  # starts in silence
    assert np.abs(kept[-round(0.05 * SAMPLE_RATE) :].astype(np.int32)).max() < 300  # ends in silence


def test_a_pause_shorter_than_the_silence_limit_does_not_end_the_message(tmp_path, phrases):
    a, b = phrases
    samples = np.concatenate([_silence(0.4), a, _silence(1.5), b, _silence(3.0)])
    recorder, reason = _record(tmp_path / "m.wav", samples, silence_seconds=2.0)
    assert reason == SILENCE
    second_end = 0.4 + (a.size + b.size) / SAMPLE_RATE + 1.5
    assert recorder.seconds >= second_end + 2.0 - FRAME
    result = recorder.finish(reason)
    assert result.offset + result.seconds >= second_end  # both phrases are in the message
    _assert_kept_slice(result, samples)


@pytest.mark.parametrize("snr_db", [20, 10])
def test_end_of_speech_in_white_noise(tmp_path, phrases, snr_db):
    a, _ = phrases
    clean = np.concatenate([_silence(0.8), a, _silence(4.0)])
    samples = _noisy(clean, a, snr_db)
    speech_end = 0.8 + a.size / SAMPLE_RATE
    recorder, reason = _record(tmp_path / "m.wav", samples, silence_seconds=1.5)
    assert reason == SILENCE
    assert 1.5 - NOISY_EDGE <= recorder.seconds - speech_end <= 1.5 + NOISY_EDGE
    result = recorder.finish(reason)
    assert result.status == RECORDED
    assert abs(result.offset - (0.8 - MARGIN_SECONDS)) <= NOISY_EDGE
    assert abs(result.offset + result.seconds - (speech_end + MARGIN_SECONDS)) <= NOISY_EDGE
    _assert_kept_slice(result, samples)


def test_maximum_length_stops_a_caller_who_keeps_talking(tmp_path, phrases):
    a, b = phrases
    talk = np.concatenate([_silence(0.3), a, _silence(0.2), b, _silence(0.2), a])
    recorder, reason = _record(tmp_path / "m.wav", talk, max_seconds=2.5, silence_seconds=1.0)
    assert reason == MAX_LENGTH
    assert recorder.seconds == pytest.approx(2.5)
    result = recorder.finish(reason)
    assert result.status == RECORDED and result.ended_by == MAX_LENGTH
    assert abs(result.offset - (0.3 - MARGIN_SECONDS)) <= EDGE
    assert result.offset + result.seconds == pytest.approx(2.5)  # speech ran to the end: nothing trimmed there
    _assert_kept_slice(result, talk)


@pytest.mark.parametrize("hiss", [0.0, 100.0, 1000.0])  # digital silence, -50 dBFS and -30 dBFS line noise
def test_no_speech_is_discarded_after_the_no_input_limit(tmp_path, hiss):
    samples = np.rint(np.random.default_rng(5).normal(0.0, hiss, 4 * SAMPLE_RATE)).astype(np.int16)
    recorder, reason = _record(tmp_path / "m.wav", samples, silence_seconds=1.0, no_input_seconds=2.0)
    assert reason == NO_INPUT
    assert recorder.seconds == pytest.approx(2.0)
    result = recorder.finish(reason)
    assert (result.status, result.path, result.seconds, result.speech_seconds) == (NO_SPEECH, None, 0.0, 0.0)
    assert result.recorded_seconds == pytest.approx(2.0)
    assert list(tmp_path.iterdir()) == []  # neither the message nor its partial is left


def test_stop_key_keeps_the_speech_but_not_the_key_tone(tmp_path, phrases):
    a, _ = phrases
    speech_end = 0.5 + a.size / SAMPLE_RATE
    tone_at = speech_end + 0.6
    samples = np.concatenate([_silence(0.5), a, _silence(0.6), dtmf_tone("#", 100)])
    recorder, reason = _record(tmp_path / "m.wav", samples, silence_seconds=3.0)
    assert reason is None  # the key is the caller's of the engine to see
    result = recorder.finish(KEY)
    assert result.status == RECORDED and result.ended_by == KEY
    end = result.offset + result.seconds
    assert abs(end - (speech_end + MARGIN_SECONDS)) <= EDGE and end < tone_at  # trimmed before the tone
    _assert_kept_slice(result, samples)


def test_a_key_tone_alone_is_no_speech(tmp_path):
    samples = np.concatenate([_silence(1.0), dtmf_tone("#", 120)])
    recorder, reason = _record(tmp_path / "m.wav", samples, silence_seconds=3.0, aggressiveness=2)
    assert reason is None and recorder.listener.heard_speech  # this VAD mode calls the tone voiced...
    result = recorder.finish(KEY)
    assert result.status == NO_SPEECH and not (tmp_path / "m.wav").exists()  # ...but it is not a message


def test_hang_up_mid_message_keeps_it_when_it_has_speech(tmp_path, phrases):
    a, _ = phrases
    samples = np.concatenate([_silence(0.5), a[: a.size // 2]])  # cut off mid-word
    recorder, reason = _record(tmp_path / "m.wav", samples, silence_seconds=2.0)
    assert reason is None
    result = recorder.finish(HUNG_UP)
    assert result.status == HUNG_UP and result.path is not None
    assert result.offset + result.seconds == pytest.approx(recorder.seconds, abs=FRAME)
    _assert_kept_slice(result, samples)

    silent, reason = _record(tmp_path / "s.wav", _silence(0.5), silence_seconds=2.0)
    assert silent.finish(HUNG_UP).status == NO_SPEECH and not (tmp_path / "s.wav").exists()


def test_finish_is_once_and_feeding_after_it_is_refused(tmp_path, phrases):
    recorder, _ = _record(tmp_path / "m.wav", np.concatenate([_silence(0.3), phrases[0]]), silence_seconds=1.0)
    first = recorder.finish(HUNG_UP)
    assert recorder.finish(SILENCE) is first
    with pytest.raises(ValueError, match="already finished"):
        recorder.feed(bytes(320))
    with pytest.raises(ValueError, match="unknown voicemail ending"):
        VoicemailRecorder(tmp_path / "x.wav").finish("bored")


@pytest.mark.parametrize("settings, message", [
    ({"silence_seconds": 0}, "silence_seconds must be between"),
    ({"max_seconds": float("nan")}, "max_seconds must be a number"),
    ({"max_seconds": 20000}, "max_seconds must be between"),
    ({"no_input_seconds": "5"}, "no_input_seconds must be a number"),
    ({"aggressiveness": 4}, "aggressiveness must be one of"),
])
def test_bad_settings_are_refused(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        VoicemailRecorder(tmp_path / "m.wav", VoicemailSettings(**settings))


def test_bad_frame_is_refused(tmp_path):
    recorder = VoicemailRecorder(tmp_path / "m.wav")
    with pytest.raises(ValueError, match="caller frame is 100 bytes"):
        recorder.feed(bytes(100))


_KILLED_WRITER = """
import sys, time
import numpy as np
from pathlib import Path
from gateway.media.frames import pcm_to_frames
from gateway.media.voicemail import VoicemailRecorder, VoicemailSettings
samples = np.fromfile(sys.argv[2], dtype="<i2")
recorder = VoicemailRecorder(Path(sys.argv[1]), VoicemailSettings(silence_seconds=5.0))
for frame in pcm_to_frames(samples):
    assert recorder.feed(frame) is None
print("fed", flush=True)
time.sleep(60)
"""


def test_kill_9_mid_message_leaves_a_valid_wav_that_recover_finishes(tmp_path, phrases):
    a, b = phrases
    heard = np.concatenate([_silence(0.5), a, _silence(0.3), b, _silence(0.7)])
    raw = tmp_path / "heard.raw"
    heard.astype("<i2").tofile(raw)
    path = tmp_path / "vm" / "c-9.wav"
    path.parent.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path), str(raw)], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[1], text=True)
    try:
        assert proc.stdout.readline().strip() == "fed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert not path.exists()
    with wave.open(str(partial_path(path))) as w:   # valid as it stands, up to the last second or so
        on_disk = w.getnframes() / SAMPLE_RATE
    assert heard.size / SAMPLE_RATE - 1.1 <= on_disk <= heard.size / SAMPLE_RATE

    result = recover(path)
    assert result.status == RECORDED and result.ended_by == RESTART and result.path == path
    assert not partial_path(path).exists()
    assert abs(result.offset - (0.5 - MARGIN_SECONDS)) <= EDGE
    _assert_kept_slice(result, heard)
    again = recover(path)  # a second start-up finds the finished message
    assert again.status == RECORDED and again.seconds == pytest.approx(result.seconds)
    path.unlink()
    assert recover(path).status == NO_SPEECH  # nothing left at all: no message
