"""The Line on the V.253 emulator (USR 5637 and Conexant dialects): caller ID between rings, answer into
full-duplex voice with DLE-shielded 8-bit audio both ways (checked by FFT), DTMF in the stream, the far
end hanging up (busy then dial tone: no NO CARRIER on an analog line), and outbound calls."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gateway.media.frames import frame_to_array, pcm_to_frames
from gateway.media.tones import dominant_frequency, sine
from gateway.modem.line import Line, LineState
from gateway.modem.profile import load_profile
from hil.v253 import V253Emulator
from tests.test_modem_line import Recorder, until

PROFILES = {"usr5637": "v253_usr5637", "cx93001": "v253_conexant"}


class AudioRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[bytes] = []

    def audio_in(self, line, call, frame):
        self.frames.append(frame)


@pytest.fixture(params=sorted(PROFILES))
def v253(request):
    emu = V253Emulator(request.param, ring_interval=0.6, busy_interval=0.3)
    emu.start()
    yield request.param, emu
    emu.stop()


def test_inbound_call_with_caller_id_audio_dtmf_and_far_end_hangup(v253):
    dialect, emu = v253

    async def scenario():
        rec = AudioRecorder()
        line = Line("pots1", load_profile(PROFILES[dialect]), emu.at_port, None, rec)
        tone = pcm_to_frames(sine(1000.0, 3.0, amplitude=0.3))
        line.set_audio_source(lambda: tone.pop(0) if tone else b"")
        task = asyncio.create_task(line.run())
        try:
            await until(lambda: line.state == LineState.IDLE, 10, lambda: line.error)
            emu.ring("5551234567", "WIRELESS CALLER")
            await until(lambda: ("incoming", "5551234567") in rec.events, 10, lambda: rec.events)
            emu.play_pcm(sine(600.0, 3.0, amplitude=0.3))
            await line.answer()
            assert emu.wait_for_stream("duplex", 5)
            await until(lambda: len(rec.frames) >= 100, 10, lambda: len(rec.frames))
            heard = np.concatenate([frame_to_array(f) for f in rec.frames[10:100]])
            assert abs(dominant_frequency(heard) - 600) < 20
            emu.send_dtmf("42#")
            await until(lambda: [e[1] for e in rec.events if e[0] == "dtmf"] == ["4", "2", "#"], 10,
                        lambda: rec.events)
            await asyncio.sleep(1.0)
            got = emu.capture()
            loud = np.flatnonzero(np.abs(got) > 500)
            assert loud.size > 4000 and abs(dominant_frequency(got[loud[0]:loud[-1]]) - 1000) < 20
            emu.hangup()
            await until(lambda: ("ended", "customer_hung_up") in rec.events, 10, lambda: rec.events)
            await until(lambda: emu.state == "idle", 10, lambda: emu.state)     # we went on-hook
            assert line.state == LineState.IDLE
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    asyncio.run(scenario())


@pytest.mark.parametrize("outcome, expected", [("answer", None), ("busy", "busy"), ("no_answer", "no_answer")])
def test_outbound_outcomes(v253, outcome, expected):
    dialect, emu = v253

    async def scenario():
        rec = AudioRecorder()
        line = Line("pots1", load_profile(PROFILES[dialect]), emu.at_port, None, rec)
        task = asyncio.create_task(line.run())
        try:
            await until(lambda: line.state == LineState.IDLE, 10, lambda: line.error)
            emu.set_outbound_outcome(outcome, rings=1)
            call = await line.dial("5559876543", timeout=4.0 if outcome == "no_answer" else None)
            if expected is None:
                assert call.answered_at is not None and line.state == LineState.IN_CALL
                assert [s for s, _ in call.progress][:2] == ["dialing", "answered"]
                await line.hangup("done")
                assert call.end_reason == "done"
            else:
                assert call.ended and call.end_reason in (expected, "timeout"), call.end_reason
            await until(lambda: emu.state == "idle", 10, lambda: emu.state)
            assert line.state == LineState.IDLE
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    asyncio.run(scenario())
