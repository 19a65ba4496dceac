"""In-band DTMF detector: speed in times real time on one core, and the acceptance battery score.

Speed: the detector over espeak-ng speech, white noise and a DTMF-dense signal, once as a whole file
and once fed in 20 ms frames as a call delivers them (the detector batches BATCH_MS internally).
Battery: generated cases on both sides of each ITU-T Q.24 / Bellcore limit (all 16 digits at several
alignments; duration, frequency deviation on row and column, twist, level, 15 dB SNR white noise,
repeat after a 40 ms pause) plus talk-off on espeak-ng speech in five languages; each case passes
or fails, and the score is passed / total.

    .venv/bin/python bench/bench_dtmf.py [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core: set before numpy loads its BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from gateway.media.dtmf import DIGITS, DtmfDetector, detect, dtmf_sequence, dtmf_tone  # noqa: E402
from gateway.media.wavfile import read_wav  # noqa: E402

RATE = 8000
FRAME = 160
SPEECH = [
    ("en-us", [], "Thank you for calling. Please hold while we connect you to the next available agent."),
    ("en-us", ["-p", "85", "-s", "230"], "Hello? Can you hear me? The quick brown fox jumps over the lazy dog."),
    ("de", ["-p", "20"], "Guten Tag. Bitte warten Sie, Sie werden gleich verbunden. Eins zwei drei vier fünf."),
    ("fr", ["-s", "130"], "Bonjour. Veuillez patienter, nous allons vous mettre en relation. Six sept huit."),
    ("es", ["-p", "70"], "Buenos días. Por favor espere, su llamada es muy importante para nosotros."),
    ("ja", [], "こんにちは。少々お待ちください。いち に さん よん ご ろく なな はち きゅう。"),
    ("cmn", ["-p", "90"], "你好。请稍等，我们正在为您转接。一 二 三 四 五 六 七 八 九 零。"),
]


def speech_samples(work: Path) -> list[np.ndarray]:
    out = []
    for i, (voice, opts, text) in enumerate(SPEECH):
        wav = work / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, *opts, "-w", str(wav), text], check=True, timeout=60)
        out.append(read_wav(wav))
    return out


def times_real_time(x: np.ndarray, framed: bool, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        if framed:
            det = DtmfDetector()
            for i in range(0, x.size, FRAME):
                det.feed(x[i : i + FRAME])
            det.flush()
        else:
            detect(x)
        best = min(best, time.process_time() - t0)
    return x.size / RATE / max(best, 1e-9)


def battery(speech: list[np.ndarray]) -> dict[str, list[int]]:
    pad = np.zeros(400, dtype=np.int16)

    def found(*parts) -> str:
        return "".join(e.digit for e in detect(np.concatenate([pad, *parts, pad])))

    score: dict[str, list[int]] = {}

    def case(name: str, ok: bool) -> None:
        s = score.setdefault(name, [0, 0])
        s[0] += ok
        s[1] += 1

    for d in DIGITS:
        for off in range(0, 40, 5):
            lead = np.zeros(off, dtype=np.int16)
            case("40 ms accepted", found(lead, dtmf_tone(d, 40)) == d)
            case("23 ms rejected", found(lead, dtmf_tone(d, 23)) == "")
        for sign in (1, -1):
            for key in ("row_deviation", "col_deviation"):
                case("±1.5 % accepted", found(dtmf_tone(d, 60, **{key: sign * 0.015})) == d)
                case("±3.5 % rejected", found(dtmf_tone(d, 60, **{key: sign * 0.035})) == "")
        case("reverse twist 4 dB accepted", found(dtmf_tone(d, 60, -12, twist_db=4)) == d)
        case("normal twist 8 dB accepted", found(dtmf_tone(d, 60, -4, twist_db=-8)) == d)
        case("reverse twist 6 dB rejected", found(dtmf_tone(d, 60, -12, twist_db=6)) == "")
        case("normal twist 10 dB rejected", found(dtmf_tone(d, 60, -4, twist_db=-10)) == "")
        case("-30 dBFS per tone accepted", found(dtmf_tone(d, 60, -30)) == d)
        case("repeat after 40 ms pause", found(dtmf_sequence(d + d, 40, 40)) == d + d)
    tone_power = np.mean(dtmf_tone("5", 1000, -20).astype(np.float64) ** 2)
    sig = np.concatenate([pad, dtmf_sequence(DIGITS, 50, 50, -20), pad]).astype(np.float64)
    for seed in range(20):
        noise = np.random.default_rng(seed).normal(0.0, np.sqrt(tone_power / 10**1.5), sig.size)
        got = "".join(e.digit for e in detect(np.clip(np.rint(sig + noise), -32768, 32767).astype(np.int16)))
        case("15 dB SNR white noise (16 digits)", got == DIGITS)
    for x in speech:
        for gain in (0.3, 1.0, 3.0):
            loud = np.clip(x.astype(np.float64) * gain, -32768, 32767).astype(np.int16)
            case("talk-off: no digit in speech", detect(loud) == [])
    return score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as tmp:
        speech = speech_samples(Path(tmp))
    signals = {
        "speech": np.concatenate(speech),
        "white noise": np.random.default_rng(0).normal(0, 2000, RATE * 60).astype(np.int16),
        "dtmf": np.tile(dtmf_sequence(DIGITS, 60, 60), 30),
    }
    speed = {name: {"seconds": round(x.size / RATE, 1), "file_x": round(times_real_time(x, False)),
                    "frames_x": round(times_real_time(x, True))} for name, x in signals.items()}
    score = battery(speech)
    passed, total = sum(s[0] for s in score.values()), sum(s[1] for s in score.values())
    if args.json:
        json.dump({"speed_x_real_time": speed, "battery": score, "passed": passed, "total": total},
                  sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    print("DTMF detection speed, times real time on one core (process CPU time)")
    for name, s in speed.items():
        print(f"  {name:12s} {s['seconds']:6.1f} s   whole file x{s['file_x']:<6d} 20 ms frames x{s['frames_x']}")
    print(f"DTMF battery: {passed}/{total} cases passed")
    for name, (ok, n) in score.items():
        print(f"  {name:36s} {ok}/{n}")
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
