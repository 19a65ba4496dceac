"""`callgate line test` through the running daemon: a real outbound call on the emulated modem, a tone
each way checked by FFT, the outcome in the contact record; a wrong line is refused with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from gateway.media.tones import dominant_frequency, sine


def test_line_test_places_a_call_and_reports_audio_both_ways(embedded_stack):
    stack, emu = embedded_stack, embedded_stack.emulator
    emu.clear_capture()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "line", "test", "-c", str(stack.config), "gsm1",
                             "+15557654321", "--seconds", "2", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert emu.wait_for_state("dialing", 15), stack.log()[-2000:]
        time.sleep(0.5)                     # ringing at the far end for a moment
        emu.play_pcm(sine(600.0, 4.0, amplitude=0.3))
        emu.remote_answer()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    reply = json.loads(out)
    assert reply["ok"], reply
    r = reply["result"]
    assert r["outcome"] == "answered" and r["progress"][:3] == ["dialing", "ringing", "answered"]
    assert r["received"]["audio"] and abs(r["received"]["dominant_hz"] - 600) < 20
    assert r["sent"]["audio"] and r["verdict"] == "audio both ways"
    heard = emu.capture()
    loud = np.flatnonzero(np.abs(heard) > 100)
    assert loud.size > 8000 and abs(dominant_frequency(heard[loud[0]:loud[-1]]) - 1000) < 20
    assert emu.wait_for_state("idle", 10)

    records = json.loads(stack.cli("contacts", "--json").stdout)
    rec = next(x for x in records if x["contact_id"] == r["call_id"])
    assert rec["initiation_method"] == "OUTBOUND" and rec["caller"] == "+15557654321"
    assert rec["disconnect_reason"] == "line_test_done" and rec["attributes"]["verdict"] == "audio both ways"


def test_line_test_refuses_an_unknown_line_and_a_daemon_that_is_not_there(embedded_stack, tmp_path):
    stack = embedded_stack
    out = stack.cli("line", "test", "nope", "+15551112222", "--json")
    assert out.returncode == 1
    reply = json.loads(out.stdout)
    assert reply["code"] == "unknown_line" and "gsm1" in reply["error"]
    bad = stack.cli("line", "test", "gsm1", "12ab", "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["code"] == "bad_number"

    started = time.monotonic()
    stopped = tmp_path / "other.toml"
    stopped.write_text(stack.config.read_text().replace(f'id = "{stack.gateway_id}"', 'id = "nobody-home"'))
    gone = subprocess.run([sys.executable, "-m", "gateway", "line", "test", "-c", str(stopped), "gsm1", "+1555",
                           "--timeout", "2"], capture_output=True, text=True, timeout=30)
    assert gone.returncode == 2 and "no answer from gateway 'nobody-home'" in gone.stderr
    assert time.monotonic() - started < 15
