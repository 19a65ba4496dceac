"""Prompts and keypad input: MessageParticipant and GetParticipantInput.

GetParticipantInput is Connect's "Get customer input" (one key, routed by conditions) or, with
StoreInput "True", its "Store customer input": several keys into $.StoredCustomerInput, ended by the
terminator (InputTerminationSequence, "#" by default), by reaching the maximum number of digits, or by
InterdigitTimeLimitSeconds (5 s by default) without a key; "*" clears what was typed unless
DisableCancelKey is "True". Phone-number validation stores the number in E.164. A caller who types
nothing before InputTimeLimitSeconds goes on along NextAction with $.StoredCustomerInput "Timeout", as
in Connect (or along an InputTimeLimitExceeded branch when the flow has one). Keys typed before the
block, or during its prompt, are the first keys of the entry.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.flows.model import Action
from gateway.flows.phone import COUNTRIES, MAX_E164_DIGITS, NUMBER_FORMATS, to_e164
from gateway.flows.runtime import Go
from gateway.flows.values import DTMF_KEYS, flag, kind, parse_seconds

MAX_INPUT_TIME_LIMIT_SECONDS = 179
STORED_TIMEOUT = "Timeout"  # $.StoredCustomerInput when the caller typed nothing
DEFAULT_TERMINATOR = "#"
CANCEL_KEY = "*"
MAX_TERMINATOR_KEYS = 5
DEFAULT_INTERDIGIT_SECONDS = 5.0
MAX_INTERDIGIT_SECONDS = 20
MAX_CUSTOM_DIGITS = 20  # the most the Connect designer offers for "Maximum digits"
ENTRY_TRIES = 3  # one entry may last as long as typing it this many times at the inter-digit limit
DTMF_SETTINGS = ("InputTerminationSequence", "InterdigitTimeLimitSeconds", "DisableCancelKey")

ERRORS = {
    "MessageParticipant": {"NoMatchingError"},
    "GetParticipantInput": {"InputTimeLimitExceeded", "NoMatchingCondition", "InvalidPhoneNumber",
                            "NoMatchingError"},
}
NEEDS_NEXT_ACTION = {"MessageParticipant"}


@dataclass(frozen=True)
class StoreSettings:
    """How one Store customer input block collects keys."""

    max_digits: int = MAX_CUSTOM_DIGITS
    terminator: str = DEFAULT_TERMINATOR  # "" for none
    cancel_key: str | None = CANCEL_KEY
    interdigit: float = DEFAULT_INTERDIGIT_SECONDS
    number_format: str | None = None  # "Local" | "E164" with phone-number validation
    country: str | None = None

    @property
    def entry_seconds(self) -> float:
        """The longest one entry may take after its first key."""
        return self.interdigit * (self.max_digits + len(self.terminator) + 1) * ENTRY_TRIES


def stores_input(params: dict) -> bool:
    return flag(params.get("StoreInput", "False")) is True


def store_settings(params: dict) -> tuple[StoreSettings, list[tuple[str, str, str]]]:
    """The settings of a Store customer input block and the problems found reading them, each as
    (path below Parameters, message, "error" | "warning"). Settings that are wrong keep their defaults."""
    problems: list[tuple[str, str, str]] = []
    found: dict = {}

    def problem(where: str, message: str, severity: str = "error") -> None:
        problems.append((where, message, severity))

    _read_validation(params, found, problem)
    _read_dtmf(params, found, problem)
    if found.get("terminator") and CANCEL_KEY in found["terminator"] and found.get("cancel_key", CANCEL_KEY):
        problem(".DTMFConfiguration.InputTerminationSequence",
                f"InputTerminationSequence {json.dumps(found['terminator'])} contains the cancel key '*', which "
                'clears the input; set DTMFConfiguration.DisableCancelKey "True" or choose another terminator')
    return StoreSettings(**found), problems


def _read_validation(params: dict, found: dict, problem) -> None:
    if "InputValidation" not in params:
        problem("", 'StoreInput "True" needs InputValidation: {"CustomValidation": {"MaximumLength": "N"}} '
                    'or {"PhoneNumberValidation": {"NumberFormat": "Local", "CountryCode": "US"}}')
        return
    validation = params["InputValidation"]
    if not isinstance(validation, dict):
        problem(".InputValidation", f"InputValidation must be an object, found {kind(validation)}")
        return
    for key in validation:
        if key not in ("CustomValidation", "PhoneNumberValidation"):
            problem(f".InputValidation.{key}", f"{key} is not an InputValidation Connect defines; ignored "
                                               "(CustomValidation or PhoneNumberValidation)", "warning")
    custom, phone = validation.get("CustomValidation"), validation.get("PhoneNumberValidation")
    if custom is not None and phone is not None:
        problem(".InputValidation", "give CustomValidation or PhoneNumberValidation, not both")
    elif custom is not None:
        _read_custom(custom, found, problem)
    elif phone is not None:
        _read_phone(phone, found, problem)
    else:
        problem(".InputValidation", "InputValidation needs CustomValidation {MaximumLength} or "
                                    "PhoneNumberValidation {NumberFormat, CountryCode}")


def _read_custom(custom: object, found: dict, problem) -> None:
    where = ".InputValidation.CustomValidation"
    if not isinstance(custom, dict):
        problem(where, f"CustomValidation must be an object, found {kind(custom)}")
        return
    for key in custom:
        if key != "MaximumLength":
            problem(f"{where}.{key}", f"{key} is not a CustomValidation setting Connect defines; ignored", "warning")
    if "MaximumLength" not in custom:
        problem(where, 'missing MaximumLength (the most digits the caller may type, e.g. "4")')
        return
    value = custom["MaximumLength"]
    digits = _whole_number(value)
    if digits is None or digits < 1:
        problem(f"{where}.MaximumLength", f"MaximumLength must be a whole number of digits above 0, "
                                          f"found {json.dumps(value)}")
        return
    if digits > MAX_CUSTOM_DIGITS:
        problem(f"{where}.MaximumLength", f"MaximumLength {digits} is above the {MAX_CUSTOM_DIGITS} digits Connect "
                                          "allows (callgate takes that many)", "warning")
    found["max_digits"] = digits


def _read_phone(phone: object, found: dict, problem) -> None:
    where = ".InputValidation.PhoneNumberValidation"
    if not isinstance(phone, dict):
        problem(where, f"PhoneNumberValidation must be an object, found {kind(phone)}")
        return
    for key in phone:
        if key not in ("NumberFormat", "CountryCode"):
            problem(f"{where}.{key}", f"{key} is not a PhoneNumberValidation setting Connect defines; ignored",
                    "warning")
    number_format = phone.get("NumberFormat")
    if number_format not in NUMBER_FORMATS:
        at = f"{where}.NumberFormat" if "NumberFormat" in phone else where
        problem(at, f'NumberFormat must be "Local" (a national number of CountryCode) or "E164" (the caller '
                    f"types the country code), found {json.dumps(number_format)}")
        return
    found["max_digits"] = MAX_E164_DIGITS
    found["number_format"] = number_format
    if number_format == "Local":
        country = phone.get("CountryCode")
        if "CountryCode" not in phone:
            problem(where, 'NumberFormat "Local" needs CountryCode (ISO 3166 letters such as "US")')
        elif not isinstance(country, str) or country.upper() not in COUNTRIES:
            problem(f"{where}.CountryCode", f"CountryCode {json.dumps(country)} is not a country callgate has "
                                            f"numbering rules for (it has {' '.join(sorted(COUNTRIES))})")
        else:
            found["country"] = country.upper()


def _read_dtmf(params: dict, found: dict, problem) -> None:
    if "DTMFConfiguration" not in params:
        return
    dtmf, where = params["DTMFConfiguration"], ".DTMFConfiguration"
    if not isinstance(dtmf, dict):
        problem(where, f"DTMFConfiguration must be an object, found {kind(dtmf)}")
        return
    for key in dtmf:
        if key not in DTMF_SETTINGS:
            problem(f"{where}.{key}", f"{key} is not a DTMFConfiguration setting Connect defines; ignored "
                                      f"({', '.join(DTMF_SETTINGS)})", "warning")
    if "InputTerminationSequence" in dtmf:
        value = dtmf["InputTerminationSequence"]
        if (not isinstance(value, str) or not value or len(value) > MAX_TERMINATOR_KEYS
                or not set(value) <= DTMF_KEYS):
            problem(f"{where}.InputTerminationSequence", f"InputTerminationSequence must be 1 to "
                    f"{MAX_TERMINATOR_KEYS} phone keys (0-9, *, #), found {json.dumps(value)}")
        else:
            found["terminator"] = value
    if "InterdigitTimeLimitSeconds" in dtmf:
        value = dtmf["InterdigitTimeLimitSeconds"]
        seconds = _whole_number(value)
        if seconds is None or not 1 <= seconds <= MAX_INTERDIGIT_SECONDS:
            problem(f"{where}.InterdigitTimeLimitSeconds", f"InterdigitTimeLimitSeconds must be a whole number "
                    f"of seconds from 1 to {MAX_INTERDIGIT_SECONDS}, found {json.dumps(value)}")
        else:
            found["interdigit"] = float(seconds)
    if "DisableCancelKey" in dtmf:
        disabled = flag(dtmf["DisableCancelKey"])
        if disabled is None:
            problem(f"{where}.DisableCancelKey",
                    f'DisableCancelKey must be "True" or "False", found {json.dumps(dtmf["DisableCancelKey"])}')
        elif disabled:
            found["cancel_key"] = None


def _whole_number(value: object) -> int | None:
    seconds = parse_seconds(value)
    return int(seconds) if seconds is not None and seconds == int(seconds) else None


class KeyEntry:
    """The keys of one Store customer input entry, fed one at a time."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.typed = ""
        self.ended: str | None = None  # why the entry is complete

    def press(self, keys: str) -> bool:
        """Take the key (or keys, in order); True once the entry is complete. Keys after that are not used."""
        s = self.settings
        for key in keys:
            if self.ended:
                break
            if s.cancel_key is not None and key == s.cancel_key:
                self.typed = ""
                continue
            self.typed += key
            if s.terminator and self.typed.endswith(s.terminator):
                self.typed = self.typed[: -len(s.terminator)]
                self.ended = f"ended by {s.terminator}"
            elif len(self.typed) - self._terminator_begun() >= s.max_digits:
                self.typed = self.typed[: s.max_digits]
                self.ended = f"{s.max_digits} digits, the maximum"
        return self.ended is not None

    def _terminator_begun(self) -> int:
        """How many of the last keys typed may be the start of a terminator of several keys."""
        terminator = self.settings.terminator
        for n in range(min(len(terminator) - 1, len(self.typed)), 0, -1):
            if self.typed.endswith(terminator[:n]):
                return n
        return 0


