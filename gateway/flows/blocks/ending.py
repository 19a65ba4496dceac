"""Ending the flow: DisconnectParticipant (hang up) and EndFlowExecution.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

from gateway.flows.model import Action
from gateway.flows.runtime import End


ERRORS = {
    "DisconnectParticipant": set(),
    "EndFlowExecution": set(),
}
NEEDS_NEXT_ACTION = set()


class Checks:
    pass


class Actions:
    async def do_DisconnectParticipant(self, action: Action) -> End:
        await self.contact.disconnect()
        return End("disconnected")

    async def do_EndFlowExecution(self, action: Action) -> End:
        return End("ended")
