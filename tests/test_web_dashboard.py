"""Agent dashboard: the HTTP server, deploy/web-vendor.sh, and the page in headless Chromium against
mosquitto, with the test playing the gateway side of docs/mqtt-api.md."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from gateway.web.server import STATIC_DIR, DashboardServer
from tests.web_helpers import (MqttProbe, audio_frame, chromium_page, dominant_frequency, make_tone_wav,
                               parse_audio_frame, run_mosquitto, tone_frames, ulaw_decode)

ROOT = Path(__file__).resolve().parent.parent
VENDOR = STATIC_DIR / "vendor" / "mqtt.min.js"
GW = "gwtest"
P = f"callgate/{GW}/"
CALL = "c-42"
UPLINK_TONE_HZ = 600.0
DOWNLINK_TONE_HZ = 1000.0


def get(url: str, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    """Raw request (no client-side path normalisation, so ../ reaches the server as sent)."""
    parts = urllib.request.urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request(method, path)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


@pytest.fixture
def server():
    srv = DashboardServer("127.0.0.1", 0, ws_url="ws://127.0.0.1:9001/mqtt", gateway_id="gw-a")
    srv.start()
    yield srv
    srv.stop()


# ----------------------------------------------------------------------------- HTTP server

def test_serves_page_config_and_vendor_with_mime_types(server):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", server.url) and server.port != 0
    status, headers, body = get(server.url, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'id="agent-id"' in body and b"vendor/mqtt.min.js" in body
    status, headers, body = get(server.url, "/index.html")
    assert status == 200 and b'id="accept"' in body

    status, headers, body = get(server.url, "/config.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"ws_url": "ws://127.0.0.1:9001/mqtt", "gateway_id": "gw-a"}

    status, headers, body = get(server.url, "/vendor/mqtt.min.js")
    assert status == 200 and headers["content-type"].split(";")[0] == "text/javascript"
    assert len(body) > 100_000 and body == VENDOR.read_bytes()
    for name, mime in (("app.js", "text/javascript"), ("audio-worklets.js", "text/javascript"),
                       ("g711.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, _ = get(server.url, "/" + name)
        assert (status, headers["content-type"].split(";")[0]) == (200, mime), name

    status, headers, body = get(server.url, "/app.js", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 1000


@pytest.mark.parametrize("path", [
    "/../server.py", "/..%2fserver.py", "/%2e%2e/server.py", "/vendor/../../server.py",
    "/vendor/", "/vendor", "/.gitignore", "/nope.html", "/static/index.html", "/..\\server.py",
    "//etc/passwd", "/%00index.html",
])
def test_nothing_outside_the_static_folder_and_no_listing(server, path):
    status, _, body = get(server.url, path)
    assert status == 404, (path, status)
    assert b"def " not in body and b"root:" not in body


def test_read_only_and_wildcard_broker_host(server):
    assert get(server.url, "/index.html", method="POST")[0] == 405
    srv = DashboardServer("127.0.0.1", 0, ws_url="ws://0.0.0.0:9001/mqtt", gateway_id="g")
    with srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        conn.request("GET", "/config.json", headers={"Host": f"pbx.example:{srv.port}"})
        assert json.loads(conn.getresponse().read())["ws_url"] == "ws://pbx.example:9001/mqtt"
        conn.close()


def test_missing_vendor_file_says_how_to_fix(tmp_path):
    static = tmp_path / "static"
    shutil.copytree(STATIC_DIR, static, ignore=shutil.ignore_patterns("vendor"))
    with DashboardServer("127.0.0.1", 0, ws_url="ws://127.0.0.1:1/", gateway_id="g",
                         static_dir=static) as srv:
        status, headers, body = get(srv.url, "/vendor/mqtt.min.js")
        assert status == 503 and b"deploy/web-vendor.sh" in body
        wav = make_tone_wav(tmp_path / "mic.wav", seconds=2)
        with chromium_page(wav) as page:
            page.goto(srv.url)
            page.wait_for_selector("#notice:not([hidden])", timeout=5000)
            assert "deploy/web-vendor.sh" in page.inner_text("#notice")
            assert page.is_disabled("#login")


def test_https_when_given_a_certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=30)
    with DashboardServer("127.0.0.1", 0, ws_url="wss://127.0.0.1:8883/", gateway_id="g",
                         certfile=str(cert), keyfile=str(key)) as srv:
        assert srv.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        with urllib.request.urlopen(srv.url + "config.json", context=ctx, timeout=5) as res:
            assert json.load(res)["ws_url"] == "wss://127.0.0.1:8883/"


def test_module_entry_point_serves_until_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "gateway.web", "--ws", "ws://127.0.0.1:9001/",
                             "--gateway", "callgate", "--port", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        status, _, body = get(url, "/config.json")
        assert status == 200
        assert json.loads(body) == {"ws_url": "ws://127.0.0.1:9001/", "gateway_id": "callgate"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- web-vendor.sh

FAKE_NPM = """#!/bin/sh
echo "$@" >> "$NPM_LOG"
case "$1" in
  view) echo '["5.1.0", "'"$FAKE_VERSION"'", "5.2.0"]' ;;
  pack) mkdir -p package/dist
        echo "/* mqtt $FAKE_VERSION */" > package/dist/mqtt.min.js
        echo '{"version": "'"$FAKE_VERSION"'"}' > package/package.json
        tar -czf "mqtt-$FAKE_VERSION.tgz" package && rm -r package ;;
