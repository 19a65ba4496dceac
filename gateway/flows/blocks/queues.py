"""The working queue and the transfer into it: UpdateContactTargetQueue, TransferContactToQueue.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

from gateway.flows.model import Action
from gateway.flows.runtime import Go, End
from gateway.flows.values import kind


ERRORS = {
    "UpdateContactTargetQueue": {"NoMatchingError"},
    "TransferContactToQueue": {"QueueAtCapacity", "NoMatchingError"},
}
NEEDS_NEXT_ACTION = {"UpdateContactTargetQueue"}


class Checks:
    def check_UpdateContactTargetQueue(self, action: Action, path: str, ident: str, params: dict) -> None:
        if "QueueId" not in params:
            extra = " (agent queues via AgentId are not supported here)" if "AgentId" in params else ""
            self.error(f"{path}.Parameters", f"missing QueueId{extra}", ident)
            return
        queue = params["QueueId"]
        if not isinstance(queue, str) or not queue.strip():
            self.error(f"{path}.Parameters.QueueId", f"QueueId must be a non-empty string, found {kind(queue)}", ident)
        else:
            self.check_references(f"{path}.Parameters.QueueId", ident, queue)

    def check_TransferContactToQueue(self, action: Action, path: str, ident: str, params: dict) -> None:
        self.warn_no_branch(action, "QueueAtCapacity", "a full queue")


class Actions:
    async def do_UpdateContactTargetQueue(self, action: Action) -> Go:
        queue_ref = self.resolve(str(action.parameters.get("QueueId", "")))
        if self.contact.set_queue(queue_ref):
            return Go("next", action.next_action)
        return Go("NoMatchingError", action.errors.get("NoMatchingError"), f"unknown queue '{queue_ref}'")

    async def do_TransferContactToQueue(self, action: Action) -> Go | End:
        status = await self.contact.transfer_to_queue()
        if status == "queued":
            return End("queued")
        if status == "at_capacity":
            return Go("QueueAtCapacity", action.errors.get("QueueAtCapacity"), "queue at capacity")
        if status == "no_queue":
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), "no working queue set")
        raise ValueError(f"transfer_to_queue returned {status!r}")
