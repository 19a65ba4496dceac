"""AT engine speed: command round trips per second through a pseudo-terminal, and the time from a
RING arriving to ATA being written when a Line answers an incoming call.

Round trips: each command is written and its final result awaited before the next one, on a real
pty. Two clients (a bare blocking read/write loop, and gateway.at's AtSession over a SerialLink)
run against two modems (a minimal in-process responder that answers at once, and hil's SIM7600
emulator), so the figures separate the engine's cost from the pty's and the emulator's.

RING -> ATA: a gateway.modem.line.Line serves the emulator; its listener answers every incoming
call (incoming_call -> line.answer()). The emulator's transcript stamps the RING it writes and the
ATA it reads, so the interval covers pty transfer both ways, the session's classification, the
Line's caller-ID handling and the ATA write. Calls are short: the caller hangs up once answered.

    .venv/bin/python bench/bench_at.py [--count 2000] [--calls 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import sys
import threading
import time
import tty
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import fmt, machine, percentile, table
from gateway.at.session import AtSession
from gateway.modem.line import Line, LineState
from gateway.modem.profile import load_profile
from gateway.transport.serial_port import open_serial
from hil.sim7600 import Sim7600Emulator

PROFILE_ID = "simcom_sim7600"
MINIMAL, EMULATOR = "minimal responder", "SIM7600 emulator"
BARE, SESSION = "bare pty client", "AtSession"
COMMANDS = ("AT", "AT+CSQ")
COMMAND_TIMEOUT = 2.0
WARMUP_COMMANDS = 50
WARMUP_CALLS = 3
CALL_TIMEOUT = 10.0          # ring -> answered, and hang-up -> idle again
POLL = 0.002
RESPONDER_POLL = 0.2         # the responder thread checks its stop flag this often
RING_INTERVAL = 60.0         # one RING per call: calls end long before a second one
CSQ_REPLY = b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n"
OK_REPLY = b"\r\nOK\r\n"


class BenchError(RuntimeError):
    pass


def progress(msg: str) -> None:
    print(f"[bench_at] {msg}", file=sys.stderr, flush=True)


def _open_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


class MinimalResponder:
    """A modem that answers every command line at once: +CSQ for AT+CSQ, OK for anything else.

    A thread doing blocking reads and writes on the pty master: the least a modem can cost."""

    def __init__(self) -> None:
        self._master, self._slave, self.at_port = _open_pty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="minimal-responder", daemon=True)

    def __enter__(self) -> "MinimalResponder":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2 * RESPONDER_POLL + 1)
        for fd in (self._master, self._slave):
            os.close(fd)

    def _run(self) -> None:
        pending = bytearray()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], RESPONDER_POLL)
            if not ready:
                continue
            try:
                pending += os.read(self._master, 4096)
            except OSError:
                return
            while b"\r" in pending:
                cut = pending.index(b"\r")
                line = bytes(pending[:cut]).strip().upper()
                del pending[: cut + 1]
                if line:
                    os.write(self._master, CSQ_REPLY if line == b"AT+CSQ" else OK_REPLY)


def _stats(latencies: list[float], wall: float, cpu: float) -> dict:
    count = len(latencies)
    return {"commands": count, "per_second": round(count / wall, 1),
            "p50_us": round(percentile(latencies, 50) * 1e6, 1),
            "p99_us": round(percentile(latencies, 99) * 1e6, 1),
            "max_us": round(max(latencies) * 1e6, 1),
            "client_cpu_us": round(cpu / count * 1e6, 1)}


def raw_round_trips(port: str, command: str, count: int) -> dict:
    """A bare blocking client: write the command, read until the final OK, repeat."""
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        data = command.encode() + b"\r"
        latencies = []
        for n in range(WARMUP_COMMANDS + count):
            t0 = time.perf_counter()
            if n == WARMUP_COMMANDS:
                wall0, cpu0 = t0, time.thread_time()
            os.write(fd, data)
            got = b""
            while not got.endswith(b"OK\r\n"):
                got += os.read(fd, 4096)
            if n >= WARMUP_COMMANDS:
                latencies.append(time.perf_counter() - t0)
        return _stats(latencies, time.perf_counter() - wall0, time.thread_time() - cpu0)
    finally:
        os.close(fd)


async def session_round_trips(port: str, command: str, count: int, urc_prefixes) -> dict:
    """AtSession.command() over a SerialLink, one after the other."""
    link = await open_serial(port)
    session = AtSession(link, urc_prefixes)
    await session.start()
    try:
        await session.command("ATE0", COMMAND_TIMEOUT)
        for _ in range(WARMUP_COMMANDS):
            await session.command(command, COMMAND_TIMEOUT)
        latencies = []
        perf, wall0, cpu0 = time.perf_counter, time.perf_counter(), time.thread_time()
        for _ in range(count):
            t0 = perf()
            await session.command(command, COMMAND_TIMEOUT)
            latencies.append(perf() - t0)
        return _stats(latencies, perf() - wall0, time.thread_time() - cpu0)
    finally:
        await session.close()


def one_run(modem_name: str, client: str, command: str, count: int, urc_prefixes) -> dict:
    modem = MinimalResponder() if modem_name == MINIMAL else Sim7600Emulator(boot_urcs=False)
    with modem:
        if client == BARE:
            if modem_name == EMULATOR:
                raw_echo_off(modem.at_port)
            return raw_round_trips(modem.at_port, command, count)
        return asyncio.run(session_round_trips(modem.at_port, command, count, urc_prefixes))


def measure_round_trips(count: int, repeat: int, urc_prefixes) -> list[dict]:
    """Every (modem, command, client) `repeat` times, round-robin so that a burst of load from
    elsewhere hits all of them alike; each row is the run with the median rate."""
    configs = [(m, cmd, c) for m in (MINIMAL, EMULATOR) for cmd in COMMANDS for c in (BARE, SESSION)]
    runs: dict[tuple, list[dict]] = {config: [] for config in configs}
    for rep in range(repeat):
        for modem_name, command, client in configs:
            figures = one_run(modem_name, client, command, count, urc_prefixes)
            runs[(modem_name, command, client)].append(figures)
            progress(f"run {rep + 1}/{repeat} {client:15} {command:7} on the {modem_name}: "
                     f"{figures['per_second']:.0f}/s, p50 {figures['p50_us']:.0f} µs")
    rows = []
    for (modem_name, command, client), results in runs.items():
        ordered = sorted(results, key=lambda r: r["per_second"])
        rows.append({"modem": modem_name, "client": client, "command": command,
                     **ordered[len(ordered) // 2],
                     "per_second_range": [ordered[0]["per_second"], ordered[-1]["per_second"]]})
    return rows


def raw_echo_off(port: str) -> None:
    """The emulator powers up with echo on, as a module does; the bare client wants it off."""
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        os.write(fd, b"ATE0\r")
        got = b""
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while not got.endswith(b"OK\r\n"):
            if time.monotonic() > deadline:
                raise BenchError(f"no OK to ATE0 on {port}: {got!r}")
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                got += os.read(fd, 4096)
    finally:
        os.close(fd)


# --- RING -> ATA ---------------------------------------------------------------------------------

class Answerer:
    """The Line's listener: answers each incoming call at once, and notes what happened."""

    def __init__(self) -> None:
        self.answered = 0
        self.errors: list[str] = []
        self._tasks: set[asyncio.Task] = set()

    def line_changed(self, line) -> None:
        pass

    def incoming_call(self, line, call) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(line))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, line) -> None:
        try:
            await line.answer()
            self.answered += 1
        except Exception as exc:  # reported with the figures, not raised into the Line
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def call_ended(self, line, call) -> None:
        pass

    def dtmf(self, line, call, digit) -> None:
        pass

    def audio_in(self, line, call, frame) -> None:
        pass


