"""Security profiles: the fixed permission vocabulary, the built-in profiles, and the permission each
agent command needs (docs/security.md).

A profile is a named set of permissions; every agent has exactly one. The built-in profiles `admin`,
`supervisor` and `agent` exist unless the config defines a profile with the same id.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

# name -> what it allows; the order is the order the docs and error messages list them in.
PERMISSIONS: dict[str, str] = {
    "take_calls": "go Available, accept and reject offered contacts",
    "make_outbound_calls": "place outbound calls from the dashboard",
    "transfer": "transfer the agent's live call to a queue or another agent",
    "control_recording": "pause and resume the recording of the agent's own call",
    "listen_recordings": "play and download call recordings and voicemail messages",
    "view_realtime_metrics": "see every queue's and every agent's real-time state and metrics",
    "monitor": "listen in on another agent's live call",
    "manage_agents": "change another agent's state: make it Available or Offline, or sign it out",
    "change_flows_config": "change contact flows and the gateway's configuration",
}

# Agent command (docs/mqtt-api.md) -> the permission it needs; None: any signed-in agent may.
COMMAND_PERMISSIONS: dict[str, str | None] = {
    "login": None,
    "logout": None,
    "available": "take_calls",
    "offline": None,
    "break": None,
    "accept": "take_calls",
    "reject": "take_calls",
    "hangup": None,
    "pause_recording": "control_recording",
    "resume_recording": "control_recording",
    "dial": "make_outbound_calls",
    "transfer": "transfer",
}
# Commands an agent may send for another agent (the command's `agent` field), with this permission.
ON_BEHALF_PERMISSION = "manage_agents"
ON_BEHALF_COMMANDS = ("available", "offline", "logout", "break")


@dataclass(frozen=True)
class SecurityProfile:
    id: str
    name: str
    permissions: frozenset[str]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.permissions) - set(PERMISSIONS))
        if unknown:
            raise ValueError(f"security profile {self.id!r}: {unknown_permission(unknown[0])}")

    def allows(self, permission: str) -> bool:
        return permission in self.permissions

    def sorted_permissions(self) -> list[str]:
        return [p for p in PERMISSIONS if p in self.permissions]


BUILTIN_SECURITY_PROFILES: dict[str, SecurityProfile] = {
    "admin": SecurityProfile("admin", "Admin", frozenset(PERMISSIONS)),
    "supervisor": SecurityProfile("supervisor", "Supervisor", frozenset(
        PERMISSIONS.keys() - {"change_flows_config"})),
    "agent": SecurityProfile("agent", "Agent", frozenset(
        {"take_calls", "make_outbound_calls", "transfer", "control_recording"})),
}
DEFAULT_SECURITY_PROFILE = "agent"


def did_you_mean(name: str, choices) -> str:
    """' (did you mean "x"?)' for the closest of `choices`, or ''."""
    near = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f' (did you mean "{near[0]}"?)' if near else ""


def unknown_permission(name: str) -> str:
    return f'"{name}" is not a permission{did_you_mean(name, PERMISSIONS)}; permissions: {", ".join(PERMISSIONS)}'


def required_permission(action: str) -> str | None:
    """The permission `action` needs (None: none); KeyError for a command this table does not know."""
    return COMMAND_PERMISSIONS[action]