esac
"""


def test_vendor_script_fetches_once_per_version(tmp_path):
    (tmp_path / "deploy").mkdir()
    script = tmp_path / "deploy" / "web-vendor.sh"
    shutil.copy(ROOT / "deploy" / "web-vendor.sh", script)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(FAKE_NPM)
    (bin_dir / "npm").chmod(0o755)
    log = tmp_path / "npm.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "NPM_LOG": str(log)}
    target = tmp_path / "gateway/web/static/vendor/mqtt.min.js"

    def run(version):
        env["FAKE_VERSION"] = version
        return subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=30)

    assert run("5.16.0").returncode == 0
    assert target.read_text() == "/* mqtt 5.16.0 */\n"
    assert run("5.16.0").returncode == 0                     # same version: no download
    assert [ln.split()[0] for ln in log.read_text().splitlines()] == ["view", "pack", "view"]
    assert "pack --silent mqtt@5.16.0" in log.read_text()
    assert run("5.17.1").returncode == 0                     # newer release: fetched
    assert target.read_text() == "/* mqtt 5.17.1 */\n"

    no_npm = tmp_path / "empty"
    no_npm.mkdir()
    for tool in ("dirname", "cat", "mktemp"):
        (no_npm / tool).symlink_to(shutil.which(tool))
    res = subprocess.run(["/bin/sh", str(script)], env={"PATH": str(no_npm)}, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1 and "npm is not installed" in res.stderr


# ----------------------------------------------------------------------------- the page

@pytest.fixture
def broker(tmp_path):
    with run_mosquitto(tmp_path) as m:
        yield m


@pytest.fixture
def gateway(broker):
    """The test's stand-in for the gateway: retained state plus a command listener."""
    gw = MqttProbe(broker.tcp_port, client_id="fake-gateway")
    gw.subscribe(P + "agent/+/cmd")
    yield gw
    gw.close()


def reply(gw: MqttProbe, agent: str, cmd: dict, **fields) -> None:
    gw.publish(f"{P}agent/{agent}/reply", {"id": cmd["id"], "action": cmd["action"], **fields})


def agent_state(gw: MqttProbe, state: str, **extra) -> None:
    gw.publish(f"{P}agent/alice/state",
               {"agent": "alice", "name": "Alice", "state": state, "since": time.time(),
                "contact_id": None, "offer": None, **extra}, retain=True)


