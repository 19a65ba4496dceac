"""More of Connect's telephony-generic blocks: flow attributes (UpdateFlowAttributes), contact tags (TagContact),
Wait, moving a waiting caller to another queue (DequeueContactAndTransferToQueue), and flow modules
(InvokeFlowModule and the module's Return, EndFlowModuleExecution).

Flow-local data. `$.FlowAttributes.*` live for one run of one flow: a TransferToFlow leaves them behind (Connect:
"not carried over to the subsequent flows"). A flow module runs with flow-local data of its own: it starts
with no flow attributes, no `$.External.*` and no `$.Metrics.*` of its caller, only `$.Modules.Input.*` (the
invoking block's `Input`), and on its return the caller gets its own back, plus `$.Modules.Result` (the branch
the module returned) and `$.Modules.ResultData.*` (its `ResultData`). Contact attributes, stored input, the
working queue, keys pressed and everything else about the contact are shared.

Modules. A module is a flow file with a top-level `Settings` object (Connect's module content has one; a
flow's must not), found like TransferToFlow's flows: file name, Metadata name, id or the id of a
`…/flow-module/<id>` ARN (a version or alias after the id is ignored). The invoking flow goes on at the
block's NextAction when the module returns without a `Result`, at its condition `Equals <Result>` when it
returns one. A module that fails (an action with no branch for what happened, a module that is missing or is
a flow) takes the invoking block's NoMatchingError branch. A module hanging up, queueing the caller or
transferring to a flow ends the module and its caller, as in Connect. Modules may invoke modules, at most
MAX_MODULE_DEPTH deep, never one that is already running (no recursion). Run as a flow of its own (a line's
flow, a rehearsal), a module's return ends the flow ("ended").

Wait pauses a chat or task contact until the customer comes back; Amazon Connect took voice contacts to its
Error branch (in 2023), and callgate does the same on its voice and SMS contacts, so a flow written for Connect
behaves as it did there. UpdateContactMediaStreamingBehavior stays unsupported, with the reason.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from gateway.flows.blocks.external import flatten
from gateway.flows.model import REFERENCE_RE, Action, Flow
from gateway.flows.runtime import End, Go
from gateway.flows.values import key_path, kind, parse_seconds

ERRORS = {
    "UpdateFlowAttributes": {"NoMatchingError"},   # a name that is empty once its references are filled in
    "TagContact": {"NoMatchingError"},             # a key or value out of Connect's limits once filled in
    "Wait": {"NoMatchingError"},                   # always: see the module's docstring
    "DequeueContactAndTransferToQueue": {"QueueAtCapacity", "NoMatchingError"},
    "InvokeFlowModule": {"NoMatchingCondition", "NoMatchingError"},
    "EndFlowModuleExecution": set(),
}
NEEDS_NEXT_ACTION = {"UpdateFlowAttributes", "TagContact", "InvokeFlowModule"}
USES_CONDITIONS = {"Wait", "InvokeFlowModule"}
UNSUPPORTED = {
    "UpdateContactMediaStreamingBehavior":
        "it streams the caller's audio to Amazon Kinesis Video Streams, which does not exist here; record a "
        "voicemail with Callgate.RecordVoicemail, or the call with UpdateContactRecordingBehavior",
}

FLOW_ATTRIBUTES = "$.FlowAttributes."
MODULE_INPUT = "$.Modules.Input"
MODULE_RESULT = "$.Modules.Result"           # also the prefix of $.Modules.ResultData.*
MAX_MODULE_DEPTH = 8
MODULE_ARN_RE = re.compile(r"^(arn:[^:]+:connect:[^:]*:[^:]*:instance/[^/]+/flow-module/[^/:\s]+):[^/\s]+$")
QUALIFIED_ID_RE = re.compile(r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}):[^/\s]+$")

MAX_TAGS = 6                 # per TagContact, as Connect's TagContact API takes at most 6
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
SYSTEM_TAG_PREFIX = "aws:"   # Connect's system tags; a flow cannot set them

WAIT_SECONDS = ("TimeoutSeconds", "TimeLimitSeconds")   # the API reference's name, and the designer export's
MAX_WAIT_SECONDS = 604800    # 7 days
WAIT_EVENTS = ("CustomerReturned", "BotParticipantDisconnected")
WAIT_COMPLETED = "WaitCompleted"
WAIT_WHY = ("Wait pauses chat and task contacts; Amazon Connect takes a voice contact to Wait's Error branch, "
            "and so does callgate (for its voice calls and SMS)")


def module_key(ref: str) -> str:
    """The reference a FlowSet looks a module up by: a version or alias after the id dropped."""
    ref = ref.strip()
    m = MODULE_ARN_RE.match(ref) or QUALIFIED_ID_RE.match(ref)
    return m.group(1) if m else ref


def _static_or_one_reference(value: str) -> bool:
    return not REFERENCE_RE.search(value) or bool(REFERENCE_RE.fullmatch(value.strip()))


@dataclass
class ModuleCall:
    """A module running for an InvokeFlowModule: where to come back to, and the caller's flow-local data."""
    invoker: Action
    caller: Flow
    module: Flow
    references: dict[str, str]


