"""What agents do with calls besides taking them: place outbound calls (the `dial` command) and transfer
their live call to a queue or to another agent (the `transfer` command); also the line a call goes out
on, for agents and for queued callbacks (gateway/callbacks.py).

Which line dials: the command's `line`; else the queue's outbound line (the queue is the command's
`queue`, else the agent's routing profile's default outbound queue): `outbound_line` of the queue, or
a line whose `outbound_queue` names it; else any idle line. A SIM presents its own number, so the
caller ID the customer sees is that line's number: a queue gets its caller ID by having its own line.
A named line (by the command or the queue) that is busy refuses the call (`line_busy`) rather than
show another number; a queued callback takes any idle line instead.

An agent's transfer ends the agent's leg of the call (its record closed with disconnect_reason
"transferred", agent_interaction_end_at, the agent in after-contact work) and the call goes on as a
new TRANSFER contact with previous_contact_id naming that leg, as Amazon Connect records it: waiting
in the target queue with its hold music (and customer queue flow), or offered to the target agent
alone; if that agent rejects it or lets the offer expire, it waits in the queue for any agent.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.agent_leg import ANSWERED, AgentLeg
from gateway.center.queues import WaitingContact
from gateway.center.router import Center, CenterError
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.contact import hold_music as chime
from gateway.flows.blocks.third_party import MIN_DIGITS, dialable
from gateway.modem.line import LineState
from gateway.third_party_leg import UNREGISTERED

if TYPE_CHECKING:
    from gateway.api.audio_relay import AudioRelay
    from gateway.center.records import ContactStore
    from gateway.modem.line import Line
    from gateway.third_party_leg import TransferLines

log = logging.getLogger(__name__)


def new_contact_id() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


class AgentCalls:
    def __init__(self, center: Center, lines: dict[str, "Line"], transfers: "TransferLines", store: "ContactStore", *,
                 numbers: dict[str, str], queue_lines: dict[str, str], line_queues: dict[str, str],
                 relay: Callable[[str, str], "AudioRelay"], notify: Callable[[str, dict], None],
                 spawn: Callable, session_of: Callable[[str], object | None],
                 hold_music: Callable[[str | None], list[bytes] | None], clock: Clock = SYSTEM_CLOCK) -> None:
        self._center, self._lines, self._transfers, self._store = center, lines, transfers, store
        self._numbers = numbers                    # line id -> its SIM's number (the caller ID it presents)
        self._queue_lines = queue_lines            # queue id -> [[queues]] outbound_line
        self._line_queues = line_queues            # line id -> [[lines]] outbound_queue
        self._relay, self._notify, self._spawn = relay, notify, spawn
        self._session_of, self._hold_music, self._clock = session_of, hold_music, clock
        self.legs: dict[str, AgentLeg] = {}        # contact id (current) -> the leg

    # --- lines ------------------------------------------------------------------------------------------------
    def queue_line(self, queue_id: str | None) -> str | None:
        """The line a queue's outbound calls use: its outbound_line, else a line whose outbound_queue it is."""
        if queue_id is None:
            return None
        return self._queue_lines.get(queue_id) or next(
            (line_id for line_id, q in self._line_queues.items() if q == queue_id), None)

    def _busy(self, line: "Line") -> str | None:
        """Why a line cannot dial now, or None."""
        if line.id in self._transfers.legs:
            return "in use by another call"
        if line.state != LineState.IDLE:
            return f"{line.state.value}"
        if line.error:
            return f"in trouble: {line.error}"
        if line.health.registration in UNREGISTERED:
            return f"not registered ({line.health.registration})"
        return None

    def line_for(self, *, line_ref: str | None = None, queue_id: str | None = None, strict: bool = True) -> "Line":
        """The line to dial on (module docstring). `strict` False: a busy or missing named line falls back
        to any idle one. CenterError unknown_line, line_busy or no_free_line."""
        named = line_ref or self.queue_line(queue_id)
        if named is not None:
            line = self._lines.get(named)
            if line is None:
                if line_ref is not None:
                    known = ", ".join(sorted(self._lines)) or "none"
                    raise CenterError("unknown_line", f"no running line {line_ref!r} (lines: {known})")
                why = "not running"
            else:
                why = self._busy(line)
                if why is None:
                    return line
            if strict:
                whose = "" if line_ref is not None else f" (queue {queue_id}'s outbound line)"
                raise CenterError("line_busy", f"line {named}{whose} cannot dial now: {why}; name another "
                                               "`line` to call from it (its number is the caller ID)")
        for line in self._lines.values():
            if self._busy(line) is None:
                return line
        raise CenterError("no_free_line", "no line is free to dial (all are busy, starting or unregistered)")

    def reserve(self, leg: AgentLeg) -> None:
        """The leg's line is taken (no transfer or other call dials on it); the daemon routes its audio here."""
        self._transfers.legs[leg.line.id] = leg
        self.legs[leg.contact_id] = leg

    def release(self, leg: AgentLeg) -> None:
        if self._transfers.legs.get(leg.line.id) is leg:
            del self._transfers.legs[leg.line.id]
        if self.legs.get(leg.contact_id) is leg:
            del self.legs[leg.contact_id]

    def caller_id(self, line_id: str) -> str:
        return self._numbers.get(line_id, "")

    # --- the dial command -------------------------------------------------------------------------------------
    def dial(self, agent_id: str, command: dict) -> dict:
        """`dial {number, queue?, line?}`: the reply's fields; the call goes on in a task (progress on
        …/agent/<id>/call). Refusals: bad_number, unknown_queue, unknown_line, line_busy, no_free_line,
        bad_state (on a call, or an offer pending)."""
        number = dialable(command["number"])
        if number is None:
            raise CenterError("bad_number", f"$.number {command['number']!r} is not a number to dial: digits (and "
                                            f"* #) after an optional +, at least {MIN_DIGITS} digits")
        agent = self._center.agent(agent_id)
        queue_ref = command.get("queue") or (agent.routing.default_outbound_queue if agent.routing else None) \
            or self._center.queue_ids[0]
        queue_id = self._center.resolve_queue(queue_ref)
        if queue_id is None:
            raise CenterError("unknown_queue", f"no queue {queue_ref!r} is configured "
                                               f"(queues: {', '.join(self._center.queue_ids)})")
        line = self.line_for(line_ref=command.get("line"), queue_id=queue_id)
        contact_id = new_contact_id()
        self._center.start_outbound(agent_id, WaitingContact(
            contact_id, number, line.id, queue_id, self._clock.monotonic(), self._clock.time(),
            initiation_method="OUTBOUND"))
        leg = AgentLeg(line, number, contact_id, agent_id=agent_id, queue_id=queue_id, kind="OUTBOUND",
                       notify=self._notify, clock=self._clock)
        self.reserve(leg)
        caller_id = self.caller_id(line.id)
        self._store.upsert(contact_id, line_id=line.id, caller=number, initiation_method="OUTBOUND",
                           initiated_at=self._clock.time(), queue_id=queue_id, agent_id=agent_id,
                           attributes={"caller_id": caller_id})
        log.info("agent %s calls %s on line %s (queue %s, caller ID %s) as %s", agent_id, number, line.id, queue_id,
                 caller_id or "unknown", contact_id)
        self._spawn(self._outbound(leg), f"outbound-{contact_id}")
        return {"contact_id": contact_id, "number": number, "line": line.id, "queue": queue_id,
                "caller_id": caller_id, "state": self._center.agent_view(agent_id)["state"]}

    async def _outbound(self, leg: AgentLeg) -> None:
        outcome = await self.place(leg)
        if outcome != ANSWERED:
            self.close(leg, outcome, "agent_hung_up" if outcome == "cancelled" else outcome.split(":")[0])

    # --- a call on a leg, for agents and callbacks ----------------------------------------------------------
    async def place(self, leg: AgentLeg, ring_seconds: float | None = None) -> str:
        """Dial on the leg (reserved), bridge the agent when answered and talk until the end; an answered
        call is closed here (record, after-contact work). Returns the dial outcome; an unanswered call's
        line is released and its record and agent left to the caller of this (close())."""
        outcome = "failed: cancelled"
        reason = None
        try:
            outcome = await leg.dial(ring_seconds or leg.line.profile.timeouts.dial)
            if leg.call is not None:
                self._store.upsert(leg.contact_id, flow_path=[{"stage": s, "at": t} for s, t in leg.call.progress])
            if outcome == ANSWERED:
                self._answered(leg)
                reason = await leg.talk()
        finally:
            await leg.finish()
            self.release(leg)
        if outcome == ANSWERED:
            self.close(leg, outcome, reason or "ended")
        return outcome

    def _answered(self, leg: AgentLeg) -> None:
        assert leg.call is not None and leg.agent_id is not None
        leg.bridge(self._relay(leg.contact_id, leg.agent_id), leg.agent_id)
        self._store.upsert(leg.contact_id, connected_to_agent_at=leg.call.answered_at or self._clock.time())
        leg.tell("answered")
        log.info("contact %s: %s answered on line %s; agent %s bridged", leg.contact_id, leg.number, leg.line.id,
                 leg.agent_id)

    def close(self, leg: AgentLeg, outcome: str, reason: str) -> None:
        """The leg's record ends (the agent's conversation too, when one was on it), the agent hears the end
        and starts after-contact work."""
        call = leg.call
        ended = (call.ended_at if call is not None else None) or self._clock.time()
        fields: dict = {"ended_at": ended, "disconnect_reason": reason, "media": leg.media()}
        if call is not None:
            fields["flow_path"] = [{"stage": s, "at": t} for s, t in call.progress]
        if outcome == ANSWERED and leg.agent_id is not None:
            fields["agent_interaction_end_at"] = ended
        self._store.upsert(leg.contact_id, **fields)
        leg.tell("ended", outcome=outcome, reason=reason)
        log.info("contact %s (%s to %s) ended: %s, %s", leg.contact_id, leg.kind, leg.number, outcome, reason)
        self._center.contact_ended(leg.contact_id, reason)

    # --- agents' commands on a leg --------------------------------------------------------------------------
    def hangup(self, contact_id: str, reason: str) -> bool:
        leg = self.legs.get(contact_id)
        if leg is None:
            return False
        leg.hangup(reason)
        return True

    def connected(self, contact_id: str, agent_id: str) -> bool:
        """An agent accepted a transferred leg: bridge it. False when it is not one of ours."""
        leg = self.legs.get(contact_id)
        if leg is None or leg.state != "holding":
            return False
        leg.bridge(self._relay(contact_id, agent_id), agent_id)
        self._store.upsert(contact_id, agent_id=agent_id, connected_to_agent_at=self._clock.time())
        leg.tell("answered")
        return True

    # --- the transfer command -------------------------------------------------------------------------------
    def transfer(self, agent_id: str, contact_id: str, command: dict) -> dict:
        """`transfer {contact_id, to_queue | to_agent}` of the agent's live call (module docstring). Refusals:
        not_on_call, bad_state, unknown_queue, queue_full, unknown_agent, agent_offline, agent_busy."""
        session = self._session_of(contact_id)
        leg = self.legs.get(contact_id) if session is None else None
        if session is None and leg is None:
            raise CenterError("not_on_call", f"contact {contact_id} has no call on this gateway")
        if leg is not None and leg.state != "bridged":
            raise CenterError("bad_state", f"contact {contact_id} is not answered yet: hang up to stop dialing")
        owner = session if session is not None else leg
        to_agent = command.get("to_agent")
        if "to_queue" in command:
            queue_id = self._center.resolve_queue(command["to_queue"])
            if queue_id is None:
                raise CenterError("unknown_queue", f"no queue {command['to_queue']!r} is configured "
                                                   f"(queues: {', '.join(self._center.queue_ids)})")
        else:
            queue_id = (self._center.contact_info(contact_id) or {}).get("queue") or owner.queue_id
        new_id = new_contact_id()
        now_mono, now = self._clock.monotonic(), self._clock.time()
        self._center.requeue(contact_id, WaitingContact(
            new_id, owner.customer_number, owner.line.id, queue_id, now_mono, now, initiation_method="TRANSFER",
            previous_contact_id=contact_id), to_agent=to_agent)
        if session is not None:
            session.transferred(new_id, queue_id)
        else:
            self._transfer_leg(leg, new_id, queue_id)
        log.info("agent %s transferred contact %s to %s as %s", agent_id, contact_id,
                 f"agent {to_agent}" if to_agent else f"queue {queue_id}", new_id)
        reply = {"contact_id": contact_id, "new_contact_id": new_id, "queue": queue_id,
                 "state": self._center.agent_view(agent_id)["state"]}
        if to_agent:
            reply["to_agent"] = to_agent
        return reply

    def _transfer_leg(self, leg: AgentLeg, new_id: str, queue_id: str) -> None:
        now = self._clock.time()
        old = leg.contact_id
        leg.tell("transferred", new_contact_id=new_id)
        leg.hold(self._hold_music(queue_id) or chime(), queue_id)
        self._store.upsert(old, agent_interaction_end_at=now, ended_at=now, disconnect_reason="transferred",
                           media=leg.media())
        del self.legs[old]
        leg.contact_id = new_id
        self.legs[new_id] = leg
        self._store.upsert(new_id, line_id=leg.line.id, caller=leg.customer_number, initiation_method="TRANSFER",
                           initiated_at=now, previous_contact_id=old, queue_id=queue_id, enqueued_at=now)
