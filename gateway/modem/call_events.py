"""Turning a modem's unsolicited lines into call events, driven by the profile's rules.

Each family announces calls its own way (SIMCom `VOICE CALL: BEGIN` and `+CLCC` lines, Quectel
`+QIND: "ccinfo"` with state -1 for a released call, Huawei `^ORIG/^CONF/^CONN/^CEND`, V.253 caller ID
tags between rings). A profile lists regular expressions with the event each one means; this module
holds those rules and applies them. It knows no model names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EVENTS = ("ring", "caller_id", "call_state", "dialing", "alerting", "active", "ended", "dtmf",
          "registration", "signal", "sms_stored", "sms_delivered")
CALL_STATES = ("dialing", "alerting", "active", "incoming", "waiting", "held", "released", "ignore")
END_REASONS = ("busy", "no_answer", "no_carrier", "rejected", "remote_hangup", "unreachable")
REGISTRATION = ("unregistered", "home", "searching", "denied", "unknown", "roaming")
DTMF_ENCODINGS = ("char", "ascii_code")
DTMF_DIGITS = "0123456789*#ABCD"


@dataclass(frozen=True)
class Event:
    kind: str
    number: str | None = None
    state: str | None = None        # call_state: one of CALL_STATES; registration: one of REGISTRATION
    reason: str | None = None       # ended: one of END_REASONS, or None when the rule does not say
    digit: str | None = None
    index: str | None = None        # the modem's call index, where the line carries one
    value: int | None = None        # signal: the raw quality figure
    line: str = ""


@dataclass(frozen=True)
class EventRule:
    pattern: re.Pattern
    kind: str
    states: dict[str, str] = field(default_factory=dict)   # captured `stat` -> call or registration state
    voice_mode: str | None = None                           # call_state: ignore lines whose `mode` differs
    reason: str | None = None                               # ended: fixed reason
    causes: dict[str, str] = field(default_factory=dict)    # ended: captured `cause` -> reason
    encoding: str = "char"                                  # dtmf

    def apply(self, line: str) -> Event | None:
        m = self.pattern.match(line)
        if not m:
            return None
        g = {k: v for k, v in m.groupdict().items() if v is not None}
        kind = self.kind
        if kind in ("call_state", "registration"):
            if self.voice_mode is not None and g.get("mode", self.voice_mode) != self.voice_mode:
                return Event("call_state", state="ignore", line=line)
            state = self.states.get(g.get("stat", ""))
            if state is None:
                return None
            return Event(kind, number=g.get("number"), state=state, index=g.get("index"), line=line)
        if kind == "dtmf":
            raw = g.get("digit", "").strip().strip('"')
            if self.encoding == "ascii_code":
                raw = chr(int(raw)) if raw.isdigit() and int(raw) < 128 else ""
            return Event("dtmf", digit=raw, line=line) if len(raw) == 1 and raw in DTMF_DIGITS else None
        if kind == "ended":
            reason = self.causes.get(g.get("cause", ""), self.reason)
            return Event("ended", reason=reason, index=g.get("index"), line=line)
        if kind == "signal":
            return Event("signal", value=int(g["value"]), line=line) if g.get("value", "").isdigit() else None
        return Event(kind, number=g.get("number"), index=g.get("index"), line=line)


def classify(rules: tuple[EventRule, ...], line: str) -> Event | None:
    """The event of the first rule that matches the line, or None."""
    for rule in rules:
        event = rule.apply(line)
        if event is not None:
            return event
    return None
