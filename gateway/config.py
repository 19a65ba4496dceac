"""The gateway's configuration: one TOML file, its schema and every default in one place.

Errors name the file and the key path (`callgate.toml: lines[0].at_port: missing`); TOML syntax
errors keep tomllib's line and column. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gateway.center.agents import AgentConfig
from gateway.center.queues import QueueConfig

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


@dataclass
class LineConfig:
    id: str
    profile: str
    at_port: str
    audio_port: str | None
    flow: Path
    number: str = ""


@dataclass
class Config:
    source: Path
    gateway_id: str = "callgate"
    data_dir: Path = Path("var")
    recording: bool = True
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    web: WebConfig = field(default_factory=WebConfig)
    lines: list[LineConfig] = field(default_factory=list)
    queues: list[QueueConfig] = field(default_factory=list)
    agents: list[AgentConfig] = field(default_factory=list)


class _Table:
    def __init__(self, data: dict, where: str, source: Path) -> None:
        self.data, self.where, self.source = data, where, source
        self.used: set[str] = set()

    def err(self, key: str, msg: str) -> ConfigError:
        path = f"{self.where}.{key}" if self.where else key
        return ConfigError(f"{self.source}: {path}: {msg}")

    def get(self, key: str, kind, default=..., *, check=None):
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.err(key, "missing")
            return default
        value = self.data[key]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.err(key, f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__} {value!r}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.err(key, problem)
        return value

    def finish(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise self.err(extra[0], "unknown key (typo?)")


def _id(value: str) -> str | None:
    return None if ID_RE.match(value) else "must be 1-64 letters, digits, '-' or '_'"


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be a TCP port 0-65535"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _tables(root: _Table, key: str) -> list[_Table]:
    items = root.get(key, list, [])
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise root.err(f"{key}[{i}]", "expected a table")
        out.append(_Table(item, f"{key}[{i}]", root.source))
    return out


def load_config(path: str | Path) -> Config:
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    base = source.resolve().parent
    root = _Table(data, "", source)
    cfg = Config(source=source)

    gw = _Table(root.get("gateway", dict, {}), "gateway", source)
    cfg.gateway_id = gw.get("id", str, "callgate", check=_id)
    cfg.data_dir = base / gw.get("data_dir", str, "var")
    cfg.recording = gw.get("recording", bool, True)
    gw.finish()

    m = _Table(root.get("mqtt", dict, {}), "mqtt", source)
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

    w = _Table(root.get("web", dict, {}), "web", source)
    cfg.web = WebConfig(enabled=w.get("enabled", bool, True), host=w.get("host", str, "127.0.0.1"),
                        port=w.get("port", int, DEFAULT_WEB_PORT, check=_port))
    w.finish()

    for t in _tables(root, "queues"):
        cfg.queues.append(QueueConfig(
            id=t.get("id", str, check=_id), name=t.get("name", str, None) or t.data.get("id"),
            max_contacts=t.get("max_contacts", int, 10, check=lambda v: None if v > 0 else "must be at least 1"),
            acw_timeout=t.get("acw_timeout", float, 10.0, check=_positive),
            offer_timeout=t.get("offer_timeout", float, 20.0, check=_positive)))
        t.finish()
    if not cfg.queues:
        raise root.err("queues", "at least one [[queues]] table is required")

    for t in _tables(root, "agents"):
        hashed = t.get("password_hash", str, check=lambda v: None if v.startswith("pbkdf2_sha256$") else
                       "must be a salted hash made by `callgate hash-password` (pbkdf2_sha256$...), never a plain password")
        cfg.agents.append(AgentConfig(id=t.get("id", str, check=_id), name=t.get("name", str, None) or t.data["id"],
                                      password_hash=hashed))
        t.finish()

    for t in _tables(root, "lines"):
        cfg.lines.append(LineConfig(
            id=t.get("id", str, check=_id), profile=t.get("profile", str),
            at_port=t.get("at_port", str), audio_port=t.get("audio_port", str, None),
            flow=base / t.get("flow", str), number=t.get("number", str, "")))
        t.finish()
    root.finish()

    for kind, items in (("queues", cfg.queues), ("agents", cfg.agents), ("lines", cfg.lines)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                raise ConfigError(f"{source}: {kind}[{i}].id: {item.id!r} is used twice")
            seen.add(item.id)
    return cfg
