"""The far end of the phone line a scenario talks to: an emulator's scripting API (EmulatorFar), or a
second real modem driven by its own Line that calls and answers the line under test (ModemFar).

Both offer the same coroutines (ring, hangup, play_tone, send_dtmf, outcome, send_sms, fault) and the
same observations (heard audio, DTMF and SMS received from the line, call state), so one scenario
runs on both. `capabilities` says what a far end can do; faults are emulator-only.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from gateway.media.frames import frame_to_array, pcm_to_frames
from gateway.media.tones import sine
from hil.scenario_file import FAULTS

log = logging.getLogger(__name__)

TONE_AMPLITUDE = 0.3
GSM_FAULTS = frozenset(FAULTS)
V253_FAULTS = frozenset({"unplug", "replug", "no_answer", "garbage", "slow"})
# V.253 emulator states seen from the far end: the line is still off-hook after a remote hang-up.
_V253_STATES = {"remote_hangup": "active", "offhook": "active"}


class FarEnd:
    """What every far end offers; subclasses fill in the actions they can do."""

    kind = ""
    capabilities: frozenset[str] = frozenset()

    def __init__(self, number: str) -> None:
        self.number = number

    def describe(self) -> str:
        return self.kind

    async def ring(self, caller: str, line_number: str) -> None:
        raise NotImplementedError

    async def hangup(self) -> None:
        raise NotImplementedError

    async def play_tone(self, freq: float, seconds: float) -> None:
        raise NotImplementedError

    async def send_dtmf(self, digits: str) -> None:
        raise NotImplementedError

    async def outcome(self, outcome: str, after: float) -> None:
        raise NotImplementedError

    async def send_sms(self, text: str, sender: str, line_number: str) -> None:
        raise NotImplementedError

    async def fault(self, name: str, args: dict) -> None:
        raise NotImplementedError(f"the far end ({self.describe()}) cannot inject {name}")

    def heard_mark(self) -> int:
        """A position in the audio heard so far; heard_since(mark) is what came after it."""
        return 0

    def heard_since(self, mark: int) -> np.ndarray:
        return np.zeros(0, np.int16)

    def dtmf_received(self) -> str:
        return ""

    def sms_received(self) -> list[dict]:
        return []

    def state(self) -> str:
        return "idle"

    def transcript(self) -> list[tuple[float, str, str]]:
        return []


class EmulatorFar(FarEnd):
    """The far end played by a modem emulator (hil/gsm or hil/v253): ringing the line, speaking into the
    call and listening to it are the emulator's scripting calls, run off the event loop."""

    def __init__(self, emulator, number: str, *, style: str) -> None:
        super().__init__(number)
        self.emulator = emulator
        self.style = style                  # "gsm" | "v253"
        self.kind = f"{style} emulator ({getattr(emulator, 'family', None) or emulator.dialect.name})"
        base = {"inbound", "outbound", "audio", "caller_id", "dtmf_in", "dtmf_out", "transcript"}
        if style == "gsm":
            self.capabilities = frozenset(base | {"sms", "registration"} | GSM_FAULTS)
        else:
            self.capabilities = frozenset(base | V253_FAULTS)

    def describe(self) -> str:
        return self.kind

    async def _call(self, fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def ring(self, caller: str, line_number: str) -> None:
        if self.style == "v253":
            await self._call(self.emulator.ring, caller, "HIL CALLER")
        else:
            await self._call(self.emulator.ring, caller)

    async def hangup(self) -> None:
        await self._call(self.emulator.hangup)

    async def play_tone(self, freq: float, seconds: float) -> None:
        await self._call(self.emulator.play_pcm, sine(freq, seconds, amplitude=TONE_AMPLITUDE))

    async def send_dtmf(self, digits: str) -> None:
        await self._call(self.emulator.send_dtmf, digits)

    async def outcome(self, outcome: str, after: float) -> None:
        if self.style == "v253":
            if outcome == "reject":
                raise NotImplementedError("an analog line cannot reject a call (no 'reject' on V.253)")
            await self._call(self.emulator.set_outbound_outcome, outcome, 1)
        else:
            await self._call(self.emulator.set_outbound_outcome, outcome, after=after)

    async def send_sms(self, text: str, sender: str, line_number: str) -> None:
        await self._call(self.emulator.receive_sms, sender, text)

    async def fault(self, name: str, args: dict) -> None:
        if name not in self.capabilities:
            raise NotImplementedError(f"the far end ({self.describe()}) cannot inject {name}")
        emu = self.emulator
        if name == "garbage":
            await self._call(emu.inject, args["data"].encode("latin-1", "replace"))
        elif name == "no_answer":
            await self._call(emu.no_answer, args["on"])
        elif name == "urc_inside_response":
            lines = [args["urc"]] if args.get("urc") else self._dtmf_urcs(args["dtmf"])
            for line in lines:
                await self._call(emu.urc_inside_response, line)
        elif name == "sim_missing":
            await self._call(emu.sim_missing, args["missing"])
        elif name == "slow":
            await self._call(emu.slow, args["seconds"])
        else:
            await self._call(getattr(emu, name))

    def _dtmf_urcs(self, digit: str) -> list[str]:
        """The lines this family sends when the far end presses `digit` (its own dialect, as configured)."""
        lines = [line for line, _ in self.emulator.dtmf_urcs(digit.upper())]
        if not lines:
            raise RuntimeError(f"{self.describe()} reports no DTMF URC for {digit!r} (detection off?)")
        return lines

    def heard_mark(self) -> int:
        return len(self.emulator.capture())

    def heard_since(self, mark: int) -> np.ndarray:
        return self.emulator.capture()[mark:]

    def dtmf_received(self) -> str:
        if self.style == "v253":
            return "".join(self.emulator.vts_log)
        return "".join(self.emulator.dtmf_sent)

    def sms_received(self) -> list[dict]:
        if self.style != "gsm":
            return []
        return [{"number": m["number"], "text": m["text"], "complete": m.get("complete", True)}
                for m in self.emulator.sent_sms(joined=True)]

    def state(self) -> str:
        state = self.emulator.state
        return _V253_STATES.get(state, state)

    def transcript(self) -> list[tuple[float, str, str]]:
        return list(self.emulator.transcript)


class FarRecorder:
    """Listener of the far modem's Line: what it hears, the DTMF and SMS it receives."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.digits: list[str] = []
        self.sms: list[dict] = []
        self.incoming: asyncio.Event = asyncio.Event()
        self.on_incoming = None

    def line_changed(self, line) -> None:
        pass

    def incoming_call(self, line, call) -> None:
        self.incoming.set()
        if self.on_incoming is not None:
            self.on_incoming(line, call)

    def call_ended(self, line, call) -> None:
        pass

    def dtmf(self, line, call, digit) -> None:
        self.digits.append(digit)

    def audio_in(self, line, call, frame) -> None:
        self.frames.append(frame_to_array(frame))

    def sms_received(self, line, message) -> None:
        self.sms.append({"number": message.sender, "text": message.text, "complete": not message.missing})


class ModemFar(FarEnd):
    """A second real modem as the far end: it calls the line under test, answers the line's calls (or
    rejects them, or lets them ring), speaks tones into the call, sends DTMF and SMS, and records what
    it hears. No faults: unplugging a real modem is a job for hands, not for this class."""

    kind = "real modem"

    def __init__(self, line, recorder: FarRecorder, number: str) -> None:
        super().__init__(number)
        self.line = line
        self.recorder = recorder
        caps = {"inbound", "outbound", "audio", "caller_id", "dtmf_in", "dtmf_out"}
        if line.profile.sms.supported:
            caps.add("sms")
        self.capabilities = frozenset(caps)
        self._plan = "answer"
        self._tasks: set[asyncio.Task] = set()
        recorder.on_incoming = self._incoming

    def describe(self) -> str:
        return f"real modem {self.line.profile.id} on {self.line.at_port}"

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _incoming(self, line, call) -> None:
        if self._plan == "answer":
            self._spawn(line.answer())
        elif self._plan in ("busy", "reject"):
            self._spawn(line.hangup("rejected"))
        # no_answer: let it ring until the caller gives up

    async def ring(self, caller: str, line_number: str) -> None:
        self._spawn(self.line.dial(line_number))

    async def hangup(self) -> None:
        await self.line.hangup("far_hung_up")

    async def play_tone(self, freq: float, seconds: float) -> None:
        frames = pcm_to_frames(sine(freq, seconds, amplitude=TONE_AMPLITUDE))
        self.line.set_audio_source(lambda: frames.pop(0) if frames else b"")

    async def send_dtmf(self, digits: str) -> None:
        await self.line.send_dtmf(digits)

    async def outcome(self, outcome: str, after: float) -> None:
        self._plan = outcome

    async def send_sms(self, text: str, sender: str, line_number: str) -> None:
        await self.line.send_sms(line_number, text)

    def heard_mark(self) -> int:
        return len(self.recorder.frames)

    def heard_since(self, mark: int) -> np.ndarray:
        frames = self.recorder.frames[mark:]
        return np.concatenate(frames) if frames else np.zeros(0, np.int16)

    def dtmf_received(self) -> str:
        return "".join(self.recorder.digits)

    def sms_received(self) -> list[dict]:
        return list(self.recorder.sms)

    def state(self) -> str:
        value = self.line.state.value
        return {"in_call": "active", "recovering": "gone", "failed": "gone", "starting": "gone"}.get(value, value)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