class Checks:
    def check_MessageParticipant(self, action: Action, path: str, ident: str, params: dict) -> None:
        self.check_prompt(path, ident, params)

    def error_branch_path(self, path: str, ident: str, error_type: str) -> str:
        index = self.indexes.get(ident, ([], {}))[1].get(error_type)
        return f"{path}.Transitions.Errors" + (f"[{index}]" if index is not None else "")

    def check_GetParticipantInput(self, action: Action, path: str, ident: str, params: dict) -> None:
        self.check_prompt(path, ident, params)
        store = params.get("StoreInput", "False")
        if flag(store) is None:
            self.error(f"{path}.Parameters.StoreInput",
                       f'StoreInput must be "True" (Store customer input) or "False" (one key), found '
                       f"{json.dumps(store)}", ident)
            return
        self.check_input_time_limit(path, ident, params)
        if flag(store):
            self.check_store_input(action, path, ident, params)
        else:
            self.check_menu(action, path, ident, params)

    def check_input_time_limit(self, path: str, ident: str, params: dict) -> None:
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

    def check_menu(self, action: Action, path: str, ident: str, params: dict) -> None:
        cond_index = self.indexes[ident][0]
        if "InputValidation" in params:
            self.warn(f"{path}.Parameters.InputValidation", 'InputValidation is used only with StoreInput "True"; '
                                                            "ignored for a one-key menu", ident)
        if "InvalidPhoneNumber" in action.errors:
            self.warn(self.error_branch_path(path, ident, "InvalidPhoneNumber"),
                      'InvalidPhoneNumber is taken only with StoreInput "True" and PhoneNumberValidation; this '
                      "branch is never taken", ident)
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
        self.warn_no_branch(action, "NoMatchingCondition", "a key without a condition")

    def check_store_input(self, action: Action, path: str, ident: str, params: dict) -> None:
        settings, problems = store_settings(params)
        for where, message, severity in problems:
            report = self.error if severity == "error" else self.warn
            report(f"{path}.Parameters{where}", message, ident)
        if "InputEncryption" in params:
            where = f"{path}.Parameters.InputEncryption"
            self.error(where, f"not supported here: InputEncryption at {where} (callgate keeps stored input in "
                              "the clear; it has no encryption key)", ident)
        if action.conditions:
            self.error(f"{path}.Transitions.Conditions", 'Conditions are not used with StoreInput "True" (the keys '
                       "go to $.StoredCustomerInput); route on them with a Compare action", ident)
        if action.next_action is None:
            self.error(f"{path}.Transitions", 'missing Transitions.NextAction (where a Store customer input goes '
                       'on, also when the caller types nothing: $.StoredCustomerInput is "Timeout")', ident)
        if "NoMatchingCondition" in action.errors:
            self.warn(self.error_branch_path(path, ident, "NoMatchingCondition"),
                      'NoMatchingCondition is never taken with StoreInput "True"', ident)
        if settings.number_format is not None:
            self.warn_no_branch(action, "InvalidPhoneNumber", "a number that fails PhoneNumberValidation")
        validation = params.get("InputValidation")
        phone_given = isinstance(validation, dict) and "PhoneNumberValidation" in validation
        if not phone_given and "InvalidPhoneNumber" in action.errors:
            self.warn(self.error_branch_path(path, ident, "InvalidPhoneNumber"),
                      "InvalidPhoneNumber is taken only with PhoneNumberValidation; this branch is never taken",
                      ident)