class Checks:
    def check_UpdateFlowAttributes(self, action: Action, path: str, ident: str, params: dict) -> None:
        attributes, where = params.get("FlowAttributes"), f"{path}.Parameters.FlowAttributes"
        if "FlowAttributes" not in params:
            self.error(f"{path}.Parameters", 'missing FlowAttributes ({"name": {"Value": "text"}})', ident)
            return
        if not isinstance(attributes, dict) or not attributes:
            found = "an empty object" if attributes == {} else kind(attributes)
            self.error(where, f'FlowAttributes must be an object such as {{"name": {{"Value": "text"}}}}, found '
                              f"{found}", ident)
            return
        for key, entry in attributes.items():
            at = f"{where}{key_path(key)}"
            if not key.strip():
                self.error(at, "empty flow attribute name", ident)
                continue
            self.check_references(at, ident, key)
            if not isinstance(entry, dict) or "Value" not in entry:
                self.error(at, f'a flow attribute is {{"Value": "text"}}, found {kind(entry)}', ident)
                continue
            for other in entry:
                if other != "Value":
                    self.warn(f"{at}{key_path(other)}", f"{other!r} of a flow attribute is ignored (only Value "
                                                        "is read)", ident)
            if not isinstance(entry["Value"], str):
                self.error(f"{at}.Value", f"Value must be text, found {kind(entry['Value'])}", ident)
            else:
                self.check_references(f"{at}.Value", ident, entry["Value"])

    def check_TagContact(self, action: Action, path: str, ident: str, params: dict) -> None:
        tags, where = params.get("Tags"), f"{path}.Parameters.Tags"
        if "Tags" not in params:
            self.error(f"{path}.Parameters", 'missing Tags ({"key": "value"})', ident)
            return
        if not isinstance(tags, dict) or not tags:
            found = "an empty object" if tags == {} else kind(tags)
            self.error(where, f'Tags must be an object such as {{"department": "sales"}}, found {found}', ident)
            return
        if len(tags) > MAX_TAGS:
            self.error(where, f"{len(tags)} tags; one TagContact sets at most {MAX_TAGS}", ident)
        for key, value in tags.items():
            at = f"{where}{key_path(key)}"
            dynamic_key = bool(REFERENCE_RE.search(key))
            if not dynamic_key:
                if not key.strip() or len(key) > MAX_TAG_KEY:
                    self.error(at, f"a tag key is 1-{MAX_TAG_KEY} characters, found {len(key)}", ident)
                elif key.startswith(SYSTEM_TAG_PREFIX):
                    self.error(at, f"tag keys starting {SYSTEM_TAG_PREFIX!r} are system tags; a flow cannot set them",
                               ident)
            self.check_references(at, ident, key)
            if not isinstance(value, str):
                self.error(at, f"a tag value must be text, found {kind(value)}", ident)
                continue
            if not REFERENCE_RE.search(value) and len(value) > MAX_TAG_VALUE:
                self.error(at, f"a tag value is at most {MAX_TAG_VALUE} characters, found {len(value)}", ident)
            self.check_references(at, ident, value)

    def check_Wait(self, action: Action, path: str, ident: str, params: dict) -> None:
        given = [k for k in WAIT_SECONDS if k in params]
        if not given:
            self.error(f"{path}.Parameters", f"missing TimeoutSeconds (how long to wait, at most {MAX_WAIT_SECONDS} "
                                             "s; the designer writes TimeLimitSeconds)", ident)
        elif len(given) > 1:
            self.error(f"{path}.Parameters", "give TimeoutSeconds or TimeLimitSeconds, not both", ident)
        for key in given:
            value, where = params[key], f"{path}.Parameters.{key}"
            if isinstance(value, str) and REFERENCE_RE.search(value):
                if not REFERENCE_RE.fullmatch(value.strip()):
                    self.error(where, f"{key} must be static or one reference, found {json.dumps(value)}", ident)
                self.check_references(where, ident, value)
                continue
            seconds = parse_seconds(value)
            if seconds is None or seconds != int(seconds) or not 1 <= seconds <= MAX_WAIT_SECONDS:
                self.error(where, f"{key} must be a whole number of seconds 1-{MAX_WAIT_SECONDS}, found "
                                  f"{kind(value)}", ident)
        events = params.get("Events", [])
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            self.error(f"{path}.Parameters.Events", f"Events must be a list of event names, found {kind(events)}",
                       ident)
            events = []
        for i, event in enumerate(events):
            if event not in WAIT_EVENTS:
                self.error(f"{path}.Parameters.Events[{i}]", f"no Wait event {event!r} (Connect's are "
                                                             f"{', '.join(WAIT_EVENTS)})", ident)
        operands: set[str] = set()
        for i, cond in zip(self.indexes[ident][0], action.conditions):
            if cond.operator != "Equals" or len(cond.operands) != 1:
                self.error(f"{path}.Transitions.Conditions[{i}].Condition", f"a Wait condition is Equals with one "
                                                                            f"result, found {cond.operator} "
                                                                            f"{json.dumps(cond.operands)}", ident)
            operands.update(cond.operands)
        for needed in (WAIT_COMPLETED, *events):
            if needed not in operands:
                self.error(f"{path}.Transitions.Conditions", f"Wait needs a condition Equals {needed}", ident)
        self.warn(path, f"{WAIT_WHY}: it never waits here" + ("" if "NoMatchingError" in action.errors else
                                                                "; without a NoMatchingError branch the flow ends "
                                                                "with an error"), ident)

    def check_DequeueContactAndTransferToQueue(self, action: Action, path: str, ident: str, params: dict) -> None:
        if "AgentId" in params:
            self.error(f"{path}.Parameters.AgentId", "agent queues (AgentId) are not supported here; use QueueId",
                       ident)
        if "QueueId" not in params:
            if "AgentId" not in params:
                self.error(f"{path}.Parameters", "missing QueueId (the queue to move the waiting caller to)", ident)
        else:
            queue, where = params["QueueId"], f"{path}.Parameters.QueueId"
            if not isinstance(queue, str) or not queue.strip():
                self.error(where, f"QueueId must be a queue id, name or ARN, found {kind(queue)}", ident)
            elif not _static_or_one_reference(queue):
                self.error(where, f"QueueId must be static or one reference, found {json.dumps(queue)}", ident)
            else:
                self.check_references(where, ident, queue)
        self.warn_no_branch(action, "QueueAtCapacity", "a full queue")

    def check_InvokeFlowModule(self, action: Action, path: str, ident: str, params: dict) -> None:
        where = f"{path}.Parameters.FlowModuleId"
        value = params.get("FlowModuleId")
        if "FlowModuleId" not in params:
            self.error(f"{path}.Parameters", "missing FlowModuleId (the module to run: its file name, Metadata "
                                             "name, id or ARN)", ident)
        elif not isinstance(value, str) or not value.strip():
            self.error(where, f"FlowModuleId must be a module id, ARN or name, or one reference, found "
                              f"{kind(value)}", ident)
        elif REFERENCE_RE.search(value):
            if not REFERENCE_RE.fullmatch(value.strip()):
                self.error(where, f"FlowModuleId must be static or one reference, found {json.dumps(value)}", ident)
            self.check_references(where, ident, value)
        else:
            library = getattr(self, "flow_refs", None)
            if library is not None and not library.knows(module_key(value)):
                self.warn(where, f"no flow file matches FlowModuleId '{value}' (flows here: "
                                 f"{', '.join(sorted(library.names())) or 'none'}); the block takes its error "
                                 "branch", ident)
        inputs = params.get("Input", {})
        if not isinstance(inputs, dict):
            self.error(f"{path}.Parameters.Input", f"Input must be an object of the module's inputs, found "
                                                   f"{kind(inputs)}", ident)
        else:
            for key, item in inputs.items():
                if isinstance(item, str):
                    self.check_references(f"{path}.Parameters.Input{key_path(key)}", ident, item)
        for i, cond in zip(self.indexes[ident][0], action.conditions):
            if cond.operator != "Equals" or len(cond.operands) != 1:
                self.error(f"{path}.Transitions.Conditions[{i}].Condition",
                           f"a module's branch is a condition Equals with the name the module returns as its "
                           f"Result, found {cond.operator} {json.dumps(cond.operands)}", ident)
        self.warn_no_branch(action, "NoMatchingError", "a module that fails")

    def check_EndFlowModuleExecution(self, action: Action, path: str, ident: str, params: dict) -> None:
        document = getattr(self, "document", None)
        if isinstance(document, dict) and "Settings" not in document:
            self.error(path, 'EndFlowModuleExecution (the Return block) is only available in a flow module: a '
                             'module has a top-level Settings object, such as {"InputParameters": [], '
                             '"OutputParameters": [], "Transitions": []}', ident)
        if "Result" in params:
            result, where = params["Result"], f"{path}.Parameters.Result"
            if not isinstance(result, str) or not result.strip():
                self.error(where, f"Result must be the name of a branch of the invoking block, found {kind(result)}",
                           ident)
            elif not _static_or_one_reference(result):
                self.error(where, f"Result must be static or one reference, found {json.dumps(result)}", ident)
            else:
                self.check_references(where, ident, result)
        data = params.get("ResultData", {})
        if not isinstance(data, dict):
            self.error(f"{path}.Parameters.ResultData", f"ResultData must be an object (the module's output), "
                                                        f"found {kind(data)}", ident)
        else:
            for key, item in data.items():
                if isinstance(item, str):
                    self.check_references(f"{path}.Parameters.ResultData{key_path(key)}", ident, item)


