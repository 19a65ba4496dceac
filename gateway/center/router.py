"""The Center: agent states and commands, waiting contacts, and routing them by the agents' routing profiles.

Routing runs after every state change and on every tick (which is also what makes delays and
timeouts happen). Free agents (Available, no pending offer) are taken longest-idle first (idle since
they last went Available: after-call work ended, or back from Offline, a break or Missed); each is
offered the best contact its routing profile lets it take now:

1. only queues of its profile, and of those only contacts that have waited at least the profile's
   delay for that queue (time since the contact was queued; a queue transfer keeps it);
2. the queue's priority in the profile first (1 before 2; a priority-2 queue only while no
   priority-1 queue has a contact for this agent);
3. then the contact's own priority (a flow's QueuePriority; lower first, 5 when none);
4. then the longest wait, adjusted by the flow's QueueTimeAdjustmentSeconds.

So the key is (profile priority, contact priority, enqueue time - age adjustment), as Amazon
Connect orders routing-profile priority before contact priority before age. A contact offered to
one agent is not offered to another until the offer ends. An agent who rejected a contact is passed
over for it while another free agent may take it.

An offer not answered within its queue's ``offer_timeout`` is withdrawn ("expired") and the agent
goes Missed: not routable until it sets itself Available (or Offline, or a break) again, so a
contact never keeps bouncing to someone who is not there. The contact keeps its enqueue time, so it
is back at the head of its queue (among contacts of its priority) and is offered to the next free
agent in the same tick. Break states are the gateway's ``[gateway] break_states``; an agent on a
break gets no offers. After a contact the agent is in AfterCallWork for its queue's ``acw_timeout``.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from gateway.clock import SYSTEM_CLOCK, Clock

from .agents import Agent, AgentConfig, AgentState, Offer, break_states_problem
from .events import AfterContactWorkEnded, AgentChanged, ContactConnected, ContactOffered, OfferWithdrawn, QueueChanged
from .passwords import verify_password
from .queues import Queue, QueueConfig, WaitingContact, resolve_queue_ref
from .routing_profiles import RoutingProfile, RoutingQueue, default_routing_profile
from .security import BUILTIN_SECURITY_PROFILES, SecurityProfile, did_you_mean

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
        break_states: Sequence[str] = (),
    ) -> None:
        self._clock = clock
        problem = break_states_problem(list(break_states))
        if problem is not None:
            raise ValueError(f"break_states[{problem[0]}]: {problem[1]}")
        self._break_states = tuple(break_states)
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
        # agent id -> its routing profile's queues, lowest priority number first (the order routing reads them)
        self._profile_order: dict[str, tuple[RoutingQueue, ...]] = {
            a.id: tuple(sorted(a.routing.queues, key=lambda q: q.priority)) for a in self._agents.values()}
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

    @property
    def break_states(self) -> list[str]:
        """The break states agents may pick, as configured."""
        return list(self._break_states)

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
            self._emit(AgentChanged(agent_id))
            self._dispatch()

    def set_available(self, agent_id: str) -> None:
        """Offline, a break, Missed or AfterCallWork -> Available (ends after-call work early)."""
        with self._batch():
            agent = self._logged_in(agent_id)
            self._refuse_on_call(agent, "go Available")
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

    def set_break(self, agent_id: str, name: str) -> str:
        """Go on one of the configured break states (any spelling of its case; the configured one is
        returned): no offers until Available again. Not while OnCall; ends after-call work; a pending
        offer is withdrawn as by going Offline."""
        with self._batch():
            agent = self._logged_in(agent_id)
            state = self._break_state(name)
            self._refuse_on_call(agent, f"go on a break ({state})")
            if agent.state is not AgentState.BREAK or agent.break_state != state:
                self._leave_work(agent)
                self._set_state(agent, AgentState.BREAK, break_state=state)
            self._dispatch()
            return state

    def _break_state(self, name: str) -> str:
        for state in self._break_states:
            if state.casefold() == name.casefold():
                return state
        if not self._break_states:
            raise CenterError("unknown_state", f'no break state "{name}": this gateway has none '
                                               "(configure them as [gateway] break_states)")
        raise CenterError("unknown_state", f'no break state "{name}"{did_you_mean(name, self._break_states)}; '
                                           f"break states: {', '.join(self._break_states)}")

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

    # ---- an agent's own calls and transfers (gateway/agent_calls.py) --------------------------------

    def start_outbound(self, agent_id: str, contact: WaitingContact) -> None:
        """The agent places a call (`contact` names it, its queue the outbound queue): OnCall at once, so
        no offer reaches it while the number rings; the call's end (contact_ended) starts the queue's
        after-call work. From any state but OnCall (Offline and breaks too, as in Amazon Connect), and
        not with an offer pending; after-call work in progress ends."""
        with self._batch():
            agent = self._logged_in(agent_id)
            self._refuse_on_call(agent, "place a call")
            if agent.offer is not None:
                raise CenterError("bad_state", f"agent {agent_id} has contact {agent.offer.contact_id} on offer: "
                                               "accept or reject it before placing a call")
            queue_id = self.resolve_queue(contact.queue_id)
            if queue_id is None:
                raise CenterError("unknown_queue", f"no queue {contact.queue_id!r} is configured")
            if contact.contact_id in self._contacts:
                raise ValueError(f"contact {contact.contact_id} is already queued or connected")
            self._handled(agent)
            self._contacts[contact.contact_id] = _Contact(replace(contact, queue_id=queue_id), agent_id=agent_id,
                                                          connected=True)
            agent.contact_id, agent.acw_until = contact.contact_id, None
            self._handle_started[agent_id] = self._clock.monotonic()
            self._set_state(agent, AgentState.ON_CALL)
            _LOGGER.info("agent %s placing call %s (queue %s)", agent_id, contact.contact_id, queue_id)

    def requeue(self, contact_id: str, contact: WaitingContact, *, to_agent: str | None = None) -> None:
        """An agent's transfer of its connected contact: the agent's leg ends (after-call work, as when the
        call ends) and the call waits again as `contact` (a new id) in its queue. With `to_agent` it is
        offered to that agent alone first; a reject or an offer that expires leaves it waiting in the
        queue for any agent who serves it. Refused, changing nothing: unknown_queue, queue_full,
        unknown_agent, agent_offline, agent_busy (not Available, or an offer pending), bad_state (to the
        agent on the call)."""
        entry = self._contacts.get(contact_id)
        if entry is None or not entry.connected:
            raise CenterError("not_on_call", f"contact {contact_id} is not connected to an agent")
        queue_id = self.resolve_queue(contact.queue_id)
        if queue_id is None:
            raise CenterError("unknown_queue", f"no queue {contact.queue_id!r} is configured "
                                               f"(queues: {', '.join(self._queues)})")
        queue = self._queues[queue_id]
        if queue.full:
            raise CenterError("queue_full", f"queue {queue_id} is full ({queue.config.max_contacts} contacts waiting)")
        target = None
        if to_agent is not None:
            target = self._agent(to_agent)
            if to_agent == entry.agent_id:
                raise CenterError("bad_state", f"contact {contact_id} is already agent {to_agent}'s call")
            if not target.logged_in or target.state is AgentState.OFFLINE:
                raise CenterError("agent_offline", f"agent {to_agent} is offline")
            if not target.routable:
                doing = f"has contact {target.offer.contact_id} on offer" if target.offer is not None \
                    else f"is {target.break_state or target.state.value}"
                raise CenterError("agent_busy", f"agent {to_agent} cannot take a call now: it {doing}")
        if contact.contact_id in self._contacts:
            raise ValueError(f"contact {contact.contact_id} is already queued or connected")
        with self._batch():
            new = _Contact(replace(contact, queue_id=queue_id))
            self._contacts[contact.contact_id] = new
            queue.append(contact.contact_id)
            self._emit(QueueChanged(queue_id))
            if target is not None:
                self._offer(target, new)
            _LOGGER.info("contact %s transferred as %s to %s", contact_id, contact.contact_id,
                         f"agent {to_agent}" if to_agent else f"queue {queue_id}")
            self.contact_ended(contact_id, "transferred")

    def tick(self) -> None:
        """Expire unanswered offers, end after-call work that ran out, then route."""
        with self._batch():
            now = self._clock.monotonic()
            for agent in self._agents.values():
                if agent.offer is not None and now >= agent.offer.expires_mono:
                    _LOGGER.info("agent %s missed contact %s", agent.id, agent.offer.contact_id)
                    self._withdraw(agent, "expired")
                    self._set_state(agent, AgentState.MISSED)
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
            "break_state": agent.break_state,
            "since": agent.since,
            "contact_id": agent.contact_id,
            "offer": self.offer_view(agent_id),
            "missed": agent.missed,
            "routing_profile": agent.routing.id if agent.routing else None,
            "security_profile": agent.security.id if agent.security else None,
            "permissions": agent.security.sorted_permissions() if agent.security else [],
            "break_states": list(self._break_states),
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
        """A queue's real-time metrics under the names a flow's CheckMetricData uses; the agents counted
        are those whose routing profile serves the queue (realtime_metrics)."""
        queue_id = self.resolve_queue(queue_ref)
        if queue_id is None:
            raise ValueError(f"no queue {queue_ref!r} is configured")
        m = self._metrics([a for a in self._agents.values() if a.routing.entry(queue_id) is not None],
                          [self._queues[queue_id]])
        return {
            "QueueId": queue_id, "QueueName": self._queues[queue_id].config.name,
            "NumberOfContactsInQueue": m["contacts_in_queue"],
            "OldestContactInQueueAgeSeconds": m["oldest_wait"],
            "NumberOfAgentsAvailable": m["agents_available"],
            "NumberOfAgentsStaffed": m["agents_staffed"], "NumberOfAgentsOnline": m["agents_online"],
            "NumberOfAgentsOnContact": m["agents_on_contact"],
            "NumberOfAgentsAfterContactWork": m["agents_acw"],
            "NumberOfAgentsMissed": m["agents_missed"],
        }

    def realtime_metrics(self) -> dict:
        """Real-time metrics per queue and in total: {"queues": {queue id: counts}, "total": counts}, the
        counts being agents_online (signed in and not Offline: breaks and Missed count), agents_staffed
        (online, not on a break), agents_available (Available with no offer pending), agents_on_contact,
        agents_acw, agents_missed, agents_break ({break state: agents}, every configured one),
        contacts_in_queue and oldest_wait (seconds). A queue counts the agents whose routing profile
        serves it; the total counts every agent once."""
        agents = list(self._agents.values())
        queues = list(self._queues.values())
        return {"queues": {q.id: self._metrics([a for a in agents if a.routing.entry(q.id) is not None], [q])
                           for q in queues},
                "total": self._metrics(agents, queues)}

    def _metrics(self, agents: list[Agent], queues: list[Queue]) -> dict:
        now = self._clock.monotonic()
        count = {state: 0 for state in AgentState}
        breaks = dict.fromkeys(self._break_states, 0)
        available = 0
        for agent in agents:
            if agent.online:
                count[agent.state] += 1
                available += agent.routable
                if agent.state is AgentState.BREAK:
                    breaks[agent.break_state] = breaks.get(agent.break_state, 0) + 1
        online = sum(count.values())
        oldest = min((self._contacts[c].contact.enqueued_mono for q in queues for c in q), default=now)
        return {
            "agents_online": online,
            "agents_staffed": online - count[AgentState.BREAK],
            "agents_available": available,
            "agents_on_contact": count[AgentState.ON_CALL],
            "agents_acw": count[AgentState.AFTER_CALL_WORK],
            "agents_missed": count[AgentState.MISSED],
            "agents_break": breaks,
            "contacts_in_queue": sum(len(q) for q in queues),
            "oldest_wait": _seconds(now - oldest),
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
            if agent.state not in (AgentState.AVAILABLE, AgentState.ON_CALL, AgentState.AFTER_CALL_WORK):
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
            "initiation_method": c.initiation_method,
            "callback_number": c.callback_number,
            "previous_contact_id": c.previous_contact_id,
        }

    # ---- state changes ------------------------------------------------------------------------

    def _refuse_on_call(self, agent: Agent, what: str) -> None:
        if agent.state is AgentState.ON_CALL:
            raise CenterError(
                "bad_state", f"agent {agent.id} is on call with {agent.contact_id}: hang up before you {what}"
            )

    def _set_state(self, agent: Agent, state: AgentState, break_state: str | None = None) -> None:
        agent.state = state
        agent.break_state = break_state
        agent.since = self._clock.time()
        self._emit(AgentChanged(agent.id))

    def _handled(self, agent: Agent) -> None:
        """The agent is done with its contact (Available again, or Offline from after-call work)."""
        if agent.contact_id is not None and agent.state is AgentState.AFTER_CALL_WORK:
            self._emit(AfterContactWorkEnded(agent.contact_id, agent.id))
        started = self._handle_started.pop(agent.id, None)
        if started is not None:
            self._handle_times.append(self._clock.monotonic() - started)

    def _become_available(self, agent: Agent) -> None:
        self._handled(agent)
        agent.contact_id = None
        agent.acw_until = None
        agent.idle_since = self._clock.monotonic()
        self._set_state(agent, AgentState.AVAILABLE)

    def _leave_work(self, agent: Agent) -> None:
        """Going away (Offline, a break): a pending offer is declined, after-call work ends."""
        if agent.offer is not None:
            self._withdraw(agent, "rejected")
        self._handled(agent)
        agent.contact_id = None
        agent.acw_until = None

    def _go_offline(self, agent: Agent) -> None:
        self._leave_work(agent)
        if agent.state is not AgentState.OFFLINE:
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

    def _ready_by_queue(self) -> dict[str, list[_Contact]]:
        """Each queue's contacts not offered to anyone, best first by the contact's own routing key
        (priority, then adjusted wait)."""
        ready = {}
        for queue in self._queues.values():
            entries = [e for e in map(self._contacts.__getitem__, queue) if e.agent_id is None]
            if entries:
                entries.sort(key=lambda e: e.contact.routing_key)
                ready[queue.id] = entries
        return ready

    def _pick(self, agent: Agent, ready: dict[str, list[_Contact]], free: list[Agent], now: float) -> _Contact | None:
        """The contact to offer `agent` now (module docstring: routing), or None."""
        best: _Contact | None = None
        best_key: tuple = ()
        for rq in self._profile_order[agent.id]:
            if best is not None and rq.priority > best_key[0]:
                break  # a queue of a later priority never beats one that has a contact for this agent
            for entry in ready.get(rq.queue, ()):
                if now - entry.contact.enqueued_mono < rq.delay:
                    continue
                if agent.id in entry.declined_by and self._another_takes(entry, agent, free, now):
                    continue
                key = (rq.priority, *entry.contact.routing_key)
                if best is None or key < best_key:
                    best, best_key = entry, key
                break  # the first one a queue can give is its best
        return best

    def _another_takes(self, entry: _Contact, agent: Agent, free: list[Agent], now: float) -> bool:
        """Whether a free agent other than `agent`, who has not declined `entry`, may be offered it now."""
        waited = now - entry.contact.enqueued_mono
        for other in free:
            if other is agent or other.id in entry.declined_by:
                continue
            rq = other.routing.entry(entry.contact.queue_id)
            if rq is not None and waited >= rq.delay:
                return True
        return False

    def _dispatch(self) -> None:
        """Offer waiting contacts to free agents, longest-idle agent first, until no free agent can take one."""
        free = [a for a in self._agents.values() if a.routable]
        if not free:
            return
        ready = self._ready_by_queue()
        if not ready:
            return
        free.sort(key=lambda a: a.idle_since)
        now = self._clock.monotonic()
        while free and ready:
            offered = False
            for agent in list(free):
                entry = self._pick(agent, ready, free, now)
                if entry is None:
                    continue
                queue_entries = ready[entry.contact.queue_id]
                queue_entries.remove(entry)
                if not queue_entries:
                    del ready[entry.contact.queue_id]
                free.remove(agent)
                self._offer(agent, entry)
                offered = True
            if not offered:
                return

    def _offer(self, agent: Agent, entry: _Contact) -> None:
        queue = self._queues[entry.contact.queue_id]
        entry.agent_id = agent.id
        agent.offer = Offer(entry.contact.contact_id, queue.id, self._clock.monotonic() + queue.config.offer_timeout)
        _LOGGER.info("contact %s offered to agent %s", entry.contact.contact_id, agent.id)
        self._emit(ContactOffered(agent.id, entry.contact.contact_id))
        self._emit(AgentChanged(agent.id))


def _seconds(value: float) -> float:
    return round(max(value, 0.0), 1)
