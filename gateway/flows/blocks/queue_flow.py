"""Loop prompts (MessageParticipantIteratively): the prompts of a customer queue flow, played in a loop.

`Messages` is a list of prompts, each with one of Text, SSML or PromptId (Connect's Media, an S3 file, is
not supported). They play in order, round and round. With `InterruptFrequencySeconds` N the action ends
after N seconds with the result MessagesInterrupted (a condition `Equals ["MessagesInterrupted"]`, as
Connect encodes it), cutting the message playing then, so the flow can offer options and come back;
without it the messages loop until the call leaves the flow (an agent takes it, the caller hangs up), at
most UNINTERRUPTED_SECONDS. Re-entering the block starts again from the first message, or, with
`ContinueMessagingDuringInterrupt` "true", where the last interrupt stopped it, so every message is heard
in turn (callgate does not go on playing it under the blocks of the interrupt branch).

The messages are not interruptible: keys pressed during them wait for the next block that reads keys
(a GetParticipantInput after the interrupt sees them at once). Voice only: other channels take the
NoMatchingError branch.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import asyncio
import json
import math
import xml.etree.ElementTree as ET

import numpy as np

from gateway.flows.model import Action
from gateway.flows.runtime import Go
from gateway.flows.values import PROMPT_PARAMETERS, flag, key_path, kind, parse_seconds
from gateway.media.frames import SAMPLE_RATE

LOOP_PROMPTS = "MessageParticipantIteratively"
INTERRUPTED = "MessagesInterrupted"      # the one result (condition operand) Connect defines
MIN_INTERRUPT_SECONDS = 1.0
UNINTERRUPTED_SECONDS = 4 * 3600.0       # the longest a loop without interrupt plays (a call's longest life)
MIN_ROUND_SECONDS = 1.0                  # a round of messages that took no time waits this long (no busy loop)
EARLY = 0.02                             # an interrupt due within one audio frame is taken now
MESSAGE_KEYS = (*PROMPT_PARAMETERS, "Media")
PARAMETERS = ("Messages", "InterruptFrequencySeconds", "ContinueMessagingDuringInterrupt")

ERRORS = {LOOP_PROMPTS: {"NoMatchingError"}}
NEEDS_NEXT_ACTION: set[str] = set()
USES_CONDITIONS = {LOOP_PROMPTS}


def interrupt_seconds(params: dict) -> float | None:
    """InterruptFrequencySeconds of a (validated) action; None when the loop is not interrupted."""
    if "InterruptFrequencySeconds" not in params:
        return None
    seconds = parse_seconds(params["InterruptFrequencySeconds"])
    return seconds if seconds is not None and seconds >= MIN_INTERRUPT_SECONDS else None


class Checks:
    def check_MessageParticipantIteratively(self, action: Action, path: str, ident: str, params: dict) -> None:
        for key in params:
            if key not in PARAMETERS:
                self.warn(f"{path}.Parameters{key_path(key)}", f"{LOOP_PROMPTS} has no parameter {key!r}; it is "
                                                               f"ignored (known: {', '.join(PARAMETERS)})", ident)
        messages = params.get("Messages")
        if "Messages" not in params:
            self.error(f"{path}.Parameters", 'missing Messages (a list of prompts such as [{"Text": "Please hold."}])',
                       ident)
        elif not isinstance(messages, list) or not messages:
            self.error(f"{path}.Parameters.Messages", f"Messages must be a non-empty list of prompts, found "
                                                      f"{kind(messages)}", ident)
        else:
            for i, message in enumerate(messages):
                self.check_loop_message(f"{path}.Parameters.Messages[{i}]", ident, message)
        if "InterruptFrequencySeconds" in params:
            where, value = f"{path}.Parameters.InterruptFrequencySeconds", params["InterruptFrequencySeconds"]
            seconds = parse_seconds(value)
            if seconds is None:
                self.error(where, f"InterruptFrequencySeconds must be a number of seconds, found {kind(value)}",
                           ident)
            elif seconds < MIN_INTERRUPT_SECONDS:
                self.error(where, f"InterruptFrequencySeconds must be at least {MIN_INTERRUPT_SECONDS:g} s, found "
                                  f"{json.dumps(value)}", ident)
            elif not any(c.operator == "Equals" and INTERRUPTED in c.operands for c in action.conditions):
                self.error(f"{path}.Transitions.Conditions", f"an interrupted loop needs a condition Equals "
                                                             f"{INTERRUPTED} (where to go every {seconds:g} s)", ident)
        elif any(INTERRUPTED in c.operands for c in action.conditions):
            self.warn(f"{path}.Transitions.Conditions", f"no InterruptFrequencySeconds: the {INTERRUPTED} branch "
                                                        "is never taken (the messages loop until an agent answers)",
                      ident)
        cond_index = self.indexes[ident][0]
        for i, cond in zip(cond_index, action.conditions):
            if cond.operator != "Equals" or cond.operands != [INTERRUPTED]:
                self.error(f"{path}.Transitions.Conditions[{i}].Condition",
                           f"a {LOOP_PROMPTS} condition is Equals [\"{INTERRUPTED}\"], found {cond.operator} "
                           f"{json.dumps(cond.operands)}", ident)
        if "ContinueMessagingDuringInterrupt" in params and flag(params["ContinueMessagingDuringInterrupt"]) is None:
            self.error(f"{path}.Parameters.ContinueMessagingDuringInterrupt",
                       f'ContinueMessagingDuringInterrupt must be "true" or "false", found '
                       f"{kind(params['ContinueMessagingDuringInterrupt'])}", ident)

    def check_loop_message(self, where: str, ident: str, message: object) -> None:
        """One entry of Messages: exactly one of Text, SSML or PromptId, checked as a prompt is."""
        if not isinstance(message, dict):
            self.error(where, f"a message must be an object with Text, SSML or PromptId, found {kind(message)}", ident)
            return
        if "Media" in message:
            self.error(f"{where}.Media", "Media (S3 audio) messages are not supported here; use PromptId with a "
                                         "local WAV file", ident)
            return
        for key in message:
            if key not in MESSAGE_KEYS:
                self.warn(f"{where}{key_path(key)}", f"a message has no {key!r}; it is ignored", ident)
        present = [k for k in PROMPT_PARAMETERS if k in message]
        if len(present) != 1:
            found = ", ".join(present) or "none"
            self.error(where, f"a message needs exactly one of Text, SSML or PromptId, found {found}", ident)
            return
        key = present[0]
        value = message[key]
        if not isinstance(value, str) or not value.strip():
            self.error(f"{where}.{key}", f"{key} must be non-empty text, found {kind(value)}", ident)
        elif key == "PromptId":
            self.check_prompt_file(f"{where}.{key}", ident, value)
        else:
            if key == "SSML" and value.lstrip().startswith("<"):
                try:
                    ET.fromstring(value)
                except ET.ParseError as exc:
                    self.error(f"{where}.{key}", f"SSML is not well-formed XML: {exc}", ident)
                    return
            self.check_references(f"{where}.{key}", ident, value)


class Actions:
    def extra_time_MessageParticipantIteratively(self, action: Action) -> float:
        seconds = interrupt_seconds(action.parameters)
        return UNINTERRUPTED_SECONDS if seconds is None else seconds

    def _loop_positions(self) -> dict[tuple[str, str], tuple[int, int]]:
        positions = self.__dict__.get("_loop_prompt_positions")
        if positions is None:
            positions = self.__dict__["_loop_prompt_positions"] = {}
        return positions

    async def do_MessageParticipantIteratively(self, action: Action) -> Go:
        if self.channel != "VOICE":
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                      f"{LOOP_PROMPTS} plays on voice calls only, not on the {self.channel} channel")
        params = action.parameters
        messages = [m for m in params.get("Messages", []) if isinstance(m, dict)]
        every = interrupt_seconds(params)
        resume = flag(params.get("ContinueMessagingDuringInterrupt", "false")) is True
        if not messages:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), "no messages to play")
        key = (self.flow.source, action.identifier)
        index, offset = self._loop_positions().pop(key, (0, 0)) if resume else (0, 0)
        deadline = self.clock.monotonic() + (every if every is not None else UNINTERRUPTED_SECONDS)
        rendered: dict[int, np.ndarray | None] = {}
        played = 0
        round_start = self.clock.monotonic()
        while (remaining := deadline - self.clock.monotonic()) > EARLY:
            i = index % len(messages)
            if i not in rendered:
                rendered[i] = await self.render(messages[i])
            samples = rendered[i]
            if samples is not None and offset < len(samples):
                piece = samples[offset:offset + math.ceil(remaining * SAMPLE_RATE)]
                began = self.clock.monotonic()
                if not await self._play_for(piece, remaining):  # the interrupt came mid-message
                    offset += min(max(round((self.clock.monotonic() - began) * SAMPLE_RATE), 0), len(piece))
                    break
                offset += len(piece)
                if offset < len(samples):  # played up to the interrupt
                    break
                played += 1
            index, offset = index + 1, 0
            if index % len(messages) == 0:
                if self.clock.monotonic() <= round_start:  # a round that took no time: no audio to play
                    if every is None and len(rendered) == len(messages) and all(v is None for v in rendered.values()):
                        return Go("NoMatchingError", action.errors.get("NoMatchingError"), "every message is empty")
                    await self.clock.sleep(min(MIN_ROUND_SECONDS, max(deadline - self.clock.monotonic(), 0.0)))
                round_start = self.clock.monotonic()
        if every is None:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                      f"played for {UNINTERRUPTED_SECONDS:g} s, the longest a loop without interrupt plays")
        if resume:
            self._loop_positions()[key] = (index % len(messages), offset)
        target = next((c.next_action for c in action.conditions
                       if c.operator == "Equals" and INTERRUPTED in c.operands), None)
        return Go(f"condition:{INTERRUPTED}", target,
                  f"interrupted after {every:g} s ({played} message{'s' if played != 1 else ''} played in full)")

    async def _play_for(self, samples: np.ndarray, seconds: float) -> bool:
        """Play `samples`, stopped after `seconds` on the flow's clock; True when they played to the end."""
        play = asyncio.ensure_future(self.contact.play(samples, interruptible=False))
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({play, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (play, timer):
                if not task.done():
                    task.cancel()
            await asyncio.gather(play, timer, return_exceptions=True)
        if play.cancelled():
            return False
        play.result()  # CallerHungUp, or the contact's failure
        return True
