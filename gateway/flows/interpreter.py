"""Run a validated `Flow` for one contact: one coroutine per call, every action bounded in time.

The interpreter never touches the modem or the queues itself; it talks to the call through a
`FlowContact` (implemented by the daemon) and renders prompts through a `PromptSource`. The path
(every step with the branch it took and when) comes back in the `FlowResult` for the contact record.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.flows.blocks import ACTION_MIXINS
from gateway.flows.model import Action, Flow, resolve_references
from gateway.flows.runtime import (  # noqa: F401 - re-exported: the interpreter's public types
    ACTION_TIMEOUT,
    DEFAULT_INPUT_TIME_LIMIT,
    CallerHungUp,
    End,
    FlowContact,
    FlowResult,
    Go,
    PromptSource,
    Step,
)
from gateway.flows.values import parse_seconds
from gateway.media.frames import SAMPLE_RATE

MAX_STEPS = 1000  # loop guard: a flow that runs more actions than this is stopped
MAX_SSML_BREAK = 10.0  # seconds, as in Amazon Polly
SSML_BREAK_STRENGTH = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.5, "strong": 0.75, "x-strong": 1.0}
SPELLED_OUT = {"digits", "telephone", "characters", "spell-out"}


async def run_flow(
    flow: Flow,
    contact: FlowContact,
    prompts: PromptSource,
    *,
    clock: Clock = SYSTEM_CLOCK,
    action_timeout: float = ACTION_TIMEOUT,
    on_step: Callable[[Step], None] | None = None,
    library=None,
    rng=None,
) -> FlowResult:
    """Run `flow` from its StartAction until the contact is queued, disconnected, hangs up or the flow
    ends. `on_step` sees each step as soon as its action has finished. `library` (a FlowSet: `get(ref)`)
    holds the flows TransferToFlow may run; `rng` (random.Random) draws DistributeByPercentage's number."""
    run = _Run(flow, contact, prompts, clock, action_timeout)
    run.on_step = on_step
    run.library, run.rng = library, rng
    return await run.run()


class _Run(*ACTION_MIXINS):
    def __init__(self, flow: Flow, contact: FlowContact, prompts: PromptSource, clock: Clock, timeout: float):
        self.flow = flow
        self.contact = contact
        self.prompts = prompts
        self.clock = clock
        self.action_timeout = timeout
        self.stored_input = ""
        self.path: list[Step] = []
        self.on_step: Callable[[Step], None] | None = None
        self.loaded_references: dict[str, str] = {}  # $.External.* (webhook), $.Metrics.* (GetMetricData)

    async def run(self) -> FlowResult:
        current = self.flow.start_action
        first = self.flow
        for _ in range(MAX_STEPS):  # counted across TransferToFlow: a loop between flows stops too
            self.step_flow = None if self.flow is first else Path(self.flow.source).stem
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
                result = Go("NoMatchingError", action.errors.get("NoMatchingError"), detail)
            self._step(Step(action.identifier, action.type, _branch(result), at, getattr(result, "detail", None)))
            if isinstance(result, End):
                return FlowResult(result.outcome, self.path)
            if result.branch == "transferred":
                self.left_flow()
            if result.target is None:
                message = self._dead_end(action, result)
                while (back := self.unwind_module(message)) is not None:  # the invoking block's Error branch
                    invoker, result = back
                    self.step_flow = None if self.flow is first else Path(self.flow.source).stem
                    self._step(Step(invoker.identifier, invoker.type, result.branch, self.clock.time(), result.detail))
                    if result.target is not None:
                        break
                    message = self._dead_end(invoker, result)
                else:
                    return FlowResult("error", self.path, message)
            current = result.target
        return FlowResult("error", self.path, f"stopped after {MAX_STEPS} steps (loop guard)")

    def _dead_end(self, action: Action, result: Go) -> str:
        """The last step took a branch the action does not have: mark it, and say so."""
        why = f": {result.detail}" if result.detail else ""
        message = f"action '{action.identifier}' ({action.type}) has no {result.branch} branch{why}"
        self.path[-1].branch = "error"
        self.path[-1].detail = message
        return message

    def _step(self, step: Step) -> None:
        step.flow = getattr(self, "step_flow", None)
        self.path.append(step)
        if self.on_step is not None:
            self.on_step(step)

    def time_limit(self, action: Action) -> float:
        """ACTION_TIMEOUT, plus what the block says it may wait for the caller (extra_time_<Type>)."""
        extra = getattr(self, f"extra_time_{action.type.replace('.', '_')}", None)
        return self.action_timeout + (extra(action) if extra is not None else 0.0)

    def input_time_limit(self, action: Action) -> float:
        seconds = parse_seconds(action.parameters.get("InputTimeLimitSeconds", DEFAULT_INPUT_TIME_LIMIT))
        return seconds if seconds is not None and seconds > 0 else DEFAULT_INPUT_TIME_LIMIT

    async def execute(self, action: Action) -> Go | End:
        handler = getattr(self, f"do_{action.type.replace('.', '_')}", None)
        if handler is None:
            raise ValueError(f"not supported here: {action.type}")
        return await handler(action)

    # -- actions

    @property
    def channel(self) -> str:
        return getattr(self.contact, "channel", "VOICE")











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
        values.update(self.loaded_references)
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
                pieces.append(np.asarray(await self.prompts.text(part.strip(), voice=self.tts_voice)))
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


def _branch(result: Go | End) -> str:
    return result.outcome if isinstance(result, End) else result.branch


def _describe(exc: Exception, limit: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {limit:g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
