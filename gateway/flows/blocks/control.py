"""Flow control: Compare, Loop, DistributeByPercentage and TransferToFlow (flows calling flows), and the
contact settings that name other flows or numbers: UpdateContactEventHooks, UpdateContactCallbackNumber.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import json
import random
import re

from gateway.flows.model import REFERENCE_RE, Action
from gateway.flows.runtime import Go
from gateway.flows.values import kind

# Compare's operators as the flow language writes them ("Check contact attributes": Equals, Is greater
# than, Is greater or equal, Is less than, Is less or equal, Starts with, Contains).
NUMBER_OPERATORS = {
    "NumberGreaterThan": lambda a, b: a > b,
    "NumberGreaterOrEqualTo": lambda a, b: a >= b,
    "NumberLessThan": lambda a, b: a < b,
    "NumberLessOrEqualTo": lambda a, b: a <= b,
}
TEXT_OPERATORS = {
    "TextStartsWith": str.startswith,
    "TextContains": lambda value, operand: operand in value,
}
COMPARE_OPERATORS = ("Equals", *NUMBER_OPERATORS, *TEXT_OPERATORS)
# names people write for them (other products, the designer's labels) -> the flow language's
OPERATOR_SPELLINGS = {
    "GreaterThan": "NumberGreaterThan", "GreaterThanOrEqualTo": "NumberGreaterOrEqualTo",
    "NumberGreaterThanOrEqualTo": "NumberGreaterOrEqualTo", "LessThan": "NumberLessThan",
    "LessThanOrEqualTo": "NumberLessOrEqualTo", "NumberLessThanOrEqualTo": "NumberLessOrEqualTo",
    "NumericLessThan": "NumberLessThan", "StartsWith": "TextStartsWith", "Contains": "TextContains",
}

LOOP_CONDITIONS = ("ContinueLooping", "DoneLooping")
MAX_LOOP_COUNT = 100  # Connect: LoopCount 0-100

PERCENT_OPERATOR = "NumberLessThan"

# UpdateContactEventHooks keys (Connect's list); the disconnect flow is CustomerRemaining.
EVENT_HOOKS = ("AgentHold", "AgentWhisper", "CustomerHold", "CustomerQueue", "CustomerRemaining",
               "CustomerWhisper", "DefaultAgentUI", "DisconnectAgentUI", "PauseContact", "ResumeContact")
DISCONNECT_HOOK = "CustomerRemaining"
RUN_HOOKS = frozenset({DISCONNECT_HOOK, "CustomerQueue"})  # the hooks whose flows callgate runs

# Callback numbers: E.164 ("+4930123456") or a national number; separators are dropped first.
_NUMBER_SEPARATORS = re.compile(r"[\s\-.()/]")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_NATIONAL = re.compile(r"\d{3,15}")
MIN_DIALABLE_DIGITS = 5  # shorter numbers are emergency or service codes (112, 911, 118...), never called back

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_SYSTEM_RANDOM = random.SystemRandom()

ERRORS = {
    "Compare": {"NoMatchingCondition"},
    "Loop": {"NoMatchingError"},  # only a dynamic LoopCount that is not a number 0-100
    "DistributeByPercentage": {"NoMatchingCondition"},
    "TransferToFlow": {"NoMatchingError"},
    "UpdateContactEventHooks": {"NoMatchingError"},
    "UpdateContactCallbackNumber": {"InvalidCallbackNumber", "CallbackNumberNotDialable", "NoMatchingError"},
}
NEEDS_NEXT_ACTION = {"UpdateContactEventHooks", "UpdateContactCallbackNumber"}
USES_CONDITIONS = {"Compare", "Loop", "DistributeByPercentage"}


def number(text: str) -> float | None:
    """A decimal number written as text ("42", "-1.5"), else None."""
    text = text.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def compare(operator: str, value: str, operand: str) -> bool:
    """One Compare condition: Equals is text equality, or numeric equality when both sides are numbers;
    the Number operators need both sides to be numbers; the Text operators are case-sensitive."""
    if operator == "Equals":
        if value == operand:
            return True
        a, b = number(value), number(operand)
        return a is not None and b is not None and a == b
    if operator in NUMBER_OPERATORS:
        a, b = number(value), number(operand)
        return a is not None and b is not None and NUMBER_OPERATORS[operator](a, b)
    if operator in TEXT_OPERATORS:
        return TEXT_OPERATORS[operator](value, operand)
    return False


def callback_number(text: str) -> tuple[str | None, str | None]:
    """(number, None) for a number a callback may dial, else (None, the ErrorType with why)."""
    compact = _NUMBER_SEPARATORS.sub("", text.strip())
    if compact.startswith("00") and _E164.fullmatch("+" + compact[2:]):
        compact = "+" + compact[2:]
    if not (_E164.fullmatch(compact) or _NATIONAL.fullmatch(compact)):
        return None, "InvalidCallbackNumber"
    digits = compact.lstrip("+")
    if len(digits) < MIN_DIALABLE_DIGITS:
        return None, "CallbackNumberNotDialable"
    return compact, None


def flow_label(ref: str) -> str:
    """A flow reference as people read it: the id of an ARN, else the reference."""
    return ref.rsplit("/contact-flow/", 1)[-1] if "/contact-flow/" in ref else ref


class Checks:
    def check_flow_reference(self, where: str, ident: str, value: object, what: str) -> None:
        """A flow named statically or by one reference; a static one should be a flow of the library."""
        if not isinstance(value, str) or not value.strip():
            self.error(where, f"{what} must be a flow id, ARN or name, or one reference such as "
                              f"$.Attributes.flow, found {kind(value)}", ident)
            return
        refs = REFERENCE_RE.findall(value)
        if refs:
            if not REFERENCE_RE.fullmatch(value.strip()):
                self.error(where, f"{what} must be static or one reference, found {json.dumps(value)}", ident)
            self.check_references(where, ident, value)
            return
        library = getattr(self, "flow_refs", None)
        if library is not None and not library.knows(value):
            self.warn(where, f"no flow file matches {what} '{value}' (flows here: "
                             f"{', '.join(sorted(library.names())) or 'none'}); the transfer takes its error "
                             "branch", ident)

    def check_Compare(self, action: Action, path: str, ident: str, params: dict) -> None:
        value = params.get("ComparisonValue")
        where = f"{path}.Parameters.ComparisonValue"
        if "ComparisonValue" not in params:
            self.error(f"{path}.Parameters", "missing ComparisonValue (the reference to compare, such as "
                                             "$.Attributes.vip)", ident)
        elif not isinstance(value, str) or not value:
            self.error(where, f"ComparisonValue must be a reference such as $.Attributes.vip, found {kind(value)}",
                       ident)
        else:
            if not REFERENCE_RE.fullmatch(value.strip()):
                self.warn(where, f"ComparisonValue {json.dumps(value)} is not one reference (Connect requires "
                                 "one, such as $.Attributes.vip); it is compared as text", ident)
            self.check_references(where, ident, value)
        cond_index = self.indexes[ident][0]
        for i, cond in zip(cond_index, action.conditions):
            where = f"{path}.Transitions.Conditions[{i}].Condition"
            if cond.operator not in COMPARE_OPERATORS:
                hint = OPERATOR_SPELLINGS.get(cond.operator)
                said = f"; did you mean {hint}?" if hint else ""
                self.error(f"{where}.Operator", f"Compare has no operator '{cond.operator}' (it has "
                                                f"{', '.join(COMPARE_OPERATORS)}){said}", ident)
                continue
            if len(cond.operands) != 1:
                self.warn(f"{where}.Operands", f"{len(cond.operands)} operands; the condition matches when "
                                               "any of them does (Connect takes one)", ident)
            if cond.operator in NUMBER_OPERATORS:
                for j, operand in enumerate(cond.operands):
                    if number(operand) is None:
                        self.error(f"{where}.Operands[{j}]", f"{cond.operator} needs a number, found "
                                                             f"{json.dumps(operand)}", ident)
        self.warn_no_branch(action, "NoMatchingCondition", "a value that matches no condition")

    def check_Loop(self, action: Action, path: str, ident: str, params: dict) -> None:
        where = f"{path}.Parameters.LoopCount"
        count = params.get("LoopCount")
        if "LoopCount" not in params:
            self.error(f"{path}.Parameters", "missing LoopCount (how many times to take ContinueLooping)", ident)
        elif isinstance(count, str) and REFERENCE_RE.search(count):
            if not REFERENCE_RE.fullmatch(count.strip()):
                self.error(where, f"LoopCount must be static or one reference, found {json.dumps(count)}", ident)
            self.check_references(where, ident, count)
        elif _loop_count(count) is None:
            self.error(where, f"LoopCount must be a whole number 0-{MAX_LOOP_COUNT}, found {kind(count)}", ident)
        cond_index = self.indexes[ident][0]
        seen: set[str] = set()
        for i, cond in zip(cond_index, action.conditions):
            where = f"{path}.Transitions.Conditions[{i}].Condition"
            if cond.operator != "Equals" or len(cond.operands) != 1 or cond.operands[0] not in LOOP_CONDITIONS:
                self.error(where, f"a Loop condition is Equals ContinueLooping or Equals DoneLooping, found "
                                  f"{cond.operator} {json.dumps(cond.operands)}", ident)
            else:
                if cond.operands[0] in seen:
                    self.warn(where, f"second {cond.operands[0]} condition is never taken", ident)
                seen.add(cond.operands[0])
        for name in LOOP_CONDITIONS:
            if name not in seen:
                self.error(f"{path}.Transitions.Conditions", f"Loop needs a condition Equals {name} (where to "
                                                             f"go {'each time round' if name == LOOP_CONDITIONS[0] else 'when the loop is done'})",
                           ident)

    def check_DistributeByPercentage(self, action: Action, path: str, ident: str, params: dict) -> None:
        cond_index = self.indexes[ident][0]
        previous = 0
        for i, cond in zip(cond_index, action.conditions):
            where = f"{path}.Transitions.Conditions[{i}].Condition"
            if cond.operator != PERCENT_OPERATOR:
                self.error(f"{where}.Operator", f"DistributeByPercentage conditions are {PERCENT_OPERATOR} "
                                                f"(cumulative percentages), found '{cond.operator}'", ident)
                continue
            bound = _percent(cond.operands[0]) if len(cond.operands) == 1 else None
            if bound is None:
                self.error(f"{where}.Operands", f"a slice ends at one whole percentage 1-100, found "
                                                f"{json.dumps(cond.operands)}", ident)
                continue
            if bound <= previous:
                self.warn(f"{where}.Operands[0]", f"{bound} is not above the previous slice's {previous}: this "
                                                  "slice is never taken (operands are cumulative)", ident)
            previous = max(previous, bound)
        if previous < 100 and "NoMatchingCondition" not in action.errors:
            self.warn(f"{path}.Transitions.Errors", f"no NoMatchingCondition branch (the default, {100 - previous} "
                                                    "% of calls): those calls end the flow with an error", ident)

    def check_TransferToFlow(self, action: Action, path: str, ident: str, params: dict) -> None:
        if "ContactFlowId" not in params:
            self.error(f"{path}.Parameters", "missing ContactFlowId (the flow to run: its file name, "
                                             "Metadata name, id or ARN)", ident)
            return
        self.check_flow_reference(f"{path}.Parameters.ContactFlowId", ident, params["ContactFlowId"], "ContactFlowId")

    def check_UpdateContactEventHooks(self, action: Action, path: str, ident: str, params: dict) -> None:
        hooks = params.get("EventHooks")
        where = f"{path}.Parameters.EventHooks"
        if "EventHooks" not in params:
            self.error(f"{path}.Parameters", f"missing EventHooks (an object such as "
                                             f'{{"{DISCONNECT_HOOK}": "<flow>"}})', ident)
            return
        if not isinstance(hooks, dict) or not hooks:
            self.error(where, f"EventHooks must be an object with one event and its flow, found {kind(hooks)}", ident)
            return
        if len(hooks) > 1:
            self.warn(where, f"{len(hooks)} event hooks in one action (Connect documents one); all are set", ident)
        for key, value in hooks.items():
            at = f"{where}.{key}" if re.fullmatch(r"[A-Za-z_]\w*", key) else f"{where}[{json.dumps(key)}]"
            if key not in EVENT_HOOKS:
                hint = f"; the disconnect flow is {DISCONNECT_HOOK}" if "disconnect" in key.lower() else ""
                self.error(at, f"no event hook '{key}' (Connect's are {', '.join(EVENT_HOOKS)}){hint}", ident)
                continue
            self.check_flow_reference(at, ident, value, f"the {key} flow")
            if key not in RUN_HOOKS:
                self.warn(at, f"the {key} flow is kept on the contact but callgate does not run it", ident)

    def check_UpdateContactCallbackNumber(self, action: Action, path: str, ident: str, params: dict) -> None:
        value = params.get("CallbackNumber")
        where = f"{path}.Parameters.CallbackNumber"
        if "CallbackNumber" not in params:
            self.error(f"{path}.Parameters", "missing CallbackNumber (a reference such as $.StoredCustomerInput, "
                                             "or a number)", ident)
        elif not isinstance(value, str) or not value.strip():
            self.error(where, f"CallbackNumber must be a reference or a phone number, found {kind(value)}", ident)
        elif REFERENCE_RE.search(value):
            self.check_references(where, ident, value)
        elif (why := callback_number(value)[1]) is not None:
            self.error(where, f"CallbackNumber {json.dumps(value)} is not a number a callback can dial ({why})", ident)
        for error_type in ("InvalidCallbackNumber", "CallbackNumberNotDialable"):
            if error_type not in action.errors:
                self.warn(f"{path}.Transitions.Errors", f"no {error_type} branch: such a number ends the flow "
                                                        "with an error", ident)


class Actions:
    library = None  # the run's flows by reference (a FlowSet); None: TransferToFlow takes its error branch
    rng = None      # DistributeByPercentage's draw (random.Random); None: the system's

    def _loop_counts(self) -> dict[tuple[str, str], int]:
        counts = self.__dict__.get("_loops")
        if counts is None:
            counts = self.__dict__["_loops"] = {}
        return counts

    async def do_Compare(self, action: Action) -> Go:
        value = self.resolve(str(action.parameters.get("ComparisonValue", "")))
        for condition in action.conditions:
            for operand in condition.operands:
                if compare(condition.operator, value, operand):
                    return Go(f"condition:{operand}", condition.next_action,
                              f"{json.dumps(value)} {condition.operator} {json.dumps(operand)}")
        return Go("NoMatchingCondition", action.errors.get("NoMatchingCondition"), f"value {json.dumps(value)}")

    async def do_Loop(self, action: Action) -> Go:
        raw = action.parameters.get("LoopCount")
        count = _loop_count(self.resolve(raw) if isinstance(raw, str) else raw)
        if count is None:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                      f"LoopCount {json.dumps(raw)} is {json.dumps(self.resolve(str(raw)))}, not a whole number "
                      f"0-{MAX_LOOP_COUNT}")
        counts = self._loop_counts()
        key = (self.flow.source, action.identifier)
        done = counts.get(key, 0)
        if done < count:
            counts[key] = done + 1
            return self._loop_branch(action, "ContinueLooping", f"round {done + 1} of {count}")
        counts.pop(key, None)
        return self._loop_branch(action, "DoneLooping", f"done after {count}")

    def _loop_branch(self, action: Action, name: str, detail: str) -> Go:
        target = next((c.next_action for c in action.conditions if c.operator == "Equals" and name in c.operands), None)
        return Go(f"condition:{name}", target, detail)

    async def do_DistributeByPercentage(self, action: Action) -> Go:
        """A draw of 0-99: a slice NumberLessThan N (cumulative) takes exactly N of the 100 draws, so
        "20 % to A" is `NumberLessThan 20`, "then 40 % to B" is `NumberLessThan 60`."""
        draw = (self.rng or _SYSTEM_RANDOM).randrange(100)
        for condition in action.conditions:
            bound = _percent(condition.operands[0]) if condition.operands else None
            if condition.operator == PERCENT_OPERATOR and bound is not None and draw < bound:
                return Go(f"condition:{condition.operands[0]}", condition.next_action, f"draw {draw}")
        return Go("NoMatchingCondition", action.errors.get("NoMatchingCondition"), f"draw {draw}")

    async def do_TransferToFlow(self, action: Action) -> Go:
        raw = str(action.parameters.get("ContactFlowId", ""))
        ref = self.resolve(raw).strip()
        if not ref:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                      f"ContactFlowId {json.dumps(raw)} is empty")
        target = self.library.get(ref) if self.library is not None else None
        if target is None:
            why = self.library.problem(ref) if self.library is not None else None
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                      why or f"no flow '{flow_label(ref)}' (ContactFlowId {json.dumps(ref)})")
        self.flow = target  # the run goes on in the other flow: same contact, attributes, keys and input
        return Go("transferred", target.start_action, f"to flow {target.source}")

    async def do_UpdateContactEventHooks(self, action: Action) -> Go:
        setter = getattr(self.contact, "set_event_hook", None)
        hooks = action.parameters.get("EventHooks", {})
        resolved = {}
        for key, raw in hooks.items():
            ref = self.resolve(str(raw)).strip()
            if not ref:
                return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                          f"the {key} flow {json.dumps(raw)} is empty")
            if self.library is not None and key in RUN_HOOKS and self.library.get(ref) is None:
                return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                          self.library.problem(ref) or f"no flow '{flow_label(ref)}' for {key}")
            resolved[key] = ref
        if setter is None:
            return Go("next", action.next_action, f"event hooks are not kept on the {self.channel} channel")
        for key, ref in resolved.items():
            setter(key, ref)
        return Go("next", action.next_action, ", ".join(f"{k} = {flow_label(r)}" for k, r in resolved.items()))

    async def do_UpdateContactCallbackNumber(self, action: Action) -> Go:
        raw = str(action.parameters.get("CallbackNumber", ""))
        text = self.resolve(raw)
        number_, why = callback_number(text)
        if number_ is None:
            return Go(why, action.errors.get(why), f"{json.dumps(text)} from {raw}" if text != raw else json.dumps(text))
        self.contact.callback_number = number_
        return Go("next", action.next_action, number_)


def _loop_count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = number(value)
    if isinstance(value, (int, float)) and value == int(value) and 0 <= value <= MAX_LOOP_COUNT:
        return int(value)
    return None


def _percent(operand: str) -> int | None:
    value = number(operand)
    return int(value) if value is not None and value == int(value) and 1 <= value <= 100 else None
