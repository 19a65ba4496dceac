"""One inbound contact's life on a line: answer, run the flow, wait in queue, talk to an agent, record.

A ContactSession is what the flow interpreter sees as its FlowContact. It owns the call's audio
on the gateway side: it gives the modem one outbound frame per tick (prompt, hold music or the
agent's voice), takes the caller's frames (to the recorder and, once bridged, to the agent), and
writes the contact record as the call moves along.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gateway.center.queues import WaitingContact
from gateway.center.records import CALLBACK_QUEUED_REASON
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.flows.blocks.third_party import CONNECTED_FAR_END_LEFT
from gateway.flows.customer_queue import queue_flow_records, queue_flow_ref, run_queue_flow
from gateway.flows.hooks import hook_records, run_disconnect_flow
from gateway.flows.interpreter import CallerHungUp, run_flow
from gateway.media.frames import FRAME_BYTES, SILENCE_FRAME, pcm_to_frames
from gateway.media.pacer import InboundBuffer
from gateway.media.recorder import CallRecorder, RecordingPolicy, downmix_to_mono
from gateway.media.tones import sine
from gateway.media.voicemail import (ERROR, HUNG_UP, KEY, MAX_LENGTH, VoicemailRecorder, VoicemailResult,
                                     VoicemailSettings)
from gateway.media.vad import Endpointer
from gateway.third_party_leg import CALLER_GONE

if TYPE_CHECKING:
    from gateway.api.audio_relay import AudioRelay
    from gateway.callbacks import Callbacks
    from gateway.center.records import ContactStore
    from gateway.center.router import Center
    from gateway.flows.model import Flow
    from gateway.flows.services import FlowServices
    from gateway.modem.line import Call, Line
    from gateway.third_party_leg import ThirdPartyLeg, TransferLines

log = logging.getLogger(__name__)

MAX_CONTACT_SECONDS = 4 * 3600   # a call the modem never reports as ended is hung up after this
VOICEMAIL_STALL_SECONDS = 2.0     # a message whose audio stops arriving ends this long after its maximum
QUEUE_FLOW_STOP_SECONDS = 2.0     # a cancelled customer queue flow has this long to stop


@functools.cache
def hold_music() -> list[bytes]:
    """A soft, looping two-note chime for callers waiting in queue (generated, no file needed)."""
    notes = [sine(f, 0.35, amplitude=0.08) for f in (523.25, 659.25, 783.99, 659.25)]
    gap = np.zeros(int(8000 * 0.9), dtype=np.int16)
    return pcm_to_frames(np.concatenate([*notes, gap]))



class ContactSession:
    def __init__(self, line: "Line", call: "Call", *, flow: "Flow", prompts, center: "Center",
                 store: "ContactStore", recording_dir: Path | None, system_number: str = "",
                 recording_mode: str = "stereo", queue_recording: dict[str, str | None] | None = None,
                 clock: Clock = SYSTEM_CLOCK, voicemail_dir: Path | None = None,
                 hold_music: Callable[[str | None], list[bytes] | None] | None = None,
                 library=None,
                 services: "FlowServices | None" = None) -> None:
        self.line, self.call = line, call
        self.contact_id = call.call_id
        self.customer_number = call.caller
        self.system_number = system_number
        self.attributes: dict[str, str] = {}
        self.queue_id: str | None = None
        self.queue_name: str | None = None
        self._flow, self._prompts, self._center, self._store = flow, prompts, center, store
        self._clock = clock
        self._recording_dir = recording_dir
        self._voicemail_dir = voicemail_dir
        self.audio_taps: list[Callable[[bytes], None]] = []   # see every caller frame (voicemail)
        self.recorder: CallRecorder | None = None
        self.recording_path: Path | None = None
        self.recording = RecordingPolicy(layout=recording_mode)
        self._queue_recording = dict(queue_recording or {})   # queue id -> "stereo" | "mono" | "off" | None
        self._digits: deque[str] = deque()
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()
        self.end_reason: str | None = None
        self._playback: deque[bytes] | None = None
        self._holding = False
        self._hold_pos = 0
        self._hold_music_for = hold_music        # queue id -> looped frames (None: the generated chime)
        self._hold_frames: list[bytes] | None = None
        self.library = library                   # the flows this call may run by reference (a FlowSet, fixed for the call)
        self.event_hooks: dict[str, str] = {}    # UpdateContactEventHooks: "CustomerRemaining" -> flow ref, ...
        self.callback_number: str | None = None  # UpdateContactCallbackNumber
        self.callback_id: str | None = None      # the CALLBACK contact CreateCallbackContact left (gateway/callbacks.py)
        self._waiting_since: float | None = None  # wall clock the caller joined a queue (a callback keeps the place)
        self.tags: dict[str, str] = {}           # TagContact, kept in the contact record
        self.services = services                 # hours and webhooks for the flow
        self.routing: dict[str, float] = {}       # the flow's queue priority / routing age for the Center
        self.in_queue = False                     # waiting in a Center queue (not yet taken, not left)
        self._flow_result = None                  # the line's flow's FlowResult, for the contact record
        self._queue_task: asyncio.Task | None = None   # the customer queue flow while the caller waits
        self._queue_steps: list = []              # its steps so far
        self._inbound = InboundBuffer()     # caller frames waiting to be paired with an outbound tick
        self._caller_speech = Endpointer()
        self.relay: "AudioRelay | None" = None
        self.agent_id: str | None = None
        self.counters = {"ticks": 0, "caller_underruns": 0, "caller_overruns": 0, "caller_speech_seconds": 0.0}
        self._store.upsert(self.contact_id, line_id=line.id, caller=call.caller, initiation_method="INBOUND",
                           initiated_at=call.ringing_at)

    # --- the call's life ------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._answer()
            result = None
            if not self._ended.is_set():
                result = await run_flow(self._flow, self, self._prompts, clock=self._clock, library=self.library)
                self._store.upsert(self.contact_id, flow_path=json.dumps(result.path_records()),
                                   attributes=json.dumps(self.attributes))
                if result.outcome == "error":
                    log.warning("contact %s: flow %s ended in error: %s", self.contact_id, self._flow.source, result.error)
                if result.outcome != "queued" and not self._ended.is_set():
                    await self.line.hangup("flow_disconnect" if result.outcome != "error" else "flow_error")
                self._flow_result = result
                if result.outcome == "queued":
                    self._start_queue_flow()
            try:
                async with asyncio.timeout(MAX_CONTACT_SECONDS):
                    await self._ended.wait()
            except TimeoutError:
                log.warning("contact %s: still up after %d s; hanging up", self.contact_id, MAX_CONTACT_SECONDS)
                await self.line.hangup("max_duration")
            await self._stop_queue_flow()
            if result is not None:
                await self._run_disconnect_flow(result)
        except Exception:
            log.exception("contact %s failed", self.contact_id)
            if not self._ended.is_set():
                await self.line.hangup("gateway_error")
        finally:
            await self._stop_queue_flow()
            self._finish()
            await self._downmix_recording()

    async def _answer(self) -> None:
        if self._recording_dir is not None:
            day = time.strftime("%Y-%m-%d", time.gmtime(self._clock.time()))
            folder = self._recording_dir / day
            folder.mkdir(parents=True, exist_ok=True)
            self.recording_path = folder / f"{self.contact_id}.wav"
            self.recorder = CallRecorder(self.recording_path, stereo=True)   # mixed down at the end if mono
            self._store.upsert(self.contact_id, recording_path=str(self.recording_path),
                               recording_mode=self.recording.mode)
        else:
            self._store.upsert(self.contact_id, recording_mode="off")
        self.line.set_audio_source(self.next_frame)
        await self.line.answer()

    def ended(self, reason: str) -> None:
        """The line reports the call is over (either side hung up, or the modem vanished)."""
        if self._ended.is_set():
            return
        self.end_reason = reason
        self._ended.set()
        self._wake.set()
        self._center.contact_ended(self.contact_id, reason)

    def _finish(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        seconds = self._close_recording()
        self._caller_speech.flush()
        self.counters["caller_speech_seconds"] = round(self._caller_speech.speech_seconds, 2)
        media = dict(self.counters, **self.line.counters)
        if self.relay is not None:
            media.update(self.relay.summary())
        ended = self.call.ended_at or self._clock.time()
        reason = self.end_reason or self.call.end_reason or "unknown"
        extra: dict = {"agent_interaction_end_at": ended} if self.agent_id is not None else {}
        if self.callback_id is not None and self.agent_id is None:
            reason = CALLBACK_QUEUED_REASON       # the caller left, a callback waits in the queue instead
        if self.callback_id is not None and self.callbacks is not None:
            self.callbacks.release(self.callback_id)
        self._store.upsert(self.contact_id, ended_at=ended, disconnect_reason=reason,
                           recording_path=str(self.recording_path) if self.recording_path else None,
                           recording_seconds=seconds, media=json.dumps(media), **extra)

    # --- audio, driven by the line ----------------------------------------------------------------
    def audio_in(self, frame: bytes) -> None:
        self._inbound.push(frame)
        if len(frame) == FRAME_BYTES:
            self._caller_speech.feed(frame)
        if self.relay is not None:
            self.relay.send(frame, read_at=time.perf_counter())
        for tap in self.audio_taps:
            tap(frame)
        if self.third_party is not None:
            self.third_party.from_caller(frame)

    def next_frame(self) -> bytes:
        self.counters["ticks"] += 1
        frame = SILENCE_FRAME
        if self.relay is not None:
            frame = self.relay.next_frame() or SILENCE_FRAME
        elif self.third_party is not None:
            frame = self.third_party.for_caller()
        elif self._playback is not None:
            if self._playback:
                frame = self._playback.popleft()
            if not self._playback:
                self._playback = None
                self._wake.set()
        elif self._holding:
            music = self._hold_frames or hold_music()
            frame = music[self._hold_pos % len(music)]
            self._hold_pos += 1
        caller = self._inbound.pop()
        self.counters["caller_underruns"] = self._inbound.underruns
        self.counters["caller_overruns"] = self._inbound.overruns
        if self.recorder is not None:
            self.recorder.write(caller, frame)
        return frame

    def dtmf(self, digit: str) -> None:
        self._digits.append(digit)
        self._wake.set()

    def bridge(self, relay: "AudioRelay", agent_id: str) -> None:
        self.relay, self.agent_id = relay, agent_id
        self._holding = False
        self.in_queue = False
        if self._queue_task is not None:
            self._queue_task.cancel()   # its prompt is already silenced: the agent's audio comes first
        relay.start()
        self._store.upsert(self.contact_id, agent_id=agent_id, connected_to_agent_at=self._clock.time())

    # --- recording: mode, who is heard, pauses -------------------------------------------------------
    def set_recording(self, participants: list[str], layout: str | None = None) -> None:
        """The flow's UpdateContactRecordingBehavior: "Agent" and/or "Customer" (none: off), and
        optionally "stereo" or "mono"; it overrides earlier settings and the queue's."""
        self.recording.from_flow(participants, layout)
        self._apply_recording()

    def pause_recording(self) -> str:
        """Stop writing the call (a card number is being said): "paused", or "off" if it is not recorded."""
        if self.recorder is None or self.recording.mode == "off":
            return "off"
        if self.recorder.pause():
            log.info("contact %s: recording paused at %.1f s", self.contact_id, self.recorder.duration)
        return "paused"

    def resume_recording(self) -> str:
        """Write the call again; the pause goes into the contact record. "recording", or "off"."""
        if self.recorder is not None and self.recorder.resume():
            pause = self.recorder.pauses[-1]
            log.info("contact %s: recording resumed after a %.1f s pause", self.contact_id, pause["seconds"])
            self._store.upsert(self.contact_id, recording_pauses=self.recorder.pauses)
        return "off" if self.recorder is None or self.recording.mode == "off" else "recording"

    def _apply_recording(self) -> None:
        if self.recorder is None:
            return
        self.recorder.record_sides(self.recording.caller_heard, self.recording.agent_heard)
        self._store.upsert(self.contact_id, recording_mode=self.recording.mode)

    def _close_recording(self) -> float | None:
        """Close the recorder and note mode and pauses; a recording that ends up off is deleted."""
        if self.recorder is None:
            return None
        seconds: float | None = self.recorder.close()
        self._store.upsert(self.contact_id, recording_mode=self.recording.mode, recording_pauses=self.recorder.pauses)
        if self.recording.mode == "off" and self.recording_path is not None:
            try:
                self.recording_path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("contact %s: recording %s (recording off) not removed: %s",
                            self.contact_id, self.recording_path, exc)
            self.recording_path = seconds = None
        return seconds

    async def _downmix_recording(self) -> None:
        """A call kept in mono was written in stereo (crash-safe all along): mix it down, off the loop."""
        if self.recorder is None or self.recording_path is None or self.recording.mode != "mono":
            return
        try:
            await asyncio.to_thread(downmix_to_mono, self.recording_path)
        except Exception as exc:     # a full disk: the stereo file is kept and said to be stereo
            log.warning("contact %s: recording %s stays stereo: %s", self.contact_id, self.recording_path, exc)
            self._store.upsert(self.contact_id, recording_mode="stereo")

    # --- FlowContact ------------------------------------------------------------------------------
    async def play(self, samples: np.ndarray, *, interruptible: bool) -> str | None:
        if interruptible and self._digits:
            return self._digits.popleft()
        self._playback = deque(pcm_to_frames(samples))
        try:
            while True:
                if self._ended.is_set():
                    raise CallerHungUp(self.end_reason or "hung up")
                if self._playback is None:
                    return None
                if interruptible and self._digits:
                    return self._digits.popleft()
                self._wake.clear()
                await self._wake.wait()
        finally:
            self._playback = None

    async def get_digit(self, timeout: float) -> str | None:
        deadline = self._clock.monotonic() + timeout
        while True:
            if self._digits:
                return self._digits.popleft()
            if self._ended.is_set():
                raise CallerHungUp(self.end_reason or "hung up")
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return None
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def set_queue(self, queue_ref: str) -> bool:
        queue_id = self._center.resolve_queue(queue_ref)
        if queue_id is None:
            return False
        self.queue_id = queue_id
        self.queue_name = self._center.queue_view(queue_id).get("name", queue_id)
        return True

    async def transfer_to_queue(self) -> str:
        if self._ended.is_set():
            raise CallerHungUp(self.end_reason or "hung up")
        if self.queue_id is None:
            return "no_queue"
        if self.in_queue:   # from the customer queue flow: to another queue
            return self._move_to_queue()
        waiting = WaitingContact(contact_id=self.contact_id, caller=self.customer_number, line_id=self.line.id,
                                 queue_id=self.queue_id, enqueued_mono=self._clock.monotonic(),
                                 enqueued_wall=self._clock.time(), **self.routing)
        outcome = self._center.enqueue(waiting)
        if outcome == "queued":
            self._waiting_since = waiting.enqueued_wall
            self.recording.from_queue(self._queue_recording.get(self.queue_id))
            self._apply_recording()
            self._holding = self.relay is None
            self.in_queue = True
            if self._hold_music_for is not None:
                self._hold_frames = self._hold_music_for(self.queue_id)
            self._store.upsert(self.contact_id, queue_id=self.queue_id, enqueued_at=waiting.enqueued_wall)
        return outcome

    def queue_metrics(self, queue_ref: str | None) -> dict:
        """CheckMetricData / GetMetricData: the Center's counts for the named queue or the working one."""
        queue_id = self.queue_id if not queue_ref else self._center.resolve_queue(queue_ref)
        if queue_id is None:
            raise LookupError(f"no queue {queue_ref!r} is configured" if queue_ref else
                              "no working queue (set one with UpdateContactTargetQueue first)")
        metrics = self._center.queue_metrics(queue_id)
        metrics.update(self._center.wait_metrics(queue_id, self.contact_id))   # position and estimated wait
        return metrics

    def set_routing(self, *, priority: int | None = None, age_adjustment: float | None = None) -> None:
        """UpdateContactRoutingBehavior: kept for the queue, and applied at once if the contact waits."""
        for key, value in (("priority", priority), ("age_adjustment", age_adjustment)):
            if value is not None:
                self.routing[key] = value
        self._center.set_routing(self.contact_id, priority=priority, age_adjustment=age_adjustment)

    async def send_sms(self, number: str, text: str) -> list[int]:
        """Callgate.SendSms: an SMS from this call's line (its modem's SMS service)."""
        refs = await self.line.send_sms(number, text)
        log.info("contact %s: SMS sent to %s (%d part(s))", self.contact_id, number, len(refs))
        return refs

    async def disconnect(self) -> None:
        if not self._ended.is_set():
            await self.line.hangup("flow_disconnect")

    # --- the customer queue flow (gateway/flows/customer_queue.py) ----------------------------------------
    def _start_queue_flow(self) -> None:
        if queue_flow_ref(self) is not None and self.in_queue and not self._ended.is_set():
            self._queue_task = asyncio.create_task(self._run_queue_flow(), name=f"queue-flow-{self.contact_id}")

    async def _run_queue_flow(self) -> None:
        """The CustomerQueue hook's flow while the caller waits; cancelled when an agent takes the call."""
        try:
            result = await run_queue_flow(self, self.library, self._prompts, clock=self._clock,
                                          on_step=self._queue_steps.append)
        except Exception:
            log.exception("contact %s: customer queue flow failed; the caller keeps waiting", self.contact_id)
            return
        finally:
            self._save_flow_path()
        if result is None:
            return
        if result.outcome == "error":
            log.warning("contact %s: customer queue flow ended in error: %s", self.contact_id, result.error)
        else:
            log.info("contact %s: customer queue flow ended (%s)", self.contact_id, result.outcome)
        if not self.in_queue and self.relay is None and not self._ended.is_set():
            await self.line.hangup("flow_disconnect")   # it took the caller out of the queue (a voicemail)

    async def _stop_queue_flow(self) -> None:
        task, self._queue_task = self._queue_task, None
        if task is None:
            return
        task.cancel()
        try:
            async with asyncio.timeout(QUEUE_FLOW_STOP_SECONDS):
                await asyncio.gather(task, return_exceptions=True)
        except TimeoutError:
            log.warning("contact %s: customer queue flow did not stop within %g s", self.contact_id,
                        QUEUE_FLOW_STOP_SECONDS)

    def _save_flow_path(self) -> None:
        if self._flow_result is not None:
            path = self._flow_result.path_records() + queue_flow_records(self._queue_steps)
            self._store.upsert(self.contact_id, flow_path=json.dumps(path), attributes=json.dumps(self.attributes))

    def _leave_queue(self, why: str) -> None:
        """Out of the queue while the call goes on (a voicemail from the customer queue flow): no hold music."""
        if self.in_queue:
            self._center.dequeue(self.contact_id)
            self.in_queue = self._holding = False
            log.info("contact %s left queue %s (%s)", self.contact_id, self.queue_id, why)

    def _move_to_queue(self) -> str:
        outcome = self._center.transfer(self.contact_id, self.queue_id)
        if outcome == "queued":
            if self._hold_music_for is not None:
                self._hold_frames = self._hold_music_for(self.queue_id)
            self._store.upsert(self.contact_id, queue_id=self.queue_id)
        return "no_queue" if outcome == "not_waiting" else outcome

    # --- contact tags -----------------------------------------------------------------------------------
    def add_tags(self, tags: dict[str, str]) -> None:
        """TagContact: the tags join the contact's (a key given again takes the new value) and its record."""
        self.tags.update(tags)
        self._store.upsert(self.contact_id, tags=self.tags)

    # --- queued callback (CreateCallbackContact) and an agent's transfer (gateway/agent_calls.py) --------------
    callbacks: "Callbacks | None" = None          # set by the daemon: where callbacks are left

    def create_callback(self, *, queue_ref: str | None, initial_delay: float, retries: int,
                        retry_delay: float) -> str:
        """CreateCallbackContact: leave a callback to the callback number (else the caller's) in the named
        queue (else the working one); a caller waiting in a queue leaves it, the callback keeping the
        place. The callback's contact id; LookupError says why none was left."""
        if self.callbacks is None:
            raise LookupError("queued callbacks are not set up on this gateway")
        queue_id = self._center.resolve_queue(queue_ref) if queue_ref else self.queue_id
        if queue_id is None:
            raise LookupError(f"no queue {queue_ref!r} is configured" if queue_ref else
                              "no working queue (set one with UpdateContactTargetQueue first)")
        number = self.callback_number or self.customer_number
        if not number:
            raise LookupError("no number to call back: the caller's number is withheld and no callback number is set")
        waited = self._waiting_since if self.in_queue else None
        self.callback_id = self.callbacks.create(previous_contact_id=self.contact_id, number=number, queue_id=queue_id,
                                                 initial_delay=initial_delay, retries=retries,
                                                 retry_delay=retry_delay, waited_since=waited)
        self._leave_queue("callback")
        return self.callback_id

    def transferred(self, new_contact_id: str, queue_id: str) -> None:
        """The agent transferred the call (the Center has already moved it: Center.requeue). The agent's leg
        ends here: its record gets agent_interaction_end_at, ended_at and disconnect_reason "transferred";
        the call goes on as `new_contact_id`, a TRANSFER contact linked to it, waiting in `queue_id` with
        its hold music and customer queue flow until the next agent's bridge()."""
        now = self._clock.time()
        old = self.contact_id
        media = dict(self.counters, **self.line.counters)
        if self.relay is not None:
            self.relay.stop()
            media.update(self.relay.summary())
        self.relay, self.agent_id = None, None
        self._store.upsert(old, agent_interaction_end_at=now, ended_at=now, disconnect_reason="transferred",
                           media=json.dumps(media), attributes=json.dumps(self.attributes))
        self.contact_id = new_contact_id
        self.queue_id = queue_id
        self.queue_name = self._center.queue_view(queue_id).get("name", queue_id)
        self._store.upsert(new_contact_id, line_id=self.line.id, caller=self.customer_number,
                           initiation_method="TRANSFER", initiated_at=now, previous_contact_id=old, queue_id=queue_id,
                           enqueued_at=now, recording_path=str(self.recording_path) if self.recording_path else None,
                           recording_mode=self.recording.mode, attributes=json.dumps(self.attributes))
        self._holding = self.in_queue = True
        self._waiting_since = now
        if self._hold_music_for is not None:
            self._hold_frames = self._hold_music_for(queue_id)
        log.info("contact %s transferred: waits in queue %s as %s", old, queue_id, new_contact_id)
        self._start_queue_flow()

    # --- event hooks ------------------------------------------------------------------------------------
    def set_event_hook(self, kind: str, flow_ref: str) -> None:
        """UpdateContactEventHooks: remember which flow runs at `kind` ("CustomerRemaining": the disconnect flow)."""
        self.event_hooks[kind] = flow_ref

    async def _run_disconnect_flow(self, result) -> None:
        """The call is over (the caller hung up, or ended it from the queue): run the disconnect flow, if
        one was set, without audio; its steps join the contact's flow path, marked with the hook."""
        hook = await run_disconnect_flow(self, self.library, after=result, clock=self._clock)
        if hook is None:
            return
        if hook.outcome == "error":
            log.warning("contact %s: disconnect flow: %s", self.contact_id, hook.error)
        queued = queue_flow_records(self._queue_steps)
        self._store.upsert(self.contact_id, flow_path=json.dumps(result.path_records() + queued + hook_records(hook)),
                           attributes=json.dumps(self.attributes))

    # --- transfer to a phone number (TransferParticipantToThirdParty) ----------------------------------
    transfers: "TransferLines | None" = None      # set by the daemon: the lines a call may dial out on
    third_party: "ThirdPartyLeg | None" = None    # the outbound leg while a transfer is in progress

    async def transfer_to_number(self, number: str, *, timeout: float, dtmf: str = "",
                                 caller_id: dict[str, str] | None = None, resume_after: bool = True) -> str:
        """Dial `number` on a free line, send `dtmf` when it answers, and bridge the caller to it until
        one side hangs up (see gateway/third_party_leg.py). When the third party hangs up first the
        flow resumes, or with `resume_after` False the caller is hung up. The outcome goes into the
        attributes (transferred_to, transfer_outcome, transfer_line, transfer_contact_id)."""
        if self._ended.is_set():
            raise CallerHungUp(self.end_reason or "hung up")
        if caller_id:
            log.info("contact %s: caller ID %s not presented to %s: a modem line shows its SIM's number",
                     self.contact_id, caller_id, number)
        leg = self.transfers.start(self.line, self.contact_id, number) if self.transfers is not None else None
        if leg is None:
            self._note_transfer(number, "no_free_line", None)
            return "no_free_line"
        log.info("contact %s: transfer to %s on line %s", self.contact_id, number, leg.line.id)
        self.third_party = leg
        try:
            outcome = await leg.run(timeout=timeout, dtmf=dtmf, caller_gone=self._ended)
        finally:
            self.third_party = None
            self.transfers.done(leg)
            self._digits.clear()   # keys pressed for the third party are not the next menu's input
        self._note_transfer(number, outcome, leg)
        if outcome == CALLER_GONE:
            raise CallerHungUp(self.end_reason or "hung up")
        if outcome == CONNECTED_FAR_END_LEFT and not resume_after and not self._ended.is_set():
            await self.line.hangup("third_party_disconnect")
        return outcome

    def _note_transfer(self, number: str, outcome: str, leg: "ThirdPartyLeg | None") -> None:
        self.attributes.update({"transferred_to": number, "transfer_outcome": outcome})
        if leg is not None:
            self.attributes["transfer_line"] = leg.line.id
            if leg.call is not None:
                self.attributes["transfer_contact_id"] = leg.call.call_id
        self._store.upsert(self.contact_id, attributes=json.dumps(self.attributes))

    # --- voicemail ------------------------------------------------------------------------------------
    async def record_voicemail(self, *, max_seconds: float, silence_seconds: float,
                               stop_keys: str = "#") -> VoicemailResult:
        """Record a message from the caller's frames (the flow has played the greeting and the beep)
        until they stop speaking, press one of `stop_keys` or reach `max_seconds`; see
        gateway/media/voicemail.py. The contact record gets the message's path, length, speech time and
        status. When the caller hangs up during it, the message is kept (if it has speech) and then
        CallerHungUp is raised."""
        if self._ended.is_set():
            raise CallerHungUp(self.end_reason or "hung up")
        if self._voicemail_dir is None:
            raise RuntimeError("voicemail is not set up on this gateway (no voicemail folder)")
        self._leave_queue("voicemail")
        settings = VoicemailSettings(max_seconds=max_seconds, silence_seconds=silence_seconds)
        folder = self._voicemail_dir / time.strftime("%Y-%m-%d", time.gmtime(self._clock.time()))
        folder.mkdir(parents=True, exist_ok=True)
        recording = VoicemailRecorder(folder / f"{self.contact_id}.wav", settings)
        self._store.upsert(self.contact_id, voicemail_path=str(recording.path), voicemail_status="recording")
        stop: list[str] = []

        def tap(frame: bytes) -> None:
            if stop or len(frame) != FRAME_BYTES:
                return
            try:
                reason = recording.feed(frame)
            except OSError as exc:
                log.error("contact %s: voicemail %s cannot be written: %s", self.contact_id, recording.partial, exc)
                reason = ERROR
            if reason is not None:
                stop.append(reason)
                self._wake.set()

        self._digits.clear()  # keys pressed before the beep do not end the message
        self.audio_taps.append(tap)
        # the caller's audio drives the recording; if it stalls, the wall clock ends it
        deadline = self._clock.monotonic() + max_seconds + VOICEMAIL_STALL_SECONDS
        try:
            while not stop:
                if self._ended.is_set():
                    stop.append(HUNG_UP)
                elif self._take_stop_key(stop_keys):
                    stop.append(KEY)
                elif (remaining := deadline - self._clock.monotonic()) <= 0:
                    stop.append(MAX_LENGTH)
                else:
                    self._wake.clear()
                    try:
                        async with asyncio.timeout(remaining):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
        finally:
            self.audio_taps.remove(tap)
            if not stop:  # cancelled: keep what was heard
                self._store_voicemail(recording.finish(ERROR))
        result = await asyncio.to_thread(recording.finish, stop[0])
        self._store_voicemail(result)
        if result.ended_by == HUNG_UP:
            raise CallerHungUp(self.end_reason or "hung up")
        return result

    def _take_stop_key(self, stop_keys: str) -> bool:
        """True when a stop key was pressed (it and the keys before it are used up); other keys are dropped."""
        while self._digits:
            if self._digits.popleft() in stop_keys:
                return True
        return False

    def _store_voicemail(self, result: VoicemailResult) -> None:
        log.info("contact %s: voicemail %s", self.contact_id, result.describe())
        self._store.upsert(self.contact_id, voicemail_path=str(result.path) if result.path else None,
                           voicemail_seconds=round(result.seconds, 3),
                           voicemail_speech_seconds=round(result.speech_seconds, 3), voicemail_status=result.status)