def test_agent_takes_a_call_in_chromium(tmp_path, broker, gateway):
    gw = gateway
    uplink = MqttProbe(broker.tcp_port, client_id="fake-gateway-audio")
    uplink.subscribe(f"{P}agent/alice/audio/+", qos=0)
    gw.publish(P + "status", {"online": True, "version": "0.1.0", "started": time.time(),
                              "lines": ["gsm1"], "queues": ["support"]}, retain=True)
    gw.publish(P + "queue/support", {
        "queue": "support", "name": "Support", "depth": 2, "oldest_wait": 42.0,
        "contacts": [{"contact_id": "c-41", "caller": "+15551230001", "waiting_since": time.time() - 42,
                      "wait": 42.0},
                     {"contact_id": "c-42", "caller": "+15551230002", "waiting_since": time.time() - 7,
                      "wait": 7.0}]}, retain=True)
    agent_state(gw, "Offline")

    wav = make_tone_wav(tmp_path / "mic600.wav", freq=UPLINK_TONE_HZ, seconds=60)
    with DashboardServer("127.0.0.1", 0, ws_url=broker.ws_url, gateway_id=GW) as srv, \
            chromium_page(wav) as page:
        page.add_init_script("window.__cgConfig = {commandTimeoutMs: 1000}")
        page.goto(srv.url)
        page.wait_for_function("document.querySelector('#gateway-id').value === 'gwtest'", timeout=5000)
        assert page.input_value("#broker-url") == broker.ws_url
        page.fill("#agent-id", "alice")

        # An unknown agent's reply comes on …/errors; a bad password on the agent's reply topic.
        page.fill("#password", "wrong")
        page.click("#login")
        cmd = gw.expect_json(P + "agent/alice/cmd")
        assert cmd["action"] == "login" and cmd["password"] == "wrong" and isinstance(cmd["id"], str)
        gw.publish(P + "errors", {"id": cmd["id"], "ok": False, "action": "login",
                                  "error": "no agent alice on this gateway", "code": "unknown_agent"})
        page.wait_for_selector("#error:not([hidden])", timeout=5000)
        assert "no agent alice on this gateway" in page.inner_text("#error-text")
        assert "unknown_agent" in page.inner_text("#error-text")

        page.click("#login")
        cmd = gw.expect_json(P + "agent/alice/cmd")
        reply(gw, "alice", cmd, ok=False, error="wrong password", code="bad_credentials")
        page.wait_for_function("document.querySelector('#error-text').textContent.includes('bad_credentials')",
                               timeout=5000)
        assert page.is_visible("#login-panel") and page.is_hidden("#agent-panel")

        page.fill("#password", "alice-pass")
        page.click("#login")
        cmd = gw.expect_json(P + "agent/alice/cmd")
        assert cmd == {"id": cmd["id"], "action": "login", "password": "alice-pass"}
        reply(gw, "alice", cmd, ok=True, state="Offline")
        page.wait_for_selector("#agent-panel:not([hidden])", timeout=5000)
        page.wait_for_function("window.__cg.state === 'Offline' && window.__cg.connected", timeout=5000)
        assert page.inner_text("#state") == "Offline"
        assert page.is_hidden("#error")
        assert "Gateway online" in page.inner_text("#gw-status")
        queue_text = page.inner_text("#queue")
        assert "Support" in queue_text and "2 waiting" in queue_text
        assert "+15551230001" in queue_text and "+15551230002" in queue_text
        assert re.search(r"longest wait 0:4[2-9]", queue_text), queue_text
        assert any(r["id"] == cmd["id"] and r["ok"] for r in page.evaluate("window.__cg.replies"))

        page.click("#btn-available")
        cmd = gw.expect_json(P + "agent/alice/cmd")
        assert set(cmd) == {"id", "action"} and cmd["action"] == "available"
        reply(gw, "alice", cmd, ok=True, state="Available")
        agent_state(gw, "Available")
        page.wait_for_function("window.__cg.state === 'Available'", timeout=5000)
        assert page.inner_text("#state") == "Available"

        offer = {"contact_id": "c-42", "call_id": CALL, "caller": "+15551230002", "queue": "support",
                 "line": "gsm1", "expires_in": 20.0}
        gw.publish(P + "agent/alice/offer", offer)
        agent_state(gw, "Available", offer=offer)
        page.wait_for_selector("#offer:not([hidden])", timeout=5000)
        assert page.inner_text("#offer-caller") == "+15551230002"
        assert page.inner_text("#offer-queue") == "support"
        assert re.fullmatch(r"(19|20) s", page.inner_text("#offer-countdown"))
        assert page.evaluate("window.__cg.lastOffer") == offer

        page.click("#accept")
        cmd = gw.expect_json(P + "agent/alice/cmd")
        assert cmd == {"id": cmd["id"], "action": "accept", "contact_id": "c-42"}
        reply(gw, "alice", cmd, ok=True, state="OnCall")
        agent_state(gw, "OnCall", contact_id="c-42")
        page.wait_for_selector("#call:not([hidden])", timeout=5000)
        assert page.is_hidden("#offer")
        assert page.inner_text("#call-caller") == "+15551230002"

        # Downlink: 1.4 s of a 1 kHz tone, paced at 20 ms, while the page sends its microphone.
        page.wait_for_function("window.__cg.txFrames >= 5", timeout=5000)
        down_topic = f"{P}call/{CALL}/audio/out"
        frames = tone_frames(DOWNLINK_TONE_HZ, 70)
        start = time.monotonic()
        for seq, ulaw in enumerate(frames):
            time.sleep(max(0.0, start + seq * 0.02 - time.monotonic()))
            gw.publish(down_topic, audio_frame(seq, ulaw), qos=0)
        page.wait_for_function("window.__cg.rxFrames >= 70", timeout=5000)
        page.wait_for_timeout(150)                  # let the player render the tail
        rx = page.evaluate("window.__cg.rxSamples()")
        assert len(rx) == 8000
        assert abs(dominant_frequency(rx, 8000) - DOWNLINK_TONE_HZ) < 5
        assert 0.3 < np.sqrt(np.mean(np.square(np.array(rx, float) / 32768))) / (0.5 / np.sqrt(2)) < 1.2
        rendered = page.evaluate("window.__cg.rendered()")
        assert rendered["rate"] == page.evaluate("window.__cg.sampleRate()")
        assert abs(dominant_frequency(rendered["samples"], rendered["rate"]) - DOWNLINK_TONE_HZ) < 5
        stats = page.evaluate("window.__cg.playout()")
        assert stats is not None and stats["played"] >= 40 and stats["late"] == 0
        page.screenshot(path=str(tmp_path / "in-call.png"))
        if os.environ.get("CG_SHOT_DIR"):
            shutil.copy(tmp_path / "in-call.png", Path(os.environ["CG_SHOT_DIR"]) / "in-call.png")
        assert page.evaluate("window.__cg.micActive()") is True

        up = [(t, p) for t, p in uplink.drain()]
        assert {t for t, _ in up} == {f"{P}agent/alice/audio/{CALL}"}
        parsed = [parse_audio_frame(p) for _, p in up]
        assert len(parsed) >= 50
        seqs = [s for s, _, _ in parsed]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        now_ms = time.time() * 1000
        assert all(now_ms - 10_000 < sent <= now_ms + 1000 for _, sent, _ in parsed)
        assert all(len(u) == 160 for _, _, u in parsed)
        pcm = ulaw_decode(b"".join(u for _, _, u in parsed[5:]))
        assert abs(dominant_frequency(pcm, 8000) - UPLINK_TONE_HZ) < 5
        assert np.sqrt(np.mean(np.square(pcm / 32768.0))) > 0.1

        page.click("#hangup")
        cmd = gw.expect_json(P + "agent/alice/cmd")
        assert set(cmd) == {"id", "action"} and cmd["action"] == "hangup"
        reply(gw, "alice", cmd, ok=True, state="AfterCallWork")
        agent_state(gw, "AfterCallWork", contact_id="c-42")
        page.wait_for_selector("#acw:not([hidden])", timeout=5000)
        assert page.is_hidden("#call")
        page.wait_for_function("window.__cg.micActive() === false", timeout=5000)
        tx_after = page.evaluate("window.__cg.txFrames")
        uplink.drain()
        page.wait_for_timeout(200)
        assert page.evaluate("window.__cg.txFrames") == tx_after and uplink.drain() == []

        page.click("#ready")
        cmd = gw.expect_json(P + "agent/alice/cmd")
        assert set(cmd) == {"id", "action"} and cmd["action"] == "available"
        reply(gw, "alice", cmd, ok=True, state="Available")
        agent_state(gw, "Available")
        page.wait_for_function("window.__cg.state === 'Available'", timeout=5000)
        assert page.is_hidden("#acw")

        # A command nobody answers fails visibly (after 5 s by default, shortened to 1 s here).
        page.click("#btn-offline")
        cmd = gw.expect_json(P + "agent/alice/cmd")
        assert cmd["action"] == "offline"
        assert page.is_disabled("#btn-offline")
        page.wait_for_selector("#error:not([hidden])", timeout=3000)
        assert "no reply from gateway \"gwtest\" within 1 s" in page.inner_text("#error-text")
        assert page.is_enabled("#btn-offline")
        assert page.cg_errors == []
    uplink.close()


