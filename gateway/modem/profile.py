"""Modem profiles: firmware_config/*.toml loaded into typed, validated objects.

A profile holds everything that differs between modem families (init commands, URC prefixes,
DTMF encoding, how and when audio is switched on). Code asks the profile; it never tests a
model name. A malformed profile is refused with the file and the key that is wrong.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gateway.modem.call_events import (CALL_STATES, DTMF_ENCODINGS, END_REASONS, REGISTRATION, Event,
                                        EventRule, classify)
from gateway.tomltable import TomlTable, read_toml

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "firmware_config"
ENABLE_WHEN = ("pre_answer", "post_answer", "on_active")
AUDIO_TRANSPORTS = ("serial", "sounddevice", "inband")
SAMPLE_FORMATS = {"s16le": 2, "u8": 1, "ulaw": 1, "alaw": 1}
CALL_STYLES = ("gsm", "v253")


class ProfileError(ValueError):
    """A profile file is missing, unreadable or malformed; the message names file and key."""


@dataclass(frozen=True)
class UsbMatch:
    vid: str
    pid: str
    at_interface: int
    audio_interface: int | None


@dataclass(frozen=True)
class Timeouts:
    default: float
    answer: float
    dial: float
    hangup: float
    probe: float
    reset: float


@dataclass(frozen=True)
class Voice:
    """How to ask the modem whether this firmware carries voice at all."""
    probe: str
    expect: str
    missing: str


@dataclass(frozen=True)
class CallControl:
    style: str
    answer: tuple[str, ...]
    hangup: tuple[str, ...]
    dial: str
    dial_setup: tuple[str, ...]
    list_calls: str
    caller_id_wait: float
    ring_timeout: float
    events: tuple[EventRule, ...]


@dataclass(frozen=True)
class Dtmf:
    send: str
    send_digits: str
    events: tuple[EventRule, ...]
    inband: bool = False        # also detect digits in the caller's audio (auto: when the modem reports none)

    def decode(self, line: str) -> str | None:
        """The digit carried by a DTMF URC line, or None if the line is not one."""
        event = classify(self.events, line)
        return event.digit if event else None


@dataclass(frozen=True)
class Audio:
    transport: str
    device: str
    enable: str
    disable: str
    enable_when: str
    enable_delay_ms: int
    enable_retries: int
    enable_retry_interval_ms: int
    sample_rate: int
    sample_format: str
    frame_ms: int
    frame_bytes: int
    stop: str


@dataclass(frozen=True)
class Health:
    interval: float
    sim_query: str
    queries: tuple[str, ...]
    ims_query: str
    ims_registered: str


@dataclass(frozen=True)
class Recovery:
    reset: str
    reenumerate: float


@dataclass(frozen=True)
class Sms:
    supported: bool
    mode: str
    setup: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    id: str
    family: str
    description: str
    source: Path
    identify_commands: tuple[str, ...]
    manufacturer_pattern: str
    model_pattern: str
    usb: tuple[UsbMatch, ...]
    voice: Voice
    init_required: tuple[str, ...]
    init_optional: tuple[str, ...]
    timeouts: Timeouts
    calls: CallControl
    dtmf: Dtmf
    audio: Audio
    health: Health
    recovery: Recovery
    sms: Sms
    urc_prefixes: tuple[str, ...] = field(default_factory=tuple)

    def matches(self, manufacturer: str, model: str) -> bool:
        return bool(re.search(self.manufacturer_pattern, manufacturer, re.I)
                    and re.search(self.model_pattern, model, re.I))

    def classify(self, line: str) -> Event | None:
        """What an unsolicited line means for calls, DTMF, registration or SMS (None: nothing)."""
        return classify(self.calls.events, line) or classify(self.dtmf.events, line)


def _positive(value) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _commands(t: TomlTable, key: str, default=...) -> tuple[str, ...]:
    """A command or a list of commands."""
    value = t.get(key, (str, list), default)
    if isinstance(value, str):
        return (value,)
    return t.strings(key) if key in t.data else tuple(value)


def _rules(t: TomlTable, key: str, allowed: tuple[str, ...]) -> tuple[EventRule, ...]:
    rules = []
    for r in t.tables(key):
        kind = r.choice("event", allowed)
        states = r.get("states", dict, {})
        causes = r.get("causes", dict, {})
        valid = REGISTRATION if kind == "registration" else CALL_STATES
        for name, mapping in (("states", states), ("causes", causes)):
            for k, v in mapping.items():
                ok = valid if name == "states" else END_REASONS
                if v not in ok:
                    raise r.err(f"{name}.{k}", f"{v!r} is not one of {', '.join(ok)}")
        if kind in ("call_state", "registration") and not states:
            raise r.err("states", f"required for event {kind!r}")
        reason = r.get("reason", str, None)
        if reason is not None and reason not in END_REASONS:
            raise r.err("reason", f"{reason!r} is not one of {', '.join(END_REASONS)}")
        rule = EventRule(pattern=re.compile(r.regex("match")), kind=kind, states=dict(states),
                         voice_mode=r.get("voice_mode", str, None), reason=reason, causes=dict(causes),
                         encoding=r.choice("encoding", DTMF_ENCODINGS) if "encoding" in r.data else "char")
        needs = {"caller_id": "number", "dtmf": "digit", "call_state": "stat", "registration": "stat",
                 "signal": "value"}.get(kind)
        if needs and needs not in rule.pattern.groupindex:
            raise r.err("match", f"event {kind!r} needs a (?P<{needs}>...) group")
        r.finish()
        rules.append(rule)
    return tuple(rules)


def _merged(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The file's tables laid over those of the profile it `extends` (tables merge, values replace)."""
    data = read_toml(path, ProfileError)
    base_id = data.get("profile", {}).pop("extends", None) if isinstance(data.get("profile"), dict) else None
    if base_id is None:
        return data
    base_path = path.with_name(f"{base_id}.toml")
    if not isinstance(base_id, str) or not base_path.exists() or base_path in seen:
        why = "extends itself in a loop" if base_path in seen else "no such profile in the same folder"
        raise ProfileError(f"{path}: profile.extends: {base_id!r}: {why}")

    def lay(under: dict, over: dict) -> dict:
        out = dict(under)
        for key, value in over.items():
            out[key] = lay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out
    return lay(_merged(base_path, seen + (path,)), data)


