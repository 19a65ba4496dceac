"""The technician's commands against a running gateway: status, contacts, config check, hash-password."""

from __future__ import annotations

import json
import subprocess
import sys

from gateway.center.passwords import verify_password


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60,
                          input=stdin)


def test_status_reports_what_the_daemon_publishes(embedded_stack):
    out = run("status", "-c", str(embedded_stack.config), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    status = json.loads(out.stdout)
    assert status["status"]["online"] is True
    assert status["lines"]["gsm1"]["state"] == "idle"
    assert status["lines"]["gsm1"]["profile"] == "simcom_sim7600"
    line = status["lines"]["gsm1"]
    assert line["model"] == "SIMCOM_SIM7600G-H" and line["imei"] == "867584030000001"
    assert line["health"]["registration"] in ("home", "roaming") and line["health"]["dbm"] is not None
    assert status["queues"]["support"]["depth"] == 0
    assert set(status["agents"]) == {"alice", "bob"}

    human = run("status", "-c", str(embedded_stack.config))
    assert human.returncode == 0
    assert "online" in human.stdout and "gsm1" in human.stdout and "idle" in human.stdout
    assert "SIGNAL" in human.stdout and "dBm" in human.stdout and "NETWORK" in human.stdout
    assert "AGENT" in human.stdout and "alice" in human.stdout


def test_status_without_a_daemon_fails_clearly(embedded_stack):
    from tests.stack import stop_daemon
    stop_daemon(embedded_stack.proc)
    out = run("status", "-c", str(embedded_stack.config), "--timeout", "1")
    assert out.returncode == 1
    assert "cannot reach MQTT broker" in out.stdout or "no gateway" in out.stdout


def test_config_check(tmp_path, embedded_stack):
    ok = run("config", "check", "-c", str(embedded_stack.config), "--json")
    assert ok.returncode == 0, ok.stdout
    assert json.loads(ok.stdout)["valid"] is True

    bad = tmp_path / "bad.toml"
    bad.write_text(embedded_stack.config.read_text().replace('profile = "simcom_sim7600"', 'profile = "nokia3310"')
                   .replace("acw_timeout = 30", "acw_timeout = -1"))
    res = run("config", "check", "-c", str(bad))
    assert res.returncode == 1
    assert "queues[0].acw_timeout" in res.stdout and str(bad) in res.stdout

    typo = tmp_path / "typo.toml"
    typo.write_text(embedded_stack.config.read_text().replace("[web]", "[web]\nprot = 1"))
    res = run("config", "check", "-c", str(typo), "--json")
    assert res.returncode == 1
    assert any("web.prot: unknown key" in p for p in json.loads(res.stdout)["problems"])

    unknown_profile = tmp_path / "profile.toml"
    unknown_profile.write_text(embedded_stack.config.read_text().replace('profile = "simcom_sim7600"', 'profile = "nokia3310"'))
    res = run("config", "check", "-c", str(unknown_profile))
    assert res.returncode == 1 and "nokia3310" in res.stdout and "simcom_sim7600" in res.stdout


def test_contacts_empty_and_hash_password(embedded_stack):
    res = run("contacts", "-c", str(embedded_stack.config), "--json")
    assert res.returncode == 0 and json.loads(res.stdout) == []
    hashed = run("hash-password", stdin="s3cret\n")
    assert hashed.returncode == 0
    assert verify_password("s3cret", hashed.stdout.strip())
    assert not verify_password("other", hashed.stdout.strip())
    assert run("hash-password", stdin="\n").returncode == 2


def test_dashboard_over_https_when_the_config_names_a_certificate(tmp_path, embedded_stack):
    import ssl
    import urllib.request

    from tests.stack import start_daemon, stop_daemon, wait_ready
    stop_daemon(embedded_stack.proc)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=30)
    text = embedded_stack.config.read_text()
    missing = tmp_path / "missing.toml"
    missing.write_text(text.replace("[web]\n", '[web]\ncertfile = "nope.pem"\n'))
    res = run("config", "check", "-c", str(missing))
    assert res.returncode == 1 and "web.certfile: no such file" in res.stdout

    config = tmp_path / "tls.toml"
    config.write_text(text.replace("[web]\n", f'[web]\ncertfile = "{cert}"\nkeyfile = "{key}"\n'))
    (embedded_stack.data_dir / "daemon.json").unlink(missing_ok=True)
    proc = start_daemon(config, embedded_stack.data_dir, tmp_path / "tls.log")
    try:
        state = wait_ready(embedded_stack.data_dir, proc, tmp_path / "tls.log")
        assert state["dashboard"].startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with urllib.request.urlopen(state["dashboard"], context=context, timeout=5) as page:
            assert page.status == 200 and b"callgate" in page.read()
    finally:
        assert stop_daemon(proc) == 0


def test_media_commands_through_callgate(tmp_path):
    from gateway.media.dtmf import dtmf_sequence
    from gateway.media.wavfile import write_wav
    write_wav(tmp_path / "digits.wav", dtmf_sequence("42#"))
    out = run("media", "dtmf", str(tmp_path / "digits.wav"), "--json")
    assert out.returncode == 0, out.stderr
    assert [d["digit"] for d in json.loads(out.stdout)] == ["4", "2", "#"]
    speech = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(speech), "one two three"], check=True, timeout=30)
    out = run("media", "vad", str(speech), "--json")
    assert out.returncode == 0, out.stderr
    segments = json.loads(out.stdout)
    assert len(segments) >= 1 and all(s["end"] > s["start"] for s in segments)
    missing = run("media", "vad", str(tmp_path / "nope.wav"))
    assert missing.returncode == 2 and "nope.wav" in missing.stderr