# ----------------------------------------------------------------------------- the real daemon

def test_dashboard_takes_a_real_call_from_the_daemon(embedded_stack, tmp_path):
    """Test of record: emulated SIM7600 -> daemon (embedded broker) -> this page in Chromium, both ways."""
    stack, emu = embedded_stack, embedded_stack.emulator
    caller = "+15551230009"
    wav = make_tone_wav(tmp_path / "mic600.wav", freq=UPLINK_TONE_HZ, seconds=60)
    with chromium_page(wav) as page:
        page.goto(stack.dashboard_url)
        page.wait_for_function(f"document.querySelector('#gateway-id').value === '{stack.gateway_id}'",
                               timeout=5000)
        assert page.input_value("#broker-url") == stack.ws_url
        assert page.evaluate("window.__cg.commandTimeoutMs") == 5000
        page.fill("#agent-id", "alice")
        page.fill("#password", stack.agents["alice"])
        page.click("#login")
        page.wait_for_selector("#agent-panel:not([hidden])", timeout=10000)
        page.wait_for_function("window.__cg.state === 'Offline'", timeout=5000)
        assert "Gateway online" in page.inner_text("#gw-status")
        page.click("#btn-available")
        page.wait_for_function("window.__cg.state === 'Available'", timeout=5000)

        emu.ring(caller)
        assert emu.wait_for_state("active", 10), stack.log()[-3000:]
        deadline = time.monotonic() + 10
        while not emu.pcm_enabled and time.monotonic() < deadline:
            time.sleep(0.05)
        emu.send_dtmf("1")
        page.wait_for_selector("#offer:not([hidden])", timeout=20000)
        assert page.inner_text("#offer-caller") == caller
        assert page.inner_text("#offer-queue") == "support"

        page.click("#accept")
        page.wait_for_selector("#call:not([hidden])", timeout=5000)
        page.wait_for_function("window.__cg.state === 'OnCall' && window.__cg.txFrames >= 10", timeout=5000)
        assert page.inner_text("#call-caller") == caller

        # caller -> agent: the emulator's 1 kHz tone is what the page decodes and renders
        rx_before = page.evaluate("window.__cg.rxFrames")
        n = np.arange(int(2.0 * 8000))
        emu.play_pcm(np.round(0.4 * 32767 * np.sin(2 * np.pi * DOWNLINK_TONE_HZ * n / 8000)).astype(np.int16))
        page.wait_for_function(f"window.__cg.rxFrames >= {rx_before + 75}", timeout=5000)
        rx = page.evaluate("window.__cg.rxSamples()")
        assert abs(dominant_frequency(rx, 8000) - DOWNLINK_TONE_HZ) < 10
        rendered = page.evaluate("window.__cg.rendered()")
        assert abs(dominant_frequency(rendered["samples"], rendered["rate"]) - DOWNLINK_TONE_HZ) < 10

        # agent -> caller: the fake microphone's 600 Hz tone reaches the emulated modem
        emu.clear_capture()
        page.wait_for_timeout(1200)
        said = emu.capture()
        assert len(said) > 4000, f"only {len(said)} samples reached the modem"
        assert np.sqrt(np.mean(np.square(said / 32768.0))) > 0.03
        assert abs(dominant_frequency(said, 8000) - UPLINK_TONE_HZ) < 10
        page.screenshot(path=str(tmp_path / "in-call-daemon.png"))
        if os.environ.get("CG_SHOT_DIR"):
            shutil.copy(tmp_path / "in-call-daemon.png", Path(os.environ["CG_SHOT_DIR"]))

        page.click("#hangup")
        page.wait_for_selector("#acw:not([hidden])", timeout=5000)
        assert emu.wait_for_state("idle", 5)
        page.wait_for_function("window.__cg.state === 'AfterCallWork' && window.__cg.micActive() === false",
                               timeout=5000)
        page.click("#ready")
        page.wait_for_function("window.__cg.state === 'Available'", timeout=5000)
        assert page.is_hidden("#acw") and page.is_hidden("#error")
        assert page.cg_errors == []


