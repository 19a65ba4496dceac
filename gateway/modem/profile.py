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

from gateway.tomltable import TomlTable, read_toml

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "firmware_config"
ENABLE_WHEN = ("pre_answer", "post_answer", "on_active")
AUDIO_TRANSPORTS = ("serial", "sounddevice", "inband")
DTMF_ENCODINGS = ("char", "ascii_code")


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


@dataclass(frozen=True)
class CallControl:
    answer: str
    hangup: str
    dial: str
    list_calls: str
    ring: tuple[str, ...]
    caller_id: str
    call_list: str
    connected: tuple[str, ...]
    ended: tuple[str, ...]
    call_list_released_state: int


@dataclass(frozen=True)
class Dtmf:
    receive: tuple[str, ...]
    encoding: str
    send: str

    def decode(self, line: str) -> str | None:
        """The digit carried by a DTMF URC line, or None if the line is not one."""
        for prefix in self.receive:
            if line.startswith(prefix):
                value = line[len(prefix):].strip().split(",")[0].strip().strip('"')
                if self.encoding == "ascii_code":
                    value = chr(int(value)) if value.isdigit() else ""
                return value if len(value) == 1 and value in "0123456789*#ABCD" else None
        return None


@dataclass(frozen=True)
class Audio:
    transport: str
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
    init_required: tuple[str, ...]
    init_optional: tuple[str, ...]
    timeouts: Timeouts
    calls: CallControl
    dtmf: Dtmf
    audio: Audio
    urc_prefixes: tuple[str, ...] = field(default_factory=tuple)

    def matches(self, manufacturer: str, model: str) -> bool:
        return bool(re.search(self.manufacturer_pattern, manufacturer, re.I)
                    and re.search(self.model_pattern, model, re.I))


def load_profile_file(path: Path) -> Profile:
    r = TomlTable(read_toml(path, ProfileError), path, ProfileError)
    meta, ident, init = r.table("profile"), r.table("identify"), r.table("init")
    t, c, d, a = r.table("timeouts"), r.table("calls"), r.table("dtmf"), r.table("audio")
    usb = []
    for u in ident.tables("usb"):
        usb.append(UsbMatch(u.get("vid", str).lower(), u.get("pid", str).lower(),
                            u.get("at_interface", int), u.get("audio_interface", int, None)))
        u.finish()
    positive = lambda v: None if v > 0 else "must be greater than 0"  # noqa: E731
    audio = Audio(
        transport=a.choice("transport", AUDIO_TRANSPORTS), enable=a.get("enable", str, ""),
        disable=a.get("disable", str, ""), enable_when=a.choice("enable_when", ENABLE_WHEN),
        enable_delay_ms=a.get("enable_delay_ms", int, 0), enable_retries=a.get("enable_retries", int, 0),
        enable_retry_interval_ms=a.get("enable_retry_interval_ms", int, 1000),
        sample_rate=a.get("sample_rate", int, check=positive), sample_format=a.get("sample_format", str),
        frame_ms=a.get("frame_ms", int, check=positive), frame_bytes=a.get("frame_bytes", int, check=positive))
    if audio.sample_format == "s16le" and audio.sample_rate * audio.frame_ms // 1000 * 2 != audio.frame_bytes:
        raise a.err("frame_bytes", f"{audio.frame_bytes} does not match {audio.sample_rate} Hz s16le "
                                   f"{audio.frame_ms} ms")
    profile = Profile(
        id=meta.get("id", str), family=meta.get("family", str), description=meta.get("description", str, ""),
        source=path, identify_commands=ident.strings("commands"),
        manufacturer_pattern=ident.regex("manufacturer"), model_pattern=ident.regex("model"),
        usb=tuple(usb), init_required=init.strings("required"), init_optional=init.strings("optional", ()),
        timeouts=Timeouts(*(t.get(k, float, check=positive) for k in ("default", "answer", "dial", "hangup", "probe"))),
        calls=CallControl(
            answer=c.get("answer", str), hangup=c.get("hangup", str), dial=c.get("dial", str),
            list_calls=c.get("list_calls", str), ring=c.strings("ring"),
            caller_id=c.get("caller_id", str), call_list=c.get("call_list", str),
            connected=c.strings("connected"), ended=c.strings("ended"),
            call_list_released_state=c.get("call_list_released_state", int, 6)),
        dtmf=Dtmf(receive=d.strings("receive"), encoding=d.choice("encoding", DTMF_ENCODINGS),
                  send=d.get("send", str)),
        audio=audio,
        urc_prefixes=(urc := r.table("urc")).strings("prefixes"),
    )
    for table in (meta, ident, init, t, c, d, a, urc, r):
        table.finish()
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