def _dtmf(d: TomlTable, audio: Audio) -> Dtmf:
    events = _rules(d, "events", ("dtmf",))
    inband = d.choice("inband", ("auto", "on", "off")) if "inband" in d.data else "auto"
    # a V.253 modem reports digits inside its audio stream itself (DLE codes)
    auto = not events and audio.transport != "inband"
    return Dtmf(send=d.get("send", str), send_digits=d.get("send_digits", str, "0123456789*#ABCD"), events=events,
                inband=inband == "on" or (inband == "auto" and auto))


def load_profile_file(path: Path) -> Profile:
    r = TomlTable(_merged(path), path, ProfileError)
    meta, ident, init = r.table("profile"), r.table("identify"), r.table("init")
    t, c, d, a = r.table("timeouts"), r.table("calls"), r.table("dtmf"), r.table("audio")
    v, h, rec, s = r.table("voice", {}), r.table("health", {}), r.table("recovery", {}), r.table("sms", {})
    usb = []
    for u in ident.tables("usb"):
        usb.append(UsbMatch(u.get("vid", str).lower(), u.get("pid", str).lower(),
                            u.get("at_interface", int), u.get("audio_interface", int, None)))
        u.finish()
    audio = Audio(
        transport=a.choice("transport", AUDIO_TRANSPORTS), device=a.get("device", str, ""),
        enable=a.get("enable", str, ""), disable=a.get("disable", str, ""),
        enable_when=a.choice("enable_when", ENABLE_WHEN),
        enable_delay_ms=a.get("enable_delay_ms", int, 0), enable_retries=a.get("enable_retries", int, 0),
        enable_retry_interval_ms=a.get("enable_retry_interval_ms", int, 1000),
        sample_rate=a.get("sample_rate", int, check=_positive),
        sample_format=a.choice("sample_format", tuple(SAMPLE_FORMATS)),
        frame_ms=a.get("frame_ms", int, check=_positive), frame_bytes=a.get("frame_bytes", int, check=_positive),
        stop=a.get("stop", str, ""))
    width = SAMPLE_FORMATS[audio.sample_format]
    if audio.sample_rate * audio.frame_ms // 1000 * width != audio.frame_bytes:
        raise a.err("frame_bytes", f"{audio.frame_bytes} does not match {audio.sample_rate} Hz "
                                   f"{audio.sample_format} {audio.frame_ms} ms")
    if audio.transport == "sounddevice" and not audio.device:
        raise a.err("device", "required when transport is 'sounddevice' (a name the sound card shows)")
    style = c.choice("style", CALL_STYLES) if "style" in c.data else "gsm"
    profile = Profile(
        id=meta.get("id", str), family=meta.get("family", str), description=meta.get("description", str, ""),
        source=path, identify_commands=ident.strings("commands"),
        manufacturer_pattern=ident.regex("manufacturer"), model_pattern=ident.regex("model"), usb=tuple(usb),
        voice=Voice(probe=v.get("probe", str, ""), expect=v.regex("expect") if "expect" in v.data else "",
                    missing=v.get("missing", str, "")),
        init_required=init.strings("required"), init_optional=init.strings("optional", ()),
        timeouts=Timeouts(*(t.get(k, float, check=_positive) for k in ("default", "answer", "dial", "hangup", "probe")),
                          reset=t.get("reset", float, 60.0, check=_positive)),
        calls=CallControl(
            style=style, answer=_commands(c, "answer"), hangup=_commands(c, "hangup"), dial=c.get("dial", str),
            dial_setup=_commands(c, "dial_setup", ()),
            list_calls=c.get("list_calls", str, ""),
            caller_id_wait=c.get("caller_id_wait", float, 1.5, check=_positive),
            ring_timeout=c.get("ring_timeout", float, 8.0, check=_positive),
            events=_rules(c, "events", ("ring", "caller_id", "call_state", "dialing", "alerting", "active",
                                        "ended", "registration", "signal", "sms_stored", "sms_delivered"))),
        dtmf=_dtmf(d, audio),
        audio=audio,
        health=Health(interval=h.get("interval", float, 60.0, check=_positive), sim_query=h.get("sim_query", str, ""),
                      queries=h.strings("queries", ()),
                      ims_query=h.get("ims_query", str, ""),
                      ims_registered=h.regex("ims_registered") if "ims_registered" in h.data else ""),
        recovery=Recovery(reset=rec.get("reset", str, ""),
                          reenumerate=rec.get("reenumerate", float, 20.0, check=_positive)),
        sms=Sms(supported=s.get("supported", bool, False), mode=s.get("mode", str, "pdu"),
                setup=s.strings("setup", ())),
        urc_prefixes=(urc := r.table("urc")).strings("prefixes"),
    )
    for table in (meta, ident, init, t, c, d, a, v, h, rec, s, urc, r):
        table.finish()
    if profile.sms.mode not in ("pdu", "text"):
        raise s.err("mode", f"{profile.sms.mode!r} is not one of pdu, text")
    if path.stem != profile.id:
        raise meta.err("id", f"{profile.id!r} must equal the file name {path.stem!r}")
    return profile


def profile_dir() -> Path:
    return Path(os.environ.get("CALLGATE_FIRMWARE_CONFIG", DEFAULT_DIR))


def load_profile(ref: str, directory: Path | None = None) -> Profile:
    """A profile by id (file stem in the profile folder) or by path to a .toml file."""
    path = Path(ref)
    if path.suffix != ".toml":
        path = (directory or profile_dir()) / f"{ref}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in (directory or profile_dir()).glob("*.toml")))
        raise ProfileError(f"{path}: no such modem profile (known: {known or 'none'})")
    return load_profile_file(path)


def load_profiles(directory: Path | None = None) -> list[Profile]:
    return [load_profile_file(p) for p in sorted((directory or profile_dir()).glob("*.toml"))]