# ----------------------------------------------------------------------------- worklets in Node

WORKLET_HARNESS = r"""
const SR = Number(process.argv[2]);
globalThis.sampleRate = SR;
const procs = {};
globalThis.AudioWorkletProcessor = class {
  constructor() { this.posted = []; this.port = {postMessage: (m) => this.posted.push(m), onmessage: null}; }
};
globalThis.registerProcessor = (name, cls) => { procs[name] = cls; };
await import(process.argv[3]);
const {ULAW_DECODE} = await import(process.argv[4]);

const pb = new procs['cg-playback']();
const send = (seq, value) => pb.port.onmessage({data: {type: 'frame', seq, pcm: new Float32Array(160).fill(value)}});
const render = (quanta) => {
  let loud = 0;
  for (let q = 0; q < quanta; q++) {
    const out = [new Float32Array(128)];
    pb.process([], [out]);
    for (const v of out[0]) if (Math.abs(v) > 1e-3) loud++;
  }
  return loud;
};
const quantaPerFrame = SR * 0.02 / 128;
const result = {};
send(0, 0.5);
result.silentWithOneFrame = render(20) === 0;
send(1, 0.5);
result.playsWithTwoFrames = render(2) > 0;
send(1, 0.5);
result.lateDropped = pb.stats.late === 1;
render(40);
result.underrunAfterDrain = pb.stats.underruns === 1 && pb.prefilling;
send(100, 0.5);
result.jumpCounted = pb.stats.jumps === 1;
result.jumpRePrefills = render(5) === 0;
// a standing surplus of 5 frames, then steady 1-frame-per-20-ms: the buffer trims itself
for (let s = 101; s < 106; s++) send(s, 0.5);
let seq = 106, acc = 0;
for (let q = 0; q < SR * 3 / 128; q++) {
  acc += 1;
  if (acc >= quantaPerFrame) { acc -= quantaPerFrame; send(seq++, 0.5); }
  render(1);
}
result.trimmed = pb.stats.dropped;
result.depthAfterTrim = pb.depth() / 160;
result.underrunsWhileSteady = pb.stats.underruns - 1;
const droppedBefore = pb.stats.dropped;
result.burstMaxDepth = 0;
for (let i = 0; i < 20; i++) {
  send(seq++, 0.5);
  result.burstMaxDepth = Math.max(result.burstMaxDepth, pb.depth() / 160);
}
result.burstDropped = pb.stats.dropped - droppedBefore;

const cap = new procs['cg-capture']();
const frames = [];
cap.port.postMessage = (m) => frames.push(m);
let n = 0;
for (let q = 0; q < SR / 128; q++) {
  const ch = new Float32Array(128);
  for (let i = 0; i < 128; i++) ch[i] = 0.5 * Math.sin(2 * Math.PI * 600 * n++ / SR);
  cap.process([[ch, ch]]);
}
result.captureFrames = frames.length;
result.captureSizes = [...new Set(frames.map((f) => f.bytes.length))];
result.capturePcm = frames.flatMap((f) => Array.from(f.bytes, (b) => ULAW_DECODE[b]));
console.log(JSON.stringify(result));
"""


