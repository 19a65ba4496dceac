"""A Line is one modem seen as a phone line: it opens the AT and audio ports, runs the profile's init
sequence, turns URCs into call events, answers and hangs up, and pumps 20 ms audio frames while a call
has audio. It reopens the modem with back-off when the port goes away; a call in progress then ends
with the reason "modem_lost".
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.at.errors import AtError
from gateway.at.session import AtSession
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.modem.profile import Profile
from gateway.supervisor import Supervisor
from gateway.transport.serial_port import SerialLink, open_serial

log = logging.getLogger(__name__)

CALLER_ID_WAIT = 1.5        # after a bare RING, wait this long for +CLIP/+CLCC before announcing the call
REOPEN_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)   # seconds between attempts to reopen a vanished modem
AUDIO_LATE_RESYNC = 0.2     # if the pump falls this far behind its schedule, restart the schedule

_CLCC = re.compile(r'^\s*(\d+),(\d),(\d),(\d),(\d)(?:,"([^"]*)")?')
_QUOTED = re.compile(r'"([^"]*)"')


class LineState(str, enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    RINGING = "ringing"
    IN_CALL = "in_call"
    FAILED = "failed"


@dataclass
class Call:
    call_id: str
    line_id: str
    direction: str
    caller: str
    ringing_at: float
    answered_at: float | None = None
    audio_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    announced: bool = False

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


class LineListener(Protocol):
    def line_changed(self, line: "Line") -> None: ...
    def incoming_call(self, line: "Line", call: Call) -> None: ...
    def call_ended(self, line: "Line", call: Call) -> None: ...
    def dtmf(self, line: "Line", call: Call, digit: str) -> None: ...
    def audio_in(self, line: "Line", call: Call, frame: bytes) -> None: ...


Opener = Callable[[str], Awaitable[SerialLink]]


class Line:
    def __init__(self, line_id: str, profile: Profile, at_port: str, audio_port: str | None,
                 listener: LineListener, *, clock: Clock = SYSTEM_CLOCK, opener: Opener = open_serial) -> None:
        self.id = line_id
        self.profile = profile
        self.at_port, self.audio_port = at_port, audio_port
        self._listener = listener
        self._clock = clock
        self._open = opener
        self.state = LineState.STARTING
        self.error: str | None = None
        self.since = clock.time()
        self.call: Call | None = None
        self.identity: dict[str, str] = {}
        self._session: AtSession | None = None
        self._audio_link: SerialLink | None = None
        self._lost = asyncio.Event()
        self._pcm_on = False
        self._source: Callable[[], bytes] | None = None
        self._tasks = Supervisor()
        self._caller_wait: asyncio.Task | None = None
        self.counters = {"frames_in": 0, "frames_out": 0, "late_ticks": 0}

    # --- public -------------------------------------------------------------------------------
    def set_audio_source(self, source: Callable[[], bytes] | None) -> None:
        """source() is asked for one outbound frame (frame_bytes) every frame_ms while audio runs."""
        self._source = source

    async def run(self) -> None:
        """Open, initialise and serve the modem; reopen with back-off whenever it goes away."""
        try:
            await self._serve()
        except asyncio.CancelledError:
            await self._teardown()
            raise

    async def _serve(self) -> None:
        failures = 0
        while True:
            try:
                await self._open_and_init()
            except (AtError, OSError) as exc:
                self._set_state(LineState.FAILED, f"{type(exc).__name__}: {exc}")
                await self._teardown()
                await self._clock.sleep(REOPEN_BACKOFF[min(failures, len(REOPEN_BACKOFF) - 1)])
                failures += 1
                continue
            failures = 0
            self._set_state(LineState.IDLE)
            await self._lost.wait()
            if self.call and not self.call.ended:
                self._end_call("modem_lost")
            self._set_state(LineState.FAILED, f"modem on {self.at_port} stopped answering or vanished")
            await self._teardown()
            await self._clock.sleep(REOPEN_BACKOFF[0])

    async def answer(self) -> None:
        """Answer the ringing call and switch audio on at the moment the profile says."""
        call = self.call
        if call is None or call.ended or self._session is None:
            raise RuntimeError(f"line {self.id}: no ringing call to answer")
        audio = self.profile.audio
        if audio.enable_when == "pre_answer":
            await self._enable_audio(call)
        await self._session.command(self.profile.calls.answer, self.profile.timeouts.answer, call_control=True)
        if call.ended:
            return
        call.answered_at = call.answered_at or self._clock.time()
        self._set_state(LineState.IN_CALL)
        if audio.enable_when == "post_answer":
            await self._enable_audio(call)
        elif audio.enable_when == "on_active":
            await self._clock.sleep(audio.enable_delay_ms / 1000)
            await self._enable_audio(call)

    async def hangup(self, reason: str = "hung_up") -> None:
        call = self.call
        if call is None or call.ended:
            return
        try:
            if self._session is not None:
                await self._session.command(self.profile.calls.hangup, self.profile.timeouts.hangup)
        except AtError as exc:
            log.warning("line %s: hang-up command failed: %s", self.id, exc)
        self._end_call(reason)

    # --- lifecycle ------------------------------------------------------------------------------
    async def _open_and_init(self) -> None:
        self._lost = asyncio.Event()
        link = await self._open(self.at_port)
        session = AtSession(link, self.profile.urc_prefixes, clock=self._clock)
        self._session = session
        session.add_urc_listener(self._on_urc)
        session.add_close_listener(self._lost.set)
        await session.start()
        t = self.profile.timeouts.default
        for cmd in self.profile.init_required:
            await session.command(cmd, t)
        for cmd in self.profile.init_optional:
            try:
                await session.command(cmd, t)
            except AtError as exc:
                log.info("line %s: optional init %s refused: %s", self.id, cmd, exc)
        for key, cmd in (("manufacturer", "AT+CGMI"), ("model", "AT+CGMM"), ("imei", "AT+CGSN")):
            try:
                resp = await session.command(cmd, t)
                self.identity[key] = next((ln.split(":", 1)[-1].strip() for ln in resp.lines if ln.strip()), "")
            except AtError:
                self.identity[key] = ""
        await self._drop_stale_calls(session)
        if self.audio_port and self.profile.audio.transport == "serial":
            self._audio_link = await self._open(self.audio_port)
            self._spawn(self._audio_reader(self._audio_link), f"{self.id}-audio-in")

    async def _drop_stale_calls(self, session: AtSession) -> None:
        """A call left up by a previous run (daemon killed mid-call) cannot be resumed: hang it up."""
        try:
            resp = await session.command(self.profile.calls.list_calls, self.profile.timeouts.default)
        except AtError:
            return
        if any((m := _CLCC.match(ln.split(":", 1)[-1])) and m.group(4) == "0" for ln in resp.lines):
            log.warning("line %s: a call from before the restart is still up; hanging it up", self.id)
            try:
                await session.command(self.profile.calls.hangup, self.profile.timeouts.hangup)
            except AtError as exc:
                log.warning("line %s: could not hang up the stale call: %s", self.id, exc)

    async def _teardown(self) -> None:
        self._pcm_on = False
        await self._tasks.shutdown()
        if self._session is not None:
            try:
                await self._session.close()
            except Exception:
                log.debug("closing AT session", exc_info=True)
            self._session = None
        if self._audio_link is not None:
            self._audio_link.close()
            self._audio_link = None

    def _spawn(self, coro, name: str) -> asyncio.Task:
        return self._tasks.spawn(coro, name)

    def _set_state(self, state: LineState, error: str | None = None) -> None:
        if state == self.state and error == self.error:
            return
        self.state, self.error, self.since = state, error, self._clock.time()
        if error:
            log.warning("line %s: %s", self.id, error)
        self._notify(self._listener.line_changed, self)

    def _notify(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("line %s: listener %s failed", self.id, getattr(fn, "__name__", fn))

    # --- URCs -------------------------------------------------------------------------------------
    def _on_urc(self, line: str) -> None:
        calls = self.profile.calls
        if any(line.startswith(p) for p in calls.ring):
            self._ringing(None)
        elif line.startswith(calls.caller_id):
            m = _QUOTED.search(line)
            self._ringing(m.group(1) if m else "")
        elif line.startswith(calls.call_list):
            self._on_call_list(line[len(calls.call_list):])
        elif any(line.startswith(p) for p in calls.connected):
            if self.call and not self.call.ended and self.call.answered_at is None:
                self.call.answered_at = self._clock.time()
        elif any(line.startswith(p) for p in calls.ended):
            if self.call and not self.call.ended:
                self._end_call("customer_hung_up" if self.call.answered_at else "missed")
        else:
            digit = self.profile.dtmf.decode(line)
            if digit is not None and self.call and not self.call.ended:
                self._notify(self._listener.dtmf, self, self.call, digit)

    def _on_call_list(self, rest: str) -> None:
        m = _CLCC.match(rest)
        if not m or m.group(4) != "0":     # mode 0 = voice; LTE lists a data pseudo-call too
            return
        stat, number = int(m.group(3)), m.group(6) or ""
        if stat in (4, 5):
            self._ringing(number)
        elif stat == self.profile.calls.call_list_released_state and self.call and not self.call.ended:
            self._end_call("customer_hung_up" if self.call.answered_at else "missed")
        elif stat == 0 and self.call and not self.call.ended and self.call.answered_at is None:
            self.call.answered_at = self._clock.time()

    def _ringing(self, number: str | None) -> None:
        if self.call is not None and not self.call.ended:
            if number and not self.call.caller:
                self.call.caller = number
            if number is not None and not self.call.announced:
                self._announce()
            return
        if self.state not in (LineState.IDLE,):
            return
        self.counters = dict.fromkeys(self.counters, 0)
        self.call = Call(call_id=f"c-{uuid.uuid4().hex[:12]}", line_id=self.id, direction="inbound",
                         caller=number or "", ringing_at=self._clock.time())
        self._set_state(LineState.RINGING)
        if number is not None:
            self._announce()
        else:
            self._caller_wait = self._spawn(self._announce_later(self.call), f"{self.id}-clip-wait")

    async def _announce_later(self, call: Call) -> None:
        await self._clock.sleep(CALLER_ID_WAIT)
        if self.call is call and not call.ended and not call.announced:
            self._announce()

    def _announce(self) -> None:
        assert self.call is not None
        self.call.announced = True
        self._notify(self._listener.incoming_call, self, self.call)

    def _end_call(self, reason: str) -> None:
        call = self.call
        if call is None or call.ended:
            return
        call.ended_at, call.end_reason = self._clock.time(), reason
        was_pcm, self._pcm_on = self._pcm_on, False
        if was_pcm and self._session is not None and not self._session.closed and self.profile.audio.disable:
            self._spawn(self._disable_audio(), f"{self.id}-audio-off")
        if self.state in (LineState.RINGING, LineState.IN_CALL):
            self._set_state(LineState.IDLE)
        if call.announced:
            self._notify(self._listener.call_ended, self, call)

    # --- audio ------------------------------------------------------------------------------------
    async def _enable_audio(self, call: Call) -> None:
        audio = self.profile.audio
        if audio.enable and self._session is not None:
            for attempt in range(audio.enable_retries + 1):
                if call.ended:
                    return
                try:
                    await self._session.command(audio.enable, self.profile.timeouts.default)
                    break
                except AtError as exc:
                    if attempt == audio.enable_retries:
                        raise
                    log.info("line %s: %s refused (%s), retrying", self.id, audio.enable, exc)
                    await self._clock.sleep(audio.enable_retry_interval_ms / 1000)
        if call.ended:
            return
        call.audio_at = self._clock.time()
        self._pcm_on = True
        if self._audio_link is not None:
            self._spawn(self._audio_writer(self._audio_link, call), f"{self.id}-audio-out")

    async def _disable_audio(self) -> None:
        try:
            await self._session.command(self.profile.audio.disable, self.profile.timeouts.default)
        except (AtError, AttributeError) as exc:
            log.info("line %s: audio disable failed: %s", self.id, exc)

    async def _audio_reader(self, link: SerialLink) -> None:
        size = self.profile.audio.frame_bytes
        buf = bytearray()
        while True:
            data = await link.read()
            if not data:
                self._lost.set()
                return
            buf += data
            while len(buf) >= size:
                frame = bytes(buf[:size])
                del buf[:size]
                call = self.call
                if self._pcm_on and call is not None and not call.ended:
                    self.counters["frames_in"] += 1
                    self._notify(self._listener.audio_in, self, call, frame)

    async def _audio_writer(self, link: SerialLink, call: Call) -> None:
        period = self.profile.audio.frame_ms / 1000
        silence = bytes(self.profile.audio.frame_bytes)
        next_at = self._clock.monotonic()
        while self._pcm_on and self.call is call and not call.ended:
            frame = silence
            if self._source is not None:
                try:
                    frame = self._source() or silence
                except Exception:
                    log.exception("line %s: audio source failed", self.id)
            link.write(frame)
            self.counters["frames_out"] += 1
            next_at += period
            delay = next_at - self._clock.monotonic()
            if delay < -AUDIO_LATE_RESYNC:
                self.counters["late_ticks"] += 1
                next_at = self._clock.monotonic()
                delay = 0
            await self._clock.sleep(max(delay, 0))
