"""VAD speed in times real time on one core: the live endpointer frame by frame and segments_of on a
whole recording, over espeak-ng speech with silences in white noise at 20 dB SNR.

    .venv/bin/python bench/bench_vad.py [--seconds 600] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.media.frames import SAMPLE_RATE, pcm_to_frames  # noqa: E402
from gateway.media.vad import Endpointer, segments_of  # noqa: E402
from gateway.media.wavfile import read_wav  # noqa: E402

PHRASE = "Hello, you have reached the gateway. Please leave a message after the tone."
SNR_DB = 20
REPEATS = 3  # best of


def _material(seconds: float) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), PHRASE], check=True, timeout=30)
        speech = read_wav(path)
    block = np.concatenate([speech, np.zeros(SAMPLE_RATE, dtype=np.int16)])  # speech, then 1 s pause
    signal = np.tile(block, int(seconds * SAMPLE_RATE) // block.size + 1)[: int(seconds * SAMPLE_RATE)]
    sigma = np.sqrt(np.mean(speech.astype(np.float64) ** 2) / 10 ** (SNR_DB / 10))
    noisy = signal + np.random.default_rng(1).normal(0.0, sigma, signal.size)
    return np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)


def _cpu(fn) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="audio length (default 600)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    samples = _material(args.seconds)
    frames = pcm_to_frames(samples)

    def live() -> None:
        ep = Endpointer()
        for frame in frames:
            ep.feed(frame)
        ep.flush()

    audio_s = samples.size / SAMPLE_RATE
    live_cpu = _cpu(live)
    file_cpu = _cpu(lambda: segments_of(samples))
    result = {
        "audio_seconds": audio_s,
        "segments": len(segments_of(samples)),
        "live_x_realtime": round(audio_s / live_cpu),
        "live_us_per_frame": round(live_cpu / len(frames) * 1e6, 2),
        "file_x_realtime": round(audio_s / file_cpu),
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(f"VAD over {audio_s:.0f} s of speech at {SNR_DB} dB SNR, one core, CPU time, best of {REPEATS}:")
        print(f"  live Endpointer.feed: {result['live_x_realtime']} x real time "
              f"({result['live_us_per_frame']} us per 20 ms frame)")
        print(f"  segments_of (file):   {result['file_x_realtime']} x real time")
        print(f"  segments found:       {result['segments']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
