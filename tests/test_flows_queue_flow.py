"""The customer queue flow: Loop prompts (MessageParticipantIteratively) timed on a ManualClock; position in
queue and estimated wait on a real Center; a queued caller's CustomerQueue flow in a real ContactSession
(real Center, contact store and flow library; the phone line and the agent's audio are stand-ins for the
modem and the MQTT relay), stopped by an agent's accept, leaving the queue for a voicemail, going back to
hold music at EndFlowExecution; and its rehearsal in `callgate flow simulate`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

from gateway.center.agents import AgentConfig
from gateway.center.events import ContactConnected, OfferWithdrawn
from gateway.center.passwords import hash_password
from gateway.center.queues import QueueConfig, WaitingContact
from gateway.center.records import ContactStore
from gateway.center.router import Center
from gateway.clock import SYSTEM_CLOCK, ManualClock
from gateway.contact import ContactSession, hold_music
from gateway.flows.interpreter import CallerHungUp, run_flow
from gateway.flows.library import FlowLibrary
from gateway.flows.simulate import QUEUE_FLOW_ROUNDS, Setting, rehearse
from gateway.flows.validate import load_flow, validate_flow_text
from gateway.media.frames import FRAME_BYTES, SAMPLE_RATE, SILENCE_FRAME, pcm_to_frames
from gateway.media.tones import dominant_frequency, sine
from gateway.modem.line import Call

STEP = 1 / 16  # seconds the test clock moves at a time: exact in binary, so deadlines are hit exactly


def act(ident, type_, params=None, next_action=None, errors=(), conditions=()):
    transitions = {"Errors": [{"ErrorType": e, "NextAction": t} for e, t in errors],
                   "Conditions": [{"NextAction": t, "Condition": {"Operator": "Equals", "Operands": [k]}}
                                  for k, t in conditions]}
    if next_action:
        transitions["NextAction"] = next_action
    return {"Identifier": ident, "Type": type_, "Parameters": params or {}, "Transitions": transitions}


def doc(*actions, **top):
    return {"Version": "2019-10-30", "StartAction": actions[0]["Identifier"], "Actions": list(actions), **top}


def flow_of(*actions):
    flow, issues = validate_flow_text(json.dumps(doc(*actions)))
    assert flow is not None, [str(i) for i in issues]
    return flow


def loop_prompts(ident, texts, every=None, then=None, **params):
    if every is not None:
        params["InterruptFrequencySeconds"] = str(every)
    return act(ident, "MessageParticipantIteratively", {"Messages": [{"Text": t} for t in texts], **params},
               conditions=[("MessagesInterrupted", then)] if then else ())


BYE = act("bye", "DisconnectParticipant")


# ----------------------------------------------------------------------------- Loop prompts on a ManualClock

class Lengths:
    """Prompts whose length is given per text (seconds), so the test knows what each play lasts."""

    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds
        self.spoken: list[str] = []

    async def text(self, text, voice="en-us"):
        self.spoken.append(text)
        return np.full(round(self.seconds.get(text, 1.0) * SAMPLE_RATE), 100, dtype=np.int16)

    def file(self, path):
        return np.full(SAMPLE_RATE, 100, dtype=np.int16)


class ClockCaller:
    """A caller whose audio plays in the time it lasts on a ManualClock. Keys pressed at given times wait in a
    buffer (type-ahead) for the next block that reads keys; `hang_up_at_play` n: the caller hangs up at the
    n-th play (0-based); `stall`: audio never finishes playing (a modem whose audio stopped)."""

    def __init__(self, clock: ManualClock, presses=(), hang_up_at_play=None, stall=False):
        self.clock, self.start = clock, clock.monotonic()
        self.contact_id, self.attributes = "c-loop", {}
        self.customer_number, self.system_number, self.queue_name = "+15550100", "+15550199", None
        self.presses = sorted(presses)
        self.hang_up_at_play, self.stall = hang_up_at_play, stall
        self.plays: list[dict] = []  # at, seconds asked, seconds played, finished

    def now(self) -> float:
        return self.clock.monotonic() - self.start

    def _keys_until(self, t: float) -> list[str]:
        keys = [k for at, k in self.presses if at <= t]
        self.presses = [(at, k) for at, k in self.presses if at > t]
        return keys

    async def play(self, samples, *, interruptible):
        if interruptible and (keys := self._keys_until(self.now())):
            return keys[0]
        if self.hang_up_at_play == len(self.plays):
            raise CallerHungUp("hung up")
        record = {"at": self.now(), "seconds": len(samples) / SAMPLE_RATE, "played": 0.0, "finished": False}
        self.plays.append(record)
        try:
            if self.stall:
                await asyncio.Event().wait()
            await self.clock.sleep(len(samples) / SAMPLE_RATE)
            record["finished"] = True
        finally:
            record["played"] = self.now() - record["at"]
        return None

    async def get_digit(self, timeout):
        keys = self._keys_until(self.now())
        if keys:
            return keys[0]
        await self.clock.sleep(timeout)
        keys = self._keys_until(self.now())
        return keys[0] if keys else None

    def set_queue(self, queue_ref):
        return False

    async def transfer_to_queue(self):
        return "no_queue"

    async def disconnect(self):
        pass


async def drive(clock: ManualClock, coro, limit: float = 600.0):
    """Run `coro`, moving the clock on by STEP whenever everything else waits."""
    task = asyncio.ensure_future(coro)
    moved = 0.0
    while not task.done():
        for _ in range(40):  # let every task run until it waits for the clock again
            await asyncio.sleep(0)
        if task.done():
            break
        clock.advance(STEP)
        moved += STEP
        assert moved < limit, "the flow did not finish"
    return task.result()


def run_on_clock(flow, caller, prompts, clock):
    return asyncio.run(asyncio.wait_for(drive(clock, run_flow(flow, caller, prompts, clock=clock)), 20))


def branches(result):
    return [(s.identifier, s.branch) for s in result.path]


TWO_MESSAGES = Lengths({"first": 2.0, "second": 3.0, "Press 1.": 1.0})


def test_loop_prompts_play_in_turn_until_the_interrupt_cuts_the_message_playing():
    clock = ManualClock()
    caller = ClockCaller(clock, presses=[(1.0, "1")])  # pressed during the messages: kept for the menu
    flow = flow_of(loop_prompts("hold", ["first", "second"], every=6, then="menu"),
                   act("menu", "GetParticipantInput", {"Text": "Press 1.", "InputTimeLimitSeconds": "5"}, None,
                       [("InputTimeLimitExceeded", "bye"), ("NoMatchingCondition", "bye")], [("1", "bye")]), BYE)
    result = run_on_clock(flow, caller, TWO_MESSAGES, clock)
    assert branches(result) == [("hold", "condition:MessagesInterrupted"), ("menu", "condition:1"),
                                ("bye", "disconnected")]
    assert [(p["at"], p["seconds"], p["finished"]) for p in caller.plays] == [(0.0, 2.0, True), (2.0, 3.0, True),
                                                                            (5.0, 1.0, True)]
    assert result.path[1].at - result.path[0].at == 6.0  # the interrupt is on time
    assert result.path[0].detail == "interrupted after 6 s (2 messages played in full)"


@pytest.mark.parametrize("resume, pieces", [("false", [2.0, 3.0, 1.0, 2.0, 3.0, 1.0]),
                                            ("true", [2.0, 3.0, 1.0, 1.0, 3.0, 2.0])])
def test_coming_back_starts_again_or_continues_where_the_interrupt_stopped(resume, pieces):
    clock = ManualClock()
    caller = ClockCaller(clock)
    flow = flow_of(loop_prompts("hold", ["first", "second"], every=6, then="again",
                                ContinueMessagingDuringInterrupt=resume),
                   act("again", "Loop", {"LoopCount": "1"}, conditions=[("ContinueLooping", "hold"),
                                                                        ("DoneLooping", "bye")]), BYE)
    result = run_on_clock(flow, caller, TWO_MESSAGES, clock)
    assert [s.identifier for s in result.path] == ["hold", "again", "hold", "again", "bye"]
    assert [p["seconds"] for p in caller.plays] == pieces
    assert result.path[-1].at - result.path[0].at == 12.0


def test_interrupt_comes_on_time_even_when_the_audio_stalls():
    clock = ManualClock()
    caller = ClockCaller(clock, stall=True)
    flow = flow_of(loop_prompts("hold", ["first"], every=30, then="bye"), BYE)
    result = run_on_clock(flow, caller, TWO_MESSAGES, clock)
    assert branches(result) == [("hold", "condition:MessagesInterrupted"), ("bye", "disconnected")]
    assert result.path[1].at - result.path[0].at == 30.0
    assert [(p["finished"], p["played"]) for p in caller.plays] == [(False, 30.0)]  # cut, not waited for


def test_without_an_interrupt_the_messages_loop_until_the_caller_hangs_up():
    clock = ManualClock()
    caller = ClockCaller(clock, hang_up_at_play=5)
    flow = flow_of(loop_prompts("hold", ["first", "second"]))
    result = run_on_clock(flow, caller, TWO_MESSAGES, clock)
    assert branches(result) == [("hold", "hung_up")]
    assert [p["seconds"] for p in caller.plays] == [2.0, 3.0, 2.0, 3.0, 2.0]


def test_loop_prompts_on_a_text_channel_take_the_error_branch():
    class Texter(ClockCaller):
        channel = "SMS"

        async def send_text(self, text):
            raise AssertionError("nothing is sent")

    clock = ManualClock()
    flow = flow_of(act("hold", "MessageParticipantIteratively", {"Messages": [{"Text": "Hold on."}]},
                       errors=[("NoMatchingError", "bye")]), BYE)
    result = run_on_clock(flow, Texter(clock), TWO_MESSAGES, clock)
    assert branches(result) == [("hold", "NoMatchingError"), ("bye", "disconnected")]
    assert "voice calls only" in result.path[0].detail


def test_loop_prompts_are_validated():
    def issues_of(action):
        _, issues = validate_flow_text(json.dumps(doc(action, BYE)))
        return {(i.path, i.severity): i.message for i in issues if i.path.startswith("$.Actions[0]")}

    found = issues_of(act("h", "MessageParticipantIteratively",
                          {"Messages": [{"Text": "a", "SSML": "<speak>b</speak>"}, {"Media": {"Uri": "s3://x"}},
                                        "text", {"PromptId": "arn:aws:connect:x:1:instance/i/prompt/p"},
                                        {"SSML": "<speak>unclosed"}],
                           "InterruptFrequencySeconds": "0.5", "Loudness": 3},
                          conditions=[("Interrupted", "bye")]))
    at = "$.Actions[0]"
    assert "exactly one of Text, SSML or PromptId, found Text, SSML" in found[(f"{at}.Parameters.Messages[0]", "error")]
    assert "Media (S3 audio)" in found[(f"{at}.Parameters.Messages[1].Media", "error")]
    assert "found string" in found[(f"{at}.Parameters.Messages[2]", "error")]
    assert "local WAV file" in found[(f"{at}.Parameters.Messages[3].PromptId", "error")]
    assert "not well-formed" in found[(f"{at}.Parameters.Messages[4].SSML", "error")]
    assert "at least 1 s" in found[(f"{at}.Parameters.InterruptFrequencySeconds", "error")]
    assert "ignored" in found[(f"{at}.Parameters.Loudness", "warning")]
    assert 'Equals ["MessagesInterrupted"], found Equals ["Interrupted"]' in \
        found[(f"{at}.Transitions.Conditions[0].Condition", "error")]
    assert "missing Messages" in issues_of(act("h", "MessageParticipantIteratively", {}))[(f"{at}.Parameters", "error")]
    no_branch = issues_of(act("h", "MessageParticipantIteratively",
                              {"Messages": [{"Text": "a"}], "InterruptFrequencySeconds": 20}))
    assert "needs a condition Equals MessagesInterrupted" in no_branch[(f"{at}.Transitions.Conditions", "error")]
    never = issues_of(loop_prompts("h", ["a"], then="bye"))
    assert "never taken" in never[(f"{at}.Transitions.Conditions", "warning")]
    assert issues_of(loop_prompts("h", ["a", "b"], every=30, then="bye")) == {}


# ----------------------------------------------------------------------------- position and estimated wait

FAST = 1000  # PBKDF2 iterations for test agents
AGENTS = [AgentConfig(a, a.title(), hash_password("pw", iterations=FAST)) for a in ("alice", "bob")]


def waiting(cid: str, queue: str, clock, priority: int = 5) -> WaitingContact:
    return WaitingContact(cid, "+1555000" + cid[-1], "gsm1", queue, clock.monotonic(), clock.time(), priority=priority)


def test_position_and_estimated_wait_of_three_waiting_contacts():
    clock = ManualClock()
    center = Center([QueueConfig("support", "Support"), QueueConfig("sales", "Sales")], AGENTS, clock=clock,
                    default_handle_seconds=180.0)
    for agent in ("alice", "bob"):
        center.login(agent, "pw")
    assert center.wait_metrics("support") == {"AverageHandleSeconds": 180.0}  # nobody staffed: no estimate
    center.set_available("alice")
    assert center.enqueue(waiting("c0", "support", clock)) == "queued"
    center.accept("alice", "c0")                       # alice is busy from t=0
    clock.advance(60)
    for cid in ("c1", "c2", "c3"):
        center.enqueue(waiting(cid, "support", clock))
        clock.advance(1)
    center.enqueue(waiting("s1", "sales", clock, priority=1))  # served before all of them, in another queue
    # alice is free in 180 - 63 = 117 s; c1..c3 wait behind s1 (priority 1) for alice
    assert [center.contact_position(c)["PositionInQueue"] for c in ("c1", "c2", "c3")] == [1, 2, 3]
    assert [center.contact_position(c)["EstimatedWaitSeconds"] for c in ("c1", "c2", "c3")] == [297, 477, 657]
    center.set_available("bob")                        # bob is offered s1 at once, then c1 is next for alice
    assert center.offer_view("bob")["contact_id"] == "s1"
    assert [center.contact_position(c)["EstimatedWaitSeconds"] for c in ("c1", "c2", "c3")] == [117, 180, 297]
    metrics = center.wait_metrics("support", "c2")
    assert metrics == {"AverageHandleSeconds": 180.0, "PositionInQueue": 2, "EstimatedWaitSeconds": 180,
                       "EstimatedWaitMinutes": 3}
    # a contact not waiting in the queue asked about gets the wait of one joining it now (after c1..c3)
    assert center.wait_metrics("support", "s1")["EstimatedWaitSeconds"] == 360
    # handled calls set the average: alice's lasted 100 s more (163 s from accept to Available)
    clock.advance(100)
    center.contact_ended("c0", "customer_hung_up")
    center.set_available("alice")
    assert center.average_handle_seconds() == 163.0
    assert center.contact_position("c0") is None


def test_dequeue_takes_a_waiting_contact_out_and_withdraws_its_offer():
    clock = ManualClock()
    center = Center([QueueConfig("support", "Support")], AGENTS, clock=clock)
    events = []
    center.subscribe(events.append)
    center.login("alice", "pw")
    center.enqueue(waiting("c1", "support", clock))
    center.enqueue(waiting("c2", "support", clock))
    center.set_available("alice")
    assert center.offer_view("alice")["contact_id"] == "c1"
    assert center.dequeue("c1") is True
    assert OfferWithdrawn("alice", "c1", "caller_left_queue") in events
    assert center.offer_view("alice")["contact_id"] == "c2"          # the agent gets the next one
    assert [c["contact_id"] for c in center.queue_view("support")["contacts"]] == ["c2"]
    assert center.dequeue("c1") is False and center.contact_position("c1") is None
    center.contact_ended("c1", "customer_hung_up")                   # the call's end later changes nothing
    assert center.queue_view("support")["depth"] == 1


def test_transfer_moves_a_waiting_contact_to_another_queue():
    clock = ManualClock()
    center = Center([QueueConfig("support", "Support"), QueueConfig("sales", "Sales", max_contacts=1)], AGENTS,
                    clock=clock)
    center.enqueue(waiting("c1", "support", clock))
    center.enqueue(waiting("c2", "support", clock))
    assert center.transfer("c2", "Sales") == "queued"
    assert center.queue_view("sales")["contacts"][0]["contact_id"] == "c2"
    assert center.transfer("c1", "sales") == "at_capacity"           # stays where it was
    assert center.queue_view("support")["depth"] == 1
    assert center.transfer("c1", "nowhere") == "no_queue"
    assert center.transfer("c9", "sales") == "not_waiting"


# ----------------------------------------------------------------------------- the queue flow in a ContactSession

PROMPT_HZ = 1000.0
AGENT_HZ = 600.0
CHIME_HZ = (523.25, 659.25, 783.99)


class ToneSpeech:
    """A PromptSource that 'speaks' a 1 kHz tone, 50 ms per character, and keeps what it was asked to say."""

    def __init__(self):
        self.spoken: list[str] = []

    async def text(self, text, voice="en-us"):
        self.spoken.append(text)
        return sine(PROMPT_HZ, 0.05 * len(text), amplitude=0.3)

    def file(self, path):
        return sine(PROMPT_HZ, 1.0, amplitude=0.3)


class PhoneLine:
    """Stands in for the modem line: pulls one frame of the call's audio every 20 ms (what the caller hears)
    and gives the session the caller's frames (silence); hanging up ends the call as the modem would."""

    def __init__(self):
        self.id = "gsm1"
        self.counters: dict = {}
        self.heard: list[tuple[float, bytes]] = []
        self.hung_up: str | None = None
        self.session: ContactSession | None = None
        self._source = None

    def set_audio_source(self, source):
        self._source = source

    async def answer(self):
        pass

    async def hangup(self, reason):
        self.hung_up = reason
        self.session.ended(reason)

    async def run(self):
        while True:
            if self._source is not None:
                self.heard.append((time.monotonic(), self._source()))
                self.session.audio_in(SILENCE_FRAME)
            await asyncio.sleep(0.02)

    def since(self, t: float) -> np.ndarray:
        frames = [f for at, f in self.heard if at >= t]
        return np.frombuffer(b"".join(frames), dtype="<i2") if frames else np.zeros(0, dtype=np.int16)


