"""The Center: agent commands, waiting contacts, and routing each contact to the longest-idle agent.

Routing runs after every state change and on every tick: while a contact waits and an Available
agent has no pending offer, the waiting contact (over all queues) with the lowest priority, then the
longest wait, is offered to the agent idle longest; flows may change both (UpdateContactRoutingBehavior).
An agent who rejected a contact is passed over for it while another agent is free.

An offer not answered within the queue's ``offer_timeout`` is withdrawn ("expired"), the contact
keeps its place at the head of its queue and the agent goes Offline with ``missed: true`` in its
view, so a contact never keeps bouncing to someone who is not there; going Available clears it.

A waiting contact's position is its place among its queue's contacts in the order they will be served
(offered ones first, then routing order). Its estimated wait comes from the staffed agents and the
average handle time (accept to Available again, after-call work included, over the last
HANDLE_SAMPLES calls; DEFAULT_HANDLE_SECONDS before any): each busy agent is free once its current
contact has lasted that long, each Available agent now, and the contacts ahead take the first free
agent in turn, each for one average handle time; the wait is when an agent is free for this one.

Events are collected while a command runs and delivered once it has finished, in order, so a
subscriber that reads a view sees the state after the whole command.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from gateway.clock import SYSTEM_CLOCK, Clock

from .agents import Agent, AgentConfig, AgentState, Offer
from .events import AgentChanged, ContactConnected, ContactOffered, OfferWithdrawn, QueueChanged
from .passwords import verify_password
from .queues import Queue, QueueConfig, WaitingContact, resolve_queue_ref
from .routing_profiles import RoutingProfile, default_routing_profile
from .security import BUILTIN_SECURITY_PROFILES, SecurityProfile

_LOGGER = logging.getLogger(__name__)

DEFAULT_TICK_INTERVAL = 0.2  # seconds between ticks: offer and ACW timers are this precise
DEFAULT_HANDLE_SECONDS = 180.0  # average handle time assumed until calls have been handled
HANDLE_SAMPLES = 20  # the average handle time is over this many last calls
JOINING_PRIORITY = 5  # the priority of a contact that joins a queue (WaitingContact's default)


class CenterError(Exception):
    """A command the Center refuses; ``code`` is one of the error codes in docs/mqtt-api.md."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Contact:
    contact: WaitingContact
    agent_id: str | None = None  # offered to, or (when connected) talking to
    connected: bool = False
    declined_by: set[str] = field(default_factory=set)


