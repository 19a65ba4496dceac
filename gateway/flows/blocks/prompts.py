"""Prompts and keypad input: MessageParticipant and GetParticipantInput.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import json

from gateway.flows.model import Action
from gateway.flows.runtime import Go
from gateway.flows.values import DTMF_KEYS, parse_seconds

MAX_INPUT_TIME_LIMIT_SECONDS = 179

ERRORS = {
    "MessageParticipant": {"NoMatchingError"},
    "GetParticipantInput": {"InputTimeLimitExceeded", "NoMatchingCondition", "NoMatchingError"},
}
NEEDS_NEXT_ACTION = {"MessageParticipant"}


class Checks:
    def check_MessageParticipant(self, action: Action, path: str, ident: str, params: dict) -> None:
        self.check_prompt(path, ident, params)

    def check_GetParticipantInput(self, action: Action, path: str, ident: str, params: dict) -> None:
        cond_index = self.indexes[ident][0]
        self.check_prompt(path, ident, params)
        store = params.get("StoreInput", "False")
        if store not in ("False", False):
            self.error(f"{path}.Parameters.StoreInput",
                       f"StoreInput {json.dumps(store)} (Store customer input: several digits) is not supported "
                       'here; only single-key menus (StoreInput "False")', ident)
            return
        if "InputTimeLimitSeconds" in params:
            where, value = f"{path}.Parameters.InputTimeLimitSeconds", params["InputTimeLimitSeconds"]
            seconds = parse_seconds(value)
            if seconds is None:
                self.error(where, f"InputTimeLimitSeconds must be a number of seconds, found {json.dumps(value)}",
                           ident)
            elif seconds <= 0:
                self.error(where, f"InputTimeLimitSeconds must be above 0, found {json.dumps(value)}", ident)
            elif seconds > MAX_INPUT_TIME_LIMIT_SECONDS:
                self.warn(where, f"InputTimeLimitSeconds {json.dumps(value)} is above the "
                                 f"{MAX_INPUT_TIME_LIMIT_SECONDS} s Connect allows for Get customer input "
                                 "(callgate waits that long)", ident)
        keys_seen: set[str] = set()
        for i, cond in zip(cond_index, action.conditions):
            where = f"{path}.Transitions.Conditions[{i}].Condition"
            if cond.operator != "Equals":
                self.error(f"{where}.Operator", f"GetParticipantInput supports only the Equals operator, "
                                                f"found '{cond.operator}'", ident)
            for j, key in enumerate(cond.operands):
                if key not in DTMF_KEYS:
                    self.error(f"{where}.Operands[{j}]",
                               f"operand {json.dumps(key)} is not one phone key (0-9, *, #)", ident)
                elif key in keys_seen:
                    self.warn(f"{where}.Operands[{j}]", f"key '{key}' already has an earlier condition; this one "
                                                        "is never taken", ident)
                keys_seen.add(key)
        if "InputTimeLimitExceeded" not in action.errors:
            self.error(f"{path}.Transitions.Errors", "GetParticipantInput needs an InputTimeLimitExceeded error "
                                                     "branch (where to go when no key is pressed)", ident)
        if "NoMatchingCondition" not in action.errors:
            self.warn(f"{path}.Transitions.Errors", "no NoMatchingCondition branch: a key without a condition "
                                                    "ends the flow with an error", ident)


class Actions:
    def extra_time_GetParticipantInput(self, action: Action) -> float:
        return self.input_time_limit(action)

    async def do_MessageParticipant(self, action: Action) -> Go:
        if self.channel != "VOICE":
            await self.send_text(action.parameters)
            return Go("next", action.next_action)
        samples = await self.render(action.parameters)
        if samples is not None:
            await self.contact.play(samples, interruptible=False)
        return Go("next", action.next_action)

    async def do_GetParticipantInput(self, action: Action) -> Go:
        digit = None
        if self.channel != "VOICE":
            await self.send_text(action.parameters)
        elif (samples := await self.render(action.parameters)) is not None:
            digit = await self.contact.play(samples, interruptible=True)
        if digit is None:
            digit = await self.contact.get_digit(self.input_time_limit(action))
        if digit is None:
            return Go("InputTimeLimitExceeded", action.errors.get("InputTimeLimitExceeded"))
        self.stored_input = digit
        for condition in action.conditions:
            if condition.operator == "Equals" and digit in condition.operands:
                return Go(f"condition:{digit}", condition.next_action)
        return Go("NoMatchingCondition", action.errors.get("NoMatchingCondition"), f"key '{digit}'")
