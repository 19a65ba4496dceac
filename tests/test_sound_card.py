"""Sound card links through PortAudio against the emulated card ALSA really opens (hil/soundcard.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gateway.media.tones import dominant_frequency, rms_dbfs, sine
from gateway.transport.sound_card import (
    WRITE_QUEUE_FRAMES,
    FrameResampler,
    SoundCardOpenError,
    open_sound_card,
)
from hil.soundcard import EmulatedSoundCard

FRAME = 320
REPO = Path(__file__).resolve().parents[1]
LISTENER = """
import asyncio, sys
import numpy as np
from gateway.media.tones import dominant_frequency
from gateway.transport.sound_card import open_sound_card

async def main():
    link = await open_sound_card(sys.argv[1])
    print("open", flush=True)
    got = bytearray()
    while True:
        got += await asyncio.wait_for(link.read(), 2.0)
        x = np.frombuffer(bytes(got), dtype="<i2")
        loud = np.nonzero(np.abs(x) > 1000)[0]
        if loud.size and loud[-1] - loud[0] > 4000:
            print(round(dominant_frequency(x[loud[0]:loud[-1]])), flush=True)
            break
    link.close()
    await link.wait_closed()

asyncio.run(main())
"""


def pcm(samples: np.ndarray) -> bytes:
    return samples.astype("<i2").tobytes()


def samples(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2")


def audible(x: np.ndarray) -> np.ndarray:
    """The stretch between the first and last loud sample (drops the silence around a tone)."""
    loud = np.nonzero(np.abs(x) > 1000)[0]
    return x[loud[0]:loud[-1] + 1] if loud.size else x[:0]


async def exchange(card: EmulatedSoundCard,
                   device_rate: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Play 1 kHz into the card's downlink and 600 Hz from the gateway at once; return what the
    gateway read, what the card's modem side got, and the captured frames per second."""
    link = await open_sound_card(card.name, device_rate=device_rate)
    try:
        assert link.device_name == card.name
        assert link.device_rate == (device_rate or 8000)
        await link.read()
        card.read_uplink()
        card.write_downlink(pcm(sine(1000, 1.0)))
        link.write(pcm(sine(600, 1.0)))
        got, up = bytearray(), bytearray()
        start = time.monotonic()
        while time.monotonic() - start < 1.4:
            data = await asyncio.wait_for(link.read(), 1.0)
            assert data and len(data) % FRAME == 0
            got += data
            up += card.read_uplink()
        rate = len(got) / FRAME / (time.monotonic() - start)
        await asyncio.sleep(0.15)
        up += card.read_uplink()
        counters = link.counters()
        assert counters["frames_played"] == 50
        assert counters["playback_underruns"] == 1  # the queue ran dry once, after the tone
        assert counters["xruns"] == 0
        return samples(bytes(got)), samples(bytes(up)), rate
    finally:
        link.close()
        assert await link.wait_closed()


def check_tones(down: np.ndarray, up: np.ndarray) -> None:
    down, up = audible(down), audible(up)
    assert abs(down.size - 8000) <= 160
    assert dominant_frequency(down) == pytest.approx(1000, abs=3)
    assert rms_dbfs(down) == pytest.approx(rms_dbfs(sine(1000, 1.0)), abs=0.5)
    assert abs(up.size - 8000) <= 160
    assert dominant_frequency(up) == pytest.approx(600, abs=3)
    assert rms_dbfs(up) == pytest.approx(rms_dbfs(sine(600, 1.0)), abs=0.5)


def test_tones_cross_an_8khz_card_both_ways_in_real_time() -> None:
    with EmulatedSoundCard() as card:
        down, up, fps = asyncio.run(exchange(card))
    check_tones(down, up)
    assert 45 <= fps <= 55
    # 8 kHz end to end is not resampled: the samples arrive exactly as sent.
    sent = pcm(sine(1000, 1.0))
    assert bytes(down).find(sent[4000:8000]) >= 0
    assert bytes(up).find(pcm(sine(600, 1.0))[4000:8000]) >= 0


@pytest.mark.parametrize("rate", [16000, 48000])
def test_a_card_at_its_own_rate_is_resampled_at_the_edge(rate: int) -> None:
    with EmulatedSoundCard(rate=rate) as card:
        down, up, fps = asyncio.run(exchange(card, device_rate=rate))
    check_tones(down, up)
    assert 45 <= fps <= 55


