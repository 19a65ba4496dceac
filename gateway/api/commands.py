"""Agent commands from MQTT: decode and validate the payload, let the Center decide, reply once.

Every command gets exactly one reply on …/agent/<id>/reply (or …/errors when the topic names no
configured agent). A malformed command never raises out of here: it gets a bad_request reply that
names the topic and the field. An agent may pause and resume the recording of its own call only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from gateway.api.topics import Topics
from gateway.center.router import Center, CenterError

log = logging.getLogger(__name__)

ACTIONS = {
    "login": ("password",),
    "logout": (),
    "available": (),
    "offline": (),
    "accept": ("contact_id",),
    "reject": ("contact_id",),
    "hangup": (),
    "pause_recording": ("contact_id",),
    "resume_recording": ("contact_id",),
}
MAX_PAYLOAD = 4096


class BadRequest(ValueError):
    pass


class CommandHandler:
    def __init__(self, publish: Callable[[str, bytes], None], topics: Topics, center: Center, *,
                 on_hangup: Callable[[str, str], None],
                 on_recording: Callable[[str, bool], str | None] | None = None) -> None:
        self._publish = publish
        self._topics = topics
        self._center = center
        self._on_hangup = on_hangup
        # (contact_id, pause) -> the recording's state ("paused" | "recording" | "off"), None: no such call
        self._on_recording = on_recording
        self.handled = 0
        self.refused = 0

    def handle(self, topic: str, payload: bytes) -> None:
        agent_id = self._topics.agent_of(topic)
        request_id = None
        try:
            command = self._decode(topic, payload)
            request_id = command.get("id")
            action = command["action"]
            if agent_id not in self._center.agent_ids:
                raise CenterError("unknown_agent", f"{topic}: no agent {agent_id!r} is configured")
            result = self._dispatch(agent_id, action, command)
            reply = {"id": request_id, "ok": True, "action": action, **result}
            self.handled += 1
        except BadRequest as exc:
            reply = {"id": request_id, "ok": False, "code": "bad_request", "error": str(exc)}
            self.refused += 1
        except CenterError as exc:
            reply = {"id": request_id, "ok": False, "code": exc.code, "error": exc.message,
                     "action": command.get("action")}
            self.refused += 1
        if not reply["ok"]:
            log.info("command on %s refused: %s", topic, reply["error"])
        target = (self._topics.agent_reply(agent_id) if agent_id in self._center.agent_ids
                  else self._topics.errors)
        if not reply["ok"] and target == self._topics.errors:
            reply["topic"] = topic
        self._publish(target, json.dumps(reply).encode())

    def _decode(self, topic: str, payload: bytes) -> dict:
        if len(payload) > MAX_PAYLOAD:
            raise BadRequest(f"{topic}: command of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        try:
            command = json.loads(payload.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequest(f"{topic}: payload is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise BadRequest(f"{topic}: payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        if not isinstance(command, dict):
            raise BadRequest(f"{topic}: payload must be a JSON object, got {type(command).__name__}")
        if "id" in command and not isinstance(command["id"], (str, int)):
            raise BadRequest(f"{topic}: $.id must be a string or a number")
        action = command.get("action")
        if not isinstance(action, str):
            raise BadRequest(f"{topic}: $.action is missing or not a string")
        if action not in ACTIONS:
            raise BadRequest(f"{topic}: $.action {action!r} is not one of {', '.join(ACTIONS)}")
        for field in ACTIONS[action]:
            if not isinstance(command.get(field), str) or not command[field]:
                raise BadRequest(f"{topic}: $.{field} is required for {action!r} and must be a non-empty string")
        return command

    def _dispatch(self, agent_id: str, action: str, command: dict) -> dict:
        center = self._center
        if action == "login":
            center.login(agent_id, command["password"])
        elif action == "logout":
            center.logout(agent_id)
        elif action == "available":
            center.set_available(agent_id)
        elif action == "offline":
            center.set_offline(agent_id)
        elif action == "accept":
            contact = center.accept(agent_id, command["contact_id"])
            return {"state": center.agent_view(agent_id)["state"], "contact_id": contact.contact_id}
        elif action == "reject":
            center.reject(agent_id, command["contact_id"])
        elif action == "hangup":
            contact_id = center.hangup(agent_id)
            self._on_hangup(agent_id, contact_id)
            return {"contact_id": contact_id}
        elif action in ("pause_recording", "resume_recording"):
            return self._recording(agent_id, command["contact_id"], pause=action == "pause_recording")
        return {"state": center.agent_view(agent_id)["state"]}

    def _recording(self, agent_id: str, contact_id: str, *, pause: bool) -> dict:
        view = self._center.agent_view(agent_id)
        current = view["contact_id"] if view["state"] == "OnCall" else None
        if current != contact_id:
            now = f"it is on call with {current}" if current else "it is not on a call"
            raise CenterError("not_your_contact", f"contact {contact_id} is not agent {agent_id}'s call ({now})")
        state = self._on_recording(contact_id, pause) if self._on_recording is not None else None
        if state is None:
            raise CenterError("not_on_call", f"contact {contact_id} has no call on this gateway")
        if state == "off":
            raise CenterError("not_recording", f"contact {contact_id} is not being recorded")
        return {"contact_id": contact_id, "recording": state}
