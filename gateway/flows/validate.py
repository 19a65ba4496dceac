"""Check a flow document in the Amazon Connect flow language and build a `Flow` from it.

Every problem is collected (not just the first), each with its JSON path, the action identifier and,
where the text allows, its line and column. Errors make the flow invalid; warnings (such as an
unreachable action) do not.
"""

from __future__ import annotations

import bisect
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from json.decoder import scanstring
from pathlib import Path

from gateway.flows.model import (
    FLOW_LANGUAGE_VERSION,
    REFERENCE_RE,
    Action,
    Condition,
    Flow,
    is_known_reference,
)

# callgate's own blocks: the dot keeps them apart from every Amazon Connect type name.
VOICEMAIL_TYPE = "Callgate.RecordVoicemail"

SUPPORTED_TYPES = frozenset(
    {
        "MessageParticipant",
        "GetParticipantInput",
        "UpdateContactTargetQueue",
        "TransferContactToQueue",
        "UpdateContactAttributes",
        "DisconnectParticipant",
        "EndFlowExecution",
        "UpdateFlowLoggingBehavior",  # runs as a no-op: every step is recorded anyway
        VOICEMAIL_TYPE,
        "UpdateContactRecordingBehavior",
    }
)

MAX_ACTIONS = 250  # Connect's per-flow limit
MAX_IDENTIFIER_LENGTH = 50
MAX_INPUT_TIME_LIMIT_SECONDS = 179
IDENTIFIER_FORBIDDEN = set("%:()\\/=$,;[]{}")
RESERVED_IDENTIFIERS = frozenset(
    {"__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty",
     "isPrototypeOf", "propertyIsEnumerable", "toLocaleString", "__defineGetter__",
     "__defineSetter__", "__lookupGetter__", "__lookupSetter__"}
)
PROMPT_PARAMETERS = ("Text", "SSML", "PromptId")
DTMF_KEYS = frozenset("0123456789*#")
VOICEMAIL_MAX_LENGTH = (120.0, 1.0, 3600.0)  # MaxLengthSeconds: default, smallest and largest allowed
VOICEMAIL_SILENCE = (5.0, 0.5, 60.0)         # SilenceSeconds: default, smallest and largest allowed
VOICEMAIL_PARAMETERS = ("MaxLengthSeconds", "SilenceSeconds", "StopKeys", "Beep", *PROMPT_PARAMETERS)

# Error branches each supported action can take; any other ErrorType on it is never used.
ERROR_TYPES = {
    "MessageParticipant": {"NoMatchingError"},
    "GetParticipantInput": {"InputTimeLimitExceeded", "NoMatchingCondition", "NoMatchingError"},
    "UpdateContactTargetQueue": {"NoMatchingError"},
    "TransferContactToQueue": {"QueueAtCapacity", "NoMatchingError"},
    "UpdateContactAttributes": {"NoMatchingError"},
    "DisconnectParticipant": set(),
    "EndFlowExecution": set(),
    "UpdateFlowLoggingBehavior": {"NoMatchingError"},
    VOICEMAIL_TYPE: {"NoSpeech", "NoMatchingError"},
    "UpdateContactRecordingBehavior": {"NoMatchingError"},
}
NEEDS_NEXT_ACTION = {"MessageParticipant", "UpdateContactTargetQueue", "UpdateContactAttributes",
                     "UpdateFlowLoggingBehavior", "UpdateContactRecordingBehavior"}
RECORDED_PARTICIPANTS = ("Agent", "Customer")
RECORDING_CHANNELS = ("Stereo", "Mono")  # callgate's own RecordingBehavior.Channels (not in Connect)


@dataclass
class FlowIssue:
    path: str
    message: str
    identifier: str | None = None
    line: int | None = None
    column: int | None = None
    severity: str = "error"
    source: str = "<flow>"

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        level = "warning: " if self.severity == "warning" else ""
        action = f" (action '{self.identifier}')" if self.identifier is not None else ""
        return f"{where}: {level}{self.path}{action}: {self.message}"


class FlowInvalid(ValueError):
    def __init__(self, issues: list[FlowIssue], source: str) -> None:
        self.issues = issues
        self.source = source
        errors = sum(1 for i in issues if i.severity == "error")
        lines = [f"{source}: invalid flow ({errors} error{'s' if errors != 1 else ''})"]
        lines += [f"  {issue}" for issue in issues]
        super().__init__("\n".join(lines))


