"""Small readers of flow parameter values shared by the validator and the interpreter."""

from __future__ import annotations

import json
import re

PROMPT_PARAMETERS = ("Text", "SSML", "PromptId")
DTMF_KEYS = frozenset("0123456789*#")
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_seconds(value: object) -> float | None:
    """InputTimeLimitSeconds may be a number or a numeric string; None if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            return None
        return seconds if seconds == seconds and seconds not in (float("inf"), float("-inf")) else None
    return None


def flag(value: object) -> bool | None:
    """true/false as JSON or as text ("True", "false"); None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"string {json.dumps(value)}" if value else "an empty string"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def key_path(key: str) -> str:
    return f".{key}" if _SIMPLE_KEY.fullmatch(key) else f"[{json.dumps(key, ensure_ascii=False)}]"