async def _until(predicate, what: str, timeout: float = CALL_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL)


async def ring_to_answer(calls: int, profile) -> dict:
    with Sim7600Emulator(ring_interval=RING_INTERVAL) as emu:
        listener = Answerer()
        line = Line("bench1", profile, emu.at_port, emu.audio_port, listener)
        runner = asyncio.get_running_loop().create_task(line.run())
        try:
            await _until(lambda: line.state == LineState.IDLE, "the line to come up", 30.0)
            mark = 0
            t0 = time.perf_counter()
            for n in range(WARMUP_CALLS + calls):
                if n == WARMUP_CALLS:
                    mark, t0 = len(emu.transcript), time.perf_counter()
                answered = listener.answered
                await asyncio.to_thread(emu.ring, f"+1555000{n:04d}")
                await _until(lambda: listener.answered > answered or listener.errors,
                             f"call {n} to be answered")
                if listener.errors:
                    raise BenchError(f"call {n}: answer failed: {listener.errors[-1]}")
                await asyncio.to_thread(emu.hangup)
                await _until(lambda: line.state == LineState.IDLE and emu.state == "idle"
                             and not emu.pcm_enabled, f"call {n} to end")
            wall = time.perf_counter() - t0
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        transcript = list(emu.transcript[mark:])
    delays, rung = [], None
    for stamp, direction, text in transcript:
        if direction == "<" and text == "RING":
            rung = stamp
        elif direction == ">" and text.upper() == "ATA" and rung is not None:
            delays.append(stamp - rung)
            rung = None
    if len(delays) != calls:
        raise BenchError(f"{len(delays)} RING -> ATA pairs in the emulator's transcript, {calls} calls")
    ms = [d * 1000 for d in delays]
    return {"calls": calls, "p50_ms": round(percentile(ms, 50), 2), "p99_ms": round(percentile(ms, 99), 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(sum(ms) / len(ms), 2),
            "wall_s": round(wall, 1)}


# --- report --------------------------------------------------------------------------------------

def report(result: dict) -> str:
    m = result["machine"]
    out = [f"callgate AT engine benchmark: {result['count']} commands per run, "
           f"{result['ring']['calls']} calls",
           f"machine: {m['cpu_model']}, {m['cores']} cores, {m['implementation']} {m['python']}, "
           f"{m['date']}, load {' '.join(m['loadavg'] or [])}", ""]
    rows = [[r["modem"], r["client"], r["command"], f"{r['per_second']:.0f}",
             "{:.0f}-{:.0f}".format(*r["per_second_range"]), r["p50_us"], r["p99_us"], r["max_us"],
             r["client_cpu_us"]] for r in result["round_trips"]]
    out.append(f"AT round trips through a pty, one command at a time "
               f"(the median of {result['repeat']} runs by rate)")
    out.append(table(rows, ["modem", "client", "command", "per s", "range", "p50 µs", "p99 µs",
                            "max µs", "client CPU µs"]))
    out.append("")
    for row in result["engine_cost"]:
        out.append(f"AtSession over the bare client, {row['command']:7} on the {row['modem']}: "
                   f"+{fmt(row['extra_us'])} µs per round trip, +{fmt(row['extra_cpu_us'])} µs CPU")
    ring = result["ring"]
    out += ["", f"RING -> ATA (Line answering on the SIM7600 emulator, {ring['calls']} calls, "
                f"{ring['wall_s']} s): p50 {ring['p50_ms']} ms, p99 {ring['p99_ms']} ms, "
                f"max {ring['max_ms']} ms, mean {ring['mean_ms']} ms"]
    return "\n".join(out)


def engine_cost(rows: list[dict]) -> list[dict]:
    out = []
    for modem in (MINIMAL, EMULATOR):
        for command in COMMANDS:
            pick = {r["client"]: r for r in rows if r["modem"] == modem and r["command"] == command}
            raw, ses = pick[BARE], pick[SESSION]
            out.append({"modem": modem, "command": command,
                        "extra_us": round(ses["p50_us"] - raw["p50_us"], 1),
                        "extra_cpu_us": round(ses["client_cpu_us"] - raw["client_cpu_us"], 1)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="commands per round-trip run (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each round-trip figure (default 3)")
    parser.add_argument("--calls", type=int, default=200, help="calls for RING -> ATA (default 200)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.count < 1 or args.calls < 1 or args.repeat < 1:
        parser.error("--count, --repeat and --calls must be at least 1")
    profile = load_profile(PROFILE_ID)
    before = machine()
    try:
        rows = measure_round_trips(args.count, args.repeat, profile.urc_prefixes)
        progress(f"RING -> ATA over {args.calls} calls ...")
        ring = asyncio.run(ring_to_answer(args.calls, profile))
    except BenchError as exc:
        print(f"bench_at: {exc}", file=sys.stderr)
        return 1
    result = {"count": args.count, "repeat": args.repeat, "machine": before, "round_trips": rows,
              "engine_cost": engine_cost(rows), "ring": ring}
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
