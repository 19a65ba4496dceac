"""End-to-end offer latency through a real daemon: contact enqueued -> offer received by an MQTT agent.

One `python -m gateway run` daemon serves N lines (hil's emulated SIM7600s on pseudo-terminals) and M
MQTT agents, first against a mosquitto process, then against the daemon's embedded amqtt broker (the
baseline: same machine, same run). Each line's caller rings; the flow queues the contact at once
(UpdateContactTargetQueue + TransferContactToQueue, no prompt); a free agent gets the offer. The agent
stamps the offer with time.time() the moment paho hands it over; the contact record's `enqueued_at`
is the daemon's wall clock at the enqueue (same host, same clock). The emulator's AT transcript gives
the RING and ATA times for the RING -> offer context.

    .venv/bin/python bench/bench_offer.py [--calls 100] [--lines 2] [--agents N] [--broker both] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as paho

from bench.agent_client import REPLY_TIMEOUT, AgentClient
from bench.common import BenchError, fmt, machine, machine_line, percentile, table
from bench.daemon_run import DaemonRun, bench_parser
from hil.sim7600 import Sim7600Emulator
from tests.stack import start_daemon, wait_ready

QUEUE_FLOW = {"Version": "2019-10-30", "StartAction": "target", "Actions": [
    {"Identifier": "target", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "support"},
     "Transitions": {"NextAction": "queue", "Errors": [{"ErrorType": "NoMatchingError", "NextAction": "bye"}]}},
    {"Identifier": "queue", "Type": "TransferContactToQueue", "Parameters": {},
     "Transitions": {"Errors": [{"ErrorType": "QueueAtCapacity", "NextAction": "bye"},
                                {"ErrorType": "NoMatchingError", "NextAction": "bye"}]}},
    {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}

LINE_UP_TIMEOUT = 30.0      # daemon ready -> every line reports idle
OFFER_TIMEOUT = 15.0        # ring -> an offer for the call reaches an agent
STATE_TIMEOUT = 10.0        # the line going idle after the call
RING_INTERVAL = 2.0         # emulator RING repeat; calls are offered long before a second RING
RING_URCS = ("RING", "+CRING: VOICE")


_T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


# --- what the agents see --------------------------------------------------------------------------
@dataclass
class OfferSeen:
    contact_id: str
    caller: str
    line: str
    agent_id: str
    received: float             # time.time() in paho's thread, first thing on arrival
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


class Offers:
    """The first offer of each contact (by caller number); later offers of the same contact are counted only."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._by_caller: dict[str, OfferSeen] = {}
        self._contacts: set[str] = set()
        self.reoffers = 0

    def arrived(self, seen: OfferSeen) -> bool:
        """True for a contact's first offer."""
        with self._cond:
            if seen.contact_id in self._contacts:
                self.reoffers += 1
                return False
            self._contacts.add(seen.contact_id)
            self._by_caller[seen.caller] = seen
            self._cond.notify_all()
            return True

    def wait(self, caller: str, timeout: float) -> OfferSeen | None:
        with self._cond:
            self._cond.wait_for(lambda: caller in self._by_caller, timeout)
            return self._by_caller.get(caller)


class OfferAgent(AgentClient):
    """An agent that takes or declines every first offer.

    after="accept": accept, hang up, then `available` (ending After call work at once).
    after="reject": reject; the caller hangs up. Re-offers of a counted contact are left to lapse with the call.
    """

    CLIENT_PREFIX = "bench-offer"

    def __init__(self, agent_id: str, password: str, host: str, port: int, gateway_id: str, offers: Offers,
                 after: str) -> None:
        self.after, self.offers = after, offers
        super().__init__(agent_id, password, host, port, gateway_id)

    def offered(self, offer: dict, received: float) -> OfferSeen | None:
        seen = OfferSeen(offer.get("contact_id", "?"), offer.get("caller", "?"), offer.get("line", "?"),
                         self.agent_id, received)
        return seen if self.offers.arrived(seen) else None

    def handle(self, seen: OfferSeen) -> None:
        try:
            self._handle(seen)
        except Exception as exc:        # reported by the caller's thread, which stops the run
            seen.error = f"{type(exc).__name__}: {exc}"
        finally:
            seen.done.set()

    def _handle(self, seen: OfferSeen) -> None:
        cid = seen.contact_id
        if self.after == "reject":
            reply = self.command("reject", contact_id=cid)
            # the caller hangs up as soon as it sees the offer: the withdrawal may beat the reject
            if not reply.get("ok") and reply.get("code") != "no_offer":
                raise BenchError(f"reject of {cid} refused: {reply}")
            return
        reply = self.command("accept", contact_id=cid)
        if not reply.get("ok"):
            raise BenchError(f"accept of {cid} refused: {reply}")
        reply = self.command("hangup")
        if not reply.get("ok"):
            raise BenchError(f"hangup of {cid} refused: {reply}")
        self.wait_state(lambda s: s.get("state") == "AfterCallWork" and s.get("contact_id") == cid,
                        f"AfterCallWork for {cid}")
        self.go_available()


