"""Agent commands from MQTT: decode and validate the payload, check who may do it, let the Center decide,
reply once, and write the audit log.

Every command gets exactly one reply on …/agent/<id>/reply (or …/errors when the topic names no
configured agent). A malformed command never raises out of here: it gets a bad_request reply that
names the topic and the field. Before the Center sees a command it is checked in this order:
the sender is signed in (except for login); a command for another agent (its `agent` field) is one
of ON_BEHALF_COMMANDS and the sender has manage_agents; the agent's security profile has the
permission the action needs (gateway/center/security.py), else `forbidden` naming it; a contact_id
that is offered to or connected to another agent is `not_your_contact`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from gateway.api.topics import Topics
from gateway.center.agents import AgentState
from gateway.center.audit import AuditLog
from gateway.center.router import Center, CenterError
from gateway.center.security import (ON_BEHALF_COMMANDS, ON_BEHALF_PERMISSION, PERMISSIONS,
                                     required_permission)

log = logging.getLogger(__name__)

# action -> (required string fields, optional string fields); every action may also carry `agent`.
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "login": (("password",), ()),
    "logout": ((), ()),
    "available": ((), ()),
    "offline": ((), ()),
    "break": (("state",), ()),
    "accept": (("contact_id",), ()),
    "reject": (("contact_id",), ()),
    "hangup": ((), ("contact_id",)),
    "pause_recording": (("contact_id",), ()),
    "resume_recording": (("contact_id",), ()),
    "dial": (("number",), ("queue", "line")),
    "transfer": (("contact_id",), ("to_queue", "to_agent")),
}
MAX_PAYLOAD = 4096

Dial = Callable[[str, dict], dict]              # (agent id, command) -> reply fields; CenterError to refuse
Transfer = Callable[[str, str, dict], dict]     # (agent id, contact id, command) -> reply fields


class BadRequest(ValueError):
    pass


class Forbidden(CenterError):
    """The agent's security profile lacks `permission`."""

    def __init__(self, message: str, permission: str) -> None:
        super().__init__("forbidden", message)
        self.permission = permission


