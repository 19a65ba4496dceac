"""callgate's own voicemail block: greeting, beep, a message ended by silence, a key or a length limit.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.flows.model import Action
from gateway.flows.runtime import Go, End
from gateway.flows.values import DTMF_KEYS, PROMPT_PARAMETERS, flag, key_path, kind, parse_seconds
from gateway.media.tones import beep

VOICEMAIL_TYPE = "Callgate.RecordVoicemail"  # callgate's own: the dot keeps it apart from Connect's types
VOICEMAIL_MAX_LENGTH = (120.0, 1.0, 3600.0)  # MaxLengthSeconds: default, smallest and largest allowed
VOICEMAIL_SILENCE = (5.0, 0.5, 60.0)         # SilenceSeconds: default, smallest and largest allowed
VOICEMAIL_PARAMETERS = ("MaxLengthSeconds", "SilenceSeconds", "StopKeys", "Beep", *PROMPT_PARAMETERS)

ERRORS = {
    VOICEMAIL_TYPE: {"NoSpeech", "NoMatchingError"},
}
NEEDS_NEXT_ACTION = set()


@dataclass(frozen=True)
class VoicemailOptions:
    max_seconds: float
    silence_seconds: float
    stop_keys: str
    beep: bool


def voicemail_options(params: dict) -> VoicemailOptions:
    """The settings of a (validated) Callgate.RecordVoicemail action, defaults filled in."""
    max_seconds = parse_seconds(params.get("MaxLengthSeconds", VOICEMAIL_MAX_LENGTH[0]))
    silence = parse_seconds(params.get("SilenceSeconds", VOICEMAIL_SILENCE[0]))
    keys = params.get("StopKeys", "#")
    beep = flag(params.get("Beep", True))
    return VoicemailOptions(max_seconds if max_seconds is not None else VOICEMAIL_MAX_LENGTH[0],
                            silence if silence is not None else VOICEMAIL_SILENCE[0],
                            keys if isinstance(keys, str) else "#", beep if beep is not None else True)


class Checks:
    def check_Callgate_RecordVoicemail(self, action: Action, path: str, ident: str, params: dict) -> None:
        if any(k in params for k in (*PROMPT_PARAMETERS, "Media")):
            self.check_prompt(path, ident, params)  # the greeting is optional
        for key in params:
            if key not in VOICEMAIL_PARAMETERS and key != "Media":
                known = ", ".join(VOICEMAIL_PARAMETERS)
                self.warn(f"{path}.Parameters{key_path(key)}",
                          f"{VOICEMAIL_TYPE} has no parameter {key!r}; it is ignored (known: {known})", ident)
        limits = {"MaxLengthSeconds": VOICEMAIL_MAX_LENGTH[1:], "SilenceSeconds": VOICEMAIL_SILENCE[1:]}
        for key, (low, high) in limits.items():
            if key not in params:
                continue
            where, value = f"{path}.Parameters.{key}", params[key]
            seconds = parse_seconds(value)
            if seconds is None:
                self.error(where, f"{key} must be a number of seconds, found {kind(value)}", ident)
            elif not low <= seconds <= high:
                self.error(where, f"{key} must be between {low:g} and {high:g} seconds, found {json.dumps(value)}",
                           ident)
        keys = params.get("StopKeys", "#")
        if not isinstance(keys, str):
            self.error(f"{path}.Parameters.StopKeys", f"StopKeys must be a string of phone keys such as \"#\", "
                                                      f"found {kind(keys)}", ident)
        elif bad := sorted(set(keys) - DTMF_KEYS):
            self.error(f"{path}.Parameters.StopKeys", f"StopKeys {json.dumps(keys)} holds {', '.join(map(repr, bad))}, "
                                                      "not phone keys (0-9, *, #)", ident)
        if "Beep" in params and flag(params["Beep"]) is None:
            self.error(f"{path}.Parameters.Beep", f"Beep must be true or false, found {kind(params['Beep'])}", ident)


class Actions:
    def extra_time_Callgate_RecordVoicemail(self, action: Action) -> float:
        return voicemail_options(action.parameters).max_seconds

    async def do_Callgate_RecordVoicemail(self, action: Action) -> Go | End:
        """Greeting (any key skips it), beep, message. A kept message goes on to NextAction, one without
        speech to NoSpeech; without that branch the flow ends there and the call is hung up."""
        if self.channel != "VOICE" or not hasattr(self.contact, "record_voicemail"):
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                       f"no voicemail on the {self.channel} channel")
        options = voicemail_options(action.parameters)
        if (samples := await self.render(action.parameters)) is not None:
            await self.contact.play(samples, interruptible=True)
        if options.beep:
            await self.contact.play(beep(), interruptible=False)
        result = await self.contact.record_voicemail(max_seconds=options.max_seconds,
                                                     silence_seconds=options.silence_seconds,
                                                     stop_keys=options.stop_keys)
        detail = result.describe()
        if not result.kept:
            target = action.errors.get("NoSpeech")
            return Go("NoSpeech", target, detail) if target is not None else End("voicemail", detail)
        if action.next_action is None:
            return End("voicemail", detail)
        return Go("next", action.next_action, detail)