class LineWatch:
    """The daemon's retained line states (…/line/<id>), with the arrival time of each."""

    def __init__(self, host: str, port: int, gateway_id: str) -> None:
        self._cond = threading.Condition()
        self._history: dict[str, list[tuple[float, str]]] = {}
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-offer-lines-{os.getpid()}",
                                  protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.subscribe(f"callgate/{gateway_id}/line/+", 1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(obj, dict) and "state" in obj:
            with self._cond:
                self._history.setdefault(msg.topic.rsplit("/", 1)[-1], []).append((time.time(), obj["state"]))
                self._cond.notify_all()

    def wait_idle(self, line_id: str, after: float, timeout: float = STATE_TIMEOUT) -> None:
        """Until the line reports idle in a message that arrived after `after` (time.time())."""
        def done() -> bool:
            return any(t > after and s == "idle" for t, s in self._history.get(line_id, []))
        with self._cond:
            if not self._cond.wait_for(done, timeout):
                last = (self._history.get(line_id) or [(0, "none")])[-1][1]
                raise BenchError(f"line {line_id} not idle {timeout:g} s after its call (last state {last})")

    def wait_all_idle(self, line_ids: list[str], timeout: float) -> None:
        def done() -> bool:
            return all(self._history.get(i) and self._history[i][-1][1] == "idle" for i in line_ids)
        with self._cond:
            if not self._cond.wait_for(done, timeout):
                raise BenchError(f"lines not all idle within {timeout:g} s: "
                                 f"{ {i: (self._history.get(i) or [(0, None)])[-1][1] for i in line_ids} }")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# --- one broker's run ------------------------------------------------------------------------------
class Run(DaemonRun):
    """Emulators, (mosquitto,) daemon and agents for one broker; calls() runs the callers."""

    def __init__(self, args: argparse.Namespace, broker: str, workdir: Path) -> None:
        super().__init__(workdir)
        self.args, self.broker_kind = args, broker
        self.lines: LineWatch | None = None
        self.offers = Offers()

    def start(self) -> None:
        a = self.args
        flow = self.workdir / "flow-queue.json"
        flow.write_text(json.dumps(QUEUE_FLOW))
        self.prepare(a.lines, a.agents, self.broker_kind, flow,
                     lambda i: Sim7600Emulator(ring_interval=RING_INTERVAL, imei=f"8675840300{i:05d}"))
        progress(f"{self.broker_kind}: starting the daemon ({a.lines} line(s), {a.agents} agent(s))")
        self.proc = start_daemon(self.config, self.data_dir, self.log_path)
        state = wait_ready(self.data_dir, self.proc, self.log_path)
        host, port, gw = state["mqtt_host"], state["mqtt_port"], state["gateway_id"]
        self.lines = LineWatch(host, port, gw)
        self.lines.wait_all_idle([f"gsm{i + 1}" for i in range(a.lines)], LINE_UP_TIMEOUT)
        for aid, pw in self.agent_passwords.items():
            agent = OfferAgent(aid, pw, host, port, gw, self.offers, a.after)
            self.agents.append(agent)
            agent.login()
        progress(f"{self.broker_kind}: daemon pid {self.proc.pid} ready, lines idle, agents Available")

    def one_call(self, line_index: int, caller: str) -> dict:
        """Ring, wait for the offer, end the call (agent accept + hangup, or caller hangup), wait till all is free."""
        emu, line_id = self.emulators[line_index], f"gsm{line_index + 1}"
        mark = len(emu.transcript)
        emu.ring(caller)
        seen = self.offers.wait(caller, OFFER_TIMEOUT)
        if seen is None:
            emu.hangup()
            raise BenchError(f"{line_id}: no offer for {caller} within {OFFER_TIMEOUT:g} s (emulator: {emu.state})")
        if self.args.after == "reject":
            emu.hangup()
        if not seen.done.wait(REPLY_TIMEOUT * 4):
            raise BenchError(f"agent {seen.agent_id} did not finish with {seen.contact_id}")
        if seen.error:
            raise BenchError(f"agent {seen.agent_id}: {seen.error}")
        if not emu.wait_for_state("idle", STATE_TIMEOUT):
            raise BenchError(f"{line_id}: call from {caller} still {emu.state} {STATE_TIMEOUT:g} s after it ended")
        self.lines.wait_idle(line_id, seen.received)
        agent = next(ag for ag in self.agents if ag.agent_id == seen.agent_id)
        agent.wait_state(lambda s: s.get("state") == "Available" and not s.get("offer"), "Available, no offer")
        ring = ata = None
        for stamp, direction, text in list(emu.transcript[mark:]):
            if ring is None and direction == "<" and text in RING_URCS:
                ring = stamp
            elif ring is not None and direction == ">" and text.upper() == "ATA":
                ata = stamp
                break
        return {"line": line_id, "caller": caller, "contact_id": seen.contact_id, "agent": seen.agent_id,
                "offer_at": seen.received, "ring_at": ring, "ata_at": ata}

    def calls(self, numbers: list[tuple[int, str]], warmup: list[tuple[int, str]]) -> tuple[list[dict], float]:
        """Warm-up calls one by one, then every line's callers in parallel threads; returns results, wall s."""
        for line_index, caller in warmup:
            self.one_call(line_index, caller)
        results: list[dict] = []
        errors: list[str] = []

        def worker(line_index: int, mine: list[str]) -> None:
            try:
                self.abort.wait(line_index * self.args.gap / max(1, self.args.lines))
                for caller in mine:
                    if self.abort.is_set():
                        return
                    results.append(self.one_call(line_index, caller))
                    self.abort.wait(self.args.gap)
            except Exception as exc:
                errors.append(f"gsm{line_index + 1}: {type(exc).__name__}: {exc}")
                self.abort.set()

        per_line = {i: [c for li, c in numbers if li == i] for i in range(self.args.lines)}
        threads = [threading.Thread(target=worker, args=(i, mine), name=f"caller-gsm{i + 1}", daemon=True)
                   for i, mine in per_line.items()]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        if errors:
            raise BenchError("; ".join(errors))
        return results, wall

    def log_problems(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines()
                if "Traceback" in line or " ERROR " in line or " CRITICAL " in line]

    def closing(self) -> None:
        if self.lines is not None:
            self.lines.close()


def _stats(values_s: list[float]) -> dict:
    ms = [v * 1000 for v in values_s]
    if not ms:
        return {"count": 0}
    return {"count": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p90_ms": round(percentile(ms, 90), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(max(ms), 2), "min_ms": round(min(ms), 2),
            "mean_ms": round(sum(ms) / len(ms), 2)}


def run_broker(args: argparse.Namespace, broker: str, index: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"callgate-bench-offer-{broker}-"))
    run = Run(args, broker, workdir)
    try:
        run.start()
        base = 1000 * (index + 1)
        warmup = [(i % args.lines, f"+1555888{base + i:04d}") for i in range(args.warmup)]
        numbers = [(n % args.lines, f"+1555777{base + n:04d}") for n in range(args.calls)]
        progress(f"{broker}: {args.warmup} warm-up call(s), then {args.calls} calls over {args.lines} line(s), "
                 f"agents {args.after} each offer")
        results, wall = run.calls(numbers, warmup)
        records = run.records({r["caller"] for r in results},
                              lambda r: r.get("enqueued_at") is not None and r.get("ended_at") is not None)
        problems = run.log_problems()
    except (BenchError, RuntimeError, OSError) as exc:
        raise BenchError(f"{broker}: {exc}\n--- daemon log (tail) ---\n{run.log_tail()}") from None
    finally:
        if run.dispose(args.keep):
            progress(f"{broker}: work folder kept: {workdir}")
    calls = []
    for r in results:
        rec = records[r["caller"]]
        if rec["contact_id"] != r["contact_id"]:
            raise BenchError(f"{broker}: {r['caller']} was offered as {r['contact_id']}, recorded as {rec['contact_id']}")
        calls.append({**r, "enqueued_at": rec["enqueued_at"], "initiated_at": rec["initiated_at"],
                      "enqueue_to_offer_s": r["offer_at"] - rec["enqueued_at"],
                      "ring_to_offer_s": r["offer_at"] - r["ring_at"] if r["ring_at"] else None,
                      "ring_to_ata_s": r["ata_at"] - r["ring_at"] if r["ring_at"] and r["ata_at"] else None,
                      "ata_to_enqueue_s": rec["enqueued_at"] - r["ata_at"] if r["ata_at"] else None})
    spans = {key: _stats([c[f"{key}_s"] for c in calls if c[f"{key}_s"] is not None])
             for key in ("enqueue_to_offer", "ring_to_offer", "ring_to_ata", "ata_to_enqueue")}
    by_agent: dict[str, int] = {}
    for c in calls:
        by_agent[c["agent"]] = by_agent.get(c["agent"], 0) + 1
    progress(f"{broker}: enqueued -> offer p50 {fmt(spans['enqueue_to_offer'].get('p50_ms'), 2)} ms, "
             f"p99 {fmt(spans['enqueue_to_offer'].get('p99_ms'), 2)} ms over {len(calls)} calls in {wall:.1f} s")
    return {"broker": broker, "calls": len(calls), "wall_s": round(wall, 2), "calls_per_s": round(len(calls) / wall, 2),
            "latency": spans, "reoffers": run.offers.reoffers, "offers_by_agent": by_agent,
            "daemon_log_problems": problems,
            "per_call": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in c.items()} for c in calls]}


