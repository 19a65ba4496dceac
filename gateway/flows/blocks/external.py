"""Blocks with effects outside the call: InvokeLambdaFunction, re-read as a local webhook, and
callgate's own Callgate.SendSms.

The webhook goes through the contact's `services.webhooks` (gateway/flows/webhook.py): the contact's
data in the shape a Lambda receives, the block's LambdaInvocationAttributes as its parameters, the
reply under `$.External.*` for the blocks that follow. The SMS goes through the contact's
`send_sms(number, text)`: the line's modem for a call, the reply for an SMS to its sender.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import asyncio
import json
import logging
import re

from gateway.flows.model import Action
from gateway.flows.runtime import Go
from gateway.flows.values import key_path, kind, parse_seconds
from gateway.flows.webhook import DEFAULT_TIME_LIMIT, MAX_TIME_LIMIT, function_name

log = logging.getLogger(__name__)

SEND_SMS_TYPE = "Callgate.SendSms"  # callgate's own: the dot keeps it apart from Connect's types
INVOCATION_TYPES = ("SYNCHRONOUS", "ASYNCHRONOUS")
RESPONSE_TYPES = ("STRING_MAP", "JSON")
LAMBDA_PARAMETERS = ("LambdaFunctionARN", "InvocationTimeLimitSeconds", "InvocationType",
                     "LambdaInvocationAttributes", "ResponseValidation")
SMS_PARAMETERS = ("Text", "To")
MAX_SMS_TEXT = 1600                 # characters: about ten concatenated parts
PHONE_RE = re.compile(r"^\+?[0-9]{3,20}$")
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")
ASYNC_GRACE = 1.0                   # seconds a fire-and-forget webhook may run past its time limit

ERRORS = {
    "InvokeLambdaFunction": {"NoMatchingError"},
    SEND_SMS_TYPE: {"NoMatchingError"},
}
NEEDS_NEXT_ACTION = {"InvokeLambdaFunction", SEND_SMS_TYPE}

_background: set[asyncio.Task] = set()   # fire-and-forget webhooks, kept until they end


def time_limit(params: dict) -> float:
    """InvocationTimeLimitSeconds of a (validated) action; Connect's default 3 s when absent."""
    seconds = parse_seconds(params.get("InvocationTimeLimitSeconds", DEFAULT_TIME_LIMIT))
    return min(max(seconds if seconds is not None else DEFAULT_TIME_LIMIT, 1.0), MAX_TIME_LIMIT)


def flatten(reply: dict, prefix: str = "$.External") -> dict[str, str]:
    """A webhook's reply as references: {"a": {"b": 1}} gives $.External.a.b = "1" and $.External.a
    = '{"b":1}' (objects and lists are also there as JSON text)."""
    out: dict[str, str] = {}
    for key, value in reply.items():
        ref = f"{prefix}.{key}"
        if isinstance(value, dict):
            out[ref] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            out.update(flatten(value, ref))
        elif isinstance(value, list):
            out[ref] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        elif isinstance(value, bool):
            out[ref] = "true" if value else "false"
        else:
            out[ref] = "" if value is None else str(value)
    return out


def phone_number(text: str) -> str | None:
    """A number an SMS can go to, punctuation dropped ("+49 (30) 1234-56" -> "+4930123456"); None otherwise."""
    number = _PHONE_PUNCTUATION.sub("", text)
    return number if PHONE_RE.match(number) else None


