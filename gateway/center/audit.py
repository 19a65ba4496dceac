"""The audit log: one JSON line per agent command (accepted or refused) and per technician operation, in
`<data_dir>/audit.log`, appended and synced line by line, rotated by size (docs/security.md).

A line reads `{"time": "2026-12-01T10:00:00.123+01:00", "source": "agent", "actor": "bob", "agent": "bob",
"action": "pause_recording", "contact_id": "c-…", "queue": "support", "result": "refused", "code":
"forbidden", "reason": "…", "missing_permission": "control_recording"}`; keys without a value are left
out. Writing never raises: a full disk costs audit lines (logged), never the call or the command.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from gateway.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 10 * 1024 * 1024   # rotate when the next line would make the file larger
DEFAULT_KEEP = 5                       # rotated files kept: audit.log.1 (newest) ... audit.log.5
MAX_VALUE_CHARS = 256                  # longer strings (say, a forged agent id) are cut
FIELD_ORDER = ("time", "source", "actor", "agent", "action", "request_id", "contact_id", "queue", "result",
               "code", "reason", "missing_permission")


def _clean(value):
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + "…"
    return value


def format_time(ts: float) -> str:
    """Local time with its offset and milliseconds: readable, and exact for sorting and --since."""
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


class AuditLog:
    def __init__(self, path: Path, *, clock: Clock = SYSTEM_CLOCK, max_bytes: int = DEFAULT_MAX_BYTES,
                 keep: int = DEFAULT_KEEP) -> None:
        if max_bytes < 1 or keep < 0:
            raise ValueError("max_bytes must be >= 1 and keep >= 0")
        self.path = Path(path)
        self._clock = clock
        self._max_bytes = max_bytes
        self._keep = keep
        self._file = None
        self._size = 0
        self.written = 0
        self.failures = 0

    def record(self, entry: dict) -> None:
        """Append one entry (the time is added); None values are dropped."""
        fields = {"time": format_time(self._clock.time())}
        ordered = [k for k in FIELD_ORDER if k in entry] + [k for k in entry if k not in FIELD_ORDER]
        fields.update((k, _clean(entry[k])) for k in ordered if entry[k] is not None and k != "time")
        line = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        data = line.encode("utf-8")
        try:
            if self._file is None:
                self._open()
            if self._size and self._size + len(data) > self._max_bytes:
                self._rotate()
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._size += len(data)
            self.written += 1
        except OSError as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.error("audit log %s: cannot write (%s); %d line(s) lost so far", self.path, exc, self.failures)
            self.close()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._size = os.fstat(fd).st_size

    def _rotate(self) -> None:
        self.close()
        if self._keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(self._keep - 1, 0, -1):
                older = rotated(self.path, i)
                if older.exists():
                    os.replace(older, rotated(self.path, i + 1))
            os.replace(self.path, rotated(self.path, 1))
        self._open()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def rotated(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def audit_files(path: Path) -> list[Path]:
    """The log and its rotated files that exist, oldest first."""
    path = Path(path)
    numbered = []
    for p in path.parent.glob(f"{path.name}.*"):
        suffix = p.name[len(path.name) + 1:]
        if suffix.isdigit():
            numbered.append((int(suffix), p))
    files = [p for _, p in sorted(numbered, reverse=True)]
    return files + ([path] if path.exists() else [])


def read_audit(path: Path) -> Iterator[dict | None]:
    """Every entry of the log and its rotated files, oldest first; None for a line that is not a JSON
    object (a line cut short by a crash or being written right now)."""
    for file in audit_files(path):
        try:
            with open(file, "rb") as f:
                for raw in f:
                    try:
                        entry = json.loads(raw)
                    except (ValueError, UnicodeDecodeError):
                        entry = None
                    yield entry if isinstance(entry, dict) else None
        except FileNotFoundError:   # rotated away while we read
            continue


def entry_time(entry: dict) -> float | None:
    try:
        return datetime.fromisoformat(entry["time"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
