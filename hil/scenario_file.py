"""HIL scenario files (hil/scenarios/*.toml): one behaviour of a phone line described from the outside,
as steps on two sides — `far` (the other end of the line: the emulator's scripting API, or a second real
modem), `line` (the Line under test), `expect` (what must be observed, with a time bound), `witness`
(a second, healthy line that must keep working) and `wait` (real time passing) — and the capabilities
the scenario needs.

Loading checks every step against STEP_KINDS below; every error names the file and the key, e.g.
`outbound_busy.toml: steps[2].outcome: 'bussy' is not one of answer, busy, no_answer, reject`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from gateway.tomltable import TomlTable, read_toml

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
DEFAULT_WITHIN = 10.0       # seconds an expectation waits when the step does not say
DEFAULT_TIMEOUT = 120.0     # seconds the whole scenario may take
PLACEHOLDERS = ("far_number", "line_number", "reset_command")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")

OUTCOMES = ("answer", "busy", "no_answer", "reject")
LINE_STATES = ("starting", "idle", "ringing", "dialing", "in_call", "recovering", "failed")
FAR_STATES = ("idle", "ringing", "dialing", "active", "gone")
REGISTRATIONS = ("home", "roaming", "searching", "denied", "unregistered", "unknown")

# Far-end actions that only an emulator can do; the name is the capability a far end must offer.
FAULTS = ("unplug", "replug", "reset", "wedge", "no_answer", "garbage", "urc_inside_response",
          "lose_registration", "regain_registration", "sim_missing", "slow")
# Capabilities a scenario may name in [scenario] needs (more are derived from its steps).
# imei: the modem has an identity (IMEI) by which a line can find it again under a new /dev name.
CAPABILITIES = ("inbound", "outbound", "audio", "caller_id", "dtmf_in", "dtmf_out", "sms", "registration",
                "imei", "witness", "transcript") + FAULTS


@dataclass(frozen=True)
class Key:
    kind: type | tuple[type, ...]
    required: bool = True
    choices: tuple[str, ...] = ()
    default: object = None


# step side -> action -> its keys. `within` (seconds) is allowed on every expect step.
STEP_KINDS: dict[str, dict[str, dict[str, Key]]] = {
    "far": {
        "ring": {"caller": Key(str)},
        "answer": {},
        "hangup": {},
        "play_tone": {"freq": Key(float), "seconds": Key(float, False, default=2.0)},
        "send_dtmf": {"digits": Key(str)},
        "outcome": {"outcome": Key(str, choices=OUTCOMES), "after": Key(float, False, default=1.0)},
        "send_sms": {"text": Key(str)},
        "unplug": {}, "replug": {}, "reset": {}, "wedge": {},
        "no_answer": {"on": Key(bool, False, default=True)},
        "garbage": {"data": Key(str)},
        # urc: the line to slip in; or dtmf: the far end's own DTMF notification for that digit
        "urc_inside_response": {"urc": Key(str, False, default=""), "dtmf": Key(str, False, default="")},
        "lose_registration": {}, "regain_registration": {},
        "sim_missing": {"missing": Key(bool, False, default=True)},
        "slow": {"seconds": Key(float)},
    },
    "line": {
        "start": {},
        "answer": {},
        "dial": {"number": Key(str), "timeout": Key(float, False)},
        "hangup": {"reason": Key(str, False, default="hung_up")},
        "play_tone": {"freq": Key(float), "seconds": Key(float, False, default=2.0)},
        "send_dtmf": {"digits": Key(str)},
        "send_sms": {"number": Key(str), "text": Key(str)},
    },
    "expect": {
        "incoming": {"number": Key(str)},
        "state": {"state": Key(str, choices=LINE_STATES)},
        "steady": {"state": Key(str, choices=LINE_STATES), "seconds": Key(float)},
        "dtmf": {"digits": Key(str)},
        "far_dtmf": {"digits": Key(str)},
        "line_hears": {"freq": Key(float)},
        "far_hears": {"freq": Key(float)},
        "ended": {"reason": Key((str, list))},
        "dial_result": {"outcome": Key((str, list))},
        "progress": {"stages": Key(list)},
        "sms": {"sender": Key(str), "text": Key(str)},
        "far_sms": {"number": Key(str), "text": Key(str)},
        "registration": {"state": Key(str, choices=REGISTRATIONS)},
        "recoveries": {"at_least": Key(int)},
        "reports": {"text": Key(str)},
        "far_received": {"command": Key(str)},
        "port_changed": {},
        "far_state": {"state": Key(str, choices=FAR_STATES)},
    },
    "witness": {
        "call": {"during": Key(list, False, default=[])},
    },
    # wait = "pause": let real time pass (a person takes seconds to plug a modem back in)
    "wait": {
        "pause": {"seconds": Key(float)},
    },
}
SIDES = tuple(STEP_KINDS)


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and the key."""


