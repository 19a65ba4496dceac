"""Spoken prompts: text rendered once by espeak-ng and WAV files converted once, both kept as 8 kHz
int16 in a bounded in-memory LRU, with rendered speech also cached on disk across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path

import numpy as np

from gateway.media.frames import SAMPLE_RATE
from gateway.media.wavfile import WavError, read_wav, write_wav

log = logging.getLogger(__name__)

MEMORY_LIMIT_BYTES = 16 * 1024 * 1024  # about 17 minutes of 8 kHz audio held in RAM
_QUOTE_CHARS = 60  # how much of a prompt's text goes into an error message


class PromptError(RuntimeError):
    """A prompt could not be rendered; the message names the text."""


class PromptCache:
    """Renders and caches prompts. Returned arrays are shared and read-only: copy before editing."""

    def __init__(self, cache_dir: Path, *, espeak: str = "espeak-ng", timeout: float = 10.0) -> None:
        self.cache_dir = Path(cache_dir)
        self.espeak = espeak
        self.timeout = timeout
        self._memory: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._memory_bytes = 0
        self._renders: dict[str, asyncio.Lock] = {}

    async def text(self, text: str, voice: str = "en-us", speed_wpm: int = 160) -> np.ndarray:
        """Speech for `text` as int16 at 8 kHz; SSML if the text starts with <speak>."""
        if not text.strip():
            raise PromptError("empty prompt text")
        key = hashlib.sha256(json.dumps([voice, speed_wpm, text]).encode()).hexdigest()
        hit = self._recall(("tts", key))
        if hit is not None:
            return hit
        lock = self._renders.setdefault(key, asyncio.Lock())
        try:
            async with lock:  # concurrent requests for one prompt render it once
                hit = self._recall(("tts", key))
                if hit is None:
                    path = self.cache_dir / f"{key}.wav"
                    hit = await asyncio.to_thread(_load_if_valid, path)
                    if hit is None:
                        hit = await self._render(text, voice, speed_wpm, path)
                    hit = self._remember(("tts", key), hit)
        finally:
            self._renders.pop(key, None)
        return hit

    def file(self, path: str | Path) -> np.ndarray:
        """A WAV file as int16 at 8 kHz, converted once per (path, mtime). WavError on bad files."""
        try:
            st = os.stat(path)
        except OSError as exc:
            raise WavError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        key = ("file", os.path.abspath(path), st.st_mtime_ns, st.st_size)
        hit = self._recall(key)
        if hit is None:
            hit = self._remember(key, read_wav(path, rate=SAMPLE_RATE))
        return hit

    async def _render(self, text: str, voice: str, speed_wpm: int, dest: Path) -> np.ndarray:
        quoted = _quote(text)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, raw_name = tempfile.mkstemp(dir=self.cache_dir, prefix=".espeak-", suffix=".wav")
            os.close(fd)
        except OSError as exc:
            raise PromptError(f"cannot render {quoted}: cache directory {self.cache_dir}: {exc}") from exc
        raw = Path(raw_name)
        try:
            args = [self.espeak, "-v", voice, "-s", str(int(speed_wpm)), "-w", str(raw), "--stdin"]
            if text.lstrip().startswith("<speak"):
                args.append("-m")
            try:
                proc = await asyncio.create_subprocess_exec(
                    *args,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
            except OSError as exc:
                raise PromptError(f"cannot run {self.espeak!r} for {quoted}: {exc}") from exc
            try:
                _, stderr = await asyncio.wait_for(proc.communicate(text.encode()), self.timeout)
            except TimeoutError:
                raise PromptError(f"{self.espeak} took over {self.timeout:g} s for {quoted}") from None
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            if proc.returncode != 0:
                detail = stderr.decode(errors="replace").strip()[:200]
                raise PromptError(f"{self.espeak} exited with {proc.returncode} for {quoted}: {detail}")
            try:
                samples = await asyncio.to_thread(read_wav, raw, rate=SAMPLE_RATE)
            except WavError as exc:
                raise PromptError(f"{self.espeak} gave no usable audio for {quoted}: {exc}") from exc
        finally:
            raw.unlink(missing_ok=True)
        await asyncio.to_thread(_store, dest, samples)
        return samples

    def _recall(self, key: Hashable) -> np.ndarray | None:
        samples = self._memory.get(key)
        if samples is not None:
            self._memory.move_to_end(key)
        return samples

    def _remember(self, key: Hashable, samples: np.ndarray) -> np.ndarray:
        samples.setflags(write=False)
        previous = self._memory.pop(key, None)
        if previous is not None:
            self._memory_bytes -= previous.nbytes
        self._memory[key] = samples
        self._memory_bytes += samples.nbytes
        while self._memory_bytes > MEMORY_LIMIT_BYTES and len(self._memory) > 1:
            _, evicted = self._memory.popitem(last=False)
            self._memory_bytes -= evicted.nbytes
        return samples


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _QUOTE_CHARS else flat[: _QUOTE_CHARS - 3] + "...")


def _load_if_valid(path: Path) -> np.ndarray | None:
    """A cached rendering, or None if it is missing or damaged (then it is rendered again)."""
    if not path.exists():
        return None
    try:
        return read_wav(path, rate=SAMPLE_RATE)
    except WavError as exc:
        log.warning("ignoring damaged prompt cache entry: %s", exc)
        return None


def _store(dest: Path, samples: np.ndarray) -> None:
    """Write the disk cache atomically; a failure only costs a re-render next time."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        write_wav(tmp, samples, SAMPLE_RATE)
        os.replace(tmp, dest)
    except OSError as exc:
        log.warning("cannot write prompt cache %s: %s", dest, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
