"""The media path per call: CPU per call and tick time with 1, 8 and 32 simultaneous calls, each with
VAD, in-band DTMF detection and recording on, paced by a 20 ms asyncio loop in real time.

Each call is what the daemon does with a call's audio every 20 ms, with the real classes: the caller's
frame goes through the webrtcvad Endpointer and the DtmfDetector (its presses collected, as Line does),
and the caller's and the gateway's frames go to a stereo CallRecorder writing to a temporary folder.
The caller audio is espeak-ng speech in four voices with pauses, white noise at 20 dB SNR and a DTMF
digit in every pause; each call starts at a different point of it. In the same process, as baselines:
the same calls with VAD and DTMF off (recording only), so the difference is their cost, and the
pacing loop with no call at all ("idle"), whose CPU the "net" figures leave out. Then VAD and DTMF
alone, frame by frame as fast as they go: times real time on one core.

    .venv/bin/python bench/bench_media.py [--seconds 20] [--calls 1,8,32] [--stagger] [--no-baseline] [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core: set before numpy loads its BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import machine, percentile, table  # noqa: E402
from gateway.media.dtmf import DtmfDetector, dtmf_tone  # noqa: E402
from gateway.media.frames import FRAME_SAMPLES, SAMPLE_RATE, pcm_to_frames  # noqa: E402
from gateway.media.recorder import CallRecorder  # noqa: E402
from gateway.media.vad import Endpointer  # noqa: E402
from gateway.media.wavfile import read_wav  # noqa: E402

TICK = 0.020
QUANTILES = (("p50", 50), ("p99", 99), ("max", 100))
WARMUP_TICKS = 25  # run unpaced and uncounted before each measurement
SNR_DB = 20
PAUSE_S = 1.2  # after every phrase
DIGIT_AT_S = 0.4  # into every pause
DIGIT_MS, DIGIT_DBFS = 100, -15
GOAL_X_REAL_TIME = 500  # VAD + DTMF together, one core
GOAL_CORE_PCT_PER_CALL = 1.0
REPEATS = 9  # the speed figures are the best of this many (short runs: the VM is noisy)
PHRASES = [
    ("en-us", [], "Thank you for calling. I would like to check the status of my order, it has not arrived yet."),
    ("de", ["-p", "30"], "Guten Tag, ich habe eine Frage zu meiner letzten Rechnung. Können Sie mir helfen?"),
    ("fr", ["-s", "150"], "Bonjour, je voudrais changer mon adresse de livraison, s'il vous plaît."),
    ("es", ["-p", "70"], "Hola, llamo porque mi conexión no funciona desde ayer por la tarde."),
]
DIGITS = "0123456789*#"


def material(work: Path) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Caller audio (speech, pauses, noise, digits) and where each digit starts (sample, digit)."""
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), dtype=np.float64)
    parts, digits, pos, speech_power = [], [], 0, []
    for _ in range(4):  # 16 phrases, 16 digits
        for j, (voice, opts, text) in enumerate(PHRASES):
            wav = work / f"p{j}.wav"
            if not wav.exists():
                subprocess.run(["espeak-ng", "-v", voice, *opts, "-w", str(wav), text], check=True, timeout=60)
            speech = read_wav(wav).astype(np.float64)
            speech_power.append(np.mean(speech**2))
            gap = pause.copy()
            at = int(DIGIT_AT_S * SAMPLE_RATE)
            digit = DIGITS[len(digits) % len(DIGITS)]
            tone = dtmf_tone(digit, DIGIT_MS, DIGIT_DBFS).astype(np.float64)
            gap[at : at + tone.size] += tone
            digits.append((pos + speech.size + at, digit))
            parts += [speech, gap]
            pos += speech.size + gap.size
    signal = np.concatenate(parts)
    sigma = np.sqrt(np.mean(speech_power) / 10 ** (SNR_DB / 10))
    noisy = signal + np.random.default_rng(5).normal(0.0, sigma, signal.size)
    usable = noisy.size // FRAME_SAMPLES * FRAME_SAMPLES
    return np.clip(np.rint(noisy[:usable]), -32768, 32767).astype(np.int16), digits


