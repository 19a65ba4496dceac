"""What flows and their block modules share at run time: the contact a flow talks to, the steps it
takes, and the two results of an action (go on along a branch, or end the flow)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

ACTION_TIMEOUT = 120.0  # seconds any one action may take (a GetParticipantInput adds its input limit)
DEFAULT_INPUT_TIME_LIMIT = 5.0  # Connect's default for GetParticipantInput


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
    # Contacts of a gateway with hours and webhooks have (CheckHoursOfOperation, InvokeLambdaFunction; absent:
    # their NoMatchingError branch):
    #     services: gateway.flows.services.FlowServices   (and queue_id: str | None, the working queue's id)
    # Contacts that can wait in a queue have (CheckMetricData, GetMetricData; absent: NoMatchingError):
    #     def queue_metrics(self, queue_ref: str | None) -> dict   (None: the working queue; keys are
    #         CheckMetricData's MetricType names plus QueueId, QueueName; LookupError names an unknown queue;
    #         optional: PositionInQueue (1 = served next) of this contact when it waits there,
    #         EstimatedWaitSeconds and EstimatedWaitMinutes, for GetMetricData's $.Metrics.Queue.Position etc.)
    #     def set_routing(self, *, priority: int | None, age_adjustment: float | None) -> None
    #         (UpdateContactRoutingBehavior; absent: the action does nothing)
    # Contacts on a line that sends SMS have (Callgate.SendSms; absent: its NoMatchingError branch):
    #     async def send_sms(self, number: str, text: str) -> object   (raises with the reason it failed)
    # Calls that can leave a voicemail also have (Callgate.RecordVoicemail; absent: its NoMatchingError branch):
    #     async def record_voicemail(self, *, max_seconds: float, silence_seconds: float, stop_keys: str)
    #         -> gateway.media.voicemail.VoicemailResult   (raises CallerHungUp after keeping the message)
    # Calls that can dial out have (TransferParticipantToThirdParty; absent: its NoMatchingError branch):
    #     async def transfer_to_number(self, number: str, *, timeout: float, dtmf: str,
    #                                  caller_id: dict[str, str] | None, resume_after: bool) -> str
    #         dials `number` on a free line (ringing at most `timeout` s), sends `dtmf` once answered (a comma
    #         waits 750 ms), bridges the caller to it until one side hangs up; with resume_after False the
    #         caller is hung up after the third party. Returns "connected_then_far_end_hung_up" |
    #         "connected_then_caller_hung_up" | "busy" | "no_answer" | "no_free_line" | "failed: <why>";
    #         raises CallerHungUp when the caller hangs up before the third party answered
    # Contacts that keep event hooks (UpdateContactEventHooks; absent: the action succeeds and keeps nothing):
    #     def set_event_hook(self, kind: str, flow_ref: str) -> None
    #         kind: "CustomerRemaining" (the disconnect flow), "CustomerQueue", ...; flow_ref: as the flow names
    #         it (file stem, Metadata name, id or ARN); look it up with FlowLibrary/FlowSet.get(flow_ref)
    #     event_hooks: dict[str, str]          (kind -> flow_ref, as set so far)
    # UpdateContactCallbackNumber sets `contact.callback_number` (str, E.164 or national digits).
    # Contacts that keep tags have (TagContact; absent: the action succeeds and the tags are not kept):
    #     def add_tags(self, tags: dict[str, str]) -> None   (joins the contact's tags and its contact record)
    # Contacts that can wait in a queue say whether they do (DequeueContactAndTransferToQueue; absent: not waiting):
    #     in_queue: bool
    async def get_digit(self, timeout: float) -> str | None: ...
    def set_queue(self, queue_ref: str) -> bool: ...
    async def transfer_to_queue(self) -> str: ...
    # While the contact waits in a queue its customer queue flow (gateway/flows/customer_queue.py) runs against
    # it: transfer_to_queue then moves it to the working queue, and record_voicemail takes it out of the queue.
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
    flow: str | None = None  # the flow the action is in, once TransferToFlow has left the first one


@dataclass
class FlowResult:
    outcome: str  # "queued" | "disconnected" | "hung_up" | "ended" | "voicemail" | "transferred" | "error"
    path: list[Step] = field(default_factory=list)
    error: str | None = None

    def path_records(self) -> list[dict]:
        """The path as the contact record keeps it."""
        return [{"id": s.identifier, "type": s.type, "branch": s.branch, "at": s.at,
                 **({"flow": s.flow} if s.flow is not None else {})} for s in self.path]


@dataclass
class Go:
    branch: str
    target: str | None
    detail: str | None = None


@dataclass
class End:
    outcome: str
    detail: str | None = None
