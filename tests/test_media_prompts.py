"""PromptCache with the real espeak-ng: rendering, disk and memory caching, SSML, failures."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from gateway.media.frames import FRAME_SAMPLES
from gateway.media.prompts import PromptCache, PromptError
from gateway.media.tones import dominant_frequency, rms_dbfs
from gateway.media.wavfile import WavError, read_wav

GREETING = "Hello, this is the edge call gateway. Please hold."
MISSING = "/nonexistent/bin/espeak-ng"


def counting_espeak(tmp_path: Path) -> tuple[str, Path]:
    """A wrapper that logs each start and then runs the real espeak-ng."""
    log = tmp_path / "spawns.log"
    script = tmp_path / "espeak-counting"
    script.write_text(f'#!/bin/sh\necho start >> "{log}"\nexec espeak-ng "$@"\n')
    script.chmod(0o755)
    return str(script), log


def spawns(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def frame_levels(x: np.ndarray) -> np.ndarray:
    frames = x[: x.size // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES).astype(np.float64)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-9) / 32768.0)


def test_text_renders_plausible_speech(tmp_path: Path) -> None:
    speech = asyncio.run(PromptCache(tmp_path / "cache").text(GREETING))
    assert speech.dtype == np.int16 and speech.ndim == 1
    seconds = speech.size / 8000
    assert 2.0 < seconds < 6.0  # ~9 words at 160 wpm
    assert rms_dbfs(speech) > -35.0 and np.abs(speech).max() > 3000
    assert (frame_levels(speech) > -40.0).mean() > 0.5  # mostly voiced, not a blip in silence
    assert 80.0 < dominant_frequency(speech) < 3400.0


def test_same_text_never_spawns_twice(tmp_path: Path) -> None:
    espeak, log = counting_espeak(tmp_path)
    cache = PromptCache(tmp_path / "cache", espeak=espeak)
    first = asyncio.run(cache.text(GREETING))
    assert spawns(log) == 1
    cache.espeak = MISSING  # a spawn attempt would now fail
    again = asyncio.run(cache.text(GREETING))
    assert again is first and spawns(log) == 1
    with pytest.raises(ValueError):
        first[0] = 1  # the shared cached array is read-only


def test_disk_cache_survives_a_restart(tmp_path: Path) -> None:
    first = asyncio.run(PromptCache(tmp_path / "cache").text(GREETING, voice="en-us", speed_wpm=180))
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".wav" and len(entries[0].stem) == 64  # sha256, no temp files left
    assert np.array_equal(read_wav(entries[0]), first)
    restarted = PromptCache(tmp_path / "cache", espeak=MISSING)
    assert np.array_equal(asyncio.run(restarted.text(GREETING, voice="en-us", speed_wpm=180)), first)
    with pytest.raises(PromptError):  # other speed: other key, so it needs the (missing) binary
        asyncio.run(restarted.text(GREETING, voice="en-us", speed_wpm=120))


def test_speed_and_voice_are_part_of_the_key(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path / "cache")

    async def render() -> list[np.ndarray]:
        return [await cache.text(GREETING, speed_wpm=120), await cache.text(GREETING, speed_wpm=240),
                await cache.text(GREETING, voice="en-gb", speed_wpm=240)]

    slow, fast, british = asyncio.run(render())
    assert slow.size > 1.5 * fast.size
    assert not np.array_equal(fast, british)
    assert len(list((tmp_path / "cache").glob("*.wav"))) == 3


def test_concurrent_requests_render_once(tmp_path: Path) -> None:
    espeak, log = counting_espeak(tmp_path)
    cache = PromptCache(tmp_path / "cache", espeak=espeak)

    async def many() -> list[np.ndarray]:
        return await asyncio.gather(*(cache.text("Your call is important to us.") for _ in range(4)))

    results = asyncio.run(many())
    assert spawns(log) == 1 and all(r is results[0] for r in results)


def test_ssml_is_interpreted(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path / "cache")
    ssml = '<speak>Hello <break time="1200ms"/> world</speak>'
    spoken = asyncio.run(cache.text(ssml))
    quiet = frame_levels(spoken) < -60.0
    longest_gap, run = 0, 0
    for q in quiet:
        run = run + 1 if q else 0
        longest_gap = max(longest_gap, run)
    assert longest_gap * 0.02 >= 1.0  # the break, not the tags read aloud
    assert spoken.size / 8000 < 3.5


def test_missing_binary_names_the_text(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path / "cache", espeak=MISSING)
    with pytest.raises(PromptError, match="Please press one for sales"):
        asyncio.run(cache.text("Please press one for sales."))
    assert not list((tmp_path / "cache").glob("*.wav"))


def test_espeak_failure_and_empty_text(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path / "cache")
    with pytest.raises(PromptError, match=r"exited with 1 for 'Good morning'.*voice does not exist"):
        asyncio.run(cache.text("Good morning", voice="xx-zz"))
    with pytest.raises(PromptError, match="empty"):
        asyncio.run(cache.text("   "))
    assert not list((tmp_path / "cache").iterdir())  # no temp files left behind


def test_hung_renderer_is_killed_at_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = tmp_path / "espeak-hangs"
    script.write_text(f'#!/bin/sh\necho $$ > "{pidfile}"\nexec sleep 30\n')
    script.chmod(0o755)
    cache = PromptCache(tmp_path / "cache", espeak=str(script), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(PromptError, match=r"took over 0.3 s for 'Hold on'"):
        asyncio.run(cache.text("Hold on"))
    assert time.monotonic() - started < 3.0
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_damaged_disk_entry_is_rendered_again(tmp_path: Path) -> None:
    first = asyncio.run(PromptCache(tmp_path / "cache").text("Goodbye."))
    (entry,) = (tmp_path / "cache").glob("*.wav")
    entry.write_bytes(b"RIFF garbage")
    again = asyncio.run(PromptCache(tmp_path / "cache").text("Goodbye."))
    assert np.array_equal(again, first)
    assert np.array_equal(read_wav(entry), first)


def test_file_is_converted_once_per_mtime(tmp_path: Path) -> None:
    path = tmp_path / "hold.wav"
    subprocess.run(["sox", "-n", "-r", "44100", "-b", "16", "-c", "2", str(path), "synth", "0.5", "sine", "600"], check=True)
    cache = PromptCache(tmp_path / "cache")
    first = cache.file(path)
    assert first.size == 4000 and abs(dominant_frequency(first) - 600.0) < 2.0
    assert cache.file(str(path)) is first
    subprocess.run(["sox", "-n", "-r", "16000", "-b", "16", "-c", "1", str(path), "synth", "0.25", "sine", "1000"], check=True)
    later = path.stat().st_mtime + 5
    os.utime(path, (later, later))
    second = cache.file(path)
    assert second.size == 2000 and abs(dominant_frequency(second) - 1000.0) < 2.0


def test_file_errors_are_wav_errors(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path / "cache")
    bad = tmp_path / "readme.wav"
    bad.write_text("hello")
    with pytest.raises(WavError, match=r"readme\.wav: not a RIFF/WAVE file"):
        cache.file(bad)
    with pytest.raises(WavError, match=r"gone\.wav: cannot read"):
        cache.file(tmp_path / "gone.wav")