class BenchCall:
    """One call's media work per 20 ms tick, as the daemon does it."""

    def __init__(self, caller: list[bytes], gateway: list[bytes], start: int, path: Path, vad_dtmf: bool) -> None:
        self.caller, self.gateway, self.pos = caller, gateway, start
        self.recorder = CallRecorder(path, stereo=True)
        self.vad = Endpointer() if vad_dtmf else None
        self.dtmf = DtmfDetector() if vad_dtmf else None
        self.pressed: list[str] = []
        self.segments = 0

    def tick(self) -> None:
        caller = self.caller[self.pos % len(self.caller)]
        gateway = self.gateway[(self.pos + len(self.gateway) // 2) % len(self.gateway)]
        self.pos += 1
        if self.vad is not None:
            for event in self.vad.feed(caller):
                self.segments += event.kind == "end"
            self.dtmf.feed(np.frombuffer(caller, dtype="<i2"))
            self.pressed += [p.digit for p in self.dtmf.presses()]
        self.recorder.write(caller, gateway)


def expected_digits(digits: list[tuple[int, str]], total_frames: int, start: int, ticks: int) -> list[list[str]]:
    """What a call fed frames start .. start + ticks of the looped material may press: the digits it
    hears whole, with or without one cut by the start or the end of the run (the detector accepts a
    digit from about 30 ms of tone on)."""
    lo, hi = start * FRAME_SAMPLES, (start + ticks) * FRAME_SAMPLES
    period, tone = total_frames * FRAME_SAMPLES, DIGIT_MS * SAMPLE_RATE // 1000
    whole, head, tail = [], [[]], [[]]
    for k in range(lo // period, hi // period + 1):
        for sample, digit in digits:
            begin = k * period + sample
            if lo <= begin and begin + tone <= hi:
                whole.append((begin, digit))
            elif begin < lo < begin + tone:
                head.append([digit])
            elif begin < hi < begin + tone:
                tail.append([digit])
    middle = [d for _, d in sorted(whole)]
    return [h + middle + t for h in head for t in tail]


async def paced(calls: list[BenchCall], ticks: int, stagger: bool) -> dict:
    """Tick the calls every 20 ms for `ticks` ticks: all in one tick, or (stagger) each call on its own
    20 ms schedule, the schedules spread over the tick as independent modems deliver frames."""
    loop = asyncio.get_running_loop()
    for _ in range(WARMUP_TICKS):
        for call in calls:
            call.tick()
    groups = [[call] for call in calls] if stagger and calls else [calls]
    tick_s: list[float] = []
    tick_cpu: list[float] = []
    call_s: list[float] = []
    late = 0
    clock, cpu_clock = time.perf_counter, time.thread_time

    async def ticker(group: list[BenchCall], next_at: float) -> None:
        nonlocal late
        for _ in range(ticks):
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -TICK / 2:
                late += 1
            c0, t0 = cpu_clock(), clock()
            for call in group:
                t = clock()
                call.tick()
                call_s.append(clock() - t)
            tick_s.append(clock() - t0)
            tick_cpu.append(cpu_clock() - c0)
            next_at += TICK

    cpu0, wall0 = time.process_time(), clock()
    start = loop.time()
    await asyncio.gather(*(ticker(g, start + i * TICK / len(groups)) for i, g in enumerate(groups)))
    return {"cpu": time.process_time() - cpu0, "wall": clock() - wall0, "tick_s": tick_s, "tick_cpu": tick_cpu,
            "call_s": call_s, "late": late}


def run(n_calls: int, seconds: float, vad_dtmf: bool, caller: list[bytes], digits, work: Path,
        stagger: bool = False) -> dict:
    """n_calls calls for `seconds` of real time (0 calls: the pacing loop alone)."""
    ticks = int(round(seconds / TICK))
    stride = len(caller) // max(n_calls, 1)
    folder = Path(tempfile.mkdtemp(prefix="rec-", dir=work))
    calls = [BenchCall(caller, caller, i * stride + i * 7, folder / f"call{i}.wav", vad_dtmf) for i in range(n_calls)]
    starts = [c.pos for c in calls]
    m = asyncio.run(paced(calls, ticks, stagger))
    recorded = [c.recorder.close() for c in calls]
    audio_s = ticks * TICK
    if n_calls == 0:
        return {"calls": 0, "pipeline": "idle", "wall_seconds": round(m["wall"], 2), "cpu_seconds": round(m["cpu"], 3),
                "cpu_pct_of_one_core": round(100 * m["cpu"] / m["wall"], 2), "late_ticks": m["late"]}
    found = sum(len(c.pressed) for c in calls)
    expected = [expected_digits(digits, len(caller), s, WARMUP_TICKS + ticks) for s in starts]
    match = all(c.pressed in allowed for c, allowed in zip(calls, expected))
    return {
        "calls": n_calls,
        "pipeline": "vad+dtmf+record" if vad_dtmf else "record only",
        "audio_seconds_per_call": audio_s,
        "wall_seconds": round(m["wall"], 2),
        "cpu_seconds": round(m["cpu"], 3),
        "cpu_pct_of_one_core": round(100 * m["cpu"] / m["wall"], 2),
        "cpu_pct_per_call": round(100 * m["cpu"] / (n_calls * audio_s), 3),
        "tick_ms": {q: round(1000 * percentile(m["tick_s"], v), 3) for q, v in QUANTILES},
        "tick_cpu_ms": {q: round(1000 * percentile(m["tick_cpu"], v), 3) for q, v in QUANTILES},
        "call_us": {q: round(1e6 * percentile(m["call_s"], v), 1) for q, v in QUANTILES},
        "late_ticks": m["late"],
        "recorded_seconds": round(min(recorded), 2),
        "digits": {"found": found, "expected": sum(len(min(allowed, key=len)) for allowed in expected), "match": match}
        if vad_dtmf else None,
        "speech_segments": sum(c.segments for c in calls) if vad_dtmf else None,
    }


def speed(caller: list[bytes]) -> dict:
    """VAD, DTMF and both, frame by frame as fast as they go: times real time on one core."""
    arrays = [np.frombuffer(f, dtype="<i2") for f in caller]
    audio_s = len(caller) * TICK

    def vad() -> None:
        ep = Endpointer()
        for frame in caller:
            ep.feed(frame)

    def dtmf() -> None:
        det = DtmfDetector()
        for frame in arrays:
            det.feed(frame)
            det.presses()

    def both() -> None:
        ep, det = Endpointer(), DtmfDetector()
        for frame in caller:
            ep.feed(frame)
            det.feed(np.frombuffer(frame, dtype="<i2"))
            det.presses()

    out = {}
    for name, fn in (("vad", vad), ("dtmf", dtmf), ("vad+dtmf", both)):
        best = float("inf")
        for _ in range(REPEATS):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
        out[name] = {"x_real_time": round(audio_s / best), "us_per_frame": round(best / len(caller) * 1e6, 1)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="real time per run (default 20)")
    parser.add_argument("--calls", default="1,8,32",
                        help="simultaneous calls per run, comma-separated (default 1,8,32)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the recording-only and idle runs")
    parser.add_argument("--stagger", action="store_true",
                        help="each call on its own 20 ms schedule, spread over the tick (as separate modems)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one core")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout; progress on stderr")
    args = parser.parse_args(argv)
    try:
        sizes = [int(n) for n in args.calls.split(",")]
        if not sizes or min(sizes) < 1 or args.seconds <= 0:
            raise ValueError
    except ValueError:
        parser.error(f"--calls wants positive integers like 1,8,32 and --seconds > 0 "
                     f"(got {args.calls!r}, {args.seconds})")
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    info = machine()
    plan = [] if args.no_baseline else [(0, False)]
    for n in sizes:
        plan += [(n, True)] + ([] if args.no_baseline else [(n, False)])
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        work = Path(tmp)
        samples, digits = material(work)
        caller = pcm_to_frames(samples)
        runs = []
        for n, vad_dtmf in plan:
            what = "the pacing loop alone" if n == 0 else \
                f"{n} calls, {'VAD + DTMF + recording' if vad_dtmf else 'recording only'}"
            print(f"{what}, {args.seconds:g} s ...", file=sys.stderr, flush=True)
            runs.append(run(n, args.seconds, vad_dtmf, caller, digits, work, args.stagger))
        fast = speed(caller)
    idle = next((r for r in runs if r["pipeline"] == "idle"), None)
    for r in runs:
        if r["calls"] and idle is not None:
            net = r["cpu_seconds"] - idle["cpu_seconds"] * r["wall_seconds"] / idle["wall_seconds"]
            r["net_cpu_pct_per_call"] = round(100 * net / (r["calls"] * r["audio_seconds_per_call"]), 3)
        base = next((b for b in runs if b["calls"] == r["calls"] and b["pipeline"] == "record only"), None)
        if r["pipeline"] == "vad+dtmf+record" and base is not None:
            r["vad_dtmf_pct_per_call"] = round(r["cpu_pct_per_call"] - base["cpu_pct_per_call"], 3)
    full = [r for r in runs if r["pipeline"] == "vad+dtmf+record"]
    worst = max(r["cpu_pct_per_call"] for r in full)
    result = {
        "machine": info,
        "pinned_to_one_core": not args.no_pin,
        "staggered": args.stagger,
        "material": {"seconds": round(len(caller) * TICK, 1), "digits": len(digits), "snr_db": SNR_DB},
        "runs": runs,
        "speed": fast,
        "goals": {"vad_dtmf_x_real_time": GOAL_X_REAL_TIME, "core_pct_per_call": GOAL_CORE_PCT_PER_CALL,
                  "met": fast["vad+dtmf"]["x_real_time"] >= GOAL_X_REAL_TIME and worst < GOAL_CORE_PCT_PER_CALL},
    }
    digits_ok = all(r["digits"]["match"] for r in full)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0 if digits_ok else 1
    print(f"Media path on {info['cpu_model']} ({info['cores']} cores, "
          f"{'pinned to one' if not args.no_pin else 'not pinned'}), Python {info['python']}, {info['date']}")
    print(f"caller audio: {result['material']['seconds']} s of espeak-ng speech at {SNR_DB} dB SNR with "
          f"{len(digits)} DTMF digits, looped; {args.seconds:g} s of real time per run, 20 ms asyncio ticks"
          f"{', one schedule per call (staggered): tick = one call' if args.stagger else ''}\n")
    rows = []
    for r in runs:
        if r["pipeline"] == "idle":
            rows.append(["0", "idle (pacing loop)", f"{r['cpu_pct_of_one_core']:.2f}", "-", "-", "-", "-", "-", "-",
                         "-", str(r["late_ticks"]), "-"])
            continue
        d = r["digits"]
        rows.append([str(r["calls"]), r["pipeline"], f"{r['cpu_pct_of_one_core']:.2f}", f"{r['cpu_pct_per_call']:.3f}",
                     "-" if "net_cpu_pct_per_call" not in r else f"{r['net_cpu_pct_per_call']:.3f}",
                     f"{r['tick_ms']['p50']:.3f}", f"{r['tick_ms']['p99']:.3f}", f"{r['tick_ms']['max']:.2f}",
                     f"{r['tick_cpu_ms']['p99']:.3f}", f"{r['call_us']['p99']:.0f}", str(r["late_ticks"]),
                     "-" if d is None else f"{d['found']}/{d['expected']}"])
    print(table(rows, ["calls", "pipeline", "% core", "% core/call", "net/call", "tick p50 ms", "tick p99 ms",
                       "tick max ms", "tick p99 CPU ms", "call p99 µs", "late", "digits"]))
    for r in full:
        if "vad_dtmf_pct_per_call" in r:
            print(f"  {r['calls']:>2} calls: VAD + DTMF cost {r['vad_dtmf_pct_per_call']:.3f} % of a core per call "
                  f"over recording alone")
    print(f"\nframe by frame as fast as they go, one core (process CPU, best of {REPEATS}):")
    for name, s in fast.items():
        print(f"  {name:9s} {s['x_real_time']:>7,} x real time  {s['us_per_frame']:6.1f} µs per 20 ms frame")
    print(f"\ngoals: VAD + DTMF >= {GOAL_X_REAL_TIME}x real time: {fast['vad+dtmf']['x_real_time']:,}x; "
          f"< {GOAL_CORE_PCT_PER_CALL} % of one core per call: worst {worst:.3f} %  ->  "
          f"{'met' if result['goals']['met'] else 'NOT met'}")
    if not digits_ok:
        print("DIGITS MISSED OR EXTRA: " + ", ".join(f"{r['calls']} calls" for r in full if not r["digits"]["match"]))
    return 0 if digits_ok else 1


if __name__ == "__main__":
    sys.exit(main())
