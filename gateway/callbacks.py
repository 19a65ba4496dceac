"""Queued callbacks: what a flow's CreateCallbackContact leaves behind once the caller has hung up.

A callback is a CALLBACK contact (its own record: previous_contact_id names the call that asked for
it, `caller` is the number to dial). It is scheduled for InitialCallDelaySeconds and until that call
has ended (no agent dials a customer still on the line), then waits in its queue like a caller would,
at the place of the caller's wait when the caller was already queued. The
agent who accepts it is OnCall at once, and the gateway dials the number (the queue's outbound line,
else any idle line: gateway/agent_calls.py) with progress on the agent's …/call topic; when the
customer answers, the agent is bridged.

An attempt that is not answered (busy, no answer, no free line, failed) puts the agent in after-contact
work; the callback is queued again RetryDelaySeconds later, until 1 + retries attempts have been made;
then its record ends with the last attempt's outcome as disconnect_reason. The agent hanging up while
the number rings ends the callback (disconnect_reason agent_hung_up): the agent decided. Each attempt
is listed in the record's attributes (`callback.attempts`).

The record's attributes also hold the callback's state, so a daemon restart takes up every callback
whose record has not ended: scheduled again (due at once if its time has passed), not lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from gateway.agent_calls import AgentCalls, new_contact_id
from gateway.agent_leg import ANSWERED, AgentLeg
from gateway.center.queues import WaitingContact
from gateway.center.router import Center, CenterError
from gateway.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from gateway.center.records import ContactStore

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0             # how often due callbacks are looked for (their delays are this precise)
FULL_QUEUE_RETRY = 30.0        # seconds before a callback whose queue is full tries to join it again


@dataclass
class Callback:
    contact_id: str
    previous_contact_id: str
    number: str
    queue_id: str
    retries: int                   # attempts after the first
    retry_delay: float
    due: float                     # wall clock: when it may join its queue
    waited_since: float            # wall clock: the start of the wait it continues (its place in the queue)
    attempts: list[dict] = field(default_factory=list)
    state: str = "scheduled"       # scheduled | queued | dialing
    held: bool = True              # the call that asked for it is still up

    def info(self) -> dict:
        return {k: v for k, v in asdict(self).items()
                if k not in ("contact_id", "previous_contact_id", "number", "held")}


class Callbacks:
    def __init__(self, center: Center, store: "ContactStore", *, notify: Callable[[str, dict], None],
                 spawn: Callable, clock: Clock = SYSTEM_CLOCK) -> None:
        self._center, self._store, self._notify, self._spawn, self._clock = center, store, notify, spawn, clock
        self.calls: AgentCalls | None = None       # set once the lines are known
        self.pending: dict[str, Callback] = {}     # contact id -> callback not yet ended

    # --- from the flow ------------------------------------------------------------------------------------
    def create(self, *, previous_contact_id: str, number: str, queue_id: str, initial_delay: float, retries: int,
               retry_delay: float, waited_since: float | None = None) -> str:
        """A new callback (its record written at once); the contact id."""
        now = self._clock.time()
        cb = Callback(new_contact_id(), previous_contact_id, number, queue_id, retries, retry_delay,
                      due=now + initial_delay, waited_since=waited_since if waited_since is not None else now)
        self.pending[cb.contact_id] = cb
        self._store.upsert(cb.contact_id, caller=number, initiation_method="CALLBACK", initiated_at=now,
                           previous_contact_id=previous_contact_id, queue_id=queue_id)
        self._save(cb)
        log.info("callback %s to %s for contact %s: queue %s in %g s, %d retr%s every %g s", cb.contact_id, number,
                 previous_contact_id, queue_id, initial_delay, retries, "y" if retries == 1 else "ies", retry_delay)
        return cb.contact_id

    def release(self, contact_id: str) -> None:
        """The call that left callback `contact_id` has ended: the callback may be queued once it is due."""
        cb = self.pending.get(contact_id)
        if cb is not None:
            cb.held = False

    # --- time ---------------------------------------------------------------------------------------------
    async def run(self, interval: float = TICK_SECONDS) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("callback tick failed")
            await self._clock.sleep(interval)

    def tick(self) -> None:
        """Queue the callbacks whose time has come."""
        now = self._clock.time()
        for cb in list(self.pending.values()):
            if cb.state == "scheduled" and not cb.held and now >= cb.due:
                self._enqueue(cb, now)

    def _enqueue(self, cb: Callback, now: float) -> None:
        waited = max(0.0, now - cb.waited_since)
        line = self.calls.queue_line(cb.queue_id) if self.calls is not None else None
        outcome = self._center.enqueue(WaitingContact(
            cb.contact_id, cb.number, line or "", cb.queue_id, self._clock.monotonic() - waited, cb.waited_since,
            initiation_method="CALLBACK", callback_number=cb.number, previous_contact_id=cb.previous_contact_id))
        if outcome == "queued":
            first = cb.state == "scheduled" and not cb.attempts
            cb.state = "queued"
            if first:
                self._store.upsert(cb.contact_id, enqueued_at=now)
            self._save(cb)
        elif outcome == "at_capacity":
            cb.due = now + FULL_QUEUE_RETRY
            self._save(cb)
            log.info("callback %s: queue %s is full; trying again in %g s", cb.contact_id, cb.queue_id,
                     FULL_QUEUE_RETRY)
        else:
            self._end(cb, "no_queue")

    # --- an agent took it -----------------------------------------------------------------------------------
    def connected(self, contact_id: str, agent_id: str) -> bool:
        """An agent accepted a queued callback: dial it. False when the contact is not a callback."""
        cb = self.pending.get(contact_id)
        if cb is None or cb.state != "queued" or self.calls is None:
            return False
        cb.state = "dialing"
        self._save(cb)
        self._spawn(self._attempt(cb, agent_id), f"callback-{contact_id}")
        return True

    async def _attempt(self, cb: Callback, agent_id: str) -> None:
        calls = self.calls
        started = self._clock.time()
        number = len(cb.attempts) + 1
        try:
            line = calls.line_for(queue_id=cb.queue_id, strict=False)
        except CenterError as exc:
            log.warning("callback %s: %s", cb.contact_id, exc.message)
            line = None
        leg = None
        outcome = "no_free_line"
        if line is not None:
            leg = AgentLeg(line, cb.number, cb.contact_id, agent_id=agent_id, queue_id=cb.queue_id, kind="CALLBACK",
                           notify=self._notify, clock=self._clock)
            leg.details = {"attempt": number, "attempts": cb.retries + 1}
            calls.reserve(leg)
            self._store.upsert(cb.contact_id, line_id=line.id, agent_id=agent_id,
                               attributes={"callback": cb.info(), "caller_id": calls.caller_id(line.id)})
            outcome = await calls.place(leg)
        cb.attempts.append({"at": started, "agent": agent_id, "line": line.id if line else None, "outcome": outcome})
        log.info("callback %s: attempt %d of %d by agent %s: %s", cb.contact_id, number, cb.retries + 1, agent_id,
                 outcome)
        if outcome == ANSWERED:
            self.pending.pop(cb.contact_id, None)
            cb.state = "done"
            self._save(cb)
            return
        reason = "agent_hung_up" if outcome == "cancelled" else outcome.split(":")[0]
        if outcome != "cancelled" and len(cb.attempts) <= cb.retries:
            cb.state, cb.due = "scheduled", self._clock.time() + cb.retry_delay
            self._save(cb)
            self._tell(leg, agent_id, cb, outcome=outcome, reason=reason, retry_at=cb.due)
            self._center.contact_ended(cb.contact_id, f"callback_{reason}")
            return
        self.pending.pop(cb.contact_id, None)
        cb.state = "done"
        self._save(cb)
        if leg is not None:
            calls.close(leg, outcome, reason)
        else:
            self._tell(None, agent_id, cb, outcome=outcome, reason=reason)
            self._store.upsert(cb.contact_id, ended_at=self._clock.time(), disconnect_reason=reason)
            self._center.contact_ended(cb.contact_id, reason)

    def _tell(self, leg: AgentLeg | None, agent_id: str, cb: Callback, **extra) -> None:
        if leg is not None:
            leg.tell("ended", **extra)
            return
        self._notify(agent_id, {"contact_id": cb.contact_id, "kind": "CALLBACK", "number": cb.number, "line": None,
                                "stage": "ended", "at": self._clock.time(), "attempt": len(cb.attempts),
                                "attempts": cb.retries + 1, **extra})

    def _end(self, cb: Callback, reason: str) -> None:
        self.pending.pop(cb.contact_id, None)
        cb.state = "done"
        self._save(cb)
        self._store.upsert(cb.contact_id, ended_at=self._clock.time(), disconnect_reason=reason)
        log.warning("callback %s to %s dropped: %s", cb.contact_id, cb.number, reason)

    # --- the record, and a restart --------------------------------------------------------------------------
    def _save(self, cb: Callback) -> None:
        record = self._store.get(cb.contact_id) or {}
        attributes = record.get("attributes") if isinstance(record.get("attributes"), dict) else {}
        self._store.upsert(cb.contact_id, attributes={**attributes, "callback": cb.info()})

    def restore(self) -> set[str]:
        """Take up the callbacks of records that have not ended (after a restart): scheduled again, the
        one being dialled when the daemon stopped too (that attempt is not counted). Their ids."""
        for rec in self._store.query(method="CALLBACK", outcome="in_progress", limit=None):
            info = (rec.get("attributes") or {}).get("callback")
            if not isinstance(info, dict) or rec["contact_id"] in self.pending:
                continue
            try:
                cb = Callback(rec["contact_id"], rec.get("previous_contact_id") or "", rec.get("caller") or "",
                              str(info["queue_id"]), int(info["retries"]), float(info["retry_delay"]),
                              float(info["due"]), float(info["waited_since"]), list(info.get("attempts", [])))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("callback %s cannot be taken up: %s", rec["contact_id"], exc)
                continue
            cb.state, cb.held = "scheduled", False
            self.pending[cb.contact_id] = cb
            self._save(cb)
            log.info("callback %s to %s taken up after a restart (due %s)", cb.contact_id, cb.number,
                     "now" if cb.due <= self._clock.time() else f"in {cb.due - self._clock.time():.0f} s")
        return set(self.pending)
