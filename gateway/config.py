"""The gateway's configuration: one TOML file, its schema and every default in one place.

Errors name the file and the key path (`callgate.toml: lines[0].at_port: missing`); TOML syntax
errors keep tomllib's line and column. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from gateway.center.agents import AgentConfig, break_states_problem
from gateway.center.hours import HoursOfOperation
from gateway.center.hours_config import check_reference, parse_hours
from gateway.center.profiles_config import agent_profiles, parse_routing_profiles, parse_security_profiles
from gateway.center.queues import QueueConfig
from gateway.center.routing_profiles import RoutingProfile
from gateway.center.security import SecurityProfile
from gateway.tomltable import TomlTable, read_toml

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_EMBEDDED_TCP = 1883
DEFAULT_EMBEDDED_WS = 9001
DEFAULT_WEB_PORT = 8080


class ConfigError(ValueError):
    pass


@dataclass
class MqttConfig:
    host: str | None = None          # None: run the embedded broker
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ws_url: str | None = None        # what browsers connect to
    audio_frame_ms: int = 20
    embedded_host: str = "127.0.0.1"
    embedded_tcp_port: int = DEFAULT_EMBEDDED_TCP
    embedded_ws_port: int = DEFAULT_EMBEDDED_WS

    @property
    def embedded(self) -> bool:
        return self.host is None


@dataclass
class WebConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = DEFAULT_WEB_PORT
    certfile: Path | None = None     # HTTPS: browsers allow the microphone only on localhost or HTTPS
    keyfile: Path | None = None


@dataclass
class LineConfig:
    id: str
    profile: str
    at_port: str
    audio_port: str | None
    flow: Path
    number: str = ""
    audio_device: str | None = None         # sound card name, for profiles whose audio is a sound card
    outbound_queue: str | None = None       # the queue whose caller ID and records outbound calls use
    health_interval: float | None = None    # seconds between health checks (default: the profile's)
    pin: str | None = None                  # SIM PIN, sent once at start-up if the SIM asks for it
    sms_flow: Path | None = None            # flow run for each received SMS (its prompts are the reply)


@dataclass
class Config:
    source: Path
    gateway_id: str = "callgate"
    data_dir: Path = Path("var")
    recording: bool = True                      # false: no call is recorded, whatever queues and flows say
    recording_mode: str = "stereo"              # "stereo" (caller left, agent right) | "mono" (mixed)
    hold_music: Path | None = None              # WAV looped to waiting callers (default: a generated chime)
    recording_keep_days: float | None = None    # remove recordings older than this
    recording_max_mb: float | None = None       # and the oldest beyond this total
    break_states: tuple[str, ...] = ()          # the break states agents may pick (e.g. Lunch, Training)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    web: WebConfig = field(default_factory=WebConfig)
    lines: list[LineConfig] = field(default_factory=list)
    queues: list[QueueConfig] = field(default_factory=list)
    agents: list[AgentConfig] = field(default_factory=list)
    routing_profiles: dict[str, RoutingProfile] = field(default_factory=dict)    # by id, built-in "default" included
    security_profiles: dict[str, SecurityProfile] = field(default_factory=dict)  # by id, built-ins included
    hours: dict[str, HoursOfOperation] = field(default_factory=dict)   # [[hours]] by name
    queue_hours: dict[str, str] = field(default_factory=dict)          # queue id -> hours name
    flow_dirs: list[Path] = field(default_factory=list)                # [flows] dirs: more folders of flows
    webhooks: dict[str, str] = field(default_factory=dict)             # [webhooks] name -> http(s) URL

    def hours_for_queue(self, queue_id: str) -> HoursOfOperation | None:
        name = self.queue_hours.get(queue_id)
        return self.hours[name] if name is not None else None


def _id(value: str) -> str | None:
    return None if ID_RE.match(value) else "must be 1-64 letters, digits, '-' or '_'"


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be a TCP port 0-65535"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _one_of(*choices: str):
    names = ", ".join(f'"{c}"' for c in choices[:-1]) + f' or "{choices[-1]}"'
    return lambda v: None if v in choices else f"must be {names}, found {v!r}"


def _wav_file(table: TomlTable, key: str, base: Path) -> Path | None:
    """An audio file named in the config: it must exist and be a WAV the gateway can play."""
    from gateway.media.wavfile import WavError, read_wav
    value = table.get(key, str, None)
    if value is None:
        return None
    path = base / value
    try:
        read_wav(path)
    except WavError as exc:
        raise table.err(key, str(exc)) from None
    return path


def _url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"must be an http:// or https:// URL, found {value!r}"
    return None


def load_config(path: str | Path) -> Config:
    source = Path(path)
    data = read_toml(source, ConfigError)
    base = source.resolve().parent
    root = TomlTable(data, source, ConfigError)
    cfg = Config(source=source)

    gw = root.table("gateway", {})
    cfg.gateway_id = gw.get("id", str, "callgate", check=_id)
    cfg.data_dir = base / gw.get("data_dir", str, "var")
    cfg.recording = gw.get("recording", bool, True)
    cfg.recording_mode = gw.get("recording_mode", str, "stereo", check=_one_of("stereo", "mono"))
    positive = lambda v: None if v > 0 else "must be greater than 0"  # noqa: E731
    cfg.recording_keep_days = gw.get("recording_keep_days", float, None, check=positive)
    cfg.recording_max_mb = gw.get("recording_max_mb", float, None, check=positive)
    cfg.hold_music = _wav_file(gw, "hold_music", base)
    cfg.break_states = gw.strings("break_states", ())
    problem = break_states_problem(cfg.break_states)
    if problem is not None:
        raise gw.err(f"break_states[{problem[0]}]", problem[1])
    gw.finish()

    m = root.table("mqtt", {})
    cfg.mqtt = MqttConfig(
        host=m.get("host", str, None), port=m.get("port", int, 1883, check=_port),
        username=m.get("username", str, None), password=m.get("password", str, None),
        ws_url=m.get("ws_url", str, None),
        audio_frame_ms=m.get("audio_frame_ms", int, 20,
                             check=lambda v: None if v in (20, 40, 60) else "must be 20, 40 or 60"),
        embedded_host=m.get("embedded_host", str, "127.0.0.1"),
        embedded_tcp_port=m.get("embedded_tcp_port", int, DEFAULT_EMBEDDED_TCP, check=_port),
        embedded_ws_port=m.get("embedded_ws_port", int, DEFAULT_EMBEDDED_WS, check=_port))
    m.finish()

    w = root.table("web", {})
    cfg.web = WebConfig(enabled=w.get("enabled", bool, True), host=w.get("host", str, "127.0.0.1"),
                        port=w.get("port", int, DEFAULT_WEB_PORT, check=_port))
    for key in ("certfile", "keyfile"):
        value = w.get(key, str, None)
        if value is not None:
            if not (base / value).is_file():
                raise w.err(key, f"no such file: {base / value}")
            setattr(cfg.web, key, base / value)
    if cfg.web.keyfile and not cfg.web.certfile:
        raise w.err("keyfile", "needs certfile as well")
    w.finish()

    cfg.hours = parse_hours(root)
    for t in root.tables("queues"):
        hours_name = check_reference(t, "hours", cfg.hours)
        if hours_name is not None:
            cfg.queue_hours[t.data.get("id")] = hours_name
        cfg.queues.append(QueueConfig(
            id=t.get("id", str, check=_id), name=t.get("name", str, None) or t.data.get("id"),
            max_contacts=t.get("max_contacts", int, 10, check=lambda v: None if v > 0 else "must be at least 1"),
            acw_timeout=t.get("acw_timeout", float, 10.0, check=_positive),
            offer_timeout=t.get("offer_timeout", float, 20.0, check=_positive),
            recording=t.get("recording", str, None, check=_one_of("stereo", "mono", "off")),
            hold_music=_wav_file(t, "hold_music", base), outbound_line=t.get("outbound_line", str, None)))
        t.finish()
    if not cfg.queues:
        raise root.err("queues", "at least one [[queues]] table is required")

    queue_ids = [q.id for q in cfg.queues]
    cfg.routing_profiles = parse_routing_profiles(root, queue_ids, _id)
    cfg.security_profiles = parse_security_profiles(root, _id)
    for t in root.tables("agents"):
        hashed = t.get("password_hash", str, check=lambda v: None if v.startswith("pbkdf2_sha256$") else
                       "must be a salted hash made by `callgate hash-password` (pbkdf2_sha256$...), never a plain password")
        routing, security = agent_profiles(t, cfg.routing_profiles, cfg.security_profiles)
        cfg.agents.append(AgentConfig(id=t.get("id", str, check=_id), name=t.get("name", str, None) or t.data["id"],
                                      password_hash=hashed, routing_profile=routing, security_profile=security))
        t.finish()

    hooks = root.table("webhooks", {})
    for name in hooks.data:
        if _id(name):
            raise hooks.err(name, "a webhook name must be 1-64 letters, digits, '-' or '_' (the Lambda function "
                                  "name a flow's LambdaFunctionARN ends in)")
        cfg.webhooks[name] = hooks.get(name, str, check=_url)
    hooks.finish()

    fl = root.table("flows", {})
    for i, folder in enumerate(fl.strings("dirs", ())):
        if not (base / folder).is_dir():
            raise fl.err(f"dirs[{i}]", f"no such folder: {base / folder}")
        cfg.flow_dirs.append(base / folder)
    fl.finish()

    for t in root.tables("lines"):
        cfg.lines.append(LineConfig(
            id=t.get("id", str, check=_id), profile=t.get("profile", str),
            at_port=t.get("at_port", str), audio_port=t.get("audio_port", str, None),
            flow=base / t.get("flow", str), number=t.get("number", str, ""),
            audio_device=t.get("audio_device", str, None), outbound_queue=t.get("outbound_queue", str, None),
            health_interval=t.get("health_interval", float, None,
                                  check=lambda v: None if v >= 1 else "must be at least 1 second"),
            pin=t.get("pin", str, None, check=lambda v: None if v.isdigit() and 4 <= len(v) <= 8 else
                      "must be 4 to 8 digits"),
            sms_flow=base / t.get("sms_flow", str) if "sms_flow" in t.data else None))
        t.finish()
    root.finish()

    queue_ids = {q.id for q in cfg.queues}
    for i, lc in enumerate(cfg.lines):
        if lc.outbound_queue is not None and lc.outbound_queue not in queue_ids:
            raise ConfigError(f"{source}: lines[{i}].outbound_queue: no queue {lc.outbound_queue!r} "
                              f"(queues: {', '.join(sorted(queue_ids)) or 'none'})")
    line_ids = [lc.id for lc in cfg.lines]
    for i, q in enumerate(cfg.queues):
        if q.outbound_line is not None and q.outbound_line not in line_ids:
            raise ConfigError(f"{source}: queues[{i}].outbound_line: no line {q.outbound_line!r} "
                              f"(lines: {', '.join(sorted(line_ids)) or 'none'})")
    for kind, items in (("queues", cfg.queues), ("agents", cfg.agents), ("lines", cfg.lines)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                raise ConfigError(f"{source}: {kind}[{i}].id: {item.id!r} is used twice")
            seen.add(item.id)
    return cfg
