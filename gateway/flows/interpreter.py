"""Run a validated `Flow` for one contact: one coroutine per call, every action bounded in time.

The interpreter never touches the modem or the queues itself; it talks to the call through a
`FlowContact` (implemented by the daemon) and renders prompts through a `PromptSource`. The path
(every step with the branch it took and when) comes back in the `FlowResult` for the contact record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Protocol
from xml.sax.saxutils import escape

import numpy as np

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.flows.model import Action, Flow, resolve_references
from gateway.flows.validate import VOICEMAIL_TYPE, parse_seconds, voicemail_options
from gateway.media.frames import SAMPLE_RATE
from gateway.media.tones import beep

ACTION_TIMEOUT = 120.0  # seconds any one action may take (a GetParticipantInput adds its input limit)
MAX_STEPS = 1000  # loop guard: a flow that runs more actions than this is stopped
DEFAULT_INPUT_TIME_LIMIT = 5.0  # Connect's default for GetParticipantInput
MAX_SSML_BREAK = 10.0  # seconds, as in Amazon Polly
SSML_BREAK_STRENGTH = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.5, "strong": 0.75, "x-strong": 1.0}
SPELLED_OUT = {"digits", "telephone", "characters", "spell-out"}


class CallerHungUp(Exception):
    """The caller hung up; raised by FlowContact methods."""


class FlowContact(Protocol):
    contact_id: str
    attributes: dict[str, str]
    customer_number: str
    system_number: str
    queue_name: str | None

    async def play(self, samples: np.ndarray, *, interruptible: bool) -> str | None: ...
    # Text channels (SMS) set channel = "SMS" and take prompts as text instead of audio:
    #     channel: str                       ("VOICE" when absent)
    #     async def send_text(self, text: str) -> None
    # Calls that can be recorded also have (UpdateContactRecordingBehavior; absent: the action does nothing):
    #     def set_recording(self, participants: list[str], layout: str | None = None) -> None
    #         participants: "Agent" and/or "Customer" (empty: off); layout "stereo" | "mono" | None (unchanged)
    # Calls that can leave a voicemail also have (Callgate.RecordVoicemail; absent: its NoMatchingError branch):
    #     async def record_voicemail(self, *, max_seconds: float, silence_seconds: float, stop_keys: str)
    #         -> gateway.media.voicemail.VoicemailResult   (raises CallerHungUp after keeping the message)
    async def get_digit(self, timeout: float) -> str | None: ...
    def set_queue(self, queue_ref: str) -> bool: ...
    async def transfer_to_queue(self) -> str: ...
    async def disconnect(self) -> None: ...


class PromptSource(Protocol):
    async def text(self, text: str, voice: str = "en-us") -> np.ndarray: ...
    def file(self, path) -> np.ndarray: ...


@dataclass
class Step:
    identifier: str
    type: str
    branch: str  # "next", "condition:1", an ErrorType, or how the flow ended ("queued", "hung_up", ...)
    at: float  # clock.time() when the action started
    detail: str | None = None  # why an error branch was taken


@dataclass
class FlowResult:
    outcome: str  # "queued" | "disconnected" | "hung_up" | "ended" | "voicemail" | "error"
    path: list[Step] = field(default_factory=list)
    error: str | None = None

    def path_records(self) -> list[dict]:
        """The path as the contact record keeps it."""
        return [{"id": s.identifier, "type": s.type, "branch": s.branch, "at": s.at} for s in self.path]


@dataclass
class _Go:
    branch: str
    target: str | None
    detail: str | None = None


@dataclass
class _End:
    outcome: str
    detail: str | None = None


async def run_flow(
    flow: Flow,
    contact: FlowContact,
    prompts: PromptSource,
    *,
    clock: Clock = SYSTEM_CLOCK,
    action_timeout: float = ACTION_TIMEOUT,
    on_step: Callable[[Step], None] | None = None,
) -> FlowResult:
    """Run `flow` from its StartAction until the contact is queued, disconnected, hangs up or the flow
    ends. `on_step` sees each step as soon as its action has finished."""
    run = _Run(flow, contact, prompts, clock, action_timeout)
    run.on_step = on_step
    return await run.run()


class _Run:
    def __init__(self, flow: Flow, contact: FlowContact, prompts: PromptSource, clock: Clock, timeout: float):
        self.flow = flow
        self.contact = contact
        self.prompts = prompts
        self.clock = clock
        self.action_timeout = timeout
        self.stored_input = ""
        self.path: list[Step] = []
        self.on_step: Callable[[Step], None] | None = None

    async def run(self) -> FlowResult:
        current = self.flow.start_action
        for _ in range(MAX_STEPS):
            action = self.flow.actions.get(current)
            if action is None:
                return FlowResult("error", self.path, f"no action '{current}' in the flow")
            at = self.clock.time()
            try:
                async with asyncio.timeout(self.time_limit(action)):
                    result = await self.execute(action)
            except CallerHungUp:
                self._step(Step(action.identifier, action.type, "hung_up", at))
                return FlowResult("hung_up", self.path)
            except Exception as exc:  # noqa: BLE001 - any failure inside an action takes its Error branch
                detail = _describe(exc, self.time_limit(action))
                result = _Go("NoMatchingError", action.errors.get("NoMatchingError"), detail)
            self._step(Step(action.identifier, action.type, _branch(result), at, getattr(result, "detail", None)))
            if isinstance(result, _End):
                return FlowResult(result.outcome, self.path)
            if result.target is None:
                why = f": {result.detail}" if result.detail else ""
                message = f"action '{action.identifier}' ({action.type}) has no {result.branch} branch{why}"
                self.path[-1].branch = "error"
                self.path[-1].detail = message
                return FlowResult("error", self.path, message)
            current = result.target
        return FlowResult("error", self.path, f"stopped after {MAX_STEPS} steps (loop guard)")

    def _step(self, step: Step) -> None:
        self.path.append(step)
        if self.on_step is not None:
            self.on_step(step)

    def time_limit(self, action: Action) -> float:
        if action.type == "GetParticipantInput":
            return self.action_timeout + self.input_time_limit(action)
        if action.type == VOICEMAIL_TYPE:
            return self.action_timeout + voicemail_options(action.parameters).max_seconds
        return self.action_timeout

    def input_time_limit(self, action: Action) -> float:
        seconds = parse_seconds(action.parameters.get("InputTimeLimitSeconds", DEFAULT_INPUT_TIME_LIMIT))
        return seconds if seconds is not None and seconds > 0 else DEFAULT_INPUT_TIME_LIMIT

    async def execute(self, action: Action) -> _Go | _End:
        handler = getattr(self, f"do_{action.type.replace('.', '_')}", None)
        if handler is None:
            raise ValueError(f"not supported here: {action.type}")
        return await handler(action)

    # -- actions

    @property
    def channel(self) -> str:
        return getattr(self.contact, "channel", "VOICE")

    async def do_MessageParticipant(self, action: Action) -> _Go:
        if self.channel != "VOICE":
            await self.send_text(action.parameters)
            return _Go("next", action.next_action)
        samples = await self.render(action.parameters)
        if samples is not None:
            await self.contact.play(samples, interruptible=False)
        return _Go("next", action.next_action)

    async def do_GetParticipantInput(self, action: Action) -> _Go:
        digit = None
        if self.channel != "VOICE":
            await self.send_text(action.parameters)
        elif (samples := await self.render(action.parameters)) is not None:
            digit = await self.contact.play(samples, interruptible=True)
        if digit is None:
            digit = await self.contact.get_digit(self.input_time_limit(action))
        if digit is None:
            return _Go("InputTimeLimitExceeded", action.errors.get("InputTimeLimitExceeded"))
        self.stored_input = digit
        for condition in action.conditions:
            if condition.operator == "Equals" and digit in condition.operands:
                return _Go(f"condition:{digit}", condition.next_action)
        return _Go("NoMatchingCondition", action.errors.get("NoMatchingCondition"), f"key '{digit}'")

    async def do_UpdateContactTargetQueue(self, action: Action) -> _Go:
        queue_ref = self.resolve(str(action.parameters.get("QueueId", "")))
        if self.contact.set_queue(queue_ref):
            return _Go("next", action.next_action)
        return _Go("NoMatchingError", action.errors.get("NoMatchingError"), f"unknown queue '{queue_ref}'")

    async def do_TransferContactToQueue(self, action: Action) -> _Go | _End:
        status = await self.contact.transfer_to_queue()
        if status == "queued":
            return _End("queued")
        if status == "at_capacity":
            return _Go("QueueAtCapacity", action.errors.get("QueueAtCapacity"), "queue at capacity")
        if status == "no_queue":
            return _Go("NoMatchingError", action.errors.get("NoMatchingError"), "no working queue set")
        raise ValueError(f"transfer_to_queue returned {status!r}")

    async def do_UpdateContactAttributes(self, action: Action) -> _Go:
        updates = {self.resolve(k): self.resolve(str(v)) for k, v in action.parameters.get("Attributes", {}).items()}
        self.contact.attributes.update(updates)
        return _Go("next", action.next_action)

    async def do_DisconnectParticipant(self, action: Action) -> _End:
        await self.contact.disconnect()
        return _End("disconnected")

    async def do_EndFlowExecution(self, action: Action) -> _End:
        return _End("ended")

    async def do_UpdateFlowLoggingBehavior(self, action: Action) -> _Go:
        return _Go("next", action.next_action)

    async def do_UpdateContactRecordingBehavior(self, action: Action) -> _Go:
        behavior = action.parameters.get("RecordingBehavior", {})
        set_recording = getattr(self.contact, "set_recording", None)
        if self.channel == "VOICE" and set_recording is not None:
            channels = behavior.get("Channels")
            set_recording(list(behavior.get("RecordedParticipants", [])), channels.lower() if channels else None)
        return _Go("next", action.next_action)

    async def do_Callgate_RecordVoicemail(self, action: Action) -> _Go | _End:
        """Greeting (any key skips it), beep, message. A kept message goes on to NextAction, one without
        speech to NoSpeech; without that branch the flow ends there and the call is hung up."""
        if self.channel != "VOICE" or not hasattr(self.contact, "record_voicemail"):
            return _Go("NoMatchingError", action.errors.get("NoMatchingError"),
                       f"no voicemail on the {self.channel} channel")
        options = voicemail_options(action.parameters)
        if (samples := await self.render(action.parameters)) is not None:
            await self.contact.play(samples, interruptible=True)
        if options.beep:
            await self.contact.play(beep(), interruptible=False)
        result = await self.contact.record_voicemail(max_seconds=options.max_seconds,
                                                     silence_seconds=options.silence_seconds,
                                                     stop_keys=options.stop_keys)
        detail = result.describe()
        if not result.kept:
            target = action.errors.get("NoSpeech")
            return _Go("NoSpeech", target, detail) if target is not None else _End("voicemail", detail)
        if action.next_action is None:
            return _End("voicemail", detail)
        return _Go("next", action.next_action, detail)

    # -- references and prompts

    def references(self) -> dict[str, str]:
        c = self.contact
        values = {f"$.Attributes.{k}": str(v) for k, v in c.attributes.items()}
        values.update({
            "$.CustomerEndpoint.Address": c.customer_number or "",
            "$.SystemEndpoint.Address": c.system_number or "",
            "$.StoredCustomerInput": self.stored_input,
            "$.Queue.Name": c.queue_name or "",
            "$.ContactId": c.contact_id or "",
            "$.Channel": self.channel,
        })
        return values

    def resolve(self, text: str, *, xml: bool = False) -> str:
        values = self.references()
        if xml:
            values = {k: escape(v) for k, v in values.items()}
        return resolve_references(text, values)

    async def send_text(self, params: dict) -> None:
        """A prompt on a text channel: its text, SSML without the markup; a prompt file cannot be sent."""
        if "PromptId" in params:
            raise ValueError(f"a recorded prompt ({params['PromptId']}) cannot be sent on the {self.channel} channel")
        if "SSML" in params:
            ssml = self.resolve(params["SSML"], xml=True)
            parts = ssml_parts(ssml) if ssml.lstrip().startswith("<") else [ssml]
            text = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
        else:
            text = self.resolve(params.get("Text", "")).strip()
        if text:
            await self.contact.send_text(text)

    async def render(self, params: dict) -> np.ndarray | None:
        """The prompt of a MessageParticipant / GetParticipantInput as samples; None when it is empty."""
        if "PromptId" in params:
            return self.prompts.file(self.flow.base_dir / params["PromptId"])
        if "SSML" in params:
            ssml = self.resolve(params["SSML"], xml=True)
            parts = ssml_parts(ssml) if ssml.lstrip().startswith("<") else [ssml]
        else:
            parts = [self.resolve(params.get("Text", ""))]
        pieces = []
        for part in parts:
            if isinstance(part, float):
                pieces.append(np.zeros(int(part * SAMPLE_RATE), dtype=np.int16))
            elif part.strip():
                pieces.append(np.asarray(await self.prompts.text(part.strip())))
        if not any(len(p) for p in pieces):
            return None
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def ssml_parts(ssml: str) -> list[str | float]:
    """Split SSML into text to speak and pauses (seconds): '<speak>Hi<break time="1s"/>there</speak>'."""
    parts: list[str | float] = []

    def add(text: str | None) -> None:
        if text:
            if parts and isinstance(parts[-1], str):
                parts[-1] += text
            else:
                parts.append(text)

    def walk(element: ET.Element) -> None:
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "break":
            parts.append(_break_seconds(element))
            return
        text = element.text or ""
        if tag == "say-as" and element.get("interpret-as") in SPELLED_OUT:
            text = " ".join(text.replace(" ", ""))
        add(text)
        for child in element:
            walk(child)
            add(child.tail)
        if tag in ("p", "s"):
            add(" ")

    walk(ET.fromstring(ssml))
    return parts


def _break_seconds(element: ET.Element) -> float:
    time = (element.get("time") or "").strip().lower()
    try:
        if time.endswith("ms"):
            seconds = float(time[:-2]) / 1000
        elif time.endswith("s"):
            seconds = float(time[:-1])
        else:
            seconds = SSML_BREAK_STRENGTH.get(element.get("strength", "medium"), 0.5)
    except ValueError:
        seconds = SSML_BREAK_STRENGTH["medium"]
    return float(min(max(seconds, 0.0), MAX_SSML_BREAK))


def _branch(result: _Go | _End) -> str:
    return result.outcome if isinstance(result, _End) else result.branch


def _describe(exc: Exception, limit: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {limit:g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
