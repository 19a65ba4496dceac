"""Rehearse a flow without a phone: the real interpreter runs against a scripted caller.

The caller presses the given digits in order (an empty entry waits out the input time limit), and a
caller who has run out of digits stays silent until the flow has timed out on them
SILENT_TIMEOUTS times, then hangs up, so a menu that loops on timeouts still ends. Time is a
ManualClock set to the rehearsal's date, moved on by each prompt's length and each timeout, so
hours of operation and waits behave as they would at that moment, instantly. Prompts are not
synthesised; the text (or the file) each would play is logged instead.

The gateway around the flow is a `Setting` (from callgate.toml with `--config` and the command's flags):
hours of operation, queues, queue metrics (zero unless given), and webhooks, which never leave the
board unless asked: each gets the canned reply of `--webhook-reply`, or with `--call-webhooks` a real
POST to its configured URL, and otherwise fails saying so. SMS are logged, not sent. A transfer to a
phone number is logged as dialled on a free line; the number answers, talks TALK_SECONDS and hangs up
first, unless `transfer_outcome` says it is busy or does not answer.

A caller queued with a customer queue flow set (the CustomerQueue hook) then hears that flow: the
rehearsal shows its first rounds, marked with the hook, until it ends or one of its actions has run
QUEUE_FLOW_ROUNDS times (a waiting caller does not hang up for not pressing keys). The caller's position
in the queue is 1 and its estimated wait 0 unless given (--metric PositionInQueue=3 ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gateway.clock import ManualClock
from gateway.flows.blocks.control import DISCONNECT_HOOK
from gateway.flows.customer_queue import QUEUE_HOOK, queue_flow_ref, run_queue_flow
from gateway.flows.hooks import RUNS_AFTER, run_disconnect_flow
from gateway.flows.interpreter import CallerHungUp, FlowResult, Step, run_flow
from gateway.flows.model import Flow
from gateway.flows.services import FlowServices
from gateway.flows.webhook import Post, Webhooks
from gateway.media.voicemail import VoicemailResult

WORDS_PER_SECOND = 2.7  # espeak-ng at 160 wpm, for a prompt's simulated length
SILENT_TIMEOUTS = 3
FILE_PROMPT_SECONDS = 3.0
MESSAGE_SECONDS = 10.0  # the message a rehearsal caller leaves at a voicemail block
QUEUE_FLOW_ROUNDS = 3   # the customer queue flow is shown until one of its actions has run this often
QUEUE_FLOW_STEPS = 60   # ... or this many steps
TALK_SECONDS = 60.0     # how long a rehearsal caller talks to the number a transfer dials
TRANSFER_OUTCOMES = {"answered": "connected_then_far_end_hung_up", "busy": "busy", "no_answer": "no_answer"}


@dataclass
class Setting:
    """The gateway a rehearsal imagines around the flow."""
    hours: Mapping = field(default_factory=dict)              # [[hours]] name -> HoursOfOperation
    queue_hours: Mapping[str, str] = field(default_factory=dict)
    resolve_queue: Callable[[str], tuple[str, str] | None] | None = None  # queue ref -> (id, name); None: any
    metrics: dict[str, float] = field(default_factory=dict)   # CheckMetricData's MetricType -> value
    webhooks: Mapping[str, str] = field(default_factory=dict)  # [webhooks] name -> URL
    webhook_reply: bytes | None = None                        # every webhook replies this (HTTP 200)
    webhook_post: Post | None = None                          # or: really POST to the URL with this


METRIC_NAMES = ("NumberOfContactsInQueue", "OldestContactInQueueAgeSeconds", "NumberOfAgentsAvailable",
                "NumberOfAgentsStaffed", "NumberOfAgentsOnline", "NumberOfAgentsOnContact",
                "NumberOfAgentsAfterContactWork", "NumberOfAgentsMissed", "PositionInQueue",
                "EstimatedWaitSeconds")
METRIC_DEFAULTS = {"PositionInQueue": 1}  # the others are 0 unless given


@dataclass
class _Reply:
    status: int
    body: bytes


class _AnyName(dict):
    """Webhook targets for canned replies: every function name has one."""

    def get(self, key, default=None):
        return super().get(key, f"rehearsal:{key}")


@dataclass
class Event:
    kind: str        # "prompt" | "digit" | "timeout" | "queue" | "voicemail" | "hangup" | "note" | "webhook" | "sms"
                     # | "transfer"
    text: str
    at: float


@dataclass
class Rehearsal:
    result: FlowResult
    steps: list[tuple[Step, list[Event]]]
    ending: str
    attributes: dict[str, str]
    queue: str | None
    digits_left: list[str]
    hooks: dict[int, str] = field(default_factory=dict)  # index in steps -> the hook whose flow ran it
    queue_flow: FlowResult | None = None                 # the customer queue flow's run, when it ran
    tags: dict[str, str] = field(default_factory=dict)   # TagContact's tags on the contact

    def as_dict(self) -> dict:
        return {
            "outcome": self.result.outcome, "ending": self.ending, "error": self.result.error,
            "queue": self.queue, "attributes": self.attributes, "tags": self.tags, "digits_unused": self.digits_left,
            "steps": [{"id": s.identifier, "type": s.type, "branch": s.branch, "detail": s.detail, "at": s.at,
                       **({"flow": s.flow} if s.flow is not None else {}),
                       **({"hook": self.hooks[n]} if n in self.hooks else {}),
                       "events": [{"kind": e.kind, "text": e.text, "at": e.at} for e in events]}
                      for n, (s, events) in enumerate(self.steps)],
            **({"queue_flow": {"outcome": self.queue_flow.outcome, "error": self.queue_flow.error}}
               if self.queue_flow is not None else {}),
        }


class _Prompts:
    """A PromptSource that remembers what it was asked to say and returns silence of a fitting length."""

    def __init__(self, log: list[Event], clock: ManualClock, base_dir: Path) -> None:
        self._log, self._clock, self._base = log, clock, base_dir
        self.voice = "en-us"

    async def text(self, text: str, voice: str = "en-us", *args, **kwargs) -> np.ndarray:
        words = len(text.split())
        self._log.append(Event("prompt", f"says ({voice}): {' '.join(text.split())}", self._clock.time()))
        return np.zeros(max(1, round(words / WORDS_PER_SECOND * 8000)), dtype=np.int16)

    def file(self, path) -> np.ndarray:
        p = Path(path)
        missing = "" if p.exists() else " (file not found)"
        self._log.append(Event("prompt", f"plays file {p}{missing}", self._clock.time()))
        return np.zeros(round(FILE_PROMPT_SECONDS * 8000), dtype=np.int16)


@dataclass
class SimulatedCaller:
    """The FlowContact of a rehearsal."""
    digits: list[str]
    customer_number: str
    system_number: str
    clock: ManualClock
    log: list[Event]
    known_queues: set[str] | None = None
    full_queues: set[str] = field(default_factory=set)
    attributes: dict[str, str] = field(default_factory=dict)
    services: FlowServices | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    resolve_queue: Callable[[str], tuple[str, str] | None] | None = None
    queue_id: str | None = None
    contact_id: str = "simulated-contact"
    queue_name: str | None = None
    channel: str = "VOICE"
    event_hooks: dict[str, str] = field(default_factory=dict)
    callback_number: str | None = None
    transfer_outcome: str = "answered"       # what a dialled number does: a key of TRANSFER_OUTCOMES
    transferred_to: str | None = None
    in_queue: bool = False      # waiting: silence does not make the caller hang up
    tags: dict[str, str] = field(default_factory=dict)
    hang_up_after: int | None = None   # the caller hangs up at this interaction (1 = the first prompt, key, ...)
    interactions: int = 0
    _silences: int = 0

    def _interaction(self, what: str) -> None:
        """Every time the flow waits on the caller; a rehearsal can make the caller hang up there."""
        self.interactions += 1
        if self.hang_up_after is not None and self.interactions >= self.hang_up_after:
            self.log.append(Event("hangup", f"caller hangs up during {what}", self.clock.time()))
            raise CallerHungUp("caller hung up")

    def add_tags(self, tags: dict[str, str]) -> None:
        self.tags.update(tags)
        self.log.append(Event("note", f"contact tagged {', '.join(f'{k}={v}' for k, v in tags.items())}",
                              self.clock.time()))

    def set_event_hook(self, kind: str, flow_ref: str) -> None:
        self.event_hooks[kind] = flow_ref
        self.log.append(Event("note", f"{kind} flow set to {flow_ref}", self.clock.time()))

    async def play(self, samples: np.ndarray, *, interruptible: bool) -> str | None:
        self._interaction("a prompt")
        if interruptible and self.digits and self.digits[0] != "":
            digit = self.digits.pop(0)
            self.log.append(Event("digit", f"caller presses {digit} during the prompt", self.clock.time()))
            return digit
        self.clock.advance(samples.size / 8000)
        return None

    async def get_digit(self, timeout: float) -> str | None:
        self._interaction("the wait for a key")
        if self.digits:
            digit = self.digits.pop(0)
            if digit != "":
                self.log.append(Event("digit", f"caller presses {digit}", self.clock.time()))
                self._silences = 0
                return digit
        elif self._silences >= SILENT_TIMEOUTS and not self.in_queue:
            self.log.append(Event("hangup", "caller hangs up (no more digits to press)", self.clock.time()))
            raise CallerHungUp("caller hung up")
        self._silences += 1
        self.clock.advance(timeout)
        self.log.append(Event("timeout", f"no key within {timeout:g} s", self.clock.time()))
        return None

    def set_queue(self, queue_ref: str) -> bool:
        if self.resolve_queue is not None:
            found = self.resolve_queue(queue_ref)
            if found is None:
                self.log.append(Event("note", f"queue {queue_ref!r} is not configured", self.clock.time()))
                return False
            self.queue_id, self.queue_name = found
            return True
        if self.known_queues is not None and queue_ref not in self.known_queues:
            self.log.append(Event("note", f"queue {queue_ref!r} is not configured", self.clock.time()))
            return False
        self.queue_name = queue_ref
        return True

    async def transfer_to_queue(self) -> str:
        self._interaction("the transfer to a queue")
        if self.queue_name is None:
            return "no_queue"
        if self.queue_name in self.full_queues:
            return "at_capacity"
        moved = "moves to" if self.in_queue else "waits in"
        self.log.append(Event("queue", f"caller {moved} queue {self.queue_name}", self.clock.time()))
        self.in_queue = True
        return "queued"

    async def disconnect(self) -> None:
        self.log.append(Event("hangup", "flow hangs up", self.clock.time()))

    def create_callback(self, *, queue_ref: str | None, initial_delay: float, retries: int,
                        retry_delay: float) -> str:
        """CreateCallbackContact: a callback is left (nothing is dialled in a rehearsal)."""
        queue = self.queue_name
        if queue_ref:
            found = self.resolve_queue(queue_ref) if self.resolve_queue is not None else (queue_ref, queue_ref)
            if found is None or (self.known_queues is not None and self.resolve_queue is None
                                 and queue_ref not in self.known_queues):
                raise LookupError(f"no queue {queue_ref!r} is configured")
            queue = found[1]
        if queue is None:
            raise LookupError("no working queue (set one with UpdateContactTargetQueue first)")
        number = self.callback_number or self.customer_number
        if not number:
            raise LookupError("no number to call back: the caller's number is withheld and no callback number is set")
        if self.in_queue:
            self.in_queue = False
            self.log.append(Event("queue", f"caller leaves queue {self.queue_name}: a callback keeps the place",
                                  self.clock.time()))
        self.log.append(Event("queue", f"a callback to {number} will wait in queue {queue} once the call has ended "
                                       f"and {initial_delay:g} s have passed ({retries + 1} attempt(s), "
                                       f"{retry_delay:g} s apart)", self.clock.time()))
        return "simulated-callback"

    async def record_voicemail(self, *, max_seconds: float, silence_seconds: float, stop_keys: str = "#") -> VoicemailResult:
        self._interaction("the message")
        if self.in_queue:
            self.in_queue = False
            self.log.append(Event("queue", f"caller leaves queue {self.queue_name} to leave a message",
                                  self.clock.time()))
        seconds = min(MESSAGE_SECONDS, max_seconds)
        self.clock.advance(seconds + silence_seconds)
        self.log.append(Event("voicemail", f"caller leaves a {seconds:g} s message (recording stops after "
                              f"{silence_seconds:g} s of silence, {' or '.join(stop_keys) or 'no key'}, "
                              f"or {max_seconds:g} s)", self.clock.time()))
        return VoicemailResult("recorded", "silence", Path("simulated-message.wav"), seconds, seconds, seconds)

    def queue_metrics(self, queue_ref: str | None) -> dict:
        queue_id, name = self.queue_id or self.queue_name, self.queue_name
        if queue_ref:
            found = self.resolve_queue(queue_ref) if self.resolve_queue is not None else (queue_ref, queue_ref)
            if found is None:
                raise LookupError(f"no queue {queue_ref!r} is configured")
            queue_id, name = found
        if queue_id is None:
            raise LookupError("no working queue (set one with UpdateContactTargetQueue first)")
        values = {m: self.metrics.get(m, METRIC_DEFAULTS.get(m, 0)) for m in METRIC_NAMES}
        values["EstimatedWaitMinutes"] = -(-values["EstimatedWaitSeconds"] // 60)
        shown = ", ".join(f"{k}={v:g}" for k, v in values.items() if k in self.metrics) or "all 0 (set with --metric)"
        self.log.append(Event("note", f"metrics of queue {name}: {shown}", self.clock.time()))
        return {"QueueId": queue_id, "QueueName": name, **values}

    def set_routing(self, *, priority: int | None = None, age_adjustment: float | None = None) -> None:
        said = f"priority {priority}" if priority is not None else f"routing age {age_adjustment:+g} s"
        self.log.append(Event("note", f"caller's queue {said}", self.clock.time()))

    async def send_sms(self, number: str, text: str) -> None:
        self.log.append(Event("sms", f"SMS to {number}: {text}", self.clock.time()))

    async def transfer_to_number(self, number: str, *, timeout: float, dtmf: str = "",
                                 caller_id: dict[str, str] | None = None, resume_after: bool = True) -> str:
        self._interaction("the transfer to a number")
        self.transferred_to = number
        self.log.append(Event("transfer", f"dials {number} on a free line (rings up to {timeout:g} s)",
                              self.clock.time()))
        if caller_id:
            self.log.append(Event("note", f"caller ID {caller_id} is not presented: a modem line shows its SIM's "
                                          "number", self.clock.time()))
        if self.transfer_outcome == "busy":
            self.clock.advance(2.0)
            self.log.append(Event("transfer", f"{number} is busy", self.clock.time()))
            return "busy"
        if self.transfer_outcome == "no_answer":
            self.clock.advance(timeout)
            self.log.append(Event("transfer", f"{number} does not answer within {timeout:g} s", self.clock.time()))
            return "no_answer"
        self.clock.advance(5.0)
        said = f"; sends DTMF {dtmf} (a comma waits 750 ms)" if dtmf else ""
        self.log.append(Event("transfer", f"{number} answers{said}; caller and {number} talk", self.clock.time()))
        self.clock.advance(TALK_SECONDS)
        then = "the flow resumes" if resume_after else "the call is over"
        self.log.append(Event("transfer", f"{number} hangs up after {TALK_SECONDS:g} s; {then}", self.clock.time()))
        return TRANSFER_OUTCOMES["answered"]


def _services(setting: Setting, log: list[Event], clock: ManualClock) -> FlowServices:
    """Hours and queue hours as given; webhooks that reply from the setting and log each call."""
    async def post(url: str, event: dict, *, timeout: float):
        params = json.dumps(event["Details"]["Parameters"], ensure_ascii=False)
        if setting.webhook_reply is not None:
            log.append(Event("webhook", f"POST {url} with {params}: canned reply", clock.time()))
            return _Reply(200, setting.webhook_reply)
        if setting.webhook_post is None:
            raise RuntimeError("rehearsals do not call webhooks: give --webhook-reply FILE, or --call-webhooks "
                               "with --config")
        log.append(Event("webhook", f"POST {url} with {params}", clock.time()))
        return await setting.webhook_post(url, event, timeout=timeout)

    targets = _AnyName(setting.webhooks) if setting.webhook_reply is not None else dict(setting.webhooks)
    return FlowServices(setting.hours, setting.queue_hours, Webhooks(targets, post))


async def rehearse(flow: Flow, *, caller: str = "+15555550100", system_number: str = "+15555550000",
                   setting: Setting | None = None,
                   digits: list[str] | None = None, at: float | None = None,
                   attributes: dict[str, str] | None = None, queues: set[str] | None = None,
                   full_queues: set[str] | None = None, library=None, transfer_outcome: str = "answered",
                   hang_up_after: int | None = None) -> Rehearsal:
    """`library` (a FlowSet) holds the flows TransferToFlow and the disconnect flow may name;
    `transfer_outcome` (answered | busy | no_answer) is what a number a transfer dials does."""
    if transfer_outcome not in TRANSFER_OUTCOMES:
        raise ValueError(f"transfer_outcome {transfer_outcome!r}: use one of {', '.join(TRANSFER_OUTCOMES)}")
    clock = ManualClock(start=at) if at is not None else ManualClock()
    log: list[Event] = []
    contact = SimulatedCaller(list(digits or []), caller, system_number, clock, log, queues,
                              set(full_queues or ()), dict(attributes or {}))
    setting = setting or Setting()
    contact.services, contact.metrics = _services(setting, log, clock), dict(setting.metrics)
    contact.resolve_queue = setting.resolve_queue
    contact.transfer_outcome = transfer_outcome
    contact.hang_up_after = hang_up_after
    steps: list[tuple[Step, list[Event]]] = []
    seen = 0

    def on_step(step: Step) -> None:
        nonlocal seen
        steps.append((step, log[seen:]))
        seen = len(log)

    prompts = _Prompts(log, clock, flow.base_dir)
    result = await run_flow(flow, contact, prompts, clock=clock, on_step=on_step, library=library)
    hooks: dict[int, str] = {}
    queue_flow = None
    if result.outcome == "queued" and queue_flow_ref(contact) is not None:
        first = len(steps)
        queue_flow = await _rehearse_queue_flow(contact, library, prompts, clock, log, on_step)
        hooks = {n: QUEUE_HOOK for n in range(first, len(steps))}
        if steps and len(log) > seen:
            steps[-1] = (steps[-1][0], steps[-1][1] + log[seen:])
            seen = len(log)
    if result.outcome in RUNS_AFTER and contact.event_hooks.get(DISCONNECT_HOOK):  # the caller is gone
        log.append(Event("note", f"the call is over: disconnect flow {contact.event_hooks[DISCONNECT_HOOK]} runs "
                                 "(no audio)", clock.time()))
        hook = await run_disconnect_flow(contact, library, clock=clock, on_step=on_step)
        if hook is not None and hook.outcome == "error":
            log.append(Event("note", f"disconnect flow: {hook.error}", clock.time()))
            if steps:
                steps[-1] = (steps[-1][0], steps[-1][1] + log[seen:])
    return Rehearsal(result, steps, _ending(result, contact, queue_flow), contact.attributes, contact.queue_name,
                     contact.digits, hooks, queue_flow, contact.tags)


class _EnoughRounds(Exception):
    """The rehearsal has shown enough of a customer queue flow (it would go on while the caller waits)."""


async def _rehearse_queue_flow(contact: SimulatedCaller, library, prompts: _Prompts, clock: ManualClock,
                               log: list[Event], on_step) -> FlowResult:
    """The first rounds of the contact's customer queue flow, as the queued caller hears them."""
    log.append(Event("note", f"while the caller waits: customer queue flow {queue_flow_ref(contact)} runs "
                             f"({QUEUE_HOOK})", clock.time()))
    runs: dict[tuple[str | None, str], int] = {}
    steps: list[Step] = []

    def step(s: Step) -> None:
        on_step(s)
        steps.append(s)
        runs[(s.flow, s.identifier)] = times = runs.get((s.flow, s.identifier), 0) + 1
        if times >= QUEUE_FLOW_ROUNDS or len(steps) >= QUEUE_FLOW_STEPS:
            raise _EnoughRounds(f"'{s.identifier}' ran {times} times" if times >= QUEUE_FLOW_ROUNDS
                                else f"{len(steps)} steps")

    try:
        result = await run_queue_flow(contact, library, prompts, clock=clock, on_step=step)
    except _EnoughRounds as enough:
        log.append(Event("note", f"the rehearsal stops the customer queue flow here ({enough}); it goes on "
                                 "while the caller waits", clock.time()))
        return FlowResult("queued", steps)
    if result is None:
        return FlowResult("queued", steps)
    if result.outcome == "error":
        log.append(Event("note", f"customer queue flow: {result.error}; the caller keeps waiting", clock.time()))
    elif result.outcome == "ended":
        then = "the caller keeps waiting with hold music" if contact.in_queue else "the call is hung up"
        log.append(Event("note", f"customer queue flow ended: {then}", clock.time()))
    return result


def _ending(result: FlowResult, contact: SimulatedCaller, queue_flow: FlowResult | None = None) -> str:
    if result.outcome == "queued" and queue_flow is not None:
        if queue_flow.outcome in ("hung_up", "disconnected", "voicemail") or not contact.in_queue:
            left = _ending(queue_flow, contact) if queue_flow.outcome != "ended" else "the call is hung up"
            return f"caller left queue {contact.queue_name} in the customer queue flow: {left}"
        return f"caller waits in queue {contact.queue_name} for an agent, hearing the customer queue flow"
    if result.outcome == "queued":
        return f"caller waits in queue {contact.queue_name} for an agent"
    if result.outcome == "hung_up":
        return "caller hung up"
    if result.outcome == "disconnected":
        return "flow hung up"
    if result.outcome == "voicemail":
        return "caller left a voicemail; the call is hung up"
    if result.outcome == "transferred":
        return f"caller was transferred to {contact.transferred_to}; the call ended when that side hung up"
    if result.outcome == "error":
        return f"flow stopped with an error: {result.error}"
    return f"flow ended ({result.outcome})"
