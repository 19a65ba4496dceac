"""Recording retention: remove the oldest call recordings once they are older than the configured number
of days or once all of them together exceed the configured size; a recording being written is never
touched. Pure file-system work on a folder tree; the daemon calls it at start and every hour."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def prune(folder: Path, *, now: float, keep_days: float | None = None, max_bytes: int | None = None,
          in_use: set[Path] = frozenset()) -> list[Path]:
    """Remove recordings (*.wav under folder) past keep_days, then the oldest until the rest fit in
    max_bytes; returns what was removed, oldest first."""
    busy = {p.resolve() for p in in_use}
    files = []
    for path in folder.rglob("*.wav"):
        try:
            st = path.stat()
        except OSError:             # removed meanwhile
            continue
        files.append((st.st_mtime, st.st_size, path))
    files.sort()
    total = sum(size for _, size, _ in files)
    removed: list[Path] = []
    for mtime, size, path in files:
        too_old = keep_days is not None and now - mtime > keep_days * 86400
        too_much = max_bytes is not None and total > max_bytes
        if not (too_old or too_much):
            break                   # everything after this one is newer and the total fits
        if path.resolve() in busy:
            continue
        try:
            path.unlink()
        except OSError as exc:
            log.warning("recording %s could not be removed: %s", path, exc)
            continue
        total -= size
        removed.append(path)
    for path in removed:
        parent = path.parent
        if parent != folder and not any(parent.iterdir()):
            parent.rmdir()          # the day's folder, once empty
    return removed
