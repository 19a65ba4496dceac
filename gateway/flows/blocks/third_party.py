"""Transfer to phone number: TransferParticipantToThirdParty dials a number on a free line and bridges
the caller to it.

The call goes through the contact's `transfer_to_number` (the daemon's ContactSession: a free modem
dials, sends the DTMF digits once answered, then carries audio both ways until one side hangs up).
With ContinueFlowExecution "True" (Connect's default, "Resume flow after disconnect" in the designer)
the flow goes on at NextAction when the third party hangs up first, and a busy, failed or unanswered
call takes CallFailed / ConnectionTimeLimitExceeded. With "False" the caller is handed over: the call
ends when the third party hangs up, and a call that cannot be placed takes NoMatchingError, as in
Connect (which rejects the other two branches on such an action). A caller who hangs up ends the flow.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import json
import re

from gateway.flows.model import REFERENCE_RE, Action
from gateway.flows.runtime import CallerHungUp, End, Go
from gateway.flows.values import flag, key_path, kind, parse_seconds

TYPE = "TransferParticipantToThirdParty"
TIMEOUT_KEY = "ThirdPartyConnectionTimeLimitSeconds"
TIMEOUT_ALIAS = "ThirdPartyConnectionTimeoutSeconds"   # the admin guide's spelling; exports write TIMEOUT_KEY
PARAMETERS = ("ThirdPartyPhoneNumber", TIMEOUT_KEY, TIMEOUT_ALIAS, "ContinueFlowExecution", "ThirdPartyDTMFDigits",
              "CallerId")
DEFAULT_TIMEOUT = 30.0            # seconds, the designer's default
TIMEOUT_RANGE = (1.0, 600.0)      # Connect allows 0-600; a 0 s wait never connects
MAX_DTMF = 50                     # characters, as in Connect
DTMF_CHARACTERS = frozenset("0123456789*#,")
DTMF_PAUSE = 0.75                 # seconds a comma waits between digits
MAX_BRIDGE_SECONDS = 4 * 3600.0   # a bridged call longer than this is ended (the action's time limit)
MIN_DIGITS = 5                    # shorter numbers are emergency or service codes: a flow never dials them

# What transfer_to_number reports, and the branch each takes.
CONNECTED_FAR_END_LEFT = "connected_then_far_end_hung_up"
CONNECTED_CALLER_LEFT = "connected_then_caller_hung_up"
BUSY, NO_ANSWER, NO_FREE_LINE, FAILED = "busy", "no_answer", "no_free_line", "failed"

ERRORS = {
    TYPE: {"CallFailed", "ConnectionTimeLimitExceeded", "NoMatchingError"},
}
NEEDS_NEXT_ACTION: set[str] = set()

_SEPARATORS = re.compile(r"[\s\-.()/]")
_DIALABLE = re.compile(r"\+?[0-9*#]+")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def dialable(text: str) -> str | None:
    """The number a line dials for `text` (separators dropped: "+49 30 1234-5678" -> "+493012345678"),
    or None when it is not a phone number: digits (and * #) after an optional +, at least MIN_DIGITS."""
    number = _SEPARATORS.sub("", text)
    if not _DIALABLE.fullmatch(number) or len(number) > 20:
        return None
    return number if sum(c.isdigit() for c in number) >= MIN_DIGITS else None


def dtmf_steps(digits: str) -> list[str | float]:
    """Digits to send and pauses between them: "12,,#" -> ["12", 1.5, "#"] (a comma waits DTMF_PAUSE)."""
    steps: list[str | float] = []
    for run in re.findall(r"[^,]+|,+", digits):
        if run.startswith(","):
            steps.append(round(len(run) * DTMF_PAUSE, 3))
        else:
            steps.append(run)
    return steps


def continue_flow(params: dict) -> bool:
    """ContinueFlowExecution of a (validated) action; absent means True, as in Connect."""
    value = flag(params.get("ContinueFlowExecution", True))
    return True if value is None else value


def _timeout_value(params: dict) -> tuple[str, object] | None:
    for key in (TIMEOUT_KEY, TIMEOUT_ALIAS):
        if key in params:
            return key, params[key]
    return None


def _one_reference(value: str) -> bool:
    return bool(REFERENCE_RE.fullmatch(value.strip()))


class Checks:
    def check_TransferParticipantToThirdParty(self, action: Action, path: str, ident: str, params: dict) -> None:
        where = f"{path}.Parameters"
        for key in params:
            if key not in PARAMETERS:
                hint = " (voice connectors are not supported here)" if key == "VoiceConnector" else ""
                self.warn(f"{where}{key_path(key)}", f"{TYPE} has no parameter {key!r}; it is ignored{hint}", ident)
        self._check_third_party_number(where, ident, params)
        self._check_third_party_timeout(where, ident, params)
        resume = flag(params.get("ContinueFlowExecution", True))
        if resume is None:
            self.error(f"{where}.ContinueFlowExecution", 'ContinueFlowExecution must be "True" or "False" (static), '
                                                         f"found {kind(params['ContinueFlowExecution'])}", ident)
        self._check_third_party_dtmf(where, ident, params)
        self._check_third_party_caller_id(where, ident, params)
        errors_at = self.indexes[ident][1]
        if resume is False:
            for branch in ("CallFailed", "ConnectionTimeLimitExceeded"):
                if branch in action.errors:
                    self.error(f"{path}.Transitions.Errors[{errors_at[branch]}]",
                               f"{branch} needs ContinueFlowExecution \"True\" (Connect rejects it otherwise); with "
                               "\"False\" a call that cannot be placed takes NoMatchingError", ident)
        elif resume and action.next_action is None:
            self.error(f"{path}.Transitions", "missing Transitions.NextAction (with ContinueFlowExecution \"True\" "
                                              "the flow goes on there when the third party hangs up)", ident)
        self.warn_no_branch(action, "NoMatchingError", "a transfer that cannot be placed")

    def _check_third_party_number(self, where: str, ident: str, params: dict) -> None:
        if "ThirdPartyPhoneNumber" not in params:
            self.error(where, "missing ThirdPartyPhoneNumber (the number to dial, E.164 such as +4930123456, or a "
                              "reference such as $.Attributes.number)", ident)
            return
        number, at = params["ThirdPartyPhoneNumber"], f"{where}.ThirdPartyPhoneNumber"
        if not isinstance(number, str) or not number.strip():
            self.error(at, f"ThirdPartyPhoneNumber must be a phone number or a reference, found {kind(number)}", ident)
        elif REFERENCE_RE.search(number):
            self.check_references(at, ident, number)
        elif (dialled := dialable(number)) is None:
            self.error(at, f"ThirdPartyPhoneNumber {json.dumps(number)} is not a phone number to dial (digits after "
                           f"an optional +, at least {MIN_DIGITS}: emergency and service codes are never dialled)",
                       ident)
        elif not _E164.fullmatch(dialled):
            self.warn(at, f"ThirdPartyPhoneNumber {json.dumps(number)} is not E.164 (+ and country code): Connect "
                          "refuses it; a modem line dials it as written", ident)

    def _check_third_party_timeout(self, where: str, ident: str, params: dict) -> None:
        found = _timeout_value(params)
        if found is None:
            return
        key, value = found
        at = f"{where}.{key}"
        if key == TIMEOUT_ALIAS:
            if TIMEOUT_KEY in params:
                self.warn(at, f"{TIMEOUT_ALIAS} is ignored: {TIMEOUT_KEY} is given", ident)
                return
            self.warn(at, f"read as {TIMEOUT_KEY} (the name Connect's flow language uses)", ident)
        if isinstance(value, str) and REFERENCE_RE.search(value):
            if not _one_reference(value):
                self.error(at, f"{key} must be static or one reference, found {json.dumps(value)}", ident)
            self.check_references(at, ident, value)
            return
        seconds = parse_seconds(value)
        low, high = TIMEOUT_RANGE
        if seconds is None or not seconds.is_integer():
            self.error(at, f"{key} must be a whole number of seconds, found {kind(value)}", ident)
        elif not low <= seconds <= high:
            self.error(at, f"{key} must be {low:g} to {high:g} seconds, found {json.dumps(value)}", ident)

    def _check_third_party_dtmf(self, where: str, ident: str, params: dict) -> None:
        if "ThirdPartyDTMFDigits" not in params:
            return
        digits, at = params["ThirdPartyDTMFDigits"], f"{where}.ThirdPartyDTMFDigits"
        if not isinstance(digits, str):
            self.error(at, f"ThirdPartyDTMFDigits must be a string such as \"1234#\", found {kind(digits)}", ident)
        elif REFERENCE_RE.search(digits):
            if not _one_reference(digits):
                self.error(at, f"ThirdPartyDTMFDigits must be static or one reference, found {json.dumps(digits)}",
                           ident)
            self.check_references(at, ident, digits)
        elif bad := sorted(set(digits) - DTMF_CHARACTERS):
            self.error(at, f"ThirdPartyDTMFDigits {json.dumps(digits)} holds {', '.join(map(repr, bad))}: only 0-9, "
                           "*, # and commas (a 750 ms pause each)", ident)
        elif len(digits) > MAX_DTMF:
            self.error(at, f"ThirdPartyDTMFDigits is {len(digits)} characters; at most {MAX_DTMF}", ident)

    def _check_third_party_caller_id(self, where: str, ident: str, params: dict) -> None:
        if "CallerId" not in params:
            return
        caller_id, at = params["CallerId"], f"{where}.CallerId"
        if not isinstance(caller_id, dict):
            self.error(at, f'CallerId must be an object {{"Number": ..., "Name": ...}}, found {kind(caller_id)}', ident)
            return
        for key, value in caller_id.items():
            if key not in ("Number", "Name"):
                self.warn(f"{at}{key_path(key)}", f"CallerId has no field {key!r}; it is ignored", ident)
            elif not isinstance(value, str):
                self.error(f"{at}.{key}", f"CallerId.{key} must be a string, found {kind(value)}", ident)
            elif key == "Number" and REFERENCE_RE.search(value) and not _one_reference(value):
                self.error(f"{at}.Number", f"CallerId.Number must be static or one reference, found "
                                           f"{json.dumps(value)}", ident)
            elif key == "Number" and not REFERENCE_RE.search(value) and dialable(value) is None:
                self.error(f"{at}.Number", f"CallerId.Number {json.dumps(value)} is not a phone number", ident)
            else:
                self.check_references(f"{at}.{key}", ident, value)
        self.warn(at, "a modem line cannot choose the caller ID it presents (the network shows its SIM's number); "
                      "CallerId is ignored", ident)


class Actions:
    def extra_time_TransferParticipantToThirdParty(self, action: Action) -> float:
        found = _timeout_value(action.parameters)
        seconds = parse_seconds(self.resolve(str(found[1]))) if found else None
        return (seconds or DEFAULT_TIMEOUT) + MAX_BRIDGE_SECONDS

    async def do_TransferParticipantToThirdParty(self, action: Action) -> Go | End:
        params = action.parameters
        resume = continue_flow(params)

        def failed(branch: str, detail: str) -> Go:
            """Connect's CallFailed / ConnectionTimeLimitExceeded exist only when the flow resumes;
            otherwise (or without that branch) NoMatchingError takes the call."""
            if resume and branch in action.errors:
                return Go(branch, action.errors[branch], detail)
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), detail)

        if self.channel != "VOICE":
            return failed("NoMatchingError", f"no transfer to a phone number on the {self.channel} channel")
        if not hasattr(self.contact, "transfer_to_number"):
            return failed("NoMatchingError", "this contact cannot dial out")
        raw = str(params.get("ThirdPartyPhoneNumber", ""))
        number = dialable(self.resolve(raw))
        if number is None:
            return failed("NoMatchingError", f"ThirdPartyPhoneNumber {json.dumps(raw)} is "
                                             f"{json.dumps(self.resolve(raw))}, not a number to dial")
        found = _timeout_value(params)
        timeout = DEFAULT_TIMEOUT
        if found is not None:
            seconds = parse_seconds(self.resolve(str(found[1])))
            if seconds is None or not TIMEOUT_RANGE[0] <= seconds <= TIMEOUT_RANGE[1]:
                return failed("NoMatchingError", f"{found[0]} {json.dumps(found[1])} is "
                                                 f"{json.dumps(self.resolve(str(found[1])))}, not 1-600 seconds")
            timeout = seconds
        dtmf = self.resolve(str(params.get("ThirdPartyDTMFDigits", "")))
        if set(dtmf) - DTMF_CHARACTERS or len(dtmf) > MAX_DTMF:
            return failed("NoMatchingError", f"ThirdPartyDTMFDigits {json.dumps(dtmf)} are not phone keys and "
                                             f"commas (at most {MAX_DTMF})")
        caller_id = params.get("CallerId")
        if isinstance(caller_id, dict):
            caller_id = {k: self.resolve(v) for k, v in caller_id.items() if k in ("Number", "Name") and
                         isinstance(v, str)}
        else:
            caller_id = None
        outcome = await self.contact.transfer_to_number(number, timeout=timeout, dtmf=dtmf, caller_id=caller_id,
                                                        resume_after=resume)
        if outcome == CONNECTED_FAR_END_LEFT:
            if resume:
                return Go("next", action.next_action, f"{number} answered and hung up first")
            return End("transferred", f"{number} answered and hung up; the call is over")
        if outcome == CONNECTED_CALLER_LEFT:
            raise CallerHungUp(f"caller hung up while talking to {number}")
        if outcome == BUSY:
            return failed("CallFailed", f"{number} is busy")
        if outcome == NO_ANSWER:
            return failed("ConnectionTimeLimitExceeded", f"{number} did not answer within {timeout:g} s")
        if outcome == NO_FREE_LINE:
            return failed("CallFailed", "no free line to dial out on")
        if isinstance(outcome, str) and outcome.startswith(FAILED):
            why = outcome.partition(":")[2].strip()
            return failed("CallFailed", f"the call to {number} failed" + (f": {why}" if why else ""))
        raise ValueError(f"transfer_to_number returned {outcome!r}")
