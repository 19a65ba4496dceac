"""A Line is one modem seen as a phone line: it opens the AT and audio ports, runs the profile's init
sequence, turns unsolicited lines into call events through the profile's rules, answers, dials and hangs
up, and pumps 20 ms audio frames while a call has audio.

It is supervised: a periodic health check (registration, signal, IMS) and, when the modem stops
answering or vanishes, a recovery ladder with back-off between attempts: resync the AT channel, reopen
the port, send the profile's reset and wait for USB re-enumeration, then find the same modem again by
IMEI or USB serial even under a new /dev name (through the `locate` callable the daemon hands in). A call
in progress on a modem that is lost ends with the reason "modem_lost".
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import re
import uuid

import numpy as np
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.at.errors import AtCommandError, AtError, AtTimeout
from gateway.at.session import AtSession
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.media.pacer import FramePacer
from gateway.modem.call_events import Event
from gateway.modem.profile import Profile
from gateway.supervisor import Supervisor
from gateway.transport.serial_port import SerialLink, open_serial

log = logging.getLogger(__name__)

REOPEN_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)   # seconds between attempts to bring a lost modem back
RESET_AFTER_FAILURES = 2    # the reset is tried after 2 failed reopens of an unanswering modem, then every 3rd
LOCATE_AFTER_FAILURES = 1   # failed reopen attempts before the modem is searched under another name
RESYNC_TIMEOUT = 2.0
DTMF_SAME_PRESS = 0.6      # the modem's report and the in-band detector see one press at most this far apart
END_REASON_WAIT = 1.0       # after an unanswered outbound call is released, wait this long for BUSY / NO ANSWER
_FINAL_OUTCOMES = {"BUSY": "busy", "NO ANSWER": "no_answer", "NO CARRIER": "no_carrier",
                   "NO DIALTONE": "unreachable"}
_RSSI_UNKNOWN = 99
_INBAND_FORMATS = {"u8": 1, "ulaw": 4, "alaw": 5, "s16le": 133}    # V.253 ids with the same decoding


class WrongModem(AtError):
    """The port answered, but as another modem: its name moved to another device."""


class SimProblem(AtError):
    """The SIM is absent, locked or refused: the line cannot work until someone acts."""


class LineState(str, enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    RINGING = "ringing"
    DIALING = "dialing"
    IN_CALL = "in_call"
    RECOVERING = "recovering"
    FAILED = "failed"


@dataclass
class Call:
    call_id: str
    line_id: str
    direction: str          # inbound | outbound
    caller: str             # the far end's number (the caller inbound, the number dialled outbound)
    ringing_at: float
    answered_at: float | None = None
    audio_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    announced: bool = False
    index: str | None = None
    progress: list[tuple[str, float]] = field(default_factory=list)
    released: bool = False      # the modem released it; the reason may still be on its way

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


@dataclass
class Health:
    registration: str = "unknown"      # home | roaming | searching | denied | unregistered | unknown
    rssi: int | None = None
    ims: bool | None = None
    checked_at: float | None = None
    failures: int = 0
    recoveries: int = 0
    last_recovery: str | None = None
    per_query: dict[str, str] = field(default_factory=dict)

    @property
    def dbm(self) -> int | None:
        return None if self.rssi is None or self.rssi == _RSSI_UNKNOWN else -113 + 2 * min(self.rssi, 31)

    @property
    def bars(self) -> int:
        if self.rssi is None or self.rssi == _RSSI_UNKNOWN:
            return 0
        return next(b for limit, b in ((2, 0), (9, 1), (14, 2), (19, 3), (25, 4), (99, 5)) if self.rssi <= limit)

    def as_dict(self) -> dict:
        return {"registration": self.registration, "rssi": self.rssi, "dbm": self.dbm, "bars": self.bars,
                "ims": self.ims, "checked_at": self.checked_at, "failures": self.failures,
                "recoveries": self.recoveries, "last_recovery": self.last_recovery}


class LineListener(Protocol):
    def line_changed(self, line: "Line") -> None: ...
    def incoming_call(self, line: "Line", call: Call) -> None: ...
    def call_ended(self, line: "Line", call: Call) -> None: ...
    def dtmf(self, line: "Line", call: Call, digit: str) -> None: ...
    def audio_in(self, line: "Line", call: Call, frame: bytes) -> None: ...


Opener = Callable[[str], Awaitable[SerialLink]]
Locator = Callable[[dict[str, str]], Awaitable[tuple[str, str | None] | None]]


class Line:
    def __init__(self, line_id: str, profile: Profile, at_port: str, audio_port: str | None,
                 listener: LineListener, *, clock: Clock = SYSTEM_CLOCK, opener: Opener = open_serial,
                 audio_opener: Opener | None = None, locate: Locator | None = None,
                 health_interval: float | None = None, pin: str | None = None) -> None:
        self.id = line_id
        self.profile = profile
        self.at_port, self.audio_port = at_port, audio_port
        self._listener = listener
        self._clock = clock
        self._open = opener
        self._open_audio = audio_opener or opener
        self._locate = locate
        self._health_interval = health_interval or profile.health.interval
        self._pin = pin
        self._pin_tried = False         # a wrong PIN is never retried: three tries lock the SIM (PUK)
        self.state = LineState.STARTING
        self.error: str | None = None
        self.since = clock.time()
        self.call: Call | None = None
        self.identity: dict[str, str] = {}
        self.health = Health()
        self._session: AtSession | None = None
        self.sms = None                 # SmsService while the modem is up, for profiles with SMS
        self._audio_link: SerialLink | None = None
        self._trouble: asyncio.Future[str] | None = None
        self._pcm_on = False
        self._source: Callable[[], bytes] | None = None
        self._tasks = Supervisor()
        self._progress: asyncio.Event = asyncio.Event()
        self._hangup_reason: str | None = None
        self._last_ring = 0.0
        self._detector = None           # in-band DTMF detector while a call has audio, where the profile wants one
        self._recent_digits: list[tuple[str, str, float]] = []
        self.counters = {"frames_in": 0, "frames_out": 0, "late_ticks": 0, "resyncs": 0}

    # --- public -------------------------------------------------------------------------------
    def set_audio_source(self, source: Callable[[], bytes] | None) -> None:
        """source() is asked for one outbound frame (frame_bytes) every frame_ms while audio runs."""
        self._source = source

    async def run(self) -> None:
        """Open, initialise and serve the modem; bring it back whenever it goes away or stops answering."""
        try:
            await self._serve()
        except asyncio.CancelledError:
            await self._teardown()
            raise

    async def answer(self) -> None:
        """Answer the ringing call and switch audio on at the moment the profile says."""
        call = self.call
        if call is None or call.ended or self._session is None or call.direction != "inbound":
            raise RuntimeError(f"line {self.id}: no ringing call to answer")
        audio = self.profile.audio
        if audio.enable_when == "pre_answer":
            await self._enable_audio(call)
        for cmd in self.profile.calls.answer:
            await self._session.command(cmd, self.profile.timeouts.answer, call_control=True)
        if call.ended:
            return
        self._connected(call)
        await self._audio_after_connect(call)

    async def dial(self, number: str, *, timeout: float | None = None) -> Call:
        """Place a call and follow its progress until it is answered or fails.

        Returns the Call: answered (answered_at set, the line IN_CALL with audio running) or ended with
        end_reason busy | no_answer | no_carrier | rejected | unreachable | failed | timeout."""
        if self.state != LineState.IDLE or self._session is None:
            raise RuntimeError(f"line {self.id}: cannot dial while {self.state.value}")
        if not number or any(ch not in "+0123456789*#" for ch in number):
            raise ValueError(f"line {self.id}: {number!r} is not a number to dial")
        self.counters = dict.fromkeys(self.counters, 0)
        call = Call(call_id=f"c-{uuid.uuid4().hex[:12]}", line_id=self.id, direction="outbound",
                    caller=number, ringing_at=self._clock.time(), announced=True)
        self.call = call
        self._stage(call, "dialing")
        self._set_state(LineState.DIALING)
        audio = self.profile.audio
        limit = timeout or self.profile.timeouts.dial
        started = self._clock.monotonic()
        try:
            if audio.enable_when == "pre_answer":
                await self._enable_audio(call)
            for cmd in self.profile.calls.dial_setup:
                await self._session.command(cmd, self.profile.timeouts.default)
            # V.253 voice modems return from ATD only once the callee answered (ringback stopped)
            blocking = self.profile.calls.style == "v253"
            await self._session.command(self.profile.calls.dial.format(number=number),
                                        limit if blocking else self.profile.timeouts.answer, call_control=True)
            if blocking and not call.ended:
                self._connected(call)
        except AtCommandError as exc:
            self._end_call(_FINAL_OUTCOMES.get(exc.final, "failed"))
            if self.profile.calls.style == "v253":
                await self._on_hook()
            return call
        except AtTimeout:
            # a blocking ATD (V.253) that outlived our limit: nobody answered; any byte aborts the dial
            await self.hangup("no_answer")
            return call
        except AtError as exc:
            self._end_call("failed")
            log.warning("line %s: dial %s failed: %s", self.id, number, exc)
            return call
        if audio.enable_when == "post_answer" and not call.ended:
            try:
                await self._enable_audio(call)
            except AtError as exc:
                log.warning("line %s: audio enable after dial failed: %s", self.id, exc)
        while not call.ended and call.answered_at is None:
            left = limit - (self._clock.monotonic() - started)
            if left <= 0:
                await self.hangup("timeout")
                break
            self._progress.clear()
            waiter = asyncio.ensure_future(self._progress.wait())
            sleeper = asyncio.ensure_future(self._clock.sleep(min(left, 1.0)))
            await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            sleeper.cancel()
        if call.answered_at is not None and not call.ended:
            if self.state != LineState.IN_CALL:
                self._set_state(LineState.IN_CALL)
            if call.audio_at is None and audio.enable_when == "on_active":
                await self._audio_after_connect(call)
        return call

    async def send_dtmf(self, digits: str) -> None:
        """Send digits to the far end of the call in progress, one command per digit."""
        call = self.call
        if call is None or call.ended or call.answered_at is None or self._session is None:
            raise RuntimeError(f"line {self.id}: no call in progress to send DTMF on")
        bad = [d for d in digits if d not in self.profile.dtmf.send_digits]
        if bad:
            raise ValueError(f"line {self.id}: this modem cannot send {''.join(bad)!r} "
                             f"(it sends {self.profile.dtmf.send_digits})")
        # a V.253 modem sends DTMF in voice command state only: leave the duplex stream, send, come back
        resume = self._session.in_data_mode
        if resume:
            await self._leave_data_mode()
        for digit in digits:
            await self._session.command(self.profile.dtmf.send.format(digit=digit, index=call.index or "1"),
                                        self.profile.timeouts.default)
        if resume and not call.ended:
            await self._start_inband(call)

    async def hangup(self, reason: str = "hung_up") -> None:
        call = self.call
        if call is None or call.ended:
            return
        self._hangup_reason = reason        # the modem's own end-of-call line may come before the OK
        try:
            if self._session is not None:
                await self._leave_data_mode()
                for cmd in self.profile.calls.hangup:
                    await self._session.command(cmd, self.profile.timeouts.hangup)
        except AtError as exc:
            log.warning("line %s: hang-up command failed: %s", self.id, exc)
        finally:
            self._hangup_reason = None
        self._end_call(reason)

    # --- lifecycle and recovery -----------------------------------------------------------------
    async def _serve(self) -> None:
        failures, lost = 0, False
        while True:
            try:
                if lost:
                    await self._find_again()
                await self._open_and_init()
            except (AtError, OSError) as exc:
                self._set_state(LineState.FAILED, f"{type(exc).__name__}: {exc}")
                await self._teardown()
                failures += 1
                await self._escalate(failures, exc)
                continue
            if lost:
                self.health.recoveries += 1
            failures, lost = 0, False
            self._set_state(LineState.IDLE)
            self._tasks.spawn(self._health_loop(), f"{self.id}-health")
            why = await self._trouble
            if self.call and not self.call.ended:
                self._end_call("modem_lost")
            self._set_state(LineState.RECOVERING, why)
            lost = True
            await self._teardown()
            self.health.failures += 1
            await self._clock.sleep(REOPEN_BACKOFF[0])

    async def _find_again(self) -> None:
        """After a loss, plain /dev names may now belong to another interface of the re-enumerated device
        (or to another modem): ask the locator where this modem's ports are now. Stable links (udev's
        /dev/callgate/..., /dev/serial/by-id/...) follow the device by themselves."""
        if self._locate is None or not self.identity or os.path.islink(self.at_port):
            return
        found = await self._locate(dict(self.identity))
        if found is None:
            raise FileNotFoundError(f"modem {self._who()} is not back yet")
        if found != (self.at_port, self.audio_port):
            log.warning("line %s: modem %s is now on %s", self.id, self._who(), found[0])
            self.health.last_recovery = f"found again on {found[0]}"
            self.at_port, self.audio_port = found

    def _who(self) -> str:
        ident = self.identity
        return ident.get("imei") or ident.get("usb_serial") or ident.get("model") or self.at_port

    async def _escalate(self, failures: int, exc: BaseException) -> None:
        """The next rung after a failed reopen: reset the modem, look for it under a new name, back off."""
        if failures >= LOCATE_AFTER_FAILURES and self._locate is not None and self.identity:
            found = None
            try:
                found = await self._locate(dict(self.identity))
            except Exception:
                log.exception("line %s: locating the modem failed", self.id)
            if found and (found[0] != self.at_port or found[1] != self.audio_port):
                log.warning("line %s: modem %s found again on %s (was %s)", self.id, self._who(), found[0], self.at_port)
                self.at_port, self.audio_port = found
                self.health.last_recovery = f"found again on {found[0]}"
                return
        if failures % 3 == RESET_AFTER_FAILURES and self.profile.recovery.reset and isinstance(exc, AtTimeout):
            if await self._reset():
                return
        await self._clock.sleep(REOPEN_BACKOFF[min(failures - 1, len(REOPEN_BACKOFF) - 1)])

    async def _reset(self) -> bool:
        """Send the profile's reset on a fresh port and wait for the modem to come back (re-enumeration)."""
        cmd = self.profile.recovery.reset
        try:
            link = await self._open(self.at_port)
        except OSError:
            return False
        session = AtSession(link, self.profile.urc_prefixes, clock=self._clock)
        try:
            await session.start()
            await session.command(cmd, self.profile.timeouts.default)
            log.warning("line %s: sent %s, waiting up to %.0f s for the modem to come back", self.id, cmd,
                        self.profile.recovery.reenumerate)
            self.health.last_recovery = f"reset with {cmd}"
        except AtError as exc:
            log.warning("line %s: reset %s failed: %s", self.id, cmd, exc)
            return False
        finally:
            await session.close()
        await self._clock.sleep(self.profile.recovery.reenumerate)
        return True

    async def _open_and_init(self) -> None:
        loop = asyncio.get_running_loop()
        trouble: asyncio.Future[str] = loop.create_future()
        self._trouble = trouble

        def lost() -> None:
            if not trouble.done():
                trouble.set_result(f"modem on {self.at_port} vanished")
        link = await self._open(self.at_port)
        session = AtSession(link, self.profile.urc_prefixes, clock=self._clock)
        self._session = session
        session.add_urc_listener(self._on_urc)
        session.add_close_listener(lost)
        await session.start()
        t = self.profile.timeouts.default
        await self._wake(session)
        for cmd in self.profile.init_required:
            await session.command(cmd, t)
        if self.profile.health.sim_query:
            await self._check_sim(session)
        for cmd in self.profile.init_optional:
            try:
                await session.command(cmd, t)
            except AtError as exc:
                log.info("line %s: optional init %s refused: %s", self.id, cmd, exc)
        await self._identify(session)
        await self._drop_stale_calls(session)
        if self.profile.sms.supported:
            await self._start_sms(session)
        if self.audio_port and self.profile.audio.transport in ("serial", "sounddevice"):
            self._audio_link = await self._open_audio(self.audio_port)
            self._tasks.spawn(self._audio_reader(self._audio_link), f"{self.id}-audio-in")

    async def _check_sim(self, session: AtSession) -> None:
        t = self.profile.timeouts.default
        try:
            resp = await session.command(self.profile.health.sim_query, t)
        except AtCommandError as exc:
            if getattr(exc, "code", None) == 10 or "not inserted" in exc.final.lower():
                raise SimProblem("no SIM card in the modem (+CME ERROR: 10): insert one and the line retries") from None
            raise SimProblem(f"the SIM does not answer ({exc.final}): check it is seated") from None
        state = next((ln.split(":", 1)[1].strip().upper() for ln in resp.lines if ln.upper().startswith("+CPIN:")), "")
        if state in ("", "READY"):
            return
        if state == "SIM PIN" and self._pin and not self._pin_tried:
            self._pin_tried = True
            try:
                await session.command(f'AT+CPIN="{self._pin}"', t)
                log.info("line %s: SIM unlocked with the configured PIN", self.id)
                return
            except AtCommandError as exc:
                raise SimProblem(f"the configured PIN was refused ({exc.final}); it will not be tried again "
                                 f"(three wrong tries lock the SIM): fix `pin` and restart") from None
        if state == "SIM PIN":
            raise SimProblem("the SIM wants its PIN: set pin = \"....\" on this line in the config"
                             if not self._pin_tried else "the SIM still wants its PIN; the configured one was refused and "
                             "will not be tried again (three wrong tries lock the SIM): fix `pin` and restart")
        raise SimProblem(f"the SIM is locked ({state}): unlock it in a phone (PUK), then restart the line")

    async def _wake(self, session: AtSession) -> None:
        """A modem just re-enumerated may swallow the first command: try `AT` a few times."""
        for attempt in range(3):
            try:
                await session.command("AT", self.profile.timeouts.probe)
                return
            except AtTimeout:
                if attempt == 2:
                    raise
            except AtCommandError:
                return

    async def _identify(self, session: AtSession) -> None:
        """Who answers on this port; a different IMEI than before means the name now belongs to another modem."""
        known = self.identity.get("imei")
        await self._ask_identity(session)
        if not self.identity.get("usb_serial"):
            from gateway.modem.relocate import usb_serial_of
            self.identity["usb_serial"] = await asyncio.to_thread(usb_serial_of, self.at_port) or ""
        if known and self.identity.get("imei") and self.identity["imei"] != known:
            found = self.identity["imei"]
            self.identity["imei"] = known
            raise WrongModem(f"{self.at_port} now answers as IMEI {found}, not this line's modem {known}")

    async def _ask_identity(self, session: AtSession) -> None:
        t = self.profile.timeouts.default
        for key, cmd in (("manufacturer", "AT+CGMI"), ("model", "AT+CGMM"), ("firmware", "AT+CGMR"),
                         ("imei", "AT+CGSN")):
            try:
                resp = await session.command(cmd, t)
                self.identity[key] = next((ln.split(":", 1)[-1].strip() for ln in resp.lines if ln.strip()), "")
            except AtError:
                self.identity.setdefault(key, "")

    async def _drop_stale_calls(self, session: AtSession) -> None:
        """A call left up by a previous run (daemon killed mid-call) cannot be resumed: hang it up."""
        if not self.profile.calls.list_calls:
            return
        try:
            resp = await session.command(self.profile.calls.list_calls, self.profile.timeouts.default)
        except AtError:
            return
        # only a call that is up; one ringing right now is new and will be announced
        if any((ev := self.profile.classify(ln)) and ev.kind == "call_state" and ev.state in ("active", "held")
               for ln in resp.lines):
            log.warning("line %s: a call from before the restart is still up; hanging it up", self.id)
            try:
                for cmd in self.profile.calls.hangup:
                    await session.command(cmd, self.profile.timeouts.hangup)
            except AtError as exc:
                log.warning("line %s: could not hang up the stale call: %s", self.id, exc)

    async def _start_sms(self, session: AtSession) -> None:
        from gateway.modem.sms import SmsError, SmsService
        handler = getattr(self._listener, "sms_received", None)

        async def on_message(message) -> None:
            if handler is not None:
                handler(self, message)
        service = SmsService.from_profile(session, self.profile.sms, on_message=on_message, clock=self._clock)
        try:
            taken = await service.setup()
        except (SmsError, AtError) as exc:
            log.warning("line %s: SMS not available: %s", self.id, exc)
            return
        self.sms = service
        if taken:
            log.info("line %s: %d stored SMS part(s) taken in", self.id, taken)

    async def send_sms(self, number: str, text: str) -> list[int]:
        """Send an SMS (split and encoded as needed); the message reference of each part."""
        if self.sms is None:
            why = "this modem profile has no SMS" if not self.profile.sms.supported else f"the line is {self.state.value}"
            raise RuntimeError(f"line {self.id}: cannot send SMS: {why}")
        return await self.sms.send(number, text)

    async def _teardown(self) -> None:
        if self.sms is not None:
            sms, self.sms = self.sms, None
            try:
                await sms.close()
            except Exception:
                log.debug("closing SMS service", exc_info=True)
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

    # --- supervision ------------------------------------------------------------------------------
    async def _health_loop(self) -> None:
        while True:
            await self.check_health()
            await self._clock.sleep(self._health_interval)

    async def check_health(self) -> bool:
        """Ask registration, signal and IMS; a modem that stops answering starts the recovery ladder."""
        session = self._session
        if session is None:
            return False
        health, answered = self.health, False
        queries = list(self.profile.health.queries) or ["AT"]
        for cmd in queries:
            try:
                resp = await session.command(cmd, self.profile.timeouts.default)
            except AtTimeout:
                continue
            except AtError as exc:
                answered = True
                health.per_query[cmd] = f"error: {exc}"
                continue
            answered = True
            for ln in resp.lines:
                self._apply_status(self.profile.classify(ln), cmd)
        if self.profile.health.ims_query and answered:
            try:
                resp = await session.command(self.profile.health.ims_query, self.profile.timeouts.default)
                health.ims = any(re.search(self.profile.health.ims_registered, ln) for ln in resp.lines)
            except AtError:
                health.ims = None
        health.checked_at = self._clock.time()
        if answered:
            health.failures = 0
            self._notify(self._listener.line_changed, self)
            return True
        health.failures += 1
        log.warning("line %s: modem did not answer the health check; resyncing", self.id)
        if await self._resync(session):
            return True
        if self._trouble is not None and not self._trouble.done():
            self._trouble.set_result(f"modem on {self.at_port} stopped answering")
        return False

    async def _resync(self, session: AtSession) -> bool:
        resync = getattr(session, "resync", None)
        if resync is not None:
            return bool(await resync(RESYNC_TIMEOUT))
        try:
            await session.command("AT", RESYNC_TIMEOUT)
            return True
        except AtError:
            return False

    def _apply_status(self, event: Event | None, source: str) -> None:
        if event is None:
            return
        if event.kind == "registration":
            self.health.per_query[source] = event.state or "unknown"
            states = set(self.health.per_query.values())
            self.health.registration = next((s for s in ("home", "roaming", "searching", "denied", "unregistered")
                                             if s in states), "unknown")
        elif event.kind == "signal":
            self.health.rssi = event.value

    # --- events -----------------------------------------------------------------------------------
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

    def _on_urc(self, text: str) -> None:
        event = self.profile.classify(text)
        if event is None:
            return
        call = self.call if self.call is not None and not self.call.ended else None
        kind = event.kind
        if kind == "ring":
            self._ringing(None)
        elif kind == "caller_id":
            self._ringing(event.number or "")
        elif kind == "call_state":
            self._on_call_state(event, call)
        elif kind in ("dialing", "alerting") and call is not None:
            call.index = call.index or event.index
            self._stage(call, "ringing" if kind == "alerting" else "dialing")
        elif kind == "active" and call is not None:
            call.index = call.index or event.index
            self._connected(call)
        elif kind == "ended" and call is not None:
            self._ended(call, event.reason)
        elif kind == "dtmf" and call is not None and event.digit:
            self._digit(call, event.digit, "modem")
        elif kind in ("registration", "signal"):
            self._apply_status(event, text.split(":", 1)[0])
            self._notify(self._listener.line_changed, self)
        elif kind in ("sms_stored", "sms_delivered") and self.sms is not None:
            self.sms.handle_urc(text)

    def _on_call_state(self, event: Event, call: Call | None) -> None:
        state = event.state
        if state in ("incoming", "waiting"):
            if call is None or call.direction == "inbound":
                self._ringing(event.number or "")
                if self.call is not None:
                    self.call.index = self.call.index or event.index
        elif call is None:
            return
        elif state in ("dialing", "alerting"):
            call.index = call.index or event.index
            self._stage(call, "ringing" if state == "alerting" else "dialing")
        elif state == "active":
            call.index = call.index or event.index
            self._connected(call)
        elif state == "released":
            self._ended(call, None)

    def _listen_for_digits(self, call: Call, frame: bytes) -> None:
        if self._detector is None:
            return
        self._detector.feed(np.frombuffer(frame, dtype="<i2"))
        for press in self._detector.presses():  # as soon as accepted, not when the key is let go (barge-in)
            self._digit(call, press.digit, "inband")

    def _digit(self, call: Call, digit: str, source: str) -> None:
        """One key press, whichever way it was noticed: the modem's report and the in-band detector may both
        see it, a little apart in time; the second sighting of the same digit from the other source is dropped."""
        now = self._clock.monotonic()
        recent = self._recent_digits
        while recent and now - recent[0][2] > DTMF_SAME_PRESS:
            recent.pop(0)
        if any(d == digit and src != source for d, src, _ in recent):
            recent[:] = [r for r in recent if not (r[0] == digit and r[1] != source)]
            return
        recent.append((digit, source, now))
        self._notify(self._listener.dtmf, self, call, digit)

    def _stage(self, call: Call, stage: str) -> None:
        if call.progress and call.progress[-1][0] == stage:
            return
        call.progress.append((stage, self._clock.time()))
        self._progress.set()
        handler = getattr(self._listener, "call_progress", None)
        if handler is not None:
            self._notify(handler, self, call, stage)

    def _connected(self, call: Call) -> None:
        if call.answered_at is not None:
            return
        call.answered_at = self._clock.time()
        self._stage(call, "answered")
        if self.state != LineState.IN_CALL:
            self._set_state(LineState.IN_CALL)

    def _ended(self, call: Call, reason: str | None) -> None:
        if self._hangup_reason is not None:
            self._end_call(self._hangup_reason)
        elif self.profile.calls.style == "v253":
            # the far end is gone but an analog line stays off-hook until we hang up
            self._tasks.spawn(self.hangup("customer_hung_up" if call.answered_at else "missed"), f"{self.id}-onhook")
        elif call.answered_at is not None:
            self._end_call("customer_hung_up")
        elif call.direction == "inbound":
            self._end_call("missed")
        elif reason is not None:
            self._end_call(reason)
        elif not call.released:
            # the release (+CLCC stat 6, VOICE CALL: END) comes before the line saying why (BUSY, NO ANSWER)
            call.released = True
            self._tasks.spawn(self._end_without_reason(call), f"{self.id}-end-reason")

    async def _end_without_reason(self, call: Call) -> None:
        await self._clock.sleep(END_REASON_WAIT)
        if self.call is call and not call.ended:
            self._end_call("no_carrier")

    def _ringing(self, number: str | None) -> None:
        if number is None:
            self._last_ring = self._clock.monotonic()
        if self.call is not None and not self.call.ended:
            call = self.call
            if call.direction != "inbound":
                return
            if number and not call.caller:
                call.caller = number
            if number is not None and not call.announced:
                self._announce()
            return
        if self.state != LineState.IDLE:
            return
        self.counters = dict.fromkeys(self.counters, 0)
        self.call = Call(call_id=f"c-{uuid.uuid4().hex[:12]}", line_id=self.id, direction="inbound",
                         caller=number or "", ringing_at=self._clock.time())
        self._set_state(LineState.RINGING)
        if self.profile.calls.style == "v253":
            self._tasks.spawn(self._ring_watch(self.call), f"{self.id}-ring-watch")
        if number is not None:
            self._announce()
        else:
            self._tasks.spawn(self._announce_later(self.call), f"{self.id}-clip-wait")

    async def _ring_watch(self, call: Call) -> None:
        """An analog line has no end-of-ringing signal: no RING for ring_timeout s means the caller gave up."""
        timeout = self.profile.calls.ring_timeout
        while self.call is call and not call.ended and call.answered_at is None:
            await self._clock.sleep(timeout / 4)
            if call.answered_at is None and self._clock.monotonic() - self._last_ring > timeout:
                self._end_call("missed")

    async def _announce_later(self, call: Call) -> None:
        await self._clock.sleep(self.profile.calls.caller_id_wait)
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
        if call.direction == "outbound":
            self._stage(call, reason if call.answered_at is None else "ended")
        self._progress.set()
        was_pcm, self._pcm_on = self._pcm_on, False
        if was_pcm and self._session is not None and not self._session.closed and self.profile.audio.disable:
            self._tasks.spawn(self._disable_audio(), f"{self.id}-audio-off")
        if self.state in (LineState.RINGING, LineState.IN_CALL, LineState.DIALING):
            self._set_state(LineState.IDLE)
        if call.announced:
            self._notify(self._listener.call_ended, self, call)

    # --- audio ------------------------------------------------------------------------------------
    async def _audio_after_connect(self, call: Call) -> None:
        audio = self.profile.audio
        if call.audio_at is not None or call.ended:
            return
        if audio.enable_when == "post_answer":
            await self._enable_audio(call)
        elif audio.enable_when == "on_active":
            await self._clock.sleep(audio.enable_delay_ms / 1000)
            await self._enable_audio(call)

    async def _enable_audio(self, call: Call) -> None:
        audio = self.profile.audio
        if audio.transport == "inband":
            await self._start_inband(call)
            return
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
        if call.ended or self._pcm_on:
            return
        call.audio_at = self._clock.time()
        self._start_detector()
        self._pcm_on = True
        if self._audio_link is not None:
            self._tasks.spawn(self._audio_writer(self._audio_link, call), f"{self.id}-audio-out")

    def _start_detector(self) -> None:
        self._recent_digits = []
        self._detector = None
        if self.profile.dtmf.inband:
            from gateway.media.dtmf import DtmfDetector
            self._detector = DtmfDetector(rate=self.profile.audio.sample_rate)

    async def _start_inband(self, call: Call) -> None:
        """V.253: the audio shares the AT tty. Enter the full-duplex voice state and pump frames through
        the DLE codec; DTMF and far-end-gone hints (busy, dial tone, loop break) arrive in the stream."""
        from gateway.v253.dle import HANGUP_HINTS, DigitDebouncer
        from gateway.v253.samples import sample_format
        from gateway.v253.stream import RxStream, TxStream
        session, audio = self._session, self.profile.audio
        if session is None or call.ended:
            return
        fmt = sample_format(_INBAND_FORMATS[audio.sample_format], audio.sample_rate)
        rx, tx, debounce = RxStream(fmt), TxStream(fmt), DigitDebouncer()

        def on_data(chunk: bytes) -> int | None:
            got = rx.feed(chunk)
            for frame in got.frames:
                if self._pcm_on and self.call is call and not call.ended:
                    self.counters["frames_in"] += 1
                    self._notify(self._listener.audio_in, self, call, frame)
                    self._listen_for_digits(call, frame)
            for event in got.events:
                if event.digit and not call.ended and debounce.accept(event.digit, self._clock.monotonic()):
                    self._digit(call, event.digit, "modem")
                elif event.kind in HANGUP_HINTS and not call.ended and self._hangup_reason is None:
                    log.info("line %s: far end gone (%s)", self.id, event.kind.value)
                    self._ended(call, None)
            return None if got.rest is None else len(chunk) - len(got.rest)
        await session.start_data(audio.enable, on_data, self.profile.timeouts.default)
        if call.audio_at is None:
            self._start_detector()
        call.audio_at = call.audio_at or self._clock.time()
        self._pcm_on = True
        self._tasks.spawn(self._inband_writer(session, tx, call), f"{self.id}-audio-out")

    async def _inband_writer(self, session: AtSession, tx, call: Call) -> None:
        pacer = FramePacer(self._clock, self.profile.audio.frame_ms / 1000, counters=self.counters)
        while self._pcm_on and self.call is call and not call.ended and session.in_data_mode:
            frame = self._source() if self._source is not None else b""
            session.write_data(tx.encode_frame(frame) if frame else tx.silence())
            self.counters["frames_out"] += 1
            await pacer.wait()

    async def _on_hook(self) -> None:
        try:
            for cmd in self.profile.calls.hangup:
                await self._session.command(cmd, self.profile.timeouts.hangup)
        except (AtError, AttributeError) as exc:
            log.warning("line %s: going on-hook failed: %s", self.id, exc)

    async def _leave_data_mode(self) -> None:
        session = self._session
        if session is None or not getattr(session, "in_data_mode", False):
            return
        from gateway.v253.dle import DleEncoder
        self._pcm_on = False
        try:
            await session.end_data(DleEncoder().end_duplex(), self.profile.timeouts.default, modem_ends_stream=True)
        except AtError as exc:
            log.warning("line %s: leaving the voice state failed: %s", self.id, exc)

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
                if self._trouble is not None and not self._trouble.done():
                    self._trouble.set_result(f"audio port {self.audio_port} vanished")
                return
            buf += data
            while len(buf) >= size:
                frame = bytes(buf[:size])
                del buf[:size]
                call = self.call
                if self._pcm_on and call is not None and not call.ended:
                    self.counters["frames_in"] += 1
                    self._notify(self._listener.audio_in, self, call, frame)
                    self._listen_for_digits(call, frame)

    async def _audio_writer(self, link: SerialLink, call: Call) -> None:
        silence = bytes(self.profile.audio.frame_bytes)
        pacer = FramePacer(self._clock, self.profile.audio.frame_ms / 1000, counters=self.counters)
        while self._pcm_on and self.call is call and not call.ended:
            frame = silence
            if self._source is not None:
                try:
                    frame = self._source() or silence
                except Exception:
                    log.exception("line %s: audio source failed", self.id)
            link.write(frame)
            self.counters["frames_out"] += 1
            await pacer.wait()
