"""Agents: their configuration, their state, and the bookkeeping routing needs about each one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .routing_profiles import DEFAULT_ROUTING_PROFILE, RoutingProfile
from .security import DEFAULT_SECURITY_PROFILE, SecurityProfile


class AgentState(str, Enum):
    OFFLINE = "Offline"
    AVAILABLE = "Available"
    ON_CALL = "OnCall"
    AFTER_CALL_WORK = "AfterCallWork"


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
    missed: bool = False  # the last offer expired unanswered; cleared when the agent goes Available
    routing: RoutingProfile | None = None  # its routing profile (the Center sets it from config.routing_profile)
    security: SecurityProfile | None = None  # its security profile (likewise)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def routable(self) -> bool:
        return self.logged_in and self.state is AgentState.AVAILABLE and self.offer is None
