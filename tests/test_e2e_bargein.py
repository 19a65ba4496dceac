"""Barge-in through the real daemon on an emulated SIM7600: the caller presses a key in the middle of a
long menu prompt and the prompt stops at once, whether the modem reports the digit (+RXDTMF) or only
the in-band detector hears it in the caller's audio (a profile that reads no DTMF lines, a key held
for 600 ms: the prompt stops while it is still down); the key's branch is taken.

The delay is measured on the far end, as a caller would hear it: from the moment the test presses the
key to the moment the emulator has received the last frame of prompt audio. The prompt played is the
daemon's own rendering (its disk cache), so the frames it wrote can be matched bit for bit.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gateway.media.wavfile import read_wav
from hil.gsm.mixer import dtmf_tone
from tests.stack import REPO, Stack, launch, stop_daemon, wait_until

CALLER = "+15551230007"
MAX_BARGE_IN_DELAY = 0.300  # seconds from the key press to the end of the prompt audio
LONG_PRESS = 0.6  # seconds: the prompt must stop while the key is still down
PROMPT = ("Welcome to the barge-in test line. This message is deliberately long, so that a caller who knows "
          "what they want never has to wait for it to end. For sales, press one. For support, press two. "
          "For billing and everything else about your account, stay on the line and an agent will help you.")
FLOW = {
    "Version": "2019-10-30",
    "StartAction": "menu",
    "Metadata": {"Name": "barge-in menu"},
    "Actions": [
        {"Identifier": "menu", "Type": "GetParticipantInput",
         "Parameters": {"Text": PROMPT, "InputTimeLimitSeconds": "5", "StoreInput": "False"},
         "Transitions": {
             "NextAction": "chose-nothing",
             "Conditions": [
                 {"NextAction": "chose-sales", "Condition": {"Operator": "Equals", "Operands": ["1"]}},
                 {"NextAction": "chose-support", "Condition": {"Operator": "Equals", "Operands": ["2"]}}],
             "Errors": [{"NextAction": "chose-nothing", "ErrorType": "InputTimeLimitExceeded"},
                        {"NextAction": "chose-nothing", "ErrorType": "NoMatchingCondition"},
                        {"NextAction": "chose-nothing", "ErrorType": "NoMatchingError"}]}},
        *[{"Identifier": f"chose-{name}", "Type": "UpdateContactAttributes",
           "Parameters": {"Attributes": {"choice": name}},
           "Transitions": {"NextAction": "pause", "Errors": [{"NextAction": "pause", "ErrorType": "NoMatchingError"}]}}
          for name in ("sales", "support", "nothing")],
        # a second of silence before hanging up: what follows the prompt on the line is its absence
        {"Identifier": "pause", "Type": "MessageParticipant",
         "Parameters": {"SSML": '<speak><break time="1s"/></speak>'},
         "Transitions": {"NextAction": "hang-up",
                         "Errors": [{"NextAction": "hang-up", "ErrorType": "NoMatchingError"}]}},
        {"Identifier": "hang-up", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
    ],
}


class CapturePoller:
    """Samples how much audio the emulator has received from the gateway, every few ms, in a thread:
    (monotonic time, samples captured so far)."""

    def __init__(self, emulator: Sim7600Emulator, interval: float = 0.005) -> None:
        self.emulator, self.interval = emulator, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture-poller", daemon=True)

    def __enter__(self) -> "CapturePoller":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            count = len(self.emulator.capture())
            self.samples.append((time.monotonic(), count))  # held by then at the latest

    def received_at(self, count: int) -> float:
        """When the emulator first held at least `count` samples of the gateway's audio."""
        return next(t for t, n in self.samples if n >= count)


