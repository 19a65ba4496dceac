"""What the gateway offers a flow besides the call itself: its hours of operation (by name and per
queue) and its webhooks. One FlowServices is built from callgate.toml and shared by every contact
(calls, SMS, rehearsals); a contact without one answers CheckHoursOfOperation and InvokeLambdaFunction
with their Error branch.

Schedules are duck-typed (anything with `status(at)` and `local(at)`, i.e. gateway.center.hours'
HoursOfOperation), so the flow layer never imports the center.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.flows.webhook import Webhooks

HOURS_ARN_MARK = "/operating-hours/"


def hours_name(ref: str) -> str:
    """A flow's HoursOfOperationId as a schedule name: an ARN `…/operating-hours/<x>` names `x`."""
    return ref.rsplit(HOURS_ARN_MARK, 1)[1] if HOURS_ARN_MARK in ref else ref


@dataclass
class FlowServices:
    hours: Mapping[str, Any] = field(default_factory=dict)        # [[hours]] name -> schedule
    queue_hours: Mapping[str, str] = field(default_factory=dict)  # queue id -> [[hours]] name
    webhooks: Webhooks | None = None

    def schedule(self, ref: str | None, queue_id: str | None) -> Any:
        """The schedule a CheckHoursOfOperation asks about: the one named by `ref`, else the working
        queue's. LookupError says why there is none."""
        if ref:
            name = hours_name(ref)
            found = self.hours.get(name)
            if found is None:
                found = next((h for n, h in self.hours.items() if n.casefold() == name.casefold()), None)
            if found is None:
                known = ", ".join(f'"{n}"' for n in sorted(self.hours)) or "none defined"
                raise LookupError(f'no [[hours]] named "{name}" (hours: {known})')
            return found
        if not queue_id:
            raise LookupError("no HoursOfOperationId and no working queue to take the hours of "
                              "(set one with UpdateContactTargetQueue first)")
        name = self.queue_hours.get(queue_id)
        if name is None or name not in self.hours:
            raise LookupError(f'queue "{queue_id}" has no hours of operation (give its [[queues]] table '
                              'hours = "<name>")')
        return self.hours[name]

    def check_hours(self, ref: str | None, queue_id: str | None, at: float) -> tuple[bool, str]:
        """(open at `at`?, a sentence saying which schedule, the local time and what decided it)."""
        schedule = self.schedule(ref, queue_id)
        status = schedule.status(at)
        said = f'hours "{schedule.name}" at {schedule.local(at):%a %Y-%m-%d %H:%M} {schedule.time_zone}: '
        said += "open" if status.open else "closed"
        if status.override_name:
            said += f" ({status.override_name})"
        if status.next_change is not None:
            when, opens = status.next_change
            said += f"; {'opens' if opens else 'closes'} {schedule.local(when):%a %Y-%m-%d %H:%M}"
        return status.open, said
