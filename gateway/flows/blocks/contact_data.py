"""Actions that change the contact's data and settings: attributes, logging, recording.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import json

from gateway.flows.model import Action
from gateway.flows.runtime import Go
from gateway.flows.values import key_path, kind

RECORDED_PARTICIPANTS = ("Agent", "Customer")
RECORDING_CHANNELS = ("Stereo", "Mono")  # callgate's own RecordingBehavior.Channels (not in Connect)

ERRORS = {
    "UpdateContactAttributes": {"NoMatchingError"},
    "UpdateFlowLoggingBehavior": {"NoMatchingError"},  # runs as a no-op: every step is recorded anyway
    "UpdateContactRecordingBehavior": {"NoMatchingError"},
}
NEEDS_NEXT_ACTION = {"UpdateContactAttributes", "UpdateFlowLoggingBehavior", "UpdateContactRecordingBehavior"}


class Checks:
    def check_UpdateContactAttributes(self, action: Action, path: str, ident: str, params: dict) -> None:
        target = params.get("TargetContact", "Current")
        if target != "Current":
            self.error(f"{path}.Parameters.TargetContact", f"TargetContact {json.dumps(target)} is not supported "
                                                           'here; only "Current"', ident)
        if "Attributes" not in params:
            self.error(f"{path}.Parameters", "missing Attributes ({key: value})", ident)
            return
        attributes = params["Attributes"]
        if not isinstance(attributes, dict):
            self.error(f"{path}.Parameters.Attributes",
                       f"Attributes must be an object, found {kind(attributes)}", ident)
            return
        for key, value in attributes.items():
            where = f"{path}.Parameters.Attributes{key_path(key)}"
            if not key:
                self.error(where, "empty attribute name", ident)
            if not isinstance(value, str):
                self.error(where, f"attribute value must be a string, found {kind(value)}", ident)
            else:
                self.check_references(where, ident, key + " " + value)

    def check_UpdateFlowLoggingBehavior(self, action: Action, path: str, ident: str, params: dict) -> None:
        value = params.get("FlowLoggingBehavior")
        if value not in ("Enabled", "Disabled"):
            self.error(f"{path}.Parameters", f'FlowLoggingBehavior must be "Enabled" or "Disabled", '
                                             f"found {json.dumps(value)}", ident)

    def check_UpdateContactRecordingBehavior(self, action: Action, path: str, ident: str, params: dict) -> None:
        if "AnalyticsBehavior" in params:
            self.warn(f"{path}.Parameters.AnalyticsBehavior", "AnalyticsBehavior is ignored: Contact Lens "
                                                              "analytics do not exist here", ident)
        if "RecordingBehavior" not in params:
            self.error(f"{path}.Parameters", 'missing RecordingBehavior ({"RecordedParticipants": ["Agent", '
                                             '"Customer"]}; an empty list turns recording off)', ident)
            return
        behavior, where = params["RecordingBehavior"], f"{path}.Parameters.RecordingBehavior"
        if not isinstance(behavior, dict):
            self.error(where, f"RecordingBehavior must be an object, found {kind(behavior)}", ident)
            return
        if "IVRRecordingBehavior" in behavior:
            self.warn(f"{where}.IVRRecordingBehavior", "IVRRecordingBehavior is ignored: callgate records the "
                                                       "whole call, IVR included, while recording is on", ident)
        if "Channels" in behavior and behavior["Channels"] not in RECORDING_CHANNELS:
            self.error(f"{where}.Channels",
                       f'Channels must be "Stereo" or "Mono", found {kind(behavior["Channels"])}', ident)
        if "RecordedParticipants" not in behavior:
            self.error(where, 'missing RecordedParticipants (a list of "Agent" and/or "Customer"; an empty '
                              "list turns recording off)", ident)
            return
        participants = behavior["RecordedParticipants"]
        if not isinstance(participants, list):
            self.error(f"{where}.RecordedParticipants",
                       f"RecordedParticipants must be a list, found {kind(participants)}", ident)
            return
        for i, who in enumerate(participants):
            if who not in RECORDED_PARTICIPANTS:
                self.error(f"{where}.RecordedParticipants[{i}]",
                           f'participant must be "Agent" or "Customer", found {kind(who)}', ident)
            elif who in participants[:i]:
                self.warn(f"{where}.RecordedParticipants[{i}]", f'"{who}" is listed twice', ident)


class Actions:
    async def do_UpdateContactAttributes(self, action: Action) -> Go:
        updates = {self.resolve(k): self.resolve(str(v)) for k, v in action.parameters.get("Attributes", {}).items()}
        self.contact.attributes.update(updates)
        return Go("next", action.next_action)

    async def do_UpdateFlowLoggingBehavior(self, action: Action) -> Go:
        return Go("next", action.next_action)

    async def do_UpdateContactRecordingBehavior(self, action: Action) -> Go:
        behavior = action.parameters.get("RecordingBehavior", {})
        set_recording = getattr(self.contact, "set_recording", None)
        if self.channel == "VOICE" and set_recording is not None:
            channels = behavior.get("Channels")
            set_recording(list(behavior.get("RecordedParticipants", [])), channels.lower() if channels else None)
        return Go("next", action.next_action)