class Center:
    def __init__(
        self, queues: list[QueueConfig], agents: list[AgentConfig], *, clock: Clock = SYSTEM_CLOCK,
        default_handle_seconds: float = DEFAULT_HANDLE_SECONDS,
        routing_profiles: dict[str, RoutingProfile] | None = None,
        security_profiles: dict[str, SecurityProfile] | None = None,
    ) -> None:
        self._clock = clock
        self._default_handle = default_handle_seconds
        self._handle_started: dict[str, float] = {}  # agent id -> monotonic time it accepted its contact
        self._handle_times: deque[float] = deque(maxlen=HANDLE_SAMPLES)
        self._queues: dict[str, Queue] = {}
        for cfg in queues:
            if cfg.id in self._queues:
                raise ValueError(f"queue id {cfg.id!r} is configured twice")
            self._queues[cfg.id] = Queue(cfg)
        self._agents: dict[str, Agent] = {}
        for cfg in agents:
            if not cfg.id:
                raise ValueError("agent id must not be empty")
            if cfg.id in self._agents:
                raise ValueError(f"agent id {cfg.id!r} is configured twice")
            self._agents[cfg.id] = Agent(cfg, since=clock.time(), idle_since=clock.monotonic(),
                                         **self._profiles(cfg, routing_profiles, security_profiles))
        self._contacts: dict[str, _Contact] = {}
        self._subscribers: list[Callable[[object], None]] = []
        self._pending: list[object] = []
        self._batch_depth = 0
        self._delivering = False

    def _profiles(self, cfg: AgentConfig, routing: dict[str, RoutingProfile] | None,
                  security: dict[str, SecurityProfile] | None) -> dict:
        """The agent's routing and security profile objects; the built-in ones when none are given."""
        routing = routing if routing is not None else {"default": default_routing_profile(self._queues)}
        security = security if security is not None else BUILTIN_SECURITY_PROFILES
        for kind, ref, known in (("routing", cfg.routing_profile, routing), ("security", cfg.security_profile, security)):
            if ref not in known:
                raise ValueError(f"agent {cfg.id!r}: no {kind} profile {ref!r}")
        return {"routing": routing[cfg.routing_profile], "security": security[cfg.security_profile]}

    # ---- events -------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[object], None]) -> None:
        self._subscribers.append(callback)

    def _emit(self, event: object) -> None:
        # A view is read at delivery time, so a second "changed" for the same thing adds nothing.
        if isinstance(event, (AgentChanged, QueueChanged)) and event in self._pending:
            return
        self._pending.append(event)

    @contextmanager
    def _batch(self) -> Iterator[None]:
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self._deliver()

    def _deliver(self) -> None:
        if self._delivering:  # a subscriber ran a command; the outer loop delivers its events
            return
        self._delivering = True
        try:
            while self._pending:
                event = self._pending.pop(0)
                for callback in list(self._subscribers):
                    try:
                        callback(event)
                    except Exception:
                        _LOGGER.exception("center subscriber %r failed on %r", callback, event)
        finally:
            self._delivering = False

    # ---- lookups ------------------------------------------------------------------------------

    @property
    def agent_ids(self) -> list[str]:
        return list(self._agents)

    @property
    def queue_ids(self) -> list[str]:
        return list(self._queues)

    def has_queue(self, ref: str) -> bool:
        return self.resolve_queue(ref) is not None

    def resolve_queue(self, ref: str) -> str | None:
        return resolve_queue_ref(ref, (q.config for q in self._queues.values()))

    def contact_agent(self, contact_id: str) -> str | None:
        entry = self._contacts.get(contact_id)
        return entry.agent_id if entry is not None and entry.connected else None

    def agent(self, agent_id: str) -> Agent:
        """The agent's live state, for reading (its profiles, login, state); unknown_agent when none."""
        return self._agent(agent_id)

    def contact_info(self, contact_id: str) -> dict | None:
        """{"queue", "agent" (offered to or talking to, or None), "connected"} of a contact the Center
        holds; None when it holds none by that id."""
        entry = self._contacts.get(contact_id)
        if entry is None:
            return None
        return {"queue": entry.contact.queue_id, "agent": entry.agent_id, "connected": entry.connected}

    def _agent(self, agent_id: str) -> Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise CenterError("unknown_agent", f"no agent {agent_id!r} is configured")
        return agent

    def _logged_in(self, agent_id: str) -> Agent:
        agent = self._agent(agent_id)
        if not agent.logged_in:
            raise CenterError("not_logged_in", f"agent {agent_id} must log in first")
        return agent

    def _offered(self, agent_id: str, contact_id: str) -> Agent:
        agent = self._logged_in(agent_id)
        if agent.offer is None or agent.offer.contact_id != contact_id:
            raise CenterError("no_offer", f"no offer pending for contact {contact_id}")
        return agent

    # ---- agent commands -----------------------------------------------------------------------

    def login(self, agent_id: str, password: str) -> None:
        """Authenticate the agent; its state does not change (a new agent is Offline)."""
        with self._batch():
            agent = self._agent(agent_id)
            if not verify_password(password, agent.config.password_hash):
                raise CenterError("bad_credentials", f"wrong password for agent {agent_id}")
            agent.logged_in = True
            self._emit(AgentChanged(agent_id))

    def logout(self, agent_id: str) -> None:
        with self._batch():
            agent = self._logged_in(agent_id)
            self._refuse_on_call(agent, "log out")
            self._go_offline(agent)
            agent.logged_in = False
            agent.missed = False
            self._emit(AgentChanged(agent_id))
            self._dispatch()

    def set_available(self, agent_id: str) -> None:
        """Offline or AfterCallWork -> Available (ends after-call work early)."""
        with self._batch():
            agent = self._logged_in(agent_id)
            self._refuse_on_call(agent, "go Available")
            if agent.missed:
                agent.missed = False
                self._emit(AgentChanged(agent_id))
            if agent.state is not AgentState.AVAILABLE:
                self._become_available(agent)
            self._dispatch()

    def set_offline(self, agent_id: str) -> None:
        """Not while OnCall; a pending offer is withdrawn and its contact stays at the queue's head."""
        with self._batch():
            agent = self._logged_in(agent_id)
            self._refuse_on_call(agent, "go Offline")
            self._go_offline(agent)
            self._dispatch()

    def accept(self, agent_id: str, contact_id: str) -> WaitingContact:
        with self._batch():
            agent = self._offered(agent_id, contact_id)
            entry = self._contacts[contact_id]
            agent.offer = None
            entry.connected = True
            self._queues[entry.contact.queue_id].remove(contact_id)
            self._emit(QueueChanged(entry.contact.queue_id))
            agent.contact_id = contact_id
            self._handle_started[agent_id] = self._clock.monotonic()
            self._set_state(agent, AgentState.ON_CALL)
            self._emit(ContactConnected(contact_id, agent_id))
            _LOGGER.info("agent %s accepted contact %s", agent_id, contact_id)
            return entry.contact

    def reject(self, agent_id: str, contact_id: str) -> None:
        with self._batch():
            agent = self._offered(agent_id, contact_id)
            self._contacts[contact_id].declined_by.add(agent_id)
            self._withdraw(agent, "rejected")
            self._dispatch()

    def hangup(self, agent_id: str) -> str:
        """The contact the agent is talking to; the caller of this ends the call and reports it."""
        agent = self._logged_in(agent_id)
        if agent.state is not AgentState.ON_CALL or agent.contact_id is None:
            raise CenterError("not_on_call", f"agent {agent_id} is not on a call")
        return agent.contact_id

    # ---- contacts -----------------------------------------------------------------------------

    def enqueue(self, contact: WaitingContact) -> str:
        """Add a contact to its queue (named by id, name or ARN): "queued", "at_capacity" or "no_queue"."""
        queue_id = self.resolve_queue(contact.queue_id)
        if queue_id is None:
            return "no_queue"
        if contact.contact_id in self._contacts:
            raise ValueError(f"contact {contact.contact_id} is already queued or connected")
        queue = self._queues[queue_id]
        if queue.full:
            return "at_capacity"
        with self._batch():
            self._contacts[contact.contact_id] = _Contact(replace(contact, queue_id=queue_id))
            queue.append(contact.contact_id)
            self._emit(QueueChanged(queue_id))
            self._dispatch()
        return "queued"

    def contact_ended(self, contact_id: str, reason: str) -> None:
        """The call is gone: drop a waiting contact, withdraw its offer, or start after-call work."""
        entry = self._contacts.pop(contact_id, None)
        if entry is None:
            return
        _LOGGER.info("contact %s ended (%s)", contact_id, reason)
        with self._batch():
            queue = self._queues[entry.contact.queue_id]
            if entry.connected and entry.agent_id is not None:
                agent = self._agents[entry.agent_id]
                agent.acw_until = self._clock.monotonic() + queue.config.acw_timeout
                self._set_state(agent, AgentState.AFTER_CALL_WORK)
                if queue.config.acw_timeout <= 0:
                    self._become_available(agent)
            else:
                if entry.agent_id is not None:
                    self._withdraw(self._agents[entry.agent_id], "caller_hung_up")
                queue.remove(contact_id)
                self._emit(QueueChanged(queue.id))
            self._dispatch()

    def dequeue(self, contact_id: str, reason: str = "caller_left_queue") -> bool:
        """Take a waiting contact out of its queue while its call goes on (say, to leave a voicemail from the
        customer queue flow); an offer of it is withdrawn with `reason`. False if it is not waiting."""
        entry = self._contacts.get(contact_id)
        if entry is None or entry.connected:
            return False
        with self._batch():
            del self._contacts[contact_id]
            if entry.agent_id is not None:
                self._withdraw(self._agents[entry.agent_id], reason)
            self._queues[entry.contact.queue_id].remove(contact_id)
            self._emit(QueueChanged(entry.contact.queue_id))
            _LOGGER.info("contact %s left queue %s (%s)", contact_id, entry.contact.queue_id, reason)
            self._dispatch()
        return True

    def transfer(self, contact_id: str, queue_ref: str) -> str:
        """Move a waiting contact to another queue (a customer queue flow's TransferContactToQueue); it keeps
        the time it has waited. "queued", "at_capacity" (it stays where it is), "no_queue" or "not_waiting"."""
        entry = self._contacts.get(contact_id)
        if entry is None or entry.connected:
            return "not_waiting"
        queue_id = self.resolve_queue(queue_ref)
        if queue_id is None:
            return "no_queue"
        old = entry.contact.queue_id
        if queue_id == old:
            return "queued"
        if self._queues[queue_id].full:
            return "at_capacity"
        with self._batch():
            if entry.agent_id is not None:
                self._withdraw(self._agents[entry.agent_id], "caller_left_queue")
            self._queues[old].remove(contact_id)
            entry.contact = replace(entry.contact, queue_id=queue_id)
            self._queues[queue_id].append(contact_id)
            self._emit(QueueChanged(old))
            self._emit(QueueChanged(queue_id))
            _LOGGER.info("contact %s moved from queue %s to %s", contact_id, old, queue_id)
            self._dispatch()
        return "queued"

    def set_routing(self, contact_id: str, *, priority: int | None = None, age_adjustment: float | None = None) -> bool:
        """A waiting contact's new priority or routing age (a flow's UpdateContactRoutingBehavior); False when
        the contact is not waiting (it keeps the values for when it is queued)."""
        entry = self._contacts.get(contact_id)
        if entry is None or entry.connected:
            return False
        changes = {k: v for k, v in (("priority", priority), ("age_adjustment", age_adjustment)) if v is not None}
        with self._batch():
            entry.contact = replace(entry.contact, **changes)
            self._dispatch()
        return True

    def tick(self) -> None:
        """Expire unanswered offers, end after-call work that ran out, then route."""
        with self._batch():
            now = self._clock.monotonic()
            for agent in self._agents.values():
                if agent.offer is not None and now >= agent.offer.expires_mono:
                    _LOGGER.info("agent %s missed contact %s", agent.id, agent.offer.contact_id)
                    self._withdraw(agent, "expired")
                    agent.missed = True
                    self._go_offline(agent)
                if (
                    agent.state is AgentState.AFTER_CALL_WORK
                    and agent.acw_until is not None
                    and now >= agent.acw_until
                ):
                    self._become_available(agent)
            self._dispatch()

    async def run(self, interval: float = DEFAULT_TICK_INTERVAL) -> None:
        """Tick forever on the injected clock."""
        while True:
            try:
                self.tick()
            except Exception:
                _LOGGER.exception("center tick failed")
            await self._clock.sleep(interval)

    # ---- views (docs/mqtt-api.md) -------------------------------------------------------------

    def agent_view(self, agent_id: str) -> dict:
        agent = self._agent(agent_id)
        return {
            "agent": agent.id,
            "name": agent.config.name,
            "state": agent.state.value,
            "since": agent.since,
            "contact_id": agent.contact_id,
            "offer": self.offer_view(agent_id),
            "missed": agent.missed,
            "routing_profile": agent.routing.id if agent.routing else None,
            "security_profile": agent.security.id if agent.security else None,
            "permissions": agent.security.sorted_permissions() if agent.security else [],
        }

    def queue_view(self, queue_id: str) -> dict:
        resolved = self.resolve_queue(queue_id)
        if resolved is None:
            raise ValueError(f"no queue {queue_id!r} is configured")
        queue = self._queues[resolved]
        now = self._clock.monotonic()
        contacts = []
        for contact_id in queue:
            c = self._contacts[contact_id].contact
            contacts.append(
                {
                    "contact_id": c.contact_id,
                    "caller": c.caller,
                    "waiting_since": c.enqueued_wall,
                    "wait": _seconds(now - c.enqueued_mono),
                }
            )
        return {
            "queue": queue.id,
            "name": queue.config.name,
            "depth": len(contacts),
            "oldest_wait": max((c["wait"] for c in contacts), default=0.0),
            "contacts": contacts,
        }

    def queue_metrics(self, queue_ref: str) -> dict:
        """A queue's real-time metrics under the names a flow's CheckMetricData uses. Every agent serves
        every queue here, so the agent counts are the gateway's; with no custom statuses, staffed and
        online agents are the same (Available, OnCall or AfterCallWork)."""
        view = self.queue_view(queue_ref)
        agents = [a for a in self._agents.values() if a.logged_in]
        online = sum(1 for a in agents if a.state is not AgentState.OFFLINE)
        return {
            "QueueId": view["queue"], "QueueName": view["name"],
            "NumberOfContactsInQueue": view["depth"],
            "OldestContactInQueueAgeSeconds": view["oldest_wait"],
            "NumberOfAgentsAvailable": sum(1 for a in agents if a.routable),
            "NumberOfAgentsStaffed": online, "NumberOfAgentsOnline": online,
            "NumberOfAgentsOnContact": sum(1 for a in agents if a.state is AgentState.ON_CALL),
            "NumberOfAgentsAfterContactWork": sum(1 for a in agents if a.state is AgentState.AFTER_CALL_WORK),
            "NumberOfAgentsMissed": sum(1 for a in self._agents.values() if a.missed),
        }

    def wait_metrics(self, queue_ref: str, contact_id: str | None = None) -> dict:
        """AverageHandleSeconds, and EstimatedWaitSeconds (and Minutes, rounded up): the wait of `contact_id`
        when it waits in this queue (then with its PositionInQueue, 1 = served next), else of a contact
        joining the queue now; absent when no agent is staffed."""
        queue_id = self.resolve_queue(queue_ref)
        if queue_id is None:
            raise ValueError(f"no queue {queue_ref!r} is configured")
        metrics: dict = {"AverageHandleSeconds": round(self.average_handle_seconds(), 1)}
        place = self.contact_position(contact_id) if contact_id is not None else None
        if place is not None and place["QueueId"] == queue_id:
            metrics["PositionInQueue"] = place["PositionInQueue"]
            wait = place["EstimatedWaitSeconds"]
        else:
            joining = (JOINING_PRIORITY, self._clock.monotonic())
            wait = self._estimated_wait(sum(1 for e in self._service_order()
                                            if e.agent_id is not None or e.contact.routing_key <= joining))
        if wait is not None:
            metrics["EstimatedWaitSeconds"] = round(wait)
            metrics["EstimatedWaitMinutes"] = math.ceil(round(wait) / 60)
        return metrics

    def contact_position(self, contact_id: str) -> dict | None:
        """Where a waiting contact stands: {"QueueId", "PositionInQueue" (1 = served next),
        "EstimatedWaitSeconds" (None when no agent is staffed)}; None when it is not waiting."""
        entry = self._contacts.get(contact_id)
        if entry is None or entry.connected:
            return None
        order = self._service_order()
        mine = [e for e in order if e.contact.queue_id == entry.contact.queue_id]
        return {"QueueId": entry.contact.queue_id, "PositionInQueue": mine.index(entry) + 1,
                "EstimatedWaitSeconds": self._estimated_wait(order.index(entry))}

    def average_handle_seconds(self) -> float:
        """Mean time from an agent's accept to being Available again over the last calls (the default before any)."""
        return sum(self._handle_times) / len(self._handle_times) if self._handle_times else self._default_handle

    def _service_order(self) -> list[_Contact]:
        """Every waiting contact in the order agents will take them: those offered first, then routing order."""
        waiting = [self._contacts[c] for q in self._queues.values() for c in q]
        return sorted(waiting, key=lambda e: (e.agent_id is None, e.contact.routing_key))

    def _estimated_wait(self, ahead: int) -> float | None:
        """Seconds until an agent is free for a contact with `ahead` contacts before it (module docstring)."""
        handle = self.average_handle_seconds()
        now = self._clock.monotonic()
        free = []
        for agent in self._agents.values():
            if not agent.logged_in or agent.state is AgentState.OFFLINE:
                continue
            started = self._handle_started.get(agent.id)
            busy = agent.state is not AgentState.AVAILABLE and started is not None
            free.append(max(handle - (now - started), 0.0) if busy else 0.0)
        if not free:
            return None
        heapq.heapify(free)
        for _ in range(ahead):
            heapq.heapreplace(free, free[0] + handle)
        return free[0]

    def offer_view(self, agent_id: str) -> dict | None:
        offer = self._agent(agent_id).offer
        if offer is None:
            return None
        c = self._contacts[offer.contact_id].contact
        return {
            "contact_id": c.contact_id,
            "call_id": c.contact_id,
            "caller": c.caller,
            "queue": offer.queue_id,
            "line": c.line_id,
            "expires_in": _seconds(offer.expires_mono - self._clock.monotonic()),
        }

    # ---- state changes ------------------------------------------------------------------------

    def _refuse_on_call(self, agent: Agent, what: str) -> None:
        if agent.state is AgentState.ON_CALL:
            raise CenterError(
                "bad_state", f"agent {agent.id} is on call with {agent.contact_id}: hang up before you {what}"
            )

    def _set_state(self, agent: Agent, state: AgentState) -> None:
        agent.state = state
        agent.since = self._clock.time()
        self._emit(AgentChanged(agent.id))

    def _handled(self, agent: Agent) -> None:
        """The agent is done with its contact (Available again, or Offline from after-call work)."""
        started = self._handle_started.pop(agent.id, None)
        if started is not None:
            self._handle_times.append(self._clock.monotonic() - started)

    def _become_available(self, agent: Agent) -> None:
        self._handled(agent)
        agent.contact_id = None
        agent.acw_until = None
        agent.idle_since = self._clock.monotonic()
        self._set_state(agent, AgentState.AVAILABLE)

    def _go_offline(self, agent: Agent) -> None:
        if agent.offer is not None:
            # Going away with an offer on screen declines it.
            self._withdraw(agent, "rejected")
        if agent.state is not AgentState.OFFLINE:
            self._handled(agent)
            agent.contact_id = None
            agent.acw_until = None
            self._set_state(agent, AgentState.OFFLINE)

    def _withdraw(self, agent: Agent, reason: str) -> None:
        offer = agent.offer
        if offer is None:
            return
        agent.offer = None
        entry = self._contacts.get(offer.contact_id)
        if entry is not None and entry.agent_id == agent.id:
            entry.agent_id = None
        self._emit(OfferWithdrawn(agent.id, offer.contact_id, reason))
        self._emit(AgentChanged(agent.id))

    def _next_waiting(self) -> _Contact | None:
        """The contact not yet offered with the lowest priority, then the longest wait (adjusted by the
        flow's routing age), over all queues; with no changes by flows, the oldest."""
        best: _Contact | None = None
        for queue in self._queues.values():
            for contact_id in queue:
                entry = self._contacts[contact_id]
                if entry.agent_id is None and (best is None or entry.contact.routing_key < best.contact.routing_key):
                    best = entry
        return best

    def _dispatch(self) -> None:
        while True:
            free = sorted((a for a in self._agents.values() if a.routable), key=lambda a: a.idle_since)
            if not free:
                return
            entry = self._next_waiting()
            if entry is None:
                return
            agent = next((a for a in free if a.id not in entry.declined_by), free[0])
            queue = self._queues[entry.contact.queue_id]
            entry.agent_id = agent.id
            agent.offer = Offer(
                entry.contact.contact_id,
                queue.id,
                self._clock.monotonic() + queue.config.offer_timeout,
            )
            _LOGGER.info("contact %s offered to agent %s", entry.contact.contact_id, agent.id)
            self._emit(ContactOffered(agent.id, entry.contact.contact_id))
            self._emit(AgentChanged(agent.id))


def _seconds(value: float) -> float:
    return round(max(value, 0.0), 1)
