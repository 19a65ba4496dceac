"""The customer queue flow through the real daemon on an emulated SIM7600 with an MQTT agent.

The line's flow sets a CustomerQueue flow and queues the caller. While the caller waits, that flow tells
them their place ("You are number 1 in the queue.") and loops a hold message: the caller hears speech,
not the hold chime. The agent accepts: the message stops mid-word and the agent's audio reaches the
caller. The contact record holds the queue flow's steps, marked with the hook.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from gateway.api import audio_frames
from gateway.media.g711 import ulaw_encode
from gateway.media.tones import dominant_frequency, rms_dbfs, sine
from tests.stack import AgentClient, Stack, launch, stop_daemon

CALLER = "+15551230042"
CHIME_HZ = (523.25, 659.25, 783.99)  # the notes of the generated hold music
HOLD = ("Thank you for waiting. All of our agents are busy with other callers just now. Your call is "
        "important to us, and the next free agent will take it. Please stay on the line.")


def _act(ident, type_, params, next_action=None, errors=(), conditions=()):
    transitions = {"Errors": [{"ErrorType": e, "NextAction": t} for e, t in errors],
                   "Conditions": [{"NextAction": t, "Condition": {"Operator": "Equals", "Operands": [k]}}
                                  for k, t in conditions]}
    if next_action:
        transitions["NextAction"] = next_action
    return {"Identifier": ident, "Type": type_, "Parameters": params, "Transitions": transitions}


def _doc(*actions):
    return {"Version": "2019-10-30", "StartAction": actions[0]["Identifier"], "Actions": list(actions)}


MAIN = _doc(
    _act("queue", "UpdateContactTargetQueue", {"QueueId": "support"}, "hook"),
    _act("hook", "UpdateContactEventHooks", {"EventHooks": {"CustomerQueue": "waiting"}}, "go"),
    _act("go", "TransferContactToQueue", {}, None, [("QueueAtCapacity", "bye")]),
    _act("bye", "DisconnectParticipant", {}))
WAITING = _doc(
    _act("metrics", "GetMetricData", {}, "position", [("NoMatchingError", "hold")]),
    _act("position", "MessageParticipant", {"Text": "You are number $.Metrics.Queue.Position in the queue."}, "hold"),
    _act("hold", "MessageParticipantIteratively", {"Messages": [{"Text": HOLD}], "InterruptFrequencySeconds": "25"},
         conditions=[("MessagesInterrupted", "metrics")]))


def _chime_share(samples: np.ndarray) -> float:
    """The share of the signal's energy within 15 Hz of the hold chime's notes."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    hz = np.fft.rfftfreq(len(samples), 1 / 8000)
    near = np.zeros_like(hz, dtype=bool)
    for f in CHIME_HZ:
        near |= np.abs(hz - f) < 15
    return float(spectrum[near].sum() / max(spectrum.sum(), 1e-9))


def _start(tmp_path: Path) -> Stack:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.json").write_text(json.dumps(MAIN))
    (flows / "waiting.json").write_text(json.dumps(WAITING))
    return launch(tmp_path, flows / "main.json")



def _send_tone(agent: AgentClient, call_id: str, freq: float, seconds: float) -> None:
    samples = sine(freq, seconds, amplitude=0.4)
    topic = f"{agent.base}/agent/{agent.agent_id}/audio/{call_id}"
    start = time.monotonic()
    for seq, i in enumerate(range(0, len(samples) - 159, 160)):
        agent.client.publish(topic, audio_frames.pack(seq, time.time() * 1000, ulaw_encode(samples[i:i + 160])), qos=0)
        delay = start + (seq + 1) * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def test_waiting_caller_hears_the_queue_flow_until_the_agent_accepts(tmp_path):
    stack = _start(tmp_path)
    emu = stack.emulator
    agent = AgentClient(stack, "alice")
    try:
        agent.wait_for(lambda t, o: t.endswith("/status") and o.get("online") is True, what="gateway online")
        emu.ring(CALLER)
        assert emu.wait_for_state("active", 10), f"call not answered; log:\n{stack.log()[-3000:]}"
        agent.wait_for(lambda t, o: t.endswith("/queue/support") and o.get("depth") == 1, 15, "caller queued")

        # "You are number 1 in the queue.", then the hold message (9 s long): speech, not the chime
        time.sleep(3.0)
        emu.clear_capture()
        time.sleep(3.0)
        waiting = emu.capture()
        assert waiting.size > 8000 * 2.5, waiting.size
        windows = [waiting[i:i + 2000] for i in range(0, waiting.size - 1999, 2000)]   # quarter seconds
        kinds = ["speech" if rms_dbfs(w) > -40 and _chime_share(w) < 0.3 else
                 "chime" if _chime_share(w) > 0.8 else "quiet" for w in windows]
        assert kinds.count("speech") >= 0.8 * len(kinds) and "chime" not in kinds, kinds

        assert agent.command("login", password="alice-pass")["ok"]
        assert agent.command("available")["ok"]
        offer = agent.wait_for(lambda t, o: t.endswith("/agent/alice/offer"), 10, "offer")
        emu.clear_capture()
        assert agent.command("accept", contact_id=offer["contact_id"])["ok"]
        accepted = time.monotonic()
        agent.agent_state("OnCall")

        # the hold message stops mid-word: the agent says nothing yet, the caller hears silence
        time.sleep(1.2)
        heard = emu.capture()
        speaking = np.flatnonzero(np.abs(heard.astype(np.int32)) > 300)
        stopped_after = (speaking[-1] / 8000 if speaking.size else 0.0)
        assert stopped_after < 0.4, f"the prompt went on {stopped_after:.2f} s after the accept"
        assert rms_dbfs(heard[int(0.5 * 8000):]) < -50

        # the bridge: the agent's 600 Hz reaches the caller
        emu.clear_capture()
        _send_tone(agent, offer["call_id"], 600, 1.5)
        time.sleep(0.3)
        said = emu.capture()
        assert rms_dbfs(said) > -30, "agent audio did not reach the caller"
        assert abs(dominant_frequency(said[len(said) // 4: 3 * len(said) // 4]) - 600) < 15
        assert time.monotonic() - accepted < 10

        emu.hangup()
        assert emu.wait_for_state("idle", 5)
        agent.agent_state("AfterCallWork", 10)
    finally:
        agent.close()
        code = stop_daemon(stack.proc)
        stack.emulator.stop()
    assert code == 0, stack.log()[-3000:]

    out = stack.cli("contacts", "--json")
    record = next(r for r in json.loads(out.stdout) if r["contact_id"] == offer["contact_id"])
    assert record["agent_id"] == "alice" and record["queue_id"] == "support"
    hooked = [(s["id"], s["branch"]) for s in record["flow_path"] if s.get("hook") == "CustomerQueue"]
    assert hooked == [("metrics", "next"), ("position", "next")]  # the hold loop was cut by the accept
    assert [s["id"] for s in record["flow_path"] if "hook" not in s] == ["queue", "hook", "go"]