def test_a_gateway_in_another_process_reaches_the_card_through_describe() -> None:
    with EmulatedSoundCard() as card:
        seen = card.describe()
        env = dict(os.environ, ALSA_CONFIG_PATH=str(seen["alsa_config_path"]))
        child = subprocess.Popen([sys.executable, "-c", LISTENER, str(seen["audio_device"])], cwd=REPO,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "open"
            card.write_downlink(pcm(sine(1000, 0.8)))
            assert abs(int(child.stdout.readline()) - 1000) <= 3
            assert child.wait(5) == 0
        finally:
            child.kill()


def test_missing_device_names_it_and_lists_what_portaudio_sees() -> None:
    before = os.environ.get("ALSA_CONFIG_PATH")

    async def go() -> None:
        with EmulatedSoundCard("callgate_present") as card:
            with pytest.raises(SoundCardOpenError) as err:
                await open_sound_card("Android")
            text = str(err.value)
            assert "'Android'" in text and "no such device" in text
            assert card.name in text and card.name in err.value.devices
            assert "plugged in" in text and "audio" in text

    asyncio.run(go())
    assert os.environ.get("ALSA_CONFIG_PATH") == before  # the unplugged card left no trace


def test_a_name_matching_two_cards_is_refused() -> None:
    async def go() -> None:
        with EmulatedSoundCard("callgate_twin_a"), EmulatedSoundCard("callgate_twin_b"):
            with pytest.raises(SoundCardOpenError, match="matches several.*callgate_twin_a.*callgate_twin_b"):
                await open_sound_card("CALLGATE_TWIN")
            link = await open_sound_card("twin_b")  # a unique part is enough
            assert link.device_name == "callgate_twin_b"
            link.close()
            assert await link.wait_closed()

    asyncio.run(go())


def test_an_unplugged_card_ends_read_and_drops_writes() -> None:
    async def go() -> None:
        card = EmulatedSoundCard()
        card.open()
        link = await open_sound_card(card.name)
        assert await link.read()
        card.close()
        start = time.monotonic()
        while await asyncio.wait_for(link.read(), 2.0):
            pass
        assert time.monotonic() - start < 0.5
        assert link.closed and "stopped" in link.close_reason
        link.write(bytes(FRAME))  # dropped, not raised
        assert await link.wait_closed()

    asyncio.run(go())


def test_a_stalled_card_clock_ends_read_after_the_stall_timeout() -> None:
    async def go() -> None:
        card = EmulatedSoundCard()
        card.open()
        try:
            link = await open_sound_card(card.name, stall_timeout=0.2)
            assert await link.read()
            card.pause()
            start = time.monotonic()
            while await asyncio.wait_for(link.read(), 2.0):
                pass
            assert 0.1 <= time.monotonic() - start < 0.6
            assert "stalled" in link.close_reason
        finally:
            card.close()  # ends the driver read the stalled stream sits in
        assert await link.wait_closed()

    asyncio.run(go())


def test_playback_queue_overrun_drops_the_oldest_frames() -> None:
    async def go() -> None:
        with EmulatedSoundCard() as card:
            link = await open_sound_card(card.name)
            link.write(bytes(100))  # part frames wait for the rest
            assert link.counters()["queued_playback_frames"] == 0
            link.write(bytes(FRAME - 100) + bytes(FRAME * (WRITE_QUEUE_FRAMES + 29)))
            counters = link.counters()
            assert counters["playback_overruns"] + counters["frames_played"] >= 30
            assert counters["queued_playback_frames"] <= WRITE_QUEUE_FRAMES
            link.close()
            assert await link.wait_closed()

    asyncio.run(go())


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_frame_resampler_round_trip_keeps_tone_and_level(rate: int) -> None:
    up, down = FrameResampler(8000, rate), FrameResampler(rate, 8000)
    tone = pcm(sine(1000, 1.0))
    wide = [up.process(tone[i:i + FRAME]) for i in range(0, len(tone), FRAME)]
    assert {len(f) for f in wide} == {rate // 50 * 2}
    assert dominant_frequency(samples(b"".join(wide))[rate // 10:], rate) == pytest.approx(1000, abs=2)
    back = samples(b"".join(down.process(f) for f in wide))[800:]
    assert dominant_frequency(back) == pytest.approx(1000, abs=2)
    assert rms_dbfs(back) == pytest.approx(rms_dbfs(sine(1000, 1.0)), abs=0.3)
    with pytest.raises(ValueError, match="expects 160 samples"):
        up.process(bytes(100))


def test_frame_resampler_removes_what_the_lower_rate_cannot_carry() -> None:
    down = FrameResampler(48000, 8000)
    tone = pcm(sine(5000, 1.0, rate=48000))  # above 4 kHz: must not alias to 3 kHz
    out = samples(b"".join(down.process(tone[i:i + 1920]) for i in range(0, len(tone), 1920)))
    assert rms_dbfs(out[800:]) < rms_dbfs(sine(5000, 1.0)) - 40
