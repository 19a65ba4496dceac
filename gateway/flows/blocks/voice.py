"""The voice prompts are spoken in: UpdateContactTextToSpeechVoice (Connect's "Set voice") and the
LanguageCode of UpdateContactData (its "Set language attribute").

Connect speaks with Amazon Polly voices; callgate speaks with espeak-ng, so a Polly voice name stands
for the espeak-ng voice of its language (Joanna -> en-us, Hans -> de, ...). An espeak-ng voice name
("de", "en-gb", "fr-fr+f3") is taken as it is. The voice chosen holds for every later prompt of the
contact; TextToSpeechEngine and TextToSpeechStyle have no espeak-ng counterpart and are not used.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import json
import re

from gateway.flows.model import REFERENCE_RE, Action
from gateway.flows.runtime import Go
from gateway.flows.values import kind

DEFAULT_VOICE = "en-us"

# Amazon Polly voices by name: (their language, the espeak-ng voice that speaks it)
POLLY_VOICES: dict[str, tuple[str, str]] = {}
for _language, _voice, _names in [
    ("en-US", "en-us", "Joanna Matthew Ivy Justin Kendra Kimberly Salli Joey Kevin Ruth Stephen Danielle Gregory "
                       "Patrick"),
    ("en-GB", "en-gb", "Amy Brian Emma Arthur"),
    ("en-AU", "en-gb", "Nicole Russell Olivia"),
    ("en-IN", "en-gb", "Raveena Kajal"),
    ("en-NZ", "en-gb", "Aria"), ("en-ZA", "en-gb", "Ayanda"), ("en-IE", "en-gb", "Niamh"),
    ("en-SG", "en-gb", "Jasmine"), ("en-GB-WLS", "en-gb-x-gbcwmd", "Geraint"),
    ("hi-IN", "hi", "Aditi"), ("cy-GB", "cy", "Gwyneth"),
    ("de-DE", "de", "Hans Marlene Vicki Daniel"), ("de-AT", "de", "Hannah"), ("de-CH", "de", "Sabrina"),
    ("fr-FR", "fr-fr", "Celine Lea Mathieu Remi"),
    ("fr-CA", "fr-fr", "Chantal Gabrielle Liam"), ("fr-BE", "fr-be", "Isabelle"),
    ("es-ES", "es", "Conchita Enrique Lucia Sergio"),
    ("es-MX", "es-419", "Mia Andres"), ("es-US", "es-419", "Penelope Miguel Lupe Pedro"),
    ("it-IT", "it", "Carla Giorgio Bianca Adriano"),
    ("pt-BR", "pt-br", "Vitoria Ricardo Camila Thiago"), ("pt-PT", "pt", "Ines Cristiano"),
    ("nl-NL", "nl", "Lotte Ruben Laura"), ("nl-BE", "nl", "Lisa"),
    ("da-DK", "da", "Naja Mads Sofie"), ("nb-NO", "nb", "Liv Ida"), ("sv-SE", "sv", "Astrid Elin"),
    ("fi-FI", "fi", "Suvi"), ("is-IS", "is", "Dora Karl"),
    ("pl-PL", "pl", "Ewa Maja Jacek Jan Ola"), ("cs-CZ", "cs", "Jitka"), ("ro-RO", "ro", "Carmen"),
    ("ru-RU", "ru", "Tatyana Maxim"), ("tr-TR", "tr", "Filiz Burcu"),
    ("arb", "ar", "Zeina"), ("ar-AE", "ar", "Hala Zayd"),
    ("ja-JP", "ja", "Mizuki Takumi Kazuha Tomoko"), ("ko-KR", "ko", "Seoyeon Jihye"),
    ("cmn-CN", "cmn", "Zhiyu"), ("yue-CN", "yue", "Hiujin"), ("ca-ES", "ca", "Arlet"),
]:
    for _name in _names.split():
        POLLY_VOICES[_name] = (_language, _voice)
_POLLY_LOWER = {name.lower(): voice for name, (_, voice) in POLLY_VOICES.items()}
_LANGUAGE_VOICES = {language.lower(): voice for language, voice in POLLY_VOICES.values()}

# espeak-ng's voices (`espeak-ng --voices`), any of which may be named directly, with a +variant
ESPEAK_VOICES = frozenset(
    "af am an ar as az ba be bg bn bpy bs ca chr-US-Qaaa-x-west cmn cmn-latn-pinyin cs cv cy da de el en "
    "en-029 en-gb en-gb-scotland en-gb-x-gbclan en-gb-x-gbcwmd en-gb-x-rp en-us en-us-nyc eo es es-419 et eu "
    "fa fa-latn fi fr fr-be fr-ch fr-fr ga gd gn grc gu hak haw he hi hr ht hu hy hyw ia id io is it ja jbo ka "
    "kk kl kn ko kok ku ky la lb lfn lt ltg lv mi mk ml mr ms mt my nb nci ne nl nog om or pa pap piqd pl pt "
    "pt-br py qdb qu quc qya ro ru ru-lv sd shn si sjn sk sl smj sq sr sv sw ta te th tk tn tr tt ug uk ur uz "
    "vi vi-vn-x-central vi-vn-x-south yue".lower().split()
)
ENGINES = ("standard", "neural", "generative", "longform")
STYLES = ("Conversational", "Newscaster")
_VARIANT = re.compile(r"\+[A-Za-z0-9_-]+")

ERRORS = {
    "UpdateContactTextToSpeechVoice": {"NoMatchingError"},
    "UpdateContactData": {"NoMatchingError"},
}
NEEDS_NEXT_ACTION = {"UpdateContactTextToSpeechVoice", "UpdateContactData"}


def espeak_voice(name: str) -> str | None:
    """The espeak-ng voice for a Polly voice name or an espeak-ng voice name; None for neither."""
    name = name.strip()
    if name.lower() in _POLLY_LOWER:
        return _POLLY_LOWER[name.lower()]
    base, plus, variant = name.partition("+")
    if base.lower() not in ESPEAK_VOICES or (plus and not _VARIANT.fullmatch(plus + variant)):
        return None
    return f"{base.lower()}{plus}{variant}"


def language_voice(code: str) -> str | None:
    """The espeak-ng voice for a language code such as "en-US", "de-DE" or "fr"; None if it has none."""
    lowered = code.strip().lower()
    if lowered in _LANGUAGE_VOICES:
        return _LANGUAGE_VOICES[lowered]
    if lowered in ESPEAK_VOICES:
        return lowered
    base = lowered.split("-")[0]
    return base if base in ESPEAK_VOICES else None


def _language_of(voice: str) -> str:
    return voice.split("+")[0].split("-")[0]


class Checks:
    def check_UpdateContactTextToSpeechVoice(self, action: Action, path: str, ident: str, params: dict) -> None:
        where = f"{path}.Parameters.TextToSpeechVoice"
        if "TextToSpeechVoice" not in params:
            self.error(f"{path}.Parameters", 'missing TextToSpeechVoice (a voice such as "Joanna", or an espeak-ng '
                                             'voice such as "en-us")', ident)
        else:
            name = params["TextToSpeechVoice"]
            if not isinstance(name, str) or not name.strip():
                self.error(where, f"TextToSpeechVoice must be a voice name, found {kind(name)}", ident)
            elif REFERENCE_RE.fullmatch(name.strip()):
                self.check_references(where, ident, name)
            elif espeak_voice(name) is None:
                self.warn(where, f"unknown voice {json.dumps(name)}: neither an Amazon Polly voice callgate maps "
                                 "to espeak-ng nor an espeak-ng voice; prompts keep the voice they had", ident)
        engine = params.get("TextToSpeechEngine")
        if engine is not None and (not isinstance(engine, str) or engine.lower().replace("-", "") not in ENGINES):
            self.warn(f"{path}.Parameters.TextToSpeechEngine", f"TextToSpeechEngine {json.dumps(engine)} is not "
                      "Standard, Neural, Generative or LongForm; ignored (espeak-ng has one engine)", ident)
        style = params.get("TextToSpeechStyle")
        if style is not None and style not in STYLES:
            self.warn(f"{path}.Parameters.TextToSpeechStyle", f"TextToSpeechStyle {json.dumps(style)} is not "
                      "Conversational or Newscaster; ignored (espeak-ng has no speaking styles)", ident)

    def check_UpdateContactData(self, action: Action, path: str, ident: str, params: dict) -> None:
        others = [k for k in params if k not in ("LanguageCode", "TargetContact")]
        for key in others:
            where = f"{path}.Parameters.{key}"
            self.error(where, f"not supported here: UpdateContactData {key} at {where} (callgate runs only its "
                              "LanguageCode)", ident)
        target = params.get("TargetContact", "Current")
        if target != "Current":
            self.error(f"{path}.Parameters.TargetContact",
                       f'TargetContact {json.dumps(target)} is not supported here; only "Current"', ident)
        if "LanguageCode" not in params:
            if not others:
                self.error(f"{path}.Parameters", 'missing LanguageCode (such as "en-US")', ident)
            return
        code, where = params["LanguageCode"], f"{path}.Parameters.LanguageCode"
        if not isinstance(code, str) or not code.strip():
            self.error(where, f"LanguageCode must be a language code such as \"en-US\", found {kind(code)}", ident)
        elif REFERENCE_RE.fullmatch(code.strip()):
            self.check_references(where, ident, code)
        elif language_voice(code) is None:
            self.warn(where, f"no espeak-ng voice speaks LanguageCode {json.dumps(code)}; prompts keep the voice "
                             "they had", ident)


class Actions:
    tts_voice: str = DEFAULT_VOICE  # the espeak-ng voice prompts are spoken in; set per run by these blocks

    async def do_UpdateContactTextToSpeechVoice(self, action: Action) -> Go:
        name = self.resolve(str(action.parameters.get("TextToSpeechVoice", ""))).strip()
        voice = espeak_voice(name) if name else None
        if voice is None:
            return Go("next", action.next_action, f"unknown voice {json.dumps(name)}: prompts keep {self.tts_voice}")
        self.tts_voice = voice
        return Go("next", action.next_action, f"voice {name}: espeak-ng {voice}")

    async def do_UpdateContactData(self, action: Action) -> Go:
        code = self.resolve(str(action.parameters.get("LanguageCode", ""))).strip()
        if not code:
            return Go("next", action.next_action)
        voice = language_voice(code)
        if voice is None:
            return Go("next", action.next_action, f"language {code}: no espeak-ng voice, prompts keep {self.tts_voice}")
        if _language_of(voice) != _language_of(self.tts_voice):
            self.tts_voice = voice
            return Go("next", action.next_action, f"language {code}: espeak-ng {voice}")
        return Go("next", action.next_action, f"language {code}: prompts keep {self.tts_voice}")
