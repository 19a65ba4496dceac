"""Queues: configuration, the contacts waiting in each, and how a flow's queue reference resolves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class QueueConfig:
    id: str
    name: str
    max_contacts: int = 10
    acw_timeout: float = 10.0  # seconds of after-call work before the agent is Available again
    offer_timeout: float = 20.0  # seconds an agent has to accept an offer
    recording: str | None = None  # "stereo" | "mono" | "off" for calls queued here; None: the gateway's
    hold_music: Path | None = None  # WAV looped to callers waiting here; None: the gateway's
    outbound_line: str | None = None  # line whose SIM places this queue's outbound calls (its number is the caller ID)

    def __post_init__(self) -> None:
        where = f"queue {self.id!r}"
        if not self.id:
            raise ValueError("queue id must not be empty")
        if self.max_contacts < 0:
            raise ValueError(f"{where}: max_contacts must be >= 0, got {self.max_contacts}")
        if self.acw_timeout < 0:
            raise ValueError(f"{where}: acw_timeout must be >= 0, got {self.acw_timeout}")
        if self.offer_timeout <= 0:
            raise ValueError(f"{where}: offer_timeout must be > 0, got {self.offer_timeout}")
        if self.recording not in (None, "stereo", "mono", "off"):
            raise ValueError(f"{where}: recording must be \"stereo\", \"mono\" or \"off\", got {self.recording!r}")


@dataclass
class WaitingContact:
    contact_id: str
    caller: str
    line_id: str
    queue_id: str
    enqueued_mono: float
    enqueued_wall: float
    priority: int = 5             # lower is served first (Connect's default for new contacts is 5)
    age_adjustment: float = 0.0   # seconds added to the time waited when routing (negative: later)
    initiation_method: str = "INBOUND"  # "TRANSFER" (an agent's transfer), "CALLBACK" (a queued callback)
    callback_number: str | None = None  # a CALLBACK contact: the number the gateway dials once an agent accepts
    previous_contact_id: str | None = None  # the contact this one continues (a transfer's or callback's origin)

    @property
    def routing_key(self) -> tuple[int, float]:
        """Served first: the lowest priority, then the longest (adjusted) wait."""
        return self.priority, self.enqueued_mono - self.age_adjustment


class Queue:
    """The contacts of one queue in arrival order, including those currently offered to an agent.

    A contact leaves only when an agent accepts it or the caller hangs up. A withdrawn offer leaves
    the contact where it was, which is ahead of every contact not yet offered: the head of the line.
    """

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self._order: list[str] = []

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def full(self) -> bool:
        return len(self._order) >= self.config.max_contacts

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self):
        return iter(tuple(self._order))

    def append(self, contact_id: str) -> None:
        self._order.append(contact_id)

    def remove(self, contact_id: str) -> None:
        if contact_id in self._order:
            self._order.remove(contact_id)


def resolve_queue_ref(ref: str, queues: Iterable[QueueConfig]) -> str | None:
    """The id of the queue ``ref`` names: an id, a name (case-insensitive) or an ARN ``…/queue/<id>``."""
    if not isinstance(ref, str) or not ref:
        return None
    configs = list(queues)
    if "/queue/" in ref:
        ref = ref.rsplit("/queue/", 1)[1]
    for cfg in configs:
        if cfg.id == ref:
            return cfg.id
    folded = ref.casefold()
    for cfg in configs:
        if cfg.id.casefold() == folded:
            return cfg.id
    for cfg in configs:
        if cfg.name.casefold() == folded:
            return cfg.id
    return None
