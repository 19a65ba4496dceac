"""`python -m hil demo`: the whole gateway on the embedded defaults, with emulated calls coming in.

Starts an emulated SIM7600 on pseudo-terminals, writes a demo config, runs the real daemon
(`python -m gateway run`, with its embedded MQTT broker and the agent dashboard), and then places a
call every few seconds: a caller who listens to the greeting, presses 1, waits in the queue and talks
(espeak-ng speech) until an agent hangs up or the call has gone on long enough.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOW = REPO / "deploy" / "demo" / "flow-main.json"
AGENTS = {"alice": "alice-demo", "bob": "bob-demo"}
CALLERS = ["+15551230001", "+447700900123", "+15551230002", "+4915112345678"]
CALLER_WORDS = ("Hello, this is a caller from the demo. I am calling about my order, number four two seven. "
                "It has not arrived yet, and I would like to know where it is. Thank you.")
READY_TIMEOUT = 60.0
GREETING_WAIT = 4.0        # seconds after answer before the caller presses 1
MAX_CALL = 180.0           # the caller gives up after this long


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _pick(port: int) -> int:
    if _port_free(port):
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_demo_config(data: Path, at_port: str, audio_port: str, *, mqtt_port: int, ws_port: int, web_port: int) -> Path:
    from gateway.center.passwords import hash_password
    agents = "".join(f'[[agents]]\nid = "{a}"\nname = "{a.title()}"\npassword_hash = "{hash_password(p)}"\n\n'
                     for a, p in AGENTS.items())
    config = data / "callgate.toml"
    config.write_text(f"""# Written by `python -m hil demo`: the gateway on its embedded defaults.
[gateway]
id = "demo"
data_dir = "{data}"

[mqtt]
embedded_tcp_port = {mqtt_port}
embedded_ws_port = {ws_port}

[web]
port = {web_port}

[[queues]]
id = "support"
name = "Support"
acw_timeout = 15

{agents}[[lines]]
id = "gsm1"
profile = "simcom_sim7600"
at_port = "{at_port}"
audio_port = "{audio_port}"
flow = "{FLOW}"
number = "+15550000000"
""")
    return config


def caller_speech(data: Path):
    import asyncio

    import numpy as np

    from gateway.media.prompts import PromptCache
    speech = asyncio.run(PromptCache(data / "prompts").text(CALLER_WORDS, voice="en-us"))
    return np.concatenate([speech, np.zeros(8000, dtype=np.int16)])


def watch_state(host: str, port: int, stop: threading.Event) -> None:
    """Print queue and agent changes as the daemon publishes them."""
    import paho.mqtt.client as paho
    last: dict[str, str] = {}

    def on_message(client, userdata, msg):
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return
        parts = msg.topic.split("/")
        if parts[2:3] == ["agent"] and parts[-1] == "state":
            text = f"agent {obj['agent']}: {obj['state']}"
        elif parts[2:3] == ["queue"]:
            text = f"queue {obj['queue']}: {obj['depth']} waiting"
        else:
            return
        if last.get(msg.topic) != text:
            last[msg.topic] = text
            print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.on_message = on_message
    client.connect(host, port)
    client.subscribe("callgate/demo/#", 1)
    client.loop_start()
    stop.wait()
    client.loop_stop()
    client.disconnect()


def run_calls(emulator, speech, stop: threading.Event, *, interval: float, calls: int, max_call: float) -> None:
    n = 0
    while not stop.is_set() and (calls == 0 or n < calls):
        caller = CALLERS[n % len(CALLERS)]
        n += 1
        print(f"\ncall {n}: {caller} is calling", flush=True)
        emulator.ring(caller)
        if not emulator.wait_for_state("active", 15):
            print("  not answered; is the daemon up? (see its log)", flush=True)
            if emulator.state == "ringing":
                emulator.hangup()
            stop.wait(interval)
            continue
        print("  answered by the flow; the greeting plays", flush=True)
        if stop.wait(GREETING_WAIT):
            break
        emulator.send_dtmf("1")
        print("  caller pressed 1 and waits for an agent (take the call in the dashboard)", flush=True)
        started = time.monotonic()
        while not stop.is_set() and emulator.state == "active" and time.monotonic() - started < max_call:
            emulator.play_pcm(speech)
            stop.wait(min(len(speech) / 8000, max(0.0, max_call - (time.monotonic() - started))))
        if emulator.state == "active":
            try:
                emulator.hangup()
                print("  caller hung up", flush=True)
            except RuntimeError:
                print("  the call was ended by the gateway", flush=True)
        else:
            print("  the call was ended by the gateway", flush=True)
        stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil demo", description=__doc__)
    parser.add_argument("--data", default=str(REPO / "var" / "demo"), help="where the demo keeps its files")
    parser.add_argument("--calls", type=int, default=0, help="stop after this many calls (0: until Ctrl-C)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between calls")
    parser.add_argument("--max-call", type=float, default=MAX_CALL, help="seconds before the caller gives up")
    parser.add_argument("--web-port", type=int, default=8080)
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--ws-port", type=int, default=9001)
    args = parser.parse_args(argv)

    from hil import control
    from hil.sim7600 import Sim7600Emulator

    data = Path(args.data).resolve()
    data.mkdir(parents=True, exist_ok=True)
    (data / "daemon.json").unlink(missing_ok=True)
    emulator = Sim7600Emulator(ring_interval=3.0)
    emulator.start()
    ctl = control.ControlServer(emulator, "127.0.0.1", 0)
    ctl.start()
    ports = dict(mqtt_port=_pick(args.mqtt_port), ws_port=_pick(args.ws_port), web_port=_pick(args.web_port))
    config = write_demo_config(data, emulator.at_port, emulator.audio_port, **ports)
    log_path = data / "daemon.log"
    print(f"starting the gateway (log: {log_path})", flush=True)
    daemon = subprocess.Popen([sys.executable, "-m", "gateway", "run", "-c", str(config)],
                              stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads: list[threading.Thread] = []
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        state = None
        while time.monotonic() < deadline and not stop.is_set():
            if daemon.poll() is not None:
                print(f"the gateway exited ({daemon.returncode}); last lines of {log_path}:", file=sys.stderr)
                print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                return 1
            if (data / "daemon.json").exists():
                state = json.loads((data / "daemon.json").read_text())
                break
            time.sleep(0.1)
        if state is None:
            print(f"the gateway did not become ready in {READY_TIMEOUT:.0f} s; see {log_path}", file=sys.stderr)
            return 1
        speech = caller_speech(data)
        print(f"""
  callgate demo is running.
  Dashboard:   {state['dashboard']}
  Sign in as   alice / {AGENTS['alice']}   (or bob / {AGENTS['bob']}), press Available, then Accept an offer.
  Broker:      mqtt://{state['mqtt_host']}:{state['mqtt_port']}   {state['ws_url']}
  Status:      .venv/bin/callgate status -c {config}
  Contacts:    .venv/bin/callgate contacts -c {config}
  Emulator:    .venv/bin/python -m hil ctl {ctl.address} state     (ring, dtmf, hangup, ...)
  Ctrl-C stops everything.
""", flush=True)
        watcher = threading.Thread(target=watch_state, args=(state["mqtt_host"], state["mqtt_port"], stop), daemon=True)
        watcher.start()
        threads.append(watcher)
        run_calls(emulator, speech, stop, interval=args.interval, calls=args.calls, max_call=args.max_call)
        return 0
    finally:
        stop.set()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
        for t in threads:
            t.join(2)
        ctl.stop()
        emulator.stop()
        print("demo stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