def _start(tmp_path: Path, inband: bool):
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(FLOW))
    profile = "simcom_sim7600"
    if inband:
        # the modem's +RXDTMF lines are not recognised, so only the in-band detector can hear the key
        shutil.copy(REPO / "firmware_config" / "simcom_sim7600.toml", tmp_path / "simcom_sim7600.toml")
        (tmp_path / "sim7600_inband.toml").write_text(
            '[profile]\nextends = "simcom_sim7600"\nid = "sim7600_inband"\n\n[dtmf]\ninband = "on"\nevents = []\n')
        profile = str(tmp_path / "sim7600_inband.toml")
    return launch(tmp_path, flow, profile=profile)



def _contact_record(stack: Stack) -> dict:
    def finished():
        out = stack.cli("contacts", "--json")
        rows = json.loads(out.stdout) if out.returncode == 0 else []
        return next((r for r in rows if r["caller"] == CALLER and r.get("ended_at")), None)
    return wait_until(finished, 15, "the finished contact record", stack)


@pytest.mark.parametrize("source", ["modem", "inband"])
def test_key_pressed_mid_prompt_stops_it_and_takes_the_branch(tmp_path, source):
    stack = _start(tmp_path, inband=source == "inband")
    emu = stack.emulator
    try:
        with CapturePoller(emu) as poller:
            emu.ring(CALLER)
            assert emu.wait_for_state("active", 10), f"call not answered; log:\n{stack.log()[-3000:]}"
            wait_until(lambda: np.abs(emu.capture()).max(initial=0) > 2000, 10, "the prompt to start", stack)
            time.sleep(2.5)
            pressed = time.monotonic()
            if source == "modem":
                emu.send_dtmf("2")  # +RXDTMF: 2 and a 100 ms tone
            else:
                emu.play_pcm(dtmf_tone("2", LONG_PRESS))  # the tone alone, held longer than the bound
            assert emu.wait_for_state("idle", 10), f"the flow did not hang up; log:\n{stack.log()[-3000:]}"
        heard = emu.capture()
        record = _contact_record(stack)
    finally:
        code = stop_daemon(stack.proc)
        emu.stop()
    assert code == 0, f"daemon exited with {code}:\n{stack.log()[-3000:]}"

    # the prompt as the daemon rendered it, found bit for bit in what the far end heard
    (cached,) = (stack.data_dir / "prompts").glob("*.wav")
    prompt = read_wav(cached)
    assert prompt.size > 8000 * 10, "the prompt is not long enough to interrupt"
    offset = int(np.flatnonzero(heard)[0] - np.flatnonzero(prompt)[0])
    assert offset >= 0
    played = heard[offset : offset + prompt.size]
    assert played.size > 8000 * 2, "the call ended before the key was pressed"
    differs = np.flatnonzero(played != prompt[: played.size])
    assert differs.size, "the whole prompt was played: the key did not interrupt it"
    cut = int(differs[0])  # the first sample that is no longer the prompt (silence once it stopped)
    assert cut > 8000 * 2, "the prompt stopped before the key was pressed"
    assert heard.size - (offset + cut) > 8000 // 2, "the call ended with the prompt, not after it"
    assert not heard[offset + cut :].any(), "prompt audio after the cut"
    assert prompt.size - cut > 8000 * 5, "the key came too late to show an interruption"

    # from the key press to the moment the far end got the first audio that is no longer the prompt
    delay = poller.received_at(offset + cut + 1) - pressed
    print(f"barge-in with {source} DTMF: prompt audio ended {delay * 1000:.0f} ms after the key press "
          f"({cut / 8000:.2f} s into a {prompt.size / 8000:.1f} s prompt)")
    assert 0 < delay < MAX_BARGE_IN_DELAY, f"prompt audio ended {delay * 1000:.0f} ms after the key press"

    # the key's branch: 2 is support
    assert record["attributes"] == {"choice": "support"}
    path = [(step["id"], step["branch"]) for step in record["flow_path"]]
    assert path == [("menu", "condition:2"), ("chose-support", "next"), ("pause", "next"), ("hang-up", "disconnected")]
    assert record["disconnect_reason"] in ("flow_disconnect", "gateway_hung_up"), record["disconnect_reason"]
