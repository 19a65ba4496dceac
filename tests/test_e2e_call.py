"""The whole path in one test: emulated SIM7600 rings, the flow answers, the caller queues, an MQTT
agent takes the call with audio both ways, the caller hangs up; run on the embedded broker and on mosquitto."""

from __future__ import annotations

import json
import time
import wave

import numpy as np

from gateway.api import audio_frames
from gateway.media.g711 import ulaw_decode, ulaw_encode
from gateway.media.tones import dominant_frequency, rms_dbfs, sine
from tests.stack import AgentClient

CALLER = "+15551230001"


def _send_tone(agent: AgentClient, call_id: str, freq: float, seconds: float) -> None:
    samples = sine(freq, seconds, amplitude=0.4)
    topic = f"{agent.base}/agent/{agent.agent_id}/audio/{call_id}"
    start = time.monotonic()
    for seq, i in enumerate(range(0, len(samples) - 159, 160)):
        payload = audio_frames.pack(seq, time.time() * 1000, ulaw_encode(samples[i:i + 160]))
        agent.client.publish(topic, payload, qos=0)
        delay = start + (seq + 1) * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def test_call_answered_queued_and_taken_by_agent(stack):
    emu = stack.emulator
    agent = AgentClient(stack, "alice")
    try:
        agent.wait_for(lambda t, o: t.endswith("/status") and o.get("online") is True, what="gateway online")
        emu.ring(CALLER)
        assert emu.wait_for_state("active", 10), f"call not answered; log:\n{stack.log()[-3000:]}"
        deadline = time.monotonic() + 10
        while not emu.pcm_enabled and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emu.pcm_enabled, "gateway never switched USB audio on (AT+CPCMREG=1)"

        # the greeting is spoken into the call
        time.sleep(2.5)
        greeting = emu.capture()
        assert len(greeting) > 8000, "less than a second of audio written by the gateway"
        assert rms_dbfs(greeting) > -40, f"greeting is silent ({rms_dbfs(greeting):.1f} dBFS)"

        emu.send_dtmf("1")
        queue = agent.wait_for(lambda t, o: t.endswith("/queue/support") and o.get("depth") == 1, 15, "contact queued")
        assert queue["contacts"][0]["caller"] == CALLER

        assert agent.command("login", password="alice-pass")["ok"]
        assert agent.command("available")["ok"]
        offer = agent.wait_for(lambda t, o: t.endswith("/agent/alice/offer"), 10, "offer")
        assert offer["caller"] == CALLER and offer["queue"] == "support"
        reply = agent.command("accept", contact_id=offer["contact_id"])
        assert reply["ok"], reply
        agent.agent_state("OnCall")
        call_id = offer["call_id"]

        # caller -> agent: a 1000 Hz tone from the emulator arrives on the agent's audio topic
        since = time.monotonic()
        emu.play_pcm(sine(1000, 2.0, amplitude=0.4))
        time.sleep(1.6)
        frames = agent.audio_frames(call_id, since)
        assert len(frames) >= 40, f"only {len(frames)} audio frames reached the agent"
        seqs = [audio_frames.unpack(f)[0] for f in frames]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        heard = np.concatenate([ulaw_decode(audio_frames.unpack(f)[2]) for f in frames])
        loud = heard[np.abs(heard.astype(np.int32)).argmax() - 2000:][:4000]
        assert abs(dominant_frequency(loud) - 1000) < 15

        # agent -> caller: a 600 Hz tone from the agent arrives in the emulator's capture
        time.sleep(0.5)
        emu.clear_capture()
        _send_tone(agent, call_id, 600, 1.5)
        time.sleep(0.3)
        said = emu.capture()
        assert rms_dbfs(said) > -30, "agent audio did not reach the caller"
        voiced = said[np.abs(said) > 1000]
        assert len(voiced) > 4000
        assert abs(dominant_frequency(said[len(said) // 4: 3 * len(said) // 4]) - 600) < 15

        # the caller's audio stalls for 140 ms (the emulator's loop is blocked), then its clock sends the
        # missed frames at once: silent ticks, then more frames than the call's inbound buffer holds
        emu._call_in_loop(time.sleep, 0.14)
        time.sleep(0.3)

        emu.hangup()
        assert emu.wait_for_state("idle", 5)
        acw = agent.agent_state("AfterCallWork", 10)
        assert acw["contact_id"] == offer["contact_id"]
    finally:
        agent.close()

    # the contact record and the recording
    deadline = time.monotonic() + 10
    record = None
    while time.monotonic() < deadline:
        out = stack.cli("contacts", "--json")
        rows = json.loads(out.stdout) if out.returncode == 0 else []
        record = next((r for r in rows if r["contact_id"] == offer["contact_id"] and r.get("recording_seconds")), None)
        if record:
            break
        time.sleep(0.2)
    assert record is not None, f"no finished contact record; cli: {out.stdout} {out.stderr}"
    assert record["caller"] == CALLER
    assert record["queue_id"] == "support" and record["agent_id"] == "alice"
    assert record["disconnect_reason"] == "customer_hung_up"
    assert record["initiated_at"] <= record["enqueued_at"] <= record["connected_to_agent_at"] <= record["ended_at"]
    call_seconds = record["ended_at"] - record["initiated_at"]
    assert abs(record["recording_seconds"] - call_seconds) < 1.5, (record["recording_seconds"], call_seconds)
    with wave.open(record["recording_path"]) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 8000
        seconds = w.getnframes() / 8000
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert abs(seconds - record["recording_seconds"]) < 0.05
    left, right = stereo[:, 0], stereo[:, 1]
    assert rms_dbfs(left) > -40 and rms_dbfs(right) > -40
    # the caller's tone is on the left channel, the agent's on the right
    t_agent = int((record["connected_to_agent_at"] - record["initiated_at"]) * 8000)
    assert abs(dominant_frequency(left[t_agent:]) - 1000) < 20
    assert abs(dominant_frequency(right[t_agent:]) - 600) < 20
    media = record["media"]
    assert 3 <= media["caller_underruns"] <= 40, media
    assert media["caller_overruns"] >= 1, media
    assert 1.5 <= media["caller_speech_seconds"] <= 4.0, media     # the 2 s tone and the DTMF press
    assert {"late_ticks", "resyncs"} <= media.keys() and media["frames_out"] >= media["ticks"] > 200, media
    table = stack.cli("contacts")
    assert table.returncode == 0 and CALLER in table.stdout and "customer_hung_up" in table.stdout