@dataclass(frozen=True)
class Step:
    index: int
    side: str                   # far | line | expect | witness | wait
    action: str
    args: dict
    within: float | None = None     # expect steps only

    def describe(self) -> str:
        shown = " ".join(f"{k}={_short(v)}" for k, v in self.args.items() if v not in (None, [], ""))
        return f"{self.side} {self.action}" + (f" {shown}" if shown else "")


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    title: str
    proves: str
    needs: frozenset[str]           # declared plus derived from the steps
    steps: tuple[Step, ...]
    timeout: float = DEFAULT_TIMEOUT
    health_interval: float | None = None
    ring_interval: float | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    def substitute(self, values: dict[str, str]) -> tuple[Step, ...]:
        """The steps with {far_number}, {line_number}, {reset_command} replaced."""
        def fill(value):
            if isinstance(value, str):
                return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), value)
            if isinstance(value, list):
                return [fill(v) for v in value]
            return value
        return tuple(Step(s.index, s.side, s.action, {k: fill(v) for k, v in s.args.items()}, s.within)
                     for s in self.steps)


def _short(value) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii") if any(ord(c) < 32 for c in text) else text
    return text if len(text) <= 40 else text[:37] + "..."


def scenario_paths(directory: Path = SCENARIO_DIR) -> list[Path]:
    return sorted(directory.glob("*.toml"))