class Actions:
    # -- flow attributes and tags

    async def do_UpdateFlowAttributes(self, action: Action) -> Go:
        updates = {}
        for raw, entry in action.parameters.get("FlowAttributes", {}).items():
            name = self.resolve(raw).strip()
            if not name:
                return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                          f"flow attribute name {json.dumps(raw)} is empty")
            updates[FLOW_ATTRIBUTES + name] = self.resolve(str(entry.get("Value", "")))
        self.loaded_references.update(updates)   # all or none, as Connect sets them
        return Go("next", action.next_action, ", ".join(sorted(k[len(FLOW_ATTRIBUTES):] for k in updates)))

    async def do_TagContact(self, action: Action) -> Go:
        tags = {}
        for raw_key, raw_value in action.parameters.get("Tags", {}).items():
            key, value = self.resolve(raw_key).strip(), self.resolve(str(raw_value))
            why = None
            if not key or len(key) > MAX_TAG_KEY:
                why = f"tag key {json.dumps(key)} (from {json.dumps(raw_key)}) is not 1-{MAX_TAG_KEY} characters"
            elif key.startswith(SYSTEM_TAG_PREFIX):
                why = f"tag key {json.dumps(key)} is a system tag ({SYSTEM_TAG_PREFIX}...)"
            elif len(value) > MAX_TAG_VALUE:
                why = f"the value of tag {json.dumps(key)} is {len(value)} characters (at most {MAX_TAG_VALUE})"
            if why is not None:
                return Go("NoMatchingError", action.errors.get("NoMatchingError"), f"no tag set: {why}")
            tags[key] = value
        said = ", ".join(f"{k}={v}" for k, v in tags.items())
        add = getattr(self.contact, "add_tags", None)
        if add is None:
            return Go("next", action.next_action, f"{said} (tags are not kept on the {self.channel} channel)")
        add(tags)
        return Go("next", action.next_action, said)

    # -- Wait

    async def do_Wait(self, action: Action) -> Go:
        return Go("NoMatchingError", action.errors.get("NoMatchingError"), WAIT_WHY)

    # -- a waiting caller to another queue (customer queue flow)

    async def do_DequeueContactAndTransferToQueue(self, action: Action) -> Go | End:
        contact = self.contact
        fail = action.errors.get("NoMatchingError")
        if not getattr(contact, "in_queue", False):
            return Go("NoMatchingError", fail, "the caller is not waiting in a queue (this block runs in a customer "
                                               "queue flow)")
        raw = str(action.parameters.get("QueueId", ""))
        ref = self.resolve(raw).strip()
        if not ref:
            return Go("NoMatchingError", fail, f"QueueId {json.dumps(raw)} is empty")
        working = getattr(contact, "queue_id", None), contact.queue_name
        if not contact.set_queue(ref):
            return Go("NoMatchingError", fail, f"unknown queue '{ref}'")
        name = contact.queue_name or ref
        status = await contact.transfer_to_queue()
        if status == "queued":
            return End("queued", f"moved to queue {name}, keeping the time waited")
        if hasattr(contact, "queue_id"):   # the caller stays in the queue it waits in: so does the working queue
            contact.queue_id = working[0]
        contact.queue_name = working[1]
        if status == "at_capacity":
            return Go("QueueAtCapacity", action.errors.get("QueueAtCapacity"), f"queue {name} is at capacity")
        if status == "no_queue":
            return Go("NoMatchingError", fail, "the caller no longer waits in a queue (an agent is taking the call)")
        raise ValueError(f"transfer_to_queue returned {status!r}")

    # -- flow modules

    def module_calls(self) -> list[ModuleCall]:
        calls = self.__dict__.get("_module_calls")
        if calls is None:
            calls = self.__dict__["_module_calls"] = []
        return calls

    async def do_InvokeFlowModule(self, action: Action) -> Go:
        params = action.parameters
        fail = action.errors.get("NoMatchingError")
        raw = str(params.get("FlowModuleId", ""))
        ref = self.resolve(raw).strip()
        if not ref:
            return Go("NoMatchingError", fail, f"FlowModuleId {json.dumps(raw)} is empty")
        module = self.library.get(module_key(ref)) if self.library is not None else None
        if module is None:
            why = self.library.problem(module_key(ref)) if self.library is not None else None
            return Go("NoMatchingError", fail, why or f"no flow module '{ref}'")
        label = _label(module)
        if module.settings is None:
            return Go("NoMatchingError", fail, f"'{label}' is a flow, not a flow module (a module has a top-level "
                                               "Settings object); a flow is run with TransferToFlow")
        calls = self.module_calls()
        chain = [_label(c.caller) for c in calls] + [_label(self.flow), label]
        if module is self.flow or any(c.module is module or c.caller is module for c in calls):
            return Go("NoMatchingError", fail, f"module '{label}' is already running ({' -> '.join(chain)}): "
                                               "modules do not recurse")
        if len(calls) >= MAX_MODULE_DEPTH:
            return Go("NoMatchingError", fail, f"modules nested {MAX_MODULE_DEPTH} deep ({' -> '.join(chain)})")
        inputs = params.get("Input", {})
        resolved = {k: self.resolve(v) if isinstance(v, str) else v for k, v in inputs.items()}
        calls.append(ModuleCall(action, self.flow, module, self.loaded_references))
        self.loaded_references = flatten(resolved, MODULE_INPUT)
        self.flow = module
        given = f" with {', '.join(sorted(resolved))}" if resolved else ""
        return Go("invoked", module.start_action, f"module {label}{given}")

    async def do_EndFlowModuleExecution(self, action: Action) -> Go | End:
        calls = self.module_calls()
        params = action.parameters
        result = self.resolve(str(params["Result"])).strip() if "Result" in params else ""
        data = {k: self.resolve(v) if isinstance(v, str) else v for k, v in params.get("ResultData", {}).items()}
        if not calls:
            return End("ended", "the module returned; no flow invoked it")
        call = calls.pop()
        self.flow, self.loaded_references = call.caller, call.references
        self.load_references(MODULE_RESULT, {MODULE_RESULT: result, **flatten(data, MODULE_RESULT + "Data")})
        invoker, back = call.invoker, f"back in {_label(call.caller)} at '{call.invoker.identifier}'"
        if not result:
            return Go("returned", invoker.next_action, back)
        for condition in invoker.conditions:
            if condition.operator == "Equals" and result in condition.operands:
                return Go(f"condition:{result}", condition.next_action, f"{back}: Result {json.dumps(result)}")
        target = invoker.errors.get("NoMatchingCondition")
        missing = "" if target else " and no NoMatchingCondition branch"
        return Go("NoMatchingCondition", target, f"{back}: it has no condition for Result {json.dumps(result)}{missing}")

    def unwind_module(self, why: str) -> tuple[Action, Go] | None:
        """A module failed (`why`): back in the flow that invoked it, whose block takes its NoMatchingError
        branch. None when no module is running."""
        calls = self.module_calls()
        if not calls:
            return None
        call = calls.pop()
        self.flow, self.loaded_references = call.caller, call.references
        return call.invoker, Go("NoMatchingError", call.invoker.errors.get("NoMatchingError"),
                                f"module {_label(call.module)} failed: {why}")

    def left_flow(self) -> None:
        """A TransferToFlow: the flow attributes and the modules running stay behind."""
        self.module_calls().clear()
        for ref in [r for r in self.loaded_references if r.startswith(FLOW_ATTRIBUTES)]:
            del self.loaded_references[ref]


def _label(flow: Flow) -> str:
    return Path(flow.source).stem
