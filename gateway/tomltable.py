"""Typed reading of TOML files whose every error names the file and the key path.

Shared by the gateway config and the modem profiles: `callgate.toml: queues[0].acw_timeout: must be
greater than 0`, `simcom_sim7600.toml: audio.enable_when: 'later' is not one of ...`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

Check = Callable[[object], str | None]


def read_toml(path: Path, error: type[Exception]) -> dict:
    """The parsed file; a missing file or a syntax error (with line and column) raises `error`."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: {exc}") from None


class TomlTable:
    def __init__(self, data: dict, source: Path, error: type[Exception], where: str = "") -> None:
        self.data, self.source, self.error, self.where = data, source, error, where
        self.used: set[str] = set()

    def err(self, key: str, msg: str) -> Exception:
        path = f"{self.where}.{key}" if self.where else key
        return self.error(f"{self.source}: {path}: {msg}")

    def _child(self, data: dict, where: str) -> "TomlTable":
        return TomlTable(data, self.source, self.error, f"{self.where}.{where}" if self.where else where)

    def get(self, key: str, kind, default=..., *, check: Check | None = None):
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.err(key, "missing")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = "/".join(k.__name__ for k in kinds)
            raise self.err(key, f"expected {names}, got {type(value).__name__} {value!r}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.err(key, problem)
        return value

    def table(self, key: str, default=...) -> "TomlTable":
        return self._child(self.get(key, dict, default), key)

    def tables(self, key: str) -> list["TomlTable"]:
        out = []
        for i, item in enumerate(self.get(key, list, [])):
            if not isinstance(item, dict):
                raise self.err(f"{key}[{i}]", "expected a table")
            out.append(self._child(item, f"{key}[{i}]"))
        return out

    def strings(self, key: str, default=...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if not all(isinstance(v, str) for v in value):
            raise self.err(key, "expected a list of strings")
        return tuple(value)

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        return self.get(key, str, check=lambda v: None if v in choices else
                        f"{v!r} is not one of {', '.join(choices)}")

    def regex(self, key: str) -> str:
        def compiles(value: str) -> str | None:
            try:
                re.compile(value)
            except re.error as exc:
                return f"bad regular expression: {exc}"
            return None
        return self.get(key, str, check=compiles)

    def finish(self) -> None:
        """Refuse keys nobody asked for: a typo must not pass silently."""
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise self.err(extra[0], "unknown key (typo?)")