def find_scenario(name_or_path: str, directory: Path = SCENARIO_DIR) -> Path:
    """A scenario by name (file stem in hil/scenarios/) or by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    candidate = directory / f"{name_or_path}.toml"
    if candidate.exists():
        return candidate
    known = ", ".join(p.stem for p in scenario_paths(directory))
    raise ScenarioError(f"no scenario {name_or_path!r} (known: {known})")


def load_scenarios(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    return [load_scenario(p) for p in scenario_paths(directory)]


def load_scenario(path: Path | str) -> Scenario:
    path = Path(path)
    try:
        data = read_toml(path, ScenarioError)
    except ScenarioError as exc:        # name the file as every other error does
        raise ScenarioError(str(exc).replace(str(path), path.name, 1)) from None
    root = TomlTable(data, Path(path.name), ScenarioError)
    head = root.table("scenario")
    title = head.get("title", str)
    proves = head.get("proves", str)
    declared = head.strings("needs", ())
    for i, need in enumerate(declared):
        if need not in CAPABILITIES:
            raise head.err(f"needs[{i}]", f"{need!r} is not one of {', '.join(CAPABILITIES)}")
    positive = lambda v: None if v > 0 else "must be greater than 0"      # noqa: E731
    timeout = head.get("timeout", float, DEFAULT_TIMEOUT, check=positive)
    health_interval = head.get("health_interval", float, None, check=positive)
    ring_interval = head.get("ring_interval", float, None, check=positive)
    tags = head.strings("tags", ())
    head.finish()
    tables = root.tables("steps")
    root.finish()
    if not tables:
        raise root.err("steps", "a scenario needs at least one [[steps]] entry")
    steps = tuple(_step(i, t) for i, t in enumerate(tables))
    needs = set(declared) | _derived_needs(steps)
    return Scenario(name=path.stem, path=path, title=title, proves=proves.strip(), needs=frozenset(needs),
                    steps=steps, timeout=timeout, health_interval=health_interval, ring_interval=ring_interval,
                    tags=tags)


def _step(index: int, t: TomlTable) -> Step:
    sides = [side for side in SIDES if side in t.data]
    if len(sides) != 1:
        where = f"steps[{index}]"
        got = ", ".join(sides) if sides else "none"
        raise ScenarioError(f"{t.source}: {where}: a step has exactly one of {', '.join(SIDES)} (got {got})")
    side = sides[0]
    actions = STEP_KINDS[side]
    action = t.get(side, str, check=lambda v: None if v in actions else
                   f"{v!r} is not one of {', '.join(actions)}")
    args = {}
    for key, spec in actions[action].items():
        if spec.required:
            value = t.get(key, spec.kind)
        else:
            value = t.get(key, spec.kind, spec.default)
        if spec.choices and value not in spec.choices:
            raise t.err(key, f"{value!r} is not one of {', '.join(spec.choices)}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise t.err(key, "expected a list of strings")
        _check_placeholders(t, key, value)
        args[key] = value
    within = None
    if side == "expect":
        within = t.get("within", float, DEFAULT_WITHIN, check=lambda v: None if v > 0 else "must be greater than 0")
    _check_values(t, side, action, args)
    t.finish()
    return Step(index, side, action, args, within)


def _check_placeholders(t: TomlTable, key: str, value) -> None:
    for text in value if isinstance(value, list) else [value]:
        if isinstance(text, str):
            for name in _PLACEHOLDER.findall(text):
                if name not in PLACEHOLDERS:
                    raise t.err(key, f"unknown placeholder {{{name}}} (known: {', '.join(PLACEHOLDERS)})")


def _check_values(t: TomlTable, side: str, action: str, args: dict) -> None:
    for key in ("freq",):
        if key in args and not 50 <= args[key] <= 3800:
            raise t.err(key, "a tone must lie between 50 and 3800 Hz (8 kHz telephone audio)")
    if "seconds" in args and args["seconds"] < 0 or action != "slow" and args.get("seconds") == 0:
        raise t.err("seconds", "must be greater than 0" if action != "slow" else "must be 0 or more")
    if args.get("dtmf") and (len(args["dtmf"]) != 1 or args["dtmf"].upper() not in "0123456789*#ABCD"):
        raise t.err("dtmf", f"{args['dtmf']!r}: one DTMF digit (0-9, *, #, A-D)")
    if "digits" in args and (not args["digits"] or any(d not in "0123456789*#ABCD" for d in args["digits"].upper())):
        raise t.err("digits", f"{args['digits']!r}: DTMF digits are 0-9, *, #, A-D")
    if side == "far" and action == "urc_inside_response" and bool(args["urc"]) == bool(args["dtmf"]):
        raise t.err("urc", "give either urc (a line) or dtmf (a digit)")
    if side == "expect" and action == "recoveries" and args["at_least"] < 0:
        raise t.err("at_least", "must be 0 or more")
    if side == "witness":
        for i, state in enumerate(args["during"]):
            if state not in LINE_STATES:
                raise t.err(f"during[{i}]", f"{state!r} is not one of {', '.join(LINE_STATES)}")
    if side == "expect" and action in ("progress",):
        if not args["stages"]:
            raise t.err("stages", "list at least one stage")


def _derived_needs(steps: tuple[Step, ...]) -> set[str]:
    needs: set[str] = set()
    for s in steps:
        if s.side == "far" and s.action in FAULTS:
            needs.add(s.action)
        if "sms" in s.action:
            needs.add("sms")
        if (s.side, s.action) in (("line", "dial"), ("far", "outcome"), ("expect", "dial_result")):
            needs.add("outbound")
        if (s.side, s.action) in (("far", "ring"), ("expect", "incoming")):
            needs.add("inbound")
        if s.action in ("play_tone", "line_hears", "far_hears"):
            needs.add("audio")
        if (s.side, s.action) in (("far", "send_dtmf"), ("expect", "dtmf")):
            needs.add("dtmf_in")
        if (s.side, s.action) in (("line", "send_dtmf"), ("expect", "far_dtmf")):
            needs.add("dtmf_out")
        if s.action == "registration":
            needs.add("registration")
        if s.side == "witness":
            needs.add("witness")
        if s.action == "far_received":
            needs.add("transcript")
    return needs
