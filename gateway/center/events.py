"""Events the Center emits to its subscribers; the API layer turns them into MQTT publishes.

Each event only names what changed; a subscriber reads the current state through the Center's
views, so an event never carries a stale copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentChanged:
    agent_id: str


@dataclass(frozen=True)
class QueueChanged:
    queue_id: str


@dataclass(frozen=True)
class ContactOffered:
    agent_id: str
    contact_id: str


@dataclass(frozen=True)
class OfferWithdrawn:
    agent_id: str
    contact_id: str
    reason: str  # "expired" | "rejected" | "caller_hung_up" | "caller_left_queue"


@dataclass(frozen=True)
class ContactConnected:
    contact_id: str
    agent_id: str


@dataclass(frozen=True)
class AfterContactWorkEnded:
    """The agent finished after-contact work on this contact (timer, Available, Offline or a break)."""
    contact_id: str
    agent_id: str
