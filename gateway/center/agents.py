"""Agents: their configuration, their state, the break states a gateway offers, and the bookkeeping
routing needs about each one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .routing_profiles import DEFAULT_ROUTING_PROFILE, RoutingProfile
from .security import DEFAULT_SECURITY_PROFILE, SecurityProfile


class AgentState(str, Enum):
    OFFLINE = "Offline"
    AVAILABLE = "Available"
    BREAK = "Break"                   # one of the configured break states, named by Agent.break_state
    ON_CALL = "OnCall"
    AFTER_CALL_WORK = "AfterCallWork"
    MISSED = "Missed"                 # an offer expired unanswered; not routable until the agent acts


BREAK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,31}")
MAX_BREAK_STATES = 50  # as many custom statuses as Amazon Connect allows


def break_states_problem(names: Sequence[str]) -> tuple[int, str] | None:
    """The first mistake in a list of break state names as (index, message), or None when it is fine."""
    if len(names) > MAX_BREAK_STATES:
        return MAX_BREAK_STATES, f"at most {MAX_BREAK_STATES} break states, got {len(names)}"
    reserved = {s.value.casefold(): s.value for s in AgentState}
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not BREAK_NAME.fullmatch(name):
            return i, (f"{name!r} is not a break state name: 1-32 letters, digits, spaces, '-' or '_', "
                       "starting with a letter or digit")
        folded = name.casefold()
        if folded in reserved:
            return i, f'"{name}" is the name of the built-in state {reserved[folded]}; pick another'
        if folded in first:
            return i, f'"{name}" is listed twice (also break_states[{first[folded]}])'
        first[folded] = i
    return None


@dataclass
class AgentConfig:
    id: str
    name: str
    password_hash: str
    routing_profile: str = DEFAULT_ROUTING_PROFILE    # id of its one routing profile
    security_profile: str = DEFAULT_SECURITY_PROFILE  # id of its one security profile


@dataclass
class Offer:
    """A contact offered to one agent, waiting for accept or reject until ``expires_mono``."""

    contact_id: str
    queue_id: str
    expires_mono: float


@dataclass
class Agent:
    """One agent's live state, owned and changed only by the Center."""

    config: AgentConfig
    since: float  # wall clock of the last state change, shown to people
    idle_since: float  # monotonic: when the agent last became free (went Available or left ACW)
    state: AgentState = AgentState.OFFLINE
    logged_in: bool = False
    offer: Offer | None = None
    contact_id: str | None = None  # set while OnCall and AfterCallWork
    acw_until: float | None = None  # monotonic end of after-call work
    break_state: str | None = None  # the break state's name while state is BREAK
    routing: RoutingProfile | None = None  # its routing profile (the Center sets it from config.routing_profile)
    security: SecurityProfile | None = None  # its security profile (likewise)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def missed(self) -> bool:
        return self.state is AgentState.MISSED

    @property
    def online(self) -> bool:
        """Signed in and not Offline: on a break and Missed count too (Amazon Connect's "Online")."""
        return self.logged_in and self.state is not AgentState.OFFLINE

    @property
    def staffed(self) -> bool:
        """Online and not on a break."""
        return self.online and self.state is not AgentState.BREAK

    @property
    def routable(self) -> bool:
        return self.logged_in and self.state is AgentState.AVAILABLE and self.offer is None