class AgentAudio:
    """Stands in for the agent's audio relay: the agent hums at 600 Hz."""

    def __init__(self):
        self.frames = pcm_to_frames(sine(AGENT_HZ, 60.0, amplitude=0.3))
        self.n = 0

    def start(self):
        pass

    def stop(self):
        pass

    def send(self, frame, read_at=None):
        pass

    def next_frame(self):
        self.n += 1
        return self.frames[self.n % len(self.frames)]

    def summary(self):
        return {}


class Office:
    """A gateway's waiting room: a real Center with the support queue, a contact store, the flow library."""

    def __init__(self, tmp_path: Path, queue_flow: dict):
        self.dir = tmp_path / "flows"
        self.dir.mkdir()
        (self.dir / "waiting.json").write_text(json.dumps(queue_flow))
        main = doc(act("queue", "UpdateContactTargetQueue", {"QueueId": "support"}, "hook"),
                   act("hook", "UpdateContactEventHooks", {"EventHooks": {"CustomerQueue": "waiting"}}, "go"),
                   act("go", "TransferContactToQueue", {}, None, [("QueueAtCapacity", "bye")]), BYE)
        (self.dir / "main.json").write_text(json.dumps(main))
        library = FlowLibrary([self.dir])
        library.refresh()
        self.library = library.current
        self.center = Center([QueueConfig("support", "Support")], AGENTS, clock=SYSTEM_CLOCK)
        self.store = ContactStore(tmp_path / "contacts.db")
        self.prompts = ToneSpeech()
        self.line = PhoneLine()
        self.session = ContactSession(self.line, Call("c-me", "gsm1", "inbound", "+15551230002", time.time()),
                                      flow=self.library.get("main"), prompts=self.prompts, center=self.center,
                                      store=self.store, recording_dir=None, clock=SYSTEM_CLOCK,
                                      voicemail_dir=tmp_path / "voicemail", library=self.library)
        self.line.session = self.session
        self.center.subscribe(self._on_event)

    def _on_event(self, event):  # what the daemon does when an agent accepts
        if isinstance(event, ContactConnected) and event.contact_id == "c-me":
            self.session.bridge(AgentAudio(), event.agent_id)

    async def until(self, predicate, timeout: float = 5.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)

    def record(self) -> dict:
        return self.store.get("c-me")