class Checks:
    def check_InvokeLambdaFunction(self, action: Action, path: str, ident: str, params: dict) -> None:
        for key in params:
            if key not in LAMBDA_PARAMETERS:
                self.warn(f"{path}.Parameters{key_path(key)}", f"InvokeLambdaFunction has no parameter {key!r}; "
                                                               "it is ignored", ident)
        ref = params.get("LambdaFunctionARN")
        if "LambdaFunctionARN" not in params:
            self.error(f"{path}.Parameters", "missing LambdaFunctionARN (a webhook name from [webhooks] in "
                                             "callgate.toml, a Lambda ARN ending in that name, or an http(s) URL)",
                       ident)
        elif not isinstance(ref, str) or not ref.strip():
            self.error(f"{path}.Parameters.LambdaFunctionARN",
                       f"LambdaFunctionARN must be a non-empty string, found {kind(ref)}", ident)
        else:
            self.check_references(f"{path}.Parameters.LambdaFunctionARN", ident, ref)
        if "InvocationTimeLimitSeconds" in params:
            where, value = f"{path}.Parameters.InvocationTimeLimitSeconds", params["InvocationTimeLimitSeconds"]
            seconds = parse_seconds(value)
            if seconds is None or not seconds.is_integer():
                self.error(where, f"InvocationTimeLimitSeconds must be a whole number of seconds, found "
                                  f"{kind(value)}", ident)
            elif not 1 <= seconds <= MAX_TIME_LIMIT:
                self.error(where, f"InvocationTimeLimitSeconds must be 1 to {MAX_TIME_LIMIT:g}, as in Connect, "
                                  f"found {json.dumps(value)}", ident)
        invocation = params.get("InvocationType", "SYNCHRONOUS")
        if invocation not in INVOCATION_TYPES:
            self.error(f"{path}.Parameters.InvocationType",
                       f'InvocationType must be "SYNCHRONOUS" or "ASYNCHRONOUS", found {kind(invocation)}', ident)
        attributes = params.get("LambdaInvocationAttributes", {})
        if not isinstance(attributes, dict):
            self.error(f"{path}.Parameters.LambdaInvocationAttributes",
                       f"LambdaInvocationAttributes must be an object, found {kind(attributes)}", ident)
        else:
            for key, value in attributes.items():
                where = f"{path}.Parameters.LambdaInvocationAttributes{key_path(key)}"
                if not isinstance(value, str):
                    self.error(where, f"a webhook parameter must be a string, found {kind(value)}", ident)
                else:
                    self.check_references(where, ident, value)
        validation = params.get("ResponseValidation", {})
        if not isinstance(validation, dict):
            self.error(f"{path}.Parameters.ResponseValidation",
                       f'ResponseValidation must be an object {{"ResponseType": ...}}, found {kind(validation)}',
                       ident)
        elif validation.get("ResponseType", "STRING_MAP") not in RESPONSE_TYPES:
            self.error(f"{path}.Parameters.ResponseValidation.ResponseType",
                       f'ResponseType must be "STRING_MAP" or "JSON", found {kind(validation.get("ResponseType"))}',
                       ident)
        self.warn_no_branch(action, "NoMatchingError", "a webhook that fails")

    def check_Callgate_SendSms(self, action: Action, path: str, ident: str, params: dict) -> None:
        for key in params:
            if key not in SMS_PARAMETERS:
                self.warn(f"{path}.Parameters{key_path(key)}", f"{SEND_SMS_TYPE} has no parameter {key!r}; it is "
                                                               "ignored (known: Text, To)", ident)
        text = params.get("Text")
        if "Text" not in params:
            self.error(f"{path}.Parameters", "missing Text (the message; references such as $.Attributes.x are "
                                             "filled in)", ident)
        elif not isinstance(text, str) or not text.strip():
            self.error(f"{path}.Parameters.Text", f"Text must be non-empty text, found {kind(text)}", ident)
        else:
            if len(text) > MAX_SMS_TEXT:
                self.error(f"{path}.Parameters.Text", f"Text is {len(text)} characters; at most {MAX_SMS_TEXT}",
                           ident)
            self.check_references(f"{path}.Parameters.Text", ident, text)
        if "To" in params:
            to, where = params["To"], f"{path}.Parameters.To"
            if not isinstance(to, str) or not to.strip():
                self.error(where, f"To must be a phone number or a reference such as $.Attributes.mobile, found "
                                  f"{kind(to)}", ident)
            elif not to.lstrip().startswith("$.") and phone_number(to) is None:
                self.error(where, f"To {json.dumps(to)} is not a phone number (digits, optionally with a "
                                  "leading +)", ident)
            else:
                self.check_references(where, ident, to)
        self.warn_no_branch(action, "NoMatchingError", "an SMS that cannot be sent")


