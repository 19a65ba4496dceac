"""Failures that must lose nothing: the modem vanishing mid-call, and kill -9 of the daemon mid-recording."""

from __future__ import annotations

import json
import signal
import time
import wave

from tests.stack import AgentClient, start_daemon, stop_daemon, wait_ready


def _records(stack) -> list[dict]:
    out = stack.cli("contacts", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _wait_record(stack, predicate, timeout=10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = next((r for r in _records(stack) if predicate(r)), None)
        if rec:
            return rec
        time.sleep(0.2)
    raise AssertionError(f"no matching contact record: {_records(stack)}\n{stack.log()[-3000:]}")


def test_modem_vanishing_mid_call_ends_the_contact_and_keeps_the_recording(embedded_stack):
    stack, emu = embedded_stack, embedded_stack.emulator
    agent = AgentClient(stack, "alice")
    try:
        assert agent.command("login", password="alice-pass")["ok"]
        assert agent.command("available")["ok"]
        emu.ring("+15551230003")
        assert emu.wait_for_state("active", 10)
        time.sleep(1.0)
        emu.send_dtmf("1")
        offer = agent.wait_for(lambda t, o: t.endswith("/agent/alice/offer"), 20, "offer")
        assert agent.command("accept", contact_id=offer["contact_id"])["ok"]
        time.sleep(1.5)
        emu.vanish()
        agent.agent_state("AfterCallWork", 10)
        line = agent.wait_for(lambda t, o: t.endswith("/line/gsm1") and o.get("state") == "failed", 10, "line failed")
        assert line["error"]
    finally:
        agent.close()
    rec = _wait_record(stack, lambda r: r["contact_id"] == offer["contact_id"] and r.get("ended_at"))
    assert rec["disconnect_reason"] == "modem_lost"
    assert rec["agent_id"] == "alice"
    with wave.open(rec["recording_path"]) as w:
        assert w.getnchannels() == 2
        assert abs(w.getnframes() / 8000 - rec["recording_seconds"]) < 0.05
    assert rec["recording_seconds"] > 2.0
    assert stack.proc.poll() is None, "the daemon died with its modem"


def test_kill_9_during_a_recording_keeps_record_and_audio(embedded_stack, tmp_path):
    stack, emu = embedded_stack, embedded_stack.emulator
    emu.ring("+15551230004")
    assert emu.wait_for_state("active", 10)
    time.sleep(3.0)     # greeting plays; more than two seconds of recording on disk
    stack.proc.send_signal(signal.SIGKILL)
    stack.proc.wait(5)
    rec = next(r for r in _records(stack) if r["caller"] == "+15551230004")
    assert rec["ended_at"] is None              # the record was committed while the call was live
    path = next((stack.data_dir / "recordings").rglob("*.wav"))

    log_path = tmp_path / "daemon2.log"
    (stack.data_dir / "daemon.json").unlink(missing_ok=True)
    stack.proc = start_daemon(stack.config, stack.data_dir, log_path)
    stack.log_path = log_path
    wait_ready(stack.data_dir, stack.proc, log_path)
    rec = _wait_record(stack, lambda r: r["caller"] == "+15551230004" and r.get("ended_at"))
    assert rec["disconnect_reason"] == "gateway_restart"
    with wave.open(str(path)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert seconds >= 1.5, f"only {seconds:.2f} s of the recording survived"
    assert abs(seconds - rec["recording_seconds"]) < 0.05
    # the call the killed daemon left up is hung up, and the line takes the next call
    assert emu.wait_for_state("idle", 10), "stale call not hung up after restart"
    emu.ring("+15551230005")
    assert emu.wait_for_state("active", 10)
    emu.hangup()
    assert stop_daemon(stack.proc) == 0
