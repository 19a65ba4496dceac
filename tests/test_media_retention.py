"""Recording retention: by age and by total size, oldest first, never the recording being written."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.media.retention import prune

NOW = 1_800_000_000.0
DAY = 86400


def make(folder: Path, name: str, days_old: float, size: int) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    os.utime(path, (NOW - days_old * DAY, NOW - days_old * DAY))
    return path


def test_old_recordings_go_and_empty_day_folders_with_them(tmp_path):
    old = make(tmp_path, "2026-01-01/a.wav", 40, 100)
    recent = make(tmp_path, "2026-02-05/b.wav", 5, 100)
    writing = make(tmp_path, "2026-01-02/c.wav", 39, 100)     # a 39-day call still being written (clock skew)
    removed = prune(tmp_path, now=NOW, keep_days=30, in_use={writing})
    assert removed == [old]
    assert not old.parent.exists() and recent.exists() and writing.exists()


def test_total_size_removes_the_oldest_first_but_never_the_one_being_written(tmp_path):
    a = make(tmp_path, "d1/a.wav", 3, 400)
    b = make(tmp_path, "d1/b.wav", 2, 400)
    c = make(tmp_path, "d2/c.wav", 1, 400)
    d = make(tmp_path, "d2/d.wav", 0, 400)
    assert prune(tmp_path, now=NOW, max_bytes=900, in_use={a}) == [b, c]
    assert a.exists() and d.exists() and not b.exists() and not c.exists()
    assert prune(tmp_path, now=NOW, max_bytes=900, in_use={a}) == []      # 800 bytes now fit
    (tmp_path / "notes.txt").write_text("not a recording")
    assert prune(tmp_path, now=NOW, keep_days=0.5) == [a]      # d is less than half a day old
    assert d.exists() and (tmp_path / "notes.txt").exists()


def test_the_daemon_applies_the_policy_at_start(tmp_path):
    """A real daemon with recording_keep_days removes an old recording at start and keeps a recent one."""
    import time

    from hil.sim7600 import Sim7600Emulator
    from tests.stack import DEMO_FLOW, free_port, start_daemon, stop_daemon, wait_ready, write_config
    data_dir = tmp_path / "data"
    now = time.time()
    old = data_dir / "recordings" / "2020-01-01" / "c-old.wav"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"RIFF")
    os.utime(old, (now - 90 * DAY, now - 90 * DAY))
    recent = data_dir / "recordings" / "today" / "c-new.wav"
    recent.parent.mkdir(parents=True)
    recent.write_bytes(b"RIFF")
    emu = Sim7600Emulator()
    emu.start()
    config = tmp_path / "callgate.toml"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=data_dir, broker=None, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": emu.at_port,
                         "audio_port": emu.audio_port, "flow": str(DEMO_FLOW)}])
    text = config.read_text().replace("[gateway]\n", "[gateway]\nrecording_keep_days = 30\n", 1)
    config.write_text(text)
    proc = start_daemon(config, data_dir, tmp_path / "daemon.log")
    try:
        wait_ready(data_dir, proc, tmp_path / "daemon.log")
        deadline = time.monotonic() + 10
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not old.exists() and not old.parent.exists() and recent.exists()
        assert "recording retention removed 1 recording(s)" in (tmp_path / "daemon.log").read_text()
    finally:
        stop_daemon(proc)
        emu.stop()
