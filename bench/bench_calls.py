"""Simulated calls through a real daemon: CPU per call-minute, RSS, and the time a 20 ms frame spends
inside the daemon (modem audio port -> MQTT publish, MQTT arrival -> modem audio port).

One `python -m gateway run` daemon serves N lines (N emulated SIM7600s on pseudo-terminals) and N
MQTT agents. After an idle baseline, each line's caller rings, presses 1, waits for an agent and talks
for --talk seconds (the caller plays speech into the emulator, the agent publishes 20 ms µ-law frames
paced in real time), then hangs up. The daemon's CPU comes from /proc/<pid>/stat, its memory from
/proc/<pid>/status, and the in-daemon latencies from the contact records the daemon writes.

    .venv/bin/python bench/bench_calls.py [--lines 2] [--calls 6] [--talk 20] [--broker mosquitto] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.agent_client import AgentClient
from bench.common import BenchError, ProcStats, RssSampler, fmt, import_time, machine, machine_line, median, percentile, table
from bench.daemon_run import DaemonRun, bench_parser
from gateway.api import audio_frames
from gateway.media.g711 import ulaw_encode
from gateway.media.prompts import PromptCache
from gateway.media.tones import sine
from hil.sim7600 import Sim7600Emulator
from tests.stack import DEMO_FLOW, start_daemon, stop_daemon, wait_ready

FRAME_S = 0.020
SAMPLES = 160
ANSWER_TIMEOUT = 15.0       # ring -> the daemon answers
PCM_TIMEOUT = 10.0          # answer -> the daemon switches USB audio on
DTMF_DELAY = 0.3            # the caller presses 1 this long into the greeting (it interrupts it)
CONNECT_TIMEOUT = 30.0      # DTMF -> an agent has accepted (hold message, queue, offer)
END_TIMEOUT = 10.0          # hangup -> the emulator and the agent see the call end
PUBLISHER_STOP_TIMEOUT = 2.0
HANGUP_AFTER_LAST_FRAME = 0.02   # the agent stops talking this long before the caller hangs up
GAP_BETWEEN_CALLS = 0.5     # per line
STAGGER = 1.0               # line i starts its first call i × this later
SETTLE = 2.0                # after the last call, before the final RSS
READY_POLL = 0.005          # start-up is timed to the appearance of daemon.json, polled this often
READY_POLL_LIMIT = 30.0     # then tests.stack.wait_ready takes over (and reports a daemon that died)
WARMUP_TALK = 2.0
AGENT_TONE_HZ = 600.0
CALLER_TEXT = ("Hello, I am calling about my order. It has not arrived yet and the tracking page has not "
               "changed for three days. Could you tell me when it will be delivered, please?")


_T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def caller_number(n: int) -> str:
    return f"+1555777{n:04d}"


# --- agents ---------------------------------------------------------------------------------------
@dataclass
class CallAudio:
    """What one agent saw and sent on one call."""
    call_id: str
    agent_id: str
    line_id: str
    received: int = 0                   # caller frames that reached the agent
    seqs: set = field(default_factory=set)
    hop_ms: list = field(default_factory=list)   # daemon's publish stamp -> arrival at the agent
    published: int = 0                  # agent frames sent
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class Connections:
    """Which call each line's caller got connected on, and by which agent."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._by_line: dict[str, list[tuple[str, "BenchAgent"]]] = {}

    def connected(self, line_id: str, call_id: str, agent: "BenchAgent") -> None:
        with self._cond:
            self._by_line.setdefault(line_id, []).append((call_id, agent))
            self._cond.notify_all()

    def wait(self, line_id: str, timeout: float, abort: threading.Event):
        """The line's next connection (taken off the list), or None after timeout or abort."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not abort.is_set():
                if self._by_line.get(line_id):
                    return self._by_line[line_id].pop(0)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.2))
        return None


class BenchAgent(AgentClient):
    """An agent subscribed as the dashboard would be: its own topics, then the call's audio.

    Accepts every offer, publishes 20 ms µ-law frames in real time until told to stop or the call
    ends, then goes Available again.
    """

    JOIN_TIMEOUT = PUBLISHER_STOP_TIMEOUT + 1

    def __init__(self, agent_id: str, password: str, host: str, port: int, gateway_id: str,
                 frames: list[bytes], connections: Connections, abort: threading.Event) -> None:
        self.frames, self.connections, self.abort = frames, connections, abort
        self.phase = random.Random(agent_id)    # each call's send phase: random, repeatable run to run
        self.calls: dict[str, CallAudio] = {}
        self.errors: list[str] = []
        super().__init__(agent_id, password, host, port, gateway_id)

    # MQTT side (paho's thread)
    def raw_message(self, topic: str, payload: bytes, received: float) -> bool:
        if not topic.endswith("/audio/out"):
            return False
        stats = self.calls.get(topic.split("/")[3])
        if stats is not None:
            try:
                seq, sent_ms, _ = audio_frames.unpack(payload)
            except audio_frames.AudioFrameError:
                return True
            stats.received += 1
            stats.seqs.add(seq)
            stats.hop_ms.append(received * 1000 - sent_ms)
        return True

    def end_talk(self, call_id: str) -> None:
        stats = self.calls[call_id]
        stats.stop.set()
        stats.done.wait(PUBLISHER_STOP_TIMEOUT)

    def running(self) -> bool:
        return super().running() and not self.abort.is_set()

    def closing(self) -> None:
        for stats in self.calls.values():
            stats.stop.set()

    # the agent's own thread: take offers, talk
    def handle(self, offer: dict) -> None:
        try:
            self._take(offer)
        except Exception as exc:  # reported by the bench, which then stops
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self.abort.set()

    def _take(self, offer: dict) -> None:
        call_id, contact_id = offer["call_id"], offer["contact_id"]
        stats = self.calls[call_id] = CallAudio(call_id, self.agent_id, offer.get("line", "?"))
        out_topic = f"{self.base}/call/{call_id}/audio/out"
        self.client.subscribe(out_topic, 0)
        reply = self.command("accept", contact_id=contact_id)
        if not reply.get("ok"):
            self.client.unsubscribe(out_topic)
            raise BenchError(f"agent {self.agent_id}: accept of {contact_id} refused: {reply}")
        self.connections.connected(stats.line_id, call_id, self)
        try:
            self._talk(stats, contact_id)
        finally:
            stats.done.set()
        self.wait_state(lambda s: s.get("state") == "AfterCallWork" and s.get("contact_id") == contact_id,
                        f"AfterCallWork for {contact_id}", END_TIMEOUT)
        self.client.unsubscribe(out_topic)
        self.go_available()

    def _talk(self, stats: CallAudio, contact_id: str) -> None:
        topic = f"{self.base}/agent/{self.agent_id}/audio/{stats.call_id}"
        # a browser's 20 ms clock has no relation to the modem's: start at a random phase, or the
        # accept round trip would lock the agent's sends to the gateway's ticks at one fixed offset
        stats.stop.wait(self.phase.uniform(0.0, FRAME_S))
        start, seq = time.monotonic(), 0
        while self.running() and not stats.stop.is_set():
            state = self.current_state()
            if state.get("state") == "AfterCallWork" and state.get("contact_id") == contact_id:
                break
            payload = audio_frames.pack(seq, time.time() * 1000, self.frames[seq % len(self.frames)])
            self.client.publish(topic, payload, qos=0)
            seq += 1
            stats.published = seq
            delay = start + seq * FRAME_S - time.monotonic()
            if delay > 0:
                stats.stop.wait(delay)


# --- callers --------------------------------------------------------------------------------------
def run_call(line_id: str, emu: Sim7600Emulator, n: int, caller: str, talk: float, caller_pcm: np.ndarray,
             connections: Connections, abort: threading.Event) -> dict:
    """One caller on one line, from ring to hangup; returns what the caller side timed."""
    t0 = time.monotonic()
    emu.ring(caller)
    if not emu.wait_for_state("active", ANSWER_TIMEOUT):
        raise BenchError(f"{line_id}: call {n} not answered within {ANSWER_TIMEOUT} s (emulator: {emu.state})")
    answered = time.monotonic() - t0
    deadline = time.monotonic() + PCM_TIMEOUT
    while not emu.pcm_enabled:
        if time.monotonic() > deadline or abort.is_set():
            raise BenchError(f"{line_id}: call {n}: the daemon never switched USB audio on")
        time.sleep(0.01)
    abort.wait(DTMF_DELAY)
    emu.send_dtmf("1")
    got = connections.wait(line_id, CONNECT_TIMEOUT, abort)
    if got is None:
        if abort.is_set():
            emu.hangup()
            return {}
        raise BenchError(f"{line_id}: call {n}: no agent connected within {CONNECT_TIMEOUT} s of pressing 1")
    call_id, agent = got
    connected = time.monotonic() - t0
    progress(f"call {n} on {line_id}: answered in {answered:.2f} s, {agent.agent_id} took it at "
             f"{connected:.1f} s; talking {talk:g} s")
    emu.play_pcm(caller_pcm[: int(talk * 8000)])
    abort.wait(talk)
    agent.end_talk(call_id)
    time.sleep(HANGUP_AFTER_LAST_FRAME)
    emu.hangup()
    if not emu.wait_for_state("idle", END_TIMEOUT):
        raise BenchError(f"{line_id}: call {n}: still {emu.state} {END_TIMEOUT} s after the caller hung up")
    return {"n": n, "line": line_id, "caller": caller, "call_id": call_id, "agent": agent.agent_id,
            "ring_to_answer_s": round(answered, 3), "ring_to_agent_s": round(connected, 3)}


def line_worker(line_id: str, emu: Sim7600Emulator, numbers: list[int], delay: float, talk: float,
                caller_pcm: np.ndarray, connections: Connections, results: list, errors: list,
                abort: threading.Event) -> None:
    try:
        abort.wait(delay)
        for n in numbers:
            if abort.is_set():
                return
            result = run_call(line_id, emu, n, caller_number(n), talk, caller_pcm, connections, abort)
            if result:
                results.append(result)
            abort.wait(GAP_BETWEEN_CALLS)
    except Exception as exc:
        errors.append(f"{line_id}: {type(exc).__name__}: {exc}")
        abort.set()


def _problems(log: bytes) -> list[str]:
    """Warning, error and traceback lines of a daemon log."""
    return [line for line in log.decode(errors="replace").splitlines()
            if "Traceback" in line or " ERROR " in line or " WARNING " in line or " CRITICAL " in line]


# --- the run --------------------------------------------------------------------------------------
class Bench(DaemonRun):
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        super().__init__(workdir)
        self.args = args
        self.sampler: RssSampler | None = None
        self.daemon: ProcStats | None = None
        self.broker_stats: ProcStats | None = None
        self.connections = Connections()
        self.state: dict = {}
        self.caller_pcm: np.ndarray | None = None
        self.deadline = time.monotonic() + args.timeout

    def check_time(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise BenchError(f"--timeout {self.args.timeout:g} s reached during {what}")

    def run(self) -> dict:
        a = self.args
        out: dict = {"params": {"lines": a.lines, "calls": a.calls, "talk_s": a.talk, "idle_s": a.idle,
                                "broker": a.broker, "caller_audio": a.caller_audio, "warmup": not a.no_warmup},
                     "machine": machine()}
        progress("import time of the daemon's modules (fresh interpreters)")
        out["import"] = [import_time("gateway.daemon")]
        if a.broker == "embedded":
            out["import"].append(import_time("amqtt.broker"))
        self.caller_pcm = self._caller_audio()
        out["startup"] = self._start()
        self._login_agents()
        if not a.no_warmup:
            progress(f"warm-up call on gsm1 (renders and caches the prompts; not counted), {WARMUP_TALK:g} s talk")
            run_call("gsm1", self.emulators[0], 0, "+15559990000", WARMUP_TALK, self.caller_pcm, self.connections,
                     self.abort)
            self._raise_agent_errors()
            for agent in self.agents:
                agent.wait_state(lambda s: s.get("state") == "Available", "state Available")
        idle = self._idle_baseline()
        window, results = self._calls()
        progress(f"calls done in {window['t1'] - window['t0']:.1f} s; settling {SETTLE:g} s")
        time.sleep(SETTLE)
        rss_final, rss_hwm = self.daemon.rss_mib(), self.daemon.hwm_mib()
        records = self.records({r["caller"] for r in results},
                               lambda r: r.get("ended_at") is not None and bool(r.get("media")))
        out.update(self._stop_daemon())
        out["calls"] = calls = self._per_call(results, records)
        out["cpu"] = self._cpu(idle, window, calls)
        out["rss_mib"] = {"ready": round(out["startup"]["rss_mib"], 1), "idle": round(idle["rss"], 1),
                          "peak_in_calls": round(window["rss_peak"], 1), "final": round(rss_final, 1),
                          "hwm": round(rss_hwm, 1)}
        out["latency_ms"] = self._latency(calls)
        out["media"] = {k: sum(c[k] for c in calls) for k in (
            "frames_to_agent", "agent_rx", "lost_to_agent", "agent_published", "agent_received_by_daemon",
            "lost_from_agent", "agent_late", "agent_dropped", "agent_underruns", "late_ticks", "caller_overruns", "caller_underruns")}
        out["machine"]["loadavg_after"] = machine()["loadavg"]
        return out

    # --- phases ---------------------------------------------------------------------------------
    def _start(self) -> dict:
        """Emulators, broker, config and daemon; returns the start-up figures."""
        a = self.args
        self.prepare(a.lines, a.lines, a.broker, DEMO_FLOW)

        progress(f"starting the daemon: {a.lines} line(s), broker {a.broker}")
        t0 = time.perf_counter()
        self.proc = start_daemon(self.config, self.data_dir, self.log_path)
        state_file = self.data_dir / "daemon.json"      # written once the daemon is ready
        while not state_file.exists() and self.proc.poll() is None and time.perf_counter() - t0 < READY_POLL_LIMIT:
            time.sleep(READY_POLL)
        ready_s = time.perf_counter() - t0
        self.state = wait_ready(self.data_dir, self.proc, self.log_path)
        self.daemon = ProcStats(self.proc.pid)
        self.broker_stats = ProcStats(self.broker.proc.pid) if self.broker else None
        figures = {"ready_s": round(ready_s, 3), "cpu_s": self.daemon.cpu(), "rss_mib": self.daemon.rss_mib()}
        progress(f"daemon ready in {ready_s:.2f} s (pid {self.proc.pid}, RSS {figures['rss_mib']:.1f} MiB)")
        self.sampler = RssSampler(self.daemon).start()
        return figures

    def _login_agents(self) -> None:
        frames = [ulaw_encode(f) for f in sine(AGENT_TONE_HZ, 1.0, amplitude=0.3).reshape(-1, SAMPLES)]
        for aid, pw in self.agent_passwords.items():
            agent = BenchAgent(aid, pw, self.state["mqtt_host"], self.state["mqtt_port"], self.state["gateway_id"],
                               frames, self.connections, self.abort)
            self.agents.append(agent)
            agent.login()
        progress(f"{len(self.agents)} agent(s) logged in and Available")

    def _cpu_now(self) -> dict:
        return {"t": time.monotonic(), "daemon": self.daemon.cpu(),
                "broker": self.broker_stats.cpu() if self.broker_stats else None}

    def _idle_baseline(self) -> dict:
        progress(f"idle baseline: {self.args.idle:g} s with no calls")
        time.sleep(1.0)
        c0 = self._cpu_now()
        time.sleep(self.args.idle)
        c1 = self._cpu_now()
        seconds = c1["t"] - c0["t"]
        idle = {"rate": (c1["daemon"] - c0["daemon"]) / seconds, "rss": self.daemon.rss_mib(),
                "broker_rate": (c1["broker"] - c0["broker"]) / seconds if self.broker_stats else None}
        progress(f"idle: {100 * idle['rate']:.1f} % of a core, RSS {idle['rss']:.1f} MiB")
        self.check_time("the idle baseline")
        return idle

    def _calls(self) -> tuple[dict, list[dict]]:
        """All calls, one thread per line; returns the CPU window and the callers' results."""
        a = self.args
        numbers = list(range(1, a.calls + 1))
        results: list[dict] = []
        errors: list[str] = []
        workers = [threading.Thread(target=line_worker, name=f"line-gsm{i + 1}", daemon=True,
                                    args=(f"gsm{i + 1}", emu, numbers[i::a.lines], i * STAGGER, a.talk,
                                          self.caller_pcm, self.connections, results, errors, self.abort))
                   for i, emu in enumerate(self.emulators)]
        progress(f"calls: {a.calls} over {a.lines} line(s), {a.talk:g} s of two-way audio each")
        self.sampler.reset()
        own0, c0 = os.times(), self._cpu_now()
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(0.5)
                if time.monotonic() > self.deadline:
                    self.abort.set()
                    raise BenchError(f"--timeout {a.timeout:g} s reached during the calls")
        c1, own1 = self._cpu_now(), os.times()
        if errors:
            raise BenchError("; ".join(errors))
        self._raise_agent_errors()
        window = {"t0": c0["t"], "t1": c1["t"], "daemon_cpu": c1["daemon"] - c0["daemon"],
                  "broker_cpu": c1["broker"] - c0["broker"] if self.broker_stats else None,
                  "own_cpu": (own1.user + own1.system) - (own0.user + own0.system), "rss_peak": self.sampler.peak()}
        return window, results

    def _stop_daemon(self) -> dict:
        for agent in self.agents:
            agent.close()
        before_stop = len(self.log_path.read_bytes())
        code = stop_daemon(self.proc)
        log_bytes = self.log_path.read_bytes()
        return {"daemon_exit_code": code, "daemon_log_problems": _problems(log_bytes[:before_stop]),
                "daemon_log_problems_at_shutdown": _problems(log_bytes[before_stop:])}

    def _raise_agent_errors(self) -> None:
        errors = [f"agent {ag.agent_id}: {e}" for ag in self.agents for e in ag.errors]
        if errors:
            raise BenchError("; ".join(errors))

    # --- figures --------------------------------------------------------------------------------
    def _cpu(self, idle: dict, window: dict, calls: list[dict]) -> dict:
        seconds = window["t1"] - window["t0"]
        call_s = sum(c["call_s"] for c in calls)
        talk_s = sum(c["talk_s"] for c in calls)
        net = window["daemon_cpu"] - idle["rate"] * seconds
        cpu = {"idle_pct_core": round(100 * idle["rate"], 2), "window_s": round(seconds, 2),
               "calls_cpu_s": round(window["daemon_cpu"], 2), "net_cpu_s": round(net, 2),
               "call_minutes": round(call_s / 60, 3), "talk_minutes": round(talk_s / 60, 3),
               "mean_concurrent_calls": round(call_s / seconds, 2),
               "during_calls_pct_core": round(100 * window["daemon_cpu"] / seconds, 1),
               "cpu_s_per_call_minute": round(net / (call_s / 60), 3),
               "pct_core_per_concurrent_call": round(100 * net / call_s, 2),
               "bench_process_cpu_s": round(window["own_cpu"], 2)}
        if self.broker_stats:
            bnet = window["broker_cpu"] - idle["broker_rate"] * seconds
            cpu.update(broker_idle_pct_core=round(100 * idle["broker_rate"], 2),
                       broker_net_cpu_s=round(bnet, 2),
                       broker_cpu_s_per_call_minute=round(bnet / (call_s / 60), 3),
                       daemon_plus_broker_cpu_s_per_call_minute=round((net + bnet) / (call_s / 60), 3))
        return cpu

    def _caller_audio(self) -> np.ndarray:
        seconds = max(self.args.talk, WARMUP_TALK) + 1
        if self.args.caller_audio == "tone":
            return sine(1000.0, seconds, amplitude=0.3)
        progress("rendering the caller's speech with espeak-ng")
        speech = asyncio.run(PromptCache(self.workdir / "caller-prompts").text(CALLER_TEXT))
        one = np.concatenate([np.asarray(speech), np.zeros(4000, dtype=np.int16)])
        return np.tile(one, int(seconds * 8000 / len(one)) + 1)[: int(seconds * 8000)]

    def _per_call(self, results: list[dict], records: dict) -> list[dict]:
        by_call = {cid: s for ag in self.agents for cid, s in ag.calls.items()}
        rows = []
        for r in sorted(results, key=lambda r: r["n"]):
            rec = records[r["caller"]]
            media = rec["media"] if isinstance(rec["media"], dict) else json.loads(rec["media"])
            audio = by_call[r["call_id"]]
            rows.append({
                "n": r["n"], "line": r["line"], "agent": r["agent"], "contact_id": rec["contact_id"],
                "call_s": round(rec["ended_at"] - rec["initiated_at"], 3),
                "talk_s": round(rec["ended_at"] - rec["connected_to_agent_at"], 3),
                "ring_to_answer_s": r["ring_to_answer_s"], "ring_to_agent_s": r["ring_to_agent_s"],
                "to_agent_p50_ms": media.get("latency_to_agent_p50_ms"),
                "to_agent_p99_ms": media.get("latency_to_agent_p99_ms"),
                "from_agent_p50_ms": media.get("latency_from_agent_p50_ms"),
                "from_agent_p99_ms": media.get("latency_from_agent_p99_ms"),
                "hop_p50_ms": round(median(audio.hop_ms), 3) if audio.hop_ms else None,
                "hop_p99_ms": round(percentile(audio.hop_ms, 99), 3) if audio.hop_ms else None,
                "frames_to_agent": media.get("frames_to_agent", 0), "agent_rx": audio.received,
                "lost_to_agent": media.get("frames_to_agent", 0) - audio.received,
                "seq_gaps_to_agent": (max(audio.seqs) - min(audio.seqs) + 1 - len(audio.seqs)) if audio.seqs else 0,
                "agent_published": audio.published,
                "agent_received_by_daemon": media.get("agent_received", 0),
                "lost_from_agent": audio.published - media.get("agent_received", 0),
                "agent_late": media.get("agent_late", 0), "agent_dropped": media.get("agent_dropped", 0),
                "agent_underruns": media.get("agent_underruns", 0), "late_ticks": media.get("late_ticks", 0),
                "caller_overruns": media.get("caller_overruns", 0), "caller_underruns": media.get("caller_underruns", 0), "media": media})
        return rows

    @staticmethod
    def _latency(calls: list[dict]) -> dict:
        """Per direction: the median call's p50 and p99, and the worst call's p99 (ms)."""
        out = {}
        for name in ("to_agent", "from_agent", "hop"):
            p50s = [c[f"{name}_p50_ms"] for c in calls if c[f"{name}_p50_ms"] is not None]
            p99s = [c[f"{name}_p99_ms"] for c in calls if c[f"{name}_p99_ms"] is not None]
            out[name] = {"p50": median(p50s), "p99": median(p99s), "worst_call_p99": max(p99s, default=None),
                         "calls": len(p99s)}
        return out

    def closing(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()


# --- the report -----------------------------------------------------------------------------------
def report(r: dict) -> str:
    p, m, cpu, rss, lat, media = r["params"], r["machine"], r["cpu"], r["rss_mib"], r["latency_ms"], r["media"]
    broker = "embedded amqtt (inside the daemon)" if p["broker"] == "embedded" else "mosquitto (own process)"
    lines = [
        f"callgate call benchmark: {p['lines']} line(s), {p['calls']} calls x {p['talk_s']:g} s talk, broker {broker}",
        machine_line(m),
        "",
        "start-up",
    ]
    for imp in r["import"]:
        lines.append(f"  import {imp['module']:<26} {fmt(imp['importtime_ms'])} ms (-X importtime), "
                     f"{fmt(imp['wall_ms'])} ms wall over a bare interpreter")
    st = r["startup"]
    lines += [
        f"  daemon start -> ready            {st['ready_s']:.2f} s wall, {st['cpu_s']:.2f} CPU s",
        "",
        "daemon CPU (utime+stime of the daemon process)",
        f"  idle baseline                    {cpu['idle_pct_core']:.2f} % of one core",
        f"  during the calls                 {cpu['during_calls_pct_core']:.1f} % of one core over "
        f"{cpu['window_s']:.1f} s, {cpu['mean_concurrent_calls']:.2f} calls up on average",
        f"  per call-minute (net of idle)    {cpu['cpu_s_per_call_minute']:.3f} CPU s "
        f"({cpu['call_minutes']:.2f} call-minutes, {cpu['talk_minutes']:.2f} of them talking)",
        f"  per concurrent call              {cpu['pct_core_per_concurrent_call']:.2f} % of one core",
    ]
    if "broker_cpu_s_per_call_minute" in cpu:
        lines += [f"  mosquitto per call-minute        {cpu['broker_cpu_s_per_call_minute']:.3f} CPU s "
                  f"(idle {cpu['broker_idle_pct_core']:.2f} % of a core)",
                  f"  daemon + mosquitto per call-min  {cpu['daemon_plus_broker_cpu_s_per_call_minute']:.3f} CPU s"]
    lines += [
        f"  (the bench itself: emulators + agents used {cpu['bench_process_cpu_s']:.1f} CPU s in the same window)",
        "",
        "daemon memory (RSS, MiB)",
        f"  ready {rss['ready']:.1f}   idle {rss['idle']:.1f}   peak in calls {rss['peak_in_calls']:.1f}   "
        f"final {rss['final']:.1f}   VmHWM {rss['hwm']:.1f}",
        "",
        "frame latency, ms (p50 and p99: median over calls of each call's figure; worst: highest call p99)",
        table([[label, *(fmt(lat[key][k], 2) for k in ("p50", "p99", "worst_call_p99"))] for label, key in (
                   ("modem read -> MQTT publish (in daemon)", "to_agent"),
                   ("MQTT arrival -> modem write (in daemon, incl. 2-frame prefill)", "from_agent"),
                   ("daemon publish -> agent client (broker hop, bench clock)", "hop"))],
              ["", "p50", "p99", "worst"]),
        "",
        f"media: caller->agent {media['frames_to_agent']} frames published, {media['agent_rx']} received "
        f"({media['lost_to_agent']} lost); agent->caller {media['agent_published']} sent, "
        f"{media['agent_received_by_daemon']} received ({media['lost_from_agent']} lost), "
        f"{media['agent_late']} late, {media['agent_dropped']} dropped, {media['agent_underruns']} underruns; "
        f"{media['late_ticks']} late modem ticks, {media['caller_overruns']} caller frames dropped, {media['caller_underruns']} caller underruns",
        "",
        table([[f"{c['n']}", c["line"], c["agent"], c["call_s"], c["talk_s"], c["to_agent_p50_ms"],
                c["to_agent_p99_ms"], c["from_agent_p50_ms"], c["from_agent_p99_ms"], c["hop_p99_ms"],
                c["lost_to_agent"], c["lost_from_agent"], c["agent_underruns"], c["late_ticks"]]
               for c in r["calls"]],
              ["call", "line", "agent", "secs", "talk", "to p50", "to p99", "from p50", "from p99", "hop p99",
               "lost to", "lost from", "underruns", "late ticks"]),
        "",
        f"daemon exit code {r['daemon_exit_code']}; its log has {len(r['daemon_log_problems'])} warning/error "
        f"line(s) before shutdown, {len(r['daemon_log_problems_at_shutdown'])} during shutdown",
    ]
    lines += [f"  {line[:160]}" for line in r["daemon_log_problems"][:10]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("bench_calls.py", __doc__)
    parser.add_argument("--lines", type=int, default=2, help="emulated modems = lines = agents (default 2)")
    parser.add_argument("--calls", type=int, default=6, help="calls in total, spread over the lines (default 6)")
    parser.add_argument("--talk", type=float, default=20.0, help="seconds of two-way audio per call (default 20)")
    parser.add_argument("--idle", type=float, default=8.0, help="seconds of idle baseline (default 8)")
    parser.add_argument("--broker", choices=("embedded", "mosquitto"), default="embedded")
    parser.add_argument("--caller-audio", choices=("speech", "tone"), default="speech",
                        help="what the caller plays: espeak-ng speech or a 1 kHz tone")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the uncounted warm-up call (prompt rendering then falls into the first calls)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop with an error after this many seconds (default: scaled to the run)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (config, daemon log, records)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.lines < 1 or args.calls < 1 or args.talk <= 0 or args.idle <= 0:
        parser.error("--lines and --calls must be >= 1, --talk and --idle > 0")
    if args.broker == "mosquitto" and not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        parser.error("--broker mosquitto: no mosquitto executable found")
    rounds = -(-args.calls // args.lines)
    if args.timeout is None:
        args.timeout = 90 + args.idle + rounds * (args.talk + 20)

    workdir = Path(tempfile.mkdtemp(prefix="callgate-bench-"))
    bench = Bench(args, workdir)
    try:
        result = bench.run()
    except BenchError as exc:
        print(f"bench_calls: {exc}", file=sys.stderr)
        if bench.log_path.exists():
            print("--- daemon log (tail) ---\n" + bench.log_tail(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if bench.dispose(args.keep):
            progress(f"work folder kept: {workdir}")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
