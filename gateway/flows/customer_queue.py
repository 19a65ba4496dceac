"""The customer queue flow: the flow a caller hears while waiting in a queue (Connect's CustomerQueue hook).

A flow sets it with UpdateContactEventHooks {"CustomerQueue": <flow>} before TransferContactToQueue.
Once the caller is queued, that flow runs against the same contact: its prompts play over the hold
music (which fills the gaps while a block waits for a key or a webhook), keys work, attributes and
metrics are the contact's. It stops at once when an agent takes the call (the caller of this cancels
it) or the caller hangs up. EndFlowExecution ends it and the caller keeps waiting with hold music, as
in Connect; so does an error. A voicemail recorded from it has taken the caller out of the queue.
A TransferContactToQueue in it moves the caller to that queue and the (possibly new) customer queue
flow starts again, at most MAX_RUNS times in all. Its steps go into the contact record marked with
the hook.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.flows.interpreter import run_flow
from gateway.flows.runtime import FlowResult, PromptSource, Step

QUEUE_HOOK = "CustomerQueue"
MAX_RUNS = 5  # runs of customer queue flows for one wait (each move to another queue starts one)


def queue_flow_ref(contact) -> str | None:
    """The customer queue flow the contact has set, if any."""
    return getattr(contact, "event_hooks", {}).get(QUEUE_HOOK) or None


async def run_queue_flow(contact, library, prompts: PromptSource, *, clock: Clock = SYSTEM_CLOCK,
                         on_step: Callable[[Step], None] | None = None, rng=None) -> FlowResult | None:
    """Run the contact's customer queue flow while it waits; None when it has none. The result has the
    steps of every run and the outcome of the last: "ended" (EndFlowExecution), "hung_up", "disconnected",
    "voicemail", "queued" (moved MAX_RUNS times) or "error" (also when the library has no such flow)."""
    steps: list[Step] = []

    def step(s: Step) -> None:
        steps.append(s)
        if on_step is not None:
            on_step(s)

    result: FlowResult | None = None
    for _ in range(MAX_RUNS):
        ref = queue_flow_ref(contact)
        if ref is None:
            break
        flow = library.get(ref) if library is not None else None
        if flow is None:
            why = library.problem(ref) if library is not None else None
            return FlowResult("error", steps, why or f"customer queue flow '{ref}' not found")
        result = await run_flow(flow, contact, prompts, clock=clock, on_step=step, library=library, rng=rng)
        if result.outcome != "queued":
            break
    if result is None:
        return None
    return FlowResult(result.outcome, steps, result.error)


def queue_flow_records(steps: list[Step]) -> list[dict]:
    """A customer queue flow's steps as the contact record keeps them: each marked with the hook."""
    return [dict(r, hook=QUEUE_HOOK) for r in FlowResult("ended", list(steps)).path_records()]