class CommandHandler:
    def __init__(self, publish: Callable[[str, bytes], None], topics: Topics, center: Center, *,
                 on_hangup: Callable[[str, str], None],
                 on_recording: Callable[[str, bool], str | None] | None = None,
                 on_dial: Dial | None = None, on_transfer: Transfer | None = None,
                 audit: AuditLog | None = None) -> None:
        self._publish = publish
        self._topics = topics
        self._center = center
        self._on_hangup = on_hangup
        # (contact_id, pause) -> the recording's state ("paused" | "recording" | "off"), None: no such call
        self._on_recording = on_recording
        self._on_dial = on_dial
        self._on_transfer = on_transfer
        self._audit = audit
        self.handled = 0
        self.refused = 0

    def handle(self, topic: str, payload: bytes) -> None:
        agent_id = self._topics.agent_of(topic)
        request_id = None
        command: dict = {}
        target = agent_id
        queue = None
        try:
            command = self._parse(topic, payload)
            request_id = command.get("id")
            self._validate(topic, command)
            action = command["action"]
            if agent_id not in self._center.agent_ids:
                raise CenterError("unknown_agent", f"{topic}: no agent {agent_id!r} is configured")
            target = self._target(agent_id, action, command)
            self._authorize(agent_id, target, action)
            queue = self._queue_of(target, command)
            self._check_contact(target, command)
            result = self._dispatch(target, action, command)
            reply = {"id": request_id, "ok": True, "action": action, **result}
            self.handled += 1
        except BadRequest as exc:
            reply = {"id": request_id, "ok": False, "code": "bad_request", "error": str(exc)}
            self.refused += 1
        except CenterError as exc:
            reply = {"id": request_id, "ok": False, "code": exc.code, "error": exc.message,
                     "action": command.get("action")}
            if isinstance(exc, Forbidden):
                reply["missing_permission"] = exc.permission
            self.refused += 1
        if not reply["ok"]:
            log.info("command on %s refused: %s", topic, reply["error"])
        self._write_audit(agent_id, target, command, reply, queue)
        reply_topic = (self._topics.agent_reply(agent_id) if agent_id in self._center.agent_ids
                       else self._topics.errors)
        if not reply["ok"] and reply_topic == self._topics.errors:
            reply["topic"] = topic
        self._publish(reply_topic, json.dumps(reply).encode())

    # ---- checks -------------------------------------------------------------------------------

    def _parse(self, topic: str, payload: bytes) -> dict:
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
        return command

    def _validate(self, topic: str, command: dict) -> None:
        action = command.get("action")
        if not isinstance(action, str):
            raise BadRequest(f"{topic}: $.action is missing or not a string")
        if action not in ACTIONS:
            raise BadRequest(f"{topic}: $.action {action!r} is not one of {', '.join(ACTIONS)}")
        required, optional = ACTIONS[action]
        for field in required:
            if not isinstance(command.get(field), str) or not command[field]:
                raise BadRequest(f"{topic}: $.{field} is required for {action!r} and must be a non-empty string")
        for field in optional + ("agent",):
            if field in command and (not isinstance(command[field], str) or not command[field]):
                raise BadRequest(f"{topic}: $.{field} must be a non-empty string")
        if action == "transfer" and ("to_queue" in command) == ("to_agent" in command):
            raise BadRequest(f"{topic}: 'transfer' needs exactly one of $.to_queue and $.to_agent")

    def _target(self, sender: str, action: str, command: dict) -> str:
        """The agent the command acts on: the sender, or the agent its `agent` field names."""
        other = command.get("agent")
        if other is None or other == sender:
            return sender
        if action not in ON_BEHALF_COMMANDS:
            raise CenterError("wrong_agent", f"agent {sender} cannot send {action!r} for agent {other}: only "
                                             f"{', '.join(ON_BEHALF_COMMANDS)} may be sent for another agent")
        if other not in self._center.agent_ids:
            raise CenterError("unknown_agent", f"no agent {other!r} is configured")
        return other

    def _authorize(self, sender: str, target: str, action: str) -> None:
        center = self._center
        if action == "login" and sender == target:
            return
        actor = center.agent(sender)
        if not actor.logged_in:
            raise CenterError("not_logged_in", f"agent {sender} must log in first")
        if target != sender:
            if not actor.security.allows(ON_BEHALF_PERMISSION):
                raise self._forbidden(sender, ON_BEHALF_PERMISSION, f"{action} for agent {target}")
            if not center.agent(target).logged_in:
                raise CenterError("not_logged_in", f"agent {target} is not signed in")
        permission = required_permission(action)
        if permission is not None and not center.agent(target).security.allows(permission):
            raise self._forbidden(target, permission, action)

    def _forbidden(self, agent_id: str, permission: str, what: str) -> Forbidden:
        profile = self._center.agent(agent_id).security
        return Forbidden(f"agent {agent_id}'s security profile {profile.id!r} lacks the {permission} permission "
                         f"({PERMISSIONS[permission]}), which {what} needs", permission)

    def _situation(self, agent_id: str) -> str:
        agent = self._center.agent(agent_id)
        return f"it is on call with {agent.contact_id}" if agent.state is AgentState.ON_CALL and agent.contact_id \
            else "it is not on a call"

    def _check_contact(self, agent_id: str, command: dict) -> None:
        """A contact the Center has given to another agent is never this agent's to act on."""
        contact_id = command.get("contact_id")
        info = self._center.contact_info(contact_id) if contact_id is not None else None
        if info is None or info["agent"] in (None, agent_id):
            return
        if info["connected"]:
            raise CenterError("not_your_contact", f"contact {contact_id} is not agent {agent_id}'s call "
                                                  f"({self._situation(agent_id)})")
        raise CenterError("not_your_contact", f"contact {contact_id} is offered to another agent, not to {agent_id}")

    def _own_call(self, agent_id: str, contact_id: str) -> None:
        agent = self._center.agent(agent_id)
        current = agent.contact_id if agent.state is AgentState.ON_CALL else None
        if current != contact_id:
            raise CenterError("not_your_contact", f"contact {contact_id} is not agent {agent_id}'s call "
                                                  f"({self._situation(agent_id)})")

    def _queue_of(self, agent_id: str, command: dict) -> str | None:
        """The queue the command is about, for the audit log."""
        contact_id = command.get("contact_id") or self._center.agent(agent_id).contact_id
        info = self._center.contact_info(contact_id) if contact_id else None
        return info["queue"] if info else command.get("queue") or command.get("to_queue")

    # ---- actions ------------------------------------------------------------------------------

    def _dispatch(self, agent_id: str, action: str, command: dict) -> dict:
        center = self._center
        if action == "login":
            center.login(agent_id, command["password"])
            view = center.agent_view(agent_id)
            return {key: view[key] for key in ("state", "routing_profile", "security_profile", "permissions")}
        if action == "logout":
            center.logout(agent_id)
        elif action == "available":
            center.set_available(agent_id)
        elif action == "offline":
            center.set_offline(agent_id)
        elif action == "break":
            return {"state": AgentState.BREAK.value, "break_state": center.set_break(agent_id, command["state"])}
        elif action == "accept":
            contact = center.accept(agent_id, command["contact_id"])
            return {"state": center.agent_view(agent_id)["state"], "contact_id": contact.contact_id}
        elif action == "reject":
            center.reject(agent_id, command["contact_id"])
        elif action == "hangup":
            contact_id = center.hangup(agent_id)
            if command.get("contact_id", contact_id) != contact_id:
                self._own_call(agent_id, command["contact_id"])
            self._on_hangup(agent_id, contact_id)
            return {"contact_id": contact_id}
        elif action in ("pause_recording", "resume_recording"):
            return self._recording(agent_id, command["contact_id"], pause=action == "pause_recording")
        elif action == "dial":
            if self._on_dial is None:
                raise CenterError("not_supported", "this gateway does not place outbound calls for agents yet")
            return self._on_dial(agent_id, command)
        elif action == "transfer":
            self._own_call(agent_id, command["contact_id"])
            if self._on_transfer is None:
                raise CenterError("not_supported", "this gateway does not transfer agents' calls yet")
            return self._on_transfer(agent_id, command["contact_id"], command)
        return {"state": center.agent_view(agent_id)["state"]}

    def _recording(self, agent_id: str, contact_id: str, *, pause: bool) -> dict:
        self._own_call(agent_id, contact_id)
        state = self._on_recording(contact_id, pause) if self._on_recording is not None else None
        if state is None:
            raise CenterError("not_on_call", f"contact {contact_id} has no call on this gateway")
        if state == "off":
            raise CenterError("not_recording", f"contact {contact_id} is not being recorded")
        return {"contact_id": contact_id, "recording": state}

    # ---- audit --------------------------------------------------------------------------------

    def _write_audit(self, sender: str | None, target: str | None, command: dict, reply: dict,
                     queue: str | None) -> None:
        if self._audit is None:
            return
        if isinstance(command.get("agent"), str):    # the agent it was meant for, even when refused
            target = command["agent"]
        entry = {"source": "agent", "actor": sender, "agent": target,
                 "action": command.get("action") if isinstance(command.get("action"), str) else None,
                 "request_id": reply.get("id"),
                 "contact_id": command.get("contact_id") or reply.get("contact_id"), "queue": queue,
                 "result": "ok" if reply["ok"] else "refused", "code": reply.get("code"),
                 "reason": None if reply["ok"] else reply.get("error"),
                 "missing_permission": reply.get("missing_permission")}
        for key in ("number", "line", "to_queue", "to_agent"):
            if isinstance(command.get(key), str):
                entry[key] = command[key]
        try:
            self._audit.record(entry)
        except Exception:  # noqa: BLE001 - the audit log must never cost the command its reply
            log.exception("audit entry for %s failed", entry.get("action"))