# --- the report -----------------------------------------------------------------------------------
ROWS = (("enqueued -> offer at the agent", "enqueue_to_offer"),
        ("RING -> offer at the agent", "ring_to_offer"),
        ("  RING -> ATA (emulator transcript)", "ring_to_ata"),
        ("  ATA -> enqueued (daemon)", "ata_to_enqueue"))


def report(r: dict) -> str:
    p, m = r["params"], r["machine"]
    out = [f"callgate offer latency: {p['calls']} calls per broker over {p['lines']} line(s), {p['agents']} agent(s), "
           f"agents {p['after']} each offer, {p['warmup']} warm-up call(s) not counted",
           machine_line(m), ""]
    for run in r["runs"]:
        name = "mosquitto (own process)" if run["broker"] == "mosquitto" else "embedded amqtt (inside the daemon)"
        out += [f"{name}: {run['calls']} calls in {run['wall_s']:.1f} s ({run['calls_per_s']:.1f} calls/s), "
                f"{run['reoffers']} re-offer(s) not counted, offers by agent {run['offers_by_agent']}",
                table([[label, *(run["latency"][key].get(k) for k in ("count", "p50_ms", "p90_ms", "p99_ms", "max_ms"))]
                       for label, key in ROWS],
                      ["ms", "n", "p50", "p90", "p99", "max"]), ""]
        if run["daemon_log_problems"]:
            out.append(f"  daemon log: {len(run['daemon_log_problems'])} error line(s), first: "
                       f"{run['daemon_log_problems'][0][:160]}")
    if len(r["runs"]) == 2:
        a, b = (run["latency"]["enqueue_to_offer"] for run in r["runs"])
        out.append(f"{r['runs'][0]['broker']} vs {r['runs'][1]['broker']}, enqueued -> offer: p50 "
                   f"{fmt(a.get('p50_ms'), 2)} vs {fmt(b.get('p50_ms'), 2)} ms, p99 {fmt(a.get('p99_ms'), 2)} vs "
                   f"{fmt(b.get('p99_ms'), 2)} ms")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("bench_offer.py", __doc__)
    parser.add_argument("--calls", type=int, default=100, help="counted calls per broker (default 100)")
    parser.add_argument("--lines", type=int, default=2, help="emulated modems = lines; calls run in parallel over them (default 2)")
    parser.add_argument("--agents", type=int, default=None, help="MQTT agents (default: as many as lines)")
    parser.add_argument("--broker", choices=("both", "mosquitto", "embedded"), default="both",
                        help="both (default): mosquitto, then the embedded amqtt broker as the baseline")
    parser.add_argument("--after", choices=("accept", "reject"), default="accept",
                        help="accept: the agent accepts and hangs up; reject: it rejects and the caller hangs up")
    parser.add_argument("--warmup", type=int, default=None, help="uncounted calls first (default: one per line)")
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between a line's calls (default 0.1)")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (config, daemon log, records)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args(argv)
    args.agents = args.lines if args.agents is None else args.agents
    args.warmup = args.lines if args.warmup is None else args.warmup
    if args.calls < 1 or args.lines < 1 or args.agents < 1 or args.warmup < 0 or args.gap < 0:
        parser.error("--calls, --lines and --agents must be >= 1, --warmup and --gap >= 0")
    brokers = ["mosquitto", "embedded"] if args.broker == "both" else [args.broker]
    if "mosquitto" in brokers and not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        parser.error("no mosquitto executable found (use --broker embedded)")
    result: dict = {"params": {"calls": args.calls, "lines": args.lines, "agents": args.agents, "after": args.after,
                               "warmup": args.warmup, "gap_s": args.gap, "brokers": brokers},
                    "machine": machine(), "runs": []}
    try:
        for index, broker in enumerate(brokers):
            result["runs"].append(run_broker(args, broker, index))
    except BenchError as exc:
        print(f"bench_offer: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    result["machine"]["loadavg_after"] = machine()["loadavg"]
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