class Actions:
    def contact_data(self) -> dict:
        """The contact as a Lambda's event has it (Details.ContactData)."""
        c = self.contact
        queue_id = getattr(c, "queue_id", None)
        queue = {"Name": c.queue_name, "ARN": queue_id or c.queue_name} if c.queue_name or queue_id else None
        return {
            "ContactId": c.contact_id, "InitialContactId": c.contact_id, "PreviousContactId": c.contact_id,
            "Channel": self.channel,
            "InitiationMethod": getattr(c, "initiation_method", "INBOUND"),
            "CustomerEndpoint": {"Address": c.customer_number or "", "Type": "TELEPHONE_NUMBER"},
            "SystemEndpoint": {"Address": c.system_number or "", "Type": "TELEPHONE_NUMBER"},
            "Attributes": dict(c.attributes),
            "Queue": queue,
        }

    async def do_InvokeLambdaFunction(self, action: Action) -> Go:
        params = action.parameters
        services = getattr(self.contact, "services", None)
        webhooks = getattr(services, "webhooks", None)
        if webhooks is None:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), "webhooks are not set up here "
                                                                               "([webhooks] in callgate.toml)")
        ref = self.resolve(str(params.get("LambdaFunctionARN", ""))).strip()
        limit = time_limit(params)
        response = params.get("ResponseValidation", {}).get("ResponseType", "STRING_MAP")
        attributes = {k: self.resolve(str(v)) for k, v in params.get("LambdaInvocationAttributes", {}).items()}
        call = webhooks.invoke(ref, self.contact_data(), attributes, time_limit=limit, response_type=response)
        if params.get("InvocationType") == "ASYNCHRONOUS":
            task = asyncio.create_task(_fire_and_forget(call, function_name(ref), limit + ASYNC_GRACE))
            _background.add(task)
            task.add_done_callback(_background.discard)
            return Go("next", action.next_action, f"webhook {function_name(ref)!r} called without waiting")
        try:
            async with asyncio.timeout(limit + ASYNC_GRACE):
                reply = await call
        except TimeoutError:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                      f"webhook {function_name(ref)!r}: no reply within {limit:g} s")
        except Exception as exc:  # WebhookError says which webhook and why; anything else is a failure too
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), str(exc) or type(exc).__name__)
        loaded = flatten(reply)
        self.load_references("$.External.", loaded)
        keys = ", ".join(sorted(reply)) or "nothing"
        return Go("next", action.next_action, f"webhook {function_name(ref)!r} replied: {keys}")

    async def do_Callgate_SendSms(self, action: Action) -> Go:
        params = action.parameters
        send = getattr(self.contact, "send_sms", None)
        if send is None:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), "this contact cannot send SMS")
        text = self.resolve(str(params.get("Text", ""))).strip()
        raw_to = self.resolve(str(params.get("To", "$.CustomerEndpoint.Address"))).strip()
        number = phone_number(raw_to)
        if not text:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), "the text is empty")
        if number is None:
            why = "no number to send to (the caller's number is withheld)" if not raw_to else \
                f"{raw_to!r} is not a phone number"
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), why)
        try:
            await send(number, text)
        except Exception as exc:  # the line's error (no SMS on this modem, +CMS ERROR ...) is the reason
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                      f"SMS to {number} not sent: {exc or type(exc).__name__}")
        return Go("next", action.next_action, f"SMS to {number}: {len(text)} characters")


async def _fire_and_forget(call, name: str, limit: float) -> None:
    try:
        async with asyncio.timeout(limit):
            await call
    except Exception as exc:   # nobody waits for it: the log is where its failure goes
        log.warning("webhook %r (ASYNCHRONOUS) failed: %s", name, exc or type(exc).__name__)
