"""An emulated USB sound card that PortAudio really opens, whose other side is the modem emulator.

No kernel driver is needed (containers have no snd-aloop and no /dev/snd): the card is an ALSA
PCM defined in a generated configuration file that this process adds to ALSA_CONFIG_PATH.
Playback goes through ALSA's `file` plugin into a FIFO the emulator reads (the uplink, host to
modem); capture reads, through the same plugin's `infile`, from a FIFO the emulator writes (the
downlink, modem to host). Both sit on the `null` plugin, which has no clock of its own: the card's
clock is a thread here that writes one frame every 20 ms, and the host's blocking read of the
capture FIFO paces the whole duplex stream, as a real card's crystal would.

The emulator's side is the AudioSide protocol of hil/gsm/audio.py: open(), close(),
write_downlink(), read_uplink(), describe(). close() pulls the card out: the host's next write
fails with EPIPE, and PortAudio stops the stream as it does when a USB card is unplugged.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import os
import shutil
import struct
import tempfile
import termios
import threading
import time

import numpy as np

log = logging.getLogger(__name__)

MODEM_RATE = 8000
FRAME_MS = 20
MODEM_FRAME_BYTES = MODEM_RATE * FRAME_MS // 1000 * 2
ALSA_CONF = "/usr/share/alsa/alsa.conf"  # alsa-lib's own top-level configuration
# Kernel pipe buffer for each FIFO: one page, the smallest Linux allows (128 ms at 8 kHz).
PIPE_BYTES = 4096
# The clock thread writes a capture frame only while fewer than this many are unread in the FIFO,
# so a host that stops capturing does not find stale audio when it starts again.
CAPTURE_AHEAD_FRAMES = 2
# Audio buffered on the emulator's side in each direction before the oldest is dropped.
BUFFER_SECONDS = 5
# Behind schedule by more than this, the clock starts a new schedule instead of catching up.
RESYNC_SECONDS = 0.2

F_SETPIPE_SZ = 1031
_names = itertools.count(1)
_env_lock = threading.Lock()
_active_confs: list[str] = []
_original_env: str | None = None


class EmulatedSoundCard:
    """A duplex S16LE mono sound card at `rate` Hz (8000, 16000 or 48000; the modem side is always
    8 kHz), visible to PortAudio as `name` while open."""

    def __init__(self, name: str | None = None, *, rate: int = MODEM_RATE) -> None:
        if rate % MODEM_RATE:
            raise ValueError(f"emulated card rate {rate} Hz is not a multiple of {MODEM_RATE} Hz")
        self.name = name or f"callgate_card{next(_names)}"
        if not self.name.replace("_", "").isalnum():
            raise ValueError(f"emulated card name {self.name!r}: letters, digits and '_' only")
        self.rate = rate
        self._ratio = rate // MODEM_RATE
        self._card_frame_bytes = MODEM_FRAME_BYTES * self._ratio
        self._dir = ""
        self.conf_path = ""
        self._down_fd = -1
        self._up_fd = -1
        self._lock = threading.Lock()
        self._downlink = bytearray()
        self._uplink = bytearray()
        self._uplink_rest = b""
        self._last_sample = 0
        self._limit = BUFFER_SECONDS * MODEM_RATE * 2
        self._running = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_delivered = 0  # capture frames handed to the host
        self.frames_discarded = 0  # downlink frames nobody was capturing
        self.downlink_dropped = 0  # bytes dropped because write_downlink() ran ahead of the clock
        self.uplink_bytes = 0  # host playback bytes received (8 kHz)

    # -- AudioSide -----------------------------------------------------------------------------

    def open(self) -> None:
        """Create the FIFOs and the ALSA device, start the card's clock."""
        if self._thread is not None:
            return
        self._dir = tempfile.mkdtemp(prefix=f"{self.name}-")
        down, up = os.path.join(self._dir, "downlink.fifo"), os.path.join(self._dir, "uplink.fifo")
        os.mkfifo(down, 0o600)
        os.mkfifo(up, 0o600)
        # Read-write opens never block and keep each FIFO with a reader and a writer, so the host's
        # blocking opens succeed and the host never sees end-of-file while the card is in.
        self._down_fd = os.open(down, os.O_RDWR | os.O_NONBLOCK)
        self._up_fd = os.open(up, os.O_RDWR | os.O_NONBLOCK)
        for fd in (self._down_fd, self._up_fd):
            try:
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
            except OSError as exc:
                log.debug("cannot shrink pipe buffer: %s", exc)
        self.conf_path = os.path.join(self._dir, "asound.conf")
        with open(self.conf_path, "w", encoding="ascii") as f:
            f.write(_pcm_config(self.name, up, down))
        _add_conf(self.conf_path)
        self._running.set()
        self._thread = threading.Thread(target=self._clock, name=f"sound card {self.name}", daemon=True)
        self._thread.start()
        log.debug("emulated sound card %s open (%d Hz, %s)", self.name, self.rate, self._dir)

    def close(self) -> None:
        """Unplug the card: stop the clock, close the FIFOs (the host's stream fails), remove the device."""
        if self._thread is None:
            return
        self._running.clear()
        self._paused.clear()
        self._thread.join(timeout=2.0)
        self._thread = None
        for fd in (self._down_fd, self._up_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._down_fd = self._up_fd = -1
        _remove_conf(self.conf_path)
        shutil.rmtree(self._dir, ignore_errors=True)
        log.debug("emulated sound card %s closed", self.name)

    def write_downlink(self, pcm: bytes) -> None:
        """Queue modem-to-host audio (S16LE 8 kHz mono); the card's clock sends one 20 ms frame per
        tick, silence when nothing is queued. Audio beyond BUFFER_SECONDS drops the oldest."""
        with self._lock:
            self._downlink += pcm
            excess = len(self._downlink) - self._limit
            if excess > 0:
                excess += excess % 2
                del self._downlink[:excess]
                self.downlink_dropped += excess

    def read_uplink(self) -> bytes:
        """Host-to-modem audio (S16LE 8 kHz mono) the host played since the last call."""
        with self._lock:
            data = bytes(self._uplink)
            self._uplink.clear()
            return data

    def describe(self) -> dict[str, object]:
        """What the gateway's line configuration needs to reach this card."""
        return {"audio_device": self.name, "audio_rate": self.rate, "alsa_config_path": _env_value()}

    # -- test controls -------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop the card's clock without unplugging it: the host's capture stalls."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def __enter__(self) -> EmulatedSoundCard:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the card's clock ----------------------------------------------------------------------

    def _clock(self) -> None:
        period = FRAME_MS / 1000
        due = time.monotonic()
        while self._running.is_set():
            if not self._paused.is_set():
                self._tick()
            due += period
            delay = due - time.monotonic()
            if delay < -RESYNC_SECONDS:
                due = time.monotonic()
            elif delay > 0:
                time.sleep(delay)

    def _tick(self) -> None:
        with self._lock:
            frame = bytes(self._downlink[:MODEM_FRAME_BYTES])
            del self._downlink[:MODEM_FRAME_BYTES]
        if len(frame) < MODEM_FRAME_BYTES:
            frame += bytes(MODEM_FRAME_BYTES - len(frame))
        card_frame = self._upsample(frame)
        if _unread(self._down_fd) < CAPTURE_AHEAD_FRAMES * self._card_frame_bytes:
            try:
                os.write(self._down_fd, card_frame)
                self.frames_delivered += 1
            except (BlockingIOError, InterruptedError):
                self.frames_discarded += 1
        else:
            self.frames_discarded += 1
        chunks = []
        while True:
            try:
                chunk = os.read(self._up_fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        if chunks:
            pcm = self._downsample(b"".join(chunks))
            with self._lock:
                self._uplink += pcm
                self.uplink_bytes += len(pcm)
                excess = len(self._uplink) - self._limit
                if excess > 0:
                    del self._uplink[:excess + excess % 2]

    # Deliberately simpler than the gateway's resampler (linear up, block mean down), so a test
    # through a 16 or 48 kHz card checks the gateway's conversion against an independent one.
    def _upsample(self, frame: bytes) -> bytes:
        if self._ratio == 1:
            return frame
        x = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        prev = np.concatenate(([self._last_sample], x[:-1]))
        self._last_sample = x[-1]
        steps = np.arange(1, self._ratio + 1) / self._ratio
        y = prev[:, None] + (x - prev)[:, None] * steps[None, :]
        return np.rint(y.reshape(-1)).astype("<i2").tobytes()

    def _downsample(self, data: bytes) -> bytes:
        data = self._uplink_rest + data
        if self._ratio == 1:
            keep = len(data) - len(data) % 2
        else:
            keep = len(data) - len(data) % (2 * self._ratio)
        self._uplink_rest = data[keep:]
        x = np.frombuffer(data[:keep], dtype="<i2")
        if self._ratio == 1:
            return x.tobytes()
        y = x.astype(np.float64).reshape(-1, self._ratio).mean(axis=1)
        return np.rint(y).astype("<i2").tobytes()


def _pcm_config(name: str, uplink_fifo: str, downlink_fifo: str) -> str:
    # Two one-way `file` plugins under `asym`: a single duplex `file` PCM would also copy the
    # captured audio into the playback FIFO.
    return (
        f"pcm.{name} {{\n"
        "    type asym\n"
        "    playback.pcm {\n"
        "        type file\n"
        '        slave.pcm "null"\n'
        f'        file "{uplink_fifo}"\n'
        '        format "raw"\n'
        "    }\n"
        "    capture.pcm {\n"
        "        type file\n"
        '        slave.pcm "null"\n'
        '        file "/dev/null"\n'
        f'        infile "{downlink_fifo}"\n'
        '        format "raw"\n'
        "    }\n"
        '    hint.description "callgate emulated sound card"\n'
        "}\n"
    )


def _unread(fd: int) -> int:
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError as exc:
        if exc.errno == errno.EBADF:
            return 0
        raise


def _env_value() -> str:
    return os.environ.get("ALSA_CONFIG_PATH", "")


def _add_conf(path: str) -> None:
    global _original_env
    with _env_lock:
        if not _active_confs:
            _original_env = os.environ.get("ALSA_CONFIG_PATH")
        _active_confs.append(path)
        _set_env()


def _remove_conf(path: str) -> None:
    with _env_lock:
        if path in _active_confs:
            _active_confs.remove(path)
        _set_env()


def _set_env() -> None:
    # alsa-lib re-reads its configuration when this list or a listed file changes; the gateway
    # re-initialises PortAudio when a device it wants is missing, and then sees the card.
    if not _active_confs:
        if _original_env is None:
            os.environ.pop("ALSA_CONFIG_PATH", None)
        else:
            os.environ["ALSA_CONFIG_PATH"] = _original_env
        return
    base = _original_env or ALSA_CONF
    os.environ["ALSA_CONFIG_PATH"] = ":".join([base, *_active_confs])
