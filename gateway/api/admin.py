"""Technician commands over MQTT (`callgate line test`, `callgate sms send`): …/admin/cmd in, one or more
replies on …/admin/reply/<id> out (progress messages, then exactly one final reply).

The payload is `{"id": "<request id>", "op": "<operation>", ...fields}`. A malformed command gets a
bad_request reply naming the topic and the JSON path; an operation that fails gets its error; neither
disturbs anything else the daemon is doing. Each command, refused or run, is one audit log line
(source "admin"; its line and number, never an SMS text).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.api.topics import Topics
from gateway.center.audit import AuditLog

log = logging.getLogger(__name__)

MAX_PAYLOAD = 8192
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Operation:
    fields: dict[str, type]                     # required fields and their JSON types
    run: Callable[[dict, Progress], Awaitable[dict]]
    optional: tuple[tuple[str, type], ...] = ()


class AdminError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class AdminHandler:
    def __init__(self, publish: Callable[[str, bytes], None], topics: Topics,
                 spawn: Callable[[Awaitable, str], object], operations: dict[str, Operation], *,
                 audit: AuditLog | None = None) -> None:
        self._publish, self._topics, self._spawn, self._ops = publish, topics, spawn, operations
        self._audit = audit

    def handle(self, topic: str, payload: bytes) -> None:
        try:
            request_id, op, command = self._decode(topic, payload)
        except AdminError as exc:
            self._publish(self._topics.errors, json.dumps({"ok": False, "code": exc.code, "error": exc.message,
                                                           "topic": topic}).encode())
            self._write_audit(None, {}, {"ok": False, "code": exc.code, "error": exc.message})
            return
        self._spawn(self._run(request_id, op, command), f"admin-{op}-{request_id}")

    async def _run(self, request_id: str, op: str, command: dict) -> None:
        reply_topic = self._topics.admin_reply(request_id)

        def progress(stage: str) -> None:
            self._publish(reply_topic, json.dumps({"id": request_id, "progress": stage}).encode())
        try:
            result = await self._ops[op].run(command, progress)
            reply = {"id": request_id, "ok": True, "op": op, "result": result}
        except AdminError as exc:
            reply = {"id": request_id, "ok": False, "op": op, "code": exc.code, "error": exc.message}
        except asyncio.CancelledError:
            reply = {"id": request_id, "ok": False, "op": op, "code": "shutdown",
                     "error": "the gateway is shutting down"}
            self._publish(reply_topic, json.dumps(reply).encode())
            self._write_audit(op, command, reply)
            raise
        except Exception as exc:
            log.exception("admin %s failed", op)
            reply = {"id": request_id, "ok": False, "op": op, "code": "failed", "error": f"{type(exc).__name__}: {exc}"}
        self._publish(reply_topic, json.dumps(reply).encode())
        self._write_audit(op, command, reply)

    def _write_audit(self, op: str | None, command: dict, reply: dict) -> None:
        if self._audit is None:
            return
        entry = {"source": "admin", "actor": "admin", "action": op, "request_id": command.get("id"),
                 "result": "ok" if reply["ok"] else "refused" if reply.get("code") == "bad_request" else "failed",
                 "code": reply.get("code"), "reason": reply.get("error")}
        for key in ("line", "number"):
            if isinstance(command.get(key), str):
                entry[key] = command[key]
        try:
            self._audit.record(entry)
        except Exception:  # noqa: BLE001 - the audit log must never cost an operation its reply
            log.exception("audit entry for admin %s failed", op)

    def _decode(self, topic: str, payload: bytes) -> tuple[str, str, dict]:
        if len(payload) > MAX_PAYLOAD:
            raise AdminError("bad_request", f"{topic}: command of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        try:
            command = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AdminError("bad_request", f"{topic}: payload is not JSON text: {exc}") from None
        if not isinstance(command, dict):
            raise AdminError("bad_request", f"{topic}: payload must be a JSON object")
        request_id = command.get("id")
        if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
            raise AdminError("bad_request", f"{topic}: $.id must be 1-64 characters of A-Z a-z 0-9 _ . -")
        op = command.get("op")
        if op not in self._ops:
            raise AdminError("bad_request", f"{topic}: $.op {op!r} is not one of {', '.join(sorted(self._ops))}")
        spec = self._ops[op]
        for name, kind in spec.fields.items():
            value = command.get(name)
            if not isinstance(value, kind) or isinstance(value, bool) or (isinstance(value, str) and not value):
                raise AdminError("bad_request", f"{topic}: $.{name} is required for {op!r} ({kind.__name__})")
        for name, kind in spec.optional:
            if name in command and (not isinstance(command[name], kind) or isinstance(command[name], bool)):
                raise AdminError("bad_request", f"{topic}: $.{name} must be {kind.__name__}")
        return request_id, op, command
