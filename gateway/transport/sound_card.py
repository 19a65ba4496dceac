"""A sound card as an asyncio audio link: 20 ms frames of S16LE 8 kHz mono in and out, via PortAudio.

For modems whose call audio is not a byte stream on a tty: a SIM800 whose analog MIC/SPK pins are
wired to a USB sound card, or a Quectel EC25 in USB Audio Class mode (`AT+QPCMV=1,2`, ALSA card
"Android"). The card is chosen by (part of) its PortAudio name. A duplex PortAudio stream runs the
card at its own clock; its callback thread hands each captured frame to the event loop with
call_soon_threadsafe and plays whatever write() queued, or silence when the queue runs dry. A card
that runs at 16 or 48 kHz is resampled at this edge, so callers only ever see 8 kHz frames.

A card that goes away (USB unplugged, stream error, clock stalled) never raises into the caller:
read() returns b"" once the frames already captured are consumed, write() drops.
sounddevice (and with it libportaudio) is imported only when a card is opened.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import deque
from typing import Any

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.transport.link_support import Waiters, open_in_thread

log = logging.getLogger(__name__)

# Opening an ALSA device normally takes milliseconds; a USB card in a bad state can hang in the
# driver, so the open runs in a thread and is abandoned after this.
OPEN_TIMEOUT = 5.0
# A running card calls back every frame; this long without one means its clock stopped.
STALL_TIMEOUT = 2.0
# Captured frames nobody has read yet; beyond this the oldest are dropped (capture overrun).
READ_QUEUE_FRAMES = 50
# Frames queued for playback; beyond this the oldest are dropped (playback overrun).
WRITE_QUEUE_FRAMES = 50
# drain() waits while more than this many frames are queued, until WRITE_LOW_WATER.
WRITE_HIGH_WATER = 25
WRITE_LOW_WATER = 10
# Rates tried in this order when the card does not take the line's own rate.
FALLBACK_RATES = (16000, 48000, 44100, 32000)
CLOSE_TIMEOUT = 5.0

_PA_LOCK = threading.Lock()  # PortAudio's device list, open and close are not thread-safe
_open_streams = 0  # streams this process holds open; a device rescan would close them all

ACCESS_HINT = ("is the card plugged in (`arecord -l` lists the cards ALSA sees) and may this user "
               "open /dev/snd/* (group 'audio')?")


class SoundCardOpenError(OSError):
    """The sound card could not be opened; the message names the device asked for and why."""

    def __init__(self, device: str, reason: str, devices: list[str] | None = None) -> None:
        super().__init__(f"cannot open sound card {device!r}: {reason}")
        self.device = device
        self.reason = reason
        self.devices = devices or []

    def __str__(self) -> str:
        return str(self.args[0])


class FrameResampler:
    """Converts one frame at a time between two rates with a windowed-sinc filter that keeps its
    history across frames (no clicks at frame edges). Both rates must give whole frames."""

    def __init__(self, in_rate: int, out_rate: int, frame_ms: int = 20) -> None:
        import numpy as np  # only cards that need resampling pay for numpy

        self._np = np
        self.in_n = _samples_per_frame(in_rate, frame_ms)
        self.out_n = _samples_per_frame(out_rate, frame_ms)
        ratio = in_rate / out_rate  # input samples per output sample
        cutoff = min(1.0, out_rate / in_rate) * 0.95  # of the input's Nyquist; margin for the band edge
        half = math.ceil(8 / cutoff)  # taps either side: eight zero crossings of the sinc
        pos = np.arange(self.out_n) * ratio
        base = np.floor(pos).astype(np.int64)
        taps = base[:, None] + np.arange(-half + 1, half + 1)[None, :]
        dist = pos[:, None] - taps
        window = np.i0(8.0 * np.sqrt(np.clip(1.0 - (dist / half) ** 2, 0.0, 1.0))) / np.i0(8.0)
        weights = np.sinc(cutoff * dist) * window
        self._weights = weights / weights.sum(axis=1, keepdims=True)
        # The filter needs `half` samples after each output position: outputs lag by that many
        # input samples, taken from a history of 2*half samples kept from earlier frames.
        self._index = taps - half + 2 * half
        self._history = np.zeros(2 * half, dtype=np.float64)

    def process(self, frame: bytes) -> bytes:
        np = self._np
        x = np.frombuffer(frame, dtype="<i2")
        if x.size != self.in_n:
            raise ValueError(f"resampler expects {self.in_n} samples, got {x.size}")
        buf = np.concatenate((self._history, x))
        self._history = buf[-self._history.size:]
        y = np.einsum("ij,ij->i", buf[self._index], self._weights)
        return np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()


class SoundCardLink:
    """An open duplex sound card stream driven from PortAudio's thread. Made by open_sound_card()."""

    def __init__(self, device: str, loop: asyncio.AbstractEventLoop, *, sample_rate: int,
                 frame_ms: int, clock: Clock, stall_timeout: float) -> None:
        self.device = device  # what the caller asked for
        self.device_name = ""  # the PortAudio device it resolved to
        self.device_rate = sample_rate
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_bytes = _samples_per_frame(sample_rate, frame_ms) * 2
        self.close_reason = ""
        self._loop = loop
        self._clock = clock
        self._stall_timeout = stall_timeout
        self._stream: Any = None
        self._abort: type[BaseException] = Exception
        self._to_host: FrameResampler | None = None
        self._to_card: FrameResampler | None = None
        self._card_silence = b""
        self._rq: deque[bytes] = deque()
        self._wq: deque[bytes] = deque()
        self._partial = bytearray()
        self._reader = Waiters(loop)
        self._drainers = Waiters(loop)
        self._stream_closed = threading.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False
        self._feeding = False
        # Counters; the *_cb ones are written only by PortAudio's callback thread.
        self._callbacks_cb = 0
        self._played_cb = 0
        self._underruns_cb = 0
        self._xruns_cb = 0
        self._captured = 0
        self._capture_overruns = 0
        self._playback_overruns = 0

    @property
    def closed(self) -> bool:
        """True once close() was called or the card went away."""
        return self._closed

    async def read(self) -> bytes:
        """Wait for captured audio: every whole frame captured since the last call, joined; b"" once
        the card is gone and everything was read."""
        if self._reader:
            raise RuntimeError(f"read() on sound card {self.device!r} is already waiting in another task")
        while not self._rq:
            if self._closed:
                return b""
            await self._reader.wait()
        data = b"".join(self._rq)
        self._rq.clear()
        return data

    def write(self, data: bytes) -> None:
        """Queue audio for playback, cut into frames; a trailing part frame waits for the next write.
        Dropped when the card is gone; the oldest frames are dropped when the queue is full."""
        if self._closed:
            log.debug("write of %d bytes to closed sound card %s dropped", len(data), self.device)
            return
        self._partial += data
        n = len(self._partial) - len(self._partial) % self.frame_bytes
        for i in range(0, n, self.frame_bytes):
            self._wq.append(bytes(self._partial[i:i + self.frame_bytes]))
        del self._partial[:n]
        while len(self._wq) > WRITE_QUEUE_FRAMES:
            try:
                self._wq.popleft()
            except IndexError:  # the callback thread took it meanwhile
                break
            self._playback_overruns += 1

    async def drain(self) -> None:
        """Wait until the playback queue is short again (or the card is gone)."""
        if self._closed or len(self._wq) <= WRITE_HIGH_WATER:
            return
        await self._drainers.wait()

    def close(self) -> None:
        """Stop and release the card (in a background thread); a pending read() returns b""."""
        if self._closed:
            return
        log.debug("closing sound card %s", self.device)
        self._shutdown("closed")

    async def wait_closed(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """After close(): wait until PortAudio has released the device; False if it did not in time."""
        if self._stream is None:
            return True
        deadline = self._clock.monotonic() + timeout
        while not self._stream_closed.is_set():
            if self._clock.monotonic() >= deadline:
                return False
            await self._clock.sleep(0.01)
        return True

    def counters(self) -> dict[str, int]:
        """Frames captured and played, and every way audio was lost, since the card was opened."""
        return {
            "frames_captured": self._captured,
            "frames_played": self._played_cb,
            "playback_underruns": self._underruns_cb,
            "playback_overruns": self._playback_overruns,
            "capture_overruns": self._capture_overruns,
            "xruns": self._xruns_cb,
            "queued_playback_frames": len(self._wq),
        }

    # -- PortAudio thread ----------------------------------------------------------------------

    def _callback(self, indata: Any, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        self._callbacks_cb += 1
        if status:
            self._xruns_cb += 1
        captured = bytes(indata)
        if self._to_host is not None:
            captured = self._to_host.process(captured)
        try:
            self._loop.call_soon_threadsafe(self._on_captured, captured)
        except RuntimeError:  # the event loop is closed: nobody will ever read this card
            raise self._abort from None
        try:
            frame = self._wq.popleft()
        except IndexError:
            frame = None
        if frame is None:
            if self._feeding:
                self._underruns_cb += 1
                self._feeding = False
            out = None
        else:
            self._feeding = True
            self._played_cb += 1
            out = frame
        if self._to_card is not None:
            out = self._to_card.process(out if out is not None else bytes(self.frame_bytes))
        outdata[:] = out if out is not None else self._card_silence

    def _finished(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._lost, "the stream stopped (card unplugged or stream error)")
        except RuntimeError:
            pass

    # -- event loop ----------------------------------------------------------------------------

    def _on_captured(self, frame: bytes) -> None:
        if self._closed:
            return
        self._captured += 1
        self._rq.append(frame)
        if len(self._rq) > READ_QUEUE_FRAMES:
            self._rq.popleft()
            self._capture_overruns += 1
        self._reader.wake_all()
        if self._drainers and len(self._wq) <= WRITE_LOW_WATER:
            self._drainers.wake_all()

    async def _watch(self) -> None:
        seen = self._callbacks_cb
        while not self._closed:
            await self._clock.sleep(self._stall_timeout)
            if self._closed:
                return
            if self._callbacks_cb == seen:
                self._lost(f"no audio from the card for {self._stall_timeout:g} s (clock stalled)")
                return
            seen = self._callbacks_cb

    def _lost(self, reason: str) -> None:
        if self._closed:
            return
        log.warning("sound card %s (%s) lost: %s", self.device, self.device_name, reason)
        self._shutdown(reason)

    def _shutdown(self, reason: str) -> None:
        self._closed = True
        self.close_reason = reason
        self._wq.clear()
        if self._watchdog is not None and self._watchdog is not asyncio.current_task(self._loop):
            self._watchdog.cancel()
        self._reader.wake_all()
        self._drainers.wake_all()
        if self._stream is not None:
            self._release_in_thread(self._stream)

    def _release_in_thread(self, stream: Any) -> None:
        # Stopping waits for the callback thread, which may sit in a driver call: not on the loop.
        threading.Thread(target=self._release, args=(stream,), name=f"close {self.device}",
                         daemon=True).start()

    def _release(self, stream: Any) -> None:
        global _open_streams
        try:
            # Aborting returns only once the callback thread leaves the driver, which a stalled
            # card may delay: outside the lock, so other cards can still open meanwhile.
            stream.abort(ignore_errors=True)
            with _PA_LOCK:
                try:
                    stream.close(ignore_errors=True)
                finally:
                    _open_streams -= 1
        except Exception as exc:  # noqa: BLE001 - a dying device may fail in any way; it is gone anyway
            log.debug("closing sound card %s: %s", self.device, exc)
        finally:
            self._stream_closed.set()


async def open_sound_card(device: str, *, sample_rate: int = 8000, frame_ms: int = 20,
                          device_rate: int | None = None, clock: Clock = SYSTEM_CLOCK,
                          stall_timeout: float = STALL_TIMEOUT, open_timeout: float = OPEN_TIMEOUT,
                          latency: float | str = "high") -> SoundCardLink:
    """Open the duplex sound card whose PortAudio name contains `device` (case-insensitive; an exact
    name wins). The card runs at `device_rate`, or when None at `sample_rate` if it takes it, else at
    the first of FALLBACK_RATES it takes; frames are resampled to `sample_rate` either way.
    SoundCardOpenError names the device asked for, why it failed and the devices PortAudio sees."""
    if not device:
        raise SoundCardOpenError(device, "no device name given")
    loop = asyncio.get_running_loop()
    link = SoundCardLink(device, loop, sample_rate=sample_rate, frame_ms=frame_ms, clock=clock,
                         stall_timeout=stall_timeout)

    def open_stream() -> Any:
        return _open_stream(link, device, sample_rate, frame_ms, device_rate, latency, open_timeout)

    try:
        link._stream = await open_in_thread(open_stream, link._release_in_thread, f"open {device}", open_timeout)
    except TimeoutError:
        raise SoundCardOpenError(device, f"open did not finish within {open_timeout} s") from None
    except SoundCardOpenError:
        raise
    except Exception as exc:
        raise SoundCardOpenError(device, str(exc) or type(exc).__name__) from exc
    if link.closed:  # the card went away between starting and now: nothing else will release it
        link._release_in_thread(link._stream)
        return link
    link._watchdog = loop.create_task(link._watch(), name=f"sound card watchdog {device}")
    log.info("opened sound card %s as %r at %d Hz", device, link.device_name, link.device_rate)
    return link


def list_sound_devices(rescan: bool = True) -> list[dict[str, Any]]:
    """The devices PortAudio sees: name, input and output channels, default rate. With `rescan`
    the list is read afresh when no sound card stream is open (a rescan would close them)."""
    sd = _import_sounddevice("(device list)")
    with _PA_LOCK:
        if rescan and _open_streams == 0:
            _rescan(sd)
        return [_device_summary(d) for d in sd.query_devices()]


# -- internals (run in the open thread) ----------------------------------------------------------

def _open_stream(link: SoundCardLink, device: str, sample_rate: int, frame_ms: int,
                 device_rate: int | None, latency: float | str, lock_timeout: float) -> Any:
    global _open_streams
    sd = _import_sounddevice(device)
    if not _PA_LOCK.acquire(timeout=lock_timeout):
        raise SoundCardOpenError(device, "PortAudio is busy (another open or close is stuck)")
    try:
        info = _find_device(sd, device)
        rate = _pick_rate(sd, device, info, sample_rate, frame_ms, device_rate)
        link.device_name = info["name"]
        link.device_rate = rate
        link._abort = sd.CallbackAbort
        if rate != sample_rate:
            link._to_host = FrameResampler(rate, sample_rate, frame_ms)
            link._to_card = FrameResampler(sample_rate, rate, frame_ms)
        link._card_silence = bytes(_samples_per_frame(rate, frame_ms) * 2)
        try:
            stream = sd.RawStream(device=info["index"], samplerate=rate,
                                  blocksize=_samples_per_frame(rate, frame_ms),
                                  channels=1, dtype="int16", latency=latency,
                                  callback=link._callback, finished_callback=link._finished)
        except sd.PortAudioError as exc:
            raise SoundCardOpenError(device, f"PortAudio cannot open {info['name']!r} at {rate} Hz: "
                                     f"{_pa_text(exc)}; {ACCESS_HINT}") from exc
        try:
            stream.start()
        except sd.PortAudioError as exc:
            stream.close(ignore_errors=True)
            raise SoundCardOpenError(device, f"PortAudio cannot start {info['name']!r}: "
                                     f"{_pa_text(exc)}") from exc
        _open_streams += 1
        return stream
    finally:
        _PA_LOCK.release()


def _import_sounddevice(device: str) -> Any:
    try:
        import sounddevice
    except OSError as exc:  # raised when libportaudio itself is missing
        raise SoundCardOpenError(device, f"{exc} (install the libportaudio2 package)") from exc
    except ImportError as exc:
        raise SoundCardOpenError(device, f"the sounddevice module is missing: {exc}") from exc
    return sounddevice


def _rescan(sd: Any) -> None:
    # PortAudio reads the device list once at initialisation; re-initialising it is the only way
    # to see a card plugged in later. It would also close every open stream, hence the guard.
    sd._terminate()
    sd._initialize()


def _find_device(sd: Any, wanted: str) -> dict[str, Any]:
    devices = list(sd.query_devices())
    found = _match(devices, wanted)
    if found is None and _open_streams == 0:
        _rescan(sd)
        devices = list(sd.query_devices())
        found = _match(devices, wanted)
    names = [d["name"] for d in devices]
    if found is None:
        seen = ", ".join(f"{_device_summary(d)['label']}" for d in devices) or "no devices at all"
        stale = " (the list is not refreshed while another sound card is open)" if _open_streams else ""
        raise SoundCardOpenError(wanted, f"no such device; PortAudio sees {seen}{stale}; {ACCESS_HINT}",
                                 names)
    if isinstance(found, list):
        raise SoundCardOpenError(wanted, "the name matches several devices: "
                                 + ", ".join(repr(d["name"]) for d in found) + "; use a longer part of it",
                                 names)
    missing = [what for what, key in (("capture", "max_input_channels"), ("playback", "max_output_channels"))
               if found[key] < 1]
    if missing:
        raise SoundCardOpenError(wanted, f"device {found['name']!r} has no {' or '.join(missing)} channels",
                                 names)
    return found


def _match(devices: list[dict[str, Any]], wanted: str) -> dict[str, Any] | list[dict[str, Any]] | None:
    exact = [d for d in devices if d["name"] == wanted]
    if exact:
        return exact[0]
    partial = [d for d in devices if wanted.lower() in d["name"].lower()]
    if len(partial) == 1:
        return partial[0]
    return partial or None


def _pick_rate(sd: Any, device: str, info: dict[str, Any], sample_rate: int, frame_ms: int,
               device_rate: int | None) -> int:
    if device_rate is not None:
        candidates = [device_rate]
    else:
        default = int(info.get("default_samplerate") or 0)
        candidates = [sample_rate, *FALLBACK_RATES, default]
    tried = []
    for rate in dict.fromkeys(candidates):
        if rate <= 0 or (rate * frame_ms) % 1000:
            continue
        tried.append(str(rate))
        try:
            sd.check_input_settings(device=info["index"], channels=1, dtype="int16", samplerate=rate)
            sd.check_output_settings(device=info["index"], channels=1, dtype="int16", samplerate=rate)
        except sd.PortAudioError:
            continue
        return rate
    raise SoundCardOpenError(device, f"device {info['name']!r} takes none of the rates "
                             f"{', '.join(tried) or '(none usable)'} Hz for 16-bit mono")


def _device_summary(d: dict[str, Any]) -> dict[str, Any]:
    return {"name": d["name"], "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
            "default_rate": d["default_samplerate"],
            "label": f"{d['name']!r} ({d['max_input_channels']} in, {d['max_output_channels']} out)"}


def _pa_text(exc: BaseException) -> str:
    return " ".join(str(a) for a in exc.args if not isinstance(a, int)) or str(exc)


def _samples_per_frame(rate: int, frame_ms: int) -> int:
    if rate <= 0 or (rate * frame_ms) % 1000:
        raise ValueError(f"{rate} Hz does not give whole {frame_ms} ms frames")
    return rate * frame_ms // 1000