def hook_path(record) -> list[tuple[str, str]]:
    path = record["flow_path"]
    path = json.loads(path) if isinstance(path, str) else path
    return [(p["id"], p["branch"]) for p in path if p.get("hook") == "CustomerQueue"]


def share_at(samples: np.ndarray, freqs) -> float:
    """The share of the signal's energy within 15 Hz of the given frequencies."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    hz = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    near = np.zeros_like(hz, dtype=bool)
    for f in freqs:
        near |= np.abs(hz - f) < 15
    return float(spectrum[near].sum() / max(spectrum.sum(), 1e-9))


LONG_HOLD = " ".join(["Thank you for waiting."] * 8)  # 9 s of "speech"


def test_queue_flow_announces_the_position_and_stops_mid_message_when_an_agent_accepts(tmp_path):
    queue_flow = doc(
        act("metrics", "GetMetricData", {}, "position", [("NoMatchingError", "hold")]),
        act("position", "MessageParticipant", {"Text": "You are number $.Metrics.Queue.Position in the queue."},
            "hold"),
        loop_prompts("hold", [LONG_HOLD], every=20, then="metrics"))

    async def scenario():
        office = Office(tmp_path, queue_flow)
        center = office.center
        now = time.monotonic()  # one caller waits already, one comes after this one
        center.enqueue(WaitingContact("c-early", "+15550001", "gsm1", "support", now - 30, time.time()))
        center.enqueue(WaitingContact("c-late", "+15550003", "gsm1", "support", now + 60, time.time()))
        line_task = asyncio.create_task(office.line.run())
        call = asyncio.create_task(office.session.run())
        await office.until(lambda: LONG_HOLD in office.prompts.spoken, what="the hold message")
        assert "You are number 2 in the queue." in office.prompts.spoken
        await asyncio.sleep(0.5)
        assert office.session._playback is not None                    # the hold message is playing
        heard = office.line.since(time.monotonic() - 0.4)
        assert abs(dominant_frequency(heard) - PROMPT_HZ) < 20         # the flow's voice, not the chime
        for agent in ("alice", "bob"):
            center.login(agent, "pw")
        center.set_available("alice")
        center.accept("alice", center.offer_view("alice")["contact_id"])   # c-early, who was first
        assert office.session.in_queue and not office.session._queue_task.done()
        center.set_available("bob")
        assert center.offer_view("bob")["contact_id"] == "c-me"
        accepted = time.monotonic()
        center.accept("bob", "c-me")
        await office.until(lambda: office.session._queue_task is None or office.session._queue_task.done(), 0.1,
                           "the queue flow to stop")
        await asyncio.sleep(0.5)
        after = office.line.since(accepted + 0.03)
        assert abs(dominant_frequency(after) - AGENT_HZ) < 20 and share_at(after, [PROMPT_HZ]) < 0.01
        office.session.ended("customer_hung_up")
        await asyncio.wait_for(call, 5)
        line_task.cancel()
        return office

    office = asyncio.run(asyncio.wait_for(scenario(), 15))
    record = office.record()
    assert record["agent_id"] == "bob" and record["queue_id"] == "support"
    assert hook_path(record) == [("metrics", "next"), ("position", "next")]  # the hold loop was cut by the accept
    steps = json.loads(record["flow_path"]) if isinstance(record["flow_path"], str) else record["flow_path"]
    assert [s["id"] for s in steps if "hook" not in s] == ["queue", "hook", "go"]


def test_end_flow_execution_goes_back_to_hold_music_and_the_caller_keeps_waiting(tmp_path):
    queue_flow = doc(act("please", "MessageParticipant", {"Text": "Please hold."}, "done"),
                     act("done", "EndFlowExecution"))

    async def scenario():
        office = Office(tmp_path, queue_flow)
        line_task = asyncio.create_task(office.line.run())
        call = asyncio.create_task(office.session.run())
        await office.until(lambda: office.session._queue_task is not None and office.session._queue_task.done(),
                           what="the queue flow to end")
        ended = time.monotonic()
        await asyncio.sleep(2.6)   # one round of the chime
        heard = office.line.since(ended + 0.05)
        assert office.center.queue_view("support")["depth"] == 1 and office.session.in_queue
        office.session.ended("customer_hung_up")
        await asyncio.wait_for(call, 5)
        line_task.cancel()
        return office, heard

    office, heard = asyncio.run(asyncio.wait_for(scenario(), 15))
    chime = np.frombuffer(b"".join(hold_music()), dtype="<i2")
    assert share_at(heard, CHIME_HZ) > 0.8 and share_at(chime, CHIME_HZ) > 0.8
    assert office.line.hung_up is None
    assert hook_path(office.record()) == [("please", "next"), ("done", "ended")]


def test_voicemail_from_the_queue_flow_leaves_the_queue_then_the_call_ends(tmp_path):
    queue_flow = doc(
        act("offer", "GetParticipantInput", {"Text": "Press 1 to leave a message.", "InputTimeLimitSeconds": "4"},
            None, [("InputTimeLimitExceeded", "done"), ("NoMatchingCondition", "done")], [("1", "message")]),
        act("message", "Callgate.RecordVoicemail", {"Text": "After the tone.", "MaxLengthSeconds": 2,
                                                    "SilenceSeconds": 1}, "thanks",
            [("NoSpeech", "thanks")]),
        act("thanks", "MessageParticipant", {"Text": "Thanks."}, "done"),
        act("done", "EndFlowExecution"))

    async def scenario():
        office = Office(tmp_path, queue_flow)
        line_task = asyncio.create_task(office.line.run())
        call = asyncio.create_task(office.session.run())
        await office.until(lambda: "Press 1 to leave a message." in office.prompts.spoken, what="the offer")
        assert office.center.queue_view("support")["depth"] == 1
        office.session.dtmf("1")
        await office.until(lambda: (office.record() or {}).get("voicemail_status") == "recording", what="recording")
        assert office.center.queue_view("support")["depth"] == 0 and not office.session.in_queue
        office.center.login("alice", "pw")
        office.center.set_available("alice")
        assert office.center.offer_view("alice") is None                # nobody is offered a caller who left
        await asyncio.wait_for(call, 10)
        line_task.cancel()
        return office

    office = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert office.line.hung_up == "flow_disconnect"
    record = office.record()
    assert record["voicemail_status"] in ("recorded", "no_speech")
    assert [i for i, _ in hook_path(record)] == ["offer", "message", "thanks", "done"]
    assert office.center.queue_view("support")["depth"] == 0


# ----------------------------------------------------------------------------- rehearsal

def test_rehearsal_shows_the_queue_flows_first_rounds_marked_with_the_hook(tmp_path):
    (tmp_path / "waiting.json").write_text(json.dumps(doc(
        act("metrics", "GetMetricData", {}, "position"),
        act("position", "MessageParticipant", {"Text": "You are number $.Metrics.Queue.Position in the queue."},
            "hold"),
        loop_prompts("hold", ["Please hold.", "Thank you for waiting."], every=30, then="offer"),
        act("offer", "GetParticipantInput", {"Text": "Press 1 for voicemail.", "InputTimeLimitSeconds": "3"}, None,
            [("InputTimeLimitExceeded", "hold"), ("NoMatchingCondition", "hold")], [("1", "message")]),
        act("message", "Callgate.RecordVoicemail", {}, "bye"), BYE)))
    main = tmp_path / "main.json"
    main.write_text(json.dumps(doc(
        act("queue", "UpdateContactTargetQueue", {"QueueId": "support"}, "hook"),
        act("hook", "UpdateContactEventHooks", {"EventHooks": {"CustomerQueue": "waiting"}}, "go"),
        act("go", "TransferContactToQueue", {}, None, [("QueueAtCapacity", "bye")]), BYE)))
    library = FlowLibrary([tmp_path])
    library.refresh()

    def rehearsal(digits):
        run = asyncio.run(rehearse(load_flow(main), digits=digits, library=library.current,
                                   setting=Setting(metrics={"PositionInQueue": 2})))
        return run, run.as_dict()

    run, out = rehearsal([])
    hooked = [(s["id"], s["branch"]) for s in out["steps"] if s.get("hook") == "CustomerQueue"]
    assert [(s["id"], s["branch"]) for s in out["steps"] if "hook" not in s] == [
        ("queue", "next"), ("hook", "next"), ("go", "queued")]
    assert hooked == [("metrics", "next"), ("position", "next")] + [("hold", "condition:MessagesInterrupted"),
                      ("offer", "InputTimeLimitExceeded")] * 2 + [("hold", "condition:MessagesInterrupted")]
    assert sum(1 for i, _ in hooked if i == "hold") == QUEUE_FLOW_ROUNDS
    said = [e["text"] for s in out["steps"] for e in s["events"] if e["kind"] == "prompt"]
    assert "says (en-us): You are number 2 in the queue." in said
    assert out["ending"].startswith("caller waits in queue support for an agent, hearing the customer queue flow")
    notes = [e["text"] for s in out["steps"] for e in s["events"] if e["kind"] == "note"]
    assert any("customer queue flow waiting runs" in n for n in notes)
    assert any("rehearsal stops the customer queue flow here ('hold' ran 3 times)" in n for n in notes)

    run, out = rehearsal(["1"])  # key 1 at the first offer: the caller leaves the queue for a voicemail
    hooked = [(s["id"], s["branch"]) for s in out["steps"] if s.get("hook") == "CustomerQueue"]
    assert hooked[-3:] == [("offer", "condition:1"), ("message", "next"), ("bye", "disconnected")]
    events = [e["text"] for s in out["steps"] for e in s["events"]]
    assert "caller leaves queue support to leave a message" in events
    assert out["ending"] == "caller left queue support in the customer queue flow: flow hung up"