class Actions:
    def extra_time_GetParticipantInput(self, action: Action) -> float:
        if stores_input(action.parameters):
            return self.input_time_limit(action) + store_settings(action.parameters)[0].entry_seconds
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
        if stores_input(action.parameters):
            return await self.store_customer_input(action)
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

    async def store_customer_input(self, action: Action) -> Go:
        if self.channel != "VOICE":
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                      f"Store customer input takes keys on voice calls only, not on the {self.channel} channel")
        settings = store_settings(action.parameters)[0]
        first_limit = self.input_time_limit(action)
        key = None
        if (samples := await self.render(action.parameters)) is not None:
            key = await self.contact.play(samples, interruptible=True)
        if key is None:
            key = await self.contact.get_digit(first_limit)
        if key is None:
            self.stored_input = STORED_TIMEOUT
            why = f'no key within {first_limit:g} s: $.StoredCustomerInput is "{STORED_TIMEOUT}"'
            if "InputTimeLimitExceeded" in action.errors:
                return Go("InputTimeLimitExceeded", action.errors["InputTimeLimitExceeded"], why)
            return Go("next", action.next_action, why)
        entry = KeyEntry(settings)
        deadline = self.clock.monotonic() + settings.entry_seconds
        while not entry.press(key):
            wait = min(settings.interdigit, deadline - self.clock.monotonic())
            key = await self.contact.get_digit(wait) if wait > 0 else None
            if key is None:
                entry.ended = (f"no key for {settings.interdigit:g} s" if wait >= settings.interdigit
                               else f"entry took its longest, {settings.entry_seconds:g} s")
                break
        typed = entry.typed
        if settings.number_format is None:
            self.stored_input = typed
            return Go("next", action.next_action, f"stored '{typed}' ({entry.ended})")
        number = to_e164(typed, settings.number_format, settings.country)
        self.stored_input = number or typed
        if number is None:
            as_what = f"Local number for {settings.country}" if settings.number_format == "Local" else "E164 number"
            return Go("InvalidPhoneNumber", action.errors.get("InvalidPhoneNumber"),
                      f"'{typed}' is not a valid {as_what} ({entry.ended})")
        return Go("next", action.next_action, f"stored '{number}' from '{typed}' ({entry.ended})")
