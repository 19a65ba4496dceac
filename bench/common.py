"""Measuring helpers shared by the benchmarks: a process's CPU and memory from /proc, import time,
the machine's description, percentiles, a plain-text table, and the error a bench stops with."""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
RSS_SAMPLE_INTERVAL = 0.2      # seconds between memory samples
IMPORT_RUNS = 3                # import time is the fastest of this many fresh interpreters
IMPORT_TIMEOUT = 60.0


class BenchError(RuntimeError):
    """A bench run failed; the message says where."""


class ProcStats:
    """CPU seconds and memory of one process, read from /proc (Linux only)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu(self) -> float | None:
        """utime + stime of the process itself (all its threads, not its children), in seconds."""
        try:
            raw = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = raw[raw.rindex(")") + 2:].split()     # the command name may hold spaces
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def status_kib(self, key: str) -> int | None:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        return int(match.group(1)) if match else None

    def rss_mib(self) -> float | None:
        kib = self.status_kib("VmRSS")
        return None if kib is None else kib / 1024

    def hwm_mib(self) -> float | None:
        """Peak resident set since the process started (VmHWM)."""
        kib = self.status_kib("VmHWM")
        return None if kib is None else kib / 1024


class RssSampler:
    """Samples a process's RSS in a background thread; peak() is the largest sample since reset()."""

    def __init__(self, stats: ProcStats, interval: float = RSS_SAMPLE_INTERVAL) -> None:
        self.stats, self.interval = stats, interval
        self._peak = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{stats.pid}", daemon=True)

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2 * self.interval + 1)

    def reset(self) -> None:
        with self._lock:
            self._peak = self.stats.rss_mib() or 0.0

    def peak(self) -> float:
        with self._lock:
            return self._peak

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self.stats.rss_mib()
            if rss is not None:
                with self._lock:
                    self._peak = max(self._peak, rss)


def import_time(module: str, python: str = sys.executable, runs: int = IMPORT_RUNS) -> dict:
    """How long `import module` takes in a fresh interpreter, fastest of `runs`.

    importtime_ms: the module's cumulative figure from `python -X importtime` (the sum of the self
    times of every module it pulls in); wall_ms: wall clock of `python -c "import module"` minus
    that of `python -c pass` (interpreter start-up excluded).
    """
    cumulative, walls, bare = [], [], []
    for _ in range(runs):
        out = subprocess.run([python, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                             text=True, cwd=REPO, timeout=IMPORT_TIMEOUT, check=True)
        for line in out.stderr.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                cumulative.append(int(parts[1]) / 1000)
        for argv, sink in (([python, "-c", f"import {module}"], walls), ([python, "-c", "pass"], bare)):
            t0 = time.perf_counter()
            subprocess.run(argv, cwd=REPO, timeout=IMPORT_TIMEOUT, check=True, capture_output=True)
            sink.append((time.perf_counter() - t0) * 1000)
    return {"module": module, "importtime_ms": round(min(cumulative), 1) if cumulative else None,
            "wall_ms": round(min(walls) - min(bare), 1), "interpreter_ms": round(min(bare), 1)}


def machine() -> dict:
    """Where the figures come from: CPU model and count, Python, kernel, load and date."""
    model = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        match = re.search(r"^Model name:\s+(.+)$", out, re.M)
        model = match.group(1).strip() if match else None
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = None
    return {"cpu_model": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "kernel": platform.release(),
            "machine": platform.machine(), "loadavg": load,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def machine_line(m: dict) -> str:
    """One report line from machine(), with the load before and (`loadavg_after`) after the run."""
    return (f"machine: {m['cpu_model']}, {m['cores']} cores, {m['implementation']} {m['python']}, {m['date']}, "
            f"load {' '.join(m['loadavg'] or [])} -> {' '.join(m.get('loadavg_after') or [])}")


def percentile(values, q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of a sequence, None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def median(values) -> float | None:
    return percentile(values, 50)


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(rows: list[list], header: list[str]) -> str:
    """Columns padded to their widest cell; the first column left-aligned, the rest right-aligned."""
    cells = [header] + [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
