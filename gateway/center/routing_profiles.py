"""Routing profiles: which queues an agent serves, each with a priority and a delay, and the queue its
outbound calls use by default (docs/security.md, "Routing profiles").

Priority 1 is served first (1-99, as in Amazon Connect); a queue with delay D is offered to the
profile's agents only once its contact has waited D seconds (0-9999). Every agent has exactly one
profile; the built-in `default` profile serves every queue at priority 1, delay 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MIN_PRIORITY, MAX_PRIORITY = 1, 99
MAX_DELAY = 9999.0
DEFAULT_ROUTING_PROFILE = "default"


@dataclass(frozen=True)
class RoutingQueue:
    queue: str          # queue id
    priority: int = 1
    delay: float = 0.0  # seconds a contact must have waited before this profile's agents get it

    def __post_init__(self) -> None:
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"queue {self.queue!r}: priority must be {MIN_PRIORITY}-{MAX_PRIORITY}, "
                             f"got {self.priority}")
        if not 0 <= self.delay <= MAX_DELAY:
            raise ValueError(f"queue {self.queue!r}: delay must be 0-{MAX_DELAY:g} seconds, got {self.delay}")


@dataclass(frozen=True)
class RoutingProfile:
    id: str
    name: str
    queues: tuple[RoutingQueue, ...]
    default_outbound_queue: str | None = None

    def __post_init__(self) -> None:
        seen = set()
        for entry in self.queues:
            if entry.queue in seen:
                raise ValueError(f"routing profile {self.id!r}: queue {entry.queue!r} is listed twice")
            seen.add(entry.queue)

    def entry(self, queue_id: str) -> RoutingQueue | None:
        """This profile's priority and delay for `queue_id`; None when its agents do not serve it."""
        return next((q for q in self.queues if q.queue == queue_id), None)

    @property
    def queue_ids(self) -> list[str]:
        return [q.queue for q in self.queues]

    def view(self) -> dict:
        return {"id": self.id, "name": self.name, "default_outbound_queue": self.default_outbound_queue,
                "queues": [{"queue": q.queue, "priority": q.priority, "delay": q.delay} for q in self.queues]}


def default_routing_profile(queue_ids: Iterable[str]) -> RoutingProfile:
    """The profile of agents that name none: every queue at priority 1, delay 0; outbound on the first."""
    ids = list(queue_ids)
    return RoutingProfile(DEFAULT_ROUTING_PROFILE, "Default", tuple(RoutingQueue(q) for q in ids),
                          ids[0] if ids else None)
