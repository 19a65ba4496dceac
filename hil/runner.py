"""Runs HIL scenarios: builds the Line under test and the far end for a target (an emulated profile, or
two real modems), executes the steps in order with every wait bounded, and reports each step as it
finishes plus a pass/fail table. `python -m hil.runner` (and `callgate hil`) is its command line:

    run SCENARIO|all --profile NAME|all [--json]            against the emulator of each profile
    run SCENARIO --port AT --far-port AT --far-number N --line-number N [--audio-port ...]   real modems
    list [--json]

Exit status: 0 every run passed (or did not apply), 1 a run failed, 2 a bad scenario file or argument.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from gateway.media.frames import frame_to_array, pcm_to_frames
from gateway.media.tones import dominant_frequency, rms_dbfs, sine
from gateway.modem.line import Line, LineState
from hil.far_end import TONE_AMPLITUDE, FarEnd
from hil.scenario_file import (FAULTS, Scenario, ScenarioError, Step, find_scenario, load_scenario,
                               load_scenarios)
from hil.targets import EmulatorTarget, HardwareTarget, LineSetup, TargetError, emulator_plans

log = logging.getLogger(__name__)

POLL = 0.05                 # seconds between looks at the line while an expectation waits
ACTION_TIMEOUT = 30.0       # bound on one action step (an SMS send gets SMS_TIMEOUT)
SMS_TIMEOUT = 90.0
START_WITHIN = 30.0         # the implicit start: the line must be idle this soon
TONE_TOLERANCE = 20.0       # Hz either side of the expected tone
TONE_WINDOW = 0.5           # seconds of audio a tone must fill
TONE_MIN_DBFS = -30.0       # quieter than this is not the tone
FRAMES_KEPT = 3000          # 60 s of received audio
TRANSCRIPT_TAIL = 25        # emulator lines shown with a failure
WITNESS_WITHIN = 20.0

PASS, FAIL, NOT_RUN, NOT_APPLICABLE = "pass", "fail", "not run", "not applicable"


class StepFailed(Exception):
    """An expectation that was not met, or an action that could not be done; the message says what was seen."""


@dataclass
class StepResult:
    index: int
    step: str
    status: str
    seconds: float
    detail: str = ""


@dataclass
class RunResult:
    scenario: str
    target: str
    status: str             # pass | fail | not applicable
    seconds: float = 0.0
    reason: str = ""
    steps: list[StepResult] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class Observer:
    """Listener of the Line under test: every event with the monotonic time it arrived."""

    def __init__(self) -> None:
        self.states: list[tuple[float, str, str | None, str]] = []
        self.incoming: list[tuple[float, object]] = []
        self.ended: list[tuple[float, object]] = []
        self.digits: list[tuple[float, str]] = []
        self.frames: list[tuple[float, np.ndarray]] = []
        self.sms: list[tuple[float, object]] = []

    def line_changed(self, line) -> None:
        self.states.append((time.monotonic(), line.state.value, line.error, line.health.registration))

    def incoming_call(self, line, call) -> None:
        self.incoming.append((time.monotonic(), call))

    def call_ended(self, line, call) -> None:
        self.ended.append((time.monotonic(), call))

    def dtmf(self, line, call, digit) -> None:
        self.digits.append((time.monotonic(), digit))

    def audio_in(self, line, call, frame) -> None:
        self.frames.append((time.monotonic(), frame_to_array(frame)))
        if len(self.frames) > FRAMES_KEPT + 500:
            del self.frames[:500]

    def call_progress(self, line, call, stage) -> None:
        pass

    def sms_received(self, line, message) -> None:
        self.sms.append((time.monotonic(), message))


def find_tone(samples: np.ndarray, freq: float) -> tuple[bool, float, float]:
    """(found, frequency, level dBFS): a TONE_WINDOW stretch whose strongest component is freq ± tolerance;
    when not found, the loudest stretch's frequency and level."""
    window = int(TONE_WINDOW * 8000)
    best = (0.0, float("-inf"))
    if samples.size < window:
        return False, dominant_frequency(samples) if samples.size else 0.0, rms_dbfs(samples)
    for start in range(0, samples.size - window + 1, window // 2):
        chunk = samples[start:start + window]
        level = rms_dbfs(chunk)
        if level < TONE_MIN_DBFS:
            continue
        measured = dominant_frequency(chunk)
        if abs(measured - freq) <= TONE_TOLERANCE:
            return True, measured, level
        if level > best[1]:
            best = (measured, level)
    return False, best[0], best[1]


class ScenarioRun:
    """One scenario against one target."""

    def __init__(self, scenario: Scenario, target, progress: Callable[[StepResult, int], None] | None = None) -> None:
        self.scenario = scenario
        self.target = target
        self.progress = progress
        self.line: Line | None = None
        self.far: FarEnd | None = None
        self.obs = Observer()
        self._line_task: asyncio.Task | None = None
        self._dial: asyncio.Task | None = None
        self._witness: tuple[Line, FarEnd, Observer, asyncio.Task] | None = None
        self._first_port: str | None = None
        self._mark_time = time.monotonic()
        self._mark_wall = time.time()
        self._mark_heard = 0
        self._mark_far_dtmf = 0

    # --- driving --------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        sc = self.scenario
        result = RunResult(sc.name, self.target.name, PASS)
        missing = self.target.missing(sc.needs)
        if missing:
            result.status, result.reason = NOT_APPLICABLE, missing
            return result
        started = time.monotonic()
        steps = list(sc.substitute(self.target.values))
        if not any(s.side == "line" and s.action == "start" for s in steps):
            steps[:0] = [Step(-2, "line", "start", {}), Step(-1, "expect", "state", {"state": "idle"}, START_WITHIN)]
        try:
            try:
                await self._open()
            except Exception as exc:      # a broken profile or emulator fails this run, not the others
                result.status, result.reason = FAIL, f"setup: {type(exc).__name__}: {exc}"
                return result
            try:
                await asyncio.wait_for(self._steps(steps, result), sc.timeout)
            except asyncio.TimeoutError:
                result.status = FAIL
                result.reason = f"the scenario did not finish within its timeout of {sc.timeout:g} s"
        finally:
            if result.status == FAIL:
                result.transcript = self._transcript_tail()
            await self._close()
            result.seconds = round(time.monotonic() - started, 2)
        return result

    async def _steps(self, steps: list[Step], result: RunResult) -> None:
        total = len(steps)
        for n, step in enumerate(steps):
            began = time.monotonic()
            status, detail = PASS, ""
            try:
                detail = await self._do(step) or ""
            except StepFailed as exc:
                status, detail = FAIL, str(exc)
            except asyncio.TimeoutError:
                status, detail = FAIL, "no result in time"
            except asyncio.CancelledError:
                raise
            except Exception as exc:          # an action the line or the far end refused
                status, detail = FAIL, f"{type(exc).__name__}: {exc}"
            item = StepResult(n + 1, step.describe(), status, round(time.monotonic() - began, 2), detail)
            result.steps.append(item)
            if self.progress is not None:
                self.progress(item, total)
            if status == FAIL:
                result.status = FAIL
                result.reason = f"step {n + 1} ({item.step}): {detail}"
                for rest, later in enumerate(steps[n + 1:], start=n + 2):
                    result.steps.append(StepResult(rest, later.describe(), NOT_RUN, 0.0))
                return

    async def _open(self) -> None:
        sc = self.scenario
        witness = any(s.side == "witness" for s in sc.steps)
        setup, self.far = await self.target.open(ring_interval=sc.ring_interval, by_id="by_id" in sc.tags,
                                                 witness=witness)
        self.line = self._make_line("hil", setup, self.obs)
        self._first_port = setup.at_port

    def _make_line(self, line_id: str, setup: LineSetup, listener) -> Line:
        return Line(line_id, setup.profile, setup.at_port, setup.audio_port, listener,
                    audio_opener=setup.audio_opener, locate=setup.locate,
                    health_interval=self.scenario.health_interval)

    async def _close(self) -> None:
        tasks = [t for t in (self._dial, self._line_task) if t is not None]
        if self._witness is not None:
            tasks.append(self._witness[3])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.target.close()
        except Exception:
            log.exception("closing the target failed")

    def _transcript_tail(self) -> list[str]:
        lines = self.target.transcript()[-TRANSCRIPT_TAIL:]
        return [f"{time.strftime('%H:%M:%S', time.localtime(t))}.{int(t % 1 * 1000):03d} {d} {text!r}"
                for t, d, text in lines]

    def _mark(self) -> None:
        self._mark_time = time.monotonic()
        self._mark_wall = time.time()
        if self.far is not None:
            self._mark_heard = self.far.heard_mark()
            self._mark_far_dtmf = len(self.far.dtmf_received())

    async def _do(self, step: Step) -> str | None:
        if step.side == "expect" and step.action == "steady":
            return await asyncio.wait_for(self._expect_steady(step), step.within + step.args["seconds"] + 5.0)
        if step.side == "expect":
            return await asyncio.wait_for(self._expect(step), step.within + 5.0)
        self._mark()
        if step.side == "far":
            return await asyncio.wait_for(self._far(step), SMS_TIMEOUT if step.action == "send_sms" else ACTION_TIMEOUT)
        if step.side == "line":
            return await asyncio.wait_for(self._line_action(step), SMS_TIMEOUT if step.action == "send_sms" else ACTION_TIMEOUT)
        if step.side == "wait":
            await asyncio.sleep(step.args["seconds"])
            return None
        return await self._witness_call(step)

    # --- far side -----------------------------------------------------------------------------
    async def _far(self, step: Step) -> str | None:
        far, a = self.far, step.args
        assert far is not None
        act = step.action
        if act == "ring":
            await far.ring(a["caller"], self.target.values["line_number"])
        elif act == "hangup":
            await far.hangup()
        elif act == "play_tone":
            await far.play_tone(a["freq"], a["seconds"])
        elif act == "send_dtmf":
            await far.send_dtmf(a["digits"])
        elif act == "outcome":
            await far.outcome(a["outcome"], a["after"])
        elif act == "send_sms":
            await far.send_sms(a["text"], far.number, self.target.values["line_number"])
        elif act in FAULTS:
            await far.fault(act, a)
            self.target.after_fault()
        return None

    # --- line side ----------------------------------------------------------------------------
    async def _line_action(self, step: Step) -> str | None:
        line, a = self.line, step.args
        assert line is not None
        act = step.action
        if act == "start":
            self._line_task = asyncio.create_task(line.run())
        elif act == "answer":
            await line.answer()
        elif act == "dial":
            self._dial = asyncio.create_task(line.dial(a["number"], timeout=a["timeout"]))
        elif act == "hangup":
            await line.hangup(a["reason"])
        elif act == "play_tone":
            frames = pcm_to_frames(sine(a["freq"], a["seconds"], amplitude=TONE_AMPLITUDE))
            line.set_audio_source(lambda: frames.pop(0) if frames else b"")
        elif act == "send_dtmf":
            await line.send_dtmf(a["digits"])
        elif act == "send_sms":
            refs = await line.send_sms(a["number"], a["text"])
            return f"{len(refs)} part(s), references {refs}"
        return None

    # --- expectations -------------------------------------------------------------------------
    async def _expect(self, step: Step) -> str:
        check = getattr(self, f"_check_{step.action}")
        deadline = time.monotonic() + step.within
        while True:
            ok, seen = check(step.args)
            if ok:
                return seen
            if time.monotonic() >= deadline:
                raise StepFailed(f"not within {step.within:g} s: {seen}")
            if self._line_task is not None and self._line_task.done():
                exc = self._line_task.exception() if not self._line_task.cancelled() else None
                raise StepFailed(f"the line stopped running ({exc!r}); {seen}")
            await asyncio.sleep(POLL)

    def _since(self, events: list) -> list:
        return [e for e in events if e[0] >= self._mark_time]

    def _check_incoming(self, a) -> tuple[bool, str]:
        calls = [c for _, c in self._since(self.obs.incoming)]
        if any(c.caller == a["number"] for c in calls):
            return True, f"incoming call from {a['number']}"
        return False, f"incoming calls seen: {[c.caller for c in calls]}" if calls else "no incoming call"

    def _check_state(self, a) -> tuple[bool, str]:
        line = self.line
        seen = [s for _, s, _, _ in self._since(self.obs.states)]
        if line.state.value == a["state"] or a["state"] in seen:
            return True, f"line {a['state']}" + (f" ({line.error})" if line.error else "")
        return False, f"line is {line.state.value} (error {line.error!r}); states since the last action: {seen}"

    async def _expect_steady(self, step: Step) -> str:
        a = step.args
        line = self.line
        deadline = time.monotonic() + step.within
        while line.state.value != a["state"]:
            if time.monotonic() >= deadline:
                raise StepFailed(f"line is {line.state.value}, not {a['state']} (error {line.error!r})")
            await asyncio.sleep(POLL)
        since = time.monotonic()
        while time.monotonic() - since < a["seconds"]:
            changes = [s for t, s, _, _ in self.obs.states if t >= since and s != a["state"]]
            if changes or line.state.value != a["state"]:
                raise StepFailed(f"line left {a['state']} after {time.monotonic() - since:.1f} s: {changes} "
                                 f"(error {line.error!r})")
            await asyncio.sleep(POLL)
        return f"line stayed {a['state']} for {a['seconds']:g} s"

    def _check_dtmf(self, a) -> tuple[bool, str]:
        got = "".join(d for _, d in self._since(self.obs.digits))
        return got == a["digits"], f"digits received: {got!r}"

    def _check_far_dtmf(self, a) -> tuple[bool, str]:
        got = self.far.dtmf_received()[self._mark_far_dtmf:]
        return got == a["digits"], f"the far end received {got!r}"

    def _check_line_hears(self, a) -> tuple[bool, str]:
        frames = [f for _, f in self._since(self.obs.frames)]
        samples = np.concatenate(frames) if frames else np.zeros(0, np.int16)
        found, freq, level = find_tone(samples, a["freq"])
        what = f"{freq:.0f} Hz at {level:.0f} dBFS" if np.isfinite(level) else "silence"
        return found, f"the line heard {what} in {samples.size / 8000:.1f} s of audio"

    def _check_far_hears(self, a) -> tuple[bool, str]:
        samples = self.far.heard_since(self._mark_heard)
        found, freq, level = find_tone(samples, a["freq"])
        what = f"{freq:.0f} Hz at {level:.0f} dBFS" if np.isfinite(level) else "silence"
        return found, f"the far end heard {what} in {samples.size / 8000:.1f} s of audio"

    def _check_ended(self, a) -> tuple[bool, str]:
        reasons = a["reason"] if isinstance(a["reason"], list) else [a["reason"]]
        ended = [c.end_reason for _, c in self._since(self.obs.ended)]
        if any(r in reasons for r in ended):
            return True, f"call ended: {next(r for r in ended if r in reasons)}"
        return False, f"calls ended since the last action: {ended}" if ended else \
            f"no call ended (line {self.line.state.value})"

    def _check_dial_result(self, a) -> tuple[bool, str]:
        wanted = a["outcome"] if isinstance(a["outcome"], list) else [a["outcome"]]
        task = self._dial
        if task is None:
            raise StepFailed("no dial step ran before this expectation")
        if not task.done():
            call = self.line.call
            stages = [s for s, _ in call.progress] if call is not None else []
            return False, f"still dialling (progress {stages})"
        if task.exception() is not None:
            raise StepFailed(f"dial raised {task.exception()!r}")
        call = task.result()
        got = "answered" if call.answered_at is not None and not call.ended else call.end_reason
        stages = [s for s, _ in call.progress]
        if got not in wanted:       # the dial is over: waiting longer cannot change its outcome
            raise StepFailed(f"outcome {got}, expected {' or '.join(wanted)} (progress {stages})")
        return True, f"outcome {got} (progress {stages})"

    def _check_progress(self, a) -> tuple[bool, str]:
        call = self._dial.result() if self._dial is not None and self._dial.done() else self.line.call
        stages = [s for s, _ in call.progress] if call is not None else []
        it = iter(stages)
        return all(any(s == want for s in it) for want in a["stages"]), f"progress {stages}"

    def _check_sms(self, a) -> tuple[bool, str]:
        got = [m for _, m in self._since(self.obs.sms)]
        for m in got:
            if m.sender == a["sender"] and m.text == a["text"]:
                return True, f"SMS from {m.sender}, {m.parts} part(s), {len(m.text)} characters"
        return False, f"SMS received: {[(m.sender, m.text[:30], m.missing) for m in got]}" if got else "no SMS received"

    def _check_far_sms(self, a) -> tuple[bool, str]:
        got = self.far.sms_received()
        for m in got:
            if m["number"] == a["number"] and m["text"] == a["text"] and m.get("complete", True):
                return True, f"the far end received the text ({len(m['text'])} characters)"
        return False, f"the far end received: {[(m['number'], m['text'][:30]) for m in got]}" if got else \
            "the far end received no SMS"

    def _check_registration(self, a) -> tuple[bool, str]:
        seen = [r for _, _, _, r in self._since(self.obs.states)]
        now = self.line.health.registration
        return now == a["state"] or a["state"] in seen, f"registration {now} (seen {seen})"

    def _check_recoveries(self, a) -> tuple[bool, str]:
        h = self.line.health
        return h.recoveries >= a["at_least"], f"{h.recoveries} recoveries (last: {h.last_recovery})"

    def _check_reports(self, a) -> tuple[bool, str]:
        text = a["text"].lower()
        errors = [e for _, _, e, _ in self._since(self.obs.states) if e] + ([self.line.error] if self.line.error else [])
        health = json.dumps(self.line.health.as_dict())
        if any(text in e.lower() for e in errors) or text in health.lower():
            return True, f"reported: {next((e for e in errors if text in e.lower()), health)}"
        return False, f"errors reported: {errors}; health {health}"

    def _check_far_received(self, a) -> tuple[bool, str]:
        want = a["command"].lower()
        sent = [text for t, d, text in self.target.transcript() if d == ">" and t >= self._mark_wall]
        if any(want in text.lower() for text in sent):
            return True, f"the modem was sent {a['command']}"
        return False, f"commands since the last action: {sent[-8:]}"

    def _check_port_changed(self, a) -> tuple[bool, str]:
        now = self.line.at_port
        return now != self._first_port, f"AT port {self._first_port} -> {now}"

    def _check_far_state(self, a) -> tuple[bool, str]:
        state = self.far.state()
        return state == a["state"], f"far end {state}"

    # --- the witness line -----------------------------------------------------------------------
    async def _witness_call(self, step: Step) -> str:
        """A whole inbound call on the second, healthy line while the first one may be in trouble."""
        if self._witness is None:
            pair = self.target.witness_setup()
            if pair is None:
                raise StepFailed("this target has no witness line")
            setup, far = pair
            obs = Observer()
            wline = self._make_line("witness", setup, obs)
            self._witness = (wline, far, obs, asyncio.create_task(wline.run()))
        wline, far, obs, _ = self._witness
        during = step.args["during"]
        seen = {self.line.state.value}
        began = time.monotonic()

        async def until(pred, what: str) -> None:
            deadline = time.monotonic() + WITNESS_WITHIN
            while not pred():
                seen.add(self.line.state.value)
                if time.monotonic() > deadline:
                    raise StepFailed(f"witness: {what} not within {WITNESS_WITHIN:g} s "
                                     f"(witness line {wline.state.value}, error {wline.error!r})")
                await asyncio.sleep(POLL)
        await until(lambda: wline.state == LineState.IDLE, "line idle")
        number = self.target.values["far_number"]
        await far.ring(number, self.target.values["line_number"])
        await until(lambda: any(c.caller == number for t, c in obs.incoming if t >= began), "incoming call")
        await wline.answer()
        await far.send_dtmf("7")
        await until(lambda: [d for t, d in obs.digits if t >= began] == ["7"], "DTMF 7")
        await far.hangup()
        await until(lambda: any(c.end_reason == "customer_hung_up" for t, c in obs.ended if t >= began), "call end")
        seen.add(self.line.state.value)
        seen |= {s for t, s, _, _ in self.obs.states if t >= began}
        if during and not seen <= set(during):
            raise StepFailed(f"the witness call completed, but the line under test was {sorted(seen)} meanwhile, "
                             f"not only {during}")
        return f"witness call done in {time.monotonic() - began:.1f} s while the line under test was {sorted(seen)}"


async def run_one(scenario: Scenario, target, progress=None) -> RunResult:
    return await ScenarioRun(scenario, target, progress).run()


# --- command line ---------------------------------------------------------------------------------
def build_parser(prog: str = "callgate hil") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="HIL scenarios against emulated or real modems "
                                     "(docs/hil.md).")
    sub = parser.add_subparsers(dest="hil_command", required=True, metavar="SUBCOMMAND")
    r = sub.add_parser("run", help="run a scenario (or 'all') against an emulated profile or real modems")
    r.add_argument("scenario", help="scenario name (hil/scenarios/NAME.toml), a path, 'all', or a comma list")
    r.add_argument("--profile", help="emulated profile id, 'all', or a comma list; with --port: the line's profile")
    r.add_argument("--port", help="real hardware: AT port of the modem under test")
    r.add_argument("--audio-port", help="real hardware: its audio port or sound card name")
    r.add_argument("--far-port", help="real hardware: AT port of the second modem (the far end)")
    r.add_argument("--far-audio-port", help="real hardware: the far modem's audio port or sound card")
    r.add_argument("--far-profile", help="real hardware: the far modem's profile (detected when absent)")
    r.add_argument("--far-number", help="real hardware: the far modem's phone number")
    r.add_argument("--line-number", help="real hardware: the phone number of the modem under test")
    r.add_argument("--json", action="store_true", help="machine-readable results")
    r.add_argument("-v", "--verbose", action="store_true", help="log the line's and emulator's debug output")
    ls = sub.add_parser("list", help="list the scenarios, what they need and the profiles they apply to")
    ls.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None, prog: str = "callgate hil") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.CRITICAL,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.hil_command == "list":
            return _cmd_list(args)
        return asyncio.run(_cmd_run(args))
    except (ScenarioError, TargetError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _scenarios(spec: str) -> list[Scenario]:
    if spec == "all":
        return load_scenarios()
    return [load_scenario(find_scenario(name.strip())) for name in spec.split(",") if name.strip()]


def _cmd_list(args) -> int:
    plans = emulator_plans()
    rows = []
    for sc in load_scenarios():
        applies, skipped = [], []
        for pid in plans:
            why = EmulatorTarget(pid, plans=plans).missing(sc.needs)
            (skipped if why else applies).append(pid)
        rows.append({"scenario": sc.name, "title": sc.title, "needs": sorted(sc.needs), "profiles": applies,
                     "not_applicable": skipped, "proves": sc.proves})
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from gateway.cli.output import table
    print(table([{**r, "profiles": ",".join(r["profiles"]) or "-"} for r in rows],
                [("scenario", "SCENARIO"), ("title", "WHAT IT DOES"), ("profiles", "EMULATED PROFILES")]))
    return 0


def _targets(args) -> list:
    if args.port:
        missing = [flag for flag, value in (("--far-port", args.far_port), ("--far-number", args.far_number),
                                            ("--line-number", args.line_number)) if not value]
        if missing:
            raise TargetError(f"real hardware needs {', '.join(missing)} (see docs/hil.md)")
        return [HardwareTarget(port=args.port, audio_port=args.audio_port, far_port=args.far_port,
                               far_audio_port=args.far_audio_port, far_number=args.far_number,
                               line_number=args.line_number, profile=args.profile, far_profile=args.far_profile)]
    if not args.profile:
        raise TargetError("name an emulated profile with --profile NAME (or 'all'), or real modems with --port")
    plans = emulator_plans()
    ids = list(plans) if args.profile == "all" else [p.strip() for p in args.profile.split(",") if p.strip()]
    return [EmulatorTarget(pid, plans=plans) for pid in ids]


async def _cmd_run(args) -> int:
    scenarios = _scenarios(args.scenario)
    targets = _targets(args)
    results: list[RunResult] = []
    for target in targets:
        if isinstance(target, HardwareTarget):
            await target.resolve_profiles()
        for sc in scenarios:
            if not args.json:
                print(f"== {sc.name} on {target.name}: {sc.title}", flush=True)

            def progress(item: StepResult, total: int) -> None:
                if not args.json:
                    print(f"  [{item.index:>2}/{total}] {item.status.upper():4}  {item.step}  "
                          f"({item.seconds:.2f} s){'  ' + item.detail if item.detail else ''}", flush=True)
            result = await run_one(sc, target, progress)
            results.append(result)
            if not args.json:
                if result.status == NOT_APPLICABLE:
                    print(f"  not applicable: {result.reason}")
                elif result.status == FAIL:
                    print(f"  FAIL: {result.reason}")
                    for line in result.transcript:
                        print(f"    | {line}")
    if args.json:
        json.dump([r.to_dict() for r in results], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        from gateway.cli.output import table
        print()
        print(table([{"scenario": r.scenario, "target": r.target, "result": r.status.upper(),
                      "seconds": f"{r.seconds:.1f}", "note": _note(r)} for r in results],
                    [("scenario", "SCENARIO"), ("target", "TARGET"), ("result", "RESULT"), ("seconds", "SECONDS"),
                     ("note", "NOTE")]))
    return 1 if any(r.status == FAIL for r in results) else 0


def _note(r: RunResult) -> str:
    text = r.reason if r.status != PASS else f"{len(r.steps)} steps"
    return text if len(text) <= 100 else text[:97] + "..."


if __name__ == "__main__":
    sys.exit(main())