def validate_flow_text(
    text: str, source: str = "<flow>", *, base_dir: Path | None = None
) -> tuple[Flow | None, list[FlowIssue]]:
    """Validate flow JSON; return (Flow, issues), with Flow None when any issue is an error.

    PromptId files are looked up relative to `base_dir` (default: the folder of `source`); they are
    only checked for existence when `source` names a file (not "<...>") or `base_dir` is given.
    """
    check_files = base_dir is not None or not source.startswith("<")
    if base_dir is None:
        base_dir = Path.cwd() if source.startswith("<") else Path(source).resolve().parent
    return _Validator(text, source, base_dir, check_files).run()


def load_flow(path: str | Path) -> Flow:
    """Read and validate a flow file; raise FlowInvalid listing every issue when it has errors."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise FlowInvalid([FlowIssue("$", f"cannot read file: {exc.strerror or exc}", source=source)], source)
    except UnicodeDecodeError as exc:
        issue = FlowIssue("$", f"not UTF-8 text (byte {exc.start}: {exc.reason})", source=source)
        raise FlowInvalid([issue], source)
    flow, issues = validate_flow_text(text, source, base_dir=path.resolve().parent)
    if flow is None:
        raise FlowInvalid(issues, source)
    return flow


class _Validator:
    def __init__(self, text: str, source: str, base_dir: Path, check_files: bool) -> None:
        self.text = text
        self.source = source
        self.base_dir = base_dir
        self.check_files = check_files
        self.issues: list[FlowIssue] = []
        # per action: source index of each kept condition, and of each kept error branch by ErrorType
        self.indexes: dict[str, tuple[list[int], dict[str, int]]] = {}
        self.first_use: dict[str, str] = {}  # Identifier -> path of the action that has it first
        self.unknown_refs: dict[str, list] = {}  # "$.External" -> [path, identifier, first ref, count]

    # -- issue collection

    def error(self, path: str, message: str, identifier: str | None = None) -> None:
        self.issues.append(FlowIssue(path, message, identifier, source=self.source))

    def warn(self, path: str, message: str, identifier: str | None = None) -> None:
        self.issues.append(FlowIssue(path, message, identifier, severity="warning", source=self.source))

    def bad_target(self, path: str, value: object, identifier: str | None) -> None:
        self.error(path, f"NextAction must be an action Identifier, found {_kind(value)}", identifier)

    # -- top level

    def run(self) -> tuple[Flow | None, list[FlowIssue]]:
        try:
            doc = json.loads(self.text)
        except json.JSONDecodeError as exc:
            self.issues.append(
                FlowIssue("$", f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno, source=self.source)
            )
            return None, self.issues
        except RecursionError:
            self.error("$", "invalid JSON: nested too deeply")
            return None, self.issues
        flow = self.check_document(doc)
        self.report_references()
        self.add_positions()
        self.issues.sort(key=lambda i: (i.line or 0, i.column or 0))
        if any(i.severity == "error" for i in self.issues):
            return None, self.issues
        return flow, self.issues

    def check_document(self, doc: object) -> Flow | None:
        if not isinstance(doc, dict):
            self.error("$", f"top level must be a JSON object (a flow), found {_kind(doc)}")
            return None
        if self.is_wrapper(doc) or self.is_legacy(doc):
            return None
        version = doc.get("Version")
        if "Version" not in doc:
            self.error("$", f'missing Version (must be "{FLOW_LANGUAGE_VERSION}")')
        elif version != FLOW_LANGUAGE_VERSION:
            self.error("$.Version", f'Version must be "{FLOW_LANGUAGE_VERSION}", found {json.dumps(version)}')
        start = doc.get("StartAction")
        if "StartAction" not in doc:
            self.error("$", "missing StartAction (the Identifier of the first action)")
        elif not isinstance(start, str) or not start:
            self.error("$.StartAction", f"StartAction must be an action Identifier (string), found {_kind(start)}")
            start = None
        raw_actions = doc.get("Actions")
        if "Actions" not in doc:
            self.error("$", "missing Actions (the list of actions)")
            raw_actions = []
        elif not isinstance(raw_actions, list):
            self.error("$.Actions", f"Actions must be a list, found {_kind(raw_actions)}")
            raw_actions = []
        elif len(raw_actions) > MAX_ACTIONS:
            self.warn("$.Actions", f"{len(raw_actions)} actions; Amazon Connect allows at most {MAX_ACTIONS}")

        actions: dict[str, Action] = {}
        for index, raw in enumerate(raw_actions):
            action = self.check_action(index, raw, actions)
            if action is not None and action.identifier not in actions:
                actions[action.identifier] = action
        for action in actions.values():
            self.check_targets(action, actions)
        if isinstance(start, str):
            if start not in actions:
                known = "the Actions list is empty" if not raw_actions else "no action has this Identifier"
                self.error("$.StartAction", f"StartAction '{start}' names no action ({known})")
            else:
                self.check_reachable(start, actions)
        if not isinstance(start, str) or not isinstance(version, str):
            return None
        return Flow(version, start, actions, self.source, self.base_dir)

    def is_wrapper(self, doc: dict) -> bool:
        """An API response or export wrapper around the flow: say where the flow is inside it."""
        if "Actions" in doc:
            return False
        if isinstance(doc.get("ContactFlow"), dict) and "Content" in doc["ContactFlow"]:
            where = "$.ContactFlow.Content"
        elif "Content" in doc and ("Name" in doc or "Type" in doc):
            where = "$.Content"
        else:
            return False
        self.error(
            "$",
            f"this is a DescribeContactFlow response or export wrapper, not a flow: the flow is the JSON "
            f"in {where}; save that as the flow file",
        )
        return True

    def is_legacy(self, doc: dict) -> bool:
        """The old Connect console export ("modules"/"branches"/"start", version "1")."""
        if "Actions" in doc or not isinstance(doc.get("modules"), list):
            return False
        modules = doc["modules"]
        types = sorted({m["type"] for m in modules if isinstance(m, dict) and isinstance(m.get("type"), str)})
        meta = doc.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        named = f" of flow '{name}'" if isinstance(name, str) and name else ""
        self.error(
            "$",
            f"legacy Amazon Connect console export format{named} (top-level \"modules\"/\"start\", "
            f"version {json.dumps(doc.get('version'))}) is not supported: {len(modules)} modules of types "
            f"{', '.join(types) or '(none)'}; open the flow in the Connect flow designer and export it again "
            f'to get the flow language (Version "{FLOW_LANGUAGE_VERSION}", "Actions")',
        )
        return True

    # -- one action

    def check_action(self, index: int, raw: object, seen: dict[str, Action]) -> Action | None:
        path = f"$.Actions[{index}]"
        if not isinstance(raw, dict):
            self.error(path, f"an action must be a JSON object, found {_kind(raw)}")
            return None
        ident = raw.get("Identifier")
        if "Identifier" not in raw:
            self.error(path, "missing Identifier")
            ident = None
        elif not isinstance(ident, str) or not ident:
            self.error(f"{path}.Identifier", f"Identifier must be a non-empty string, found {_kind(ident)}")
            ident = None
        else:
            self.check_identifier(path, ident)
        type_ = raw.get("Type")
        if "Type" not in raw:
            self.error(path, "missing Type", ident)
            type_ = None
        elif not isinstance(type_, str) or not type_:
            self.error(f"{path}.Type", f"Type must be a non-empty string, found {_kind(type_)}", ident)
            type_ = None
        elif type_ not in SUPPORTED_TYPES:
            self.error(path, f"not supported here: {type_} at {path}", ident)

        params = raw.get("Parameters", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self.error(f"{path}.Parameters", f"Parameters must be an object, found {_kind(params)}", ident)
            params = {}
        next_action, conditions, errors, indexes = self.check_transitions(path, raw.get("Transitions"), ident)
        if ident is None or type_ is None:
            return None
        if ident not in seen:
            self.indexes[ident] = indexes
        action = Action(ident, type_, params, next_action, conditions, errors, path)
        if type_ in SUPPORTED_TYPES:
            self.check_supported(action, indexes)
        return action

    def check_identifier(self, path: str, ident: str) -> None:
        where = f"{path}.Identifier"
        first = self.first_use.setdefault(ident, path)
        if first != path:
            self.error(where, f"duplicate Identifier '{ident}' (first used at {first})", ident)
        if len(ident) > MAX_IDENTIFIER_LENGTH:
            self.error(where, f"Identifier is {len(ident)} characters long (at most {MAX_IDENTIFIER_LENGTH})", ident)
        bad = sorted(set(ident) & IDENTIFIER_FORBIDDEN)
        if bad:
            self.error(where, f"Identifier contains forbidden characters: {' '.join(bad)}", ident)
        if ident in RESERVED_IDENTIFIERS:
            self.error(where, f"Identifier '{ident}' is a reserved name", ident)

    def check_transitions(
        self, path: str, raw: object, ident: str | None
    ) -> tuple[str | None, list[Condition], dict[str, str], tuple[list[int], dict[str, int]]]:
        path = f"{path}.Transitions"
        conditions: list[Condition] = []
        errors: dict[str, str] = {}
        indexes: tuple[list[int], dict[str, int]] = ([], {})
        if raw is None:
            return None, conditions, errors, indexes
        if not isinstance(raw, dict):
            self.error(path, f"Transitions must be an object, found {_kind(raw)}", ident)
            return None, conditions, errors, indexes
        next_action = raw.get("NextAction")
        if next_action is not None and (not isinstance(next_action, str) or not next_action):
            self.bad_target(f"{path}.NextAction", next_action, ident)
            next_action = None

        raw_conditions = raw.get("Conditions", [])
        if not isinstance(raw_conditions, list):
            self.error(f"{path}.Conditions", f"Conditions must be a list, found {_kind(raw_conditions)}", ident)
            raw_conditions = []
        for i, entry in enumerate(raw_conditions):
            condition = self.check_condition(f"{path}.Conditions[{i}]", entry, ident)
            if condition is not None:
                conditions.append(condition)
                indexes[0].append(i)

        raw_errors = raw.get("Errors", [])
        if not isinstance(raw_errors, list):
            self.error(f"{path}.Errors", f"Errors must be a list, found {_kind(raw_errors)}", ident)
            raw_errors = []
        for i, entry in enumerate(raw_errors):
            where = f"{path}.Errors[{i}]"
            if not isinstance(entry, dict):
                self.error(where, f"an error branch must be an object, found {_kind(entry)}", ident)
                continue
            error_type, target = entry.get("ErrorType"), entry.get("NextAction")
            if not isinstance(error_type, str) or not error_type:
                self.error(f"{where}.ErrorType", f"ErrorType must be a non-empty string, found {_kind(error_type)}",
                           ident)
                continue
            if not isinstance(target, str) or not target:
                self.bad_target(f"{where}.NextAction", target, ident)
                continue
            if error_type in errors:
                self.warn(where, f"second {error_type} branch is ignored (the first one is used)", ident)
                continue
            errors[error_type] = target
            indexes[1][error_type] = i
        return next_action, conditions, errors, indexes

    def check_condition(self, where: str, entry: object, ident: str | None) -> Condition | None:
        if not isinstance(entry, dict):
            self.error(where, f"a condition must be an object, found {_kind(entry)}", ident)
            return None
        target = entry.get("NextAction")
        if not isinstance(target, str) or not target:
            self.bad_target(f"{where}.NextAction", target, ident)
            target = None
        cond = entry.get("Condition")
        if not isinstance(cond, dict):
            self.error(f"{where}.Condition", f"missing Condition {{Operator, Operands}} (found {_kind(cond)})", ident)
            return None
        operator, operands = cond.get("Operator"), cond.get("Operands")
        ok = True
        if not isinstance(operator, str) or not operator:
            self.error(f"{where}.Condition.Operator",
                       f'Operator must be a string such as "Equals", found {_kind(operator)}', ident)
            ok = False
        if "Operands" not in cond:
            self.error(f"{where}.Condition", "Condition without Operands", ident)
            ok = False
        elif not isinstance(operands, list) or not operands:
            self.error(f"{where}.Condition.Operands",
                       f"Operands must be a non-empty list, found {_kind(operands)}", ident)
            ok = False
        elif not all(isinstance(o, str) for o in operands):
            self.error(f"{where}.Condition.Operands", f"Operands must be strings, found {json.dumps(operands)}", ident)
            ok = False
        if not ok or target is None:
            return None
        return Condition(operator, list(operands), target)

    def check_targets(self, action: Action, actions: dict[str, Action]) -> None:
        base = f"{action.json_path}.Transitions"
        cond_index, error_index = self.indexes[action.identifier]
        targets = []
        if action.next_action is not None:
            targets.append((f"{base}.NextAction", action.next_action))
        targets += [
            (f"{base}.Conditions[{i}].NextAction", c.next_action) for i, c in zip(cond_index, action.conditions)
        ]
        targets += [(f"{base}.Errors[{error_index[k]}].NextAction", t) for k, t in action.errors.items()]
        for where, target in targets:
            if target not in actions:
                self.error(where, f"transition to missing action '{target}'", action.identifier)

    def check_reachable(self, start: str, actions: dict[str, Action]) -> None:
        seen, todo = {start}, [start]
        while todo:
            action = actions[todo.pop()]
            nexts = [action.next_action, *(c.next_action for c in action.conditions), *action.errors.values()]
            for target in nexts:
                if target in actions and target not in seen:
                    seen.add(target)
                    todo.append(target)
        for ident, action in actions.items():
            if ident not in seen:
                self.warn(action.json_path, f"unreachable from StartAction '{start}' (never runs)", ident)

    # -- parameters of the types callgate runs

    def check_supported(self, action: Action, indexes: tuple[list[int], dict[str, int]]) -> None:
        path, ident, params = action.json_path, action.identifier, action.parameters
        allowed = ERROR_TYPES[action.type]
        cond_index, error_index = indexes
        for error_type in action.errors:
            if error_type not in allowed:
                self.warn(f"{path}.Transitions.Errors[{error_index[error_type]}]",
                          f"{action.type} never raises {error_type}; this branch is never taken", ident)
        if action.type in NEEDS_NEXT_ACTION and action.next_action is None:
            self.error(f"{path}.Transitions", f"missing Transitions.NextAction ({action.type} continues to it)", ident)
        if action.conditions and action.type != "GetParticipantInput":
            self.warn(f"{path}.Transitions.Conditions", f"{action.type} ignores Conditions", ident)
        if action.type == "GetParticipantInput":
            self.check_GetParticipantInput(action, path, ident, params, cond_index)
            return
        check = getattr(self, f"check_{action.type.replace('.', '_')}", None)
        if check is not None:
            check(action, path, ident, params)

    def check_prompt(self, path: str, ident: str, params: dict) -> None:
        present = [k for k in PROMPT_PARAMETERS if k in params]
        if "Media" in params:
            self.error(f"{path}.Parameters.Media",
                       "Media (S3 audio) prompts are not supported here; use PromptId with a local WAV file", ident)
            return
        if not present:
            self.error(f"{path}.Parameters", "missing prompt: give one of Text, SSML or PromptId", ident)
            return
        if len(present) > 1:
            self.error(f"{path}.Parameters", f"give only one prompt parameter, found {', '.join(present)}", ident)
            return
        key = present[0]
        where, value = f"{path}.Parameters.{key}", params[key]
        if not isinstance(value, str):
            self.error(where, f"{key} must be a string, found {_kind(value)}", ident)
            return
        if not value.strip():
            self.error(where, f"{key} is empty", ident)
            return
        if key == "PromptId":
            self.check_prompt_file(where, ident, value)
            return
        if key == "SSML":
            if not value.lstrip().startswith("<"):
                self.warn(where, "SSML has no <speak> element; it is spoken as plain text", ident)
            else:
                try:
                    ET.fromstring(value)
                except ET.ParseError as exc:
                    self.error(where, f"SSML is not well-formed XML: {exc}", ident)
        self.check_references(where, ident, value)

    def check_prompt_file(self, where: str, ident: str, value: str) -> None:
        if value.startswith("arn:") or REFERENCE_RE.fullmatch(value):
            self.error(where, f"PromptId must be a local WAV file path (relative to the flow's folder); "
                              f"Connect prompt-library ARNs and references are not supported here: '{value}'", ident)
            return
        if not value.lower().endswith(".wav"):
            self.warn(where, f"PromptId '{value}' does not end in .wav", ident)
        file = self.base_dir / value
        if self.check_files and not file.is_file():
            self.error(where, f"prompt file not found: {file}", ident)

    def check_references(self, where: str, ident: str, text: str) -> None:
        """Remember references callgate never fills; one warning per namespace is given at the end."""
        for ref in REFERENCE_RE.findall(text):
            if not is_known_reference(ref):
                namespace = ".".join(ref.split(".")[:2])
                first = self.unknown_refs.setdefault(namespace, [where, ident, ref, 0])
                first[3] += 1

    def report_references(self) -> None:
        for namespace, (where, ident, ref, count) in self.unknown_refs.items():
            more = f"{count} uses, first " if count > 1 else ""
            self.warn(where, f"{namespace} is not set by callgate ({more}{ref}); it resolves to empty text", ident)

    def check_MessageParticipant(self, action: Action, path: str, ident: str, params: dict) -> None:
        self.check_prompt(path, ident, params)

    def check_GetParticipantInput(
        self, action: Action, path: str, ident: str, params: dict, cond_index: list[int]
    ) -> None:
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

    def check_UpdateContactTargetQueue(self, action: Action, path: str, ident: str, params: dict) -> None:
        if "QueueId" not in params:
            extra = " (agent queues via AgentId are not supported here)" if "AgentId" in params else ""
            self.error(f"{path}.Parameters", f"missing QueueId{extra}", ident)
            return
        queue = params["QueueId"]
        if not isinstance(queue, str) or not queue.strip():
            self.error(f"{path}.Parameters.QueueId", f"QueueId must be a non-empty string, found {_kind(queue)}", ident)
        else:
            self.check_references(f"{path}.Parameters.QueueId", ident, queue)

    def check_TransferContactToQueue(self, action: Action, path: str, ident: str, params: dict) -> None:
        if "QueueAtCapacity" not in action.errors:
            self.warn(f"{path}.Transitions.Errors", "no QueueAtCapacity branch: a full queue ends the flow "
                                                    "with an error", ident)

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
                       f"Attributes must be an object, found {_kind(attributes)}", ident)
            return
        for key, value in attributes.items():
            where = f"{path}.Parameters.Attributes{_key_path(key)}"
            if not key:
                self.error(where, "empty attribute name", ident)
            if not isinstance(value, str):
                self.error(where, f"attribute value must be a string, found {_kind(value)}", ident)
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
            self.error(where, f"RecordingBehavior must be an object, found {_kind(behavior)}", ident)
            return
        if "IVRRecordingBehavior" in behavior:
            self.warn(f"{where}.IVRRecordingBehavior", "IVRRecordingBehavior is ignored: callgate records the "
                                                       "whole call, IVR included, while recording is on", ident)
        if "Channels" in behavior and behavior["Channels"] not in RECORDING_CHANNELS:
            self.error(f"{where}.Channels",
                       f'Channels must be "Stereo" or "Mono", found {_kind(behavior["Channels"])}', ident)
        if "RecordedParticipants" not in behavior:
            self.error(where, 'missing RecordedParticipants (a list of "Agent" and/or "Customer"; an empty '
                              "list turns recording off)", ident)
            return
        participants = behavior["RecordedParticipants"]
        if not isinstance(participants, list):
            self.error(f"{where}.RecordedParticipants",
                       f"RecordedParticipants must be a list, found {_kind(participants)}", ident)
            return
        for i, who in enumerate(participants):
            if who not in RECORDED_PARTICIPANTS:
                self.error(f"{where}.RecordedParticipants[{i}]",
                           f'participant must be "Agent" or "Customer", found {_kind(who)}', ident)
            elif who in participants[:i]:
                self.warn(f"{where}.RecordedParticipants[{i}]", f'"{who}" is listed twice', ident)

    def check_Callgate_RecordVoicemail(self, action: Action, path: str, ident: str, params: dict) -> None:
        if any(k in params for k in (*PROMPT_PARAMETERS, "Media")):
            self.check_prompt(path, ident, params)  # the greeting is optional
        for key in params:
            if key not in VOICEMAIL_PARAMETERS and key != "Media":
                known = ", ".join(VOICEMAIL_PARAMETERS)
                self.warn(f"{path}.Parameters{_key_path(key)}",
                          f"{VOICEMAIL_TYPE} has no parameter {key!r}; it is ignored (known: {known})", ident)
        limits = {"MaxLengthSeconds": VOICEMAIL_MAX_LENGTH[1:], "SilenceSeconds": VOICEMAIL_SILENCE[1:]}
        for key, (low, high) in limits.items():
            if key not in params:
                continue
            where, value = f"{path}.Parameters.{key}", params[key]
            seconds = parse_seconds(value)
            if seconds is None:
                self.error(where, f"{key} must be a number of seconds, found {_kind(value)}", ident)
            elif not low <= seconds <= high:
                self.error(where, f"{key} must be between {low:g} and {high:g} seconds, found {json.dumps(value)}",
                           ident)
        keys = params.get("StopKeys", "#")
        if not isinstance(keys, str):
            self.error(f"{path}.Parameters.StopKeys", f"StopKeys must be a string of phone keys such as \"#\", "
                                                      f"found {_kind(keys)}", ident)
        elif bad := sorted(set(keys) - DTMF_KEYS):
            self.error(f"{path}.Parameters.StopKeys", f"StopKeys {json.dumps(keys)} holds {', '.join(map(repr, bad))}, "
                                                      "not phone keys (0-9, *, #)", ident)
        if "Beep" in params and _flag(params["Beep"]) is None:
            self.error(f"{path}.Parameters.Beep", f"Beep must be true or false, found {_kind(params['Beep'])}", ident)

    # -- line and column for path-based issues

    def add_positions(self) -> None:
        pending = [i for i in self.issues if i.line is None]
        if not pending:
            return
        try:
            positions = _json_positions(self.text)
        except (RecursionError, IndexError, ValueError):
            return
        line_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        for issue in pending:
            path = issue.path
            while path not in positions and path != "$":
                path = _parent_path(path)
            offset = positions.get(path)
            if offset is None:
                continue
            line = bisect.bisect_right(line_starts, offset)
            issue.line, issue.column = line, offset - line_starts[line - 1] + 1


def parse_seconds(value: object) -> float | None:
    """InputTimeLimitSeconds may be a number or a numeric string; None if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            return None
        return seconds if seconds == seconds and seconds not in (float("inf"), float("-inf")) else None
    return None


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
    beep = _flag(params.get("Beep", True))
    return VoicemailOptions(max_seconds if max_seconds is not None else VOICEMAIL_MAX_LENGTH[0],
                            silence if silence is not None else VOICEMAIL_SILENCE[0],
                            keys if isinstance(keys, str) else "#", beep if beep is not None else True)