@pytest.mark.parametrize("rate", [44100, 48000])
def test_worklets_jitter_buffer_and_resampling_in_node(tmp_path, rate):
    harness = tmp_path / "harness.mjs"
    harness.write_text(WORKLET_HARNESS)
    out = subprocess.run(["node", str(harness), str(rate), (STATIC_DIR / "audio-worklets.js").as_uri(),
                          (STATIC_DIR / "g711.js").as_uri()],
                         capture_output=True, text=True, timeout=60, check=True)
    r = json.loads(out.stdout)
    assert r["silentWithOneFrame"] and r["playsWithTwoFrames"]
    assert r["lateDropped"] and r["underrunAfterDrain"]
    assert r["jumpCounted"] and r["jumpRePrefills"]
    assert r["trimmed"] >= 2 and r["depthAfterTrim"] <= 3 and r["underrunsWhileSteady"] == 0
    assert r["burstMaxDepth"] <= 8 and r["burstDropped"] >= 12      # a burst never queues > 160 ms
    assert 49 <= r["captureFrames"] <= 50 and r["captureSizes"] == [160]
    pcm = np.array(r["capturePcm"][800:], dtype=float)
    assert abs(dominant_frequency(pcm, 8000) - 600) < 2
    assert 0.3 < np.sqrt(np.mean(np.square(pcm / 32768))) < 0.4     # 0.5 peak -> 0.354 rms
