"""Event-hook flows run by the gateway itself: the disconnect flow (Connect's CustomerRemaining hook).

When the caller hangs up during the flow, or the call ends after the flow queued them, the flow set
with UpdateContactEventHooks CustomerRemaining runs once for the same contact, with no audio: prompts
are skipped without being synthesised, waiting for a key or a queue ends it (the caller is gone),
while attributes, comparisons, loops, webhooks and transfers to other flows run as usual. It gets
DISCONNECT_FLOW_SECONDS in all; its steps go into the contact record marked with the hook.
"""

from __future__ import annotations

import asyncio

import numpy as np

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.flows.blocks.control import DISCONNECT_HOOK
from gateway.flows.interpreter import run_flow
from gateway.flows.runtime import CallerHungUp, FlowResult, Step

DISCONNECT_FLOW_SECONDS = 30.0
RUNS_AFTER = ("hung_up", "queued")
FORWARDED = frozenset({"services", "queue_id", "queue_metrics", "send_sms"})  # outcomes after which the call ends without the flow ending it


class _NoAudio:
    """A PromptSource for a call that is over: nothing is synthesised."""

    async def text(self, text: str, voice: str = "en-us", *args, **kwargs) -> np.ndarray:
        return np.zeros(1, dtype=np.int16)

    def file(self, path) -> np.ndarray:
        return np.zeros(1, dtype=np.int16)


class AfterDisconnect:
    """The contact as its disconnect flow sees it: same data and attributes, the caller gone."""

    def __init__(self, contact) -> None:
        self._contact = contact
        self.contact_id = contact.contact_id
        self.attributes = contact.attributes  # the same dict: what the flow sets reaches the record
        self.customer_number = contact.customer_number
        self.system_number = contact.system_number
        self.channel = getattr(contact, "channel", "VOICE")

    def __getattr__(self, name: str):
        if name in FORWARDED:  # what needs no caller: gateway services, queue figures, texting them
            return getattr(self._contact, name)
        raise AttributeError(name)

    @property
    def queue_name(self) -> str | None:
        return self._contact.queue_name

    @property
    def callback_number(self) -> str | None:
        return getattr(self._contact, "callback_number", None)

    @callback_number.setter
    def callback_number(self, number: str) -> None:
        self._contact.callback_number = number

    async def play(self, samples: np.ndarray, *, interruptible: bool) -> str | None:
        return None

    async def get_digit(self, timeout: float) -> str | None:
        raise CallerHungUp("the caller is gone (disconnect flow)")

    def set_queue(self, queue_ref: str) -> bool:
        return self._contact.set_queue(queue_ref)

    async def transfer_to_queue(self) -> str:
        raise CallerHungUp("the caller is gone (disconnect flow)")

    async def disconnect(self) -> None:
        return None


async def run_disconnect_flow(contact, library, *, after: FlowResult | None = None, clock: Clock = SYSTEM_CLOCK,
                              rng=None, seconds: float = DISCONNECT_FLOW_SECONDS, on_step=None) -> FlowResult | None:
    """Run the contact's disconnect flow (its CustomerRemaining hook) once the call is over; None when it
    has none, or when the flow `after` ended the call itself (hung up, ended, voicemail, error). A flow
    the library does not have, or one still running after `seconds`, ends as "error" with its steps so far."""
    ref = getattr(contact, "event_hooks", {}).get(DISCONNECT_HOOK)
    if not ref or (after is not None and after.outcome not in RUNS_AFTER):
        return None
    flow = library.get(ref) if library is not None else None
    if flow is None:
        why = library.problem(ref) if library is not None else None
        return FlowResult("error", [], why or f"disconnect flow '{ref}' not found")
    steps: list[Step] = []

    def step(s: Step) -> None:
        steps.append(s)
        if on_step is not None:
            on_step(s)

    try:
        async with asyncio.timeout(seconds):
            return await run_flow(flow, AfterDisconnect(contact), _NoAudio(), clock=clock, on_step=step,
                                  library=library, rng=rng)
    except TimeoutError:
        return FlowResult("error", steps, f"disconnect flow '{ref}' stopped after {seconds:g} s")


def hook_records(result: FlowResult, hook: str = DISCONNECT_HOOK) -> list[dict]:
    """A hook flow's path as the contact record keeps it: each step marked with the hook."""
    return [dict(r, hook=hook) for r in result.path_records()]