def _flag(value: object) -> bool | None:
    """true/false as JSON or as text ("True", "false"); None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"string {json.dumps(value)}" if value else "an empty string"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LAST_SEGMENT = re.compile(r'(\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$')
_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null|NaN|-?Infinity")


def _key_path(key: str) -> str:
    return f".{key}" if _SIMPLE_KEY.fullmatch(key) else f"[{json.dumps(key, ensure_ascii=False)}]"


def _parent_path(path: str) -> str:
    m = _LAST_SEGMENT.search(path)
    return path[: m.start()] if m else "$"


def _json_positions(text: str) -> dict[str, int]:
    """Offset of the start of every value in (already valid) JSON text, keyed by JSON path."""
    positions: dict[str, int] = {}

    def value(i: int, path: str) -> int:
        i = _WS.match(text, i).end()
        positions[path] = i
        c = text[i]
        if c == "{":
            i = _WS.match(text, i + 1).end()
            if text[i] == "}":
                return i + 1
            while True:
                key, i = scanstring(text, i + 1)
                i = _WS.match(text, i).end() + 1  # past ':'
                i = _WS.match(text, value(i, path + _key_path(key))).end()
                if text[i] == "}":
                    return i + 1
                i = _WS.match(text, i + 1).end()  # past ','
        if c == "[":
            i = _WS.match(text, i + 1).end()
            if text[i] == "]":
                return i + 1
            n = 0
            while True:
                i = _WS.match(text, value(i, f"{path}[{n}]")).end()
                n += 1
                if text[i] == "]":
                    return i + 1
                i += 1
        if c == '"':
            return scanstring(text, i + 1)[1]
        m = _SCALAR.match(text, i)
        if m is None:
            raise ValueError(f"unexpected character at {i}")
        return m.end()

    value(0, "$")
    return positions
