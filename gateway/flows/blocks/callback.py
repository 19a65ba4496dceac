"""Queued callback: CreateCallbackContact (the callback tab of Connect's "Transfer to queue" block).

The block leaves a CALLBACK contact in a queue (QueueId, else the working queue) for the contact's
callback number (UpdateContactCallbackNumber, else the caller's number). It waits
InitialCallDelaySeconds before it is queued; once an agent accepts it, the gateway dials the number
on a line and bridges the agent; a busy or unanswered attempt is tried again RetryDelaySeconds later.
The flow goes on at NextAction (typically a goodbye and DisconnectParticipant); a caller who was
waiting in the queue leaves it, since the callback keeps their place.

MaximumConnectionAttempts is read as the designer writes it: the number of retries after the first
attempt ("Maximum number of retries"; 0 = one attempt, 1 = two). Real exports hold "0", which the
flow language's reference (attempts, > 0) would refuse. ContactFlowId (an outbound whisper flow) is
accepted and ignored, with a warning.

The contact does it through `create_callback` (docs/flows.md, "Callbacks"):
    def create_callback(self, *, queue_ref: str | None, initial_delay: float, retries: int,
                        retry_delay: float) -> str     (the callback's contact id; LookupError says why not)

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.flows.model import REFERENCE_RE, Action
from gateway.flows.runtime import Go
from gateway.flows.values import key_path, kind

TYPE = "CreateCallbackContact"
MAX_DELAY_SECONDS = 259_200          # three days, Connect's limit for both delays
MAX_RETRIES = 20                     # a gateway's modem lines: more attempts than this help nobody
PARAMETERS = ("QueueId", "AgentId", "InitialCallDelaySeconds", "MaximumConnectionAttempts", "RetryDelaySeconds",
              "ContactFlowId")
_LIMITS = {"InitialCallDelaySeconds": (1, MAX_DELAY_SECONDS), "MaximumConnectionAttempts": (0, MAX_RETRIES),
           "RetryDelaySeconds": (1, MAX_DELAY_SECONDS)}

ERRORS = {
    TYPE: {"NoMatchingError"},
}
NEEDS_NEXT_ACTION = {TYPE}


@dataclass(frozen=True)
class CallbackOptions:
    initial_delay: float
    retries: int          # attempts after the first
    retry_delay: float


def whole_number(value: object) -> int | None:
    """An integer written as a JSON number or as text ("600"); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        return int(value) if value.isdigit() else None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def callback_options(params: dict) -> CallbackOptions:
    """The delays and retries of a (validated) action."""
    values = {key: whole_number(params.get(key)) for key in _LIMITS}
    return CallbackOptions(float(values["InitialCallDelaySeconds"] or 1), values["MaximumConnectionAttempts"] or 0,
                           float(values["RetryDelaySeconds"] or 1))


class Checks:
    def check_CreateCallbackContact(self, action: Action, path: str, ident: str, params: dict) -> None:
        where = f"{path}.Parameters"
        if "AgentId" in params:
            self.error(f"{where}.AgentId", "agent queues (AgentId) are not supported here; give QueueId or leave "
                                           "it out (the working queue)", ident)
        if "QueueId" in params:
            queue = params["QueueId"]
            if not isinstance(queue, str) or not queue.strip():
                self.error(f"{where}.QueueId", f"QueueId must be a queue id, name, ARN or one reference, found "
                                               f"{kind(queue)}", ident)
            else:
                self.check_references(f"{where}.QueueId", ident, queue)
        for key, (low, high) in _LIMITS.items():
            if key not in params:
                self.error(where, f"missing {key} (a whole number of {'retries' if low == 0 else 'seconds'}, "
                                  f"{low}-{high})", ident)
                continue
            value = params[key]
            number = whole_number(value)
            if isinstance(value, str) and REFERENCE_RE.search(value):
                self.error(f"{where}.{key}", f"{key} must be given statically, found the reference {value!r}", ident)
            elif number is None or not low <= number <= high:
                self.error(f"{where}.{key}", f"{key} must be a whole number {low}-{high}, found {json.dumps(value)}",
                           ident)
        if "ContactFlowId" in params:
            self.warn(f"{where}.ContactFlowId", "outbound whisper flows are not run here: the agent hears the "
                                                "customer as soon as they answer", ident)
        for key in params:
            if key not in PARAMETERS:
                self.warn(f"{where}{key_path(key)}", f"{TYPE} has no parameter {key!r}; it is ignored (known: "
                                                     f"{', '.join(PARAMETERS)})", ident)


class Actions:
    async def do_CreateCallbackContact(self, action: Action) -> Go:
        create = getattr(self.contact, "create_callback", None)
        if self.channel != "VOICE" or create is None:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                      f"no queued callbacks on the {self.channel} channel" if self.channel != "VOICE"
                      else "this contact cannot leave a queued callback")
        queue_ref = self.resolve(str(action.parameters["QueueId"])) if "QueueId" in action.parameters else None
        options = callback_options(action.parameters)
        try:
            contact_id = create(queue_ref=queue_ref or None, initial_delay=options.initial_delay,
                                retries=options.retries, retry_delay=options.retry_delay)
        except LookupError as exc:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), str(exc.args[0] if exc.args else exc))
        return Go("next", action.next_action, f"callback {contact_id}")
