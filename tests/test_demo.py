"""The README's demo command works: `python -m hil demo` brings up the whole gateway and places a call."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

from tests.stack import REPO, free_port


def test_demo_runs_a_call_end_to_end(tmp_path):
    web = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "hil", "demo", "--calls", "1", "--interval", "0", "--max-call", "6",
         "--data", str(tmp_path / "demo"), "--web-port", str(web), "--mqtt-port", str(free_port()),
         "--ws-port", str(free_port())],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert f"Dashboard:   http://127.0.0.1:{web}/" in out
    assert "alice / alice-demo" in out
    for step in ("call 1: +15551230001 is calling", "answered by the flow", "caller pressed 1",
                 "queue support: 1 waiting", "caller hung up", "demo stopped"):
        assert step in out, f"missing {step!r} in:\n{out}"
    log = (tmp_path / "demo" / "daemon.log").read_text()
    assert "incoming call" in log and "Traceback" not in log
    # the dashboard was really served while the demo ran (the daemon is gone now)
    assert "dashboard http://127.0.0.1" in log
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=1)
        still_up = True
    except OSError:
        still_up = False
    assert not still_up, "the demo left its dashboard running"
